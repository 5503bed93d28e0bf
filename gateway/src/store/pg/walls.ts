/**
 * Video walls and their presets and plans on PostgreSQL. A save writes only the version after the
 * stored one, so two nodes changing one wall at once cannot both write version N: the second gets
 * StoreConflict and reloads the wall (get) before it tries again.
 */
import { StoreConflict, type AuditEntry, type PresetRow, type TileRows, type WallRepo, type WallRow } from '../types.js';
import { appendAudit } from './audit.js';
import type { PgDb, PgQueries } from './db.js';
import { tilesByWall, toPreset, toWall, type Row } from '../rows.js';

type AuditWrite = Omit<AuditEntry, 'seq'>;

export class PgWalls implements WallRepo {
  constructor(private readonly db: PgDb) {}

  async all() {
    // One snapshot for both reads, so no wall is paired with another version's tiles.
    return this.db.tx(async (tx) => {
      const tiles = tilesByWall(await tx.query<Row>(`SELECT wall_id, tile_id, doc FROM wall_tiles`));
      return (await tx.query<Row>(`SELECT * FROM walls ORDER BY id`)).map((r) => toWall(r, tiles.get(r.id as string) ?? new Map()));
    }, 'REPEATABLE READ');
  }

  async get(id: string) {
    return this.db.tx(async (tx) => {
      const row = await tx.one<Row>(`SELECT * FROM walls WHERE id = $1`, [id]);
      if (!row) return null;
      const tiles: TileRows = new Map();
      for (const r of await tx.query<Row>(`SELECT tile_id, doc FROM wall_tiles WHERE wall_id = $1`, [id])) tiles.set(r.tile_id as string, r.doc as string);
      return toWall(row, tiles);
    }, 'REPEATABLE READ');
  }

  private async putTiles(tx: PgQueries, wallId: string, tiles: TileRows) {
    if (!tiles.size) return;
    await tx.exec(
      `INSERT INTO wall_tiles (wall_id, tile_id, doc) SELECT $1, t.id, t.doc FROM unnest($2::text[], $3::text[]) AS t(id, doc)
       ON CONFLICT (wall_id, tile_id) DO UPDATE SET doc = EXCLUDED.doc`,
      [wallId, [...tiles.keys()], [...tiles.values()]],
    );
  }

  async create(row: WallRow, tiles: TileRows, audit: AuditWrite) {
    try {
      await this.db.tx(async (tx) => {
        await tx.exec(`INSERT INTO walls (id, department_id, dept_path, version, doc) VALUES ($1, $2, $3, $4, $5)`, [
          row.id,
          row.departmentId,
          row.deptPath,
          row.version,
          row.doc,
        ]);
        await this.putTiles(tx, row.id, tiles);
        await appendAudit(tx, audit);
      });
    } catch (err) {
      if (err instanceof StoreConflict) throw new StoreConflict(`wall ${row.id} exists`);
      throw err;
    }
  }

  async save(row: WallRow, tiles: { rows: TileRows; replace: boolean }, audit: AuditWrite | null) {
    await this.db.tx(async (tx) => {
      const written = await tx.exec(`UPDATE walls SET department_id = $2, dept_path = $3, version = $4, doc = $5 WHERE id = $1 AND version = $4 - 1`, [
        row.id,
        row.departmentId,
        row.deptPath,
        row.version,
        row.doc,
      ]);
      if (written !== 1) {
        const stored = await tx.one<{ version: number }>(`SELECT version FROM walls WHERE id = $1`, [row.id]);
        throw new StoreConflict(
          stored ? `wall ${row.id} is at version ${stored.version}, not ${row.version - 1}` : `wall ${row.id} does not exist`,
        );
      }
      if (tiles.replace) await tx.exec(`DELETE FROM wall_tiles WHERE wall_id = $1`, [row.id]);
      await this.putTiles(tx, row.id, tiles.rows);
      if (audit) await appendAudit(tx, audit);
    });
  }

  async delete(id: string, audit: AuditWrite) {
    return this.db.tx(async (tx) => {
      // Presets and tiles go with it (ON DELETE CASCADE).
      const gone = (await tx.exec(`DELETE FROM walls WHERE id = $1`, [id])) > 0;
      if (gone) await appendAudit(tx, audit);
      return gone;
    });
  }

  async presets(): Promise<PresetRow[]> {
    return (await this.db.query<Row>(`SELECT * FROM wall_presets ORDER BY created_at, id`)).map(toPreset);
  }

  async createPreset(row: PresetRow, audit: AuditWrite) {
    try {
      await this.db.tx(async (tx) => {
        await tx.exec(
          `INSERT INTO wall_presets (id, wall_id, kind, name, priority, state, created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
          [row.id, row.wallId, row.kind, row.name, row.priority, row.state, row.createdBy, row.createdAt],
        );
        await appendAudit(tx, audit);
      });
    } catch (err) {
      if (err instanceof StoreConflict) throw new StoreConflict(`the wall already has a ${row.kind} named "${row.name}"`);
      throw err;
    }
  }

  async deletePreset(id: string, audit: AuditWrite) {
    return this.db.tx(async (tx) => {
      const gone = (await tx.exec(`DELETE FROM wall_presets WHERE id = $1`, [id])) > 0;
      if (gone) await appendAudit(tx, audit);
      return gone;
    });
  }
}

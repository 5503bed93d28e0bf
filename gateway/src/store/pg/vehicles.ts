import { ALARM_NOT_BEHIND } from '../alarm-order.js';
import { appendAudit } from './audit.js';
import type { PgDb, PgTx } from './db.js';
import { rangeFilter } from './refusals.js';
import {
  StoreConflict,
  type AlarmQuery,
  type AlarmRepo,
  type AlarmRow,
  type AlarmSnapshotWrite,
  type AuditEntry,
  type PositionRow,
  type RuleRepo,
  type RuleRow,
  type VehicleRepo,
  type VehicleRow,
  type VehicleWriteResult,
} from '../types.js';
import { sourcesByVehicle, toAlarm, toPosition, toRule, toVehicle, type Row } from '../rows.js';

type AuditWrite = Omit<AuditEntry, 'seq'>;

/**
 * Vehicle writes check the plate, SIM and channel sources of every other vehicle before writing, so
 * two nodes' writes must not interleave: one writer at a time, as SQLite has. Readers are not held.
 */
const lockVehicles = (tx: PgTx) => tx.exec(`LOCK TABLE vehicles IN SHARE ROW EXCLUSIVE MODE`);

export class PgVehicleRepo implements VehicleRepo {
  constructor(private readonly db: PgDb) {}

  async all(): Promise<VehicleRow[]> {
    const sources = sourcesByVehicle(await this.db.query<Row>(`SELECT source_id, vehicle_id FROM vehicle_channels ORDER BY source_id`));
    return (await this.db.query<Row>(`SELECT * FROM vehicles ORDER BY plate`)).map((r) => toVehicle(r, sources.get(r.id as string) ?? []));
  }

  /** One row's write inside a transaction holding the vehicles lock; a collision is returned, not thrown. */
  private async write(tx: PgTx, row: VehicleRow, expectedVersion: number | null): Promise<VehicleWriteResult> {
    // One round trip for the three checks (an import runs them per row); the SIM lookup is the vehicles_sim index's expression.
    const found = await tx.one<{ current: number | null; plate_holder: string | null; sim_holder: string | null }>(
      `SELECT (SELECT version FROM vehicles WHERE id = $1) AS current, (SELECT id FROM vehicles WHERE plate = $2) AS plate_holder,
        CASE WHEN $3::text <> '' THEN (SELECT id FROM vehicles WHERE ltrim(doc::jsonb ->> 'sim', '0') = $3::text AND id <> $1 LIMIT 1) END AS sim_holder`,
      [row.id, row.plate, row.sim ?? ''],
    );
    const current = found?.current ?? undefined;
    if (expectedVersion === null && current !== undefined) return { conflict: 'id', value: row.id };
    if (expectedVersion !== null && current === undefined) return 'not-found';
    if (expectedVersion !== null && current !== expectedVersion) return 'version-conflict';
    if (found?.plate_holder != null && found.plate_holder !== row.id) return { conflict: 'plate', value: row.plate };
    if (row.sim && found?.sim_holder != null) return { conflict: 'sim', value: row.sim };
    if (row.sourceIds.length) {
      const found = await tx.query<{ id: string; holder: string | null }>(
        `SELECT s.id, c.vehicle_id AS holder FROM sources s LEFT JOIN vehicle_channels c ON c.source_id = s.id WHERE s.id = ANY($1::text[])`,
        [row.sourceIds],
      );
      const byId = new Map(found.map((f) => [f.id, f.holder]));
      for (const sourceId of row.sourceIds) {
        const holder = byId.get(sourceId);
        if (holder === undefined || (holder !== null && holder !== row.id)) return { conflict: 'source', value: sourceId };
      }
    }
    await tx.exec(
      `INSERT INTO vehicles (id, plate, department_id, dept_path, version, doc) VALUES ($1, $2, $3, $4, $5, $6)
        ON CONFLICT (id) DO UPDATE SET plate = excluded.plate, department_id = excluded.department_id, dept_path = excluded.dept_path,
          version = excluded.version, doc = excluded.doc`,
      [row.id, row.plate, row.departmentId, row.deptPath, row.version, row.doc],
    );
    await tx.exec(`DELETE FROM vehicle_channels WHERE vehicle_id = $1`, [row.id]);
    if (row.sourceIds.length) {
      await tx.exec(`INSERT INTO vehicle_channels (source_id, vehicle_id) SELECT unnest($1::text[]), $2`, [row.sourceIds, row.id]);
    }
    return 'ok';
  }

  async put(row: VehicleRow, expectedVersion: number | null, audit: AuditWrite): Promise<VehicleWriteResult> {
    return this.db.tx(async (tx) => {
      await lockVehicles(tx);
      const result = await this.write(tx, row, expectedVersion);
      if (result === 'ok') await appendAudit(tx, audit);
      return result;
    });
  }

  async delete(id: string, expectedVersion: number | undefined, audit: AuditWrite) {
    return this.db.tx(async (tx) => {
      await lockVehicles(tx);
      const current = (await tx.one<{ version: number }>(`SELECT version FROM vehicles WHERE id = $1`, [id]))?.version;
      if (current === undefined) return 'not-found' as const;
      if (expectedVersion !== undefined && current !== expectedVersion) return 'version-conflict' as const;
      await tx.exec(`DELETE FROM vehicle_channels WHERE vehicle_id = $1`, [id]);
      await tx.exec(`DELETE FROM vehicle_positions WHERE vehicle_id = $1`, [id]);
      await tx.exec(`DELETE FROM vehicles WHERE id = $1`, [id]);
      await appendAudit(tx, audit);
      return 'deleted' as const;
    });
  }

  async importRows(rows: { line: number; row: VehicleRow; expectedVersion: number | null }[], allOrNothing: boolean, audit: AuditWrite) {
    const refused: { line: number; field: string; message: string }[] = [];
    const rollback = new Error('rollback');
    try {
      await this.db.tx(async (tx) => {
        await lockVehicles(tx);
        for (const { line, row, expectedVersion } of rows) {
          const result = await this.write(tx, row, expectedVersion);
          if (result === 'ok') continue;
          if (result === 'not-found' || result === 'version-conflict') refused.push({ line, field: 'id', message: `vehicle "${row.id}" changed during the import` });
          else if (result.conflict === 'plate') refused.push({ line, field: 'plate', message: `${result.value} is registered to another vehicle` });
          else if (result.conflict === 'sim') refused.push({ line, field: 'sim', message: `SIM ${result.value} is another vehicle's` });
          else if (result.conflict === 'source') refused.push({ line, field: 'channels', message: `source "${result.value}" is missing or is another vehicle's channel` });
          else refused.push({ line, field: 'id', message: `vehicle "${result.value}" exists` });
        }
        if (allOrNothing && refused.length) throw rollback;
        await appendAudit(tx, audit);
      });
    } catch (err) {
      if (err !== rollback) throw err;
      return { applied: false, refused };
    }
    return { applied: true, refused };
  }

  async appendPositions(points: PositionRow[]) {
    if (points.length === 0) return;
    // One statement for the batch; a point already stored (same vehicle and time) is left as it is.
    await this.db.exec(
      `INSERT INTO vehicle_positions (vehicle_id, at, lat, lon, speed, heading)
        SELECT * FROM unnest($1::text[], $2::bigint[], $3::float8[], $4::float8[], $5::float8[], $6::float8[])
        ON CONFLICT (vehicle_id, at) DO NOTHING`,
      [points.map((p) => p.vehicleId), points.map((p) => p.at), points.map((p) => p.lat), points.map((p) => p.lon), points.map((p) => p.speed), points.map((p) => p.heading)],
    );
  }

  async track(vehicleId: string, from: number, to: number, limit: number): Promise<PositionRow[]> {
    const rows = await this.db.query<Row>(`SELECT * FROM vehicle_positions WHERE vehicle_id = $1 AND at >= $2 AND at <= $3 ORDER BY at LIMIT $4`, [vehicleId, from, to, limit]);
    return rows.map(toPosition);
  }

  async latestPositions(): Promise<PositionRow[]> {
    return (await this.db.query<Row>(`SELECT DISTINCT ON (vehicle_id) * FROM vehicle_positions ORDER BY vehicle_id, at DESC`)).map(toPosition);
  }

  async prunePositions(before: number): Promise<number> {
    // Each vehicle keeps its newest point however old, so a vehicle silent for long is still on the map after a restart.
    return this.db.exec(
      `DELETE FROM vehicle_positions p WHERE p.at < $1 AND p.at < (SELECT max(q.at) FROM vehicle_positions q WHERE q.vehicle_id = p.vehicle_id)`,
      [before],
    );
  }
}

/** An alarm with what alarm_snapshots holds of it (the picture's presence, not its bytes). */
const ALARM_WITH_EVIDENCE = `SELECT a.*, s.camera_id AS s_camera, s.taken_at AS s_at, s.width AS s_width, s.height AS s_height, s.error AS s_error,
  s.jpeg IS NOT NULL AS s_has FROM alarms a LEFT JOIN alarm_snapshots s ON s.alarm_id = a.id`;

export class PgAlarmRepo implements AlarmRepo {
  constructor(private readonly db: PgDb) {}

  async saveSnapshot(w: AlarmSnapshotWrite, bounds: { maxCount: number; maxBytes: number }): Promise<string[]> {
    return this.db.tx(async (tx) => {
      // One writer at a time, so the bounds hold across nodes: a prune sees every picture written before it.
      await tx.exec(`LOCK TABLE alarm_snapshots IN SHARE ROW EXCLUSIVE MODE`);
      await tx.exec(
        `INSERT INTO alarm_snapshots (alarm_id, camera_id, taken_at, width, height, bytes, error, jpeg) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
          ON CONFLICT (alarm_id) DO UPDATE SET camera_id = excluded.camera_id, taken_at = excluded.taken_at, width = excluded.width, height = excluded.height,
            bytes = excluded.bytes, error = excluded.error, jpeg = excluded.jpeg`,
        [w.alarmId, w.cameraId, w.takenAt, w.width, w.height, w.jpeg?.length ?? 0, w.error, w.jpeg],
      );
      // Newest first, the running count and byte total: whatever lies past either bound goes.
      const gone = await tx.query<{ alarm_id: string }>(
        `DELETE FROM alarm_snapshots WHERE alarm_id IN (
          SELECT alarm_id FROM (
            SELECT alarm_id, row_number() OVER newest AS n, sum(bytes) OVER newest AS total FROM alarm_snapshots
            WINDOW newest AS (ORDER BY taken_at DESC, alarm_id DESC)
          ) ranked WHERE n > $1 OR total > $2
        ) RETURNING alarm_id`,
        [bounds.maxCount, bounds.maxBytes],
      );
      return gone.map((r) => r.alarm_id);
    });
  }

  async snapshot(alarmId: string) {
    const r = await this.db.one<Row>(`SELECT camera_id, taken_at, width, height, jpeg FROM alarm_snapshots WHERE alarm_id = $1 AND jpeg IS NOT NULL`, [alarmId]);
    return r ? { cameraId: r.camera_id as string, takenAt: r.taken_at as number, width: r.width as number, height: r.height as number, jpeg: r.jpeg as Buffer } : null;
  }

  async save(row: AlarmRow, audit: AuditWrite | null): Promise<boolean> {
    const params = [row.id, row.vehicleId, row.deptPath, row.type, row.state, row.raisedAt, row.updatedAt, row.doc];
    // An update in place, not a delete and insert: the alarm's picture stays.
    const upsert = `INSERT INTO alarms (id, vehicle_id, dept_path, type, state, raised_at, updated_at, doc) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
      ON CONFLICT (id) DO UPDATE SET vehicle_id = excluded.vehicle_id, dept_path = excluded.dept_path, type = excluded.type, state = excluded.state,
        raised_at = excluded.raised_at, updated_at = excluded.updated_at, doc = excluded.doc
      WHERE ${ALARM_NOT_BEHIND}`;
    if (!audit) return (await this.db.exec(upsert, params)) > 0;
    return this.db.tx(async (tx) => {
      if (!(await tx.exec(upsert, params))) return false;
      await appendAudit(tx, audit);
      return true;
    });
  }

  async get(id: string) {
    const r = await this.db.one<Row>(`${ALARM_WITH_EVIDENCE} WHERE a.id = $1`, [id]);
    return r ? toAlarm(r) : null;
  }

  async open() {
    return (await this.db.query<Row>(`${ALARM_WITH_EVIDENCE} WHERE a.state <> 'closed' ORDER BY a.raised_at, a.id`)).map(toAlarm);
  }

  async list(q: AlarmQuery) {
    const params: unknown[] = [];
    // dept_path is the alarm's: alarm_snapshots has none.
    const where = [rangeFilter(q.ranges, params)];
    const add = (sql: (n: number) => string, value: unknown) => {
      params.push(value);
      where.push(sql(params.length));
    };
    if (q.states?.length) add((n) => `a.state = ANY($${n}::text[])`, q.states);
    if (q.vehicleId) add((n) => `a.vehicle_id = $${n}`, q.vehicleId);
    if (q.type) add((n) => `a.type = $${n}`, q.type);
    if (q.since !== undefined) add((n) => `a.raised_at >= $${n}`, q.since);
    if (q.before) {
      params.push(q.before.raisedAt, q.before.id);
      const [at, id] = [params.length - 1, params.length];
      where.push(`(a.raised_at < $${at} OR (a.raised_at = $${at} AND a.id < $${id}))`);
    }
    params.push(q.limit);
    const rows = await this.db.query<Row>(`${ALARM_WITH_EVIDENCE} WHERE ${where.join(' AND ')} ORDER BY a.raised_at DESC, a.id DESC LIMIT $${params.length}`, params);
    return rows.map(toAlarm);
  }
}

export class PgRuleRepo implements RuleRepo {
  constructor(private readonly db: PgDb) {}

  async all(kind: RuleRow['kind']): Promise<RuleRow[]> {
    return (await this.db.query<Row>(`SELECT * FROM vehicle_rules WHERE kind = $1 ORDER BY id`, [kind])).map(toRule);
  }

  async put(row: RuleRow, expectedVersion: number | null, audit: AuditWrite) {
    return this.db.tx(async (tx) => {
      if (expectedVersion === null) {
        const inserted = await tx.exec(
          `INSERT INTO vehicle_rules (kind, id, department_id, dept_path, version, doc) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (kind, id) DO NOTHING`,
          [row.kind, row.id, row.departmentId, row.deptPath, row.version, row.doc],
        );
        if (inserted === 0) throw new StoreConflict(`${row.kind} ${row.id} exists`);
      } else {
        const current = (await tx.one<{ version: number }>(`SELECT version FROM vehicle_rules WHERE kind = $1 AND id = $2 FOR UPDATE`, [row.kind, row.id]))?.version;
        if (current === undefined) return 'not-found' as const;
        if (current !== expectedVersion) return 'version-conflict' as const;
        await tx.exec(`UPDATE vehicle_rules SET department_id = $3, dept_path = $4, version = $5, doc = $6 WHERE kind = $1 AND id = $2`, [
          row.kind,
          row.id,
          row.departmentId,
          row.deptPath,
          row.version,
          row.doc,
        ]);
      }
      await appendAudit(tx, audit);
      return 'ok' as const;
    });
  }

  async delete(kind: RuleRow['kind'], id: string, audit: AuditWrite) {
    return this.db.tx(async (tx) => {
      const gone = (await tx.exec(`DELETE FROM vehicle_rules WHERE kind = $1 AND id = $2`, [kind, id])) > 0;
      if (gone) await appendAudit(tx, audit);
      return gone;
    });
  }
}

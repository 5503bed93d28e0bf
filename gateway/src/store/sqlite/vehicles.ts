import type Database from 'better-sqlite3';
import { ALARM_NOT_BEHIND } from '../alarm-order.js';
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

type DB = Database.Database;
type AuditWrite = Omit<AuditEntry, 'seq'>;
type AppendAudit = (e: AuditWrite) => void;

const code = (err: unknown) => (err as { code?: string }).code ?? '';

export class SqliteVehicles implements VehicleRepo {
  private readonly insertPosition;
  private readonly getVehicle;
  private readonly plateOwner;
  private readonly sourceOwner;
  private readonly simOwner;
  private readonly sourceExists;
  private readonly upsert;
  private readonly clearChannels;
  private readonly addChannel;

  constructor(
    private readonly db: DB,
    private readonly appendAudit: AppendAudit,
  ) {
    this.insertPosition = db.prepare(`INSERT OR IGNORE INTO vehicle_positions (vehicle_id, at, lat, lon, speed, heading) VALUES (?, ?, ?, ?, ?, ?)`);
    this.getVehicle = db.prepare(`SELECT version FROM vehicles WHERE id = ?`).pluck();
    this.plateOwner = db.prepare(`SELECT id FROM vehicles WHERE plate = ?`).pluck();
    // The expression of the vehicles_sim index (migration 9), so the lookup uses it.
    this.simOwner = db.prepare(`SELECT id FROM vehicles WHERE ltrim(json_extract(doc, '$.sim'), '0') = ? AND id != ? LIMIT 1`).pluck();
    this.sourceOwner = db.prepare(`SELECT vehicle_id FROM vehicle_channels WHERE source_id = ?`).pluck();
    this.sourceExists = db.prepare(`SELECT 1 FROM sources WHERE id = ?`).pluck();
    this.upsert = db.prepare(`INSERT INTO vehicles (id, plate, department_id, dept_path, version, doc) VALUES (@id, @plate, @departmentId, @deptPath, @version, @doc)
      ON CONFLICT (id) DO UPDATE SET plate = excluded.plate, department_id = excluded.department_id, dept_path = excluded.dept_path,
        version = excluded.version, doc = excluded.doc`);
    this.clearChannels = db.prepare(`DELETE FROM vehicle_channels WHERE vehicle_id = ?`);
    this.addChannel = db.prepare(`INSERT INTO vehicle_channels (source_id, vehicle_id) VALUES (?, ?)`);
  }

  async all(): Promise<VehicleRow[]> {
    const sources = sourcesByVehicle(this.db.prepare(`SELECT source_id, vehicle_id FROM vehicle_channels`).all() as Row[]);
    return (this.db.prepare(`SELECT * FROM vehicles ORDER BY plate`).all() as Row[]).map((r) => toVehicle(r, sources.get(r.id as string) ?? []));
  }

  /** One row's write inside a transaction; a collision is returned, not thrown. */
  private write(row: VehicleRow, expectedVersion: number | null): VehicleWriteResult {
    const current = this.getVehicle.get(row.id) as number | undefined;
    if (expectedVersion === null && current !== undefined) return { conflict: 'id', value: row.id };
    if (expectedVersion !== null && current === undefined) return 'not-found';
    if (expectedVersion !== null && current !== expectedVersion) return 'version-conflict';
    const plateHolder = this.plateOwner.get(row.plate) as string | undefined;
    if (plateHolder !== undefined && plateHolder !== row.id) return { conflict: 'plate', value: row.plate };
    if (row.sim && this.simOwner.get(row.sim, row.id) !== undefined) return { conflict: 'sim', value: row.sim };
    for (const sourceId of row.sourceIds) {
      const holder = this.sourceOwner.get(sourceId) as string | undefined;
      if ((holder !== undefined && holder !== row.id) || !this.sourceExists.get(sourceId)) return { conflict: 'source', value: sourceId };
    }
    this.upsert.run(row);
    this.clearChannels.run(row.id);
    for (const sourceId of row.sourceIds) this.addChannel.run(sourceId, row.id);
    return 'ok';
  }

  async put(row: VehicleRow, expectedVersion: number | null, audit: AuditWrite): Promise<VehicleWriteResult> {
    return this.db.transaction(() => {
      const result = this.write(row, expectedVersion);
      if (result === 'ok') this.appendAudit(audit);
      return result;
    })();
  }

  async delete(id: string, expectedVersion: number | undefined, audit: AuditWrite) {
    return this.db.transaction(() => {
      const current = this.getVehicle.get(id) as number | undefined;
      if (current === undefined) return 'not-found' as const;
      if (expectedVersion !== undefined && current !== expectedVersion) return 'version-conflict' as const;
      this.clearChannels.run(id);
      this.db.prepare(`DELETE FROM vehicle_positions WHERE vehicle_id = ?`).run(id);
      this.db.prepare(`DELETE FROM vehicles WHERE id = ?`).run(id);
      this.appendAudit(audit);
      return 'deleted' as const;
    })();
  }

  async importRows(rows: { line: number; row: VehicleRow; expectedVersion: number | null }[], allOrNothing: boolean, audit: AuditWrite) {
    const refused: { line: number; field: string; message: string }[] = [];
    const rollback = new Error('rollback');
    try {
      this.db.transaction(() => {
        for (const { line, row, expectedVersion } of rows) {
          const result = this.write(row, expectedVersion);
          if (result === 'ok') continue;
          if (result === 'not-found' || result === 'version-conflict') refused.push({ line, field: 'id', message: `vehicle "${row.id}" changed during the import` });
          else if (result.conflict === 'plate') refused.push({ line, field: 'plate', message: `${result.value} is registered to another vehicle` });
          else if (result.conflict === 'sim') refused.push({ line, field: 'sim', message: `SIM ${result.value} is another vehicle's` });
          else if (result.conflict === 'source') refused.push({ line, field: 'channels', message: `source "${result.value}" is missing or is another vehicle's channel` });
          else refused.push({ line, field: 'id', message: `vehicle "${result.value}" exists` });
        }
        if (allOrNothing && refused.length) throw rollback;
        this.appendAudit(audit);
      })();
    } catch (err) {
      if (err !== rollback) throw err;
      return { applied: false, refused };
    }
    return { applied: true, refused };
  }

  async appendPositions(points: PositionRow[]) {
    if (points.length === 0) return;
    this.db.transaction(() => {
      for (const p of points) this.insertPosition.run(p.vehicleId, p.at, p.lat, p.lon, p.speed, p.heading);
    })();
  }

  async track(vehicleId: string, from: number, to: number, limit: number): Promise<PositionRow[]> {
    return (
      this.db
        .prepare(`SELECT * FROM vehicle_positions WHERE vehicle_id = ? AND at >= ? AND at <= ? ORDER BY at LIMIT ?`)
        .all(vehicleId, from, to, limit) as Row[]
    ).map(toPosition);
  }

  async latestPositions(): Promise<PositionRow[]> {
    // SQLite takes the bare columns from the row holding max(at).
    return (this.db.prepare(`SELECT vehicle_id, max(at) AS at, lat, lon, speed, heading FROM vehicle_positions GROUP BY vehicle_id`).all() as Row[]).map(toPosition);
  }

  async prunePositions(before: number): Promise<number> {
    // Each vehicle keeps its newest point however old, so a vehicle silent for long is still on the map after a restart.
    return this.db
      .prepare(`DELETE FROM vehicle_positions WHERE at < ? AND at < (SELECT max(at) FROM vehicle_positions p WHERE p.vehicle_id = vehicle_positions.vehicle_id)`)
      .run(before).changes;
  }
}

/** An alarm with what alarm_snapshots holds of it, for the readers below. */
const ALARM_WITH_EVIDENCE = `SELECT alarms.*, s.camera_id AS s_camera, s.taken_at AS s_at, s.width AS s_width, s.height AS s_height, s.error AS s_error,
  s.jpeg IS NOT NULL AS s_has FROM alarms LEFT JOIN alarm_snapshots s ON s.alarm_id = alarms.id`;

export class SqliteAlarms implements AlarmRepo {
  private readonly upsert;
  private readonly putSnapshot;
  private readonly pruneSnapshots;
  constructor(
    private readonly db: DB,
    private readonly appendAudit: AppendAudit,
  ) {
    // Not INSERT OR REPLACE: its delete would cascade to the alarm's picture.
    this.upsert = db.prepare(`INSERT INTO alarms (id, vehicle_id, dept_path, type, state, raised_at, updated_at, doc)
      VALUES (@id, @vehicleId, @deptPath, @type, @state, @raisedAt, @updatedAt, @doc)
      ON CONFLICT (id) DO UPDATE SET vehicle_id = excluded.vehicle_id, dept_path = excluded.dept_path, type = excluded.type, state = excluded.state,
        raised_at = excluded.raised_at, updated_at = excluded.updated_at, doc = excluded.doc
      WHERE ${ALARM_NOT_BEHIND}`);
    this.putSnapshot = db.prepare(`INSERT OR REPLACE INTO alarm_snapshots (alarm_id, camera_id, taken_at, width, height, bytes, error, jpeg)
      VALUES (@alarmId, @cameraId, @takenAt, @width, @height, @bytes, @error, @jpeg)`);
    // Newest first, the running count and byte total: whatever lies past either bound goes.
    this.pruneSnapshots = db.prepare(`DELETE FROM alarm_snapshots WHERE alarm_id IN (
        SELECT alarm_id FROM (
          SELECT alarm_id, row_number() OVER newest AS n, sum(bytes) OVER newest AS total FROM alarm_snapshots
          WINDOW newest AS (ORDER BY taken_at DESC, alarm_id DESC)
        ) WHERE n > @maxCount OR total > @maxBytes
      ) RETURNING alarm_id`).pluck();
  }

  async saveSnapshot(w: AlarmSnapshotWrite, bounds: { maxCount: number; maxBytes: number }): Promise<string[]> {
    return this.db.transaction(() => {
      this.putSnapshot.run({ ...w, bytes: w.jpeg?.length ?? 0 });
      return this.pruneSnapshots.all(bounds) as string[];
    })();
  }

  async snapshot(alarmId: string) {
    const r = this.db.prepare(`SELECT camera_id, taken_at, width, height, jpeg FROM alarm_snapshots WHERE alarm_id = ? AND jpeg IS NOT NULL`).get(alarmId) as Row | undefined;
    return r ? { cameraId: r.camera_id as string, takenAt: r.taken_at as number, width: r.width as number, height: r.height as number, jpeg: r.jpeg as Buffer } : null;
  }

  async save(row: AlarmRow, audit: AuditWrite | null): Promise<boolean> {
    return this.db.transaction(() => {
      if (!this.upsert.run(row).changes) return false;
      if (audit) this.appendAudit(audit);
      return true;
    })();
  }

  async get(id: string) {
    const r = this.db.prepare(`${ALARM_WITH_EVIDENCE} WHERE alarms.id = ?`).get(id) as Row | undefined;
    return r ? toAlarm(r) : null;
  }

  async open() {
    return (this.db.prepare(`${ALARM_WITH_EVIDENCE} WHERE state != 'closed' ORDER BY raised_at, id`).all() as Row[]).map(toAlarm);
  }

  async list(q: AlarmQuery) {
    const where: string[] = [];
    const params: Record<string, unknown> = { limit: q.limit };
    const visible = q.ranges.map((_, i) => `(dept_path >= @from${i} AND dept_path < @to${i})`);
    q.ranges.forEach(([from, to], i) => Object.assign(params, { [`from${i}`]: from, [`to${i}`]: to }));
    where.push(visible.length ? `(${visible.join(' OR ')})` : '0');
    if (q.states?.length) {
      where.push(`state IN (${q.states.map((_, i) => `@state${i}`).join(', ')})`);
      q.states.forEach((s, i) => (params[`state${i}`] = s));
    }
    if (q.vehicleId) (where.push('vehicle_id = @vehicleId'), (params.vehicleId = q.vehicleId));
    if (q.type) (where.push('type = @type'), (params.type = q.type));
    if (q.since !== undefined) (where.push('raised_at >= @since'), (params.since = q.since));
    if (q.before) {
      where.push('(raised_at < @beforeAt OR (raised_at = @beforeAt AND id < @beforeId))');
      Object.assign(params, { beforeAt: q.before.raisedAt, beforeId: q.before.id });
    }
    return (this.db.prepare(`${ALARM_WITH_EVIDENCE} WHERE ${where.join(' AND ')} ORDER BY raised_at DESC, id DESC LIMIT @limit`).all(params) as Row[]).map(toAlarm);
  }
}

export class SqliteRules implements RuleRepo {
  constructor(
    private readonly db: DB,
    private readonly appendAudit: AppendAudit,
  ) {}

  async all(kind: RuleRow['kind']): Promise<RuleRow[]> {
    return (this.db.prepare(`SELECT * FROM vehicle_rules WHERE kind = ? ORDER BY id`).all(kind) as Row[]).map(toRule);
  }

  async put(row: RuleRow, expectedVersion: number | null, audit: AuditWrite) {
    return this.db.transaction(() => {
      if (expectedVersion === null) {
        try {
          this.db.prepare(`INSERT INTO vehicle_rules (kind, id, department_id, dept_path, version, doc) VALUES (@kind, @id, @departmentId, @deptPath, @version, @doc)`).run(row);
        } catch (err) {
          if (code(err).startsWith('SQLITE_CONSTRAINT_PRIMARYKEY')) throw new StoreConflict(`${row.kind} ${row.id} exists`);
          throw err;
        }
      } else {
        const current = this.db.prepare(`SELECT version FROM vehicle_rules WHERE kind = ? AND id = ?`).pluck().get(row.kind, row.id) as number | undefined;
        if (current === undefined) return 'not-found' as const;
        if (current !== expectedVersion) return 'version-conflict' as const;
        this.db.prepare(`UPDATE vehicle_rules SET department_id = @departmentId, dept_path = @deptPath, version = @version, doc = @doc WHERE kind = @kind AND id = @id`).run(row);
      }
      this.appendAudit(audit);
      return 'ok' as const;
    })();
  }

  async delete(kind: RuleRow['kind'], id: string, audit: AuditWrite) {
    return this.db.transaction(() => {
      const gone = this.db.prepare(`DELETE FROM vehicle_rules WHERE kind = ? AND id = ?`).run(kind, id).changes > 0;
      if (gone) this.appendAudit(audit);
      return gone;
    })();
  }
}

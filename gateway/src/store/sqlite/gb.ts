import type Database from 'better-sqlite3';
import { RefusalTable, rangeFilter } from './refusals.js';
import {
  StoreConflict,
  type AuditEntry,
  type GbAdmissionRule,
  type GbDeviceChanges,
  type GbDeviceInfo,
  type GbDeviceRecord,
  type GbPresence,
  type GbRefusal,
  type GbRepo,
  type RefusalScope,
  type PathRange,
} from '../types.js';
import { toGbDevice, toGbRefusal, toGbRule, type Row } from '../rows.js';

type DB = Database.Database;
type AuditWrite = Omit<AuditEntry, 'seq'>;
type AppendAudit = (e: AuditWrite) => void;

const isConstraint = (err: unknown) => ((err as { code?: string }).code ?? '').startsWith('SQLITE_CONSTRAINT');

/** The `(dept_path >= ? AND dept_path < ?) OR …` filter of a scope, with its parameters; an empty scope matches nothing. */
export class SqliteGb implements GbRepo {
  private readonly byId;
  private readonly insertDevice;
  private readonly presenceStmt;
  private readonly infoStmt;
  private readonly catalogStmt;
  private readonly refused;

  constructor(
    private readonly db: DB,
    private readonly appendAudit: AppendAudit,
  ) {
    this.byId = db.prepare(`SELECT * FROM gb_devices WHERE id = ?`);
    this.insertDevice = db.prepare(`INSERT INTO gb_devices (id, name, department_id, dept_path, sealed_password, stream_mode, origin, rule_id, enabled,
      online, transport, address, port, registered_at, expires_at, last_keepalive_at, manufacturer, model, firmware, channel_count, catalog_at, created_at, updated_at)
      VALUES (@id, @name, @departmentId, @deptPath, @sealedPassword, @streamMode, @origin, @ruleId, @enabled,
      @online, @transport, @address, @port, @registeredAt, @expiresAt, @lastKeepaliveAt, @manufacturer, @model, @firmware, @channelCount, @catalogAt, @createdAt, @updatedAt)`);
    this.presenceStmt = db.prepare(`UPDATE gb_devices SET online = @online, transport = @transport, address = @address, port = @port,
      registered_at = @registeredAt, expires_at = @expiresAt, last_keepalive_at = @lastKeepaliveAt, updated_at = @now WHERE id = @id`);
    this.infoStmt = db.prepare(`UPDATE gb_devices SET manufacturer = @manufacturer, model = @model, firmware = @firmware,
      name = CASE WHEN @name IS NOT NULL AND name = id THEN @name ELSE name END, updated_at = @now WHERE id = @id`);
    this.catalogStmt = db.prepare(`UPDATE gb_devices SET channel_count = ?, catalog_at = ? WHERE id = ?`);
    this.refused = new RefusalTable(
      db,
      'gb_refusals',
      'device_id',
      db.prepare(`INSERT INTO gb_refusals (device_id, address, reason, dept_path, first_at, last_at, count)
        VALUES (@deviceId, @address, @reason, @deptPath, @at, @at, 1)
        ON CONFLICT (device_id, address) DO UPDATE SET reason = excluded.reason, dept_path = excluded.dept_path, last_at = excluded.last_at, count = count + 1`),
    );
  }

  async getDevice(id: string) {
    const r = this.byId.get(id) as Row | undefined;
    return r ? toGbDevice(r) : null;
  }

  async listDevices(q: { ranges: PathRange[]; after?: { path: string; id: string }; limit: number }) {
    const params: Record<string, unknown> = { limit: q.limit };
    const where = [rangeFilter(q.ranges, params)];
    if (q.after) {
      where.push('(dept_path, id) > (@afterPath, @afterId)');
      Object.assign(params, { afterPath: q.after.path, afterId: q.after.id });
    }
    return (this.db.prepare(`SELECT * FROM gb_devices WHERE ${where.join(' AND ')} ORDER BY dept_path, id LIMIT @limit`).all(params) as Row[]).map(toGbDevice);
  }

  async createDevice(device: GbDeviceRecord, audit: AuditWrite) {
    this.db.transaction(() => {
      try {
        this.insertDevice.run({ ...device, enabled: device.enabled ? 1 : 0, online: device.online ? 1 : 0 });
      } catch (err) {
        if (isConstraint(err)) throw new StoreConflict(`GB device ${device.id} exists`);
        throw err;
      }
      // Admitted: its refused attempts are no longer a question for the admin.
      this.refused.forget(device.id);
      this.appendAudit(audit);
    })();
  }

  async updateDevice(id: string, changes: GbDeviceChanges, now: number, audit: AuditWrite) {
    return this.db.transaction(() => {
      const r = this.byId.get(id) as Row | undefined;
      if (!r) return null;
      const next = { ...toGbDevice(r), ...Object.fromEntries(Object.entries(changes).filter(([, v]) => v !== undefined)), updatedAt: now };
      this.db
        .prepare(`UPDATE gb_devices SET name = @name, department_id = @departmentId, dept_path = @deptPath, sealed_password = @sealedPassword,
          stream_mode = @streamMode, enabled = @enabled, updated_at = @updatedAt WHERE id = @id`)
        .run({ id, name: next.name, departmentId: next.departmentId, deptPath: next.deptPath, sealedPassword: next.sealedPassword, streamMode: next.streamMode, enabled: next.enabled ? 1 : 0, updatedAt: now });
      this.appendAudit(audit);
      return next;
    })();
  }

  async deleteDevice(id: string, audit: AuditWrite) {
    return this.db.transaction(() => {
      const gone = this.db.prepare(`DELETE FROM gb_devices WHERE id = ?`).run(id).changes > 0;
      if (gone) this.appendAudit(audit);
      return gone;
    })();
  }

  async setPresence(id: string, p: GbPresence, now: number) {
    return this.presenceStmt.run({ ...p, online: p.online ? 1 : 0, id, now }).changes > 0;
  }

  async setInfo(id: string, info: GbDeviceInfo & { name?: string }, now: number) {
    return this.infoStmt.run({ manufacturer: info.manufacturer, model: info.model, firmware: info.firmware, name: info.name ?? null, id, now }).changes > 0;
  }

  async setCatalog(id: string, channelCount: number, at: number) {
    return this.catalogStmt.run(channelCount, at, id).changes > 0;
  }

  async rules() {
    return (this.db.prepare(`SELECT * FROM gb_admission_rules ORDER BY prefix`).all() as Row[]).map(toGbRule);
  }

  async createRule(rule: GbAdmissionRule, audit: AuditWrite) {
    this.db.transaction(() => {
      try {
        this.db
          .prepare(`INSERT INTO gb_admission_rules (id, prefix, department_id, dept_path, sealed_password, stream_mode, created_at)
            VALUES (@id, @prefix, @departmentId, @deptPath, @sealedPassword, @streamMode, @createdAt)`)
          .run(rule);
      } catch (err) {
        if (isConstraint(err)) throw new StoreConflict(`an admission rule for prefix ${rule.prefix} exists`);
        throw err;
      }
      this.appendAudit(audit);
    })();
  }

  async deleteRule(id: string, audit: AuditWrite) {
    return this.db.transaction(() => {
      const gone = this.db.prepare(`DELETE FROM gb_admission_rules WHERE id = ?`).run(id).changes > 0;
      if (gone) this.appendAudit(audit);
      return gone;
    })();
  }

  async recordRefusal(r: { deviceId: string; address: string; reason: GbRefusal['reason']; deptPath: string | null; at: number }, maxRows: number) {
    this.refused.record(r.deviceId, r.address, r, maxRows);
  }

  async refusals(q: { ranges: PathRange[]; includeUnscoped: boolean; limit: number }) {
    return this.refused.list(q).map(toGbRefusal);
  }

  async deleteRefusals(deviceId: string, scope: RefusalScope, audit: AuditWrite | null) {
    return this.refused.delete(deviceId, scope, audit && (() => this.appendAudit(audit)));
  }
}

import { appendAudit } from './audit.js';
import type { PgDb } from './db.js';
import { PgRefusalTable, rangeFilter } from './refusals.js';
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
  type PathRange,
  type RefusalScope,
} from '../types.js';
import { toGbDevice, toGbRefusal, toGbRule, type Row } from '../rows.js';

type AuditWrite = Omit<AuditEntry, 'seq'>;

/** GB/T 28181 devices, admission rules and refused registrations on PostgreSQL (migration 2), as SqliteGb keeps them. */
export class PgGbRepo implements GbRepo {
  private readonly refused: PgRefusalTable;

  constructor(private readonly db: PgDb) {
    this.refused = new PgRefusalTable(
      db,
      'gb_refusals',
      'device_id',
      `INSERT INTO gb_refusals AS r (device_id, address, reason, dept_path, first_at, last_at, count) VALUES ($1, $2, $3, $4, $5, $5, 1)
        ON CONFLICT (device_id, address) DO UPDATE SET reason = excluded.reason, dept_path = excluded.dept_path, last_at = excluded.last_at, count = r.count + 1
        RETURNING (xmax = 0) AS inserted`,
    );
  }

  async getDevice(id: string) {
    const r = await this.db.one<Row>(`SELECT * FROM gb_devices WHERE id = $1`, [id]);
    return r ? toGbDevice(r) : null;
  }

  async listDevices(q: { ranges: PathRange[]; after?: { path: string; id: string }; limit: number }) {
    const params: unknown[] = [];
    const where = [rangeFilter(q.ranges, params)];
    if (q.after) {
      params.push(q.after.path, q.after.id);
      where.push(`(dept_path, id) > ($${params.length - 1}, $${params.length})`);
    }
    params.push(q.limit);
    return (await this.db.query<Row>(`SELECT * FROM gb_devices WHERE ${where.join(' AND ')} ORDER BY dept_path, id LIMIT $${params.length}`, params)).map(toGbDevice);
  }

  async createDevice(d: GbDeviceRecord, audit: AuditWrite) {
    await this.db.tx(async (tx) => {
      const inserted = await tx.exec(
        `INSERT INTO gb_devices (id, name, department_id, dept_path, sealed_password, stream_mode, origin, rule_id, enabled,
          online, transport, address, port, registered_at, expires_at, last_keepalive_at, manufacturer, model, firmware, channel_count, catalog_at, created_at, updated_at)
          VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23)
          ON CONFLICT (id) DO NOTHING`,
        [d.id, d.name, d.departmentId, d.deptPath, d.sealedPassword, d.streamMode, d.origin, d.ruleId, d.enabled,
          d.online, d.transport, d.address, d.port, d.registeredAt, d.expiresAt, d.lastKeepaliveAt, d.manufacturer, d.model, d.firmware, d.channelCount, d.catalogAt, d.createdAt, d.updatedAt],
      );
      if (inserted === 0) throw new StoreConflict(`GB device ${d.id} exists`);
      // Admitted: its refused attempts are no longer a question for the admin.
      await this.refused.forget(tx, d.id);
      await appendAudit(tx, audit);
    });
  }

  async updateDevice(id: string, changes: GbDeviceChanges, now: number, audit: AuditWrite) {
    return this.db.tx(async (tx) => {
      const r = await tx.one<Row>(`SELECT * FROM gb_devices WHERE id = $1 FOR UPDATE`, [id]);
      if (!r) return null;
      const next: GbDeviceRecord = { ...toGbDevice(r), ...Object.fromEntries(Object.entries(changes).filter(([, v]) => v !== undefined)), updatedAt: now };
      await tx.exec(
        `UPDATE gb_devices SET name = $2, department_id = $3, dept_path = $4, sealed_password = $5, stream_mode = $6, enabled = $7, updated_at = $8 WHERE id = $1`,
        [id, next.name, next.departmentId, next.deptPath, next.sealedPassword, next.streamMode, next.enabled, now],
      );
      await appendAudit(tx, audit);
      return next;
    });
  }

  async deleteDevice(id: string, audit: AuditWrite) {
    return this.db.tx(async (tx) => {
      const gone = (await tx.exec(`DELETE FROM gb_devices WHERE id = $1`, [id])) > 0;
      if (gone) await appendAudit(tx, audit);
      return gone;
    });
  }

  async setPresence(id: string, p: GbPresence, now: number) {
    const n = await this.db.exec(
      `UPDATE gb_devices SET online = $2, transport = $3, address = $4, port = $5, registered_at = $6, expires_at = $7, last_keepalive_at = $8, updated_at = $9 WHERE id = $1`,
      [id, p.online, p.transport, p.address, p.port, p.registeredAt, p.expiresAt, p.lastKeepaliveAt, now],
    );
    return n > 0;
  }

  async setInfo(id: string, info: GbDeviceInfo & { name?: string }, now: number) {
    const n = await this.db.exec(
      `UPDATE gb_devices SET manufacturer = $2, model = $3, firmware = $4,
        name = CASE WHEN $5::text IS NOT NULL AND name = id THEN $5::text ELSE name END, updated_at = $6 WHERE id = $1`,
      [id, info.manufacturer, info.model, info.firmware, info.name ?? null, now],
    );
    return n > 0;
  }

  async setCatalog(id: string, channelCount: number, at: number) {
    return (await this.db.exec(`UPDATE gb_devices SET channel_count = $2, catalog_at = $3 WHERE id = $1`, [id, channelCount, at])) > 0;
  }

  async rules() {
    return (await this.db.query<Row>(`SELECT * FROM gb_admission_rules ORDER BY prefix`)).map(toGbRule);
  }

  async createRule(rule: GbAdmissionRule, audit: AuditWrite) {
    await this.db.tx(async (tx) => {
      // No conflict target: a taken id and a taken prefix are both refused.
      const inserted = await tx.exec(
        `INSERT INTO gb_admission_rules (id, prefix, department_id, dept_path, sealed_password, stream_mode, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)
          ON CONFLICT DO NOTHING`,
        [rule.id, rule.prefix, rule.departmentId, rule.deptPath, rule.sealedPassword, rule.streamMode, rule.createdAt],
      );
      if (inserted === 0) throw new StoreConflict(`an admission rule for prefix ${rule.prefix} exists`);
      await appendAudit(tx, audit);
    });
  }

  async deleteRule(id: string, audit: AuditWrite) {
    return this.db.tx(async (tx) => {
      const gone = (await tx.exec(`DELETE FROM gb_admission_rules WHERE id = $1`, [id])) > 0;
      if (gone) await appendAudit(tx, audit);
      return gone;
    });
  }

  async recordRefusal(r: { deviceId: string; address: string; reason: GbRefusal['reason']; deptPath: string | null; at: number }, maxRows: number) {
    await this.refused.record([r.deviceId, r.address, r.reason, r.deptPath, r.at], maxRows);
  }

  async refusals(q: { ranges: PathRange[]; includeUnscoped: boolean; limit: number }) {
    return (await this.refused.list(q)).map(toGbRefusal);
  }

  async deleteRefusals(deviceId: string, scope: RefusalScope, audit: AuditWrite | null) {
    return this.refused.delete(deviceId, scope, audit && ((tx) => appendAudit(tx, audit)));
  }
}

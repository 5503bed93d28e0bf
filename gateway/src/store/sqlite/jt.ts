import type Database from 'better-sqlite3';
import type { AuditEntry, JtRefusal, JtRepo, JtTerminalRecord, RefusalScope } from '../types.js';
import { RefusalTable } from './refusals.js';
import { toJtRefusal, toJtTerminal, type Row } from '../rows.js';

type DB = Database.Database;
type AuditWrite = Omit<AuditEntry, 'seq'>;
type AppendAudit = (e: AuditWrite) => void;

/** JT/T 808 terminals (their auth codes) and refused terminals (migration 8). */
export class SqliteJt implements JtRepo {
  private readonly byId;
  private readonly all;
  private readonly upsert;
  private readonly seen;
  private readonly remove;
  private readonly refused;

  constructor(
    private readonly db: DB,
    private readonly appendAudit: AppendAudit,
  ) {
    this.byId = db.prepare(`SELECT * FROM jt_terminals WHERE sim = ?`);
    this.all = db.prepare(`SELECT * FROM jt_terminals ORDER BY sim`);
    this.upsert = db.prepare(`INSERT OR REPLACE INTO jt_terminals (sim, vehicle_id, auth_code, edition, phone, plate, plate_color, terminal_id, manufacturer, model, registered_at, seen_at, address)
      VALUES (@sim, @vehicleId, @authCode, @edition, @phone, @plate, @plateColor, @terminalId, @manufacturer, @model, @registeredAt, @seenAt, @address)`);
    this.seen = db.prepare(`UPDATE jt_terminals SET seen_at = @at, address = coalesce(@address, address), edition = coalesce(@edition, edition) WHERE sim = @sim`);
    this.remove = db.prepare(`DELETE FROM jt_terminals WHERE sim = ? AND vehicle_id = ?`);
    this.refused = new RefusalTable(
      db,
      'jt_refusals',
      'sim',
      db.prepare(`INSERT INTO jt_refusals (sim, address, reason, dept_path, plate, plate_color, terminal_id, manufacturer, model, first_at, last_at, count)
      VALUES (@sim, @address, @reason, @deptPath, @plate, @plateColor, @terminalId, @manufacturer, @model, @at, @at, 1)
      ON CONFLICT (sim, address) DO UPDATE SET reason = excluded.reason, dept_path = excluded.dept_path, last_at = excluded.last_at, count = count + 1,
        plate = CASE WHEN excluded.plate = '' THEN plate ELSE excluded.plate END, plate_color = CASE WHEN excluded.plate = '' THEN plate_color ELSE excluded.plate_color END,
        terminal_id = CASE WHEN excluded.terminal_id = '' THEN terminal_id ELSE excluded.terminal_id END,
        manufacturer = CASE WHEN excluded.manufacturer = '' THEN manufacturer ELSE excluded.manufacturer END, model = CASE WHEN excluded.model = '' THEN model ELSE excluded.model END`),
    );
  }

  async getTerminal(sim: string) {
    const r = this.byId.get(sim) as Row | undefined;
    return r ? toJtTerminal(r) : null;
  }

  async terminals() {
    return (this.all.all() as Row[]).map(toJtTerminal);
  }

  async putTerminal(t: JtTerminalRecord) {
    this.db.transaction(() => {
      this.upsert.run(t);
      // Registered: its refused attempts are no longer a question for the admin.
      this.refused.forget(t.sim);
    })();
  }

  async setSeen(sim: string, at: number, address: string | null, edition: JtTerminalRecord['edition'] | null) {
    return this.seen.run({ sim, at, address, edition }).changes > 0;
  }

  async deleteTerminal(sim: string, vehicleId: string, audit?: AuditWrite) {
    return this.db.transaction(() => {
      const gone = this.remove.run(sim, vehicleId).changes > 0;
      if (gone && audit) this.appendAudit(audit);
      return gone;
    })();
  }

  async recordRefusal(r: Omit<JtRefusal, 'firstAt' | 'lastAt' | 'count'> & { at: number }, maxRows: number) {
    this.refused.record(r.sim, r.address, r, maxRows);
  }

  async refusals(q: RefusalScope & { limit: number }) {
    return this.refused.list(q).map(toJtRefusal);
  }

  async deleteRefusals(sim: string, scope: RefusalScope, audit: AuditWrite | null) {
    return this.refused.delete(sim, scope, audit && (() => this.appendAudit(audit)));
  }
}

import { appendAudit } from './audit.js';
import type { PgDb } from './db.js';
import { PgRefusalTable } from './refusals.js';
import type { AuditEntry, JtRefusal, JtRepo, JtTerminalRecord, RefusalScope } from '../types.js';
import { toJtRefusal, toJtTerminal, type Row } from '../rows.js';

type AuditWrite = Omit<AuditEntry, 'seq'>;

/** JT/T 808 terminals (their auth codes) and refused terminals on PostgreSQL (migration 2), as SqliteJt keeps them. */
export class PgJtRepo implements JtRepo {
  private readonly refused: PgRefusalTable;

  constructor(private readonly db: PgDb) {
    this.refused = new PgRefusalTable(
      db,
      'jt_refusals',
      'sim',
      // An attempt that sent no plate (an authentication) keeps what the registration told.
      `INSERT INTO jt_refusals AS r (sim, address, reason, dept_path, plate, plate_color, terminal_id, manufacturer, model, first_at, last_at, count)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10, 1)
        ON CONFLICT (sim, address) DO UPDATE SET reason = excluded.reason, dept_path = excluded.dept_path, last_at = excluded.last_at, count = r.count + 1,
          plate = CASE WHEN excluded.plate = '' THEN r.plate ELSE excluded.plate END,
          plate_color = CASE WHEN excluded.plate = '' THEN r.plate_color ELSE excluded.plate_color END,
          terminal_id = CASE WHEN excluded.terminal_id = '' THEN r.terminal_id ELSE excluded.terminal_id END,
          manufacturer = CASE WHEN excluded.manufacturer = '' THEN r.manufacturer ELSE excluded.manufacturer END,
          model = CASE WHEN excluded.model = '' THEN r.model ELSE excluded.model END
        RETURNING (xmax = 0) AS inserted`,
    );
  }

  async getTerminal(sim: string) {
    const r = await this.db.one<Row>(`SELECT * FROM jt_terminals WHERE sim = $1`, [sim]);
    return r ? toJtTerminal(r) : null;
  }

  async terminals() {
    return (await this.db.query<Row>(`SELECT * FROM jt_terminals ORDER BY sim`)).map(toJtTerminal);
  }

  async putTerminal(t: JtTerminalRecord) {
    await this.db.tx(async (tx) => {
      await tx.exec(
        `INSERT INTO jt_terminals (sim, vehicle_id, auth_code, edition, phone, plate, plate_color, terminal_id, manufacturer, model, registered_at, seen_at, address)
          VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
          ON CONFLICT (sim) DO UPDATE SET vehicle_id = excluded.vehicle_id, auth_code = excluded.auth_code, edition = excluded.edition, phone = excluded.phone,
            plate = excluded.plate, plate_color = excluded.plate_color, terminal_id = excluded.terminal_id, manufacturer = excluded.manufacturer,
            model = excluded.model, registered_at = excluded.registered_at, seen_at = excluded.seen_at, address = excluded.address`,
        [t.sim, t.vehicleId, t.authCode, t.edition, t.phone, t.plate, t.plateColor, t.terminalId, t.manufacturer, t.model, t.registeredAt, t.seenAt, t.address],
      );
      // Registered: its refused attempts are no longer a question for the admin.
      await this.refused.forget(tx, t.sim);
    });
  }

  async setSeen(sim: string, at: number, address: string | null, edition: JtTerminalRecord['edition'] | null) {
    const n = await this.db.exec(
      `UPDATE jt_terminals SET seen_at = $2, address = coalesce($3::text, address), edition = coalesce($4::text, edition) WHERE sim = $1`,
      [sim, at, address, edition],
    );
    return n > 0;
  }

  async deleteTerminal(sim: string, vehicleId: string, audit?: AuditWrite) {
    return this.db.tx(async (tx) => {
      const gone = (await tx.exec(`DELETE FROM jt_terminals WHERE sim = $1 AND vehicle_id = $2`, [sim, vehicleId])) > 0;
      if (gone && audit) await appendAudit(tx, audit);
      return gone;
    });
  }

  async recordRefusal(r: Omit<JtRefusal, 'firstAt' | 'lastAt' | 'count'> & { at: number }, maxRows: number) {
    await this.refused.record([r.sim, r.address, r.reason, r.deptPath, r.plate, r.plateColor, r.terminalId, r.manufacturer, r.model, r.at], maxRows);
  }

  async refusals(q: RefusalScope & { limit: number }) {
    return (await this.refused.list(q)).map(toJtRefusal);
  }

  async deleteRefusals(sim: string, scope: RefusalScope, audit: AuditWrite | null) {
    return this.refused.delete(sim, scope, audit && ((tx) => appendAudit(tx, audit)));
  }
}

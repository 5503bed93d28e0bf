/** The append-only audit log on PostgreSQL (a trigger refuses UPDATE, DELETE and TRUNCATE: migration 1). */
import type { AuditEntry, AuditRepo, PathRange } from '../types.js';
import type { PgDb, PgQueries } from './db.js';
import { toAuditEntry } from '../rows.js';

/** Appends one entry; inside another repository's transaction when `q` is its PgTx, so the change and its record commit together. */
export async function appendAudit(q: Pick<PgQueries, 'exec'>, e: Omit<AuditEntry, 'seq'>): Promise<void> {
  await q.exec(
    `INSERT INTO audit (at, actor, actor_ip, action, target, outcome, detail, scope_path) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
    [e.at, e.actor, e.actorIp, e.action, e.target, e.outcome, JSON.stringify(e.detail), e.scopePath],
  );
}

export class PgAudit implements AuditRepo {
  constructor(private readonly db: PgDb) {}

  append(e: Omit<AuditEntry, 'seq'>) {
    return appendAudit(this.db, e);
  }

  async list(q: { before?: number; limit: number; actor?: string; action?: string; ranges: PathRange[]; includeSystem: boolean }) {
    const values: unknown[] = [];
    const add = (v: unknown) => (values.push(v), `$${values.length}`);
    const visible = q.ranges.map(([from, to]) => `(scope_path >= ${add(from)} AND scope_path < ${add(to)})`);
    if (q.includeSystem) visible.push('scope_path IS NULL');
    const where = [visible.length ? `(${visible.join(' OR ')})` : 'FALSE'];
    if (q.before !== undefined) where.push(`seq < ${add(q.before)}`);
    if (q.actor) where.push(`actor = ${add(q.actor)}`);
    if (q.action) where.push(`action = ${add(q.action)}`);
    const rows = await this.db.query<Record<string, unknown>>(
      `SELECT * FROM audit WHERE ${where.join(' AND ')} ORDER BY seq DESC LIMIT ${add(q.limit)}`,
      values,
    );
    return rows.map(toAuditEntry);
  }
}

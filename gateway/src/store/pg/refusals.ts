import type { PathRange, RefusalScope } from '../types.js';
import type { PgDb, PgTx } from './db.js';

type Row = Record<string, unknown>;

/**
 * The SQL condition for rows whose dept_path lies in one of the ranges (none: no row); its values
 * are appended to `params`, so the placeholders continue the caller's numbering.
 */
export function rangeFilter(ranges: readonly PathRange[], params: unknown[]): string {
  if (ranges.length === 0) return 'false';
  const parts = ranges.map(([from, to]) => {
    params.push(from, to);
    return `(dept_path >= $${params.length - 1} AND dept_path < $${params.length})`;
  });
  return `(${parts.join(' OR ')})`;
}

const scopeFilter = (scope: RefusalScope, params: unknown[]) => {
  const visible = rangeFilter(scope.ranges, params);
  return scope.includeUnscoped ? `(${visible} OR dept_path IS NULL)` : visible;
};

/**
 * A table of refused devices or terminals (gb_refusals, jt_refusals), as the SQLite store keeps it:
 * one row per (key, address), counted, carrying the department path it is shown under (null: only
 * to whole-system scopes), bounded to the least recently refused `maxRows`.
 */
export class PgRefusalTable {
  constructor(
    private readonly db: PgDb,
    private readonly table: string,
    /** The column naming the device or terminal (with address, the primary key). */
    private readonly key: string,
    /** INSERT ... ON CONFLICT (key, address) DO UPDATE ... RETURNING (xmax = 0) AS inserted: one attempt counted. */
    private readonly upsert: string,
  ) {}

  async record(params: unknown[], maxRows: number): Promise<void> {
    await this.db.tx(async (tx) => {
      // Nodes record refusals at once; one at a time keeps the count and the bound exact (SQLite has one writer).
      await tx.exec(`LOCK TABLE ${this.table} IN SHARE ROW EXCLUSIVE MODE`);
      const row = await tx.one<{ inserted: boolean }>(this.upsert, params);
      // Only a new row can take the table past its bound.
      if (!row?.inserted) return;
      const count = (await tx.one<{ n: number }>(`SELECT count(*)::int AS n FROM ${this.table}`))?.n ?? 0;
      const over = count - maxRows;
      if (over > 0) {
        await tx.exec(
          `DELETE FROM ${this.table} WHERE (${this.key}, address) IN (SELECT ${this.key}, address FROM ${this.table} ORDER BY last_at, ${this.key} LIMIT $1)`,
          [over],
        );
      }
    });
  }

  /** Most recent first, within the scope. */
  async list(q: RefusalScope & { limit: number }): Promise<Row[]> {
    const params: unknown[] = [];
    const where = scopeFilter(q, params);
    params.push(q.limit);
    return this.db.query(`SELECT * FROM ${this.table} WHERE ${where} ORDER BY last_at DESC, ${this.key} LIMIT $${params.length}`, params);
  }

  /** Every row of the key (it was admitted); inside the caller's transaction. */
  forget(tx: PgTx, key: string): Promise<number> {
    return tx.exec(`DELETE FROM ${this.table} WHERE ${this.key} = $1`, [key]);
  }

  /** An admin forgets the key's rows within `scope` (the ones the admin sees), with the audit entry when any went. */
  delete(key: string, scope: RefusalScope, audit: ((tx: PgTx) => Promise<void>) | null): Promise<number> {
    return this.db.tx(async (tx) => {
      const params: unknown[] = [key];
      const n = await tx.exec(`DELETE FROM ${this.table} WHERE ${this.key} = $1 AND ${scopeFilter(scope, params)}`, params);
      if (n && audit) await audit(tx);
      return n;
    });
  }
}

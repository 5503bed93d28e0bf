import type Database from 'better-sqlite3';
import type { PathRange, RefusalScope } from '../types.js';

type Row = Record<string, unknown>;

/** The SQL condition for rows whose dept_path lies in one of the ranges (none: no row), with its parameters added to `params`. */
export function rangeFilter(ranges: readonly PathRange[], params: Record<string, unknown>): string {
  ranges.forEach(([from, to], i) => Object.assign(params, { [`from${i}`]: from, [`to${i}`]: to }));
  return ranges.length ? `(${ranges.map((_, i) => `(dept_path >= @from${i} AND dept_path < @to${i})`).join(' OR ')})` : '0';
}

const scopeFilter = (scope: RefusalScope, params: Record<string, unknown>) => {
  const visible = rangeFilter(scope.ranges, params);
  return scope.includeUnscoped ? `(${visible} OR dept_path IS NULL)` : visible;
};

/**
 * A table of refused devices or terminals (GB/T 28181 gb_refusals, JT/T 808 jt_refusals): one row
 * per (key, address), counted, carrying the department path it is shown under (null: only to
 * whole-system scopes), bounded to the least recently refused `maxRows`.
 */
export class RefusalTable {
  private readonly count;
  private readonly prune;
  private readonly exists;
  private readonly ofKey;

  constructor(
    private readonly db: Database.Database,
    private readonly table: string,
    /** The column naming the device or terminal (with address, the primary key). */
    private readonly key: string,
    /** INSERT ... ON CONFLICT (key, address) DO UPDATE ...: one attempt counted, with its parameters. */
    private readonly upsert: Database.Statement,
  ) {
    this.count = db.prepare(`SELECT count(*) FROM ${table}`).pluck();
    this.prune = db.prepare(`DELETE FROM ${table} WHERE (${key}, address) IN (SELECT ${key}, address FROM ${table} ORDER BY last_at, ${key} LIMIT ?)`);
    this.exists = db.prepare(`SELECT 1 FROM ${table} WHERE ${key} = ? AND address = ?`).pluck();
    this.ofKey = db.prepare(`DELETE FROM ${table} WHERE ${key} = ?`);
  }

  record(key: string, address: string, params: Record<string, unknown>, maxRows: number) {
    this.db.transaction(() => {
      const known = this.exists.get(key, address) !== undefined;
      this.upsert.run(params);
      // Only a new row can take the table past its bound.
      if (known) return;
      const over = (this.count.get() as number) - maxRows;
      if (over > 0) this.prune.run(over);
    })();
  }

  /** Most recent first, within the scope. */
  list(q: RefusalScope & { limit: number }): Row[] {
    const params: Record<string, unknown> = { limit: q.limit };
    return this.db.prepare(`SELECT * FROM ${this.table} WHERE ${scopeFilter(q, params)} ORDER BY last_at DESC, ${this.key} LIMIT @limit`).all(params) as Row[];
  }

  /** Every row of the key (it was admitted); inside the caller's transaction. */
  forget(key: string): number {
    return this.ofKey.run(key).changes;
  }

  /** An admin forgets the key's rows; only those within `scope` when given (the ones the admin sees), with the audit entry when any went. */
  delete(key: string, scope: RefusalScope | null, audit: (() => void) | null): number {
    return this.db.transaction(() => {
      let n: number;
      if (scope) {
        const params: Record<string, unknown> = { key };
        n = this.db.prepare(`DELETE FROM ${this.table} WHERE ${this.key} = @key AND ${scopeFilter(scope, params)}`).run(params).changes;
      } else n = this.forget(key);
      if (n && audit) audit();
      return n;
    })();
  }
}

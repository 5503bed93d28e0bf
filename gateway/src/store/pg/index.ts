/**
 * The PostgreSQL store, for the cluster mode (store.engine postgres): the same contract as the
 * SQLite store, so several gateway nodes share one registry, one set of walls and one audit log.
 * Each repository lives in a file of its own and talks to the database only through PgDb.
 */
import { PgAudit } from './audit.js';
import { PgDb, type PgDbOptions } from './db.js';
import { PgDepartments } from './departments.js';
import { migratePg, pgSchemaVersion } from './migrations.js';
import { PgSources } from './sources.js';
import { PgSessions, PgUsers } from './users.js';
import { PgWalls } from './walls.js';
import type { AlarmRepo, GbRepo, JtRepo, RuleRepo, Store, VehicleRepo } from '../types.js';

export type PgStoreOptions = PgDbOptions;

/** A repository not yet ported to PostgreSQL: every call rejects, naming it. */
function notYet<T extends object>(name: string): T {
  return new Proxy({} as T, {
    get: (_t, prop) => (typeof prop === 'string' ? () => Promise.reject(new Error(`${name}.${prop}: not yet on PostgreSQL`)) : undefined),
  });
}

export class PgStore implements Store {
  readonly sources: PgSources;
  readonly departments: PgDepartments;
  readonly users: PgUsers;
  readonly sessions: PgSessions;
  readonly audit: PgAudit;
  readonly walls: PgWalls;
  readonly vehicles: VehicleRepo = notYet('vehicles');
  readonly alarms: AlarmRepo = notYet('alarms');
  readonly rules: RuleRepo = notYet('rules');
  readonly gb: GbRepo = notYet('gb');
  readonly jt: JtRepo = notYet('jt');
  private closed = false;

  private constructor(
    readonly db: PgDb,
    tables: Set<string>,
  ) {
    const hasTable = (name: string) => tables.has(name);
    this.sources = new PgSources(db, () => hasTable('vehicle_channels'));
    this.departments = new PgDepartments(db, hasTable);
    this.users = new PgUsers(db);
    this.sessions = new PgSessions(db);
    this.audit = new PgAudit(db);
    this.walls = new PgWalls(db);
  }

  /** Connects, migrates to the latest version (nodes starting at once wait for each other) and opens the store. */
  static async open(opts: PgStoreOptions): Promise<PgStore> {
    const db = await PgDb.open(opts);
    try {
      await migratePg(db);
      const tables = await db.query<{ name: string }>(`SELECT tablename AS name FROM pg_tables WHERE schemaname = current_schema()`);
      return new PgStore(db, new Set(tables.map((t) => t.name)));
    } catch (err) {
      await db.close().catch(() => undefined);
      throw err;
    }
  }

  schemaVersion() {
    return pgSchemaVersion(this.db);
  }

  async close() {
    if (this.closed) return;
    this.closed = true;
    await this.db.close();
  }
}

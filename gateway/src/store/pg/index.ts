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
import { PgGbRepo } from './gb.js';
import { PgJtRepo } from './jt.js';
import { PgAlarmRepo, PgRuleRepo, PgVehicleRepo } from './vehicles.js';
import type { Store } from '../types.js';

export type PgStoreOptions = PgDbOptions;

export class PgStore implements Store {
  readonly sources: PgSources;
  readonly departments: PgDepartments;
  readonly users: PgUsers;
  readonly sessions: PgSessions;
  readonly audit: PgAudit;
  readonly walls: PgWalls;
  readonly vehicles: PgVehicleRepo;
  readonly alarms: PgAlarmRepo;
  readonly rules: PgRuleRepo;
  readonly gb: PgGbRepo;
  readonly jt: PgJtRepo;
  private closed = false;

  private constructor(readonly db: PgDb) {
    this.sources = new PgSources(db);
    this.departments = new PgDepartments(db);
    this.users = new PgUsers(db);
    this.sessions = new PgSessions(db);
    this.audit = new PgAudit(db);
    this.walls = new PgWalls(db);
    this.vehicles = new PgVehicleRepo(db);
    this.alarms = new PgAlarmRepo(db);
    this.rules = new PgRuleRepo(db);
    this.gb = new PgGbRepo(db);
    this.jt = new PgJtRepo(db);
  }

  /** Connects, migrates to the latest version (nodes starting at once wait for each other) and opens the store. */
  static async open(opts: PgStoreOptions): Promise<PgStore> {
    const db = await PgDb.open(opts);
    try {
      await migratePg(db);
      return new PgStore(db);
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

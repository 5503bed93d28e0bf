import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { migrations } from './migrations.js';
import { matchExpression, normalise, searchDocument, searchKey } from './search-terms.js';
import { SqliteGb } from './gb.js';
import { SqliteJt } from './jt.js';
import { SqliteAlarms, SqliteRules, SqliteVehicles } from './vehicles.js';
import {
  StoreConflict,
  type AuditEntry,
  type AuditRepo,
  type DepartmentCounts,
  type DepartmentRecord,
  type DepartmentRepo,
  type HealthFailure,
  type ImportOutcome,
  type ImportRow,
  type PathRange,
  type SealedCredential,
  type SourceCursor,
  type SourcePage,
  type SourceQuery,
  type SourceRecord,
  type SourceRepo,
  type SourceWrite,
  type Store,
  type UpdateResult,
  type UserRecord,
  type UserRepo,
  type RevokedSession,
  type SessionRepo,
  type PresetRow,
  type TileRows,
  type WallRepo,
  type WallRow,
  subtreeEnd,
} from '../types.js';
import { healthColumns, importAction, keptCredential, packTags, sourceColumns, tilesByWall, toAuditEntry, toDepartment, toPreset, toSource, toUser, toWall, type CredentialRef, type Row } from '../rows.js';

type DB = Database.Database;

export function openDatabase(file: string): DB {
  if (file !== ':memory:') mkdirSync(dirname(file), { recursive: true });
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  // WAL + NORMAL is durable against process crashes; only a power cut can lose the last commits.
  db.pragma('synchronous = NORMAL');
  db.pragma('foreign_keys = ON');
  db.pragma('busy_timeout = 5000');
  // Reads through a memory map: on a VM a page-cache miss in SQLite's own cache costs a system call,
  // which was most of a deep cursor page. The map is file-backed and shared, not heap.
  db.pragma('mmap_size = 268435456');
  migrate(db);
  return db;
}

export function migrate(db: DB): number {
  const current = db.pragma('user_version', { simple: true }) as number;
  for (const m of migrations) {
    if (m.version <= current) continue;
    db.transaction(() => {
      db.exec(m.sql);
      db.pragma(`user_version = ${m.version}`);
    })();
  }
  return db.pragma('user_version', { simple: true }) as number;
}

/**
 * The columns of a source record, read as arrays (better-sqlite3 raw mode): building an object per
 * row costs as much as the query itself on a 100-row page.
 */
const SOURCE_COLUMNS = sourceColumns('s.rowid');
const SOURCE_FROM = `sources s`;



class SqliteSources implements SourceRepo {
  private readonly byId;
  private readonly forCompare;
  private readonly insertStmt;
  private readonly searchInsert;
  private readonly searchDelete;
  private readonly updateStmt;
  private readonly deleteStmt;
  private readonly credentialUpsert;
  private readonly credentialId;
  private readonly dropOrphanCredentials;
  private readonly healthStmt;
  private readonly fencedHealthStmt;
  private readonly listCache = new Map<string, Database.Statement>();

  constructor(private readonly db: DB) {
    this.byId = db.prepare(`SELECT ${SOURCE_COLUMNS} FROM ${SOURCE_FROM} WHERE s.id = ?`).raw(true);
    this.forCompare = db.prepare(
      `SELECT s.*, s.rowid AS seq, c.fingerprint FROM sources s LEFT JOIN credentials c ON c.id = s.credential_id WHERE s.id = ?`,
    );
    this.insertStmt = db.prepare(`INSERT INTO sources (id, name, department_id, dept_path, level, address, search_key, url, sub_url,
      protocol, credential_id, username, has_password, codec, lat, lon, tags, enabled, version, created_at, updated_at)
      VALUES (@id, @name, @departmentId, @deptPath, @level, @address, @searchKey, @url, @subUrl, @protocol, @credentialId, @username, @hasPassword, @codec,
      @lat, @lon, @tags, @enabled, 1, @now, @now)`);
    this.searchInsert = db.prepare(`INSERT INTO sources_search (rowid, doc) VALUES (?, ?)`);
    this.searchDelete = db.prepare(`DELETE FROM sources_search WHERE rowid = ?`);
    this.updateStmt = db.prepare(`UPDATE sources SET name = @name, department_id = @departmentId, dept_path = @deptPath,
      level = @level, address = @address, search_key = @searchKey, url = @url, sub_url = @subUrl, protocol = @protocol, credential_id = @credentialId,
      username = @username, has_password = @hasPassword,
      codec = @codec, lat = @lat, lon = @lon, tags = @tags, enabled = @enabled, version = version + 1, updated_at = @now
      WHERE id = @id`);
    this.deleteStmt = db.prepare(`DELETE FROM sources WHERE id = ?`);
    this.credentialUpsert = db.prepare(
      `INSERT INTO credentials (fingerprint, username, sealed_password) VALUES (?, ?, ?) ON CONFLICT(fingerprint) DO NOTHING`,
    );
    this.credentialId = db.prepare(`SELECT id FROM credentials WHERE fingerprint = ?`).pluck();
    this.dropOrphanCredentials = db.prepare(
      `DELETE FROM credentials WHERE NOT EXISTS (SELECT 1 FROM sources WHERE credential_id = credentials.id)`,
    );
    this.healthStmt = db.prepare(
      `UPDATE sources SET health = ?, health_error = ?, health_code = ?, health_params = ?, health_since = ? WHERE id = ?`,
    );
    this.fencedHealthStmt = db.prepare(
      `UPDATE sources SET health = ?, health_error = ?, health_code = ?, health_params = ?, health_since = ?, health_fence = @fence
       WHERE id = ? AND health_fence <= @fence`,
    );
  }

  private resolveCredential(change: SealedCredential | null, memo?: Map<string, CredentialRef>): CredentialRef {
    if (!change) return null;
    const key = change.fingerprint.toString('base64');
    const known = memo?.get(key);
    if (known !== undefined) return known;
    this.credentialUpsert.run(change.fingerprint, change.username, change.sealedPassword);
    const ref = { id: this.credentialId.get(change.fingerprint) as number, username: change.username, hasPassword: change.sealedPassword !== null };
    memo?.set(key, ref);
    return ref;
  }

  private params(write: SourceWrite, credential: CredentialRef, now: number) {
    return {
      id: write.id,
      name: write.name,
      departmentId: write.departmentId,
      deptPath: write.deptPath,
      level: write.level,
      address: write.address,
      searchKey: searchKey(write.id, write.name, write.address),
      url: write.url,
      subUrl: write.subUrl,
      protocol: write.protocol,
      credentialId: credential?.id ?? null,
      username: credential?.username ?? null,
      hasPassword: credential?.hasPassword ? 1 : 0,
      codec: write.codec,
      lat: write.lat,
      lon: write.lon,
      tags: packTags(write.tags),
      enabled: write.enabled ? 1 : 0,
      now,
    };
  }

  /** Inserts a row and its search document. */
  private insertRow(write: SourceWrite, credential: CredentialRef, now: number) {
    const params = this.params(write, credential, now);
    const { lastInsertRowid } = this.insertStmt.run(params);
    this.searchInsert.run(lastInsertRowid, searchDocument(params.searchKey, write.deptPath));
  }

  /** Updates a row; its search document is replaced only when what it is made of changed. */
  private updateRow(existing: Row, write: SourceWrite, credential: CredentialRef, now: number) {
    const params = this.params(write, credential, now);
    this.updateStmt.run(params);
    if (params.searchKey !== existing.search_key || write.deptPath !== existing.dept_path) {
      this.searchDelete.run(existing.seq);
      this.searchInsert.run(existing.seq, searchDocument(params.searchKey, write.deptPath));
    }
  }

  /** Rebuilds the search documents of every source under a path range (after a department move). */
  reindexRange(from: string, to: string) {
    const rows = this.db
      .prepare(`SELECT rowid AS seq, search_key, dept_path FROM sources WHERE dept_path >= ? AND dept_path < ?`)
      .all(from, to) as { seq: number; search_key: string; dept_path: string }[];
    for (const r of rows) {
      this.searchDelete.run(r.seq);
      this.searchInsert.run(r.seq, searchDocument(r.search_key, r.dept_path));
    }
  }

  async get(id: string) {
    const r = this.byId.get(id) as unknown[] | undefined;
    return r ? toSource(r) : null;
  }

  async create(write: SourceWrite, now: number) {
    return this.db.transaction(() => {
      if (this.byId.get(write.id)) throw new StoreConflict(`source ${write.id} exists`);
      const cred = write.credential === 'keep' ? null : this.resolveCredential(write.credential);
      this.insertRow(write, cred, now);
      return toSource(this.byId.get(write.id) as unknown[]);
    })();
  }

  async update(id: string, write: SourceWrite, expectedVersion: number, now: number): Promise<UpdateResult> {
    return this.db.transaction((): UpdateResult => {
      const existing = this.forCompare.get(id) as Row | undefined;
      if (!existing) return { status: 'not-found' };
      if (existing.version !== expectedVersion) return { status: 'version-conflict', current: toSource(this.byId.get(id) as unknown[]) };
      const cred = write.credential === 'keep' ? keptCredential(existing) : this.resolveCredential(write.credential);
      this.updateRow(existing, { ...write, id }, cred, now);
      if ((cred?.id ?? null) !== existing.credential_id) this.dropOrphanCredentials.run();
      return { status: 'updated', record: toSource(this.byId.get(id) as unknown[]) };
    })();
  }

  async delete(id: string, expectedVersion?: number) {
    return this.db.transaction(() => {
      const existing = this.forCompare.get(id) as Row | undefined;
      if (!existing) return 'not-found' as const;
      if (expectedVersion !== undefined && existing.version !== expectedVersion) return 'version-conflict' as const;
      const vehicle = this.db.prepare(`SELECT v.plate FROM vehicle_channels c JOIN vehicles v ON v.id = c.vehicle_id WHERE c.source_id = ?`).pluck().get(id) as string | undefined;
      if (vehicle !== undefined) return { inUse: vehicle };
      this.deleteStmt.run(id);
      this.searchDelete.run(existing.seq);
      if (existing.credential_id !== null) this.dropOrphanCredentials.run();
      return 'deleted' as const;
    })();
  }

  private cached(sql: string): Database.Statement {
    let stmt = this.listCache.get(sql);
    if (!stmt) this.listCache.set(sql, (stmt = this.db.prepare(sql).raw(true)));
    return stmt;
  }

  /** Filters other than department and text: checked on each candidate row. */
  private residual(q: SourceQuery, where: string[], params: Record<string, unknown>) {
    if (q.level) (where.push('s.level = @level'), (params.level = q.level));
    if (q.protocol) (where.push('s.protocol = @protocol'), (params.protocol = q.protocol));
    if (q.health) (where.push('s.health = @health'), (params.health = q.health));
    if (q.enabled !== undefined) (where.push('s.enabled = @enabled'), (params.enabled = q.enabled ? 1 : 0));
    if (q.tag) (where.push(`instr(s.tags, @tag) > 0`), (params.tag = `|${q.tag}|`));
    if (q.bbox) {
      where.push('s.lat BETWEEN @minLat AND @maxLat AND s.lon BETWEEN @minLon AND @maxLon');
      Object.assign(params, q.bbox);
    }
  }

  async list(q: SourceQuery): Promise<SourcePage> {
    const needle = q.text ? normalise(q.text) : '';
    const items = (needle ? this.search(q, needle) : this.browse(q)).map(toSource);
    const more = items.length > q.limit;
    if (more) items.length = q.limit;
    const last = items[items.length - 1];
    let next: SourceCursor | null = null;
    if (more && last) next = needle ? { seq: last.seq } : { path: last.deptPath, id: last.id };
    return { items, next };
  }

  /**
   * Without text: one statement per department range, each a seek on the (dept_path, id) index, so
   * a page costs its own rows whatever its depth. Statements are cached by shape.
   */
  private browse(q: SourceQuery): unknown[][] {
    const out: unknown[][] = [];
    const after = q.after && 'path' in q.after ? q.after : undefined;
    for (const [from, to] of q.ranges) {
      if (out.length > q.limit) break;
      if (after && after.path >= to) continue;
      const params: Record<string, unknown> = { to, limit: q.limit + 1 - out.length };
      // With a cursor inside this range, the cursor is the lower bound, so SQLite seeks straight to it.
      const where =
        after && after.path >= from
          ? ['(s.dept_path, s.id) > (@afterPath, @afterId)', 's.dept_path < @to']
          : ['s.dept_path >= @from', 's.dept_path < @to'];
      if (after && after.path >= from) Object.assign(params, { afterPath: after.path, afterId: after.id });
      else params.from = from;
      this.residual(q, where, params);
      const sql = `SELECT ${SOURCE_COLUMNS} FROM ${SOURCE_FROM} WHERE ${where.join(' AND ')} ORDER BY s.dept_path, s.id LIMIT @limit`;
      out.push(...(this.cached(sql).all(params) as unknown[][]));
    }
    return out;
  }

  /**
   * Text: the search index yields candidate rows in registration order, already limited to the
   * departments asked for; each is checked for the exact substring and the other filters, and the
   * walk stops once the page is full. A one-character needle has no index entry and scans instead.
   */
  private search(q: SourceQuery, needle: string): unknown[][] {
    if (!q.ranges.length) return [];
    const after = q.after && 'seq' in q.after ? q.after.seq : 0;
    const params: Record<string, unknown> = { after, needle, limit: q.limit + 1 };
    const inRanges = q.ranges.map((_, i) => `(s.dept_path >= @from${i} AND s.dept_path < @to${i})`);
    q.ranges.forEach(([from, to], i) => Object.assign(params, { [`from${i}`]: from, [`to${i}`]: to }));
    const where = [`(${inRanges.join(' OR ')})`, 'instr(s.search_key, @needle) > 0'];
    this.residual(q, where, params);
    let sql: string;
    if (needle.length >= 2) {
      const everything = q.ranges.length === 1 && q.ranges[0]![0].split('/').length === 3;
      params.match = matchExpression(needle, everything ? [] : q.ranges.map(([from]) => from));
      sql = `SELECT ${SOURCE_COLUMNS} FROM sources_search JOIN sources s ON s.rowid = sources_search.rowid
        WHERE sources_search MATCH @match AND sources_search.rowid > @after AND ${where.join(' AND ')}
        ORDER BY sources_search.rowid LIMIT @limit`;
    } else {
      sql = `SELECT ${SOURCE_COLUMNS} FROM ${SOURCE_FROM} WHERE s.rowid > @after AND ${where.join(' AND ')} ORDER BY s.rowid LIMIT @limit`;
    }
    return this.cached(sql).all(params) as unknown[][];
  }

  async importRows(rows: ImportRow[], writable: PathRange[], allOrNothing: boolean, now: number): Promise<ImportOutcome> {
    const outcome: ImportOutcome = { created: 0, updated: 0, unchanged: 0, refused: [], applied: false };
    const rollback = new Error('rollback');
    const memo = new Map<string, CredentialRef>();
    try {
      this.db.transaction(() => {
        for (const { line, write } of rows) {
          const existing = (this.forCompare.get(write.id) as Row | undefined) ?? null;
          const action = importAction(existing, write, writable);
          if (action === 'refuse') outcome.refused.push({ line, id: write.id });
          else if (action === 'keep') outcome.unchanged++;
          else if (action === 'create') {
            const cred = write.credential === 'keep' ? null : this.resolveCredential(write.credential, memo);
            this.insertRow(write, cred, now);
            outcome.created++;
          } else {
            const cred = write.credential === 'keep' ? keptCredential(existing!) : this.resolveCredential(write.credential, memo);
            this.updateRow(existing!, write, cred, now);
            outcome.updated++;
          }
        }
        if (allOrNothing && outcome.refused.length) throw rollback;
        this.dropOrphanCredentials.run();
      })();
      outcome.applied = true;
    } catch (err) {
      if (err !== rollback) throw err;
      outcome.created = outcome.updated = outcome.unchanged = 0;
    }
    return outcome;
  }

  async countsByDepartment() {
    const rows = this.db
      .prepare(`SELECT department_id, health, count(*) AS n FROM sources GROUP BY department_id, health`)
      .all() as { department_id: string; health: string; n: number }[];
    const counts = new Map<string, DepartmentCounts>();
    for (const r of rows) {
      let c = counts.get(r.department_id);
      if (!c) counts.set(r.department_id, (c = { total: 0, online: 0, offline: 0 }));
      c.total += r.n;
      if (r.health === 'online') c.online += r.n;
      if (r.health === 'offline') c.offline += r.n;
    }
    return counts;
  }

  /** With a fence, refused (false) when a write with a higher fence came first: see SourceRepo.setHealth. */
  private writeHealth(id: string, health: SourceRecord['health'], failure: HealthFailure | null, since: number, fence: number | undefined): boolean {
    const values = [health, ...healthColumns(failure), since] as const;
    if (fence === undefined) {
      this.healthStmt.run(...values, id);
      return true;
    }
    return this.fencedHealthStmt.run(...values, id, { fence }).changes > 0;
  }

  async setHealth(id: string, health: SourceRecord['health'], failure: HealthFailure | null, since: number, fence?: number) {
    return this.writeHealth(id, health, failure, since, fence);
  }

  async setHealthMany(changes: { id: string; health: SourceRecord['health']; failure: HealthFailure | null }[], since: number, fence?: number) {
    return this.db.transaction(() => changes.filter((c) => !this.writeHealth(c.id, c.health, c.failure, since, fence)).map((c) => c.id))();
  }

  async sealedCredential(id: string): Promise<SealedCredential | null> {
    const r = this.db
      .prepare(`SELECT c.fingerprint, c.username, c.sealed_password FROM sources s JOIN credentials c ON c.id = s.credential_id WHERE s.id = ?`)
      .get(id) as { fingerprint: Buffer; username: string; sealed_password: Buffer | null } | undefined;
    return r ? { fingerprint: r.fingerprint, username: r.username, sealedPassword: r.sealed_password } : null;
  }
}

class SqliteDepartments implements DepartmentRepo {
  constructor(
    private readonly db: DB,
    private readonly sources: SqliteSources,
  ) {}

  async all() {
    return (this.db.prepare(`SELECT * FROM departments ORDER BY path`).all() as Row[]).map(toDepartment);
  }

  async create(dep: Omit<DepartmentRecord, 'createdAt' | 'updatedAt'>, now: number) {
    try {
      this.db
        .prepare(`INSERT INTO departments (id, name, parent_id, level, path, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)`)
        .run(dep.id, dep.name, dep.parentId, dep.level, dep.path, now, now);
    } catch (err) {
      if ((err as { code?: string }).code?.startsWith('SQLITE_CONSTRAINT')) throw new StoreConflict(`department ${dep.id} exists`);
      throw err;
    }
    return { ...dep, createdAt: now, updatedAt: now };
  }

  async update(id: string, changes: { name?: string; parentId?: string | null; level?: DepartmentRecord['level']; path?: string }, now: number) {
    return this.db.transaction(() => {
      const current = this.db.prepare(`SELECT * FROM departments WHERE id = ?`).get(id) as Row | undefined;
      if (!current) throw new StoreConflict(`department ${id} does not exist`);
      const dep = toDepartment(current);
      if (changes.path && changes.path !== dep.path) {
        const [from, to] = [dep.path, subtreeEnd(dep.path)];
        const rewrite = (table: string, column: string) =>
          this.db
            .prepare(`UPDATE ${table} SET ${column} = @path || substr(${column}, @cut) WHERE ${column} >= @from AND ${column} < @to`)
            .run({ path: changes.path, cut: from.length + 1, from, to });
        rewrite('departments', 'path');
        rewrite('sources', 'dept_path');
        rewrite('walls', 'dept_path');
        rewrite('vehicles', 'dept_path');
        rewrite('alarms', 'dept_path');
        rewrite('vehicle_rules', 'dept_path');
        rewrite('gb_devices', 'dept_path');
        rewrite('gb_admission_rules', 'dept_path');
        rewrite('gb_refusals', 'dept_path');
        rewrite('jt_refusals', 'dept_path');
        this.sources.reindexRange(changes.path, subtreeEnd(changes.path));
      }
      const next = { ...dep, ...changes, updatedAt: now };
      this.db
        .prepare(`UPDATE departments SET name = ?, parent_id = ?, level = ?, updated_at = ? WHERE id = ?`)
        .run(next.name, next.parentId, next.level, now, id);
      return next;
    })();
  }

  async delete(id: string) {
    return this.db.transaction(() => {
      const busy =
        this.db.prepare(`SELECT 1 FROM departments WHERE parent_id = ? LIMIT 1`).get(id) ||
        this.db.prepare(`SELECT 1 FROM sources WHERE department_id = ? LIMIT 1`).get(id) ||
        this.db.prepare(`SELECT 1 FROM walls WHERE department_id = ? LIMIT 1`).get(id) ||
        this.db.prepare(`SELECT 1 FROM vehicles WHERE department_id = ? LIMIT 1`).get(id) ||
        this.db.prepare(`SELECT 1 FROM vehicle_rules WHERE department_id = ? LIMIT 1`).get(id) ||
        this.db.prepare(`SELECT 1 FROM gb_devices WHERE department_id = ? LIMIT 1`).get(id) ||
        this.db.prepare(`SELECT 1 FROM gb_admission_rules WHERE department_id = ? LIMIT 1`).get(id);
      if (busy) return false;
      return this.db.prepare(`DELETE FROM departments WHERE id = ?`).run(id).changes > 0;
    })();
  }
}

class SqliteUsers implements UserRepo {
  /** Every authenticated request reads its user, so this one is prepared once. */
  private readonly byIdStmt;
  constructor(private readonly db: DB) {
    this.byIdStmt = db.prepare(`SELECT * FROM users WHERE id = ?`);
  }

  private userParams(u: UserRecord) {
    return {
      ...u,
      roles: JSON.stringify(u.roles),
      scopes: JSON.stringify(u.scopes),
      disabled: u.disabled ? 1 : 0,
    };
  }

  async get(id: string) {
    const r = this.byIdStmt.get(id) as Row | undefined;
    return r ? toUser(r) : null;
  }
  async byUsername(username: string) {
    const r = this.db.prepare(`SELECT * FROM users WHERE username = ?`).get(username) as Row | undefined;
    return r ? toUser(r) : null;
  }
  async list() {
    return (this.db.prepare(`SELECT * FROM users ORDER BY username`).all() as Row[]).map(toUser);
  }
  async count() {
    return this.db.prepare(`SELECT count(*) FROM users`).pluck().get() as number;
  }
  async create(user: UserRecord) {
    try {
      this.db
        .prepare(`INSERT INTO users (id, username, display_name, password_hash, roles, scopes, disabled, token_version, tokens_revoked_at, created_at, updated_at)
          VALUES (@id, @username, @displayName, @passwordHash, @roles, @scopes, @disabled, @tokenVersion, @tokensRevokedAt, @createdAt, @updatedAt)`)
        .run(this.userParams(user));
    } catch (err) {
      if ((err as { code?: string }).code?.startsWith('SQLITE_CONSTRAINT')) throw new StoreConflict(`user ${user.username} exists`);
      throw err;
    }
    return user;
  }
  async update(user: UserRecord) {
    this.db
      .prepare(`UPDATE users SET display_name = @displayName, password_hash = @passwordHash, roles = @roles, scopes = @scopes,
        disabled = @disabled, token_version = @tokenVersion, updated_at = @updatedAt WHERE id = @id`)
      .run(this.userParams(user));
    return user;
  }
  async revokeTokens(id: string, issuedUpTo: number) {
    return this.db.prepare(`UPDATE users SET tokens_revoked_at = max(tokens_revoked_at, ?) WHERE id = ?`).run(issuedUpTo, id).changes > 0;
  }
}

class SqliteSessions implements SessionRepo {
  /** Every authenticated request asks, so this one is prepared once. */
  private readonly revokedStmt;
  private readonly insertStmt;
  private readonly pruneStmt;
  constructor(private readonly db: DB) {
    this.revokedStmt = db.prepare(`SELECT 1 FROM revoked_sessions WHERE session_id = ?`).pluck();
    this.insertStmt = db.prepare(`INSERT INTO revoked_sessions (session_id, user_id, expires_at) VALUES (@sessionId, @userId, @expiresAt)
      ON CONFLICT (session_id) DO UPDATE SET expires_at = max(expires_at, excluded.expires_at)`);
    this.pruneStmt = db.prepare(`DELETE FROM revoked_sessions WHERE expires_at <= ?`);
  }
  async revoke(session: RevokedSession, now: number) {
    this.db.transaction(() => {
      this.pruneStmt.run(now);
      this.insertStmt.run(session);
    })();
  }
  async isRevoked(sessionId: string) {
    return this.revokedStmt.get(sessionId) !== undefined;
  }
  async count() {
    return this.db.prepare(`SELECT count(*) FROM revoked_sessions`).pluck().get() as number;
  }
}

class SqliteAudit implements AuditRepo {
  private readonly insert;
  constructor(private readonly db: DB) {
    this.insert = db.prepare(
      `INSERT INTO audit (at, actor, actor_ip, action, target, outcome, detail, scope_path) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
    );
  }
  async append(e: Omit<AuditEntry, 'seq'>) {
    this.appendNow(e);
  }
  /** Inside another repository's transaction. */
  appendNow(e: Omit<AuditEntry, 'seq'>) {
    this.insert.run(e.at, e.actor, e.actorIp, e.action, e.target, e.outcome, JSON.stringify(e.detail), e.scopePath);
  }
  async list(q: { before?: number; limit: number; actor?: string; action?: string; ranges: PathRange[]; includeSystem: boolean }) {
    const where: string[] = [];
    const params: Record<string, unknown> = { limit: q.limit };
    const visible = q.ranges.map((_, i) => `(scope_path >= @from${i} AND scope_path < @to${i})`);
    q.ranges.forEach(([from, to], i) => Object.assign(params, { [`from${i}`]: from, [`to${i}`]: to }));
    if (q.includeSystem) visible.push('scope_path IS NULL');
    where.push(visible.length ? `(${visible.join(' OR ')})` : '0');
    if (q.before !== undefined) (where.push('seq < @before'), (params.before = q.before));
    if (q.actor) (where.push('actor = @actor'), (params.actor = q.actor));
    if (q.action) (where.push('action = @action'), (params.action = q.action));
    const rows = this.db
      .prepare(`SELECT * FROM audit ${where.length ? 'WHERE ' + where.join(' AND ') : ''} ORDER BY seq DESC LIMIT @limit`)
      .all(params) as Row[];
    return rows.map(toAuditEntry);
  }
}

class SqliteWalls implements WallRepo {
  private readonly saveWall;
  private readonly putTile;
  private readonly clearTiles;
  constructor(
    private readonly db: DB,
    private readonly audit: SqliteAudit,
  ) {
    this.saveWall = db.prepare(`UPDATE walls SET department_id = @departmentId, dept_path = @deptPath, version = @version, doc = @doc WHERE id = @id AND version = @version - 1`);
    this.putTile = db.prepare(`INSERT OR REPLACE INTO wall_tiles (wall_id, tile_id, doc) VALUES (?, ?, ?)`);
    this.clearTiles = db.prepare(`DELETE FROM wall_tiles WHERE wall_id = ?`);
  }

  async all() {
    const tiles = tilesByWall(this.db.prepare(`SELECT wall_id, tile_id, doc FROM wall_tiles`).all() as Row[]);
    return (this.db.prepare(`SELECT * FROM walls ORDER BY id`).all() as Row[]).map((r) => toWall(r, tiles.get(r.id as string) ?? new Map()));
  }

  async get(id: string) {
    const r = this.db.prepare(`SELECT * FROM walls WHERE id = ?`).get(id) as Row | undefined;
    if (!r) return null;
    const tiles: TileRows = new Map();
    for (const t of this.db.prepare(`SELECT tile_id, doc FROM wall_tiles WHERE wall_id = ?`).all(id) as Row[]) tiles.set(t.tile_id as string, t.doc as string);
    return toWall(r, tiles);
  }

  async create(row: WallRow, tiles: TileRows, audit: Omit<AuditEntry, 'seq'>) {
    this.db.transaction(() => {
      try {
        this.db.prepare(`INSERT INTO walls (id, department_id, dept_path, version, doc) VALUES (@id, @departmentId, @deptPath, @version, @doc)`).run(row);
      } catch (err) {
        if ((err as { code?: string }).code === 'SQLITE_CONSTRAINT_PRIMARYKEY') throw new StoreConflict(`wall ${row.id} exists`);
        throw err;
      }
      for (const [id, doc] of tiles) this.putTile.run(row.id, id, doc);
      this.audit.appendNow(audit);
    })();
  }

  async save(row: WallRow, tiles: { rows: TileRows; replace: boolean }, audit: Omit<AuditEntry, 'seq'> | null) {
    this.db.transaction(() => {
      if (this.saveWall.run(row).changes !== 1) {
        const stored = this.db.prepare(`SELECT version FROM walls WHERE id = ?`).pluck().get(row.id) as number | undefined;
        throw new StoreConflict(stored === undefined ? `wall ${row.id} does not exist` : `wall ${row.id} is at version ${stored}, not ${row.version - 1}`);
      }
      if (tiles.replace) this.clearTiles.run(row.id);
      for (const [id, doc] of tiles.rows) this.putTile.run(row.id, id, doc);
      if (audit) this.audit.appendNow(audit);
    })();
  }

  async delete(id: string, audit: Omit<AuditEntry, 'seq'>) {
    return this.db.transaction(() => {
      this.db.prepare(`DELETE FROM wall_presets WHERE wall_id = ?`).run(id);
      this.clearTiles.run(id);
      const gone = this.db.prepare(`DELETE FROM walls WHERE id = ?`).run(id).changes > 0;
      if (gone) this.audit.appendNow(audit);
      return gone;
    })();
  }

  async presets(): Promise<PresetRow[]> {
    return (this.db.prepare(`SELECT * FROM wall_presets ORDER BY created_at, id`).all() as Row[]).map(toPreset);
  }

  async createPreset(row: PresetRow, audit: Omit<AuditEntry, 'seq'>) {
    this.db.transaction(() => {
      try {
        this.db
          .prepare(`INSERT INTO wall_presets (id, wall_id, kind, name, priority, state, created_by, created_at)
            VALUES (@id, @wallId, @kind, @name, @priority, @state, @createdBy, @createdAt)`)
          .run(row);
      } catch (err) {
        if ((err as { code?: string }).code?.startsWith('SQLITE_CONSTRAINT_UNIQUE')) throw new StoreConflict(`the wall already has a ${row.kind} named "${row.name}"`);
        throw err;
      }
      this.audit.appendNow(audit);
    })();
  }

  async deletePreset(id: string, audit: Omit<AuditEntry, 'seq'>) {
    return this.db.transaction(() => {
      const gone = this.db.prepare(`DELETE FROM wall_presets WHERE id = ?`).run(id).changes > 0;
      if (gone) this.audit.appendNow(audit);
      return gone;
    })();
  }
}

export class SqliteStore implements Store {
  readonly sources: SqliteSources;
  readonly departments: SqliteDepartments;
  readonly users: SqliteUsers;
  readonly sessions: SqliteSessions;
  readonly audit: SqliteAudit;
  readonly walls: SqliteWalls;
  readonly vehicles: SqliteVehicles;
  readonly alarms: SqliteAlarms;
  readonly rules: SqliteRules;
  readonly gb: SqliteGb;
  readonly jt: SqliteJt;
  private closed = false;

  constructor(readonly db: DB) {
    this.sources = new SqliteSources(db);
    this.departments = new SqliteDepartments(db, this.sources);
    this.users = new SqliteUsers(db);
    this.sessions = new SqliteSessions(db);
    this.audit = new SqliteAudit(db);
    this.walls = new SqliteWalls(db, this.audit);
    const appendAudit = (e: Omit<AuditEntry, 'seq'>) => this.audit.appendNow(e);
    this.vehicles = new SqliteVehicles(db, appendAudit);
    this.alarms = new SqliteAlarms(db, appendAudit);
    this.rules = new SqliteRules(db, appendAudit);
    this.gb = new SqliteGb(db, appendAudit);
    this.jt = new SqliteJt(db, appendAudit);
  }

  static open(file: string): SqliteStore {
    return new SqliteStore(openDatabase(file));
  }

  async schemaVersion() {
    return this.db.pragma('user_version', { simple: true }) as number;
  }

  async close() {
    if (this.closed) return;
    this.closed = true;
    this.db.close();
  }
}

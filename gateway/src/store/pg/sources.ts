/**
 * Camera sources on PostgreSQL: the same statements as the SQLite store (sqlite/index.ts), row for
 * row. Text search keeps SQLite's exact-substring results on the same normalised search_key (see
 * search() for the indexes that find the candidates; strpos() makes every match exact).
 */
import { createHash } from 'node:crypto';
import { normalise, searchKey } from '../sqlite/search-terms.js';
import {
  StoreConflict,
  type DepartmentCounts,
  type Health,
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
  type UpdateResult,
} from '../types.js';
import type { PgDb, PgQueries } from './db.js';
import { healthColumns, importAction, keptCredential, packTags, sourceColumns, toSource, type CredentialRef, type Row } from '../rows.js';

/**
 * Held (for the transaction) by every writer that inserts sources: search pages by `seq > after`, and
 * a long import holding low seq values while a single add with a higher one commits first would let
 * a reader page past the import's rows before they are visible. Inserters only, so health writes and
 * updates do not wait for an import.
 */
const SOURCE_INSERT_LOCK = 0x77670001;

const SOURCE_COLUMNS = sourceColumns('s.seq');
/** pg keeps a row's fields in the order the statement selects them (SOURCE_COLUMNS). */
const sourceOf = (r: Row) => toSource(Object.values(r));


/** $n placeholders for a statement built from parts. */
class Params {
  readonly values: unknown[] = [];
  add(v: unknown): string {
    this.values.push(v);
    return `$${this.values.length}`;
  }
}

/**
 * The needle's distinct terms as source_terms holds them: its three-character ones when it has
 * three characters or more, else its one two-character term; terms of digits alone are not indexed.
 */
function termsOf(needle: string): string[] {
  const chars = [...needle];
  const width = chars.length >= 3 ? 3 : 2;
  const terms = new Set<string>();
  for (let i = 0; i + width <= chars.length; i++) {
    const term = chars.slice(i, i + width).join('');
    if (!/^[0-9]+$/.test(term)) terms.add(term);
  }
  return [...terms];
}

/**
 * A term walk: index scans in seq order and nested loops only (a bitmap or a sort would read every
 * match before the first row), no parallel workers, and the generic plan (the values do not change
 * its shape, and planning would cost more than the walk). No JIT: a plan that keeps a disabled
 * node (a sort it cannot do without) carries that node's huge cost, which would otherwise buy a
 * compilation of some 400 ms for a statement that runs in one.
 */
const WALK_SETTINGS = {
  jit: 'off',
  enable_bitmapscan: 'off',
  enable_sort: 'off',
  enable_hashjoin: 'off',
  enable_mergejoin: 'off',
  max_parallel_workers_per_gather: '0',
  plan_cache_mode: 'force_generic_plan',
};

/** source_digit_suffixes keeps each suffix to this many digits (pg migration 3). */
const DIGIT_SUFFIX_MAX = 16;
/**
 * A digit search is planned for its values, without JIT: the suffix function's declared cost (high,
 * so the planner does not compute it row by row) makes a needle that matches most rows look
 * expensive enough to compile, some 400 ms, for a statement that takes a few.
 */
const DIGIT_SETTINGS = { jit: 'off' };

/** The name a statement is kept prepared under on a walk connection: one per distinct text. */
const preparedName = (sql: string) => `wg_${createHash('sha1').update(sql).digest('hex').slice(0, 20)}`;

/** Rows an import reads, and inserts, per statement. */
const IMPORT_CHUNK = 500;
/** An import that wrote this many rows refreshes the planner's statistics at once. */
const ANALYZE_AFTER_ROWS = 1_000;

export class PgSources implements SourceRepo {
  private terms: { at: number; freq: Map<string, number> } | null = null;

  constructor(private readonly db: PgDb) {}

  private async byId(q: PgQueries, id: string): Promise<SourceRecord | null> {
    const r = await q.one<Row>(`SELECT ${SOURCE_COLUMNS} FROM sources s WHERE s.id = $1`, [id]);
    return r ? sourceOf(r) : null;
  }

  /** The row with its credential's fingerprint, locked until the transaction ends (the version check and the write are one step). */
  private forCompare(q: PgQueries, id: string): Promise<Row | null> {
    return q.one<Row>(
      `SELECT s.*, c.fingerprint FROM sources s LEFT JOIN credentials c ON c.id = s.credential_id WHERE s.id = $1 FOR UPDATE OF s`,
      [id],
    );
  }

  /**
   * The credential's row id (equal credentials share one row). DO UPDATE rather than DO NOTHING so
   * the row is locked: a concurrent orphan sweep cannot remove it before this transaction commits.
   */
  private async resolveCredential(q: PgQueries, change: SealedCredential | null, memo?: Map<string, CredentialRef>): Promise<CredentialRef> {
    if (!change) return null;
    const key = change.fingerprint.toString('base64');
    const known = memo?.get(key);
    if (known !== undefined) return known;
    const row = await q.one<{ id: number }>(
      `INSERT INTO credentials (fingerprint, username, sealed_password) VALUES ($1, $2, $3)
       ON CONFLICT (fingerprint) DO UPDATE SET fingerprint = EXCLUDED.fingerprint RETURNING id`,
      [change.fingerprint, change.username, change.sealedPassword],
    );
    const ref = { id: row!.id, username: change.username, hasPassword: change.sealedPassword !== null };
    memo?.set(key, ref);
    return ref;
  }

  /**
   * Removes credentials no source uses. A savepoint keeps a sweep that races a concurrent writer's
   * new reference (a foreign-key refusal) from failing the write it is part of: the row stays, and
   * the next sweep takes it.
   */
  private async dropOrphanCredentials(q: PgQueries) {
    await q.exec('SAVEPOINT orphan_sweep');
    try {
      await q.exec(`DELETE FROM credentials c WHERE NOT EXISTS (SELECT 1 FROM sources s WHERE s.credential_id = c.id)`);
      await q.exec('RELEASE SAVEPOINT orphan_sweep');
    } catch (err) {
      if ((err as { code?: string }).code !== '23503') throw err;
      await q.exec('ROLLBACK TO SAVEPOINT orphan_sweep');
    }
  }

  private values(write: SourceWrite, credential: CredentialRef, now: number): unknown[] {
    return [
      write.id,
      write.name,
      write.departmentId,
      write.deptPath,
      write.level,
      write.address,
      searchKey(write.id, write.name, write.address),
      write.url,
      write.subUrl,
      write.protocol,
      credential?.id ?? null,
      credential?.username ?? null,
      credential?.hasPassword ?? false,
      write.codec,
      write.lat,
      write.lon,
      packTags(write.tags),
      write.enabled,
      now,
    ];
  }

  private insertRow(q: PgQueries, write: SourceWrite, credential: CredentialRef, now: number) {
    return this.insertRows(q, [this.values(write, credential, now)]);
  }

  private async updateRow(q: PgQueries, write: SourceWrite, credential: CredentialRef, now: number) {
    await q.exec(
      `UPDATE sources SET name = $2, department_id = $3, dept_path = $4, level = $5, address = $6, search_key = $7, url = $8,
        sub_url = $9, protocol = $10, credential_id = $11, username = $12, has_password = $13, codec = $14, lat = $15, lon = $16,
        tags = $17, enabled = $18, version = version + 1, updated_at = $19
       WHERE id = $1`,
      this.values(write, credential, now),
    );
  }

  get(id: string) {
    return this.byId(this.db, id);
  }

  async create(write: SourceWrite, now: number) {
    try {
      return await this.db.tx(async (tx) => {
        await tx.exec('SELECT pg_advisory_xact_lock($1)', [SOURCE_INSERT_LOCK]);
        if (await tx.one(`SELECT 1 FROM sources WHERE id = $1`, [write.id])) throw new StoreConflict(`source ${write.id} exists`);
        const cred = write.credential === 'keep' ? null : await this.resolveCredential(tx, write.credential);
        await this.insertRow(tx, write, cred, now);
        return (await this.byId(tx, write.id))!;
      });
    } catch (err) {
      // Two creates of one id at once: the second's insert is the unique violation.
      if (err instanceof StoreConflict) throw new StoreConflict(`source ${write.id} exists`);
      throw err;
    }
  }

  async update(id: string, write: SourceWrite, expectedVersion: number, now: number): Promise<UpdateResult> {
    return this.db.tx(async (tx): Promise<UpdateResult> => {
      const existing = await this.forCompare(tx, id);
      if (!existing) return { status: 'not-found' };
      if (existing.version !== expectedVersion) return { status: 'version-conflict', current: (await this.byId(tx, id))! };
      const cred = write.credential === 'keep' ? keptCredential(existing) : await this.resolveCredential(tx, write.credential);
      await this.updateRow(tx, { ...write, id }, cred, now);
      if ((cred?.id ?? null) !== existing.credential_id) await this.dropOrphanCredentials(tx);
      return { status: 'updated', record: (await this.byId(tx, id))! };
    });
  }

  async delete(id: string, expectedVersion?: number) {
    return this.db.tx(async (tx) => {
      const existing = await this.forCompare(tx, id);
      if (!existing) return 'not-found' as const;
      if (expectedVersion !== undefined && existing.version !== expectedVersion) return 'version-conflict' as const;
      const vehicle = await tx.one<{ plate: string }>(`SELECT v.plate FROM vehicle_channels c JOIN vehicles v ON v.id = c.vehicle_id WHERE c.source_id = $1`, [id]);
      if (vehicle) return { inUse: vehicle.plate };
      await tx.exec(`DELETE FROM sources WHERE id = $1`, [id]);
      if (existing.credential_id !== null) await this.dropOrphanCredentials(tx);
      return 'deleted' as const;
    });
  }

  /** Filters other than department and text: checked on each candidate row. */
  private residual(q: SourceQuery, where: string[], p: Params) {
    if (q.level) where.push(`s.level = ${p.add(q.level)}`);
    if (q.protocol) where.push(`s.protocol = ${p.add(q.protocol)}`);
    if (q.health) where.push(`s.health = ${p.add(q.health)}`);
    if (q.enabled !== undefined) where.push(`s.enabled = ${p.add(q.enabled)}`);
    if (q.tag) where.push(`strpos(s.tags, ${p.add(`|${q.tag}|`)}) > 0`);
    if (q.bbox) {
      const { minLat, maxLat, minLon, maxLon } = q.bbox;
      where.push(`s.lat BETWEEN ${p.add(minLat)} AND ${p.add(maxLat)} AND s.lon BETWEEN ${p.add(minLon)} AND ${p.add(maxLon)}`);
    }
  }

  async list(q: SourceQuery): Promise<SourcePage> {
    const needle = q.text ? normalise(q.text) : '';
    const items = (needle ? await this.search(q, needle) : await this.browse(q)).map(sourceOf);
    const more = items.length > q.limit;
    if (more) items.length = q.limit;
    const last = items[items.length - 1];
    let next: SourceCursor | null = null;
    if (more && last) next = needle ? { seq: last.seq } : { path: last.deptPath, id: last.id };
    return { items, next };
  }

  /** Without text: one statement per department range, each a seek on the (dept_path, id) index. */
  private async browse(q: SourceQuery): Promise<Row[]> {
    const out: Row[] = [];
    const after = q.after && 'path' in q.after ? q.after : undefined;
    for (const [from, to] of q.ranges) {
      if (out.length > q.limit) break;
      if (after && after.path >= to) continue;
      const p = new Params();
      // With a cursor inside this range, the cursor is the lower bound, so the index seeks straight to it.
      const where =
        after && after.path >= from
          ? [`(s.dept_path, s.id) > (${p.add(after.path)}, ${p.add(after.id)})`, `s.dept_path < ${p.add(to)}`]
          : [`s.dept_path >= ${p.add(from)}`, `s.dept_path < ${p.add(to)}`];
      this.residual(q, where, p);
      const limit = p.add(q.limit + 1 - out.length);
      out.push(...(await this.db.query<Row>(`SELECT ${SOURCE_COLUMNS} FROM sources s WHERE ${where.join(' AND ')} ORDER BY s.dept_path, s.id LIMIT ${limit}`, p.values)));
    }
    return out;
  }

  /**
   * Text: rows whose search_key holds the needle, in registration order, within the departments
   * asked for, stopping once the page is full. Which index finds the candidates depends on the needle:
   * - it has terms (anything but digits alone; three-character terms for a needle of three or
   *   more, else its two-character one): walk the rarest term's posting list (source_terms) in seq
   *   order, keep the rows that also have the next rarest one or two, check the exact substring,
   *   stop at the page's end: the cost is the page, not the matches;
   * - digits only (an id), three or more: the GIN index of the suffixes of every run of digits
   *   (source_digit_suffixes) finds the rows with a suffix that begins with the needle, and only
   *   those; they are sorted by seq;
   * - one character, or two digits: no index narrows it; a walk in seq order, as SQLite does.
   * The planner cannot know that a walk stops early, so walks run with their plan fixed (WALK_SETTINGS).
   */
  private async search(q: SourceQuery, needle: string): Promise<Row[]> {
    if (!q.ranges.length) return [];
    const after = q.after && 'seq' in q.after ? q.after.seq : 0;
    const p = new Params();
    const n = p.add(needle);
    const where = [`(${q.ranges.map(([from, to]) => `(s.dept_path >= ${p.add(from)} AND s.dept_path < ${p.add(to)})`).join(' OR ')})`, `strpos(s.search_key, ${n}) > 0`];
    this.residual(q, where, p);
    const terms = termsOf(needle);
    if (terms.length) {
      const freq = await this.termFrequencies();
      const [driver, ...probes] = terms.sort((a, b) => (freq.get(a) ?? 0) - (freq.get(b) ?? 0)).slice(0, 3);
      const probeJoins = probes.map((term, i) => `CROSS JOIN LATERAL (SELECT 1 FROM source_terms x WHERE x.term = ${p.add(term)} AND x.seq = t.seq OFFSET 0) p${i}`);
      const sql = `SELECT ${SOURCE_COLUMNS}
        FROM (SELECT seq FROM source_terms WHERE term = ${p.add(driver)} AND seq > ${p.add(after)} ORDER BY seq OFFSET 0) t
        ${probeJoins.join('\n')}
        CROSS JOIN LATERAL (SELECT * FROM sources WHERE sources.seq = t.seq OFFSET 0) s
        WHERE ${where.join(' AND ')} ORDER BY t.seq LIMIT ${p.add(q.limit + 1)}`;
      return this.db.tuned('walk', WALK_SETTINGS).query<Row>(sql, p.values, preparedName(sql));
    }
    if (needle.length >= 3) {
      // Planned for these values: the planner then sees the index's few candidates and sorts them.
      const prefix = p.add(`${needle.slice(0, DIGIT_SUFFIX_MAX)}:*`);
      const sql = `SELECT ${SOURCE_COLUMNS} FROM sources s WHERE source_digit_suffixes(s.search_key) @@ ${prefix}::tsquery AND s.seq > ${p.add(after)}
        AND ${where.join(' AND ')} ORDER BY s.seq LIMIT ${p.add(q.limit + 1)}`;
      return this.db.tuned('digits', DIGIT_SETTINGS).query<Row>(sql, p.values);
    }
    return this.db.query<Row>(`SELECT ${SOURCE_COLUMNS} FROM sources s WHERE s.seq > ${p.add(after)} AND ${where.join(' AND ')} ORDER BY s.seq LIMIT ${p.add(q.limit + 1)}`, p.values);
  }

  /**
   * How common each term is (a fraction of rows), from the planner's statistics of source_terms:
   * the rarest term of a needle drives its walk. Read at most once a minute; terms not listed are rarer than any listed.
   */
  private async termFrequencies(): Promise<Map<string, number>> {
    const now = Date.now();
    if (this.terms && now - this.terms.at < 60_000) return this.terms.freq;
    const rows = await this.db.query<{ term: string; freq: number }>(
      `SELECT unnest(most_common_vals::text::text[]) AS term, unnest(most_common_freqs) AS freq
       FROM pg_stats WHERE schemaname = current_schema() AND tablename = 'source_terms' AND attname = 'term'`,
    );
    this.terms = { at: now, freq: new Map(rows.map((r) => [r.term, r.freq])) };
    return this.terms.freq;
  }

  /**
   * One transaction; rows are read 500 at a time (locked, with their credential's fingerprint) and
   * new ones inserted 500 to a statement, in file order so `seq` is their registration order: a
   * round trip per row made a 70,000-row import five times slower than the rows themselves.
   */
  async importRows(rows: ImportRow[], writable: PathRange[], allOrNothing: boolean, now: number): Promise<ImportOutcome> {
    const outcome: ImportOutcome = { created: 0, updated: 0, unchanged: 0, refused: [], applied: false };
    const rollback = new Error('rollback');
    const memo = new Map<string, CredentialRef>();
    try {
      await this.db.tx(async (tx) => {
        await tx.exec('SELECT pg_advisory_xact_lock($1)', [SOURCE_INSERT_LOCK]);
        const inserts: unknown[][] = [];
        for (let i = 0; i < rows.length; i += IMPORT_CHUNK) {
          const chunk = rows.slice(i, i + IMPORT_CHUNK);
          const stored = await tx.query<Row>(
            `SELECT s.*, c.fingerprint FROM sources s LEFT JOIN credentials c ON c.id = s.credential_id WHERE s.id = ANY($1::text[]) FOR UPDATE OF s`,
            [chunk.map((r) => r.write.id)],
          );
          const existingById = new Map(stored.map((r) => [r.id as string, r]));
          const seen = new Set<string>();
          for (const { line, write } of chunk) {
            let existing = existingById.get(write.id) ?? null;
            if (seen.has(write.id)) {
              // The same id again in this chunk: it sees what the earlier row wrote, as a row at a time would.
              await this.insertRows(tx, inserts);
              existing = await this.forCompare(tx, write.id);
            }
            seen.add(write.id);
            const action = importAction(existing, write, writable);
            if (action === 'refuse') outcome.refused.push({ line, id: write.id });
            else if (action === 'keep') outcome.unchanged++;
            else if (action === 'create') {
              const cred = write.credential === 'keep' ? null : await this.resolveCredential(tx, write.credential, memo);
              inserts.push(this.values(write, cred, now));
              outcome.created++;
            } else {
              const cred = write.credential === 'keep' ? keptCredential(existing!) : await this.resolveCredential(tx, write.credential, memo);
              await this.updateRow(tx, write, cred, now);
              outcome.updated++;
            }
          }
          await this.insertRows(tx, inserts);
        }
        if (allOrNothing && outcome.refused.length) throw rollback;
        await this.dropOrphanCredentials(tx);
      });
      outcome.applied = true;
    } catch (err) {
      if (err !== rollback) throw err;
      outcome.created = outcome.updated = outcome.unchanged = 0;
    }
    if (outcome.created + outcome.updated >= ANALYZE_AFTER_ROWS) await this.analyze();
    return outcome;
  }

  /** Inserts the pending rows (values() each) in one statement, in their order, and empties the list. */
  private async insertRows(q: PgQueries, pending: unknown[][]) {
    if (!pending.length) return;
    const width = pending[0]!.length;
    const tuples = pending.map((_, r) => {
      const at = (c: number) => `$${r * width + c}`;
      return `(${Array.from({ length: width - 1 }, (_, c) => at(c + 1)).join(', ')}, 1, ${at(width)}, ${at(width)})`;
    });
    await q.exec(
      `INSERT INTO sources (id, name, department_id, dept_path, level, address, search_key, url, sub_url, protocol, credential_id,
        username, has_password, codec, lat, lon, tags, enabled, version, created_at, updated_at) VALUES ${tuples.join(', ')}`,
      pending.flat(),
    );
    pending.length = 0;
  }

  /**
   * Fresh planner statistics after a large import, rather than when autovacuum next comes by: the
   * term frequencies that pick a search's walk come from them. The import is committed already, so a
   * failure here is not the import's.
   */
  private async analyze() {
    try {
      await this.db.exec('ANALYZE sources, source_terms');
      this.terms = null;
    } catch {
      // Autovacuum will analyse the tables in its own time.
    }
  }

  async countsByDepartment() {
    const rows = await this.db.query<{ department_id: string; health: string; n: number }>(
      `SELECT department_id, health, count(*)::int AS n FROM sources GROUP BY department_id, health`,
    );
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

  /**
   * With a fence (the camera lease's token), the write is refused when a write with a higher fence
   * came first: a node that lost the camera cannot overwrite what its new owner wrote.
   */
  private async writeHealth(q: PgQueries, id: string, health: Health, failure: HealthFailure | null, since: number, fence: number | undefined) {
    const values = [id, health, ...healthColumns(failure), since];
    if (fence === undefined) {
      await q.exec(`UPDATE sources SET health = $2, health_error = $3, health_code = $4, health_params = $5, health_since = $6 WHERE id = $1`, values);
      return true;
    }
    const written = await q.exec(
      `UPDATE sources SET health = $2, health_error = $3, health_code = $4, health_params = $5, health_since = $6, health_fence = $7
       WHERE id = $1 AND health_fence <= $7`,
      [...values, fence],
    );
    return written > 0;
  }

  setHealth(id: string, health: Health, failure: HealthFailure | null, since: number, fence?: number) {
    return this.writeHealth(this.db, id, health, failure, since, fence);
  }

  async setHealthMany(changes: { id: string; health: Health; failure: HealthFailure | null }[], since: number, fence?: number) {
    return this.db.tx(async (tx) => {
      const fencedOut: string[] = [];
      for (const c of changes) if (!(await this.writeHealth(tx, c.id, c.health, c.failure, since, fence))) fencedOut.push(c.id);
      return fencedOut;
    });
  }

  async sealedCredential(id: string): Promise<SealedCredential | null> {
    const r = await this.db.one<{ fingerprint: Buffer; username: string; sealed_password: Buffer | null }>(
      `SELECT c.fingerprint, c.username, c.sealed_password FROM sources s JOIN credentials c ON c.id = s.credential_id WHERE s.id = $1`,
      [id],
    );
    return r ? { fingerprint: r.fingerprint, username: r.username, sealedPassword: r.sealed_password } : null;
  }
}


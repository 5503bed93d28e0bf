/**
 * The one place that talks to PostgreSQL (the pg pool): every repository of the PostgreSQL store
 * goes through PgDb, so the mapping of the database's failures to the gateway's errors, the type
 * parsing and the pool's life are decided once.
 *
 * Failures: PostgreSQL down, unreachable, restarting or too slow (statement timeout) reject with
 * GW_ERR_UNAVAILABLE (reason `database`), naming the address and the error code but never the URL's
 * password; a unique violation rejects with StoreConflict; anything else (a bug in a statement) is
 * passed on as it is. The pool reconnects by itself: the next call after PostgreSQL is back succeeds.
 */
import pg from 'pg';
import { reasoned, type GatewayError } from '../../errors.js';
import { StoreConflict } from '../types.js';

export interface PgDbOptions {
  url: string;
  poolSize: number;
  connectTimeoutMs: number;
  statementTimeoutMs: number;
  log: { warn(o: object, m: string): void };
}

/** What a transaction may run: the same calls as PgDb, on the transaction's one connection. */
export interface PgQueries {
  /** `prepared`: a name to keep the statement prepared on its connection under (its plan cached: see plan_cache_mode). */
  query<T = Record<string, unknown>>(sql: string, params?: unknown[], prepared?: string): Promise<T[]>;
  one<T>(sql: string, params?: unknown[]): Promise<T | null>;
  exec(sql: string, params?: unknown[]): Promise<number>;
}
export type PgTx = PgQueries;

const INT8_OID = 20;
/**
 * BIGINT as a JS number: times in ms, seq and versions all stay far below 2^53. Per pool, not
 * pg's global parsers, so no other pg user in the process is affected.
 */
const types = {
  getTypeParser(oid: number, format?: 'text' | 'binary') {
    if (oid === INT8_OID && format !== 'binary') return (v: string) => Number(v);
    return pg.types.getTypeParser(oid, format as 'text');
  },
};

/** SQLSTATE classes and codes that mean "the database cannot serve now", not "this statement is wrong". */
function isUnavailableState(code: string): boolean {
  return (
    code.startsWith('08') || // connection exception
    code.startsWith('57P') || // admin shutdown, crash shutdown, cannot connect now, database dropped
    code === '53300' || // too many connections
    code === '57014' // query canceled: our statement_timeout
  );
}

const NODE_NET_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'EPIPE']);

/** Where the database is, for messages: host:port/database, never the user's password. */
export function describeUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.hostname}${u.port ? `:${u.port}` : ''}${u.pathname}`;
  } catch {
    return 'the configured database';
  }
}

/**
 * The URL with server settings added to its `options` parameter: pg lets a URL's own options (a
 * search_path, say) override a separate `options`, so both go into the URL.
 */
function withSettings(url: string, settings: Record<string, string>): string {
  const u = new URL(url);
  const ours = Object.entries(settings).map(([k, v]) => `-c ${k}=${v}`);
  u.searchParams.set('options', [u.searchParams.get('options'), ...ours].filter(Boolean).join(' '));
  return u.toString();
}

function newPool(opts: PgDbOptions, max: number, settings?: Record<string, string>): pg.Pool {
  return new pg.Pool({
    connectionString: settings ? withSettings(opts.url, settings) : opts.url,
    max,
    connectionTimeoutMillis: opts.connectTimeoutMs,
    statement_timeout: opts.statementTimeoutMs,
    // A server that vanished without closing the socket is noticed instead of hanging a query forever.
    keepAlive: true,
    types,
  });
}

export class PgDb implements PgQueries {
  private outage = false;
  private readonly tunedPools = new Map<string, PgQueries>();
  private readonly pools: pg.Pool[];

  private constructor(
    private readonly pool: pg.Pool,
    private readonly opts: PgDbOptions,
    private readonly where: string,
  ) {
    this.pools = [pool];
    this.watch(pool);
  }

  /** An idle client's socket failing (PostgreSQL restarted) is emitted on its pool; without a listener it would crash the process. */
  private watch(pool: pg.Pool) {
    pool.on('error', (err) => this.noteFailure(err));
  }

  /** Opens the pool and checks that the database answers (GW_ERR_UNAVAILABLE when it does not). */
  static async open(opts: PgDbOptions): Promise<PgDb> {
    const pool = newPool(opts, opts.poolSize);
    const db = new PgDb(pool, opts, describeUrl(opts.url));
    try {
      await db.query('SELECT 1');
    } catch (err) {
      await pool.end().catch(() => undefined);
      throw err;
    }
    return db;
  }

  async query<T = Record<string, unknown>>(sql: string, params?: unknown[], prepared?: string): Promise<T[]> {
    return (await this.run(this.pool, sql, params, prepared)).rows as T[];
  }

  async one<T>(sql: string, params?: unknown[]): Promise<T | null> {
    const rows = await this.query<T>(sql, params);
    return rows[0] ?? null;
  }

  async exec(sql: string, params?: unknown[]): Promise<number> {
    return (await this.run(this.pool, sql, params)).rowCount ?? 0;
  }

  /**
   * BEGIN … COMMIT on one connection; ROLLBACK when `work` throws (and the error is passed on).
   * REPEATABLE READ for reads that must see one snapshot across statements.
   */
  async tx<T>(work: (tx: PgTx) => Promise<T>, isolation?: 'REPEATABLE READ' | 'SERIALIZABLE'): Promise<T> {
    let client: pg.PoolClient;
    try {
      client = await this.pool.connect();
    } catch (err) {
      throw this.translate(err);
    }
    let broken: Error | undefined;
    const tx: PgTx = {
      query: async <R>(sql: string, params?: unknown[], prepared?: string) => (await this.run(client, sql, params, prepared)).rows as R[],
      one: async <R>(sql: string, params?: unknown[]) => ((await this.run(client, sql, params)).rows[0] as R | undefined) ?? null,
      exec: async (sql: string, params?: unknown[]) => (await this.run(client, sql, params)).rowCount ?? 0,
    };
    try {
      await this.run(client, isolation ? `BEGIN ISOLATION LEVEL ${isolation}` : 'BEGIN');
      const result = await work(tx);
      await this.run(client, 'COMMIT');
      return result;
    } catch (err) {
      try {
        await client.query('ROLLBACK');
      } catch (rollbackErr) {
        // The connection is gone or unusable: the pool must not hand it out again.
        broken = rollbackErr as Error;
      }
      throw err;
    } finally {
      client.release(broken);
    }
  }

  /**
   * Statements that need planner settings of their own (a walk the planner cannot know stops early)
   * run on a small pool whose connections start with them: one round trip per statement, where
   * SET LOCAL would need a transaction around each. `name` tells the pools apart.
   */
  tuned(name: string, settings: Record<string, string>, size = 2): PgQueries {
    let q = this.tunedPools.get(name);
    if (!q) {
      const pool = newPool(this.opts, size, settings);
      this.watch(pool);
      this.pools.push(pool);
      q = {
        query: async <R>(sql: string, params?: unknown[], prepared?: string) => (await this.run(pool, sql, params, prepared)).rows as R[],
        one: async <R>(sql: string, params?: unknown[]) => ((await this.run(pool, sql, params)).rows[0] as R | undefined) ?? null,
        exec: async (sql: string, params?: unknown[]) => (await this.run(pool, sql, params)).rowCount ?? 0,
      };
      this.tunedPools.set(name, q);
    }
    return q;
  }

  async close(): Promise<void> {
    await Promise.all(this.pools.map((p) => p.end()));
  }

  private async run(on: pg.Pool | pg.PoolClient, sql: string, params?: unknown[], prepared?: string): Promise<pg.QueryResult> {
    try {
      const result = prepared ? await on.query({ name: prepared, text: sql, values: params }) : await on.query(sql, params);
      this.outage = false;
      return result;
    } catch (err) {
      throw this.translate(err);
    }
  }

  /** The gateway's error for a pg failure; errors already translated pass through. */
  private translate(err: unknown): unknown {
    if (!(err instanceof Error) || err instanceof StoreConflict || err.name === 'GatewayError') return err;
    const code = (err as { code?: unknown }).code;
    if (code === '23505') return new StoreConflict((err as { detail?: string }).detail ?? err.message);
    const unavailable = this.unavailable(err, typeof code === 'string' ? code : undefined);
    return unavailable ?? err;
  }

  private unavailable(err: Error, code: string | undefined): GatewayError | null {
    let why: string | null = null;
    if (code === '57014') why = `a statement ran longer than ${this.opts.statementTimeoutMs} ms`;
    else if (code && /^[0-9A-Z]{5}$/.test(code) && isUnavailableState(code)) why = `PostgreSQL error ${code}`;
    else if (code && NODE_NET_CODES.has(code)) why = code;
    else if (!code && /connection|terminated|timeout|Client has encountered/i.test(err.message)) why = 'connection lost or timed out';
    if (!why) return null;
    this.noteFailure(err);
    return reasoned(
      'GW_ERR_UNAVAILABLE',
      'database',
      { address: this.where },
      `the database is unreachable: ${why} (${this.where})`,
    );
  }

  /** One warning per outage, not one per failed call; never the URL (pg's own messages do not carry the password). */
  private noteFailure(err: Error): void {
    if (this.outage) return;
    this.outage = true;
    const code = (err as { code?: unknown }).code;
    this.opts.log.warn({ database: this.where, code: typeof code === 'string' ? code : undefined, err: err.message }, 'the database is unreachable');
  }
}

/**
 * PostgreSQL and Redis for the cluster tests. `npm test` (scripts/test-run.ts) and `.ci/run` start a
 * throwaway server of each (scripts/cluster-services.sh) and name them in WALLGATE_TEST_PG_URL and
 * WALLGATE_TEST_REDIS_URL; without them the cluster tests are skipped, saying why, and nothing else is.
 */
import { randomBytes } from 'node:crypto';
import { execFile, execFileSync, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Test } from 'tap';
import { createDatabase } from '../../scripts/cluster-local.js';

export interface ClusterServices {
  /** A PostgreSQL URL of a maintenance database (postgres) as a superuser: tests make their own databases with it. */
  pgUrl: string;
  redisUrl: string;
}

export const SKIP_REASON =
  'cluster test skipped: no PostgreSQL and Redis for the tests (install Debian\'s postgresql and redis-server, or set WALLGATE_TEST_PG_URL and WALLGATE_TEST_REDIS_URL)';

export function clusterServices(): ClusterServices | null {
  const pgUrl = process.env.WALLGATE_TEST_PG_URL;
  const redisUrl = process.env.WALLGATE_TEST_REDIS_URL;
  return pgUrl && redisUrl ? { pgUrl, redisUrl } : null;
}

/** tap options that skip a cluster test, with the reason, when the services are missing. */
export function needsCluster(): { skip: string | false } {
  return { skip: clusterServices() ? false : SKIP_REASON };
}

function services(): ClusterServices {
  const s = clusterServices();
  if (!s) throw new Error(SKIP_REASON);
  return s;
}

/** A new, empty database for this test, dropped (its connections ended) at teardown. Returns its URL. */
export async function freshDatabase(t: Test): Promise<string> {
  const db = await createDatabase(services().pgUrl, `wg_test_${randomBytes(6).toString('hex')}`);
  t.teardown(db.drop);
  return db.url;
}

/** A Redis key prefix no other test uses, so tests can share the one Redis server. */
export function redisPrefix(): string {
  return `wgt${randomBytes(5).toString('hex')}:`;
}

export function sharedRedisUrl(): string {
  return services().redisUrl;
}

/** A free loopback TCP port (for a server that cannot be told to pick one itself, like redis-server). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

export interface OwnRedis {
  url: string;
  port: number;
  /** Stops the server (SIGKILL: what it had in memory is gone, as after a crash). */
  kill(): Promise<void>;
  /** Starts it again on the same port, empty. */
  restart(): Promise<void>;
}

/**
 * A Redis server of this test's own, for tests that stop or restart it; killed at teardown.
 * Persistence is off, so a restart comes back empty: the worst case the gateway must survive.
 */
export async function ownRedis(t: Test): Promise<OwnRedis> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'wallgate-redis-'));
  let child: ReturnType<typeof spawn> | null = null;
  const start = async () => {
    const c = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
    c.on('error', () => undefined);
    child = c;
    const deadline = Date.now() + 10_000;
    for (;;) {
      if (await pingRedis(port)) return;
      if (Date.now() > deadline) throw new Error(`redis-server on port ${port} did not answer within 10 s`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  const kill = async () => {
    const c = child;
    child = null;
    if (!c || c.exitCode !== null) return;
    const exited = new Promise((r) => c.once('exit', r));
    c.kill('SIGKILL');
    await exited;
  };
  await start();
  t.teardown(async () => {
    await kill();
    rmSync(dir, { recursive: true, force: true });
  });
  return { url: `redis://127.0.0.1:${port}`, port, kill, restart: start };
}

/** One PING over a raw socket: true on +PONG. */
async function pingRedis(port: number): Promise<boolean> {
  const { connect } = await import('node:net');
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.on('error', () => done(false));
    s.setTimeout(1_000, () => done(false));
    s.on('data', (d) => done(d.toString().startsWith('+PONG')));
    s.on('connect', () => s.write('PING\r\n'));
  });
}

export interface OwnPostgres {
  /** postgres://wallgate:<password>@127.0.0.1:<port>/postgres (trust authentication: the password is there to prove it never leaks). */
  url: string;
  port: number;
  /** Stops the server at once (immediate mode: connections are cut, as in a crash). */
  stop(): Promise<void>;
  /** Starts it again on the same port and data. */
  start(): Promise<void>;
}

function postgresBin(): string {
  const root = '/usr/lib/postgresql';
  const versions = readdirSync(root).filter((v) => existsSync(join(root, v, 'bin', 'initdb')));
  versions.sort((a, b) => Number(a) - Number(b));
  if (!versions.length) throw new Error(`no PostgreSQL server under ${root} (Debian: apt-get install postgresql)`);
  return join(root, versions[versions.length - 1]!, 'bin');
}

/**
 * A PostgreSQL server of this test's own, for tests that stop and start it (never the shared one):
 * initdb into a temporary directory and pg_ctl on a free port, as the postgres user when run as root
 * (PostgreSQL refuses root), like scripts/cluster-services.sh. Stopped and removed at teardown.
 */
export async function ownPostgres(t: Test, password = 'own-pg-password'): Promise<OwnPostgres> {
  const bin = postgresBin();
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'wallgate-pg-'));
  const data = join(dir, 'data');
  const asRoot = process.getuid?.() === 0;
  if (asRoot) execFileSync('chown', ['postgres', dir]);
  const run = (cmd: string, args: string[]) =>
    new Promise<void>((resolve, reject) => {
      const [file, argv] = asRoot ? ['runuser', ['-u', 'postgres', '--', join(bin, cmd), ...args]] : [join(bin, cmd), args];
      execFile(file, argv, { timeout: 60_000 }, (err, _stdout, stderr) => (err ? reject(new Error(`${cmd} failed: ${stderr || err.message}`)) : resolve()));
    });
  await run('initdb', ['-D', data, '-U', 'wallgate', '--auth=trust', '-E', 'UTF8', '--locale=C.UTF-8', '--no-sync']);
  const options = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off`;
  let running = false;
  const start = async () => {
    await run('pg_ctl', ['-D', data, '-l', join(dir, 'pg.log'), '-w', '-t', '60', '-o', options, 'start']);
    running = true;
  };
  const stop = async () => {
    if (!running) return;
    running = false;
    await run('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']);
  };
  await start();
  t.teardown(async () => {
    await stop().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  });
  return { url: `postgres://wallgate:${encodeURIComponent(password)}@127.0.0.1:${port}/postgres`, port, stop, start };
}

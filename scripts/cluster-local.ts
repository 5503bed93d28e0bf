/**
 * A wallgate cluster on this machine: PostgreSQL and Redis (throwaway ones from
 * scripts/cluster-services.sh, or the ones named by WALLGATE_STORE_POSTGRES_URL and
 * WALLGATE_CLUSTER_REDIS_URL), one secrets file all nodes share, and N gateway nodes on ports
 * 8081, 8082, … (node-1, node-2, …), each with its own data directory and its own SIP, JT/T 808,
 * JT/T 1078 and RTMP ports. Runs in the foreground; Ctrl-C stops the nodes (SIGTERM), then the
 * services it started.
 *
 *   node --import tsx scripts/cluster-local.ts [--nodes 3] [--dir /tmp/wallgate-cluster] [--port 8081]
 *
 * The benchmark (scripts/bench/cluster.ts) and the browser failover test build their nodes'
 * environments with clusterNodeEnv() below, so all three start nodes alike.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const ROOT = new URL('..', import.meta.url).pathname;

export interface ClusterNodeSpec {
  /** 1, 2, 3, …: the node's id is node-<index>. */
  index: number;
  dataDir: string;
  /** The one secrets file every node reads (makeSharedSecrets): a token signed by one node is good on all. */
  secretsFile: string;
  pgUrl: string;
  redisUrl: string;
  keyPrefix?: string;
  /** The HTTP port; 0 picks a free one (the node's id and advertised URL then name it). */
  port: number;
  host?: string;
  /**
   * Node n's SIP, JT/T 808, JT/T 1078 and RTMP ports are these plus 10 × (n − 1), and its GB/T 28181
   * RTP ports the n-th block of 1,000 from 30000; null: free loopback ports (tests, benches).
   */
  basePorts?: { sip: number; jt808: number; jt1078: number; rtmp: number } | null;
  /** More WALLGATE_* settings (short leases for tests, say). */
  extra?: Record<string, string>;
}

/** The environment of one node: cluster mode on PostgreSQL and Redis, with the shared secrets. */
export function clusterNodeEnv(s: ClusterNodeSpec): Record<string, string> {
  const host = s.host ?? '127.0.0.1';
  const offset = s.index - 1;
  const port = (base: number | undefined) => (base ? String(base + 10 * offset) : '0');
  const rtp: Record<string, string> = s.basePorts ? { WALLGATE_GB28181_MEDIA_PORT_MIN: String(30_000 + 1_000 * offset), WALLGATE_GB28181_MEDIA_PORT_MAX: String(30_999 + 1_000 * offset) } : {};
  return {
    WALLGATE_DATA_DIR: s.dataDir,
    WALLGATE_SECRETS_FILE: s.secretsFile,
    WALLGATE_STORE_ENGINE: 'postgres',
    WALLGATE_STORE_POSTGRES_URL: s.pgUrl,
    WALLGATE_CLUSTER_ENABLED: 'true',
    WALLGATE_CLUSTER_NODE_ID: `node-${s.index}`,
    WALLGATE_CLUSTER_REDIS_URL: s.redisUrl,
    ...(s.keyPrefix ? { WALLGATE_CLUSTER_KEY_PREFIX: s.keyPrefix } : {}),
    // With port 0 the node advertises http://127.0.0.1:<the port it got>; a fixed port is said outright.
    ...(s.port ? { WALLGATE_CLUSTER_ADVERTISE_URL: `http://${host}:${s.port}` } : {}),
    WALLGATE_SERVER_HOST: host,
    WALLGATE_SERVER_PORT: String(s.port),
    WALLGATE_STREAMS_FLV_RTMP_HOST: host,
    WALLGATE_STREAMS_FLV_RTMP_PORT: port(s.basePorts?.rtmp),
    WALLGATE_GB28181_HOST: host,
    WALLGATE_GB28181_PORT: port(s.basePorts?.sip),
    WALLGATE_JT808_HOST: host,
    WALLGATE_JT808_PORT: port(s.basePorts?.jt808),
    WALLGATE_JT1078_HOST: host,
    WALLGATE_JT1078_PORT: port(s.basePorts?.jt1078),
    ...rtp,
    ...s.extra,
  };
}

/** One secrets file (mode 0600) for every node: the token key and the camera credential key must be the same on all. */
export function makeSharedSecrets(file: string): string {
  if (!existsSync(file)) {
    writeFileSync(file, JSON.stringify({ tokenKey: randomBytes(32).toString('base64'), credentialKey: randomBytes(32).toString('base64') }, null, 2) + '\n', { mode: 0o600 });
    chmodSync(file, 0o600);
  }
  return file;
}

/**
 * Creates database `name` on the server `adminUrl` names (tests, benchmarks); returns its URL and a
 * drop that ends its connections first.
 */
export async function createDatabase(adminUrl: string, name: string): Promise<{ url: string; drop: () => Promise<void> }> {
  // Loaded when asked: the single-node commands of this script need no PostgreSQL client.
  const pg = (await import('pg')).default;
  const admin = async (sql: string) => {
    const client = new pg.Client({ connectionString: adminUrl });
    client.on('error', () => undefined);
    await client.connect();
    try {
      await client.query(sql);
    } finally {
      await client.end();
    }
  };
  await admin(`CREATE DATABASE ${name}`);
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return { url: url.toString(), drop: () => admin(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`) };
}

/** Throwaway PostgreSQL and Redis (scripts/cluster-services.sh) on the given ports; returns their URLs. */
export function startServices(dir: string, pgPort: number, redisPort: number): { pgUrl: string; redisUrl: string; stop(): void } {
  const env = { ...process.env, WALLGATE_TEST_PG_PORT: String(pgPort), WALLGATE_TEST_REDIS_PORT: String(redisPort) };
  // Run as root, PostgreSQL runs as the postgres user, which must be able to pass through the parent (mkdtemp makes it 0700).
  chmodSync(dirname(dir), 0o711);
  const out = execFileSync('bash', [join(ROOT, 'scripts/cluster-services.sh'), 'start', dir], { env, encoding: 'utf8' });
  const pgUrl = /WALLGATE_TEST_PG_URL=(\S+)/.exec(out)?.[1];
  const redisUrl = /WALLGATE_TEST_REDIS_URL=(\S+)/.exec(out)?.[1];
  if (!pgUrl || !redisUrl) throw new Error(`cluster-services.sh said: ${out}`);
  let stopped = false;
  return {
    pgUrl,
    redisUrl,
    stop() {
      if (stopped) return;
      stopped = true;
      execFileSync('bash', [join(ROOT, 'scripts/cluster-services.sh'), 'stop', dir], { env, stdio: 'ignore' });
    },
  };
}

/**
 * Runs a node with its environment, its output piped: from the sources through tsx, or the build
 * (dist/main.js, what a benchmark measures). WALLGATE_* variables of this process are not passed on:
 * they would change (or, if unknown, stop) the node.
 */
export function spawnNode(env: Record<string, string>, entry: 'src' | 'dist' = 'src'): ChildProcess {
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('WALLGATE_')));
  const args = entry === 'dist' ? [join(ROOT, 'dist/main.js')] : ['--import', 'tsx', join(ROOT, 'gateway/src/main.ts')];
  return spawn(process.execPath, args, { cwd: ROOT, env: { ...inherited, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Resolves with the node's base URL once it listens (its "listening" log line), rejects when it exits first. */
export function untilListening(child: ChildProcess, timeoutMs = 60_000): Promise<{ baseUrl: string; output: () => string }> {
  let seen = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the node did not listen within ${timeoutMs / 1000} s: ${seen.slice(-2_000)}`)), timeoutMs);
    const onData = (d: Buffer) => {
      seen = (seen + d.toString()).slice(-1_000_000);
      const m = /"address":"(http:\/\/[^"]+)"/.exec(seen);
      if (m) {
        clearTimeout(timer);
        resolve({ baseUrl: m[1]!, output: () => seen });
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`the node exited (${signal ?? code}) before it listened: ${seen.slice(-2_000)}`));
    });
  });
}

async function main() {
  const { values } = parseArgs({ options: { nodes: { type: 'string', default: '3' }, dir: { type: 'string', default: '/tmp/wallgate-cluster' }, port: { type: 'string', default: '8081' } } });
  const count = Number(values.nodes);
  const firstPort = Number(values.port);
  const dir = values.dir!;
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const say = (m: string) => process.stderr.write(`cluster-local: ${m}\n`);

  let services: ReturnType<typeof startServices> | null = null;
  let pgUrl = process.env.WALLGATE_STORE_POSTGRES_URL;
  let redisUrl = process.env.WALLGATE_CLUSTER_REDIS_URL;
  if (!pgUrl || !redisUrl) {
    say(`starting a throwaway PostgreSQL (port 55433) and Redis (port 56380) in ${dir}/services`);
    services = startServices(join(dir, 'services'), 55433, 56380);
    pgUrl ??= services.pgUrl;
    redisUrl ??= services.redisUrl;
  }
  const secretsFile = makeSharedSecrets(join(dir, 'secrets.json'));
  const nodes: ChildProcess[] = [];
  const stop = async () => {
    say('stopping the nodes');
    await Promise.all(nodes.map((n) => (n.exitCode === null && n.signalCode === null ? new Promise((r) => (n.once('exit', r), n.kill('SIGTERM'))) : null)));
    services?.stop();
    process.exit(0);
  };
  process.on('SIGINT', () => void stop());
  process.on('SIGTERM', () => void stop());

  for (let index = 1; index <= count; index++) {
    const dataDir = join(dir, `node-${index}`);
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    const env = clusterNodeEnv({
      index,
      dataDir,
      secretsFile,
      pgUrl,
      redisUrl,
      port: firstPort + index - 1,
      basePorts: { sip: 5060, jt808: 7611, jt1078: 7612, rtmp: 1935 },
    });
    const child = spawnNode(env);
    nodes.push(child);
    child.stdout!.pipe(process.stdout);
    child.stderr!.pipe(process.stderr);
    // The first node alone creates the tables and the admin account; the others start once it listens.
    if (index === 1) await untilListening(child);
  }
  await Promise.all(nodes.slice(1).map((n) => untilListening(n)));
  say(`${count} nodes listening: ${nodes.map((_, i) => `http://127.0.0.1:${firstPort + i}`).join(' ')} (Ctrl-C stops them)`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err: Error) => {
    process.stderr.write(`cluster-local: ${err.message}\n`);
    process.exit(1);
  });
}

/**
 * What every benchmark needs around its measurements: progress on stderr, temp dirs and child
 * processes that go whatever happens (success, error, Ctrl-C), and a guard against hanging forever.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { WebSocket } from 'ws';

export const ROOT_DIR = fileURLToPath(new URL('../..', import.meta.url));
/** USER_HZ: /proc counts CPU time in these ticks per second. */
export const CLK_TCK = 100;

export const log = (msg: string) => process.stderr.write(`bench: ${msg}\n`);
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const children = new Set<ChildProcess>();
const tempDirs: string[] = [];

/** Kills every tracked child still running and removes the temp dirs; safe to call again. */
export function cleanup() {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  children.clear();
  for (const d of tempDirs.splice(0)) rmSync(d, { recursive: true, force: true });
}

/** Killed at exit if still running. */
export function track<T extends ChildProcess>(child: T): T {
  children.add(child);
  return child;
}

export function tempDir(prefix: string) {
  const d = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.push(d);
  return d;
}

/** Installs the exit cleanup and a guard that gives up after guardMs; returns the guard to clear. */
export function installHarness(guardMs: number): NodeJS.Timeout {
  process.on('exit', cleanup);
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => process.exit(130));
  return setTimeout(() => {
    log(`gave up after ${guardMs / 60_000} minutes`);
    process.exit(1);
  }, guardMs);
}

/**
 * Every listener of a gateway child (HTTP, RTMP ingest, SIP, JT/T 808 and 1078) on a free loopback
 * port: a bench or a test never fights a running gateway, or another test, for 8080, 5060 or 7611.
 */
export const LOOPBACK_LISTENERS: Record<string, string> = {
  WALLGATE_SERVER_HOST: '127.0.0.1',
  WALLGATE_SERVER_PORT: '0',
  WALLGATE_STREAMS_FLV_RTMP_HOST: '127.0.0.1',
  WALLGATE_STREAMS_FLV_RTMP_PORT: '0',
  WALLGATE_GB28181_HOST: '127.0.0.1',
  WALLGATE_GB28181_PORT: '0',
  WALLGATE_JT808_HOST: '127.0.0.1',
  WALLGATE_JT808_PORT: '0',
  WALLGATE_JT1078_HOST: '127.0.0.1',
  WALLGATE_JT1078_PORT: '0',
};

/** The environment of a gateway under benchmark: a fresh data dir, loopback, one bench user opening every viewing. */
export function gatewayEnv(dataDir: string): Record<string, string> {
  return {
    ...LOOPBACK_LISTENERS,
    WALLGATE_DATA_DIR: dataDir,
    WALLGATE_LOG_LEVEL: 'info',
    WALLGATE_STREAMS_FLV_RTMP_ENABLED: 'false',
    WALLGATE_STREAMS_CLOSE_AFTER_MS: '2000',
    WALLGATE_STREAMS_LIMITS_VIEWERS_PER_USER: '1000',
  };
}

/** Stops the gateway gracefully, clears up, prints the result as the last stdout line and exits. */
export async function finish(result: object, gateway: ChildProcess, guard: NodeJS.Timeout): Promise<never> {
  gateway.kill('SIGTERM');
  await new Promise((r) => gateway.once('exit', r));
  clearTimeout(guard);
  cleanup();
  process.stdout.write(JSON.stringify(result) + '\n');
  process.exit(0);
}

/** Runs a benchmark's main; a failure goes to stderr and exits 1 (the exit handler still cleans up). */
export function runBench(main: () => Promise<void>) {
  main().catch((err) => {
    log((err as Error).stack ?? String(err));
    process.exit(1);
  });
}

// ---- measuring ------------------------------------------------------------------------------

/** Spawns a child and resolves with the first stdout/stderr text matching the pattern. */
export function spawnUntil(
  cmd: string,
  args: string[],
  env: Record<string, string>,
  pattern: RegExp,
): Promise<{ child: ChildProcess; match: RegExpExecArray; output: () => string }> {
  const child = track(spawn(cmd, args, { cwd: ROOT_DIR, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] }));
  let seen = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${args.join(' ')} did not start: ${seen.slice(-2000)}`)), 120_000);
    const onData = (d: Buffer) => {
      // Keeps the whole output for later looks (the gateway's "viewer left" lines), within reason.
      seen = (seen + d.toString()).slice(-4_000_000);
      const m = pattern.exec(seen);
      if (m) {
        clearTimeout(timer);
        resolve({ child, match: m, output: () => seen });
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.on('exit', (code) => reject(new Error(`${args.join(' ')} exited ${code}: ${seen.slice(-2000)}`)));
  });
}

/** Signs in as the admin whose password a gateway's first start printed (its output), for a bearer token. */
export async function adminToken(base: string, gatewayOutput: string): Promise<string> {
  const password = /with password (\S+)/.exec(gatewayOutput)?.[1];
  if (!password) throw new Error('the gateway printed no admin password');
  const login = await fetch(`${base}/api/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'admin', password }) });
  if (!login.ok) throw new Error(`admin sign-in: HTTP ${login.status}`);
  return ((await login.json()) as { token: string }).token;
}

/** utime + stime of a process in seconds, or null once it is gone. */
export function cpuSeconds(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
  } catch {
    return null;
  }
}

/** Resident memory of a process in MiB. */
export function rssMb(pid: number): number {
  try {
    const kb = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
    return kb ? Math.round(Number(kb) / 1024) : NaN;
  } catch {
    return NaN;
  }
}

/** Starts a CPU measurement of each process; the returned function gives CPU % (one core = 100) since. */
export function cpuMeter(pids: number[]): () => number[] {
  const before = pids.map(cpuSeconds);
  const t0 = performance.now();
  return () => {
    const elapsed = (performance.now() - t0) / 1000;
    return pids.map((pid, i) => {
      const a = before[i];
      const b = cpuSeconds(pid);
      return a === null || a === undefined || b === null ? NaN : ((b - a) / elapsed) * 100;
    });
  };
}

/** CPU % (one core = 100) of each process over a window of ms. */
export async function measureCpu(pids: number[], ms: number): Promise<number[]> {
  const meter = cpuMeter(pids);
  await sleep(ms);
  return meter();
}

export const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? (s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2) : NaN;
};
export const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] ?? NaN;
};
/** Rounded for the report; NaN (nothing measured) stays NaN and prints as null in JSON. */
export const round = (x: number, d = 1) => Math.round(x * 10 ** d) / 10 ** d;
export const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN);
export const summary = (xs: number[]) => ({ p50: round(median(xs)), p95: round(pct(xs, 95)), mean: round(mean(xs)), min: round(Math.min(...xs)), max: round(Math.max(...xs)), n: xs.length });

/** A WS-FLV viewer: resolves the time to its first video picture, keeps reading until closed. */
export function wsFlvViewer(url: string): { firstVideo: Promise<number>; bytes: () => number; stopReading: () => void; close: () => void } {
  const t0 = performance.now();
  const ws = new WebSocket(url);
  let bytes = 0;
  let head = Buffer.alloc(0);
  let found = false;
  const firstVideo = new Promise<number>((resolve, reject) => {
    ws.on('message', (data: Buffer) => {
      bytes += data.length;
      if (found) return;
      head = Buffer.concat([head, data]);
      let at = 13;
      while (head.length >= at + 13) {
        const size = head.readUIntBE(at + 1, 3);
        if (head[at] === 9 && head[at + 12] === 1) {
          found = true;
          head = Buffer.alloc(0);
          return resolve(performance.now() - t0);
        }
        at += 15 + size;
      }
    });
    ws.on('error', reject);
    ws.on('unexpected-response', (_req, res) => reject(new Error(`ws ${res.statusCode}`)));
    // The gateway closes the socket when the camera cannot start (or its node goes): no picture is coming.
    ws.on('close', (code) => reject(new Error(`ws closed (${code}) before video`)));
  });
  // stopReading: a viewer that stops reading its socket (it reads no close frame either).
  return { firstVideo, bytes: () => bytes, stopReading: () => ws.pause(), close: () => ws.terminate() };
}

/** One REST call to the gateway under test, as the signed-in admin; anything but a 2xx throws with the body. */
export async function gatewayApi(gw: { base: string; token: string }, method: string, path: string, body?: unknown) {
  const res = await fetch(gw.base + path, {
    method,
    headers: { authorization: `Bearer ${gw.token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    ...(body ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

/** The machine a figure was measured on, for a result's conditions. */
export function machineConditions() {
  return { node: process.version, cpu: cpus()[0]?.model, cores: cpus().length, load_avg_1m: round(loadavg()[0]!, 2) };
}

/** Whether this module is the one node was started with (not imported by another bench). */
export function isMain(moduleUrl: string): boolean {
  return !!process.argv[1] && moduleUrl === pathToFileURL(process.argv[1]).href;
}

/**
 * Runs a measurement when its file is run alone rather than imported by a larger bench: its JSON
 * object last on stdout, or the failure on stderr and exit code 1.
 */
export function runIfMain(moduleUrl: string, measure: () => Promise<object>): void {
  if (!isMain(moduleUrl)) return;
  measure().then(
    (result) => process.stdout.write(JSON.stringify(result) + '\n'),
    (err: Error) => {
      process.stderr.write(`bench: ${err.stack ?? String(err)}\n`);
      process.exit(1);
    },
  );
}

import { spawn, type ChildProcess } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import Database from 'better-sqlite3';
import type { Test } from 'tap';
import { instanceIdFor } from '../../gateway/src/streams/manager.js';
import { markedProcesses } from '../../gateway/src/streams/process/sweep.js';
import { LOOPBACK_LISTENERS } from '../../scripts/bench/harness.js';
import { CameraSimulator } from '../../scripts/sim/rtsp-server.js';

const root = new URL('../../', import.meta.url).pathname;

export interface GatewayProcess {
  child: ChildProcess;
  baseUrl: string;
  /** The one-time admin password, when this start created the admin. */
  adminPassword: string | null;
  stdout: string[];
  stderr: string[];
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * The real entry point (main.ts) as a child on loopback ports it picks, its output collected as it
 * comes; killed at teardown if still alive. It does not wait for the gateway to listen.
 */
export function startGatewayChild(t: Test, dataDir: string, env: Record<string, string> = {}): Omit<GatewayProcess, 'baseUrl' | 'adminPassword'> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'gateway/src/main.ts'], {
    cwd: root,
    env: {
      // The test run's own settings (WALLGATE_TEST_*: the cluster services) are no gateway setting: the config would refuse them.
      ...Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('WALLGATE_TEST_'))),
      ...LOOPBACK_LISTENERS,
      WALLGATE_DATA_DIR: dataDir,
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const stdout: string[] = [];
  const stderr: string[] = [];
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  );
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  child.stdout!.setEncoding('utf8').on('data', (d: string) => stdout.push(d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => stderr.push(d));
  return { child, stdout, stderr, exited };
}

/** Runs the real entry point (main.ts) as a child and resolves once it listens. */
export async function spawnGateway(t: Test, dataDir: string, env: Record<string, string> = {}): Promise<GatewayProcess> {
  const { child, stdout, stderr, exited } = startGatewayChild(t, dataDir, env);
  const baseUrl = await new Promise<string>((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new Error(`gateway did not start: ${stderr.join('')}`)), 30_000);
    child.stdout!.on('data', (d: string) => {
      buf += d;
      const m = /"address":"(http:\/\/[^"]+)"/.exec(buf);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
    void exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`gateway exited: ${stderr.join('')}`));
    });
  });
  const pw = /with password (\S+)/.exec(stderr.join(''));
  return { child, baseUrl, adminPassword: pw ? pw[1]! : null, stdout, stderr, exited };
}

// ---- what a shutdown must leave behind: the process table and the database -------------------

/** The ffmpeg processes whose parent is `ppid`, from the process table. */
export async function ffmpegChildren(ppid: number): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '');
    const close = stat.lastIndexOf(')');
    if (close < 0 || stat.slice(stat.indexOf('(') + 1, close) !== 'ffmpeg') continue;
    if (Number(stat.slice(close + 2).split(' ')[1]) === ppid) pids.push(Number(entry));
  }
  return pids;
}

/** Which of these pids still name an ffmpeg in the process table. */
export async function stillRunning(pids: number[]): Promise<number[]> {
  const left: number[] = [];
  for (const pid of pids) if ((await readFile(`/proc/${pid}/comm`, 'utf8').catch(() => '')).trim() === 'ffmpeg') left.push(pid);
  return left;
}

/** One query on the gateway's database after it has exited, read-only. */
export function query<T>(dataDir: string, sql: string): T {
  const db = new Database(join(dataDir, 'wallgate.db'), { readonly: true });
  try {
    return db.prepare(sql).pluck().get() as T;
  } finally {
    db.close();
  }
}

/** A REST call with a bearer token against a spawned gateway. */
export async function gatewayApi(baseUrl: string, token: string, method: string, path: string, body?: unknown) {
  const res = await fetch(`${baseUrl}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    ...(body ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : null };
}

/**
 * A simulated camera registered and watched over HLS until its playlist answers, so the gateway
 * has an ffmpeg running; resolves with that ffmpeg's pid, found as a child in the process table.
 */
export async function liveSession(t: Test, gw: GatewayProcess, token: string, id: string): Promise<number[]> {
  const sim = await CameraSimulator.start();
  t.teardown(() => sim.close());
  sim.addCamera(id, { clip: 'h264-720p-1s' });
  const created = await gatewayApi(gw.baseUrl, token, 'POST', '/api/sources', { id, name: `Camera ${id}`, departmentId: 'root', url: sim.url(id, true), codec: 'h264' });
  if (created.status !== 201) throw new Error(`register ${id}: ${JSON.stringify(created.json)}`);
  const view = await gatewayApi(gw.baseUrl, token, 'POST', `/api/streams/${id}/view`);
  const deadline = Date.now() + 30_000;
  while ((await fetch(gw.baseUrl + view.json.hls)).status !== 200) {
    if (Date.now() > deadline) throw new Error(`camera ${id} did not go live`);
    await sleep(200);
  }
  const pids = await ffmpegChildren(gw.child.pid!);
  if (!pids.length) throw new Error('the live session has no ffmpeg child');
  return pids;
}

/** After the gateway has exited: none of its ffmpeg children, and nothing else carrying its marker, is left. */
/** Signs in as the admin of a spawned gateway and returns the bearer token. */
export async function adminLogin(baseUrl: string, password: string): Promise<string> {
  const res = await fetch(`${baseUrl}/api/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'admin', password }) });
  if (res.status !== 200) throw new Error(`login: ${res.status} ${await res.text()}`);
  return ((await res.json()) as { token: string }).token;
}

export async function noProcessLeft(t: Test, dataDir: string, children: number[]) {
  t.same(await stillRunning(children), [], `the ffmpeg children (${children.join(', ')}) are gone`);
  t.same(await markedProcesses(await instanceIdFor(dataDir)), [], "nothing with the gateway's marker is in the process table");
}

import { execFile } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import type { Test } from 'tap';
import type { BuildOptions } from '../../gateway/src/app.js';
import type { Config } from '../../gateway/src/config/schema.js';
import { markedProcesses } from '../../gateway/src/streams/process/sweep.js';
import { ensureClip } from '../../scripts/sim/clips.js';
import { CameraSimulator, type CameraSpec } from '../../scripts/sim/rtsp-server.js';
import { startGateway, type DeepPartial, type TestGateway } from './gateway.js';

const run = promisify(execFile);

export interface StreamUrls {
  hls: string;
  flv: string;
  wsFlv: string;
  /** The WHEP endpoint, used with the stream token as a bearer token. */
  whep: string;
  token: string;
  profile: string;
}

export interface StreamingGateway extends TestGateway {
  sim: CameraSimulator;
  baseUrl: string;
  /** Adds a simulated camera and registers it as a source in the root department. */
  addCamera(id: string, spec: CameraSpec, extra?: Record<string, unknown>): Promise<void>;
  /** Starts a viewing and returns absolute stream URLs. */
  view(id: string, token?: string, profile?: 'main' | 'sub'): Promise<StreamUrls>;
  /** The ffmpeg processes this gateway has running, from the process table. */
  ffmpegPids(): Promise<number[]>;
}

/** Timings that keep the suite quick: short linger and watchdog, quick retries. */
export const FAST_STREAMS: DeepPartial<Config['streams']> = {
  closeAfterMs: 1_000,
  startTimeoutMs: 6_000,
  ioTimeoutMs: 3_000,
  watchdogMs: 3_000,
  killGraceMs: 1_000,
  retry: { initialMs: 300, maxMs: 2_000 },
  hls: { viewerTimeoutMs: 3_000 },
};

/** A simulator and a gateway listening on loopback ports they picked, both stopped at teardown. */
export async function startStreamingGateway(
  t: Test,
  streams: DeepPartial<Config['streams']> = {},
  opts: BuildOptions = {},
  config: Omit<DeepPartial<Config>, 'streams'> = {},
  joining?: { adminToken: string },
): Promise<StreamingGateway> {
  const sim = await CameraSimulator.start();
  t.teardown(() => sim.close());
  const gw = await startGateway(t, { ...config, streams: { ...FAST_STREAMS, ...streams } as Config['streams'] }, opts, joining);
  const baseUrl = await gw.http.listen({ port: 0, host: '127.0.0.1' });
  const addCamera: StreamingGateway['addCamera'] = async (id, spec, extra = {}) => {
    // On a fresh clone the clip is encoded on first use (H.265 takes seconds): do it before any start timeout runs.
    await ensureClip(spec.clip);
    sim.addCamera(id, spec);
    const res = await gw.api('POST', '/api/sources', {
      token: gw.adminToken,
      body: { id, name: `Camera ${id}`, departmentId: 'root', url: sim.url(id, true), codec: spec.clip.startsWith('h265') ? 'h265' : 'h264', ...extra },
    });
    if (res.status !== 201) throw new Error(`register ${id}: ${res.body}`);
  };
  const view: StreamingGateway['view'] = async (id, token = gw.adminToken, profile = 'main') => {
    const res = await gw.api('POST', `/api/streams/${id}/view?profile=${profile}`, { token });
    if (res.status !== 200) throw Object.assign(new Error(`view ${id}: ${res.status} ${res.body}`), { status: res.status, json: res.json });
    const j = res.json;
    return { hls: baseUrl + j.hls, flv: baseUrl + j.flv, wsFlv: baseUrl.replace('http', 'ws') + j.wsFlv, whep: baseUrl + j.whep, token: j.token, profile: j.profile };
  };
  return Object.assign(gw, { sim, baseUrl, addCamera, view, ffmpegPids: () => markedProcesses(gw.streams.instanceId) });
}

/** Decodes frames with a real ffmpeg; resolves to the number of video frames decoded. */
export async function decodeFrames(url: string, frames: number, timeoutMs = 20_000): Promise<number> {
  const { stdout } = await run(
    'ffmpeg',
    ['-v', 'error', '-probesize', '32768', '-analyzeduration', '500000', '-i', url, '-map', '0:v:0', '-frames:v', String(frames), '-f', 'framemd5', '-'],
    { timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 },
  );
  return stdout.split('\n').filter((l) => l && !l.startsWith('#')).length;
}

/**
 * Polls until the check passes and returns the value that passed; throws when the time is up, naming
 * what it waited for (`what`, else the predicate's source) and the last value seen, so a test that
 * waited for something that never happened fails there instead of going on with a wrong value.
 */
export async function waitFor<T>(check: () => Promise<T> | T, ok: (v: T) => boolean, timeoutMs: number, stepMs = 100, what?: string): Promise<T> {
  const started = Date.now();
  const deadline = started + timeoutMs;
  let v = await check();
  while (!ok(v)) {
    if (Date.now() >= deadline) {
      throw new Error(`waitFor: timed out after ${Date.now() - started} ms waiting for ${what ?? String(ok)} (polling ${String(check)}); last value: ${describe(v)}`);
    }
    await sleep(stepMs);
    v = await check();
  }
  return v;
}

function describe(v: unknown): string {
  if (v === undefined) return 'undefined';
  try {
    const text = JSON.stringify(v);
    return text.length > 2_000 ? `${text.slice(0, 2_000)}… (${text.length} characters)` : text;
  } catch {
    return String(v);
  }
}

/** Every process's command line, for proving a secret never reaches one. */
export async function allCommandLines(): Promise<string> {
  const parts: string[] = [];
  for (const pid of await readdir('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    const cmd = await readFile(`/proc/${pid}/cmdline`).catch(() => null);
    if (cmd) parts.push(cmd.toString('utf8').replace(/\0/g, ' '));
  }
  return parts.join('\n');
}

/** A loopback port nothing listens on: a camera there refuses the connection at once. */
export async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

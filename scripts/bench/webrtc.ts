/**
 * WebRTC (WHEP) benchmark: the real gateway (dist/, a child process) pulling simulated cameras
 * (another child) on loopback, with werift WHEP viewers like browsers would be.
 *
 *   npm run bench:webrtc
 *
 * Figures: a cold join (WHEP offer on an idle camera to the first complete keyframe at the viewer),
 * warm joins on a 2 s GOP camera with the keyframe cache and, on a second gateway, without it, and
 * where a join's time goes; 100 peers on one ~2 Mbit/s camera with the gateway's CPU and Mbit/s
 * delivered per core, and one of them vanishing without a word while the others must keep receiving.
 * The load's viewers are werift too (SRTP in JavaScript), so they run in separate processes
 * (scripts/bench/whep-load.ts) whose CPU is reported too. Progress goes to stderr; the last stdout
 * line is one JSON object.
 *
 * Knobs: BENCH_ONLY=joins|load (only that part), BENCH_PEERS (100), BENCH_STEPS (25,50,60,75: peer
 * counts measured on the way to BENCH_PEERS), BENCH_WORKERS (4), BENCH_LOAD_DECRYPT=1 (the load's
 * viewers keep decrypting SRTP), BENCH_JOIN_RUNS (10), BENCH_COLD_RUNS (5), BENCH_WINDOW_MS (12000),
 * BENCH_GATEWAY_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof" (profile the gateway),
 * BENCH_GATEWAY_LOG=<file> (keep the gateway's output).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { packetize } from '../../gateway/src/outputs/webrtc/h264.js';
import { instanceIdFor } from '../../gateway/src/streams/manager.js';
import { INSTANCE_ENV } from '../../gateway/src/streams/process/ffmpeg-process.js';
import { ensureClip, type ClipKind } from '../sim/clips.js';
import { whepConnect, type ClientTimings, type WhepViewer } from '../sim/whep-client.js';
import { adminToken, CLK_TCK, cleanup, cpuMeter, gatewayEnv, installHarness, log, mean, median, pct, ROOT_DIR, round, rssMb, sleep, spawnUntil, summary, tempDir, track } from './harness.js';

/** About 2 Mbit/s with a 1 s GOP: the load's camera, and the cold joins'. */
const LOAD_CLIP: ClipKind = 'h264-720p-1s';
/** The same with a 2 s GOP: warm joins, where waiting for the next keyframe would show. */
const JOIN_CLIP: ClipKind = 'h264-720p-2s';
const FPS = 25;
const envInt = (name: string, dflt: number) => {
  const n = Number(process.env[name] ?? dflt);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a positive integer`);
  return n;
};
const COLD_RUNS = envInt('BENCH_COLD_RUNS', 5);
const JOIN_RUNS = envInt('BENCH_JOIN_RUNS', 10);
const PEERS = envInt('BENCH_PEERS', 100);
const WORKERS = envInt('BENCH_WORKERS', 4);
const WINDOW_MS = envInt('BENCH_WINDOW_MS', 12_000);
/** Sampled in 1 s steps after the vanish: past the gateway's idleTimeoutMs (10 s), so its drop is seen too. */
const VANISH_WINDOW_MS = 14_000;
/** Peers on the load camera at each measured step; the last is the full load. */
const STEPS = [...new Set([...(process.env.BENCH_STEPS ?? '25,50,60,75').split(',').map(Number), PEERS])]
  .filter((n) => Number.isInteger(n) && n > 0 && n <= PEERS)
  .sort((a, b) => a - b);
/** Shorter windows for the steps before the full load. */
const STEP_WINDOW_MS = 8000;
const SETTLE_MS = 3000;
const JOIN_TIMEOUT_MS = 15_000;
const GUARD_MS = 15 * 60_000;
const cores = cpus().length;
/** A peer counts as sustained when it got at least this share of the packets the camera sends. */
const SUSTAINED_SHARE = 0.95;
const TARGETS = { peers: 100, janus_first_keyframe_p50_ms: 140 };
/** SRTP (10 auth tag) + RTP (12) + UDP (8) + IPv4 (20) bytes per packet on top of the payload. */
const PACKET_OVERHEAD = 50;
/** The load's viewers stop decrypting SRTP after their first keyframe (BENCH_LOAD_DECRYPT=1 keeps it). */
const SKIP_DECRYPT = process.env.BENCH_LOAD_DECRYPT !== '1';

const guard = installHarness(GUARD_MS);
const only = process.env.BENCH_ONLY;
if (only && only !== 'joins' && only !== 'load') throw new Error('BENCH_ONLY is joins or load');

/**
 * The whole machine over a window, from /proc/stat, in % of one core (like the process figures):
 * busy (everything but idle and iowait), and of it softirq (loopback packet delivery) and steal
 * (time the hypervisor gave to someone else).
 */
function machineMeter(): () => { busy: number; softirq: number; steal: number } {
  const read = () => readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const a = read();
  const t0 = performance.now();
  return () => {
    const b = read();
    const d = b.map((x, i) => x - (a[i] ?? 0));
    // /proc/stat counts in USER_HZ ticks, summed over cores.
    const pctOf = (ticks: number) => (ticks / CLK_TCK / ((performance.now() - t0) / 1000)) * 100;
    const total = d.reduce((x, y) => x + y, 0);
    return { busy: pctOf(total - d[3]! - (d[4] ?? 0)), softirq: pctOf(d[6] ?? 0), steal: pctOf(d[7] ?? 0) };
  };
}

/** The kernel's UDP counters (all sockets): datagrams received, and dropped for a full receive buffer. */
function udpCounters(): { in: number; rcvbufErrors: number } {
  const lines = readFileSync('/proc/net/snmp', 'utf8').split('\n').filter((l) => l.startsWith('Udp:'));
  const names = lines[0]?.split(/\s+/) ?? [];
  const values = lines[1]?.split(/\s+/).map(Number) ?? [];
  const get = (name: string) => values[names.indexOf(name)] ?? NaN;
  return { in: get('InDatagrams'), rcvbufErrors: get('RcvbufErrors') };
}

/** Rejects after ms unless the promise settled; the timer never keeps the process alive. */
function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: no result in ${ms} ms`)), ms);
      timer.unref();
    }),
  ]);
}

async function until(cond: () => boolean, ms: number, what: string) {
  const t0 = performance.now();
  while (!cond()) {
    if (performance.now() - t0 > ms) throw new Error(`${what}: not within ${ms} ms`);
    await sleep(10);
  }
}

// ---- the clips ------------------------------------------------------------------------------

/** A clip's video bitrate (Annex B, as the camera sends it) and the RTP packets the gateway makes of it per second. */
async function clipFacts(kind: ClipKind) {
  const clip = await ensureClip(kind);
  const seconds = clip.frames.length / FPS;
  let bytes = 0;
  let packets = 0;
  let payloadBytes = 0;
  for (const f of clip.frames) {
    for (const n of f.nalUnits) bytes += n.length + 4;
    const payloads = packetize(f.nalUnits);
    packets += payloads.length;
    for (const p of payloads) payloadBytes += p.length;
  }
  return {
    clip: kind,
    mbit_per_s: round((bytes * 8) / seconds / 1e6, 3)!,
    rtp_payload_mbit_per_s: round((payloadBytes * 8) / seconds / 1e6, 3)!,
    rtp_packets_per_s: round(packets / seconds)!,
    gop_s: clip.gopFrames / FPS,
    resolution: `${clip.width}x${clip.height}`,
    fps: FPS,
  };
}

// ---- the gateway ----------------------------------------------------------------------------

interface Gateway {
  label: string;
  child: ChildProcess;
  pid: number;
  base: string;
  token: string;
  instance: string;
  output: () => string;
}

const gateways = new Set<Gateway>();

/** The gateway's ffmpeg children, found by its instance marker: synchronous, for the exit handler. */
function markedPidsSync(instance: string): number[] {
  const marker = Buffer.from(`${INSTANCE_ENV}=${instance}\0`);
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${entry}/environ`).includes(marker)) pids.push(Number(entry));
    } catch {
      // gone, or not ours
    }
  }
  return pids;
}

// A gateway killed hard leaves its ffmpeg pulls behind: they go with it, by pid.
process.on('exit', () => {
  for (const gw of gateways) {
    if (gw.child.exitCode === null && gw.child.signalCode === null) gw.child.kill('SIGKILL');
    for (const pid of markedPidsSync(gw.instance)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // exited meanwhile
      }
    }
  }
});

async function startGateway(label: string, extraEnv: Record<string, string>): Promise<Gateway> {
  const dataDir = tempDir('bench-gw-');
  const env = {
    ...gatewayEnv(dataDir),
    WALLGATE_STREAMS_WEBRTC_MAX_PEERS: '1000',
    WALLGATE_STREAMS_WEBRTC_MAX_PEERS_PER_CAMERA: '1000',
    ...extraEnv,
  };
  const nodeArgs = (process.env.BENCH_GATEWAY_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const started = await spawnUntil(process.execPath, [...nodeArgs, 'dist/main.js'], env, /"address":"(http:\/\/[^"]+)"/);
  const base = started.match[1]!;
  const gw: Gateway = {
    label,
    child: started.child,
    pid: started.child.pid!,
    base,
    token: '',
    instance: await instanceIdFor(dataDir),
    output: started.output,
  };
  gateways.add(gw);
  const gatewayLog = process.env.BENCH_GATEWAY_LOG;
  if (gatewayLog) process.on('exit', () => writeFileSync(`${gatewayLog}.${label}`, gw.output()));
  gw.token = await adminToken(base, gw.output());
  log(`gateway ${label} at ${base}, pid ${gw.pid}`);
  return gw;
}

/** SIGTERM, so the gateway stops its ffmpeg pulls itself; SIGKILL and a sweep after 10 s. */
async function stopGateway(gw: Gateway) {
  if (gw.child.exitCode === null && gw.child.signalCode === null) {
    const exited = new Promise((r) => gw.child.once('exit', r));
    gw.child.kill('SIGTERM');
    await Promise.race([exited, sleep(10_000)]);
    if (gw.child.exitCode === null && gw.child.signalCode === null) {
      log(`gateway ${gw.label} ignored SIGTERM for 10 s; killing it`);
      gw.child.kill('SIGKILL');
    }
  }
  for (const pid of markedPidsSync(gw.instance)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // exited meanwhile
    }
  }
  gateways.delete(gw);
}

async function api(gw: Gateway, method: string, path: string, body?: unknown) {
  const res = await withTimeout(
    fetch(gw.base + path, {
      method,
      headers: { authorization: `Bearer ${gw.token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      ...(body ? { body: JSON.stringify(body) } : {}),
    }),
    15_000,
    `${method} ${path}`,
  );
  const text = await res.text();
  if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

async function registerCameras(gw: Gateway, rtspBase: string, cams: { id: string; clip: ClipKind }[]) {
  const rows = cams
    .map((c) => JSON.stringify({ id: c.id, name: `Bench ${c.id}`, departmentId: 'root', url: `${rtspBase}/auto/${c.clip}/${c.id}`, codec: 'h264' }))
    .join('\n');
  const imp = await fetch(`${gw.base}/api/sources/import?mode=all-or-nothing`, {
    method: 'POST',
    headers: { authorization: `Bearer ${gw.token}`, 'content-type': 'application/x-ndjson' },
    body: rows,
  });
  if (imp.status !== 200) throw new Error(`import: ${imp.status} ${await imp.text()}`);
}

/** A stream token and the WHEP endpoint for one viewing. */
async function view(gw: Gateway, id: string): Promise<{ whep: string; token: string }> {
  const v = await api(gw, 'POST', `/api/streams/${id}/view`);
  return { whep: gw.base + v.whep, token: v.token };
}

/** The gateway's totals of bytes from its ffmpeg pulls and to viewers (for WebRTC: RTP payload bytes handed to werift). */
async function gatewayBytes(gw: Gateway): Promise<{ in: number; out: number }> {
  const res = await withTimeout(fetch(`${gw.base}/metrics`, { headers: { authorization: `Bearer ${gw.token}` } }), 15_000, 'metrics');
  const text = await res.text();
  const total = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
  return { in: total('wallgate_stream_bytes_in_total'), out: total('wallgate_stream_bytes_out_total') };
}

async function ffmpegPidOf(gw: Gateway, cameraId: string): Promise<number | null> {
  const items = (await api(gw, 'GET', '/api/streams')).items as { pid: number | null; cameraId: string; bitrateKbps?: number }[];
  return items.find((s) => s.cameraId === cameraId)?.pid ?? null;
}

// ---- joins from this process ----------------------------------------------------------------

interface Join {
  timings: ClientTimings;
  firstFrameWasKeyframe: boolean | null;
  keyframe: Buffer | null;
  /** The same join as the gateway saw it (ms since its offer arrived), from its "viewer left" log line. */
  gateway: Record<string, number | null> | null;
}

/** The join timings the gateway logged for a peer when it left, if it did within a second. */
async function gatewayTimings(gw: Gateway, peerId: string): Promise<Record<string, number | null> | null> {
  for (let i = 0; i < 20; i++) {
    const line = gw
      .output()
      .split('\n')
      .find((l) => l.includes(`"peer":"${peerId}"`) && l.includes('WebRTC viewer left'));
    if (line) {
      try {
        return (JSON.parse(line) as { timings: Record<string, number | null> }).timings;
      } catch {
        return null;
      }
    }
    await sleep(50);
  }
  return null;
}

/** One viewer from offer to its first complete keyframe, then hung up. Null when it did not get there. */
async function timedJoin(gw: Gateway, id: string): Promise<Join | null> {
  const v = await view(gw, id);
  let viewer: WhepViewer | null = null;
  try {
    viewer = await withTimeout(whepConnect(v.whep, v.token), JOIN_TIMEOUT_MS, 'WHEP answer');
    const w = viewer;
    await until(() => w.timings.firstKeyframe !== null, JOIN_TIMEOUT_MS, 'first keyframe');
    await withTimeout(w.close(), 5000, 'close').catch(() => {});
    viewer = null;
    return {
      timings: { ...w.timings },
      firstFrameWasKeyframe: w.firstFrameWasKeyframe,
      keyframe: w.firstKeyframe,
      gateway: await gatewayTimings(gw, w.resource.split('/').pop()!),
    };
  } catch (e) {
    log(`join on ${id} failed: ${(e as Error).message}`);
    return null;
  } finally {
    if (viewer) await withTimeout(viewer.close(), 5000, 'close').catch(() => {});
  }
}

/** A viewer kept on a camera so joins are warm: the session is live and its WebRTC feed holds a GOP. */
async function anchor(gw: Gateway, id: string): Promise<WhepViewer> {
  const v = await view(gw, id);
  const viewer = await withTimeout(whepConnect(v.whep, v.token, { countOnly: true }), JOIN_TIMEOUT_MS, 'anchor answer');
  await until(() => viewer.timings.firstKeyframe !== null, 30_000, 'anchor keyframe');
  return viewer;
}

/** Joins at random phases of the GOP: a random pause of up to one GOP before each. */
async function warmJoins(gw: Gateway, id: string, gopMs: number, label: string): Promise<Join[]> {
  const joins: Join[] = [];
  for (let i = 0; i < JOIN_RUNS; i++) {
    await sleep(100 + Math.random() * gopMs);
    const j = await timedJoin(gw, id);
    if (j) joins.push(j);
    log(`${label} join ${i + 1}/${JOIN_RUNS}: first keyframe ${j?.timings.firstKeyframe ?? 'never'} ms`);
  }
  return joins;
}

/** Whether ffmpeg decodes the keyframe alone (Annex B with its parameter sets) without an error. */
function decodes(keyframe: Buffer | null): Promise<boolean> {
  if (!keyframe) return Promise.resolve(false);
  return new Promise((resolve) => {
    const child = track(spawn('ffmpeg', ['-hide_banner', '-nostdin', '-v', 'error', '-xerror', '-f', 'h264', '-i', 'pipe:0', '-frames:v', '1', '-f', 'null', '-'], { stdio: ['pipe', 'ignore', 'pipe'] }));
    let err = '';
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    child.on('error', () => resolve(false));
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve(code === 0 && err.trim() === '');
    });
    child.stdin!.on('error', () => {});
    child.stdin!.end(keyframe);
  });
}

const breakdown = (joins: Join[]) => {
  const out: Record<string, number | null> = {};
  for (const k of ['offerAnswer', 'iceConnected', 'dtlsConnected', 'firstPacket', 'firstKeyframe'] as const) {
    out[k] = round(median(joins.map((j) => j.timings[k]).filter((x): x is number => x !== null)));
  }
  return out;
};

/** p50 of the gateway's own timings: ms from the offer's arrival to answer, ICE, DTLS and first packets sent. */
const gatewayBreakdown = (joins: Join[]) => {
  const out: Record<string, number | null> = {};
  for (const k of ['answer', 'iceConnected', 'dtlsConnected', 'firstPacket', 'firstKeyframe']) {
    out[k] = round(median(joins.map((j) => j.gateway?.[k]).filter((x): x is number => typeof x === 'number')));
  }
  return out;
};

async function joinFigures(joins: Join[], runs: number) {
  const firsts = joins.map((j) => j.timings.firstKeyframe!);
  const decodable = (await Promise.all(joins.map((j) => decodes(j.keyframe)))).filter(Boolean).length;
  return {
    first_keyframe_ms: summary(firsts),
    breakdown_p50_ms: breakdown(joins),
    gateway_breakdown_p50_ms: gatewayBreakdown(joins),
    runs,
    failed: runs - joins.length,
    first_frame_was_keyframe: joins.filter((j) => j.firstFrameWasKeyframe).length,
    first_keyframe_decodes: decodable,
    samples_ms: firsts.map((x) => round(x)),
  };
}

// ---- the load processes ---------------------------------------------------------------------

interface WorkerStats {
  at: number;
  packets: number[];
  bytes: number[];
  /** Each peer's "iceConnectionState/connectionState" as its client sees it. */
  states: string[];
  vanished: number[];
}

/** How many peers (vanished ones aside) are in each client-side state. */
function stateCounts(stats: WorkerStats[]): Record<string, number> {
  const out: Record<string, number> = {};
  stats.forEach((s) =>
    s.states.forEach((st, i) => {
      if (!s.vanished.includes(i)) out[st] = (out[st] ?? 0) + 1;
    }),
  );
  return out;
}

class LoadWorker {
  readonly child: ChildProcess;
  private readonly pending = new Map<number, { resolve: (v: any) => void; reject: (e: Error) => void }>();
  private nextId = 1;
  private tail: string[] = [];
  readonly ready: Promise<void>;

  constructor(readonly index: number) {
    this.child = track(spawn(process.execPath, ['--import', 'tsx', 'scripts/bench/whep-load.ts'], { cwd: ROOT_DIR, stdio: ['pipe', 'pipe', 'pipe'] }));
    this.child.stdin!.on('error', () => {});
    let readyResolve!: () => void;
    this.ready = withTimeout(new Promise<void>((r) => (readyResolve = r)), 60_000, `load worker ${index} start`);
    this.ready.catch(() => {});
    createInterface({ input: this.child.stdout! }).on('line', (line) => {
      let msg: { id: number; error?: string; ready?: boolean };
      try {
        msg = JSON.parse(line);
      } catch {
        return;
      }
      if (msg.ready) return readyResolve();
      const p = this.pending.get(msg.id);
      if (!p) return;
      this.pending.delete(msg.id);
      if (msg.error) p.reject(new Error(`load worker ${index}: ${msg.error}`));
      else p.resolve(msg);
    });
    createInterface({ input: this.child.stderr! }).on('line', (line) => {
      this.tail = [...this.tail.slice(-20), line];
      if (process.env.BENCH_VERBOSE) log(`worker ${index}: ${line}`);
    });
    this.child.on('exit', (code, signal) => {
      for (const p of this.pending.values()) p.reject(new Error(`load worker ${index} exited (${signal ?? code}): ${this.tail.join(' | ')}`));
      this.pending.clear();
    });
  }

  get pid() {
    return this.child.pid!;
  }

  call<T>(op: string, args: Record<string, unknown> = {}, timeoutMs = 15_000): Promise<T> {
    const id = this.nextId++;
    const reply = new Promise<T>((resolve, reject) => this.pending.set(id, { resolve, reject }));
    this.child.stdin!.write(JSON.stringify({ id, op, ...args }) + '\n');
    return withTimeout(reply, timeoutMs, `load worker ${this.index} ${op}`).finally(() => this.pending.delete(id));
  }

  async stop() {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise((r) => this.child.once('exit', r));
    await this.call('close', {}, 8000).catch(() => {});
    this.child.stdin!.end();
    await Promise.race([exited, sleep(3000)]);
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
  }
}

/** Per-peer packets and bytes between two snapshots of every worker; rates per second. */
function rates(a: WorkerStats[], b: WorkerStats[], skip: Set<string>) {
  const out: { key: string; pps: number; bps: number }[] = [];
  a.forEach((sa, w) => {
    const sb = b[w]!;
    const secs = (sb.at - sa.at) / 1000;
    sa.packets.forEach((p, i) => {
      const key = `${w}:${i}`;
      if (skip.has(key)) return;
      out.push({ key, pps: (sb.packets[i]! - p) / secs, bps: ((sb.bytes[i]! - sa.bytes[i]!) * 8) / secs });
    });
  });
  return out;
}

// ---- the run --------------------------------------------------------------------------------

/** Joins on the 'warm' camera while an anchor viewer keeps its feed (and GOP) up, in JOIN_RUNS figures. */
async function measureWarmJoins(gw: Gateway, gopMs: number, label: string) {
  const a = await anchor(gw, 'warm');
  await sleep(1000);
  const joins = await warmJoins(gw, 'warm', gopMs, label);
  await a.close();
  const figures = await joinFigures(joins, JOIN_RUNS);
  log(`${label} join: first keyframe p50 ${figures.first_keyframe_ms.p50} ms`);
  return figures;
}

async function main() {
  const loadClip = await clipFacts(LOAD_CLIP);
  const joinClip = await clipFacts(JOIN_CLIP);
  log(`clips: ${LOAD_CLIP} ${loadClip.mbit_per_s} Mbit/s (${loadClip.rtp_packets_per_s} RTP packets/s), ${JOIN_CLIP} ${joinClip.mbit_per_s} Mbit/s`);

  const sim = await spawnUntil(process.execPath, ['--import', 'tsx', 'scripts/camera-sim.ts', '--port', '0', '--control-port', '0', '--cameras', '0'], {}, /"rtsp":"(rtsp:\/\/[^"]+)"/);
  const rtspBase = sim.match[1]!;
  log(`simulator at ${rtspBase}`);

  const cams = [
    ...Array.from({ length: COLD_RUNS }, (_, i) => ({ id: `cold${i}`, clip: LOAD_CLIP })),
    { id: 'warm', clip: JOIN_CLIP },
    { id: 'load', clip: LOAD_CLIP },
  ];
  const gw = await startGateway('cache', {});
  await registerCameras(gw, rtspBase, cams);

  let cold: Awaited<ReturnType<typeof joinFigures>> | null = null;
  let warm: Awaited<ReturnType<typeof joinFigures>> | null = null;
  let noCache: Awaited<ReturnType<typeof joinFigures>> | null = null;
  if (only !== 'load') {
    // Cold: a camera nobody watches, so the gateway starts its pull for this offer.
    const colds: Join[] = [];
    for (let i = 0; i < COLD_RUNS; i++) {
      const j = await timedJoin(gw, `cold${i}`);
      if (j) colds.push(j);
      log(`cold join ${i + 1}/${COLD_RUNS}: first keyframe ${j?.timings.firstKeyframe ?? 'never'} ms`);
    }
    cold = await joinFigures(colds, COLD_RUNS);

    // Warm, with the keyframe cache: another WebRTC viewer keeps the camera's feed (and its GOP) up.
    warm = await measureWarmJoins(gw, joinClip.gop_s * 1000, 'warm (cache)');
  }

  let load: Record<string, unknown> | null = null;
  let vanish: Record<string, unknown> | null = null;
  let peersSustained: number | null = null;
  let gatewayCpu = NaN;
  let mbitPerCore = NaN;
  if (only !== 'joins') {
    const workers = Array.from({ length: Math.min(WORKERS, PEERS) }, (_, i) => new LoadWorker(i));
    try {
      await Promise.all(workers.map((w) => w.ready));
      log(`${workers.length} load workers up; ramping to ${PEERS} peers on one ${LOAD_CLIP} camera in steps of ${STEPS.join(', ')}`);
      const expectedPps = loadClip.rtp_packets_per_s;
      const held = workers.map(() => 0);
      const joinErrors: string[] = [];
      const firstKeyframes: number[] = [];
      /** Joins n more peers, each on the worker holding the fewest. */
      const joinMore = async (n: number, timeoutMs = 20_000) => {
        const perWorker = workers.map(() => 0);
        for (let k = 0; k < n; k++) {
          const w = held.map((h, i) => h + perWorker[i]!).reduce((best, h, i, all) => (h < all[best]! ? i : best), 0);
          perWorker[w]!++;
        }
        const results = await Promise.all(
          workers.map(async (w, i) => {
            if (perWorker[i] === 0) return { joined: 0, errors: [] as string[], firstKeyframeMs: [] as number[] };
            const tokens = await Promise.all(Array.from({ length: perWorker[i]! }, async () => (await view(gw, 'load')).token));
            return w.call<{ joined: number; errors: string[]; firstKeyframeMs: number[] }>(
              'join',
              { url: `${gw.base}/whep/load`, tokens, concurrency: 4, timeoutMs, skipDecrypt: SKIP_DECRYPT },
              timeoutMs * (Math.ceil(perWorker[i]! / 4) + 1) + 10_000,
            );
          }),
        );
        results.forEach((r, i) => (held[i]! += r.joined));
        joinErrors.push(...results.flatMap((r) => r.errors));
        firstKeyframes.push(...results.flatMap((r) => r.firstKeyframeMs));
      };
      const snap = () => Promise.all(workers.map((w) => w.call<WorkerStats>('stats')));
      let vanished = 0;

      /** Every process's CPU and every peer's packets over one window. */
      const measure = async (ms: number) => {
        const ffmpegPid = await ffmpegPidOf(gw, 'load');
        const pids = [gw.pid, ...workers.map((w) => w.pid), sim.child.pid!, process.pid, ...(ffmpegPid ? [ffmpegPid] : [])];
        const s0 = await snap();
        const io0 = await gatewayBytes(gw);
        const cpu = cpuMeter(pids);
        const machine = machineMeter();
        const udp0 = udpCounters();
        await sleep(ms);
        const udp1 = udpCounters();
        const cpuPct = cpu();
        const machinePct = machine();
        const s1 = await snap();
        const io1 = await gatewayBytes(gw);
        const workerCpu = cpuPct.slice(1, 1 + workers.length);
        const r = rates(s0, s1, new Set(s0.flatMap((s, w) => s.vanished.map((i) => `${w}:${i}`))));
        const shares = r.map((x) => x.pps / expectedPps);
        const deliveredMbit = r.reduce((s, x) => s + x.bps, 0) / 1e6;
        const gatewayCpu = cpuPct[0]!;
        const sustained = shares.filter((s) => s >= SUSTAINED_SHARE).length;
        return {
          rates: r,
          gatewayCpu,
          deliveredMbit,
          sustained,
          figures: {
            peers: r.length,
            sustained,
            delivered_mbit_per_s: round(deliveredMbit),
            delivered_wire_mbit_per_s: round(deliveredMbit + (r.reduce((s, x) => s + x.pps, 0) * PACKET_OVERHEAD * 8) / 1e6),
            gateway_sent_mbit_per_s: round(((io1.out - io0.out) * 8) / (ms / 1000) / 1e6),
            // FLV from the camera's ffmpeg: below the clip's bitrate means frames were lost before the fan-out.
            gateway_ingest_mbit_per_s: round(((io1.in - io0.in) * 8) / (ms / 1000) / 1e6, 2),
            gateway_cpu_pct: round(gatewayCpu),
            mbit_per_core: round(deliveredMbit / (gatewayCpu / 100)),
            per_peer_mbit_per_s: { p50: round(median(r.map((x) => x.bps / 1e6)), 3), min: round(Math.min(...r.map((x) => x.bps / 1e6)), 3) },
            per_peer_packets_per_s: { p50: round(median(r.map((x) => x.pps))), min: round(Math.min(...r.map((x) => x.pps))), expected: expectedPps },
            received_share_of_expected: { mean: round(mean(shares), 3), min: round(Math.min(...shares), 3) },
            load_generator_cpu_pct: workerCpu.map((c) => round(c)),
            load_generator_cpu_pct_total: round(workerCpu.reduce((a, b) => a + b, 0)),
            load_generator_saturated: workerCpu.some((c) => c > 90) || machinePct.busy > 95 * cores,
            simulator_cpu_pct: round(cpuPct[1 + workers.length]!),
            bench_process_cpu_pct: round(cpuPct[2 + workers.length]!),
            ffmpeg_cpu_pct: ffmpegPid ? round(cpuPct[3 + workers.length]!) : null,
            client_states: stateCounts(s1),
            // Loopback UDP dropped by the kernel because a receiving socket's buffer was full (all sockets, per second).
            udp_rcvbuf_drops_per_s: round((udp1.rcvbufErrors - udp0.rcvbufErrors) / (ms / 1000)),
            udp_received_per_s: round((udp1.in - udp0.in) / (ms / 1000)),
            machine_busy_pct_of_all_cores: round(machinePct.busy / cores),
            machine_softirq_pct: round(machinePct.softirq),
            machine_steal_pct: round(machinePct.steal),
            // Clamped: some softirq time is also charged to the process that was running.
            other_cpu_pct: round(Math.max(0, machinePct.busy - machinePct.softirq - machinePct.steal - cpuPct.filter(Number.isFinite).reduce((a, b) => a + b, 0))),
            window_ms: ms,
          },
        };
      };

      /** One peer stops answering (no DELETE, no DTLS close): every other peer must keep getting video. */
      const vanishCheck = async (worker: LoadWorker, before: { key: string; pps: number }[]): Promise<Record<string, unknown>> => {
        const beforeRate = new Map(before.map((x) => [x.key, x.pps]));
        const victim = `${worker.index}:0`;
        const outputBefore = gw.output().length;
        const { resource } = await worker.call<{ resource: string }>('vanish', { index: 0 });
        vanished++;
        const victimId = resource.split('/').pop()!;
        const vanishedAt = performance.now();
        const gwCpuVanish = cpuMeter([gw.pid]);
        let prev = await snap();
        const start = prev;
        const skip = () => new Set(start.flatMap((s, w) => s.vanished.map((i) => `${w}:${i}`)));
        const intervals: { key: string; pps: number }[][] = [];
        let droppedAfterMs: number | null = null;
        let droppedReason: string | null = null;
        while (performance.now() - vanishedAt < VANISH_WINDOW_MS) {
          await sleep(1000);
          const cur = await snap();
          intervals.push(rates(prev, cur, skip()));
          prev = cur;
          const left = new RegExp(`"peer":"${victimId}"[^\n]*"reason":"([^"]*)"[^\n]*WebRTC viewer left`).exec(gw.output().slice(outputBefore));
          if (droppedAfterMs === null && left) {
            droppedAfterMs = performance.now() - vanishedAt;
            droppedReason = left[1]!;
          }
        }
        const whole = rates(start, prev, skip());
        const victimRate = rates(start, prev, new Set()).find((x) => x.key === victim);
        const worstInterval = Math.min(...intervals.flatMap((iv) => iv.map((x) => x.pps)));
        const othersKept = intervals.every((iv) => iv.every((x) => x.pps > 0)) && whole.length === before.length - 1;
        const vsBefore = whole.map((x) => x.pps / (beforeRate.get(x.key) ?? NaN)).filter(Number.isFinite);
        const leftLines = gw
          .output()
          .slice(outputBefore)
          .split('\n')
          .filter((l) => l.includes('WebRTC viewer left'));
        const result = {
          others_kept_receiving: othersKept,
          others: whole.length,
          min_pkts_per_s_others: round(Math.min(...whole.map((x) => x.pps))),
          min_pkts_per_s_others_in_any_1s: round(worstInterval),
          median_pkts_per_s_others: round(median(whole.map((x) => x.pps))),
          min_rate_vs_before_vanish: round(Math.min(...vsBefore), 3),
          expected_pkts_per_s: expectedPps,
          vanished_peer_pkts_per_s_after: round(victimRate?.pps ?? NaN),
          gateway_dropped_vanished_peer_after_ms: droppedAfterMs === null ? null : round(droppedAfterMs, 0),
          gateway_drop_reason: droppedReason,
          other_peers_dropped_in_window: leftLines.filter((l) => !l.includes(victimId)).length,
          gateway_cpu_pct: round(gwCpuVanish()[0]!),
          window_ms: VANISH_WINDOW_MS,
        };
        log(
          `${whole.length + 1} peers, one vanished: others kept receiving ${othersKept}, min ${result.min_pkts_per_s_others} packets/s ` +
            `(${result.min_rate_vs_before_vanish} of before); gateway dropped it after ${droppedAfterMs === null ? 'never' : round(droppedAfterMs, 0)} ms`,
        );
        return result;
      };

      // The first peer starts the camera's pull; the rest join a live feed.
      await joinMore(1, 30_000);
      if (held[0] !== 1) throw new Error(`the first load peer did not join: ${joinErrors.join('; ')}`);
      const steps: Record<string, unknown>[] = [];
      let vanishLight: Record<string, unknown> | null = null;
      let last: Awaited<ReturnType<typeof measure>> | null = null;
      for (const step of STEPS) {
        const t0 = performance.now();
        const have = held.reduce((a, b) => a + b, 0);
        if (step > have) await joinMore(step - have);
        const now = held.reduce((a, b) => a + b, 0);
        log(`${now}/${step} peers joined (${round((performance.now() - t0) / 1000)} s)${joinErrors.length ? `; ${joinErrors.length} join errors so far: ${joinErrors.at(-1)}` : ''}`);
        await sleep(SETTLE_MS);
        last = await measure(step === STEPS.at(-1) ? WINDOW_MS : STEP_WINDOW_MS);
        const f = last.figures;
        steps.push({ step, ...f });
        log(
          `${f.peers} peers: ${f.delivered_mbit_per_s} Mbit/s delivered (gateway handed ${f.gateway_sent_mbit_per_s} Mbit/s to werift), gateway ${f.gateway_cpu_pct}% cpu, ` +
            `load workers ${f.load_generator_cpu_pct.join('/')}% cpu, machine ${f.machine_busy_pct_of_all_cores}% busy ` +
            `(softirq ${f.machine_softirq_pct}%, steal ${f.machine_steal_pct}%, other processes ${f.other_cpu_pct}%); ${f.sustained} peers at >= ${SUSTAINED_SHARE * 100}% of the packets`,
        );
        // Every peer the step asked for joined and got (nearly) all packets; a vanished one is not asked back.
        if (now === step && f.sustained === f.peers && f.peers === step - vanished) peersSustained = step;
        // The same check at the first step, well within capacity, tells a vanish's harm from overload's.
        if (step === STEPS[0] && step < PEERS) vanishLight = await vanishCheck(workers[0]!, last.rates);
      }
      peersSustained ??= 0;
      gatewayCpu = last!.gatewayCpu;
      mbitPerCore = last!.deliveredMbit / (gatewayCpu / 100);
      load = {
        peers_requested: PEERS,
        peers_joined: held.reduce((a, b) => a + b, 0),
        peers_each_process: held,
        join_errors: joinErrors.length,
        join_error_samples: [...new Set(joinErrors)].slice(0, 3),
        join_first_keyframe_ms: summary(firstKeyframes),
        at_full_load: { ...last!.figures, gateway_rss_mb: rssMb(gw.pid) },
        steps,
      };

      vanish = await vanishCheck(workers[held.length > 1 ? 1 : 0]!, last!.rates);
      if (vanishLight) vanish.at_first_step = vanishLight;
    } finally {
      await Promise.all(workers.map((w) => w.stop()));
    }
  }
  await stopGateway(gw);

  if (only !== 'load') {
    // Without the keyframe cache: a second gateway, same camera (same clock and phase in the simulator).
    const gw2 = await startGateway('no-cache', { WALLGATE_STREAMS_WEBRTC_KEYFRAME_CACHE: 'false' });
    await registerCameras(gw2, rtspBase, [{ id: 'warm', clip: JOIN_CLIP }]);
    noCache = await measureWarmJoins(gw2, joinClip.gop_s * 1000, 'warm (no cache)');
    await stopGateway(gw2);
  }

  const warmP50 = warm ? median(warm.samples_ms.filter((x): x is number => x !== null)) : NaN;
  const result = {
    bench: 'webrtc',
    cold_first_frame_ms: cold?.first_keyframe_ms.p50 ?? null,
    warm_join_first_frame_ms: warm?.first_keyframe_ms.p50 ?? null,
    warm_join_no_cache_ms: noCache?.first_keyframe_ms.p50 ?? null,
    peers: peersSustained,
    gateway_cpu_pct: round(gatewayCpu),
    mbit_per_core: round(mbitPerCore),
    details: {
      cold,
      warm_join_cache: warm,
      warm_join_no_cache: noCache,
      join_breakdown_p50_ms: warm?.breakdown_p50_ms ?? null,
      join_breakdown_gateway_side_p50_ms: warm?.gateway_breakdown_p50_ms ?? null,
      janus_first_keyframe_p50_ms: TARGETS.janus_first_keyframe_p50_ms,
      gap_to_janus_ms: round(warmP50 - TARGETS.janus_first_keyframe_p50_ms),
      load,
      one_peer_vanishes: vanish,
    },
    targets: TARGETS,
    met: {
      peers: peersSustained === null ? null : peersSustained >= TARGETS.peers,
      janus_first_keyframe: warm ? warmP50 <= TARGETS.janus_first_keyframe_p50_ms : null,
    },
    conditions: {
      camera: 'simulated RTSP/TCP cameras, pulled by the gateway with ffmpeg, loopback; no audio',
      cold_clip: loadClip,
      join_clip: joinClip,
      load_clip: loadClip,
      cold_runs: COLD_RUNS,
      join_runs: JOIN_RUNS,
      join_spacing: 'a random pause of 0.1 s to 0.1 s + one GOP before each join',
      join_timing: 'ms from the client creating its offer (werift, host candidates only) to the first complete keyframe it reassembled',
      peers: PEERS,
      load_viewers:
        `werift WHEP clients counting packets (countOnly), in ${Math.min(WORKERS, PEERS)} node processes; ` +
        (SKIP_DECRYPT ? 'SRTP decryption skipped after the first keyframe (header parsed, NACK/RR as usual)' : 'full SRTP decryption'),
      sustained: `a peer receiving >= ${SUSTAINED_SHARE * 100}% of the camera's RTP packets over the window`,
      peers_figure: 'the largest step at which every joined peer was sustained (and all of the step joined)',
      steps: STEPS,
      step_window_ms: STEP_WINDOW_MS,
      mbit_per_core: 'RTP payload Mbit/s received by all peers / (gateway cpu % / 100)',
      cpu_window_ms: WINDOW_MS,
      cpus: cpus().length,
      cpu_model: cpus()[0]?.model,
      node: process.version,
      note:
        'simulator, ffmpeg, load generators and gateway share the machine; one core = 100%; other_cpu_pct is the machine\'s busy ' +
        'time not charged to our processes, softirq or steal: anything else running on the machine meanwhile',
    },
  };
  clearTimeout(guard);
  cleanup();
  process.stdout.write(JSON.stringify(result) + '\n');
  process.exit(0);
}

main().catch(async (e: Error) => {
  log(e.stack ?? e.message);
  await Promise.race([Promise.all([...gateways].map(stopGateway)), sleep(12_000)]);
  cleanup();
  process.exit(1);
});

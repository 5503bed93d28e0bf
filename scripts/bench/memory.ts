/**
 * Memory benchmark: the real gateway (dist/, a child process) pulling many heavy simulated cameras
 * (8 Mbit/s, one keyframe every 4 s) with every cache populated: each camera has a WS-FLV viewer
 * that reads, some have a WHEP viewer, and some have a WS-FLV viewer that stops reading (a frozen
 * wall PC). Reports the gateway's resident memory before any camera, while they all play, and at its
 * peak, with what happened to the readers.
 *
 *   npm run bench:memory
 *
 * Knobs: BENCH_CAMERAS (100), BENCH_WHEP_CAMERAS (20: cameras that also get a WHEP viewer),
 * BENCH_SLOW (10: WS-FLV viewers that stop reading, on as many cameras), BENCH_WINDOW_MS (30000),
 * BENCH_GATEWAY_ENV='{"WALLGATE_…":"…"}' (extra gateway settings). Progress goes to stderr; the last
 * stdout line is one JSON object.
 */
import { spawn } from 'node:child_process';
import { cpus, totalmem } from 'node:os';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { ensureClip, type ClipKind } from '../sim/clips.js';
import { RawWebSocket } from '../sim/raw-websocket.js';
import { adminToken, cpuMeter, finish, gatewayApi, gatewayEnv, installHarness, log, median, ROOT_DIR, round, rssMb, runBench, sleep, spawnUntil, tempDir, track, wsFlvViewer } from './harness.js';

const CLIP: ClipKind = 'h264-1080p-8m-4s';
const envInt = (name: string, dflt: number) => {
  const n = Number(process.env[name] ?? dflt);
  if (!Number.isInteger(n) || n < 0) throw new Error(`${name} must be a whole number`);
  return n;
};
const CAMERAS = envInt('BENCH_CAMERAS', 100);
const WHEP_CAMERAS = Math.min(CAMERAS, envInt('BENCH_WHEP_CAMERAS', 20));
const SLOW = Math.min(CAMERAS, envInt('BENCH_SLOW', 10));
const WINDOW_MS = envInt('BENCH_WINDOW_MS', 30_000);
const START_TIMEOUT_MS = 180_000;
const GUARD_MS = 15 * 60_000;

const guard = installHarness(GUARD_MS);

let base = '';
let token = '';

const api = (method: string, path: string, body?: unknown) => gatewayApi({ base, token }, method, path, body);

async function view(id: string): Promise<{ ws: string; whep: string; token: string }> {
  const v = await api('POST', `/api/streams/${id}/view`);
  return { ws: base.replace('http', 'ws') + v.wsFlv, whep: base + v.whep, token: v.token };
}

/** One whep-load child holding the WHEP viewers (counting packets, not decrypting), driven over stdin. */
function whepLoad() {
  const child = track(spawn(process.execPath, ['--import', 'tsx', 'scripts/bench/whep-load.ts'], { cwd: ROOT_DIR, stdio: ['pipe', 'pipe', 'pipe'] }));
  child.stderr!.on('data', (d: Buffer) => process.stderr.write(`whep-load: ${d.toString()}`));
  const waiting = new Map<number, (o: Record<string, unknown>) => void>();
  createInterface({ input: child.stdout! }).on('line', (line) => {
    const o = JSON.parse(line) as Record<string, unknown>;
    waiting.get(o.id as number)?.(o);
    waiting.delete(o.id as number);
  });
  let next = 0;
  return (cmd: object): Promise<Record<string, unknown>> =>
    new Promise((resolve) => {
      const id = ++next;
      waiting.set(id, resolve);
      child.stdin!.write(JSON.stringify({ ...cmd, id }) + '\n');
    });
}

async function main() {
  const clip = await ensureClip(CLIP);
  let clipBytes = 0;
  for (const f of clip.frames) for (const n of f.nalUnits) clipBytes += n.length;
  const clipMbit = (clipBytes * 8) / (clip.frames.length / clip.fps) / 1e6;
  log(`clip ${CLIP}: ${round(clipMbit, 2)} Mbit/s, ${clip.gopFrames / clip.fps} s GOP (${round(clipBytes / 1048576, 2)} MiB)`);

  const sim = await spawnUntil(process.execPath, ['--import', 'tsx', 'scripts/camera-sim.ts', '--port', '0', '--control-port', '0', '--cameras', '0'], {}, /"rtsp":"(rtsp:\/\/[^"]+)"/);
  const rtspBase = sim.match[1]!;
  const dataDir = tempDir('bench-mem-');
  const extra = JSON.parse(process.env.BENCH_GATEWAY_ENV ?? '{}') as Record<string, string>;
  const env = { ...gatewayEnv(dataDir), WALLGATE_STREAMS_LIMITS_SESSIONS: String(Math.max(200, CAMERAS)), ...extra };
  const gw = await spawnUntil(process.execPath, ['dist/main.js'], env, /"address":"(http:\/\/[^"]+)"/);
  const gwPid = gw.child.pid!;
  base = gw.match[1]!;
  token = await adminToken(base, gw.output());
  log(`gateway at ${base}, pid ${gwPid}`);

  const ids = Array.from({ length: CAMERAS }, (_, i) => `mem${String(i).padStart(3, '0')}`);
  const rows = ids.map((id) => JSON.stringify({ id, name: `Memory ${id}`, departmentId: 'root', url: `${rtspBase}/auto/${CLIP}/${id}`, codec: 'h264' })).join('\n');
  const imp = await fetch(`${base}/api/sources/import?mode=all-or-nothing`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/x-ndjson' }, body: rows });
  if (imp.status !== 200) throw new Error(`import: ${imp.status} ${await imp.text()}`);
  await sleep(2000);
  const rssIdleMb = rssMb(gwPid);
  log(`idle: ${rssIdleMb} MiB`);

  // WHEP viewers first, while the machine is quiet enough for ICE and DTLS to complete: their
  // sessions get a WebRTC feed (and, before the one-copy change, its own keyframe cache). A joined
  // viewer is one receiving packets: a 360 KB keyframe sent at once overflows a werift receiver's UDP
  // buffer on a loaded machine, and whether it decodes is not what this measures.
  // One at a time: ICE and DTLS of many werift peers at once fail on two busy cores.
  const whep = whepLoad();
  let whepJoined = 0;
  for (const id of ids.slice(0, WHEP_CAMERAS)) {
    const v = await view(id);
    const r = await whep({ op: 'join', url: v.whep, tokens: [v.token], concurrency: 1, timeoutMs: 30_000, skipDecrypt: true, firstPacketOnly: true });
    if ((r.failed as number) > 0) log(`whep ${id}: ${JSON.stringify(r.errors)}`);
    whepJoined += r.joined as number;
  }
  log(`${whepJoined} of ${WHEP_CAMERAS} WHEP viewers joined`);

  // Every camera: one WS-FLV viewer that reads. Started a few at a time, as a wall's tiles would.
  const started = performance.now();
  const viewers: ReturnType<typeof wsFlvViewer>[] = [];
  const firsts: number[] = [];
  let failedStarts = 0;
  const queue = [...ids];
  await Promise.all(
    Array.from({ length: 10 }, async () => {
      for (let id = queue.shift(); id; id = queue.shift()) {
        const v = wsFlvViewer((await view(id)).ws);
        viewers.push(v);
        try {
          firsts.push(await Promise.race([v.firstVideo, sleep(START_TIMEOUT_MS).then(() => Promise.reject(new Error('timeout')))]));
        } catch (e) {
          failedStarts++;
          log(`${id}: ${(e as Error).message}`);
        }
      }
    }),
  );
  log(`${firsts.length} of ${CAMERAS} cameras playing after ${round((performance.now() - started) / 1000)} s; first video p50 ${round(median(firsts))} ms`);

  // Slow readers: WS-FLV viewers whose sockets are never read, on the last cameras.
  const slow: RawWebSocket[] = [];
  for (const id of ids.slice(CAMERAS - SLOW)) {
    const url = new URL((await view(id)).ws);
    const s = await RawWebSocket.connect(url.toString(), {}).catch((e: Error) => {
      log(`slow reader on ${id}: ${e.message}`);
      return null;
    });
    if (!s) continue;
    s.socket.on('error', () => {});
    slow.push(s);
  }
  log(`${slow.length} slow readers connected; measuring ${WINDOW_MS / 1000} s`);

  const samples: number[] = [];
  const bytes0 = viewers.map((v) => v.bytes());
  const cpu = cpuMeter([gwPid]);
  const t0 = performance.now();
  while (performance.now() - t0 < WINDOW_MS) {
    await sleep(1000);
    samples.push(rssMb(gwPid));
  }
  const seconds = (performance.now() - t0) / 1000;
  const gatewayCpu = cpu()[0]!;
  const readingMbit = viewers.map((v, i) => ((v.bytes() - bytes0[i]!) * 8) / seconds / 1e6);
  const receiving = readingMbit.filter((m) => m > clipMbit / 2).length;
  const sessions = (await api('GET', '/api/streams')).items as { cameraId: string; state: string; bitrateKbps: number; readers: { flv: number } }[];
  const ready = sessions.filter((s) => s.state === 'ready').length;
  // A paused socket never sees the gateway close it; the gateway's reader counts tell: a slow
  // reader's camera has two FLV readers until the slow one is cut.
  const slowIds = new Set(ids.slice(CAMERAS - SLOW));
  const slowCut = slow.length - sessions.filter((s) => slowIds.has(s.cameraId) && s.readers.flv >= 2).length;
  const stats = (await whep({ op: 'stats' })) as { packets: number[] };
  log(`rss median ${median(samples)} MiB, peak ${Math.max(...samples)} MiB; ${receiving} readers receiving, ${slowCut} slow readers cut`);

  for (const v of viewers) v.close();
  for (const s of slow) s.socket.destroy();
  await whep({ op: 'close' }).catch(() => {});

  const result = {
    bench: 'memory',
    rssIdleMb,
    rssLiveMb: median(samples),
    rssPeakMb: Math.max(...samples),
    rssLastMb: samples.at(-1),
    cameras: CAMERAS,
    camerasPlaying: firsts.length,
    failedStarts,
    sessionsReady: ready,
    flvReadersReceiving: receiving,
    flvReaderMbitP50: round(median(readingMbit), 2),
    whepViewers: whepJoined,
    whepPackets: stats.packets.reduce((a, b) => a + b, 0),
    slowReaders: slow.length,
    slowReadersCut: slowCut,
    gatewayCpuPct: round(gatewayCpu),
    sessionKbpsP50: median(sessions.map((s) => s.bitrateKbps)),
    firstVideoP50Ms: round(median(firsts)),
    conditions: {
      camera: `simulated RTSP/TCP, ${CLIP} (1920x1080 25 fps, ${clip.gopFrames / clip.fps} s GOP, ${round(clipMbit, 2)} Mbit/s, no audio), loopback`,
      readers: `one reading WS-FLV viewer per camera; a WHEP viewer on ${WHEP_CAMERAS}; ${SLOW} WS-FLV viewers that never read`,
      window_ms: WINDOW_MS,
      gateway_env: extra,
      cpus: cpus().length,
      memory_mb: Math.round(totalmem() / 1048576),
      node: process.version,
      note: 'simulator, viewers and gateway share the machine; RSS sampled once a second',
    },
  };
  await finish(result, gw.child, guard);
}

runBench(main);

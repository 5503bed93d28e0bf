/**
 * Snapshot benchmark: the real gateway (dist/, a child process) pulling simulated cameras (another
 * child) on loopback, asked for pictures over HTTP like the console and integrators would.
 *
 *   npm run bench:snapshot
 *
 * Figures: a warm snapshot (a live 1080p camera's cached keyframe decoded to JPEG, request to last
 * byte), a cold one (an idle camera with a 1 s GOP: the pull, its first keyframe and the decode),
 * pictures per second over distinct live 720p cameras with the CPU the decoders used, and how many
 * decodes 100 concurrent requests for one camera cost. The gateway runs with the snapshot cache off
 * (streams.snapshots.cacheMs 0), so every request is a decode unless it shares one already running:
 * the warm and throughput figures are decodes, and `coalesced` is the sharing alone, without the
 * cache's help. Progress goes to stderr; the last stdout line is one JSON object.
 *
 * Knobs: BENCH_WARM_RUNS (30), BENCH_COLD_RUNS (7), BENCH_CAMERAS (10 live 720p cameras for the
 * throughput), BENCH_CLIENTS (4 requests in flight during it), BENCH_WINDOW_MS (10000),
 * BENCH_SPARE_DECODERS (2; 0 starts each decoder when its request comes).
 */
import { execFile } from 'node:child_process';
import { Agent, request } from 'node:http';
import { cpus, loadavg } from 'node:os';
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { jpegSize } from '../../gateway/src/snapshots/decoder.js';
import { ensureClip, type ClipKind } from '../sim/clips.js';
import { adminToken, CLK_TCK, cpuMeter, finish, gatewayApi, gatewayEnv, installHarness, log, median, pct, round, runBench, sleep, spawnUntil, tempDir, wsFlvViewer } from './harness.js';

const WARM_CLIP: ClipKind = 'h264-1080p-1s';
const COLD_CLIP: ClipKind = 'h264-720p-1s';
const LOAD_CLIP: ClipKind = 'h264-720p-1s';
const GOP_MS = 1000;
const envInt = (name: string, dflt: number) => {
  const n = Number(process.env[name] ?? dflt);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a positive integer`);
  return n;
};
const WARM_RUNS = envInt('BENCH_WARM_RUNS', 30);
const COLD_RUNS = envInt('BENCH_COLD_RUNS', 7);
const CAMERAS = envInt('BENCH_CAMERAS', 10);
const CLIENTS = envInt('BENCH_CLIENTS', 4);
const WINDOW_MS = envInt('BENCH_WINDOW_MS', 10_000);
/** streams.snapshots.spareDecoders; BENCH_SPARE_DECODERS=0 measures a decoder started per request. */
const SPARE_DECODERS = Number(process.env.BENCH_SPARE_DECODERS ?? 2);
const CONCURRENT = 100;
const GUARD_MS = 10 * 60_000;
const TARGETS = { warm_p95_ms: 150, cold_ms: GOP_MS + 700, coalesced: 1 };

const guard = installHarness(GUARD_MS);
let base = '';
let token = '';
/** Keep-alive connections, opened before the concurrent burst so its requests arrive together rather than behind 100 handshakes. */
const agent = new Agent({ keepAlive: true, maxSockets: CONCURRENT });

/** GET with the bearer token; resolves with the status, the body and the ms to its last byte. */
function get(path: string): Promise<{ status: number; body: Buffer; ms: number }> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const req = request(`${base}${path}`, { agent, headers: { authorization: `Bearer ${token}` } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks), ms: performance.now() - t0 }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

async function picture(cameraId: string, query = ''): Promise<{ ms: number; width: number; height: number }> {
  const res = await get(`/api/streams/${cameraId}/snapshot.jpg${query}`);
  const size = res.status === 200 ? jpegSize(res.body) : null;
  if (!size) throw new Error(`snapshot of ${cameraId}: ${res.status} ${res.body.toString().slice(0, 300)}`);
  return { ms: res.ms, ...size };
}

/** ms to spawn ffmpeg and have it exit (`-version`): the floor under any decode that starts a process. */
function ffmpegStartMs(): Promise<number> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => execFile('ffmpeg', ['-hide_banner', '-version'], (err) => (err ? reject(err) : resolve(performance.now() - t0))));
}

async function metric(name: string): Promise<number> {
  const text = await (await fetch(`${base}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line ? Number(line.split(' ')[1]) : NaN;
}

/** CPU seconds of a process's children that have exited and been reaped (cutime + cstime): its decoders, here. */
function reapedChildrenCpu(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[13]) + Number(fields[14])) / CLK_TCK;
}

async function main() {
  for (const clip of new Set([WARM_CLIP, COLD_CLIP, LOAD_CLIP])) await ensureClip(clip);
  const sim = await spawnUntil(process.execPath, ['--import', 'tsx', 'scripts/camera-sim.ts', '--port', '0', '--control-port', '0', '--cameras', '0'], {}, /"rtsp":"(rtsp:\/\/[^"]+)"/);
  const rtspBase = sim.match[1]!;
  log(`simulator at ${rtspBase}`);

  const dataDir = tempDir('bench-snap-');
  const env = { ...gatewayEnv(dataDir), WALLGATE_STREAMS_SNAPSHOTS_CACHE_MS: '0', WALLGATE_STREAMS_SNAPSHOTS_SPARE_DECODERS: String(SPARE_DECODERS) };
  const gw = await spawnUntil(process.execPath, ['dist/main.js'], env, /"address":"(http:\/\/[^"]+)"/);
  const gwPid = gw.child.pid!;
  base = gw.match[1]!;
  token = await adminToken(base, gw.output());
  const api = (method: string, path: string, body?: unknown) => gatewayApi({ base, token }, method, path, body);
  log(`gateway at ${base}, pid ${gwPid}`);

  const cameras = [
    { id: 'warm', clip: WARM_CLIP },
    ...Array.from({ length: CAMERAS }, (_, i) => ({ id: `load${i}`, clip: LOAD_CLIP })),
    ...Array.from({ length: COLD_RUNS }, (_, i) => ({ id: `cold${i}`, clip: COLD_CLIP })),
  ];
  const rows = cameras.map((c) => JSON.stringify({ id: c.id, name: `Bench ${c.id}`, departmentId: 'root', url: `${rtspBase}/auto/${c.clip}/${c.id}`, codec: 'h264' })).join('\n');
  const imp = await fetch(`${base}/api/sources/import?mode=all-or-nothing`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/x-ndjson' }, body: rows });
  if (imp.status !== 200) throw new Error(`import: ${imp.status} ${await imp.text()}`);

  // Live cameras, each held by a WS-FLV viewer as a wall tile would.
  const live = ['warm', ...cameras.filter((c) => c.id.startsWith('load')).map((c) => c.id)];
  const viewers = await Promise.all(
    live.map(async (id) => {
      const v = wsFlvViewer(base.replace('http', 'ws') + (await api('POST', `/api/streams/${id}/view`)).wsFlv);
      await v.firstVideo;
      return v;
    }),
  );
  await sleep(2_000);
  log(`${live.length} cameras live`);

  // Warm: one request at a time on the live 1080p camera.
  const first = await picture('warm');
  if (first.width !== 1920 || first.height !== 1080) throw new Error(`the warm picture is ${first.width}x${first.height}, not 1920x1080`);
  const warm: number[] = [];
  const bare: number[] = [];
  const decodeSum0 = await metric('wallgate_snapshot_decode_seconds_sum');
  const decodeCount0 = await metric('wallgate_snapshot_decode_seconds_count');
  for (let i = 0; i < WARM_RUNS; i++) {
    warm.push((await picture('warm')).ms);
    // Interleaved, so the baseline sees the same machine.
    bare.push(await ffmpegStartMs());
    await sleep(50);
  }
  const warmDecodeMs =
    ((await metric('wallgate_snapshot_decode_seconds_sum')) - decodeSum0) * 1000 / ((await metric('wallgate_snapshot_decode_seconds_count')) - decodeCount0);
  log(`warm p50 ${round(median(warm))} ms, p95 ${round(pct(warm, 95))} ms (decoder ${round(warmDecodeMs)} ms on average; a bare ffmpeg -version takes ${round(median(bare))} ms)`);

  // Throughput: CLIENTS requests in flight, round-robin over the distinct live 720p cameras.
  const loadIds = live.filter((id) => id !== 'warm');
  let done = 0;
  let next = 0;
  let running = true;
  const cpuBefore = reapedChildrenCpu(gwPid);
  const gatewayCpu = cpuMeter([gwPid]);
  const t0 = performance.now();
  const clients = Array.from({ length: CLIENTS }, async () => {
    while (running) {
      await picture(loadIds[next++ % loadIds.length]!);
      if (running) done++;
    }
  });
  await sleep(WINDOW_MS);
  running = false;
  const elapsedS = (performance.now() - t0) / 1000;
  const [gatewayCpuPct] = gatewayCpu();
  await Promise.all(clients);
  const snapshotsPerS = done / elapsedS;
  const decoderCpuPct = ((reapedChildrenCpu(gwPid) - cpuBefore) / elapsedS) * 100;
  log(`${round(snapshotsPerS)} snapshots/s over ${loadIds.length} cameras, decoders ${round(decoderCpuPct)}% of a core, gateway ${round(gatewayCpuPct!)}%`);

  // Coalescing: 100 requests for one picture at once, on connections already open.
  await Promise.all(Array.from({ length: CONCURRENT }, () => get('/healthz')));
  const decodesBefore = await metric('wallgate_snapshot_decodes_total');
  const burst = await Promise.all(Array.from({ length: CONCURRENT }, () => get('/api/streams/warm/snapshot.jpg?width=640')));
  if (burst.some((r) => r.status !== 200)) throw new Error(`burst: statuses ${[...new Set(burst.map((r) => r.status))].join(',')}`);
  const coalesced = (await metric('wallgate_snapshot_decodes_total')) - decodesBefore;
  const burstMs = Math.max(...burst.map((r) => r.ms));
  log(`${CONCURRENT} concurrent requests: ${coalesced} decode(s), all answered in ${round(burstMs)} ms`);
  for (const v of viewers) v.close();

  // Cold: idle cameras with a 1 s GOP, one at a time; each pull ends (streams.snapshots.lingerMs) before the next.
  const cold: number[] = [];
  for (let i = 0; i < COLD_RUNS; i++) {
    await sleep(1_500);
    cold.push((await picture(`cold${i}`, '?width=640')).ms);
    log(`cold ${round(cold.at(-1)!)} ms`);
  }
  await sleep(1_500);
  const sessionsLeft = ((await api('GET', '/api/streams')).items as { cameraId: string }[]).filter((s) => s.cameraId.startsWith('cold')).length;

  const result = {
    warm_snapshot_ms: { p50: round(median(warm)), p95: round(pct(warm, 95)) },
    cold_snapshot_ms: { p50: round(median(cold)), p95: round(pct(cold, 95)), max: round(Math.max(...cold)) },
    snapshots_per_s: round(snapshotsPerS),
    decoder_cpu_pct: round(decoderCpuPct),
    coalesced,
    targets: TARGETS,
    met: {
      warm: pct(warm, 95) <= TARGETS.warm_p95_ms,
      cold: Math.max(...cold) <= TARGETS.cold_ms,
      coalesced: coalesced === TARGETS.coalesced,
    },
    conditions: {
      cores: cpus().length,
      cpu: cpus()[0]?.model,
      load_avg_1m_at_end: round(loadavg()[0]!, 2),
      warm: {
        clip: WARM_CLIP,
        size: '1920x1080',
        runs: WARM_RUNS,
        width: 'native',
        decoder_mean_ms: round(warmDecodeMs),
        bare_ffmpeg_version_ms: { p50: round(median(bare)), p95: round(pct(bare, 95)) },
      },
      cold: { clip: COLD_CLIP, gop_ms: GOP_MS, runs: COLD_RUNS, width: 640, pulls_left_after_ms: 1_500, pulls_left: sessionsLeft },
      throughput: { clip: LOAD_CLIP, cameras: loadIds.length, clients: CLIENTS, window_ms: WINDOW_MS, width: 'native', gateway_cpu_pct: round(gatewayCpuPct!) },
      coalesced: { requests: CONCURRENT, width: 640, slowest_answer_ms: round(burstMs) },
      snapshots: { cacheMs: 0, maxConcurrentDecodes: 2, quality: 4, lingerMs: 1_000, spareDecoders: SPARE_DECODERS },
      live_cameras_during_warm_and_throughput: live.length,
    },
  };
  await finish(result, gw.child, guard);
}

runBench(main);

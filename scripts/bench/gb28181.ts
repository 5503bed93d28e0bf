/**
 * GB/T 28181 benchmark: the real gateway (dist/, a child process) as the upper platform, simulated
 * devices and lower platforms (scripts/sim/gb-device.ts) registering to it on loopback.
 *
 *   npm run bench:gb28181
 *
 * Figures: `register_per_s` (1,000 devices, each a 401 challenge and a digest REGISTER, 50 at a
 * time), `catalog_import_ms` (one platform announcing `catalog_channels` channels in multi-message
 * Catalog responses: from the gateway's query reaching the platform to the last channel in the
 * registry), `invite_to_first_frame_ms` (a cold GB channel, 1 s GOP: the view request to the first
 * video picture at a WS-FLV reader; INVITE, ACK, RTP, PS demux and the remux in between),
 * `ps_demux_mb_per_s` (the PS demuxer alone, MEDIA's scripts/bench/ps-demux.ts), and `sessions`
 * (100 concurrent GB live channels at 2 Mbit/s, each read over WS-FLV, counted as advancing when
 * each reader got at least half the stream's bit rate over the window) with the gateway's CPU.
 * The 100 sessions' platform runs in a child process (scripts/gb-sim.ts), so its sending is not
 * charged to this process's readers. Progress goes to stderr; the last stdout line is one JSON object.
 *
 * Knobs: BENCH_DEVICES (1000), BENCH_CATALOG_CHANNELS (10000), BENCH_CATALOG_PAGE (50 items per
 * MESSAGE), BENCH_COLD_RUNS (7), BENCH_SESSIONS (100), BENCH_WINDOW_MS (10000),
 * BENCH_ONLY=register|catalog|invite|demux|sessions (one phase; the others report null),
 * BENCH_GATEWAY_NODE_ARGS (node options for the gateway alone, space-separated: "--cpu-prof
 * --cpu-prof-dir=/tmp/prof" or "--perf-basic-prof" to see where its CPU goes).
 */
import { randomBytes } from 'node:crypto';
import { cpus, loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import { ensureClip, type ClipKind } from '../sim/clips.js';
import { GbSimDevice, GbSimPlatform } from '../sim/gb-device.js';
import { adminToken, cpuMeter, finish, gatewayApi, gatewayEnv, installHarness, log, median, pct, round, runBench, sleep, spawnUntil, tempDir, wsFlvViewer } from './harness.js';
import { measurePsDemux, type PsDemuxResult } from './ps-demux.js';

const envInt = (name: string, dflt: number) => {
  const n = Number(process.env[name] ?? dflt);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a positive integer`);
  return n;
};
const DEVICES = envInt('BENCH_DEVICES', 1000);
const CATALOG_CHANNELS = envInt('BENCH_CATALOG_CHANNELS', 10_000);
const CATALOG_PAGE = envInt('BENCH_CATALOG_PAGE', 50);
const COLD_RUNS = envInt('BENCH_COLD_RUNS', 7);
const SESSIONS = envInt('BENCH_SESSIONS', 100);
const WINDOW_MS = envInt('BENCH_WINDOW_MS', 10_000);
const ONLY = process.env.BENCH_ONLY ?? null;
const GATEWAY_NODE_ARGS = (process.env.BENCH_GATEWAY_NODE_ARGS ?? '').split(' ').filter(Boolean);
const REGISTER_CONCURRENCY = 50;
/** The simulated side waits this long for an answer: a loaded machine must slow the figures, not fail the run. */
const SIM_REQUEST_TIMEOUT_MS = 30_000;
const CLIP: ClipKind = 'h264-720p-1s';
const CLIP_KBPS = 2000;
const GUARD_MS = 15 * 60_000;
const TARGETS = { catalog_import_ms: 10_000, invite_to_first_frame_ms: 1_500, ps_demux_mb_per_s: 200, sessions: SESSIONS, gateway_cpu_pct: 25 };

const SERVER_ID = '34020000002000000001';
/** One admission rule for every simulated id: they all start with the domain's first 4 digits. */
const RULE_PREFIX = '3402';
const CATALOG_PLATFORM = '34020100002000000001';
const SESSIONS_PLATFORM = '34020200002000000001';
const DEVICE_PREFIX = '3402030000';

const guard = installHarness(GUARD_MS);
const runs = (phase: string) => ONLY === null || ONLY === phase;

async function main() {
  const clip = await ensureClip(CLIP);
  // The clip's real rate (the encoder's 2 Mbit/s is a cap; the test pattern needs less): what a reader should get.
  const clipKbps = (clip.frames.reduce((sum, f) => sum + f.nalUnits.reduce((a, n) => a + n.length + 4, 0), 0) * 8) / (clip.frames.length / clip.fps) / 1000;
  const password = randomBytes(9).toString('base64url');
  const dataDir = tempDir('bench-gb-');
  // A receive range of its own, clear of any other gateway on the machine (tests run with their own).
  const portMin = 40_000 + Math.floor(Math.random() * 20) * 1000;
  const env = {
    ...gatewayEnv(dataDir),
    WALLGATE_GB28181_HOST: '127.0.0.1',
    WALLGATE_GB28181_PORT: '0',
    WALLGATE_GB28181_MEDIA_HOST: '127.0.0.1',
    WALLGATE_GB28181_MEDIA_PORT_MIN: String(portMin),
    WALLGATE_GB28181_MEDIA_PORT_MAX: String(portMin + 999),
  };
  const gw = await spawnUntil(process.execPath, [...GATEWAY_NODE_ARGS, 'dist/main.js'], env, /"address":"(http:\/\/[^"]+)"/);
  const gwPid = gw.child.pid!;
  const base = gw.match[1]!;
  const sipLine = gw.output().split('\n').find((l) => l.includes('GB/T 28181 SIP server listening'));
  const sipPort = Number(/"udpPort":(\d+)/.exec(sipLine ?? '')?.[1]);
  if (!sipPort) throw new Error('the gateway logged no GB/T 28181 SIP port');
  const token = await adminToken(base, gw.output());
  const api = (method: string, path: string, body?: unknown) => gatewayApi({ base, token }, method, path, body);
  log(`gateway at ${base}, pid ${gwPid}, SIP on ${sipPort}`);
  await api('POST', '/api/gb28181/rules', { prefix: RULE_PREFIX, departmentId: 'root', password, streamMode: 'udp' });
  const server = { address: '127.0.0.1', port: sipPort, id: SERVER_ID };
  const deviceRecord = async (id: string) => (await api('GET', `/api/gb28181/devices/${id}`)) as { online: boolean; channelCount: number };

  // ---- register: 1,000 devices, 50 at a time ----------------------------------------------
  let registerPerS = NaN;
  let registerMs = NaN;
  let registerGatewayCpu = NaN;
  let registerSimCpu = NaN;
  if (runs('register')) {
    const devices = Array.from({ length: DEVICES }, (_, i) => new GbSimDevice({ id: `${DEVICE_PREFIX}1320${String(i + 1).padStart(6, '0')}`, password, server, keepaliveIntervalMs: 60_000, requestTimeoutMs: SIM_REQUEST_TIMEOUT_MS }));
    const queue = [...devices];
    const meter = cpuMeter([gwPid, process.pid]);
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: REGISTER_CONCURRENCY }, async () => {
        for (let d = queue.shift(); d; d = queue.shift()) await d.start();
      }),
    );
    registerMs = performance.now() - t0;
    const cpu = meter();
    registerGatewayCpu = cpu[0]!;
    registerSimCpu = cpu[1]!;
    registerPerS = DEVICES / (registerMs / 1000);
    const sample = devices[Math.floor(DEVICES / 2)]!;
    if (!(await deviceRecord(sample.id)).online) throw new Error(`${sample.id} registered but the gateway does not show it online`);
    log(`${DEVICES} devices registered in ${round(registerMs)} ms: ${round(registerPerS)}/s`);
    // Their catalog queries and subscriptions follow each registration; let them finish, then unregister.
    await sleep(3_000);
    await Promise.all(devices.map((d) => d.stop()));
  }

  // ---- catalog: one platform, 10,000 channels ------------------------------------------------
  let catalogMs = NaN;
  let catalogMessages = 0;
  let catalogSentMs = NaN;
  let catalogGatewayCpu = NaN;
  let catalogSimCpu = NaN;
  const platform = new GbSimPlatform({ id: CATALOG_PLATFORM, password, server, transport: 'tcp', channels: CATALOG_CHANNELS, live: COLD_RUNS, catalogPageSize: CATALOG_PAGE, clip: CLIP, requestTimeoutMs: SIM_REQUEST_TIMEOUT_MS });
  if (runs('catalog') || runs('invite')) {
    let queriedAt = NaN;
    let meter: (() => number[]) | null = null;
    platform.on('query', (q: { cmdType: string }) => {
      if (q.cmdType !== 'Catalog' || !Number.isNaN(queriedAt)) return;
      queriedAt = performance.now();
      meter = cpuMeter([gwPid, process.pid]);
    });
    platform.on('catalog-sent', () => (catalogSentMs = performance.now() - queriedAt));
    await platform.start();
    const deadline = performance.now() + 120_000;
    for (;;) {
      const rec = await deviceRecord(CATALOG_PLATFORM);
      if (rec.channelCount >= CATALOG_CHANNELS) break;
      if (performance.now() > deadline) throw new Error(`catalog: ${rec.channelCount} of ${CATALOG_CHANNELS} channels after 120 s`);
      await sleep(50);
    }
    catalogMs = performance.now() - queriedAt;
    [catalogGatewayCpu, catalogSimCpu] = meter!() as [number, number];
    catalogMessages = Math.ceil((CATALOG_CHANNELS + platform.catalog().groups.length) / CATALOG_PAGE);
    // The count is the importer's; the last channel is looked up in the registry itself.
    const last = platform.catalog().channels.at(-1)!;
    const source = (await api('GET', `/api/sources/${last.id}`)) as { name: string; protocol: string };
    if (source.name !== last.name || source.protocol !== 'gb28181') throw new Error(`catalog: the registry has ${JSON.stringify(source)} for ${last.id}`);
    log(`catalog of ${CATALOG_CHANNELS} channels in ${catalogMessages} messages imported in ${round(catalogMs)} ms`);
  }

  // ---- invite: cold channels to the first picture over WS-FLV --------------------------------
  const cold: number[] = [];
  if (runs('invite')) {
    const live = platform.catalog().channels.filter((c) => c.live);
    for (const ch of live.slice(0, COLD_RUNS)) {
      const t0 = performance.now();
      const v = await api('POST', `/api/streams/${ch.id}/view`);
      const viewer = wsFlvViewer(base.replace('http', 'ws') + v.wsFlv);
      await viewer.firstVideo;
      cold.push(performance.now() - t0);
      viewer.close();
      log(`cold GB channel: first picture after ${round(cold.at(-1)!)} ms`);
      await sleep(500);
    }
  }
  await platform.stop();

  // ---- PS demux throughput -----------------------------------------------------------------
  let demux: PsDemuxResult | null = null;
  if (runs('demux')) {
    demux = await measurePsDemux();
    log(`PS demux ${round(demux.ps_demux_mb_per_s)} MB/s`);
  }

  // ---- 100 concurrent sessions ---------------------------------------------------------------
  let advancing = NaN;
  let gatewayCpu = NaN;
  let simCpu = NaN;
  let ffmpegCpu = NaN;
  let ffmpegCount = NaN;
  let sessionsReadyMs = NaN;
  let readerKbps: number[] = [];
  if (runs('sessions')) {
    const sim = await spawnUntil(
      process.execPath,
      ['--import', 'tsx', 'scripts/gb-sim.ts', '--server', `127.0.0.1:${sipPort}`, '--server-id', SERVER_ID, '--platform', SESSIONS_PLATFORM, '--channels', String(SESSIONS), '--live', String(SESSIONS), '--clip', CLIP, '--transport', 'tcp'],
      { GB_SIM_PASSWORD: password },
      /"registered":1\b/,
    );
    for (;;) {
      if ((await deviceRecord(SESSIONS_PLATFORM)).channelCount >= SESSIONS) break;
      await sleep(200);
    }
    log(`platform ${SESSIONS_PLATFORM} registered with ${SESSIONS} live channels`);
    const ids = Array.from({ length: SESSIONS }, (_, i) => `${SESSIONS_PLATFORM.slice(0, 10)}1310${String(i + 1).padStart(6, '0')}`);
    const t0 = performance.now();
    const viewers = await Promise.all(
      ids.map(async (id) => {
        const v = wsFlvViewer(base.replace('http', 'ws') + (await api('POST', `/api/streams/${id}/view`)).wsFlv);
        await v.firstVideo.catch((err: unknown) => {
          throw new Error(`${id}: ${(err as Error).message}`);
        });
        return v;
      }),
    );
    sessionsReadyMs = performance.now() - t0;
    log(`${SESSIONS} GB sessions playing after ${round(sessionsReadyMs)} ms; measuring ${WINDOW_MS / 1000} s`);
    await sleep(3_000);
    const streams = ((await api('GET', '/api/streams')).items as { pid: number | null; cameraId: string }[]).filter((s) => ids.includes(s.cameraId));
    const ffmpegPids = streams.map((s) => s.pid).filter((p): p is number => p !== null);
    ffmpegCount = ffmpegPids.length;
    const bytes0 = viewers.map((v) => v.bytes());
    const meter = cpuMeter([gwPid, sim.child.pid!, ...ffmpegPids]);
    await sleep(WINDOW_MS);
    const cpu = meter();
    gatewayCpu = cpu[0]!;
    simCpu = cpu[1]!;
    ffmpegCpu = cpu.slice(2).filter((x) => !Number.isNaN(x)).reduce((a, b) => a + b, 0);
    const minBytes = ((clipKbps * 1000) / 8) * (WINDOW_MS / 1000) * 0.5;
    const received = viewers.map((v, i) => v.bytes() - bytes0[i]!);
    advancing = received.filter((b) => b >= minBytes).length;
    readerKbps = received.map((b) => (b * 8) / WINDOW_MS);
    log(`${advancing}/${SESSIONS} advancing (each reader's kbit/s: p50 ${round(median(readerKbps))}, min ${round(Math.min(...readerKbps))}); gateway ${round(gatewayCpu)}% cpu, ${ffmpegCount} ffmpeg ${round(ffmpegCpu)}% together, simulator ${round(simCpu)}%`);
    for (const v of viewers) v.close();
    sim.child.kill('SIGTERM');
  }

  const result = {
    register_per_s: round(registerPerS),
    catalog_channels: runs('catalog') ? CATALOG_CHANNELS : null,
    catalog_import_ms: round(catalogMs),
    invite_to_first_frame_ms: cold.length ? { p50: round(median(cold)), p95: round(pct(cold, 95)), max: round(Math.max(...cold)) } : null,
    ps_demux_mb_per_s: demux ? demux.ps_demux_mb_per_s : null,
    sessions: runs('sessions') ? advancing : null,
    gateway_cpu_pct: round(gatewayCpu),
    targets: TARGETS,
    // null: the phase did not run (BENCH_ONLY).
    met: {
      catalog_import_ms: Number.isNaN(catalogMs) ? null : catalogMs <= TARGETS.catalog_import_ms,
      invite_to_first_frame_ms: cold.length ? Math.max(...cold) <= TARGETS.invite_to_first_frame_ms : null,
      ps_demux_mb_per_s: demux ? demux.ps_demux_mb_per_s >= TARGETS.ps_demux_mb_per_s : null,
      sessions: runs('sessions') ? advancing === TARGETS.sessions : null,
      gateway_cpu_pct: Number.isNaN(gatewayCpu) ? null : gatewayCpu <= TARGETS.gateway_cpu_pct,
    },
    conditions: {
      cores: cpus().length,
      cpu: cpus()[0]?.model,
      load_avg_1m_at_end: round(loadavg()[0]!, 2),
      only: ONLY,
      register: { devices: DEVICES, in_flight: REGISTER_CONCURRENCY, sip: 'udp', digest: 'MD5 qop=auth after a 401', ms: round(registerMs), gateway_cpu_pct: round(registerGatewayCpu), simulator_cpu_pct: round(registerSimCpu) },
      catalog: { sip: 'tcp', items_per_message: CATALOG_PAGE, messages: catalogMessages, encoding: 'GB2312', one_message_at_a_time: true, last_message_answered_ms: round(catalogSentMs), gateway_cpu_pct: round(catalogGatewayCpu), simulator_cpu_pct: round(catalogSimCpu), clock: 'from the query reaching the platform to channelCount in GET /api/gb28181/devices/:id' },
      invite: { clip: CLIP, gop_ms: 1000, runs: cold.length, media: 'udp', reader: 'WS-FLV', clock: 'POST /api/streams/:id/view to the first video NALU tag' },
      ps_demux: demux?.conditions ?? null,
      sessions: { clip: CLIP, encoder_cap_kbps: CLIP_KBPS, clip_kbps: round(clipKbps), media: 'udp', sip: 'tcp', readers: 'one WS-FLV each', window_ms: WINDOW_MS, playing_after_ms: round(sessionsReadyMs), reader_kbps: readerKbps.length ? { p50: round(median(readerKbps)), min: round(Math.min(...readerKbps)) } : null, advancing_means: "at least half the clip's bit rate read in the window", ffmpeg: ffmpegCount, ffmpeg_cpu_pct_total: round(ffmpegCpu), simulator_cpu_pct: round(simCpu) },
    },
  };
  await finish(result, gw.child, guard);
}

runBench(main);

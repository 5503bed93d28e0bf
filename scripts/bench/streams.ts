/**
 * Streaming benchmark: the real gateway (dist/, a child process) pulling simulated cameras (another
 * child) on loopback, driven from here over HTTP and WebSocket like players would.
 *
 *   npm run bench:streams
 *
 * Figures: cold start to a playable HLS playlist against a bare ffmpeg remux of the same kind of
 * camera, warm joins over HLS and WS-FLV, one ffmpeg for 100 viewers and the CPU of fanning out to
 * them, 100 concurrent sessions with the gateway's and ffmpeg's CPU against bare ffmpeg doing the
 * same remux. Progress goes to stderr; the last stdout line is one JSON object.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { instanceIdFor } from '../../gateway/src/streams/manager.js';
import { markedProcesses } from '../../gateway/src/streams/process/sweep.js';
import { adminToken, cleanup, gatewayApi, gatewayEnv, installHarness, log, mean, measureCpu, median, pct, round, rssMb, sleep, spawnUntil, tempDir, track, wsFlvViewer } from './harness.js';

const CLIP = 'h264-720p-1s';
const COLD_RUNS = 7;
const JOIN_RUNS = 15;
const FANOUT_VIEWERS = 100;
const SESSIONS = 100;
const WINDOW_MS = 20_000;
const GUARD_MS = 10 * 60_000;
const TARGETS = { cold_over_bare_ms: 300, warm_join_ms: 250, viewers_per_pull: 1, sessions: 100, gateway_cpu_pct: 15, ffmpeg_ratio: 1.1 };
/** How often each session's holder fetches its playlist (hls.js fetches every target duration, ~1 s). */
const POLL_MS = Number(process.env.BENCH_POLL_MS ?? 2000);

let instance = '';
const guard = installHarness(GUARD_MS);

// ---- gateway API ----------------------------------------------------------------------------

let base = '';
let token = '';

const api = (method: string, path: string, body?: unknown) => gatewayApi({ base, token }, method, path, body);

async function view(id: string): Promise<{ hls: string; flv: string; ws: string }> {
  const v = await api('POST', `/api/streams/${id}/view`);
  return { hls: base + v.hls, flv: base + v.flv, ws: base.replace('http', 'ws') + v.wsFlv };
}

/** Request to a playlist that lists a segment, then that segment's first bytes; timed from the playlist request. */
async function hlsJoin(id: string): Promise<{ playlistMs: number; mediaMs: number }> {
  const urls = await view(id);
  const t0 = performance.now();
  for (;;) {
    const res = await fetch(urls.hls);
    if (res.status !== 200) throw new Error(`playlist ${id}: ${res.status} ${await res.text()}`);
    const seg = (await res.text()).split('\n').find((l) => l.endsWith('.ts'));
    if (!seg) continue;
    const playlistMs = performance.now() - t0;
    const segRes = await fetch(urls.hls.replace('index.m3u8', seg));
    const reader = segRes.body!.getReader();
    await reader.read();
    const mediaMs = performance.now() - t0;
    await reader.cancel();
    return { playlistMs, mediaMs };
  }
}

// ---- bare ffmpeg, the baseline --------------------------------------------------------------

/**
 * Bare ffmpeg pulling a camera: to HLS alone (the baseline), or to the gateway's two outputs,
 * HLS and FLV on stdout (here thrown away), to tell the cost of the second output from the engine's.
 */
function bareFfmpeg(rtsp: string, dir: string, outputs: 'hls' | 'hls+flv' = 'hls'): ChildProcess {
  const args = ['-hide_banner', '-nostdin', '-loglevel', 'error', '-rtsp_transport', 'tcp', '-probesize', '32768', '-analyzeduration', '500000', '-i', rtsp];
  args.push('-map', '0:v:0', '-c', 'copy');
  const hlsOptions = 'hls_time=0.9:hls_list_size=5:hls_flags=delete_segments+temp_file';
  if (outputs === 'hls') args.push('-f', 'hls', ...hlsOptions.split(':').flatMap((o) => ['-' + o.split('=')[0]!, o.split('=')[1]!]), join(dir, 'index.m3u8'));
  else args.push('-f', 'tee', `[f=hls:${hlsOptions}]${join(dir, 'index.m3u8')}|[f=flv]pipe\\:1`);
  return track(spawn('ffmpeg', args, { stdio: 'ignore' }));
}

async function bareColdStart(rtsp: string): Promise<number> {
  const dir = tempDir('bench-bare-');
  const t0 = performance.now();
  const child = bareFfmpeg(rtsp, dir);
  while (!existsSync(join(dir, 'index.m3u8'))) await sleep(5);
  const ms = performance.now() - t0;
  child.kill('SIGKILL');
  return ms;
}

// ---- the run --------------------------------------------------------------------------------

async function main() {
  const sim = await spawnUntil(process.execPath, ['--import', 'tsx', 'scripts/camera-sim.ts', '--port', '0', '--control-port', '0', '--cameras', '0'], {}, /"rtsp":"(rtsp:\/\/[^"]+)"/);
  const rtspBase = sim.match[1]!;
  const camUrl = (name: string) => `${rtspBase}/auto/${CLIP}/${name}`;
  log(`simulator at ${rtspBase}`);

  const dataDir = tempDir('bench-gw-');
  const env = {
    ...gatewayEnv(dataDir),
    WALLGATE_STREAMS_HLS_VIEWER_TIMEOUT_MS: '5000',
  };
  // BENCH_GATEWAY_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof" profiles the gateway under this load.
  const nodeArgs = (process.env.BENCH_GATEWAY_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const gw = await spawnUntil(process.execPath, [...nodeArgs, 'dist/main.js'], env, /"address":"(http:\/\/[^"]+)"/);
  const gwPid = gw.child.pid!;
  // BENCH_GATEWAY_LOG=<file> keeps the gateway's output (with --trace-gc, say) for a closer look.
  const gatewayLog = process.env.BENCH_GATEWAY_LOG;
  if (gatewayLog) process.on('exit', () => writeFileSync(gatewayLog, gw.output()));
  base = gw.match[1]!;
  instance = await instanceIdFor(dataDir);
  token = await adminToken(base, gw.output());
  log(`gateway at ${base}, pid ${gwPid}`);

  const ids = Array.from({ length: SESSIONS + COLD_RUNS + 1 }, (_, i) => `cam${String(i).padStart(3, '0')}`);
  const rows = ids.map((id) => JSON.stringify({ id, name: `Bench ${id}`, departmentId: 'root', url: camUrl(id), codec: 'h264' })).join('\n');
  const imp = await fetch(`${base}/api/sources/import?mode=all-or-nothing`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/x-ndjson' }, body: rows });
  if (imp.status !== 200) throw new Error(`import: ${imp.status} ${await imp.text()}`);

  // BENCH_ONLY=sessions skips to the 100-session phase (for profiling it).
  const only = process.env.BENCH_ONLY;
  const cold: number[] = [];
  const bare: number[] = [];
  const hlsJoins: number[] = [];
  const flvJoins: number[] = [];
  let fanFirst: number[] = [];
  let ffmpegCount = NaN;
  let fanCpu = NaN;
  let fanMbit = NaN;
  let slowest = NaN;
  if (only !== 'sessions') {
    // Cold starts, interleaved with bare ffmpeg on fresh cameras of the same clip, so both see the same machine.
    for (let i = 0; i < COLD_RUNS; i++) {
      cold.push((await hlsJoin(`cam${String(SESSIONS + i).padStart(3, '0')}`)).playlistMs);
      bare.push(await bareColdStart(camUrl(`bare${i}`)));
      log(`cold ${round(cold.at(-1)!)} ms, bare ${round(bare.at(-1)!)} ms`);
    }

    // Warm joins on a live session.
    const warmId = ids[SESSIONS + COLD_RUNS]!;
    await hlsJoin(warmId);
    const anchor = wsFlvViewer((await view(warmId)).ws);
    await anchor.firstVideo;
    for (let i = 0; i < JOIN_RUNS; i++) {
      hlsJoins.push((await hlsJoin(warmId)).mediaMs);
      const v = wsFlvViewer((await view(warmId)).ws);
      flvJoins.push(await v.firstVideo);
      v.close();
      await sleep(100);
    }
    log(`warm join hls p50 ${round(median(hlsJoins))} ms, flv p50 ${round(median(flvJoins))} ms`);

    // 100 viewers of one camera: one ffmpeg, and what the fan-out costs. The cold-start sessions go first.
    while ((await markedProcesses(instance)).length > 1) await sleep(250);
    const fan = await Promise.all(
      Array.from({ length: FANOUT_VIEWERS }, async () => {
        const v = wsFlvViewer((await view(warmId)).ws);
        return { v, first: await v.firstVideo };
      }),
    );
    fanFirst = fan.map((f) => f.first);
    ffmpegCount = (await markedProcesses(instance)).length;
    const fanBytes0 = fan.map((f) => f.v.bytes());
    fanCpu = (await measureCpu([gwPid], 10_000))[0]!;
    fanMbit = (fan.reduce((s, f, i) => s + f.v.bytes() - fanBytes0[i]!, 0) * 8) / 10 / 1e6;
    slowest = Math.min(...fan.map((f, i) => f.v.bytes() - fanBytes0[i]!));
    log(`100 viewers: ${ffmpegCount} ffmpeg, first data p50 ${round(median(fanFirst))} ms, ${round(fanMbit)} Mbit/s out at ${round(fanCpu)}% cpu`);
    for (const f of fan) f.v.close();
    anchor.close();
  }

  // 100 concurrent sessions, each held by one HLS viewer polling its playlist.
  const started = performance.now();
  const holders = await Promise.all(ids.slice(0, SESSIONS).map(async (id) => ({ id, urls: await view(id) })));
  const seq = new Map<string, number[]>();
  let polling = true;
  const poll = async (h: { id: string; urls: { hls: string } }) => {
    while (polling) {
      const res = await fetch(h.urls.hls).catch(() => null);
      const text = res && res.status === 200 ? await res.text() : '';
      const m = /#EXT-X-MEDIA-SEQUENCE:(\d+)/.exec(text);
      if (m) seq.set(h.id, [...(seq.get(h.id) ?? []), Number(m[1])]);
      await sleep(POLL_MS);
    }
  };
  const pollers = holders.map((h) => poll(h));
  while ((await api('GET', '/api/streams')).items.filter((s: { state: string }) => s.state === 'ready').length < SESSIONS) {
    if (performance.now() - started > 120_000) break;
    await sleep(500);
  }
  const allReadyMs = performance.now() - started;
  await sleep(3000);
  seq.clear();
  const sessionsList = (await api('GET', '/api/streams')).items as { pid: number | null; state: string; cameraId: string }[];
  const ffmpegPids = sessionsList.filter((s) => s.pid !== null && ids.slice(0, SESSIONS).includes(s.cameraId)).map((s) => s.pid!);
  log(`${ffmpegPids.length} sessions ready after ${round(allReadyMs / 1000)} s; measuring ${WINDOW_MS / 1000} s`);
  const cpu = await measureCpu([gwPid, ...ffmpegPids], WINDOW_MS);
  const gatewayRssMb = rssMb(gwPid);
  const gatewayCpu = cpu[0]!;
  const ffmpegCpu = cpu.slice(1).filter((x) => !Number.isNaN(x));
  const advancing = [...seq.values()].filter((s) => s.length >= 2 && s.at(-1)! > s[0]!).length;
  polling = false;
  await Promise.all(pollers);
  log(`gateway ${round(gatewayCpu)}% cpu, ffmpeg ${round(mean(ffmpegCpu), 2)}% each, ${advancing} sessions advancing`);

  // Let the gateway close its sessions, then bare ffmpeg doing the same remux, same count, same window.
  gw.child.kill('SIGTERM');
  await new Promise((r) => gw.child.once('exit', r));
  const bareRun = async (outputs: 'hls' | 'hls+flv') => {
    const procs = Array.from({ length: SESSIONS }, (_, i) => bareFfmpeg(camUrl(`barew${i}`), tempDir('bench-barew-'), outputs));
    await sleep(5000);
    const cpu = (await measureCpu(procs.map((p) => p.pid!), WINDOW_MS)).filter((x) => !Number.isNaN(x));
    for (const p of procs) p.kill('SIGKILL');
    await sleep(1000);
    log(`bare ffmpeg to ${outputs}: ${round(mean(cpu), 2)}% each`);
    return cpu;
  };
  const bareCpu = await bareRun('hls');
  const bareTeeCpu = await bareRun('hls+flv');

  const result = {
    bench: 'streams',
    cold_hls_ms: round(median(cold)),
    bare_ffmpeg_hls_ms: round(median(bare)),
    cold_minus_bare_ms: round(median(cold) - median(bare)),
    warm_join_hls_ms: round(median(hlsJoins)),
    warm_join_flv_ms: round(median(flvJoins)),
    viewers_per_pull: ffmpegCount,
    fanout_first_data_p50_ms: round(median(fanFirst)),
    fanout_first_data_p95_ms: round(pct(fanFirst, 95)),
    fanout_mbit_per_s: round(fanMbit),
    fanout_gateway_cpu_pct: round(fanCpu),
    fanout_slowest_viewer_bytes: slowest,
    sessions: advancing,
    sessions_ready_s: round(allReadyMs / 1000),
    gateway_cpu_pct: round(gatewayCpu),
    gateway_rss_mb_100_sessions: gatewayRssMb,
    ffmpeg_cpu_pct_per_session: round(mean(ffmpegCpu), 2),
    bare_ffmpeg_cpu_pct_per_session: round(mean(bareCpu), 2),
    ffmpeg_cpu_ratio: round(mean(ffmpegCpu) / mean(bareCpu), 2),
    bare_ffmpeg_hls_flv_cpu_pct_per_session: round(mean(bareTeeCpu), 2),
    ffmpeg_cpu_ratio_same_outputs: round(mean(ffmpegCpu) / mean(bareTeeCpu), 2),
    targets: TARGETS,
    met: {
      cold: median(cold) <= median(bare) + TARGETS.cold_over_bare_ms,
      warm_joins: median(hlsJoins) <= TARGETS.warm_join_ms && median(flvJoins) <= TARGETS.warm_join_ms,
      viewers_per_pull: ffmpegCount === 1,
      sessions: advancing >= TARGETS.sessions,
      gateway_cpu: gatewayCpu <= TARGETS.gateway_cpu_pct,
      ffmpeg_ratio: mean(ffmpegCpu) / mean(bareCpu) <= TARGETS.ffmpeg_ratio,
    },
    conditions: {
      camera: `simulated RTSP/TCP, ${CLIP} (1280x720 25 fps, 1 s GOP, ~2 Mbit/s, no audio), loopback`,
      cold_runs: COLD_RUNS,
      join_runs: JOIN_RUNS,
      fanout_viewers: FANOUT_VIEWERS,
      session_holders: `one HLS viewer per session fetching its playlist every ${POLL_MS} ms`,
      cpu_window_ms: WINDOW_MS,
      cpus: cpus().length,
      cpu_model: cpus()[0]?.model,
      node: process.version,
      note: 'simulator, bench client and gateway share the machine; one core = 100%',
    },
  };
  clearTimeout(guard);
  cleanup();
  process.stdout.write(JSON.stringify(result) + '\n');
  process.exit(0);
}

main().catch((e: Error) => {
  log(e.stack ?? e.message);
  cleanup();
  process.exit(1);
});

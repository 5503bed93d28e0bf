/**
 * Shutdown benchmark: the real gateway (dist/, a child process) pulling 100 simulated cameras, each
 * watched by one WS-FLV viewer (every tenth of which has stopped reading), gets SIGTERM; timed from the signal to its exit, then the process
 * table is searched for anything it left (its ffmpeg children, anything carrying its marker).
 *
 *   npm run bench:shutdown
 *
 * Progress goes to stderr; the last stdout line is one JSON object.
 */
import { readdir, readFile } from 'node:fs/promises';
import { cpus } from 'node:os';
import { performance } from 'node:perf_hooks';
import { instanceIdFor } from '../../gateway/src/streams/manager.js';
import { markedProcesses } from '../../gateway/src/streams/process/sweep.js';
import { adminToken, gatewayEnv, installHarness, log, round, runBench, sleep, spawnUntil, tempDir, wsFlvViewer } from './harness.js';

const SESSIONS = Number(process.env.BENCH_SESSIONS ?? 100);
/** Viewers that stop reading before the signal: they answer no close, so only a forced close ends them. */
const SLOW_VIEWERS = Math.min(SESSIONS, Number(process.env.BENCH_SLOW_VIEWERS ?? Math.ceil(SESSIONS / 10)));
const CLIP = 'h264-720p-1s';
const TARGET_MS = 3_000;
const GUARD_MS = 10 * 60_000;

/** The pids of the live processes whose parent is `ppid`. */
async function childrenOf(ppid: number): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(fields[1]) === ppid) pids.push(Number(entry));
  }
  return pids;
}

/** Which of these pids are still in the process table (a zombie counts: nobody reaped it). */
async function alive(pids: number[]): Promise<number[]> {
  const left: number[] = [];
  for (const pid of pids) if (await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => null)) left.push(pid);
  return left;
}

runBench(async () => {
  const guard = installHarness(GUARD_MS);
  const sim = await spawnUntil(process.execPath, ['--import', 'tsx', 'scripts/camera-sim.ts', '--port', '0', '--control-port', '0', '--cameras', '0'], {}, /"rtsp":"(rtsp:\/\/[^"]+)"/);
  const rtspBase = sim.match[1]!;
  const dataDir = tempDir('bench-shutdown-');
  const gw = await spawnUntil(process.execPath, ['dist/main.js'], gatewayEnv(dataDir), /"address":"(http:\/\/[^"]+)"/);
  const base = gw.match[1]!;
  const gwPid = gw.child.pid!;
  const instance = await instanceIdFor(dataDir);
  const token = await adminToken(base, gw.output());
  const auth = { authorization: `Bearer ${token}` };
  log(`gateway at ${base}, pid ${gwPid}; simulator at ${rtspBase}`);

  const ids = Array.from({ length: SESSIONS }, (_, i) => `cam${String(i).padStart(3, '0')}`);
  const rows = ids.map((id) => JSON.stringify({ id, name: `Bench ${id}`, departmentId: 'root', url: `${rtspBase}/auto/${CLIP}/${id}`, codec: 'h264' })).join('\n');
  const imp = await fetch(`${base}/api/sources/import?mode=all-or-nothing`, { method: 'POST', headers: { ...auth, 'content-type': 'application/x-ndjson' }, body: rows });
  if (imp.status !== 200) throw new Error(`import: ${imp.status} ${await imp.text()}`);

  // One WS-FLV viewer per camera, holding its session until the gateway closes it.
  const viewers = await Promise.all(
    ids.map(async (id) => {
      const view = (await (await fetch(`${base}/api/streams/${id}/view`, { method: 'POST', headers: auth })).json()) as { wsFlv: string };
      return wsFlvViewer(base.replace('http', 'ws') + view.wsFlv);
    }),
  );
  const started = performance.now();
  const firstVideo = await Promise.allSettled(viewers.map((v) => v.firstVideo));
  const live = firstVideo.filter((r) => r.status === 'fulfilled').length;
  const sessions = ((await (await fetch(`${base}/api/streams`, { headers: auth })).json()) as { items: { state: string }[] }).items;
  const ready = sessions.filter((s) => s.state === 'ready').length;
  log(`${live} viewers playing, ${ready} sessions ready after ${round((performance.now() - started) / 1000)} s`);
  if (ready < SESSIONS) throw new Error(`only ${ready} of ${SESSIONS} sessions are live; nothing to measure`);
  for (const v of viewers.slice(0, SLOW_VIEWERS)) v.stopReading();
  // Let them run a moment as they would (the slow viewers' buffers filling), then stop the gateway.
  await sleep(2_000);
  const children = await childrenOf(gwPid);
  const ffmpeg = (await markedProcesses(instance)).length;
  log(`${ffmpeg} ffmpeg running (${children.length} children of the gateway); SIGTERM`);

  const signalledAt = performance.now();
  const exited = new Promise<number | null>((resolve) => gw.child.once('exit', (code) => resolve(code)));
  gw.child.kill('SIGTERM');
  const exitCode = await exited;
  const shutdownMs = performance.now() - signalledAt;
  const leftover = [...new Set([...(await alive(children)), ...(await markedProcesses(instance))])];
  log(`exited ${exitCode} after ${round(shutdownMs)} ms; ${leftover.length} processes left`);
  for (const v of viewers) v.close();

  const result = {
    bench: 'shutdown',
    shutdownMs: round(shutdownMs),
    sessions: ready,
    ffmpegAtSignal: ffmpeg,
    leftoverProcesses: leftover.length,
    exitCode,
    targets: { shutdownMs: TARGET_MS, leftoverProcesses: 0 },
    met: shutdownMs <= TARGET_MS && leftover.length === 0 && exitCode === 0,
    conditions: {
      camera: `simulated RTSP/TCP, ${CLIP} (1280x720 25 fps, 1 s GOP, ~2 Mbit/s), loopback`,
      viewers: `one WS-FLV viewer per session (${SESSIONS}), ${SLOW_VIEWERS} of them not reading`,
      killGraceMs: 'default (ffmpeg gets SIGTERM, then SIGKILL)',
      cpus: cpus().length,
      cpu_model: cpus()[0]?.model,
      node: process.version,
      note: 'simulator, bench client and gateway share the machine',
    },
  };
  clearTimeout(guard);
  process.stdout.write(JSON.stringify(result) + '\n');
  process.exit(0);
});

/**
 * JT/T 808/1078 benchmark: the real gateway (dist/, a child process) with the demo fleet's 826
 * vehicles registered (four jt1078:// channels each), and their simulated terminals
 * (scripts/sim/jt-terminal.ts, in this process) connected to its JT/T 808 port on loopback.
 *
 *   npm run bench:jt
 *
 * Figures:
 * - `terminals`: terminals connected and authenticated, each then reporting one position a second
 *   (spread over the second), and `positions_per_s`: positions the gateway answered a second;
 * - `gateway_cpu_pct`: the gateway's CPU meanwhile (one core = 100);
 * - `alarm_to_first_frame_ms`: a terminal sends an ADAS forward-collision alarm (level 2, so high)
 *   → the linkage rule's pop-up reaches a wall screen → a player opens the tile's stream (WS-FLV)
 *   → its first video picture, the gateway having asked the terminal for video over 0x9101 and
 *   reassembled its 1078 packets (1 s GOP); median of the probes, each on another vehicle;
 * - `parse_mb_per_s`: the 1078 parser and reassembler alone (scripts/bench/jt-parse.ts);
 * - `reconnect_storm`: all terminals drop their links at once and connect again at once: seconds
 *   until every one is authenticated again and the gateway lists them all online, with its RSS before and after.
 * Progress goes to stderr; the last stdout line is one JSON object.
 *
 * Knobs: BENCH_TERMINALS (826), BENCH_PHASE_MS (30000), BENCH_ALARMS (10),
 * BENCH_ONLY=positions|alarm|parse|storm (one phase; the others report null).
 */
import { cpus, loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import { generateFleet } from '../../gateway/src/vehicles/demo.js';
import { ControlClient } from '../sim/control-client.js';
import { ensureClip, type ClipKind } from '../sim/clips.js';
import { JtSimFleet } from '../sim/jt-terminal.js';
import { adminToken, cpuMeter, finish, gatewayApi, gatewayEnv, installHarness, log, median, pct, round, rssMb, runBench, sleep, spawnUntil, tempDir, wsFlvViewer } from './harness.js';
import { measureJtParse } from './jt-parse.js';

const envInt = (name: string, dflt: number) => {
  const n = Number(process.env[name] ?? dflt);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a positive integer`);
  return n;
};
const TERMINALS = envInt('BENCH_TERMINALS', 826);
const PHASE_MS = envInt('BENCH_PHASE_MS', 30_000);
const ALARMS = envInt('BENCH_ALARMS', 10);
const ONLY = process.env.BENCH_ONLY ?? null;
const CLIP: ClipKind = 'h264-720p-1s';
const SUB_CLIP: ClipKind = 'h264-360p-1s';
const TARGETS = { terminals: TERMINALS, gateway_cpu_pct: 10, alarm_to_first_frame_ms: 1_500, parse_mb_per_s: 200, reconnect_storm_seconds: 10 };
const GUARD_MS = 15 * 60_000;

const guard = installHarness(GUARD_MS);
const runs = (phase: string) => ONLY === null || ONLY === phase;

async function main() {
  await ensureClip(CLIP);
  await ensureClip(SUB_CLIP);
  const dataDir = tempDir('bench-jt-');
  const gw = await spawnUntil(process.execPath, ['dist/main.js'], gatewayEnv(dataDir), /"address":"(http:\/\/[^"]+)"/);
  const gwPid = gw.child.pid!;
  const base = gw.match[1]!;
  const jtLine = gw.output().split('\n').find((l) => l.includes('JT/T 808 server listening'));
  const jtPort = Number(/"port":(\d+)/.exec(jtLine ?? '')?.[1]);
  if (!jtPort) throw new Error('the gateway logged no JT/T 808 port');
  const token = await adminToken(base, gw.output());
  const api = (method: string, path: string, body?: unknown) => gatewayApi({ base, token }, method, path, body);
  const ndjson = async (path: string, lines: unknown[]) => {
    const res = await fetch(base + path, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/x-ndjson' }, body: lines.map((l) => JSON.stringify(l)).join('\n') });
    if (res.status >= 300) throw new Error(`${path}: ${res.status} ${(await res.text()).slice(0, 500)}`);
  };
  log(`gateway at ${base}, pid ${gwPid}, JT/T 808 on ${jtPort}`);

  // The demo fleet, its channels as jt1078:// sources, a wall and the demo's linkage rule.
  const fleet = generateFleet(TERMINALS);
  await ndjson(
    '/api/sources/import?mode=all-or-nothing',
    fleet.flatMap((v) => v.channels.map((c) => ({ id: c.sourceId, name: `${v.plate} ${c.name}`, departmentId: 'root', url: `jt1078://${v.id}/${c.channel}`, subUrl: `jt1078://${v.id}/${c.channel}?stream=1`, codec: 'h264' }))),
  );
  await ndjson(
    '/api/vehicles/import?mode=all-or-nothing',
    fleet.map((v) => ({ id: v.id, plate: v.plate, category: v.category, ...(v.cargo ? { hazardClass: v.cargo.hazardClass, unNumber: v.cargo.unNumber } : {}), company: v.company, departmentId: 'root', terminalId: v.terminalId, sim: v.sim, channels: v.channels })),
  );
  await api('POST', '/api/walls', { id: 'bench', name: 'Bench wall', departmentId: 'root', screens: { rows: 2, cols: 2, width: 1920, height: 1080 }, layout: '4' });
  await api('POST', '/api/linkage-rules', { id: 'serious', name: 'serious alarms', departmentId: 'root', wallId: 'bench', tileIds: ['s4-1', 's4-2', 's4-3', 's4-4'], priority: 50, match: { minSeverity: 'high' } });
  log(`registered ${fleet.length} vehicles with ${fleet.length * 4} JT/T 1078 channels`);

  const sims = new JtSimFleet({ host: '127.0.0.1', port: jtPort, vehicles: fleet, edition: 'mixed', clip: CLIP, subClip: SUB_CLIP, positionIntervalMs: 1000, connectConcurrency: 100, replyTimeoutMs: 30_000 });
  const onlineAtGateway = async () => ((await api('GET', '/api/jt808/terminals')) as { items: { online: boolean }[] }).items.filter((x) => x.online).length;
  let t0 = performance.now();
  await sims.start();
  const connectMs = performance.now() - t0;
  if (sims.online !== TERMINALS) throw new Error(`${sims.online} of ${TERMINALS} terminals online (${JSON.stringify(sims.stats)})`);
  log(`${TERMINALS} terminals registered and authenticated in ${round(connectMs)} ms`);

  // ---- positions: every terminal once a second ------------------------------------------------
  let positionsPerS = NaN;
  let gatewayCpu = NaN;
  let simCpu = NaN;
  if (runs('positions')) {
    await sleep(5_000);
    const acked0 = sims.stats.acknowledged;
    const meter = cpuMeter([gwPid, process.pid]);
    t0 = performance.now();
    await sleep(PHASE_MS);
    const seconds = (performance.now() - t0) / 1000;
    [gatewayCpu, simCpu] = meter() as [number, number];
    positionsPerS = (sims.stats.acknowledged - acked0) / seconds;
    // The answers are the figure; the vehicle's own record shows they went into the vehicles module.
    const { live } = (await api('GET', `/api/vehicles/${fleet[0]!.id}`)) as { live: { lastReportAt: number | null; status: string } };
    if (live.lastReportAt === null || Date.now() - live.lastReportAt > 5_000) throw new Error(`${fleet[0]!.id}'s position is not current: ${JSON.stringify(live)}`);
    log(`${TERMINALS} terminals: ${round(positionsPerS)} positions/s answered, gateway ${round(gatewayCpu)}% CPU, simulator ${round(simCpu)}%, RSS ${rssMb(gwPid)} MiB`);
  }

  // ---- alarm to the first frame at the wall tile's player --------------------------------------
  const toFrame: number[] = [];
  const toWall: number[] = [];
  if (runs('alarm')) {
    const screen = await ControlClient.connect(`${base.replace('http', 'ws')}/api/control`, token);
    await screen.subscribe('bench');
    for (let i = 0; i < ALARMS; i++) {
      const vehicle = fleet[(i * 37 + 11) % fleet.length]!;
      const term = sims.terminal(vehicle.id)!;
      screen.messages.splice(0);
      const sent = performance.now();
      await term.sendAlarm({ adas: { type: 1, level: 2, frontSpeedKmh: 60, distance: 5 } });
      const delta = await screen.next((m) => m.type === 'wall.deltas' && m.payload.deltas.some((d: { popups?: { vehicleId: string }[] }) => d.popups?.some((p) => p.vehicleId === vehicle.id)), 10_000);
      toWall.push(performance.now() - sent);
      const popup = (delta.payload.deltas as { popups?: { vehicleId: string; alarmId: string; tiles: Record<string, { cameraId: string }> }[] }[]).flatMap((d) => d.popups ?? []).find((p) => p.vehicleId === vehicle.id)!;
      const camera = popup.tiles['s4-1']!.cameraId;
      const view = await api('POST', `/api/streams/${camera}/view`);
      const viewer = wsFlvViewer(base.replace('http', 'ws') + view.wsFlv);
      await viewer.firstVideo;
      toFrame.push(performance.now() - sent);
      viewer.close();
      log(`alarm ${i + 1} (${vehicle.id}): pop-up after ${round(toWall.at(-1)!)} ms, first frame after ${round(toFrame.at(-1)!)} ms`);
      await term.sendAlarm({ adas: { type: 1, level: 2, flag: 2 } });
      await api('POST', `/api/alarms/${popup.alarmId}/close`, { note: 'bench' });
      await sleep(2_000);
    }
    await screen.close();
  }

  // ---- the 1078 parser and reassembler alone ----------------------------------------------------
  let parse: Awaited<ReturnType<typeof measureJtParse>> | null = null;
  if (runs('parse')) {
    parse = await measureJtParse();
    log(`JT/T 1078 parse + reassembly ${round(parse.parse_mb_per_s)} MB/s`);
  }

  // ---- reconnect storm ----------------------------------------------------------------------------
  let storm: { seconds: number; rss_before_mb: number; rss_after_mb: number; retries: number; gateway_listed_ms: number } | null = null;
  if (runs('storm')) {
    // Live video on a few channels too, so the storm also cuts media links.
    const viewers = await Promise.all(
      fleet.slice(0, 4).map(async (v) => {
        const view = await api('POST', `/api/streams/${v.channels[0]!.sourceId}/view`);
        const viewer = wsFlvViewer(base.replace('http', 'ws') + view.wsFlv);
        await viewer.firstVideo;
        return viewer;
      }),
    );
    await sleep(2_000);
    const rssBefore = rssMb(gwPid);
    const result = await sims.reconnectStorm(60_000);
    t0 = performance.now();
    for (;;) {
      const online = await onlineAtGateway();
      if (online === TERMINALS) break;
      if (performance.now() - t0 > 60_000) throw new Error(`the gateway lists ${online} of ${TERMINALS} terminals online 60 s after the storm`);
      await sleep(100);
    }
    const listedMs = result.ms + (performance.now() - t0);
    for (const v of viewers) v.close();
    await sleep(5_000);
    storm = { seconds: round(listedMs / 1000, 2), rss_before_mb: rssBefore, rss_after_mb: rssMb(gwPid), retries: result.retries, gateway_listed_ms: round(listedMs) };
    log(`reconnect storm: all ${TERMINALS} back after ${round(result.ms)} ms (listed online by the gateway after ${round(listedMs)} ms, ${result.retries} retries); RSS ${storm.rss_before_mb} → ${storm.rss_after_mb} MiB`);
  }
  await sims.close();

  const alarmMs = toFrame.length ? round(median(toFrame)) : null;
  const result = {
    bench: 'jt',
    terminals: sims.terminals.length,
    gateway_cpu_pct: round(gatewayCpu),
    positions_per_s: round(positionsPerS),
    alarm_to_first_frame_ms: alarmMs,
    parse_mb_per_s: parse ? round(parse.parse_mb_per_s) : null,
    reconnect_storm: storm ? { seconds: storm.seconds, rss_before_mb: storm.rss_before_mb, rss_after_mb: storm.rss_after_mb } : null,
    targets: TARGETS,
    // null: the phase did not run (BENCH_ONLY).
    met: {
      gateway_cpu_pct: Number.isNaN(gatewayCpu) ? null : gatewayCpu <= TARGETS.gateway_cpu_pct,
      alarm_to_first_frame_ms: alarmMs === null ? null : alarmMs <= TARGETS.alarm_to_first_frame_ms,
      parse_mb_per_s: parse ? parse.parse_mb_per_s >= TARGETS.parse_mb_per_s : null,
      reconnect_storm_seconds: storm ? storm.seconds <= TARGETS.reconnect_storm_seconds : null,
    },
    detail: {
      connect_all_ms: round(connectMs),
      alarm_to_first_frame: toFrame.length ? { p50: round(median(toFrame)), p95: round(pct(toFrame, 95)), max: round(Math.max(...toFrame)), n: toFrame.length } : null,
      alarm_to_popup_ms: toWall.length ? { p50: round(median(toWall)), max: round(Math.max(...toWall)) } : null,
      reconnect_storm: storm,
      simulator_cpu_pct: round(simCpu),
      gateway_rss_mb: rssMb(gwPid),
      fleet: sims.stats,
    },
    conditions: {
      cores: cpus().length,
      cpu: cpus()[0]?.model,
      node: process.version,
      load_avg_1m_at_end: round(loadavg()[0]!, 2),
      only: ONLY,
      terminals: `${TERMINALS} (one in three a 2019 terminal), TCP on loopback, in the benchmark's process`,
      positions: 'one a second per terminal, in ten slices a second; counted when the gateway answered with 0x8001',
      phase_ms: PHASE_MS,
      alarm: `ADAS forward collision, level 2 (high) → linkage rule → pop-up at a subscribed wall screen → POST /api/streams/:id/view → WS-FLV first video tag; ${CLIP} main stream (1 s GOP) over 1078 TCP`,
      parse: parse?.conditions ?? null,
      storm: 'every terminal destroys its 808 link (and media) at once, then all connect and authenticate again at once; four channels were live; retry 200 ms after a failed connect',
    },
  };
  await finish(result, gw.child, guard);
}

runBench(main);

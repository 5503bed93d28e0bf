/**
 * Vehicles benchmark: the real gateway (dist/, a child process), the demo fleet of 826 vehicles with
 * four camera channels each (served by the camera simulator, 1 s GOP), a feed reporting positions over
 * the control WebSocket, a regulator following every position and alarm, and a wall screen.
 *
 *   npm run bench:vehicles
 *
 * Figures:
 * - positions_per_s_826 and gateway_cpu_pct: position updates ingested a second (acknowledged, in the
 *   store) for 826 vehicles each reporting once a second, and the gateway's CPU meanwhile (one core = 100);
 * - positions_per_s_8260 and gateway_cpu_pct_8260: the same for ten times that fleet;
 * - positions_max_per_s: the most the gateway ingested a second when the feed sent as fast as it could;
 * - alarm_to_wall_p99_ms: from the feed sending a serious alarm to the wall delta with the vehicle's
 *   cameras at the subscribed screen;
 * - alarm_to_first_frame_ms: from the alarm to the first video frame of the vehicle's channel at a
 *   player that opened the tile's stream (WS-FLV) when the delta arrived (median of the probes).
 * Progress goes to stderr; the last stdout line is one JSON object.
 */
import { cpus } from 'node:os';
import { performance } from 'node:perf_hooks';
import { generateFleet, DEMO_CENTRE } from '../../gateway/src/vehicles/demo.js';
import { ControlClient } from '../sim/control-client.js';
import { batches, VehicleSimulator } from '../sim/vehicles.js';
import { cpuMeter, finish, gatewayEnv, installHarness, log, median, pct, round, rssMb, runBench, sleep, spawnUntil, tempDir, wsFlvViewer } from './harness.js';

const FLEET = Number(process.env.BENCH_VEHICLES ?? 826);
const SCALE = Number(process.env.BENCH_SCALE ?? 10);
const PHASE_MS = Number(process.env.BENCH_PHASE_MS ?? 30_000);
const FLOOD_MS = Number(process.env.BENCH_FLOOD_MS ?? 10_000);
const ALARMS = Number(process.env.BENCH_ALARMS ?? 20);
const CLIP = 'h264-720p-1s';
const TARGETS = { gateway_cpu_pct: 10, alarm_to_wall_p99_ms: 100, alarm_to_first_frame_ms: 2000 };
const guard = installHarness(15 * 60_000);

interface Feed {
  sent: number;
  accepted: number;
  rejected: number;
}

/** Reports every vehicle once a second, in ten slices a second as a platform spreading its load would. */
async function steadyFeed(feed: ControlClient, sim: VehicleSimulator, ms: number): Promise<Feed & { seconds: number }> {
  const out: Feed = { sent: 0, accepted: 0, rejected: 0 };
  const slices = 10;
  const t0 = performance.now();
  const pending: Promise<void>[] = [];
  let tick = 0;
  while (performance.now() - t0 < ms) {
    const all = sim.positions(Date.now());
    const size = Math.ceil(all.length / slices);
    for (let s = 0; s < slices; s++) {
      for (const positions of batches(all.slice(s * size, (s + 1) * size), 500)) {
        out.sent += positions.length;
        pending.push(
          feed.request('positions.report', { positions }).then((ack) => {
            out.accepted += ack.payload?.accepted ?? 0;
            out.rejected += ack.type === 'ack' ? ack.payload.rejected.length : positions.length;
          }),
        );
      }
      tick++;
      const due = t0 + tick * (1000 / slices) - performance.now();
      if (due > 0) await sleep(due);
    }
  }
  await Promise.all(pending);
  return { ...out, seconds: (performance.now() - t0) / 1000 };
}

/** As fast as the gateway answers: four batches of 500 in flight. */
async function flood(feed: ControlClient, sim: VehicleSimulator, ms: number): Promise<{ accepted: number; seconds: number }> {
  let accepted = 0;
  const t0 = performance.now();
  let clock = Date.now();
  const worker = async () => {
    while (performance.now() - t0 < ms) {
      // Each round is a later report for every vehicle, so none is refused as out of order.
      clock += 1;
      for (const positions of batches(sim.positions(clock), 500)) {
        const ack = await feed.request('positions.report', { positions });
        accepted += ack.payload?.accepted ?? 0;
        if (performance.now() - t0 >= ms) break;
      }
    }
  };
  await Promise.all([worker(), worker(), worker(), worker()]);
  return { accepted, seconds: (performance.now() - t0) / 1000 };
}

async function main() {
  const sim = await spawnUntil(process.execPath, ['--import', 'tsx', 'scripts/camera-sim.ts', '--port', '0', '--control-port', '0', '--cameras', '0'], {}, /"rtsp":"(rtsp:\/\/[^"]+)"/);
  const rtspBase = sim.match[1]!;
  const dataDir = tempDir('bench-vehicles-');
  const started = await spawnUntil(process.execPath, ['dist/main.js'], gatewayEnv(dataDir), /"address":"(http:\/\/[^"]+)"/);
  const base = started.match[1]!;
  const gatewayPid = started.child.pid!;
  const password = /with password (\S+)/.exec(started.output())?.[1];
  const login = async (username: string, pw: string) => {
    const res = await fetch(`${base}/api/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username, password: pw }) });
    return ((await res.json()) as { token: string }).token;
  };
  const token = await login('admin', password!);
  const api = async (method: string, path: string, body?: unknown, type = 'application/json') => {
    const res = await fetch(base + path, { method, headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': type } : {}) }, body: typeof body === 'string' ? body : body === undefined ? undefined : JSON.stringify(body) });
    const text = await res.text();
    if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${text.slice(0, 500)}`);
    return text ? JSON.parse(text) : null;
  };

  // The fleet: 826 vehicles with four channels each, then the rest of the ten-fold fleet without cameras.
  const fleet = generateFleet(FLEET * SCALE);
  const withCameras = fleet.slice(0, FLEET);
  const t0 = performance.now();
  const sources = withCameras.flatMap((v) => v.channels.map((c) => JSON.stringify({ id: c.sourceId, name: `${v.plate} ${c.name}`, departmentId: 'root', url: `${rtspBase}/auto/${CLIP}/${c.sourceId}`, codec: 'h264' })));
  await api('POST', '/api/sources/import?mode=all-or-nothing', sources.join('\n'), 'application/x-ndjson');
  const vehicleRow = (v: (typeof fleet)[number], i: number) =>
    JSON.stringify({
      id: v.id,
      plate: v.plate,
      category: v.category,
      ...(v.cargo ? { hazardClass: v.cargo.hazardClass, unNumber: v.cargo.unNumber } : {}),
      company: v.company,
      departmentId: 'root',
      channels: i < FLEET ? v.channels : [],
    });
  const imported = await api('POST', '/api/vehicles/import?mode=all-or-nothing', fleet.slice(0, FLEET).map(vehicleRow).join('\n'), 'application/x-ndjson');
  log(`registered ${imported.created} vehicles and ${sources.length} channel cameras in ${round((performance.now() - t0) / 1000)} s`);
  await api('POST', '/api/walls', { id: 'bench', name: 'Bench wall', departmentId: 'root', screens: { rows: 2, cols: 2, width: 1920, height: 1080 }, layout: '4' });
  await api('POST', '/api/linkage-rules', { id: 'serious', name: 'serious alarms', departmentId: 'root', wallId: 'bench', tileIds: ['s4-1', 's4-2', 's4-3', 's4-4'], priority: 50, match: { minSeverity: 'high' } });
  await api('POST', '/api/users', { username: 'feed', password: 'bench feed password', roles: ['feed'], scopes: ['root'] });
  await api('POST', '/api/users', { username: 'reg', password: 'bench regulator pw', roles: ['regulator'], scopes: ['root'] });

  const wsUrl = `${base.replace('http', 'ws')}/api/control`;
  const feed = await ControlClient.connect(wsUrl, await login('feed', 'bench feed password'));
  const regulator = await ControlClient.connect(wsUrl, await login('reg', 'bench regulator pw'));
  const screen = await ControlClient.connect(wsUrl, token);
  await regulator.request('vehicles.subscribe', {});
  await regulator.request('alarms.subscribe', {});
  await screen.subscribe('bench');
  // The clients keep what they receive; a long run does not need it.
  const trim = setInterval(() => [feed, regulator, screen].forEach((c) => c.messages.splice(0, Math.max(0, c.messages.length - 200))), 2_000);

  // Phase 1: the fleet at one report a second.
  const fleetSim = new VehicleSimulator(withCameras, DEMO_CENTRE, 3);
  await steadyFeed(feed, fleetSim, 3_000);
  let meter = cpuMeter([gatewayPid]);
  const p1 = await steadyFeed(feed, fleetSim, PHASE_MS);
  const [cpu826] = meter() as [number];
  log(`${FLEET} vehicles: ${round(p1.accepted / p1.seconds)} positions/s accepted (${p1.rejected} refused), gateway ${round(cpu826)}% CPU, RSS ${rssMb(gatewayPid)} MiB`);

  // Phase 2: ten times the fleet.
  const rest = fleet.slice(FLEET);
  for (let i = 0; i < rest.length; i += 5000) {
    await api('POST', '/api/vehicles/import?mode=all-or-nothing', rest.slice(i, i + 5000).map((v, k) => vehicleRow(v, FLEET + i + k)).join('\n'), 'application/x-ndjson');
  }
  const bigSim = new VehicleSimulator(fleet, DEMO_CENTRE, 4);
  await steadyFeed(feed, bigSim, 3_000);
  meter = cpuMeter([gatewayPid]);
  const p2 = await steadyFeed(feed, bigSim, PHASE_MS);
  const [cpuBig] = meter() as [number];
  log(`${fleet.length} vehicles: ${round(p2.accepted / p2.seconds)} positions/s accepted (${p2.rejected} refused), gateway ${round(cpuBig)}% CPU, RSS ${rssMb(gatewayPid)} MiB`);

  // Phase 3: how much the gateway takes when pushed.
  meter = cpuMeter([gatewayPid]);
  const p3 = await flood(feed, bigSim, FLOOD_MS);
  const [cpuFlood] = meter() as [number];
  log(`flood: ${round(p3.accepted / p3.seconds)} positions/s, gateway ${round(cpuFlood)}% CPU`);

  // Phase 4: alarms while the 826 keep reporting once a second.
  const background = steadyFeed(feed, fleetSim, ALARMS * 4_000 + 5_000);
  const toWall: number[] = [];
  const toFrame: number[] = [];
  const probeSim = new VehicleSimulator(withCameras, DEMO_CENTRE, 5);
  for (let i = 0; i < ALARMS; i++) {
    const vehicle = withCameras[(i * 37) % withCameras.length]!;
    const from = screen.messages.length;
    const sent = performance.now();
    const ack = await feed.request('alarms.report', { alarms: [probeSim.alarmOn(vehicle.id, 'collision-warning', 'critical', Date.now())] });
    const alarmId = ack.payload.raised[0] as string;
    await screen.next((m) => m.type === 'wall.deltas' && m.payload.deltas.some((d: { popups?: { alarmId: string }[] }) => d.popups?.some((p) => p.alarmId === alarmId)), 5_000, from);
    toWall.push(performance.now() - sent);
    // The tile's player opens its stream when the delta arrives.
    const camera = screen.walls.get('bench')!.tiles['s4-1']!.stream!.cameraId;
    const view = await api('POST', `/api/streams/${camera}/view`);
    const viewer = wsFlvViewer(base.replace('http', 'ws') + view.wsFlv);
    await viewer.firstVideo;
    toFrame.push(performance.now() - sent);
    viewer.close();
    log(`alarm ${i + 1}: wall ${round(toWall.at(-1)!)} ms, first frame ${round(toFrame.at(-1)!)} ms (${camera})`);
    await regulator.request('alarm.close', { alarmId });
    await sleep(3_000);
  }
  await background;
  clearInterval(trim);

  const result = {
    bench: 'vehicles',
    positions_per_s_826: round(p1.accepted / p1.seconds),
    gateway_cpu_pct: round(cpu826),
    positions_per_s_8260: round(p2.accepted / p2.seconds),
    gateway_cpu_pct_8260: round(cpuBig),
    positions_max_per_s: round(p3.accepted / p3.seconds),
    alarm_to_wall_p99_ms: round(pct(toWall, 99)),
    alarm_to_first_frame_ms: round(median(toFrame)),
    detail: {
      alarm_to_wall_p50_ms: round(median(toWall)),
      alarm_to_wall_max_ms: round(Math.max(...toWall)),
      alarm_to_first_frame_p95_ms: round(pct(toFrame, 95)),
      alarm_to_first_frame_max_ms: round(Math.max(...toFrame)),
      alarms: toWall.length,
      refused_positions: p1.rejected + p2.rejected,
      flood_gateway_cpu_pct: round(cpuFlood),
      gateway_rss_mb: rssMb(gatewayPid),
    },
    conditions: {
      cpus: cpus().length,
      node: process.version,
      vehicles: FLEET,
      scaled_fleet: fleet.length,
      channels_per_vehicle: 4,
      report_interval_s: 1,
      feed: 'one control WebSocket, batches of at most 500, ten slices a second',
      subscribers: 'one regulator following every position (1 s batches) and alarm; one wall screen',
      camera: `${CLIP} from the camera simulator on loopback`,
      phase_s: PHASE_MS / 1000,
      note: 'gateway, feed, simulator and clients share the machine',
    },
    targets: TARGETS,
  };
  for (const c of [feed, regulator, screen]) await c.close();
  sim.child.kill('SIGTERM');
  await finish(result, started.child, guard);
}

runBench(main);

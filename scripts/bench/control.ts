/**
 * Control-plane benchmark: the real gateway (dist/, a child process), 1,000 WebSocket clients
 * subscribed to one wall (in subscriber processes), and operators assigning cameras to its tiles.
 *
 *   npm run bench:control
 *
 * Figures:
 * - assign_to_all_p50_ms / assign_to_all_p99_ms: from an operator sending tile.assign to the moment
 *   the last of the 1,000 clients has the delta, per assignment, at a steady operator pace;
 * - ops_per_s: assignments a second sustained over the high-rate phase, every one acknowledged (written
 *   to the store first) and delivered to every client in version order, with none lost;
 * - gateway_cpu_pct: the gateway's CPU (one core = 100) during that phase.
 * Progress goes to stderr; the last stdout line is one JSON object.
 */
import type { ChildProcess } from 'node:child_process';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { ControlClient } from '../sim/control-client.js';
import { cpuMeter, finish, gatewayEnv, installHarness, isMain, log, median, pct, ROOT_DIR, round, rssMb, runBench, sleep, spawnUntil, tempDir, track } from './harness.js';

const CLIENTS = Number(process.env.BENCH_CLIENTS ?? 1000);
const SUBSCRIBER_PROCESSES = Number(process.env.BENCH_SUBSCRIBER_PROCESSES ?? 2);
const OPERATORS = Number(process.env.BENCH_OPERATORS ?? 8);
const LATENCY_RATE = Number(process.env.BENCH_LATENCY_RATE ?? 10);
const LATENCY_MS = Number(process.env.BENCH_LATENCY_MS ?? 20_000);
const HIGH_RATE = Number(process.env.BENCH_HIGH_RATE ?? 1200);
const HIGH_MS = Number(process.env.BENCH_HIGH_MS ?? 10_000);
const CAMERAS = 64;
const TARGETS = { clients: 1000, assign_to_all_p99_ms: 50, ops_per_s: 1000 };
const guard = isMain(import.meta.url) ? installHarness(15 * 60_000) : undefined;
const now = () => performance.timeOrigin + performance.now();

/** A subscriber process (control-subscribers.ts) and its report requests; bench:cluster uses it too. */
export class Subscribers {
  private readonly lines: ((line: string) => void)[] = [];
  readonly ready: Promise<void>;
  constructor(
    readonly child: ChildProcess,
    clients: number,
  ) {
    let ready!: () => void;
    this.ready = new Promise((r) => (ready = r));
    const rl = createInterface({ input: child.stdout! });
    rl.on('line', (line) => {
      if (line.startsWith('{"ready"')) return ready();
      this.lines.shift()?.(line);
    });
    child.stderr!.on('data', (d) => log(`subscribers: ${String(d).trim()}`));
    child.on('exit', (code) => code && log(`a subscriber process exited ${code} with ${clients} clients`));
  }
  report(from: number, to: number): Promise<{ versions: [number, number, number][]; gaps: number; clients: number; minVersion: number; maxVersion: number }> {
    return new Promise((resolve) => {
      this.lines.push((line) => resolve(JSON.parse(line)));
      this.child.stdin!.write(JSON.stringify({ op: 'report', from, to }) + '\n');
    });
  }
}

export interface Sent {
  at: number;
  version: number | null;
  /** When the operator had the acknowledgement. */
  ackAt: number;
}

/** Operators assign cameras to their own tiles at `rate` a second in all; resolves when every ack is in. */
export async function drive(operators: ControlClient[], tilesOf: string[][], wallId: string, rate: number, ms: number, sent: Sent[]) {
  let issued = 0;
  let errors = 0;
  const acks: Promise<void>[] = [];
  let baseVersion = operators[0]!.walls.get(wallId)?.version ?? 0;
  const inflight = new Set<string>();
  const t0 = performance.now();
  const ticker = async () => {
    while (performance.now() - t0 < ms) {
      const due = Math.floor(((performance.now() - t0) / 1000) * rate);
      while (issued < due) {
        const k = issued % operators.length;
        const op = operators[k]!;
        // The next tile of this operator's own that has no change in flight, so its base version is known.
        const tile = tilesOf[k]!.find((id) => !inflight.has(id));
        if (!tile) break;
        inflight.add(tile);
        const record: Sent = { at: now(), version: null, ackAt: 0 };
        sent.push(record);
        const n = issued++;
        acks.push(
          op
            .request('tile.assign', { wallId, baseVersion, tileId: tile, content: { kind: 'camera', cameraId: `bench-${n % CAMERAS}` } })
            .then((m) => {
              inflight.delete(tile);
              if (m.type !== 'ack') {
                errors++;
                if (errors < 5) log(`assign refused: ${m.code} ${m.message}`);
                return;
              }
              record.version = m.payload.version;
              record.ackAt = now();
              baseVersion = Math.max(baseVersion, m.payload.version);
            }),
        );
      }
      await sleep(2);
    }
  };
  await ticker();
  await Promise.all(acks);
  return { issued, errors, seconds: (performance.now() - t0) / 1000 };
}

/** Per assignment: ms from send to the last client having it; and whether every client got every version. */
export async function collect(subs: Subscribers[], sent: Sent[], clients = CLIENTS) {
  const versions = sent.map((s) => s.version).filter((v): v is number => v !== null);
  const from = Math.min(...versions);
  const to = Math.max(...versions);
  // Let the last batch arrive.
  await sleep(1_000);
  const reports = await Promise.all(subs.map((s) => s.report(from, to)));
  const last = new Map<number, number>();
  const reached = new Map<number, number>();
  for (const r of reports) {
    for (const [v, at, n] of r.versions) {
      last.set(v, Math.max(last.get(v) ?? 0, at));
      reached.set(v, (reached.get(v) ?? 0) + n);
    }
  }
  const latencies: number[] = [];
  let undelivered = 0;
  for (const s of sent) {
    if (s.version === null) continue;
    if ((reached.get(s.version) ?? 0) < clients) undelivered++;
    else latencies.push(last.get(s.version)! - s.at);
  }
  return { latencies, undelivered, gaps: reports.reduce((n, r) => n + r.gaps, 0), clientsAtEnd: reports.every((r) => r.minVersion >= to) };
}

async function main() {
  const dataDir = tempDir('bench-control-');
  const env = { ...gatewayEnv(dataDir), WALLGATE_CONTROL_MAX_CONNECTIONS: String(CLIENTS + 100) };
  const nodeArgs = (process.env.BENCH_GATEWAY_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const started = await spawnUntil(process.execPath, [...nodeArgs, 'dist/main.js'], env, /"address":"(http:\/\/[^"]+)"/);
  const base = started.match[1]!;
  const gatewayLog = process.env.BENCH_GATEWAY_LOG;
  if (gatewayLog) process.on('exit', () => writeFileSync(gatewayLog, started.output()));
  const gatewayPid = started.child.pid!;
  const password = /with password (\S+)/.exec(started.output())?.[1];
  const login = await fetch(`${base}/api/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'admin', password }) });
  const token = ((await login.json()) as { token: string }).token;
  const api = async (method: string, path: string, body: unknown) => {
    const res = await fetch(base + path, { method, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
    if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`);
    return res.json();
  };
  const rows = Array.from({ length: CAMERAS }, (_, i) => JSON.stringify({ id: `bench-${i}`, name: `路口 ${i}`, departmentId: 'root', url: `rtsp://10.9.0.${i + 1}:554/live` })).join('\n');
  await fetch(`${base}/api/sources/import?mode=all-or-nothing`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/x-ndjson' }, body: rows });
  // A 2×2 wall of 36-tile monitors: 144 tiles, each operator owning 18, so a change is never held back waiting for the last ack on its tile.
  await api('POST', '/api/walls', { id: 'bench', name: 'Bench wall', departmentId: 'root', screens: { rows: 2, cols: 2, width: 1920, height: 1080 }, layout: '36' });
  const tiles = Array.from({ length: 4 }, (_, s) => Array.from({ length: 36 }, (_, i) => `s${s + 1}-${i + 1}`)).flat();
  const tilesOf = Array.from({ length: OPERATORS }, (_, k) => tiles.filter((_, i) => i % OPERATORS === k));

  const wsUrl = `${base.replace('http', 'ws')}/api/control`;
  const t0 = performance.now();
  const subs = Array.from({ length: SUBSCRIBER_PROCESSES }, (_, i) => {
    const n = Math.floor(CLIENTS / SUBSCRIBER_PROCESSES) + (i < CLIENTS % SUBSCRIBER_PROCESSES ? 1 : 0);
    const child = track(spawn(process.execPath, ['--import', 'tsx', 'scripts/bench/control-subscribers.ts', wsUrl, token, 'bench', String(n)], { cwd: ROOT_DIR, stdio: ['pipe', 'pipe', 'pipe'] }));
    return new Subscribers(child, n);
  });
  await Promise.all(subs.map((s) => s.ready));
  log(`${CLIENTS} clients subscribed in ${round((performance.now() - t0) / 1000)} s; gateway RSS ${rssMb(gatewayPid)} MiB`);
  const operators = await Promise.all(Array.from({ length: OPERATORS }, () => ControlClient.connect(wsUrl, token)));
  // One operator follows the wall for the starting version; the others only send and read their acks.
  await operators[0]!.subscribe('bench');

  // Phase 1: latency at an operator's pace.
  const steady: Sent[] = [];
  const steadyCpu = cpuMeter([gatewayPid, process.pid, ...subs.map((s) => s.child.pid!)]);
  const p1 = await drive(operators, tilesOf, 'bench', LATENCY_RATE, LATENCY_MS, steady);
  const [steadyCpuPct, steadyDriverPct, ...steadySubsPct] = steadyCpu() as [number, number, ...number[]];
  log(`steady CPU: operators ${round(steadyDriverPct)}%, subscriber processes ${steadySubsPct.map((x) => round(x)).join(' + ')}%`);
  const r1 = await collect(subs, steady);
  const acks1 = steady.filter((s) => s.version !== null).map((s) => s.ackAt - s.at);
  log(`steady: ${p1.issued} assignments at ${LATENCY_RATE}/s, p50 ${round(median(r1.latencies))} ms, p99 ${round(pct(r1.latencies, 99))} ms (ack p50 ${round(median(acks1))}, p99 ${round(pct(acks1, 99))} ms), gateway ${round(steadyCpuPct)}% CPU`);

  // Phase 2: throughput.
  const burst: Sent[] = [];
  const burstCpu = cpuMeter([gatewayPid, process.pid, ...subs.map((s) => s.child.pid!)]);
  const p2 = await drive(operators, tilesOf, 'bench', HIGH_RATE, HIGH_MS, burst);
  const [burstCpuPct, driverCpuPct, ...subscriberCpuPct] = burstCpu() as [number, number, ...number[]];
  log(`high rate CPU: operators ${round(driverCpuPct)}%, subscriber processes ${subscriberCpuPct.map((x) => round(x)).join(' + ')}%`);
  const r2 = await collect(subs, burst);
  const accepted = burst.filter((s) => s.version !== null).length;
  const delivered = accepted - r2.undelivered;
  const opsPerS = delivered / p2.seconds;
  log(`high rate: ${p2.issued} sent, ${accepted} acknowledged, ${delivered} delivered to all ${CLIENTS} clients in ${round(p2.seconds)} s; gaps ${r2.gaps}; p99 ${round(pct(r2.latencies, 99))} ms; gateway ${round(burstCpuPct)}% CPU, RSS ${rssMb(gatewayPid)} MiB`);

  const result = {
    bench: 'control',
    clients: CLIENTS,
    assign_to_all_p50_ms: round(median(r1.latencies)),
    assign_to_all_p99_ms: round(pct(r1.latencies, 99)),
    ops_per_s: round(r2.gaps === 0 && r2.clientsAtEnd ? opsPerS : 0),
    gateway_cpu_pct: round(burstCpuPct),
    detail: {
      steady: {
        rate_per_s: LATENCY_RATE,
        assignments: r1.latencies.length,
        gateway_cpu_pct: round(steadyCpuPct),
        ack_p50_ms: round(median(acks1)),
        ack_p99_ms: round(pct(acks1, 99)), p95_ms: round(pct(r1.latencies, 95)), max_ms: round(Math.max(...r1.latencies)), undelivered: r1.undelivered, gaps: r1.gaps },
      high: {
        offered_per_s: HIGH_RATE,
        sent: p2.issued,
        acknowledged: accepted,
        refused: p2.errors,
        delivered_to_all: delivered,
        gaps: r2.gaps,
        every_client_at_last_version: r2.clientsAtEnd,
        assign_to_all_p50_ms: round(median(r2.latencies)),
        assign_to_all_p99_ms: round(pct(r2.latencies, 99)),
        gateway_rss_mb: rssMb(gatewayPid),
        operators_cpu_pct: round(driverCpuPct),
        subscribers_cpu_pct: subscriberCpuPct.map((x) => round(x)),
      },
    },
    conditions: {
      cpus: cpus().length,
      node: process.version,
      subscriber_processes: SUBSCRIBER_PROCESSES,
      operators: OPERATORS,
      wall: '2×2 monitors, 36 tiles each (144 tiles)',
      flush_interval_ms: 50,
      note: 'gateway, subscriber processes and operators share the machine',
    },
    targets: TARGETS,
  };
  for (const op of operators) await op.close();
  for (const s of subs) s.child.stdin!.write(JSON.stringify({ op: 'close' }) + '\n');
  await finish(result, started.child, guard!);
}

if (isMain(import.meta.url)) runBench(main);

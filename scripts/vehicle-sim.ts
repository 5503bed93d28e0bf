/**
 * The demo's vehicle platform: the demo fleet (gateway/src/vehicles/demo.ts) driving around the city,
 * reporting positions and alarms to the gateway over the control WebSocket as a feed account.
 *
 *   node --import tsx scripts/vehicle-sim.ts --gateway http://127.0.0.1:8080 --credentials data/demo-feed.json
 *
 * Options: --vehicles 826 (must match demo.vehicles), --interval 5 (seconds between positions),
 * --alarms-per-minute 2 (across the fleet). Prints one JSON line a minute with what it sent.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { DEMO_CENTRE, generateFleet } from '../gateway/src/vehicles/demo.js';
import { ControlClient } from './sim/control-client.js';
import { batches, VehicleSimulator } from './sim/vehicles.js';

function fail(msg: string): never {
  process.stderr.write(`vehicle-sim: ${msg}\n`);
  process.exit(2);
}

const { values } = (() => {
  try {
    return parseArgs({
      options: {
        gateway: { type: 'string', default: 'http://127.0.0.1:8080' },
        credentials: { type: 'string', default: 'data/demo-feed.json' },
        vehicles: { type: 'string', default: '826' },
        interval: { type: 'string', default: '5' },
        'alarms-per-minute': { type: 'string', default: '2' },
      },
      strict: true,
    });
  } catch (err) {
    fail((err as Error).message);
  }
})();

const count = Number(values.vehicles);
const intervalSec = Number(values.interval);
const alarmsPerMinute = Number(values['alarms-per-minute']);
if (!Number.isInteger(count) || count < 1 || count > 100_000) fail('--vehicles must be an integer from 1 to 100000');
if (!(intervalSec >= 0.2 && intervalSec <= 600)) fail('--interval must be 0.2 to 600 seconds');
if (!(alarmsPerMinute >= 0 && alarmsPerMinute <= 10_000)) fail('--alarms-per-minute must be 0 to 10000');

let creds: { username: string; password: string };
try {
  creds = JSON.parse(readFileSync(values.credentials, 'utf8'));
} catch (err) {
  fail(`cannot read ${values.credentials} (the gateway writes it in demo mode): ${(err as Error).message}`);
}

async function login(): Promise<string> {
  const res = await fetch(new URL('/api/auth/login', values.gateway), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(creds) });
  if (!res.ok) fail(`login as ${creds.username} failed: ${res.status} ${await res.text()}`);
  return ((await res.json()) as { token: string }).token;
}

const sim = new VehicleSimulator(generateFleet(count), DEMO_CENTRE, 7);
const stats = { positions: 0, alarms: 0, rejected: 0, reconnects: 0 };
let client: ControlClient | null = null;

async function connect(): Promise<ControlClient> {
  const url = new URL('/api/control', values.gateway);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  const c = await ControlClient.connect(url.toString(), await login());
  c.ws.on('close', () => {
    if (client === c) client = null;
  });
  return c;
}

async function tick(elapsedMs: number) {
  if (!client) {
    client = await connect().catch((err: Error) => {
      process.stderr.write(`vehicle-sim: ${err.message}; retrying\n`);
      return null;
    });
    if (!client) return;
    stats.reconnects++;
  }
  const now = Date.now();
  for (const positions of batches(sim.positions(now))) {
    const ack = await client.request('positions.report', { positions });
    stats.positions += ack.payload?.accepted ?? 0;
    stats.rejected += ack.payload?.rejected?.length ?? 0;
  }
  const alarms = sim.alarms(now, elapsedMs, alarmsPerMinute);
  if (alarms.length) {
    const ack = await client.request('alarms.report', { alarms });
    stats.alarms += (ack.payload?.raised?.length ?? 0) + (ack.payload?.repeated?.length ?? 0);
  }
}

let last = Date.now();
let busy = false;
const timer = setInterval(() => {
  if (busy) return;
  busy = true;
  const now = Date.now();
  tick(now - last)
    .catch((err: Error) => process.stderr.write(`vehicle-sim: ${err.message}\n`))
    .finally(() => {
      last = now;
      busy = false;
    });
}, intervalSec * 1000);
const report = setInterval(() => process.stdout.write(JSON.stringify({ vehicleSim: { vehicles: sim.size, ...stats } }) + '\n'), 60_000);
process.stdout.write(JSON.stringify({ vehicleSim: { vehicles: sim.size, intervalSec, alarmsPerMinute, gateway: values.gateway } }) + '\n');
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    clearInterval(timer);
    clearInterval(report);
    void (client?.close() ?? Promise.resolve()).then(() => process.exit(0));
  });
}

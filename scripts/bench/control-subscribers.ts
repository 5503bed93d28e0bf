/**
 * Wall screens for the control benchmark: many WebSocket clients subscribed to one wall in one
 * process, recording when each version reaches each client.
 *
 *   node --import tsx scripts/bench/control-subscribers.ts <ws url> <token> <wall id> <clients>
 *
 * Prints {"ready":n} once every client has its snapshot. Then reads one JSON command a line:
 *   {"op":"report","from":v1,"to":v2} → {"versions":[[v, lastArrivalMs, clientsReached], …],
 *     "gaps":n, "clients":n, "minVersion":v, "maxVersion":v}
 *   times are performance.timeOrigin + performance.now(), comparable across processes;
 *   {"op":"close"} → exits.
 * The clients do not JSON-parse deltas: they find each `"version":` in the frame's bytes, which is
 * all they need to check order, so the load generator stays light next to the gateway. Deltas carry
 * no other "version" key (tiles and tours have `v`).
 */
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { RawWebSocket } from '../sim/raw-websocket.js';

const [url, token, wallId, countArg] = process.argv.slice(2);
const count = Number(countArg);
const DELTAS_PREFIX = Buffer.from('{"type":"wall.deltas"');
const VERSION_KEY = Buffer.from('"version":');
const now = () => performance.timeOrigin + performance.now();

/** Per version: when its last client got it, and how many did. */
const arrivals = new Map<number, { last: number; reached: number }>();
const lastVersion: number[] = [];
let gaps = 0;
const sockets: Socket[] = [];

/** Records the versions of a wall.deltas frame for client i. */
function onText(i: number, data: Buffer) {
  if (data.length < DELTAS_PREFIX.length || data.compare(DELTAS_PREFIX, 0, DELTAS_PREFIX.length, 0, DELTAS_PREFIX.length) !== 0) return;
  const at = now();
  let pos = 0;
  for (;;) {
    pos = data.indexOf(VERSION_KEY, pos);
    if (pos < 0) break;
    pos += VERSION_KEY.length;
    let v = 0;
    while (data[pos]! >= 48 && data[pos]! <= 57) v = v * 10 + data[pos++]! - 48;
    if (v !== lastVersion[i]! + 1) gaps++;
    lastVersion[i] = v;
    const a = arrivals.get(v);
    if (a) {
      a.reached++;
      if (at > a.last) a.last = at;
    } else arrivals.set(v, { last: at, reached: 1 });
  }
}

/** One subscriber: the raw client costs a fraction of the `ws` one per message, and every cycle spent here is taken from the gateway on this machine. */
async function connect(i: number): Promise<void> {
  const ws = await RawWebSocket.connect(url!, { 'Sec-WebSocket-Protocol': 'wallgate.v1', Authorization: `Bearer ${token}` });
  sockets[i] = ws.socket;
  await new Promise<void>((resolve, reject) => {
    ws.onFrame = (_opcode, payload) => {
      if (lastVersion[i] !== undefined) return onText(i, payload);
      const m = JSON.parse(payload.toString());
      if (m.type !== 'ack') return reject(new Error(`subscribe: ${payload.toString().slice(0, 300)}`));
      lastVersion[i] = m.payload.wall.version;
      resolve();
    };
    ws.resume();
    ws.sendText(JSON.stringify({ type: 'subscribe', id: 's', payload: { wallId } }));
  });
}

async function main() {
  const CONCURRENCY = 50;
  for (let i = 0; i < count; i += CONCURRENCY) {
    await Promise.all(Array.from({ length: Math.min(CONCURRENCY, count - i) }, (_, k) => connect(i + k)));
  }
  process.stdout.write(JSON.stringify({ ready: count }) + '\n');
  for await (const line of createInterface({ input: process.stdin })) {
    const cmd = JSON.parse(line) as { op: string; from?: number; to?: number };
    if (cmd.op === 'report') {
      const versions: [number, number, number][] = [];
      for (let v = cmd.from!; v <= cmd.to!; v++) {
        const a = arrivals.get(v);
        versions.push([v, a?.last ?? 0, a?.reached ?? 0]);
      }
      process.stdout.write(JSON.stringify({ versions, gaps, clients: count, minVersion: Math.min(...lastVersion), maxVersion: Math.max(...lastVersion) }) + '\n');
    } else if (cmd.op === 'close') {
      for (const socket of sockets) socket.destroy();
      process.exit(0);
    }
  }
  process.exit(0);
}

main().catch((err) => {
  process.stderr.write(`subscribers: ${(err as Error).message}\n`);
  process.exit(1);
});

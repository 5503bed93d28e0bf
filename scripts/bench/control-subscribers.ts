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
import { randomBytes } from 'node:crypto';
import { connect as netConnect, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';

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

/** A client frame: masked, as RFC 6455 requires of clients. */
function clientFrame(opcode: number, payload: Buffer): Buffer {
  const mask = randomBytes(4);
  const len = payload.length;
  const header = len < 126 ? Buffer.from([0x80 | opcode, 0x80 | len]) : Buffer.from([0x80 | opcode, 0x80 | 126, len >> 8, len & 255]);
  const body = Buffer.from(payload);
  for (let k = 0; k < body.length; k++) body[k]! ^= mask[k % 4]!;
  return Buffer.concat([header, mask, body]);
}

/**
 * One subscriber on a bare TCP socket with the least WebSocket it needs (unfragmented server frames,
 * pongs for pings): the ws library costs several times more per message, and every cycle spent here
 * is taken from the gateway on this machine.
 */
function connect(i: number): Promise<void> {
  const u = new URL(url!);
  return new Promise((resolve, reject) => {
    const socket = netConnect(Number(u.port), u.hostname);
    sockets[i] = socket;
    socket.setNoDelay(true);
    socket.once('error', reject);
    socket.write(
      `GET ${u.pathname} HTTP/1.1\r\nHost: ${u.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\n` +
        `Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: wallgate.v1\r\nAuthorization: Bearer ${token}\r\n\r\n`,
    );
    let buf: Buffer = Buffer.alloc(0);
    let upgraded = false;
    socket.on('data', (chunk: Buffer) => {
      buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
      if (!upgraded) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        if (!buf.subarray(0, 12).toString().includes('101')) return reject(new Error(`upgrade: ${buf.subarray(0, end).toString()}`));
        upgraded = true;
        buf = buf.subarray(end + 4);
        socket.write(clientFrame(1, Buffer.from(JSON.stringify({ type: 'subscribe', id: 's', payload: { wallId } }))));
      }
      for (;;) {
        if (buf.length < 2) return;
        let len = buf[1]! & 127;
        let off = 2;
        if (len === 126) {
          if (buf.length < 4) return;
          len = buf.readUInt16BE(2);
          off = 4;
        } else if (len === 127) {
          if (buf.length < 10) return;
          len = Number(buf.readBigUInt64BE(2));
          off = 10;
        }
        if (buf.length < off + len) return;
        const opcode = buf[0]! & 15;
        const payload = buf.subarray(off, off + len);
        buf = buf.subarray(off + len);
        if (opcode === 9) socket.write(clientFrame(10, payload));
        else if (opcode === 8) socket.destroy();
        else if (opcode === 1) {
          if (lastVersion[i] === undefined) {
            const m = JSON.parse(payload.toString());
            if (m.type !== 'ack') return reject(new Error(`subscribe: ${payload.toString().slice(0, 300)}`));
            lastVersion[i] = m.payload.wall.version;
            resolve();
          } else onText(i, payload);
        }
      }
    });
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

import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import fc from 'fast-check';
import t from 'tap';
import { rfc4571, rtpPackets } from '../../gateway/src/gb28181/media/ps-mux.js';
import { RtpReceiver } from '../../gateway/src/gb28181/media/receiver.js';
import { checkProperty, fuzzParameters, heapAndBuffersAfterGc, oneAtATime } from '../helpers/fuzz.js';
import { waitFor } from '../helpers/streams.js';

/**
 * RTP from the network, fuzzed over real loopback sockets: random datagrams, and random or mutated
 * TCP framing (RFC 4571 and '$'), never throw in the receiver (which would end this process) and
 * never stop it from taking the good packets that follow; 50 MB of junk framing leaves the heap where it was.
 */

const SSRC = 0x0bebc27d;
let seq = 0;
/** A few good packets with the next sequence numbers. */
function good(n: number): Buffer[] {
  const r = rtpPackets(Buffer.alloc(n * 1000, 0x5a), { ssrc: SSRC, seq, timestamp: seq * 100, maxPayload: 1000 });
  seq = r.nextSeq;
  return r.packets;
}

/** A sequence number further than the receiver's restart threshold (1,024) from each of `taken`. */
function restartedSeq(taken: number[]): number {
  const distance = (a: number, b: number) => Math.min((a - b) & 0xffff, (b - a) & 0xffff);
  // 21 numbers exclude at most 21 × 2,201 of the 65,536; an odd step visits every number.
  for (let i = 0, candidate = (taken[0]! + 5000) & 0xffff; i < 0x10000; i++, candidate = (candidate + 997) & 0xffff) {
    if (taken.every((s) => distance(candidate, s) > 1100)) return candidate;
  }
  throw new Error(`no sequence number is far from all of ${taken.length}`);
}

const rtpHeader = fc.record({
  b0: fc.integer({ min: 0, max: 255 }),
  b1: fc.integer({ min: 0, max: 255 }),
  seq: fc.integer({ min: 0, max: 65_535 }),
  ssrc: fc.oneof(fc.constant(SSRC), fc.integer({ min: 0, max: 2 ** 32 - 1 })),
  body: fc.uint8Array({ maxLength: 1500 }),
}).map(({ b0, b1, seq: s, ssrc, body }) => {
  const p = Buffer.alloc(12 + body.length);
  p[0] = b0;
  p[1] = b1;
  p.writeUInt16BE(s, 2);
  p.writeUInt32BE(ssrc, 8);
  Buffer.from(body).copy(p, 12);
  return p;
});
const datagram = fc.oneof(rtpHeader, fc.uint8Array({ maxLength: 2000 }).map((a) => Buffer.from(a)));

t.test('UDP: random datagrams never throw, and good packets after them are taken', async (t) => {
  const rx = new RtpReceiver({ mode: 'udp', host: '127.0.0.1', port: 0, expectedSsrc: SSRC, reorderWindow: 16, reorderHoldMs: 5 });
  t.teardown(() => rx.close());
  await rx.start();
  rx.on('lost', () => {});
  let delivered = 0;
  rx.on('payload', () => void delivered++);
  const s = createSocket('udp4');
  s.on('error', () => {});
  t.teardown(() => s.close());
  const send = (p: Buffer) => new Promise((r) => s.send(p, rx.port!, '127.0.0.1', r));
  const { run, settled } = oneAtATime(async (junk: Buffer[]) => {
    for (const p of junk) await send(p);
    // A restart of the sequence numbers from here, as a device reconnecting would; far from every
    // number the junk carried, since a junk packet of our SSRC just ahead of it would make the good
    // ones look late (and be dropped as such, rightly).
    seq = restartedSeq([seq, ...junk.filter((p) => p.length >= 12).map((p) => p.readUInt16BE(2))]);
    const before = delivered;
    for (const p of good(4)) await send(p);
    await waitFor(() => delivered - before, (n) => n >= 4, 2_000, 5, 'the good packets');
  });
  const runs = await checkProperty(fc.asyncProperty(fc.array(datagram, { maxLength: 20 }), run), fuzzParameters(10_000, 4_000));
  await settled();
  t.ok(runs > 10, `${runs} inputs; stats ${JSON.stringify(rx.stats)}`);
});

const framedJunk = fc.oneof(
  fc.uint8Array({ maxLength: 3000 }).map((a) => Buffer.from(a)),
  rtpHeader.map(rfc4571),
  rtpHeader.map((p) => Buffer.concat([Buffer.from([0x24, 0, p.length >> 8, p.length & 0xff]), p])),
  fc.record({ length: fc.integer({ min: 0, max: 65_535 }), dollar: fc.boolean() }).map(({ length, dollar }) => (dollar ? Buffer.from([0x24, 1, length >> 8, length & 0xff, 0x80]) : Buffer.from([length >> 8, length & 0xff, 0x80]))),
);

t.test('TCP: random framing never throws, and a new connection with good packets is taken', async (t) => {
  const rx = new RtpReceiver({ mode: 'tcp-passive', host: '127.0.0.1', port: 0, expectedSsrc: SSRC, reorderWindow: 16, reorderHoldMs: 5 });
  t.teardown(() => rx.close());
  await rx.start();
  rx.on('lost', () => {});
  rx.on('end', () => {});
  let delivered = 0;
  rx.on('payload', () => void delivered++);
  const open = async (): Promise<Socket> => {
    const c = connect({ host: '127.0.0.1', port: rx.port! });
    c.on('error', () => {});
    await once(c, 'connect');
    return c;
  };
  const { run, settled } = oneAtATime(async (junk: Buffer[], cut: number) => {
    const c = await open();
    const data = Buffer.concat(junk);
    for (let at = 0; at < data.length; at += cut) c.write(data.subarray(at, at + cut));
    c.end();
    await once(c, 'close');
    seq = (seq + 5000) & 0xffff;
    const g = await open();
    const before = delivered;
    g.write(Buffer.concat(good(4).map(rfc4571)));
    await waitFor(() => delivered - before, (n) => n >= 4, 2_000, 5, 'the good packets');
    g.destroy();
  });
  const runs = await checkProperty(fc.asyncProperty(fc.array(framedJunk, { maxLength: 12 }), fc.integer({ min: 1, max: 2000 }), run), fuzzParameters(10_000, 4_000));
  await settled();
  t.ok(runs > 10, `${runs} inputs`);
});

/** '$' and RTP-looking bytes with our SSRC at offsets that never make a valid frame: the resync's worst case. */
function noiseWithOurSsrc(ssrc: Buffer): Buffer {
  const b = Buffer.alloc(1024 * 1024, 0x11);
  for (let at = 0; at + 50 < b.length; at += 50) {
    b[at] = 0x24;
    b[at + 4] = 0x40;
    ssrc.copy(b, at + 20);
  }
  return b;
}

t.test('50 MB of junk framing on one connection keeps the heap within 4 MB', async (t) => {
  const rx = new RtpReceiver({ mode: 'tcp-passive', host: '127.0.0.1', port: 0, expectedSsrc: SSRC, reorderWindow: 32 });
  t.teardown(() => rx.close());
  await rx.start();
  const c = connect({ host: '127.0.0.1', port: rx.port! });
  c.on('error', () => {});
  t.teardown(() => c.destroy());
  await once(c, 'connect');
  // Frames that announce 64 KiB and are cut short by the next, packets of another SSRC, and noise with our SSRC in it.
  const ssrcBytes = Buffer.alloc(4);
  ssrcBytes.writeUInt32BE(SSRC);
  const shapes = [
    Buffer.concat(Array.from({ length: 16 }, () => Buffer.concat([Buffer.from([0xff, 0xff, 0x80, 0x60]), Buffer.alloc(60_000, 0x33)]))),
    Buffer.concat(rtpPackets(Buffer.alloc(1_000_000, 1), { ssrc: 1234, seq: 0, timestamp: 0 }).packets.map(rfc4571)),
    noiseWithOurSsrc(ssrcBytes),
  ];
  const write = async (b: Buffer) => {
    if (!c.write(b)) await once(c, 'drain');
  };
  for (const s of shapes) await write(s);
  const before = await heapAndBuffersAfterGc();
  let sent = 0;
  while (sent < 50 * 1024 * 1024) {
    for (const s of shapes) {
      await write(s);
      sent += s.length;
    }
  }
  // Everything written has been read once the receiver's counters stop moving.
  let last = -1;
  await waitFor(() => rx.stats.malformed + (rx.stats.wrongSsrc?.count ?? 0), (n) => n === last || ((last = n), false), 10_000, 300, 'the receiver to read it all');
  const growth = (await heapAndBuffersAfterGc()) - before;
  t.ok(rx.stats.malformed > 100, `${rx.stats.malformed} framing errors noticed`);
  t.ok(growth < 4 * 1024 * 1024, `heap and buffers grew ${(growth / 1024).toFixed(0)} kB`);
});

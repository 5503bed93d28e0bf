import fc from 'fast-check';
import t from 'tap';
import { encodeJt1078Packet, Jt1078StreamParser, type Jt1078Layout, type Jt1078Packet } from '../../gateway/src/jt/media/packet.js';
import { Jt1078Reassembler } from '../../gateway/src/jt/media/reassembler.js';
import { checkProperty, fuzzParameters, heapAndBuffersAfterGc } from '../helpers/fuzz.js';

/**
 * JT/T 1078 media from the network, fuzzed: mutated packet streams (junk, lying lengths, type nibbles
 * that do not exist, oversize bodies), cut anywhere or sent as datagrams, never make the parser or
 * the reassembler throw or hold more than their limits, and good packets after them are taken;
 * 100 MB of garbage leaves the heap where it was.
 */

const MAX_BODY = 2_000;
/** The longest header (2019 video), a body at the limit, and the 4 bytes that confirm a detected layout. */
const MAX_BUFFERED = 34 + MAX_BODY + 4;
const MAX_FRAME = 16_000;

const packetFields = fc.record({
  marker: fc.boolean(),
  pt: fc.oneof(fc.constantFrom(98, 99, 6, 8, 91), fc.integer({ min: 0, max: 127 })),
  seq: fc.integer({ min: 0, max: 0xffff }),
  sim: fc.stringMatching(/^[0-9]{1,12}$/),
  channel: fc.integer({ min: 0, max: 255 }),
  dataType: fc.integer({ min: 0, max: 4 }),
  subpackage: fc.integer({ min: 0, max: 3 }),
  timestamp: fc.integer({ min: 0, max: 2 ** 45 }),
  lastIInterval: fc.integer({ min: 0, max: 0xffff }),
  lastFrameInterval: fc.integer({ min: 0, max: 0xffff }),
  body: fc.uint8Array({ maxLength: 1200 }).map((a) => Buffer.from(a)),
});

type Mutation = { kind: 'flip' | 'cut' | 'plant' | 'length'; at: number; value: number };
const mutation: fc.Arbitrary<Mutation> = fc.record({ kind: fc.constantFrom('flip', 'cut', 'plant', 'length'), at: fc.nat(), value: fc.integer({ min: 0, max: 0xffff }) });

function mutate(b: Buffer, ms: Mutation[]): Buffer {
  let out = Buffer.from(b);
  for (const m of ms) {
    const at = m.at % Math.max(1, out.length);
    if (m.kind === 'flip') out[at] = m.value & 0xff;
    else if (m.kind === 'cut') out = Buffer.concat([out.subarray(0, at), out.subarray(at + (m.value % 64) + 1)]);
    // A magic where none belongs, as the attachment stream's own "01cd" would be (jt1078.md P6).
    else if (m.kind === 'plant') out = Buffer.concat([out.subarray(0, at), Buffer.from('01cd'), out.subarray(at)]);
    else if (at + 2 <= out.length) out.writeUInt16BE(m.value, at);
  }
  return out;
}

function pipeline(layout: Jt1078Layout | undefined, datagram: boolean) {
  const packets: Jt1078Packet[] = [];
  const reassembler = new Jt1078Reassembler({
    maxFrameBytes: MAX_FRAME,
    onUnit: (u) => {
      if (u.data.length > MAX_FRAME) throw new Error(`a ${u.data.length}-byte unit`);
    },
  });
  const parser = new Jt1078StreamParser({
    maxBodyBytes: MAX_BODY,
    datagram,
    ...(layout ? { layout } : {}),
    onPacket: (p) => {
      if (p.body.length > MAX_BODY || p.dataType > 4 || p.subpackage > 3) throw new Error(`a packet that cannot be: ${JSON.stringify({ ...p, body: p.body.length })}`);
      packets.push(p);
      reassembler.push(p);
    },
    onError: () => {},
  });
  const feed = (data: Buffer, cuts: number[]) => {
    for (let at = 0, k = 0; at < data.length; k++) {
      const n = cuts[k % cuts.length]!;
      parser.push(data.subarray(at, at + n));
      if (parser.buffered > MAX_BUFFERED) throw new Error(`the parser holds ${parser.buffered} bytes`);
      at += n;
    }
  };
  return { parser, packets, feed };
}

const cutSizes = fc.array(fc.integer({ min: 1, max: 3000 }), { minLength: 1, maxLength: 8 });

t.test('mutated packet streams, cut anywhere, layout given or detected: no throw, bounded', async (t) => {
  const runs = await checkProperty(
    fc.asyncProperty(
      fc.array(packetFields, { minLength: 1, maxLength: 8 }),
      fc.constantFrom('2016' as const, '2019' as const),
      fc.boolean(),
      fc.boolean(),
      fc.array(mutation, { maxLength: 8 }),
      cutSizes,
      async (fields, layout, given, datagram, mutations, cuts) => {
        const { feed } = pipeline(given ? layout : undefined, datagram);
        feed(mutate(Buffer.concat(fields.map((f) => encodeJt1078Packet(f, layout))), mutations), cuts);
      },
    ),
    fuzzParameters(200_000, 4_000),
  );
  t.ok(runs > 100, `${runs} inputs`);
});

t.test('after any junk and a body length of filler, good packets of the known layout are taken', async (t) => {
  const runs = await checkProperty(
    fc.asyncProperty(fc.uint8Array({ maxLength: 3000 }), fc.array(mutation, { maxLength: 4 }), fc.constantFrom('2016' as const, '2019' as const), cutSizes, async (junk, mutations, layout, cuts) => {
      const { feed, packets } = pipeline(layout, false);
      feed(mutate(Buffer.from(junk), mutations), cuts);
      // Junk may end in a header declaring a body of up to MAX_BODY bytes: filler without a magic completes it.
      feed(Buffer.alloc(MAX_BUFFERED), cuts);
      packets.length = 0;
      const good = [0, 1, 2].map((i) =>
        encodeJt1078Packet({ marker: true, pt: 98, seq: 100 + i, sim: '13912345678', channel: 3, dataType: 1, subpackage: 0, timestamp: 1000 + 40 * i, lastIInterval: 0, lastFrameInterval: 40, body: Buffer.alloc(500, i) }, layout),
      );
      feed(Buffer.concat(good), cuts);
      if (packets.map((p) => p.seq).join() !== '100,101,102') throw new Error(`got ${packets.map((p) => p.seq).join()} of the good packets`);
    }),
    fuzzParameters(200_000, 4_000),
  );
  t.ok(runs > 100, `${runs} inputs`);
});

t.test('100 MB of garbage through the parser and reassembler keeps them bounded and the heap where it was', async (t) => {
  const errors = new Map<string, number>();
  let packets = 0;
  const reassembler = new Jt1078Reassembler({ maxFrameBytes: MAX_FRAME, onUnit: () => {} });
  const parser = new Jt1078StreamParser({
    maxBodyBytes: MAX_BODY,
    onPacket: (p) => {
      packets++;
      reassembler.push(p);
    },
    onError: (k, n) => errors.set(k, (errors.get(k) ?? 0) + n),
  });
  const random = Buffer.alloc(1024 * 1024);
  for (let i = 0; i < random.length; i++) random[i] = (i * 2654435761) >>> 24;
  // A magic every 97 bytes, followed by random headers: every one is a candidate packet.
  const magics = Buffer.from(random);
  for (let at = 0; at + 4 <= magics.length; at += 97) magics.write('01cd', at, 'latin1');
  // Headers that pass (video, 2016) with bodies just over the limit.
  const oversize = Buffer.alloc(1024 * 1024);
  const head = encodeJt1078Packet({ marker: false, pt: 98, seq: 1, sim: '1', channel: 1, dataType: 1, subpackage: 3, timestamp: 0, lastIInterval: 0, lastFrameInterval: 0, body: Buffer.alloc(0) }, '2016');
  head.writeUInt16BE(MAX_BODY + 1, 28);
  for (let at = 0; at + head.length <= oversize.length; at += 64) head.copy(oversize, at);
  const shapes = [random, magics, oversize];
  const feed = (b: Buffer) => {
    for (let at = 0; at < b.length; at += 65_536) {
      parser.push(b.subarray(at, at + 65_536));
      if (parser.buffered > MAX_BUFFERED) throw new Error(`the parser holds ${parser.buffered} bytes`);
    }
  };
  for (const shape of shapes) feed(shape);
  const before = await heapAndBuffersAfterGc();
  let pushed = 0;
  for (const shape of shapes) {
    for (let i = 0; i < Math.ceil(100 / shapes.length); i++) {
      feed(shape);
      pushed += shape.length;
    }
  }
  const growth = (await heapAndBuffersAfterGc()) - before;
  t.ok(pushed >= 100 * 1024 * 1024, `${(pushed / 1024 / 1024).toFixed(0)} MB pushed`);
  t.ok((errors.get('resync') ?? 0) > 0 && (errors.get('oversize') ?? 0) > 0, JSON.stringify(Object.fromEntries(errors)));
  t.ok(growth < 4 * 1024 * 1024, `heap and buffers grew ${(growth / 1024).toFixed(0)} kB; ${packets} packets passed by chance; ${JSON.stringify(reassembler.stats)}`);
});

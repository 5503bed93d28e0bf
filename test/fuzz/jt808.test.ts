import fc from 'fast-check';
import t from 'tap';
import { decodeFrame, encodeFrame, FrameSplitter, JtParseError, SubpackageAssembler, unescapeJt, type JtMessage } from '../../gateway/src/jt/protocol/frame.js';
import { decodeLocation, decodeLocationBatch, encodeLocation } from '../../gateway/src/jt/protocol/location.js';
import {
  decodeAuthentication,
  decodeGeneralResponse,
  decodeLiveControl,
  decodeLiveRequest,
  decodeLiveStatus,
  decodeQueryTimeReply,
  decodeRegistration,
  decodeRegistrationReply,
  decodeResendRequest,
} from '../../gateway/src/jt/protocol/messages.js';
import { checkProperty, fuzzParameters, heapAndBuffersAfterGc } from '../helpers/fuzz.js';

/**
 * JT/T 808 from the network, fuzzed: mutated frames (bad escapes, bad checksums, truncated bodies,
 * lying lengths, unknown ids), cut anywhere, never make the splitter throw or hold more than its
 * limit, and a good frame after them comes through; body decoders throw only JtParseError; a
 * subpackage series that never completes is swept; 100 MB of garbage leaves the heap where it was.
 */

const MAX_FRAME = 4096;

const frame = fc
  .record({
    msgId: fc.oneof(fc.constantFrom(0x0001, 0x0002, 0x0100, 0x0102, 0x0200, 0x0704), fc.integer({ min: 0, max: 0xffff })),
    edition: fc.constantFrom('2013' as const, '2019' as const),
    phone: fc.stringMatching(/^[0-9]{1,12}$/),
    serial: fc.integer({ min: 0, max: 0xffff }),
    packet: fc.option(fc.integer({ min: 1, max: 5 }).chain((total) => fc.record({ total: fc.constant(total), index: fc.integer({ min: 1, max: total }) }))),
    // Bodies rich in the bytes escaping is about.
    body: fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a.map((b) => (b % 7 === 0 ? 0x7e : b % 7 === 1 ? 0x7d : b)))),
  })
  .map((f) => encodeFrame(f, f.body));

const mutation = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ kind: fc.constant('cut' as const), at: fc.nat(), length: fc.integer({ min: 1, max: 40 }) }),
  // A 7D followed by anything: a bad escape unless it is 01 or 02.
  fc.record({ kind: fc.constant('escape' as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
  // A body length that lies (the third and fourth bytes after the flag).
  fc.record({ kind: fc.constant('length' as const), at: fc.nat(), value: fc.integer({ min: 0, max: 0xffff }) }),
);

type Mutation = { kind: 'flip' | 'cut' | 'escape' | 'length'; at: number; value?: number; length?: number };

function mutate(b: Buffer, ms: Mutation[]): Buffer {
  let out = Buffer.from(b);
  for (const m of ms) {
    const at = m.at % Math.max(1, out.length);
    if (m.kind === 'flip') out[at] = m.value!;
    else if (m.kind === 'cut') out = Buffer.concat([out.subarray(0, at), out.subarray(at + m.length!)]);
    else if (m.kind === 'escape') out = Buffer.concat([out.subarray(0, at), Buffer.from([0x7d, m.value!]), out.subarray(at)]);
    else if (out.length >= 5) out.writeUInt16BE(m.value!, 3);
  }
  return out;
}

function feed(s: FrameSplitter, data: Buffer, cuts: number[]) {
  for (let at = 0, k = 0; at < data.length; k++) {
    const n = cuts[k % cuts.length]!;
    s.push(data.subarray(at, at + n));
    if (s.buffered > MAX_FRAME) throw new Error(`the splitter holds ${s.buffered} bytes`);
    at += n;
  }
}

const cutSizes = fc.array(fc.integer({ min: 1, max: 2000 }), { minLength: 1, maxLength: 8 });
const GOOD = encodeFrame({ msgId: 0x0002, edition: '2019', phone: '13912345678', serial: 4242 }, Buffer.alloc(0));

t.test('mutated frames, cut anywhere: only rejections, bounded, and a good frame after them is taken', async (t) => {
  const kinds = new Map<string, number>();
  const runs = await checkProperty(
    fc.asyncProperty(fc.array(frame, { minLength: 1, maxLength: 6 }), fc.array(mutation, { maxLength: 6 }), cutSizes, async (frames, mutations, cuts) => {
      const got: JtMessage[] = [];
      const s = new FrameSplitter({ maxFrameBytes: MAX_FRAME, onMessage: (m) => got.push(m), onError: (k) => kinds.set(k, (kinds.get(k) ?? 0) + 1) });
      feed(s, mutate(Buffer.concat(frames), mutations), cuts);
      for (const m of got) if (m.body.length > 1023) throw new Error(`a body of ${m.body.length} bytes`);
      got.length = 0;
      feed(s, GOOD, cuts);
      if (!got.some((m) => m.header.serial === 4242 && m.header.sim === '13912345678')) throw new Error('the good frame after the junk was lost');
      // The splitter's quick verdict on one frame is the decoder's.
      const inner = Buffer.from(mutate(frames[0]!, mutations).subarray(1, -1).map((b) => (b === 0x7e ? 0x7f : b)));
      if (inner.length === 0) return;
      let expected = 'ok';
      try {
        decodeFrame(unescapeJt(inner));
      } catch (err) {
        if (!(err instanceof JtParseError)) throw err;
        expected = err.kind;
      }
      const verdicts: string[] = [];
      new FrameSplitter({ maxFrameBytes: MAX_FRAME, onMessage: () => verdicts.push('ok'), onError: (k) => verdicts.push(k) }).push(Buffer.concat([Buffer.from([0x7e]), inner, Buffer.from([0x7e])]));
      if (verdicts.join() !== expected) throw new Error(`the splitter said ${verdicts.join()}, the decoder ${expected}`);
    }),
    fuzzParameters(200_000, 4_000),
  );
  t.ok(runs > 100, `${runs} inputs; rejections ${JSON.stringify(Object.fromEntries(kinds))}`);
  for (const kind of ['escape', 'checksum', 'truncated', 'length']) t.ok((kinds.get(kind) ?? 0) > 0, `some frames rejected as ${kind}`);
});

/** Calls `f`; anything thrown but a JtParseError fails the property. */
function onlyParseErrors(f: () => unknown): void {
  try {
    f();
  } catch (err) {
    if (!(err instanceof JtParseError)) throw err;
  }
}

t.test('every body decoder, on any bytes, returns or throws JtParseError', async (t) => {
  const location = encodeLocation({ alarm: 1, status: 2, lat: 30, lon: 120, altitude: 1, speedKmh: 2, heading: 3, time: Date.UTC(2024, 0, 1) });
  const body = fc.oneof(
    fc.uint8Array({ maxLength: 400 }).map((a) => Buffer.from(a)),
    // A real basic block followed by random TLVs, some with lengths that lie.
    fc.array(fc.record({ id: fc.oneof(fc.constantFrom(0x01, 0x02, 0x14, 0x18, 0x64, 0x65, 0x66, 0x67), fc.integer({ min: 0, max: 255 })), len: fc.integer({ min: 0, max: 255 }), value: fc.uint8Array({ maxLength: 80 }) }), { maxLength: 6 }).map((items) =>
      Buffer.concat([location, ...items.map((i) => Buffer.concat([Buffer.from([i.id, i.len]), Buffer.from(i.value)]))]),
    ),
  );
  const runs = await checkProperty(
    fc.asyncProperty(body, fc.constantFrom('2013' as const, '2019' as const), async (b, edition) => {
      onlyParseErrors(() => decodeFrame(b));
      onlyParseErrors(() => unescapeJt(b));
      onlyParseErrors(() => decodeGeneralResponse(b));
      onlyParseErrors(() => decodeRegistration(b, edition));
      onlyParseErrors(() => decodeRegistrationReply(b));
      onlyParseErrors(() => decodeAuthentication(b, edition));
      onlyParseErrors(() => decodeLiveRequest(b));
      onlyParseErrors(() => decodeLiveControl(b));
      onlyParseErrors(() => decodeLiveStatus(b));
      onlyParseErrors(() => decodeResendRequest(b, edition));
      onlyParseErrors(() => decodeQueryTimeReply(b));
      onlyParseErrors(() => decodeLocationBatch(b));
      if (b.length >= 28 && b.subarray(0, 28).equals(location)) decodeLocation(b); // extra items never throw
      else onlyParseErrors(() => decodeLocation(b));
    }),
    fuzzParameters(200_000, 4_000),
  );
  t.ok(runs > 100, `${runs} inputs`);
});

t.test('subpackage series, totals up to 65,535: bounded in what they really hold, and a series that never completes is swept', async (t) => {
  const MAX_BYTES = 64_000;
  /** The last runs' assemblers are kept unswept, so the heap after them all is what they hold. */
  const KEPT = 100;
  const piece = fc.record({
    sim: fc.constantFrom('1', '2', '3'),
    msgId: fc.constantFrom(0x0200, 0x0801),
    serial: fc.integer({ min: 0, max: 0xffff }),
    // Small series that can finish, and the largest a header can announce.
    total: fc.oneof(fc.integer({ min: 2, max: 40 }), fc.integer({ min: 2, max: 0xffff })),
    index: fc.integer({ min: 1, max: 0xffff }),
    length: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 1023 })),
    advanceMs: fc.integer({ min: 0, max: 500 }),
  });
  const kept: { a: SubpackageAssembler; expire(): void }[] = [];
  const sweptEmpty = (k: { a: SubpackageAssembler; expire(): void }) => {
    k.expire();
    k.a.sweep();
    if (k.a.pending !== 0 || k.a.buffered !== 0) throw new Error(`after the timeout ${k.a.pending} series, ${k.a.buffered} bytes are left`);
  };
  const before = await heapAndBuffersAfterGc();
  const runs = await checkProperty(
    fc.asyncProperty(fc.array(piece, { maxLength: 200 }), async (pieces) => {
      let now = 0;
      const a = new SubpackageAssembler({ maxBytes: MAX_BYTES, timeoutMs: 1_000, maxSeries: 8, clock: () => now });
      for (const p of pieces) {
        now += p.advanceMs;
        const index = ((p.index - 1) % p.total) + 1;
        a.push({ header: { msgId: p.msgId, edition: '2013', protocolVersion: 0, phone: p.sim.padStart(12, '0'), sim: p.sim, serial: p.serial, encryption: 0, packet: { total: p.total, index } }, body: Buffer.alloc(p.length) });
        if (a.buffered > MAX_BYTES || a.pending > 8) throw new Error(`${a.pending} series, ${a.buffered} bytes held`);
      }
      kept.push({ a, expire: () => void (now += 1_000) });
      if (kept.length > KEPT) sweptEmpty(kept.shift()!);
    }),
    fuzzParameters(200_000, 4_000),
  );
  const growth = (await heapAndBuffersAfterGc()) - before;
  const counted = kept.reduce((sum, k) => sum + k.a.buffered, 0);
  const series = kept.reduce((sum, k) => sum + k.a.pending, 0);
  t.ok(runs > KEPT, `${runs} inputs`);
  // Past what the assemblers count, only the kept list itself and fast-check's last inputs.
  t.ok(growth < counted + 1024 * 1024, `the last ${kept.length} assemblers say they hold ${(counted / 1024).toFixed(0)} kB in ${series} series; heap and buffers grew ${(growth / 1024).toFixed(0)} kB`);
  for (const k of kept.splice(0)) sweptEmpty(k);
});

t.test('100 MB of garbage through the splitter keeps it bounded and the heap where it was', async (t) => {
  const errors = new Map<string, number>();
  let messages = 0;
  const s = new FrameSplitter({ maxFrameBytes: MAX_FRAME, onMessage: () => void messages++, onError: (k, n) => errors.set(k, (errors.get(k) ?? 0) + n) });
  const random = Buffer.alloc(1024 * 1024);
  for (let i = 0; i < random.length; i++) random[i] = (i * 2654435761) >>> 24;
  // Flags every few bytes with junk and bad escapes between; an endless frame (only the limit ends it); random bytes.
  const flags = Buffer.alloc(1024 * 1024);
  for (let i = 0; i < flags.length; i++) flags[i] = i % 13 === 0 ? 0x7e : i % 7 === 0 ? 0x7d : (i * 40503) & 0xff;
  const endless = Buffer.alloc(1024 * 1024, 0x11);
  const shapes = [random, flags, endless];
  s.push(Buffer.from([0x7e]));
  for (const shape of shapes) feed(s, shape, [65_536]);
  const before = await heapAndBuffersAfterGc();
  const perShape = Math.ceil(100 / shapes.length);
  let pushed = 0;
  for (const shape of shapes) {
    for (let i = 0; i < perShape; i++) {
      feed(s, shape, [65_536]);
      pushed += shape.length;
    }
  }
  const growth = (await heapAndBuffersAfterGc()) - before;
  t.ok(pushed >= 100 * 1024 * 1024, `${(pushed / 1024 / 1024).toFixed(0)} MB pushed`);
  t.ok(s.buffered <= MAX_FRAME);
  t.ok((errors.get('oversize') ?? 0) > 0 && (errors.get('checksum') ?? 0) + (errors.get('escape') ?? 0) + (errors.get('truncated') ?? 0) > 0, JSON.stringify(Object.fromEntries(errors)));
  t.ok(growth < 4 * 1024 * 1024, `heap and buffers grew ${(growth / 1024).toFixed(0)} kB; ${messages} frames passed by chance`);
  // And it still works.
  const got: JtMessage[] = [];
  const fresh = new FrameSplitter({ maxFrameBytes: MAX_FRAME, onMessage: (m) => got.push(m), onError: () => {} });
  fresh.push(Buffer.concat([random.subarray(0, 5000), GOOD]));
  t.equal(got.at(-1)?.header.serial, 4242);
});

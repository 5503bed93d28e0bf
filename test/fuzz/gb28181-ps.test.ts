import fc from 'fast-check';
import t from 'tap';
import { PsDemuxer } from '../../gateway/src/gb28181/media/ps-demux.js';
import { psPack } from '../../gateway/src/gb28181/media/ps-mux.js';
import type { AccessUnit } from '../../gateway/src/gb28181/media/types.js';
import { ensureClip } from '../../scripts/sim/clips.js';
import { checkProperty, fuzzParameters, heapAndBuffersAfterGc } from '../helpers/fuzz.js';

/**
 * PS from the network, fuzzed: random bytes and mutated real packs, cut anywhere, never make the
 * demuxer throw or hand on more than its limit, a good stream after any garbage comes through, and
 * 100 MB of hostile input leaves the heap where it was.
 */

const MAX_PES = 256 * 1024;

const START = Buffer.from([0, 0, 0, 1]);
const clip = await ensureClip('h264-720p-1s');
const units: AccessUnit[] = clip.frames.map((f, i) => ({ codec: 'h264', pts90k: i * 3600, key: f.key, data: Buffer.concat(f.nalUnits.flatMap((n) => [START, n])) }));
const packs = units.map((u) => psPack(u));

/** Feeds `data` cut at the given sizes (cycled), as RTP payloads would arrive. */
function feed(d: PsDemuxer, data: Buffer, cuts: number[]) {
  for (let at = 0, k = 0; at < data.length; k++) {
    const n = cuts[k % cuts.length]!;
    d.push(data.subarray(at, at + n));
    at += n;
  }
}

const cutSizes = fc.array(fc.integer({ min: 1, max: 3000 }), { minLength: 1, maxLength: 8 });

/** Structure headers a mutation may plant: start codes of every kind with extreme lengths. */
const planted = fc.constantFrom(
  ...['000001BA', '000001BA44', '000001BB FFFF', '000001BC FFFF', '000001BC 0006 E0FF 0000 FFFF', '000001BD FFFF', '000001BE 0000', '000001C0 FFFF', '000001E0 0000 80 80 05', '000001E0 FFFF 80 C0 FF', '000001E0 0003 80 80 05 21', '000001B9', '00000001', '000001'].map((h) => Buffer.from(h.replace(/\s/g, ''), 'hex')),
);

const mutation = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ kind: fc.constant('cut' as const), at: fc.nat(), length: fc.integer({ min: 1, max: 5000 }) }),
  fc.record({ kind: fc.constant('plant' as const), at: fc.nat(), bytes: planted }),
  fc.record({ kind: fc.constant('random' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 200 }).map((a) => Buffer.from(a)) }),
);

type Mutation = { kind: 'flip' | 'cut' | 'plant' | 'random'; at: number; value?: number; length?: number; bytes?: Buffer };

function mutate(data: Buffer, mutations: Mutation[]): Buffer {
  let out = Buffer.from(data);
  for (const m of mutations) {
    const at = m.at % Math.max(1, out.length);
    if (m.kind === 'flip') out[at] = m.value!;
    else if (m.kind === 'cut') out = Buffer.concat([out.subarray(0, at), out.subarray(at + m.length!)]);
    else out = Buffer.concat([out.subarray(0, at), m.bytes!, out.subarray(at)]);
  }
  return out;
}

t.test('random bytes, cut anywhere: no throw, nothing over the limit', async (t) => {
  const runs = await checkProperty(
    fc.asyncProperty(fc.uint8Array({ minLength: 0, maxLength: 20_000 }), cutSizes, async (bytes, cuts) => {
      const d = new PsDemuxer((u) => {
        if (u.data.length > MAX_PES) throw new Error(`a ${u.data.length}-byte unit`);
      }, { maxPesBytes: MAX_PES });
      feed(d, Buffer.from(bytes), cuts);
      d.flush();
    }),
    fuzzParameters(100_000, 4_000),
  );
  t.ok(runs > 100, `${runs} inputs`);
});

t.test('mutated packs, then a good stream: no throw, and the good stream comes through once resynced', async (t) => {
  const good = Buffer.concat(packs);
  const goodUnits = units.map((u) => u.data);
  const runs = await checkProperty(
    fc.asyncProperty(fc.integer({ min: 0, max: 99 }), fc.integer({ min: 1, max: 10 }), fc.array(mutation, { minLength: 1, maxLength: 12 }), cutSizes, async (first, count, mutations, cuts) => {
      const out: Buffer[] = [];
      const d = new PsDemuxer((u) => {
        if (u.data.length > MAX_PES) throw new Error(`a ${u.data.length}-byte unit`);
        out.push(u.data);
      }, { maxPesBytes: MAX_PES });
      feed(d, mutate(Buffer.concat(packs.slice(first, first + count)), mutations), cuts);
      out.length = 0;
      feed(d, good, cuts);
      d.flush();
      // Garbage may leave a PES of up to 64 KiB open, or a frame, that swallows the start of the good stream; the rest must be exact.
      const tail = goodUnits.slice(-50);
      const got = out.slice(-50);
      if (got.length !== 50 || !got.every((b, i) => b.equals(tail[i]!))) throw new Error(`the last 50 frames did not come through (${out.length} units)`);
    }),
    fuzzParameters(100_000, 4_000),
  );
  t.ok(runs > 20, `${runs} inputs`);
});

t.test('100 MB of hostile input keeps the heap within 4 MB', async (t) => {
  const d = new PsDemuxer(() => {}, { maxPesBytes: 4 * 1024 * 1024 });
  const random = Buffer.alloc(1024 * 1024);
  for (let i = 0; i < random.length; i++) random[i] = (i * 2654435761) >>> 24;
  const hex = (h: string) => Buffer.from(h.replace(/\s/g, ''), 'hex');
  // An endless length-0 video PES (only the size limit ends a frame), PSMs at their largest, and random bytes.
  const endless = Buffer.concat([packs[0]!.subarray(0, 14), hex('000001E0 0000 80 80 05 2100010001'), Buffer.alloc(1300, 0x11)]);
  const bigPsm = Buffer.concat([hex('000001BC FFFF'), Buffer.alloc(65_535, 0x22)]);
  const shapes = [
    { head: endless, filler: Buffer.alloc(1400, 0x11) },
    { head: Buffer.alloc(0), filler: bigPsm },
    { head: Buffer.alloc(0), filler: random },
    { head: Buffer.alloc(0), filler: mutate(Buffer.concat(packs.slice(0, 30)), [{ kind: 'plant', at: 5000, bytes: hex('000001E0 0000 80 80 05') }]) },
  ];
  // Warm up the code paths first, so what is measured is what stays.
  for (const s of shapes) {
    d.push(s.head);
    feed(d, s.filler, [1400]);
  }
  const before = await heapAndBuffersAfterGc();
  const perShape = (100 * 1024 * 1024) / shapes.length;
  for (const s of shapes) {
    d.push(s.head);
    for (let sent = 0; sent < perShape; sent += s.filler.length) feed(d, s.filler, [1400]);
  }
  const growth = (await heapAndBuffersAfterGc()) - before;
  t.ok(d.stats.bytes >= 100 * 1024 * 1024, `${(d.stats.bytes / 1024 / 1024).toFixed(0)} MB pushed`);
  t.ok(d.stats.oversized >= 1, 'the endless PES was cut at the limit');
  t.ok(growth < 4 * 1024 * 1024, `heap and buffers grew ${(growth / 1024).toFixed(0)} kB`);
});

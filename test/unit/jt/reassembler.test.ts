import t from 'tap';
import type { AccessUnit } from '../../../gateway/src/gb28181/media/types.js';
import { Jt1078StreamParser, packetiseFrame, type Jt1078Packet } from '../../../gateway/src/jt/media/packet.js';
import { Jt1078Reassembler } from '../../../gateway/src/jt/media/reassembler.js';
import { ensureClip } from '../../../scripts/sim/clips.js';
import { memoryAfterGc } from '../../helpers/fuzz.js';

const START = Buffer.from([0, 0, 0, 1]);

function setup(opts: { maxFrameBytes?: number; clock?: () => number } = {}) {
  const units: AccessUnit[] = [];
  const r = new Jt1078Reassembler({ maxFrameBytes: opts.maxFrameBytes ?? 1 << 20, onUnit: (u) => units.push(u), ...(opts.clock ? { clock: opts.clock } : {}) });
  const packets: Jt1078Packet[] = [];
  const parser = new Jt1078StreamParser({ maxBodyBytes: 65_535, onPacket: (p) => packets.push(p), onError: () => {} });
  /** Packets of a frame as the parser reads them. */
  const frame = (f: { data: Buffer; firstSeq: number; timestamp: number; dataType?: number; pt?: number }) => {
    packets.length = 0;
    for (const b of packetiseFrame({ sim: '13912345678', channel: 1, pt: f.pt ?? 98, dataType: f.dataType ?? 1, timestamp: f.timestamp, lastIInterval: 0, lastFrameInterval: 40, data: f.data, firstSeq: f.firstSeq }, '2016', 100)) parser.push(b);
    return [...packets];
  };
  return { r, units, frame };
}

t.test('a clip packetised and reassembled gives its access units back, key frames and 40 ms steps', async (t) => {
  const clip = await ensureClip('h264-360p-1s');
  const { r, units, frame } = setup();
  let seq = 0;
  const sent = clip.frames.slice(0, 30).map((f) => ({ data: Buffer.concat(f.nalUnits.flatMap((n) => [START, n])), key: f.key }));
  sent.forEach((f, i) => {
    const packets = frame({ data: f.data, firstSeq: seq, timestamp: 1_000_000 + i * 40, dataType: f.key ? 0 : 1 });
    seq += packets.length;
    for (const p of packets) r.push(p);
  });
  t.equal(units.length, sent.length);
  t.ok(units.every((u, i) => u.data.equals(sent[i]!.data) && u.key === sent[i]!.key && u.codec === 'h264'));
  t.same(
    units.slice(1).map((u, i) => u.pts90k - units[i]!.pts90k),
    Array(sent.length - 1).fill(3600),
  );
  t.same(r.stats, { units: sent.length, bytes: sent.reduce((n, f) => n + f.data.length, 0), dropped: 0, audio: 0, passthrough: 0, oversize: 0, tooManyPieces: 0, emptyPieces: 0 });
});

t.test('a frame with a lost piece is dropped; the next one is whole', async (t) => {
  const { r, units, frame } = setup();
  const a = frame({ data: Buffer.alloc(350, 1), firstSeq: 10, timestamp: 0 });
  const b = frame({ data: Buffer.alloc(350, 2), firstSeq: 14, timestamp: 40 });
  const c = frame({ data: Buffer.alloc(350, 3), firstSeq: 18, timestamp: 80 });
  for (const p of [...a.filter((_, i) => i !== 2), ...b.slice(1), ...c]) r.push(p);
  t.same(
    units.map((u) => u.data[0]),
    [3],
  );
  t.equal(r.stats.dropped, 2, 'a lost its middle, b its first piece');
});

t.test('audio and passthrough counted and dropped; H.265; oversize frames dropped; unknown PT dropped', async (t) => {
  const { r, units, frame } = setup({ maxFrameBytes: 300 });
  for (const p of frame({ data: Buffer.alloc(50), firstSeq: 0, timestamp: 0, dataType: 3, pt: 6 })) r.push(p);
  for (const p of frame({ data: Buffer.alloc(50), firstSeq: 1, timestamp: 0, dataType: 4, pt: 91 })) r.push(p);
  for (const p of frame({ data: Buffer.alloc(250, 7), firstSeq: 2, timestamp: 0, dataType: 0, pt: 99 })) r.push(p);
  for (const p of frame({ data: Buffer.alloc(350), firstSeq: 5, timestamp: 40 })) r.push(p);
  for (const p of frame({ data: Buffer.alloc(50), firstSeq: 9, timestamp: 80, pt: 100 })) r.push(p);
  t.same(
    units.map((u) => [u.codec, u.key, u.data.length]),
    [['h265', true, 250]],
  );
  t.same(r.stats, { units: 1, bytes: 250, dropped: 2, audio: 1, passthrough: 1, oversize: 1, tooManyPieces: 0, emptyPieces: 0 });
});

t.test('timestamps that do not increase: the frame interval, then our own clock', async (t) => {
  let now = 5_000;
  const { r, units, frame } = setup({ clock: () => now });
  for (const p of frame({ data: Buffer.alloc(10), firstSeq: 0, timestamp: 777 })) r.push(p);
  for (const p of frame({ data: Buffer.alloc(10), firstSeq: 1, timestamp: 777 })) r.push(p);
  t.equal(units[1]!.pts90k - units[0]!.pts90k, 40 * 90, 'constant timestamps: the 40 ms frame interval');
  for (const p of frame({ data: Buffer.alloc(10), firstSeq: 2, timestamp: 100_000 })) {
    r.push({ ...p, lastFrameInterval: 0 });
  }
  // No device step (a jump) and no interval: the clock, which has not moved, still gives an increasing pts.
  t.ok(units[2]!.pts90k > units[1]!.pts90k);
  now += 100;
  for (const p of frame({ data: Buffer.alloc(10), firstSeq: 3, timestamp: 1 })) r.push({ ...p, lastFrameInterval: 0 });
  t.equal(units[3]!.pts90k - units[2]!.pts90k, 100 * 90, 'a timestamp going back: our clock');
});

/** A video piece as the parser hands it on: its body a view into the read it came in. */
function piece(seq: number, subpackage: number, body: Buffer): Jt1078Packet {
  return { layout: '2016', marker: false, pt: 98, seq: seq & 0xffff, sim: '13912345678', channel: 1, dataType: 1, subpackage, timestamp: 0, lastIInterval: 0, lastFrameInterval: 40, body };
}
const FIRST = 1;
const LAST = 2;
const MIDDLE = 3;
const READ = 65_536;

/** How much the V8 heap and the memory outside it (Buffers' reads) grew across `f`, after full collections. */
async function growth(f: () => void): Promise<{ heap: number; external: number; arrayBuffers: number }> {
  const before = await memoryAfterGc();
  f();
  const after = await memoryAfterGc();
  return { heap: after.heapUsed - before.heapUsed, external: after.external - before.external, arrayBuffers: after.arrayBuffers - before.arrayBuffers };
}

const kB = (n: number) => `${(n / 1024).toFixed(0)} kB`;

t.test('200,000 empty middle pieces hold nothing and are counted; the frame around them is whole', async (t) => {
  const units: AccessUnit[] = [];
  const r = new Jt1078Reassembler({ maxFrameBytes: 2_097_152, onUnit: (u) => units.push(u) });
  const read = Buffer.alloc(READ, 7);
  r.push(piece(0, FIRST, read.subarray(0, 100)));
  const grew = await growth(() => {
    for (let seq = 1; seq <= 200_000; seq++) r.push(piece(seq, MIDDLE, read.subarray(100, 100)));
  });
  t.ok(grew.heap < 1024 * 1024 && grew.external < 1024 * 1024, `heap grew ${kB(grew.heap)}, external ${kB(grew.external)}`);
  t.equal(r.stats.emptyPieces, 200_000);
  r.push(piece(200_001, LAST, read.subarray(200, 300)));
  t.equal(units.length, 1);
  t.equal(units[0]!.data.length, 200);
  t.equal(r.stats.dropped, 0);
});

t.test('one-byte pieces each in a read of its own do not pin the reads; past maxPieces the frame is dropped', async (t) => {
  const units: AccessUnit[] = [];
  const r = new Jt1078Reassembler({ maxFrameBytes: 2_097_152, onUnit: (u) => units.push(u) });
  // 2,000 pieces, 64 KiB reads: held as views they would pin 125 MiB.
  const grew = await growth(() => {
    r.push(piece(0, FIRST, Buffer.alloc(READ, 1).subarray(0, 1)));
    for (let seq = 1; seq <= 2_000; seq++) r.push(piece(seq, MIDDLE, Buffer.alloc(READ, seq & 0xff).subarray(5, 6)));
  });
  t.ok(grew.external < 1024 * 1024 && grew.arrayBuffers < 1024 * 1024, `external grew ${kB(grew.external)}, arrayBuffers ${kB(grew.arrayBuffers)}`);
  t.ok(grew.heap < 1024 * 1024, `heap grew ${kB(grew.heap)}`);
  r.push(piece(2_001, LAST, Buffer.from([0xee])));
  t.equal(units.length, 1);
  t.same([...units[0]!.data.subarray(0, 3), units[0]!.data.length, units[0]!.data.at(-1)], [1, 1, 2, 2_002, 0xee], 'the bytes in order');

  // 200,000 one-byte pieces of one frame: held up to the cap (4,096), then the frame is dropped and the rest skipped.
  const read = Buffer.alloc(READ, 9);
  const capped = await growth(() => {
    r.push(piece(10_000, FIRST, read.subarray(0, 1)));
    for (let seq = 10_001; seq <= 210_000; seq++) r.push(piece(seq, MIDDLE, read.subarray(seq % READ, (seq % READ) + 1)));
  });
  t.ok(capped.heap < 1024 * 1024 && capped.external < 1024 * 1024, `heap grew ${kB(capped.heap)}, external ${kB(capped.external)}`);
  t.equal(r.stats.tooManyPieces, 1);
  t.equal(r.stats.dropped, 1);
  r.push(piece(210_001, LAST, read.subarray(0, 1)));
  t.equal(units.length, 1, 'its last piece gives nothing');
  r.push(piece(210_002, FIRST, read.subarray(0, 10)));
  r.push(piece(210_003, LAST, read.subarray(10, 20)));
  t.equal(units.length, 2, 'the next frame is whole');
});

t.test('an empty middle piece does not hide a lost one', async (t) => {
  const units: AccessUnit[] = [];
  const r = new Jt1078Reassembler({ maxFrameBytes: 2_097_152, onUnit: (u) => units.push(u) });
  const read = Buffer.alloc(1000, 3);
  r.push(piece(0, FIRST, read.subarray(0, 10)));
  // Piece 1 lost; 2 is empty.
  r.push(piece(2, MIDDLE, read.subarray(10, 10)));
  r.push(piece(3, LAST, read.subarray(10, 20)));
  t.equal(units.length, 0);
  t.equal(r.stats.dropped, 1);
});

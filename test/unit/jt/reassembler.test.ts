import t from 'tap';
import type { AccessUnit } from '../../../gateway/src/gb28181/media/types.js';
import { Jt1078StreamParser, packetiseFrame, type Jt1078Packet } from '../../../gateway/src/jt/media/packet.js';
import { Jt1078Reassembler } from '../../../gateway/src/jt/media/reassembler.js';
import { ensureClip } from '../../../scripts/sim/clips.js';

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
  t.same(r.stats, { units: sent.length, bytes: sent.reduce((n, f) => n + f.data.length, 0), dropped: 0, audio: 0, passthrough: 0, oversize: 0 });
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
  t.same(r.stats, { units: 1, bytes: 250, dropped: 2, audio: 1, passthrough: 1, oversize: 1 });
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

import t from 'tap';
import { encodeJt1078Packet, Jt1078StreamParser, packetiseFrame, type Jt1078Layout, type Jt1078Packet } from '../../../gateway/src/jt/media/packet.js';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

/** M1 (jt1078.md §4): the reference gives the body's first bytes; the rest is filler of the stated length. */
const M1_BODY = Buffer.concat([hex('00 00 00 01 61 E1 A2 BF'), Buffer.alloc(38, 0x5a)]);
const M1 = Buffer.concat([hex('30316364 81 E2 1088 011234567810 01 10 0000016BB392CA7C 0280 0028 002E'), M1_BODY]);
const M2_BODY = Buffer.concat([hex('FE 6D 3B'), Buffer.alloc(117, 0x11)]);
const M2 = Buffer.concat([hex('30316364 81 88 10BA 011234567810 01 30 0000016BB392CF8D 0078'), M2_BODY]);

function parser(opts: { layout?: Jt1078Layout; datagram?: boolean; maxBodyBytes?: number } = {}) {
  const packets: Jt1078Packet[] = [];
  const errors: [string, number][] = [];
  const p = new Jt1078StreamParser({ maxBodyBytes: 65_535, ...opts, onPacket: (x) => packets.push(x), onError: (k, n) => errors.push([k, n]) });
  return { p, packets, errors };
}

const M1_FIELDS = {
  layout: '2016',
  marker: true,
  pt: 98,
  seq: 4232,
  sim: '11234567810',
  channel: 1,
  dataType: 1,
  subpackage: 0,
  timestamp: 1562085870204,
  lastIInterval: 640,
  lastFrameInterval: 40,
  body: M1_BODY,
};
const M2_FIELDS = { layout: '2016', marker: true, pt: 8, seq: 0x10ba, sim: '11234567810', channel: 1, dataType: 3, subpackage: 0, timestamp: 1562085871501, lastIInterval: null, lastFrameInterval: null, body: M2_BODY };

t.test('M1 (video, 30-byte header) and M2 (audio, 26-byte header) field by field', async (t) => {
  const { p, packets, errors } = parser({ layout: '2016' });
  p.push(Buffer.concat([M1, M2]));
  t.same(packets, [M1_FIELDS, M2_FIELDS]);
  t.same(errors, []);
  t.equal(M1.length, 30 + 46);
  t.equal(M2.length, 26 + 120);
  t.same(encodeJt1078Packet(M1_FIELDS, '2016'), M1, 'M1 re-encodes to the same bytes');
  t.same(encodeJt1078Packet(M2_FIELDS, '2016'), M2);
});

t.test('layout detected from the magic after the first packet, both layouts, every header length', async (t) => {
  for (const layout of ['2016', '2019'] as const) {
    const sent = [
      { ...M1_FIELDS, layout, sim: '13912345678', dataType: 0, subpackage: 1 },
      { ...M2_FIELDS, layout, sim: '13912345678' },
      { ...M1_FIELDS, layout, sim: '13912345678', dataType: 4, pt: 91, timestamp: null, lastIInterval: null, lastFrameInterval: null, body: hex('0102') },
      { ...M1_FIELDS, layout, sim: '13912345678', subpackage: 2, seq: 4233 },
    ];
    const stream = Buffer.concat(sent.map((s) => encodeJt1078Packet(s, layout)));
    t.equal(stream.length, sent.reduce((n, s) => n + s.body.length, 0) + (layout === '2016' ? 30 + 26 + 18 + 30 : 34 + 30 + 22 + 34), `${layout}: header lengths by type`);
    for (const step of [1, 5, 33, stream.length]) {
      const { p, packets, errors } = parser();
      for (let at = 0; at < stream.length; at += step) p.push(stream.subarray(at, at + step));
      t.equal(p.layout, layout);
      t.same(packets, sent, `${layout}, chunks of ${step}`);
      t.same(errors, []);
      t.equal(p.buffered, 0);
    }
  }
});

t.test('UDP: one datagram with one packet is detected; a torn tail is dropped', async (t) => {
  const d2019 = encodeJt1078Packet({ ...M1_FIELDS, sim: '1' }, '2019');
  const { p, packets, errors } = parser({ datagram: true });
  p.push(d2019);
  t.equal(p.layout, '2019');
  t.equal(packets.length, 1);
  p.push(Buffer.concat([d2019, d2019.subarray(0, 20)]));
  t.equal(packets.length, 2);
  t.same(errors, [['truncated', 20]]);
  t.equal(p.buffered, 0);
});

t.test('resync on junk, oversize packets skipped, bad type nibbles skipped', async (t) => {
  const { p, packets, errors } = parser({ layout: '2016', maxBodyBytes: 120 });
  const big = encodeJt1078Packet({ ...M1_FIELDS, body: Buffer.alloc(121) }, '2016');
  const badType = Buffer.from(M1);
  badType[15] = 0x54; // subpackage 4 does not exist
  p.push(Buffer.concat([hex('AABBCC'), M1, big, M1, badType, hex('3031'), M2]));
  t.same(
    packets.map((x) => x.seq),
    [4232, 4232, 0x10ba],
  );
  t.same(errors, [
    ['resync', 3],
    ['oversize', 121],
    ['resync', big.length],
    ['resync', badType.length + 2],
  ]);
});

t.test('packetiseFrame: atomic, or first/middle/last with consecutive sequence numbers', async (t) => {
  const f = { sim: '13912345678', channel: 2, pt: 98, dataType: 0, timestamp: 1000, lastIInterval: 0, lastFrameInterval: 40, firstSeq: 65_534 };
  const one = packetiseFrame({ ...f, data: Buffer.alloc(950, 1) }, '2016');
  t.equal(one.length, 1);
  const { p, packets } = parser({ layout: '2019' });
  for (const b of packetiseFrame({ ...f, data: Buffer.alloc(2000, 2) }, '2019')) p.push(b);
  t.same(
    packets.map((x) => [x.seq, x.subpackage, x.marker, x.body.length]),
    [
      [65_534, 1, false, 950],
      [65_535, 3, false, 950],
      [0, 2, true, 100],
    ],
  );
});

t.test('any cutting of a stream gives the same packets, bodies from 0 to 3000 bytes', async (t) => {
  let seed = 7;
  const random = (n: number) => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff), seed % n);
  for (const layout of ['2016', '2019'] as const) {
    const sent = Array.from({ length: 200 }, (_, i) => ({ ...M1_FIELDS, layout, seq: i, dataType: random(5), body: Buffer.alloc(random(3000), i) })).map((f) =>
      f.dataType === 4 ? { ...f, pt: 91, timestamp: null, lastIInterval: null, lastFrameInterval: null } : f.dataType === 3 ? { ...f, lastIInterval: null, lastFrameInterval: null } : f,
    );
    const stream = Buffer.concat(sent.map((f) => encodeJt1078Packet(f, layout)));
    for (const maxCut of [40, 100, 5000, 70_000]) {
      const { p, packets, errors } = parser();
      for (let at = 0; at < stream.length; ) {
        const n = 1 + random(maxCut);
        p.push(stream.subarray(at, at + n));
        at += n;
      }
      t.same(packets, sent, `${layout}, cuts up to ${maxCut}`);
      t.same(errors, []);
    }
  }
});

import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { parsePackHeader, parsePesHeader, parsePsm, parseSystemHeader, PsDemuxer } from '../../../gateway/src/gb28181/media/ps-demux.js';
import { psPack, rtpPackets } from '../../../gateway/src/gb28181/media/ps-mux.js';
import type { AccessUnit } from '../../../gateway/src/gb28181/media/types.js';
import { ensureClip, type ClipKind } from '../../../scripts/sim/clips.js';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const START = hex('00000001');

/** The real Dahua camera's first RTP packet (reference §6.3, from ossrs/srs#2565). */
const DAHUA_RTP = hex(`
  80 60 0001 00000E10 0BEBC27D
  00 00 01 BA 44 00 04 00 04 01 00 5F 6B F8
  00 00 01 BB 00 0C 80 CC F5 04 E1 7F E0 E0 E8 C0 C0 20
  00 00 01 BC 00 1E E1 FF 0000 0014
     1B E0 000C 2A0A7FFF00000708 1FFEA05A
     00 00 0000
     00000000
  00 00 01 E0 7F E0 80 80 05 21 00 01 00 01`);

function collect(opts?: { maxPesBytes?: number }) {
  const units: AccessUnit[] = [];
  const demuxer = new PsDemuxer((u) => units.push(u), opts);
  return { units, demuxer };
}

/** Bytes that hold no 00 00 0x sequence, so they read as one NAL's payload. */
function nalBody(n: number, seed = 1): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = 1 + ((i * 7 + seed * 13) % 250);
  return b;
}

t.test('the Dahua vector decodes field by field', async (t) => {
  const rtp = DAHUA_RTP;
  t.equal(rtp[0]! >> 6, 2, 'RTP version 2');
  t.equal(rtp[1]! & 0x7f, 96, 'PT 96 (PS)');
  t.equal(rtp.readUInt16BE(2), 1, 'seq 1');
  t.equal(rtp.readUInt32BE(4), 3600, 'timestamp 3600');
  t.equal(rtp.readUInt32BE(8), 200000125, 'SSRC = y=0200000125');
  const ps = rtp.subarray(12);

  const pack = parsePackHeader(ps, 0);
  t.same(pack, { scr90k: 0, scrExtension: 0, muxRate: 6106, length: 14 }, 'pack header: SCR 0, mux rate 6106 × 50 B/s, no stuffing');

  const sys = parseSystemHeader(ps, 14);
  t.equal(sys.length, 18, 'system header length 12 + 6');
  t.equal(sys.audioBound, 1);
  t.equal(sys.videoBound, 1);
  t.equal(sys.rateBound, 26234);
  t.same(sys.streams, [
    { streamId: 0xe0, bufferScale: 1, bufferSize: 232 },
    { streamId: 0xc0, bufferScale: 0, bufferSize: 32 },
  ]);

  const psm = parsePsm(ps, 32);
  t.equal(psm.length, 36, 'PSM length 30 + 6');
  t.equal(psm.currentNext, true);
  t.equal(psm.version, 1);
  t.equal(psm.info.length, 0);
  t.equal(psm.entries.length, 2);
  t.same(psm.entries[0], { streamType: 0x1b, streamId: 0xe0, descriptors: hex('2A0A7FFF000007081FFEA05A') }, 'H.264 on E0 with its 12-byte vendor descriptor (tag 0x2A)');
  t.same(psm.entries[1], { streamType: 0, streamId: 0, descriptors: Buffer.alloc(0) }, "the vendor's blanked audio entry");
  t.equal(psm.crc, 0, 'CRC 0, read and not checked');

  const pes = parsePesHeader(ps, 68);
  t.same(pes, { streamId: 0xe0, packetLength: 32736, pts90k: 0, dts90k: null, headerLength: 14 }, 'video PES, PTS only, PTS 0');
  t.equal(68 + 14, ps.length, 'the PES header ends the RTP packet, as the camera cut it');
});

t.test('the Dahua vector, continued with its SPS and a picture, gives one H.264 keyframe at PTS 0', async (t) => {
  const { units, demuxer } = collect();
  const payload = Buffer.concat([START, hex('6764001FACD9405005BA10000003001000000303C0F1830D96'), START, Buffer.from([0x65]), nalBody(32736 - 8 - 4 - 25 - 4 - 1)]);
  t.equal(payload.length, 32736 - 8, 'exactly the PES length');
  demuxer.push(DAHUA_RTP.subarray(12));
  // The next RTP packets (seq 2, 3): the NAL data, cut anywhere, then the next pack.
  demuxer.push(payload.subarray(0, 1388));
  demuxer.push(payload.subarray(1388));
  t.equal(units.length, 0, 'the frame is complete only when the next pack starts');
  demuxer.push(hex('00 00 01 BA 44 00 04 1C 24 01 00 5F 6B F8'));
  t.equal(units.length, 1);
  t.same({ ...units[0], data: undefined }, { codec: 'h264', pts90k: 0, key: true, data: undefined });
  t.ok(units[0]!.data.equals(payload), 'the frame bytes, whole');
  t.match(demuxer.stats, { units: 1, audio: 0 });
});

t.test("the reference's quirks", async (t) => {
  const pack = (scr: number) => psPack({ codec: 'h264', pts90k: scr, key: false, data: Buffer.alloc(0) }).subarray(0, 14);
  const pes = (id: number, body: Buffer, pts: number | null) => {
    const header = pts === null ? hex('80 00 00') : Buffer.concat([hex('80 80 05'), ptsBytes(pts)]);
    const b = Buffer.concat([hex(`000001${id.toString(16)}0000`), header, body]);
    b.writeUInt16BE(b.length - 6, 4);
    return b;
  };
  const sps264 = Buffer.concat([START, hex('67640028ACD940')]);
  const idr264 = Buffer.concat([START, Buffer.from([0x65]), nalBody(300)]);
  const p264 = Buffer.concat([START, Buffer.from([0x41]), nalBody(200, 2)]);

  t.test('no system header and no PSM: the codec is sniffed from the NAL headers', async (t) => {
    for (const [codec, key, delta] of [
      ['h264', Buffer.concat([hex('0000000109F0'), sps264, idr264]), p264],
      ['h265', Buffer.concat([hex('000000014601'), START, hex('40010C01FFFF'), START, hex('420101016000'), START, hex('2601'), nalBody(300)]), Buffer.concat([START, hex('0201'), nalBody(100)])],
    ] as const) {
      const { units, demuxer } = collect();
      demuxer.push(Buffer.concat([pack(90_000), pes(0xe0, key, 90_000), pack(93_600), pes(0xe0, delta, 93_600), pack(97_200)]));
      t.same(units.map((u) => [u.codec, u.pts90k, u.key, u.data.length]), [
        [codec, 90_000, true, key.length],
        [codec, 93_600, false, delta.length],
      ], codec);
    }
  });

  t.test('private stream, padding and audio are skipped by their length; audio is counted', async (t) => {
    const { units, demuxer } = collect();
    // A private PES whose body looks like a pack header, and padding of 0xFF: both must be passed over by length.
    const priv = Buffer.concat([hex('000001BD0010'), hex('000001BA440004000401005F6BF80000')]);
    const padding = Buffer.concat([hex('000001BE0020'), Buffer.alloc(32, 0xff)]);
    const audio = pes(0xc0, Buffer.alloc(160, 0xd5), 90_000);
    demuxer.push(Buffer.concat([pack(90_000), priv, pes(0xe0, Buffer.concat([sps264, idr264]), 90_000), audio, padding, audio, pack(93_600)]));
    t.equal(units.length, 1);
    t.ok(units[0]!.data.equals(Buffer.concat([sps264, idr264])));
    t.equal(demuxer.stats.audio, 2);
  });

  t.test('a frame over several PES, the later ones without PTS, is one access unit', async (t) => {
    const { units, demuxer } = collect();
    const whole = Buffer.concat([sps264, idr264, p264]);
    demuxer.push(Buffer.concat([pack(1000), pes(0xe0, whole.subarray(0, 100), 1000), pes(0xe0, whole.subarray(100, 250), null), pes(0xe0, whole.subarray(250), 1000), pack(4600)]));
    t.equal(units.length, 1);
    t.ok(units[0]!.data.equals(whole));
    t.equal(units[0]!.pts90k, 1000);
  });

  t.test('parameter sets in packs of their own wait for the picture that follows', async (t) => {
    const { units, demuxer } = collect();
    const pps264 = Buffer.concat([START, hex('68EBE3CB22C0')]);
    const sei = Buffer.concat([START, hex('0605FFFF'), nalBody(20, 4)]);
    // SPS, PPS and SEI each in a pack, then the IDR, then a P frame (the RTP marker after each pack).
    for (const [i, part] of [sps264, pps264, sei, idr264, p264].entries()) {
      const pts = i < 4 ? 0 : 3600;
      demuxer.push(Buffer.concat([pack(pts), pes(0xe0, part, pts)]));
      demuxer.flush();
    }
    t.same(units.map((u) => [u.pts90k, u.key, u.data.toString('hex')]), [
      [0, true, Buffer.concat([sps264, pps264, sei, idr264]).toString('hex')],
      [3600, false, p264.toString('hex')],
    ]);
  });

  t.test('a video PES of length 0 runs to the next program-stream start code', async (t) => {
    const { units, demuxer } = collect();
    const open = (body: Buffer, pts: number) => Buffer.concat([hex('000001E00000 80 80 05'), ptsBytes(pts), body]);
    const stream = Buffer.concat([pack(0), open(Buffer.concat([sps264, idr264]), 0), pack(3600), open(p264, 3600), hex('000001B9')]);
    // Cut everywhere, so the start code that ends a PES arrives split.
    for (let i = 0; i < stream.length; i++) demuxer.push(stream.subarray(i, i + 1));
    t.same(units.map((u) => u.data.toString('hex')), [Buffer.concat([sps264, idr264]).toString('hex'), p264.toString('hex')]);
  });

  t.test('flush() delivers the frame at the RTP marker, also from a length-0 PES', async (t) => {
    const { units, demuxer } = collect();
    demuxer.push(Buffer.concat([pack(0), hex('000001E00000 80 80 05'), ptsBytes(0), sps264, idr264]));
    t.equal(units.length, 0);
    demuxer.flush();
    t.equal(units.length, 1);
    t.ok(units[0]!.data.equals(Buffer.concat([sps264, idr264])), 'its last bytes too');
  });

  t.test('garbage, then zero stuffing: it resyncs at the next pack header', async (t) => {
    const { units, demuxer } = collect();
    const good = Buffer.concat([pack(3600), pes(0xe0, Buffer.concat([sps264, idr264]), 3600), hex('00 00 00 00'), pack(7200), pes(0xe0, p264, 7200), pack(10_800)]);
    // A frame broken in the middle (a NAL start code where a PES should follow), then random bytes.
    demuxer.push(Buffer.concat([pack(0), pes(0xe0, sps264, 0), hex('00000167'), nalBody(5000, 9), good]));
    t.same(units.map((u) => u.pts90k), [3600, 7200], 'the broken frame is dropped, the rest come through');
    t.ok(demuxer.stats.skipped >= 5000);
  });

  t.test('a frame over maxPesBytes is dropped and counted; the next one passes', async (t) => {
    const { units, demuxer } = collect({ maxPesBytes: 10_000 });
    const big = Buffer.concat([sps264, idr264, nalBody(12_000, 3)]);
    demuxer.push(psPack({ codec: 'h264', pts90k: 0, key: true, data: big }));
    demuxer.push(psPack({ codec: 'h264', pts90k: 3600, key: false, data: p264 }));
    demuxer.push(pack(7200));
    t.same(units.map((u) => u.pts90k), [3600]);
    t.equal(demuxer.stats.oversized, 1);
    const open = collect({ maxPesBytes: 10_000 });
    open.demuxer.push(Buffer.concat([pack(0), hex('000001E00000 80 80 05'), ptsBytes(0), big, pack(3600), pes(0xe0, p264, 3600), pack(7200)]));
    t.same(open.units.map((u) => u.pts90k), [3600], 'an endless length-0 PES too');
    t.equal(open.demuxer.stats.oversized, 1);
  });
});

function ptsBytes(pts: number): Buffer {
  const pes = psPack({ codec: 'h264', pts90k: pts, key: false, data: Buffer.alloc(1) });
  return pes.subarray(14 + 9, 14 + 14);
}

/** A clip's frames as access units, the PTS starting near the 33-bit wrap so the high bits are exercised. */
async function clipUnits(kind: ClipKind): Promise<AccessUnit[]> {
  const clip = await ensureClip(kind);
  const base = 2 ** 33 - 3600 * 10;
  return clip.frames.map((f, i) => ({
    codec: clip.codec,
    pts90k: base + i * 3600,
    key: f.key,
    data: Buffer.concat(f.nalUnits.flatMap((n) => [START, n])),
  }));
}

for (const kind of ['h264-720p-1s', 'h265-720p-1s'] as const) {
  t.test(`${kind}: mux, RTP packetization, then demux give back every frame's bytes, PTS and key flag`, async (t) => {
    const units = await clipUnits(kind);
    const { units: out, demuxer } = collect();
    let seq = 65_000;
    let sizes = 0;
    let markedLast = 0;
    for (const u of units) {
      const { packets, nextSeq } = rtpPackets(psPack(u), { ssrc: 200000125, seq, timestamp: u.pts90k % 2 ** 32 });
      if (packets.every((p, i) => ((p[1]! & 0x80) !== 0) === (i === packets.length - 1))) markedLast++;
      seq = nextSeq;
      for (const p of packets) demuxer.push(p.subarray(12));
      sizes += packets.length;
    }
    demuxer.flush();
    t.equal(markedLast, units.length, "the marker on each frame's last packet only");
    t.equal(seq, (65_000 + sizes) % 65_536, 'sequence numbers wrap at 16 bits');
    t.equal(out.length, units.length, 'as many frames out as in');
    let same = 0;
    units.forEach((u, i) => {
      const o = out[i]!;
      if (o.codec === u.codec && o.key === u.key && o.pts90k === u.pts90k % 2 ** 33 && o.data.equals(u.data)) same++;
    });
    t.equal(same, units.length, 'every frame identical: codec, key, PTS (mod 2^33), bytes');
    t.equal(out.filter((u) => u.key).length, 4, 'one keyframe per 1 s GOP');
    t.match(demuxer.stats, { skipped: 0, oversized: 0, units: units.length }, 'nothing passed over');
  });

  t.test(`${kind}: ffmpeg reads the PS we write`, async (t) => {
    const units = await clipUnits(kind);
    const file = join(t.testdir(), 'clip.ps');
    writeFileSync(file, Buffer.concat(units.map((u) => psPack(u))));
    const probe = execFileSync('ffprobe', ['-v', 'error', '-f', 'mpeg', '-count_frames', '-select_streams', 'v:0', '-show_entries', 'stream=codec_name,width,height,nb_read_frames', '-of', 'csv=p=0', file], { encoding: 'utf8' });
    t.equal(probe.trim(), `${kind.startsWith('h264') ? 'h264' : 'hevc'},1280,720,100`);
  });
}

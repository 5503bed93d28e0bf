import { crc32Mpeg, writeTimestamp } from '../../lib/mpeg.js';

/**
 * The smallest MPEG-TS an ffmpeg needs to read one video stream from a pipe: PAT and PMT (before
 * every keyframe, so the stream can be joined anywhere), one PES per access unit with its PTS
 * (DTS = PTS: the sources that feed this send no B-frames), the PCR on the video PID, continuity
 * counters. MPEG-TS rather than a raw `-f h264` stream because it carries the timestamps: a raw
 * elementary stream would be re-timed by ffmpeg at a guessed frame rate.
 */

const PACKET = 188;
const PMT_PID = 0x1000;
const VIDEO_PID = 0x100;
const STREAM_TYPE = { h264: 0x1b, h265: 0x24 } as const;
/** The PCR runs this far (100 ms at 90 kHz) behind the PTS: each frame arrives before it is due. */
const PCR_LEAD = 9_000;
const WRAP = 2 ** 33;

export type TsCodec = keyof typeof STREAM_TYPE;

export class TsWriter {
  private readonly counters = new Map<number, number>();
  private readonly tables: Buffer;

  constructor(codec: TsCodec) {
    this.tables = Buffer.concat([this.section(0, pat()), this.section(PMT_PID, pmt(STREAM_TYPE[codec]))]);
  }

  /** The TS packets of one access unit (Annex-B), tables first when it is a keyframe. */
  unit(data: Buffer, pts90k: number, key: boolean): Buffer {
    const pes = Buffer.allocUnsafe(14 + data.length);
    pes.writeUInt32BE(0x0000_01e0, 0);
    // Length 0: unbounded, as video PES in a transport stream may be.
    pes.writeUInt16BE(0, 4);
    pes[6] = 0x84; // data_alignment: the PES starts with the access unit
    pes[7] = 0x80; // PTS only
    pes[8] = 5;
    writeTimestamp(pes, 9, 0b0010, pts90k);
    data.copy(pes, 14);
    const media = this.packetize(VIDEO_PID, pes, { pcr: (pts90k - PCR_LEAD + WRAP) % WRAP, randomAccess: key });
    return key ? Buffer.concat([this.refreshTables(), media]) : media;
  }

  /** The tables again, with this PID's continuity counters moved on. */
  private refreshTables(): Buffer {
    const out = Buffer.from(this.tables);
    for (let at = 0; at < out.length; at += PACKET) {
      const pid = out.readUInt16BE(at + 1) & 0x1fff;
      out[at + 3] = (out[at + 3]! & 0xf0) | this.nextCounter(pid);
    }
    return out;
  }

  private section(pid: number, body: Buffer): Buffer {
    const crc = Buffer.allocUnsafe(4);
    crc.writeUInt32BE(crc32Mpeg(body));
    // pointer_field 0: the section starts right away.
    return this.packetize(pid, Buffer.concat([Buffer.from([0]), body, crc]), null, 0xff);
  }

  private nextCounter(pid: number): number {
    const c = ((this.counters.get(pid) ?? 15) + 1) & 0x0f;
    this.counters.set(pid, c);
    return c;
  }

  /**
   * Cuts a PES or section into 188-byte packets. The first carries the unit start flag (and, for
   * video, the PCR); the last is filled with adaptation-field stuffing (sections: 0xFF after the section).
   */
  private packetize(pid: number, payload: Buffer, video: { pcr: number; randomAccess: boolean } | null, sectionFill?: number): Buffer {
    const firstAf = video ? 8 : 0;
    const count = sectionFill !== undefined ? Math.ceil(payload.length / 184) : Math.max(1, Math.ceil((payload.length + firstAf) / 184));
    const out = Buffer.allocUnsafe(count * PACKET);
    let off = 0;
    for (let k = 0; k < count; k++) {
      const p = k * PACKET;
      const first = k === 0;
      out[p] = 0x47;
      out.writeUInt16BE((first ? 0x4000 : 0) | pid, p + 1);
      const left = payload.length - off;
      let af = first ? firstAf : 0;
      if (sectionFill === undefined && left < 184 - af) af = 184 - left;
      out[p + 3] = (af > 0 ? 0x30 : 0x10) | this.nextCounter(pid);
      let at = p + 4;
      if (af > 0) {
        out[at] = af - 1;
        if (af > 1) {
          const flags = first && video ? 0x10 | (video.randomAccess ? 0x40 : 0) : 0;
          out[at + 1] = flags;
          let fill = at + 2;
          if (flags & 0x10) {
            writePcr(out, at + 2, video!.pcr);
            fill += 6;
          }
          out.fill(0xff, fill, at + af);
        }
        at += af;
      }
      const n = Math.min(left, p + PACKET - at);
      payload.copy(out, at, off, off + n);
      off += n;
      if (at + n < p + PACKET) out.fill(sectionFill ?? 0xff, at + n, p + PACKET);
    }
    return out;
  }
}

function pat(): Buffer {
  const b = Buffer.alloc(12);
  b[0] = 0x00; // table_id
  b.writeUInt16BE(0xb000 | (b.length - 3 + 4), 1); // section_syntax, reserved, length (to the CRC's end)
  b.writeUInt16BE(1, 3); // transport_stream_id
  b[5] = 0xc1; // version 0, current
  b[6] = 0;
  b[7] = 0;
  b.writeUInt16BE(1, 8); // program 1 …
  b.writeUInt16BE(0xe000 | PMT_PID, 10); // … at this PID
  return b;
}

function pmt(streamType: number): Buffer {
  const b = Buffer.alloc(17);
  b[0] = 0x02;
  b.writeUInt16BE(0xb000 | (b.length - 3 + 4), 1);
  b.writeUInt16BE(1, 3); // program_number
  b[5] = 0xc1;
  b[6] = 0;
  b[7] = 0;
  b.writeUInt16BE(0xe000 | VIDEO_PID, 8); // PCR PID
  b.writeUInt16BE(0xf000, 10); // no program info
  b[12] = streamType;
  b.writeUInt16BE(0xe000 | VIDEO_PID, 13);
  b.writeUInt16BE(0xf000, 15); // no ES info
  return b;
}

function writePcr(b: Buffer, at: number, base: number) {
  b[at] = Math.floor(base / 2 ** 25) & 0xff;
  b[at + 1] = Math.floor(base / 2 ** 17) & 0xff;
  b[at + 2] = Math.floor(base / 2 ** 9) & 0xff;
  b[at + 3] = Math.floor(base / 2) & 0xff;
  b[at + 4] = ((base % 2) << 7) | 0x7e; // reserved bits, extension 0
  b[at + 5] = 0;
}

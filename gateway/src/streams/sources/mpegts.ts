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

/** PES header of a video access unit: start code, stream id, length 0, flags, PTS. */
const PES_HEADER_BYTES = 14;
/** The PCR's adaptation field (length, flags, 6 bytes of PCR) in a unit's first packet. */
const PCR_FIELD_BYTES = 8;
/** The output buffer kept for the next unit; a larger unit (a big keyframe) gets one of its own. */
const MAX_KEPT_OUTPUT = 256 * 1024;

export class TsWriter {
  private readonly counters = new Map<number, number>();
  private readonly tables: Buffer;
  /** Where units are written; handed out by unit() and written over by the next one once recycle() says it was consumed. */
  private out: Buffer | null = null;
  private lent = false;

  constructor(codec: TsCodec) {
    this.tables = Buffer.concat([this.section(0, pat()), this.section(PMT_PID, pmt(STREAM_TYPE[codec]))]);
  }

  /**
   * The TS packets of one access unit (Annex-B), tables first when it is a keyframe. They are
   * written straight from `data` (no PES copy in between) into a buffer the writer may reuse for a
   * later unit once the caller has said, by recycle(), that nothing holds these bytes any more: at
   * 25 frames a second per camera, a new buffer per unit was most of what the gateway allocated.
   */
  unit(data: Buffer, pts90k: number, key: boolean): Buffer {
    const packets = Math.max(1, Math.ceil((PES_HEADER_BYTES + data.length + PCR_FIELD_BYTES) / 184));
    const size = (key ? this.tables.length : 0) + packets * PACKET;
    const out = this.output(size);
    let at = 0;
    if (key) at = this.refreshTables(out);
    this.packetizeVideo(out, at, packets, data, pts90k, key);
    return out.subarray(0, size);
  }

  /** The buffer the last unit() returned is no longer referenced (it was written out): the next unit may overwrite it. */
  recycle(): void {
    this.lent = false;
  }

  /**
   * The kept buffer when it is free and large enough. Otherwise a new one of just the size needed
   * (ffmpeg behind: the pipe still queues the kept one, and a buffer made larger than needed here
   * would only add to what the garbage collector reclaims), kept for the next unit when it is not
   * too large.
   */
  private output(size: number): Buffer {
    if (!this.lent && this.out && this.out.length >= size) {
      this.lent = true;
      return this.out;
    }
    const out = Buffer.allocUnsafe(size);
    if (size <= MAX_KEPT_OUTPUT) {
      this.out = out;
      this.lent = true;
    }
    return out;
  }

  /** The tables again at the start of `out`, with this PID's continuity counters moved on; returns their length. */
  private refreshTables(out: Buffer): number {
    this.tables.copy(out, 0);
    for (let at = 0; at < this.tables.length; at += PACKET) {
      const pid = out.readUInt16BE(at + 1) & 0x1fff;
      out[at + 3] = (out[at + 3]! & 0xf0) | this.nextCounter(pid);
    }
    return this.tables.length;
  }

  private section(pid: number, body: Buffer): Buffer {
    const crc = Buffer.allocUnsafe(4);
    crc.writeUInt32BE(crc32Mpeg(body));
    // pointer_field 0: the section starts right away.
    const payload = Buffer.concat([Buffer.from([0]), body, crc]);
    const count = Math.ceil(payload.length / 184);
    const out = Buffer.allocUnsafe(count * PACKET);
    for (let k = 0, off = 0; k < count; k++) {
      const p = k * PACKET;
      out[p] = 0x47;
      out.writeUInt16BE((k === 0 ? 0x4000 : 0) | pid, p + 1);
      out[p + 3] = 0x10 | this.nextCounter(pid);
      const n = Math.min(payload.length - off, 184);
      payload.copy(out, p + 4, off, off + n);
      off += n;
      // The section's end is followed by 0xFF to the end of the packet.
      out.fill(0xff, p + 4 + n, p + PACKET);
    }
    return out;
  }

  private nextCounter(pid: number): number {
    const c = ((this.counters.get(pid) ?? 15) + 1) & 0x0f;
    this.counters.set(pid, c);
    return c;
  }

  /**
   * Cuts the PES (its 14-byte header, then `data`) into 188-byte packets at `at`. The first carries
   * the unit start flag, the PCR and the whole PES header; the last is filled with adaptation-field
   * stuffing.
   */
  private packetizeVideo(out: Buffer, at: number, count: number, data: Buffer, pts90k: number, key: boolean) {
    let off = 0;
    for (let k = 0; k < count; k++) {
      const p = at + k * PACKET;
      const first = k === 0;
      out[p] = 0x47;
      out[p + 1] = ((first ? 0x4000 : 0) | VIDEO_PID) >> 8;
      out[p + 2] = VIDEO_PID & 0xff;
      const header = first ? PES_HEADER_BYTES : 0;
      const left = header + data.length - off;
      let af = first ? PCR_FIELD_BYTES : 0;
      if (left < 184 - af) af = 184 - left;
      out[p + 3] = (af > 0 ? 0x30 : 0x10) | this.nextCounter(VIDEO_PID);
      let w = p + 4;
      if (af > 0) {
        out[w] = af - 1;
        if (af > 1) {
          const flags = first ? 0x10 | (key ? 0x40 : 0) : 0;
          out[w + 1] = flags;
          let fill = w + 2;
          if (first) {
            writePcr(out, w + 2, (pts90k - PCR_LEAD + WRAP) % WRAP);
            fill += 6;
          }
          if (fill < w + af) out.fill(0xff, fill, w + af);
        }
        w += af;
      }
      if (first) {
        out.writeUInt32BE(0x0000_01e0, w);
        // Length 0: unbounded, as video PES in a transport stream may be.
        out[w + 4] = 0;
        out[w + 5] = 0;
        out[w + 6] = 0x84; // data_alignment: the PES starts with the access unit
        out[w + 7] = 0x80; // PTS only
        out[w + 8] = 5;
        writeTimestamp(out, w + 9, 0b0010, pts90k);
        w += PES_HEADER_BYTES;
      }
      const n = Math.min(data.length - off, p + PACKET - w);
      if (n > 0) data.copy(out, w, off, off + n);
      off += n;
    }
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

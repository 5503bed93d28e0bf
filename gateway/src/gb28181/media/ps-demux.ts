import type { AccessUnit } from './types.js';

/**
 * MPEG-2 program stream (GB/T 28181 App. C) to access units, fed the RTP payloads in sequence
 * order however they cut the stream. Written for what devices actually send (reference §6, §9):
 * packs without a system header, a PSM whose CRC is 0 or whose entries a vendor blanked, private
 * (0xBD) and padding (0xBE) streams, audio to drop, a frame over several PES, a video PES of
 * length 0, and garbage after which it scans for the next pack header.
 *
 * GB sends one frame per pack, so the frame collected since a pack header is complete at the next
 * pack header (or an end code, or `flush()` when the caller saw the RTP marker).
 */

export const DEFAULT_MAX_PES_BYTES = 4 * 1024 * 1024;

export interface PsDemuxerStats {
  /** Bytes pushed. */
  bytes: number;
  /** Access units delivered. */
  units: number;
  /** Bytes passed over: garbage before a pack header, private and padding streams, unknown structures, frames dropped. */
  skipped: number;
  /** Audio PES seen (and dropped: the wall shows no audio from GB devices). */
  audio: number;
  /** Frames (or length-0 PES) dropped for growing over maxPesBytes. */
  oversized: number;
}

const START_CODE = Buffer.from([0, 0, 1]);
const PACK_START = Buffer.from([0, 0, 1, 0xba]);
const BIT30 = 0x4000_0000;
const STREAM_TYPE_H264 = 0x1b;
const STREAM_TYPE_H265 = 0x24;

export interface PackHeader {
  /** The system clock reference's 90 kHz base (33 bits). */
  scr90k: number;
  scrExtension: number;
  /** In units of 50 bytes/s. */
  muxRate: number;
  /** The whole header, stuffing included. */
  length: number;
}

/** The pack header at `at` (MPEG-2, or MPEG-1's shorter form); null when its bytes have not all arrived; 'bad' when it is none. */
export function parsePackHeader(b: Buffer, at: number): PackHeader | null | 'bad' {
  if (b.length - at < 5) return null;
  const m = b[at + 4]!;
  if ((m & 0xc0) === 0x40) {
    if (b.length - at < 14) return null;
    const hi = (m >> 3) & 0x07;
    const lo = ((m & 0x03) << 28) | (b[at + 5]! << 20) | ((b[at + 6]! & 0xf8) << 12) | ((b[at + 6]! & 0x03) << 13) | (b[at + 7]! << 5) | (b[at + 8]! >> 3);
    const scrExtension = ((b[at + 8]! & 0x03) << 7) | (b[at + 9]! >> 1);
    const muxRate = b.readUIntBE(at + 10, 3) >>> 2;
    const length = 14 + (b[at + 13]! & 0x07);
    if (b.length - at < length) return null;
    return { scr90k: hi * BIT30 + lo, scrExtension, muxRate, length };
  }
  if ((m & 0xf0) === 0x20) {
    // MPEG-1: '0010' SCR[32..30] 1, SCR[29..15] 1, SCR[14..0] 1, then the mux rate.
    if (b.length - at < 12) return null;
    return { scr90k: timestamp(b, at + 4), scrExtension: 0, muxRate: (b.readUIntBE(at + 9, 3) >>> 1) & 0x3f_ffff, length: 12 };
  }
  return 'bad';
}

export interface SystemHeader {
  rateBound: number;
  audioBound: number;
  videoBound: number;
  streams: { streamId: number; bufferScale: number; bufferSize: number }[];
  /** The whole structure. */
  length: number;
}

/** The system header at `at`, whose bytes have all arrived (6 + its length field). */
export function parseSystemHeader(b: Buffer, at: number): SystemHeader {
  const length = 6 + b.readUInt16BE(at + 4);
  const streams: SystemHeader['streams'] = [];
  for (let p = at + 12; p + 3 <= at + length && b[p]! & 0x80; p += 3) {
    streams.push({ streamId: b[p]!, bufferScale: (b[p + 1]! >> 5) & 0x01, bufferSize: b.readUInt16BE(p + 1) & 0x1fff });
  }
  return {
    rateBound: (b.readUIntBE(at + 6, 3) >>> 1) & 0x3f_ffff,
    audioBound: length >= 10 ? b[at + 9]! >> 2 : 0,
    videoBound: length >= 11 ? b[at + 10]! & 0x1f : 0,
    streams,
    length,
  };
}

export interface ProgramStreamMap {
  currentNext: boolean;
  version: number;
  /** program_stream_info's descriptors. */
  info: Buffer;
  /** Entries as written, a vendor's blanked ones (type 0, id 0) included. */
  entries: { streamType: number; streamId: number; descriptors: Buffer }[];
  /** As sent; never checked: devices send 0 (reference §9). */
  crc: number | null;
  length: number;
}

/** The PSM at `at`, whose bytes have all arrived (6 + its length field). Fields that overrun its length are cut at it. */
export function parsePsm(b: Buffer, at: number): ProgramStreamMap {
  const length = 6 + b.readUInt16BE(at + 4);
  const end = at + length;
  const psm: ProgramStreamMap = { currentNext: false, version: 0, info: Buffer.alloc(0), entries: [], crc: null, length };
  if (length < 12) return psm;
  psm.currentNext = (b[at + 6]! & 0x80) !== 0;
  psm.version = b[at + 6]! & 0x1f;
  const infoLength = b.readUInt16BE(at + 8);
  psm.info = b.subarray(at + 10, Math.min(end, at + 10 + infoLength));
  let p = at + 10 + infoLength;
  if (p + 2 > end) return psm;
  const mapEnd = Math.min(end, p + 2 + b.readUInt16BE(p));
  for (p += 2; p + 4 <= mapEnd; ) {
    const descriptorLength = b.readUInt16BE(p + 2);
    psm.entries.push({ streamType: b[p]!, streamId: b[p + 1]!, descriptors: b.subarray(p + 4, Math.min(mapEnd, p + 4 + descriptorLength)) });
    p += 4 + descriptorLength;
  }
  if (end - 4 >= mapEnd) psm.crc = b.readUInt32BE(end - 4);
  return psm;
}

export interface PesHeader {
  streamId: number;
  /** PES_packet_length: 0 means "to the next start code" (allowed in TS only, but sent). */
  packetLength: number;
  pts90k: number | null;
  dts90k: number | null;
  /** Where the payload starts, from the start code. */
  headerLength: number;
}

/** The MPEG-2 PES header at `at`; null until its bytes have arrived; 'bad' when it is not one. */
export function parsePesHeader(b: Buffer, at: number): PesHeader | null | 'bad' {
  if (b.length - at < 9) return null;
  if ((b[at + 6]! & 0xc0) !== 0x80) return 'bad';
  const flags = b[at + 7]! >> 6;
  const dataLength = b[at + 8]!;
  const headerLength = 9 + dataLength;
  if (b.length - at < headerLength) return null;
  const packetLength = b.readUInt16BE(at + 4);
  if (packetLength !== 0 && packetLength < 3 + dataLength) return 'bad';
  const pts = flags >= 2 && dataLength >= 5 ? timestamp(b, at + 9) : null;
  const dts = flags === 3 && dataLength >= 10 ? timestamp(b, at + 14) : null;
  return { streamId: b[at + 3]!, packetLength, pts90k: pts, dts90k: dts, headerLength };
}

/** A 33-bit PTS, DTS or MPEG-1 SCR: 4 bits, [32..30], marker, [29..15], marker, [14..0], marker. */
function timestamp(b: Buffer, at: number): number {
  const hi = (b[at]! >> 1) & 0x07;
  const lo = (b[at + 1]! << 22) | ((b[at + 2]! >> 1) << 15) | (b[at + 3]! << 7) | (b[at + 4]! >> 1);
  return hi * BIT30 + lo;
}

export class PsDemuxer {
  readonly stats: PsDemuxerStats = { bytes: 0, units: 0, skipped: 0, audio: 0, oversized: 0 };
  private readonly maxPesBytes: number;
  private readonly lendUnits: boolean;
  /** The unparsed start of a structure whose end has not arrived (a few bytes; a PSM at most 64 KiB). */
  private carry: Buffer | null = null;
  /** Scanning for a pack header: at the start, and after bytes that made no sense. */
  private synced = false;
  /** Bytes left of the PES payload or skipped structure in progress. */
  private remaining = 0;
  private remainingIsVideo = false;
  /** In a length-0 video PES, which runs to the next program-stream start code. */
  private openVideo = false;
  /** The video stream the last PSM named, and its type; until one comes, any video stream id is taken. */
  private videoStreamType: number | null = null;
  private videoStreamId: number | null = null;
  /** The codec read from a parameter set, when no PSM named it. */
  private sniffed: AccessUnit['codec'] | null = null;
  /** The frame being collected (copied out of the pushed buffers, which the caller may reuse). */
  private frame = Buffer.allocUnsafe(64 * 1024);
  private frameLength = 0;
  private frameDropped = false;
  private framePts: number | null = null;
  private packScr: number | null = null;

  constructor(
    private readonly onUnit: (u: AccessUnit) => void,
    /**
     * lendUnits: a unit's data is a view of the demuxer's own buffer, valid only during onUnit, for a
     * consumer that copies what it keeps anyway (the ES ingest writes it out at once): one
     * allocation and one copy of every frame fewer.
     */
    opts: { maxPesBytes?: number; lendUnits?: boolean } = {},
  ) {
    this.maxPesBytes = opts.maxPesBytes ?? DEFAULT_MAX_PES_BYTES;
    this.lendUnits = opts.lendUnits ?? false;
  }

  push(payload: Buffer): void {
    this.stats.bytes += payload.length;
    let data = payload;
    if (this.carry) {
      data = Buffer.concat([this.carry, payload]);
      this.carry = null;
    }
    const end = data.length;
    let pos = 0;
    while (pos < end) {
      if (this.remaining > 0) {
        const n = Math.min(this.remaining, end - pos);
        if (this.remainingIsVideo) this.append(data, pos, pos + n);
        else this.stats.skipped += n;
        pos += n;
        this.remaining -= n;
        continue;
      }
      if (this.openVideo) {
        const next = nextPsStartCode(data, pos);
        if (next < 0) {
          // The last bytes may begin the start code that ends it.
          const keep = Math.min(3, end - pos);
          this.append(data, pos, end - keep);
          this.keep(data, end - keep);
          return;
        }
        this.append(data, pos, next);
        this.openVideo = false;
        pos = next;
        continue;
      }
      if (!this.synced) {
        const at = data.indexOf(PACK_START, pos);
        if (at < 0) {
          const keep = Math.min(3, end - pos);
          this.stats.skipped += end - pos - keep;
          this.keep(data, end - keep);
          return;
        }
        this.stats.skipped += at - pos;
        pos = at;
        this.synced = true;
      }
      if (end - pos < 4) {
        this.keep(data, pos);
        return;
      }
      if (data[pos] !== 0 || data[pos + 1] !== 0 || data[pos + 2] !== 1) {
        if (data[pos] === 0 && data[pos + 1] === 0 && data[pos + 2] === 0) {
          // Zero stuffing between structures (or a 4-byte start code): harmless.
          this.stats.skipped++;
          pos++;
        } else {
          this.lostSync();
        }
        continue;
      }
      const used = this.structure(data, pos);
      if (used === 0) {
        this.keep(data, pos);
        return;
      }
      pos += used;
    }
  }

  /** Delivers the frame collected so far: the caller saw its end (the RTP marker), so it need not wait for the next pack. */
  flush(): void {
    if (this.remaining > 0) return;
    if (this.openVideo) {
      // The bytes held back in case they began a start code are the frame's last.
      if (this.carry) this.append(this.carry, 0, this.carry.length);
      this.carry = null;
      this.openVideo = false;
    }
    this.emitFrame();
  }

  /**
   * Drops the frame in progress and scans for the next pack header: the caller knows bytes are
   * missing (RTP packets lost), so the structure in progress cannot be trusted.
   */
  resync(): void {
    this.dropFrame();
    this.synced = false;
    this.carry = null;
    this.remaining = 0;
    this.openVideo = false;
  }

  /** Parses the structure whose start code is at `pos`; returns the bytes used, 0 when more must arrive. */
  private structure(data: Buffer, pos: number): number {
    const id = data[pos + 3]!;
    if (id === 0xba) {
      const pack = parsePackHeader(data, pos);
      if (pack === null) return 0;
      if (pack === 'bad') return this.lostSync(), 4;
      this.emitFrame();
      this.packScr = pack.scr90k;
      return pack.length;
    }
    if (id === 0xb9) {
      this.emitFrame();
      return 4;
    }
    if (id < 0xb9) {
      // A NAL start code or worse where a program-stream structure belongs.
      this.lostSync();
      return 4;
    }
    if (data.length - pos < 6) return 0;
    const length = data.readUInt16BE(pos + 4);
    if (id === 0xbc) {
      if (data.length - pos < 6 + length) return 0;
      this.readPsm(parsePsm(data, pos));
      return 6 + length;
    }
    if (id >= 0xe0 && id <= 0xef) return this.videoPes(data, pos);
    if (id === 0xbb) {
      // The system header says nothing the PSM and the PES do not; GB devices often leave it out.
      if (data.length - pos < 6 + length) return 0;
      return 6 + length;
    }
    if (id >= 0xc0 && id <= 0xdf) this.stats.audio++;
    // Private streams 1 and 2, padding, audio, ECM/EMM and the rest: their length says where they end.
    this.stats.skipped += 6;
    this.remaining = length;
    this.remainingIsVideo = false;
    return 6;
  }

  private videoPes(data: Buffer, pos: number): number {
    const pes = parsePesHeader(data, pos);
    if (pes === null) return 0;
    if (pes === 'bad') return this.lostSync(), 4;
    const ours = this.videoStreamId === null || pes.streamId === this.videoStreamId;
    if (ours && this.framePts === null && pes.pts90k !== null) this.framePts = pes.pts90k;
    if (pes.packetLength === 0) {
      if (ours) this.openVideo = true;
      else this.lostSync();
      return pes.headerLength;
    }
    this.remaining = pes.packetLength + 6 - pes.headerLength;
    this.remainingIsVideo = ours;
    return pes.headerLength;
  }

  /** Each PSM replaces what the last one said, so a garbled one is forgotten at the next keyframe. */
  private readPsm(psm: ProgramStreamMap) {
    const video = psm.entries.find((e) => e.streamId >= 0xe0 && e.streamId <= 0xef);
    if (!video) return;
    this.videoStreamId = video.streamId;
    this.videoStreamType = video.streamType;
  }

  private append(data: Buffer, from: number, to: number) {
    const n = to - from;
    if (n <= 0) return;
    if (this.frameDropped) {
      this.stats.skipped += n;
      return;
    }
    const needed = this.frameLength + n;
    if (needed > this.maxPesBytes) {
      this.stats.oversized++;
      this.stats.skipped += n;
      this.dropFrame();
      this.frameDropped = true;
      return;
    }
    if (needed > this.frame.length) {
      const grown = Buffer.allocUnsafe(Math.min(this.maxPesBytes, Math.max(needed, this.frame.length * 2)));
      this.frame.copy(grown, 0, 0, this.frameLength);
      this.frame = grown;
    }
    data.copy(this.frame, this.frameLength, from, to);
    this.frameLength = needed;
  }

  private emitFrame() {
    const length = this.frameLength;
    const dropped = this.frameDropped;
    const pts = this.framePts ?? this.packScr ?? 0;
    this.frameDropped = false;
    this.framePts = null;
    if (dropped || length === 0) {
      this.frameLength = 0;
      return;
    }
    const view = this.frame.subarray(0, length);
    const codec = this.codecOf(view);
    const { key, picture } = frameInfo(codec, view);
    // Parameter sets or SEI in a pack of their own (some devices send the SPS, PPS and IDR as three
    // packs): they belong to the picture that follows, so they wait for it, within maxPesBytes.
    if (!picture) return;
    this.frameLength = 0;
    const data = this.lendUnits ? view : Buffer.from(view);
    // A keyframe grows the scratch buffer; let it shrink back rather than keep the largest frame ever seen.
    if (this.frame.length > 1024 * 1024 && length < this.frame.length / 4) this.frame = Buffer.allocUnsafe(256 * 1024);
    this.stats.units++;
    this.onUnit({ codec, pts90k: pts, key, data });
  }

  private codecOf(data: Buffer): AccessUnit['codec'] {
    if (this.videoStreamType === STREAM_TYPE_H265) return 'h265';
    if (this.videoStreamType === STREAM_TYPE_H264) return 'h264';
    // Sniffed again at every frame that says, so a garbled frame's verdict does not stick.
    this.sniffed = sniffCodec(data) ?? this.sniffed;
    return this.sniffed ?? 'h264';
  }

  private dropFrame() {
    this.stats.skipped += this.frameLength;
    this.frameLength = 0;
    this.framePts = null;
  }

  /** Bytes that make no sense here: drop the frame they belong to and look for the next pack header. */
  private lostSync() {
    this.dropFrame();
    this.frameDropped = false;
    this.synced = false;
  }

  private keep(data: Buffer, from: number) {
    this.carry = from < data.length ? Buffer.from(data.subarray(from)) : null;
  }
}

/** The next program-stream start code (00 00 01 then an id of 0xB9 or more; NAL headers are below 0x80). */
function nextPsStartCode(data: Buffer, from: number): number {
  for (let at = data.indexOf(START_CODE, from); at >= 0; at = data.indexOf(START_CODE, at + 1)) {
    if (at + 3 >= data.length) return -1;
    if (data[at + 3]! >= 0xb9) return at;
  }
  return -1;
}

/** NAL unit header positions (the byte after each start code) of an Annex-B buffer. */
function* nalHeaders(data: Buffer): Generator<number> {
  for (let at = data.indexOf(START_CODE); at >= 0 && at + 3 < data.length; at = data.indexOf(START_CODE, at + 3)) yield at + 3;
}

/**
 * Whether a frame holds a picture (a slice: H.264 types 1-5, H.265 0-31) and whether a decoder may
 * start at it: an IDR (H.264 5) or IRAP (H.265 16-21) picture, or a sequence parameter set (7 / 33).
 */
export function frameInfo(codec: AccessUnit['codec'], data: Buffer): { key: boolean; picture: boolean } {
  let key = false;
  let picture = false;
  for (const h of nalHeaders(data)) {
    if (codec === 'h264') {
      const type = data[h]! & 0x1f;
      if (type === 5 || type === 7) key = true;
      if (type >= 1 && type <= 5) picture = true;
    } else {
      const type = (data[h]! >> 1) & 0x3f;
      if ((type >= 16 && type <= 21) || type === 33) key = true;
      if (type <= 31) picture = true;
    }
  }
  return { key, picture };
}

/**
 * The codec of a stream without a PSM, from its parameter sets or access unit delimiters: H.265's
 * two-byte headers of VPS/SPS/PPS/AUD (0x40/0x42/0x44/0x46, then layer 0 tid 1 = 0x01) cannot be
 * H.264's (a SEI or partition with nal_ref_idc 2 before a byte 0x01); H.264's SPS (7) or AUD (9).
 * Null when the frame has neither.
 */
export function sniffCodec(data: Buffer): AccessUnit['codec'] | null {
  for (const h of nalHeaders(data)) {
    const b0 = data[h]!;
    const b1 = data[h + 1];
    if ((b0 === 0x40 || b0 === 0x42 || b0 === 0x44 || b0 === 0x46) && b1 === 0x01) return 'h265';
    if (!(b0 & 0x80) && ((b0 & 0x1f) === 7 || (b0 & 0x1f) === 9)) return 'h264';
  }
  return null;
}

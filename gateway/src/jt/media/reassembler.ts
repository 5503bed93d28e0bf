/**
 * One (SIM, channel) stream of JT/T 1078 packets → video access units (jt1078.md §3.3). A frame is
 * an atomic packet or first, middle..., last (codes 1, 3..., 2) with consecutive sequence numbers; a
 * frame that lost a piece is dropped whole, since a decoder fed half a picture shows garbage.
 */
import type { AccessUnit } from '../../gb28181/media/types.js';
import { JT1078_DATA_TYPE, JT1078_PT, JT1078_SUBPACKAGE, type Jt1078Packet } from './packet.js';

const PTS_WRAP = 2 ** 33;
/** A 2 MiB frame in the standard's 950-byte packets is 2,208 pieces; a frame in more is an attack on the memory each piece costs. */
const DEFAULT_MAX_PIECES = 4_096;
/**
 * Pieces are views into the socket's reads, and a view pins its whole read: a device sending one
 * byte a read would pin 64 KiB a byte. The reads a frame's views pin are kept under this many times
 * the frame's bytes (plus PIN_ALLOWANCE, the first couple of reads); a piece past it is copied.
 */
const PIN_RATIO = 4;
const PIN_ALLOWANCE = 128 * 1024;
/** A device timestamp step past this is a jump (a reset, a vendor's nonsense), not a frame interval. */
const MAX_TIMESTAMP_STEP_MS = 10_000;

export interface Jt1078ReassemblerOptions {
  /** The largest frame taken; a larger one is dropped (counted in stats.oversize). */
  maxFrameBytes: number;
  /** The most pieces of one frame (4,096 unless given); a frame in more is dropped (counted in stats.tooManyPieces). */
  maxPieces?: number;
  onUnit(u: AccessUnit): void;
  /** ms; our own clock for a device whose timestamps do not increase. */
  clock?: () => number;
}

export class Jt1078Reassembler {
  /** Frames given on and dropped (a lost piece, oversize, too many pieces, unknown PT), and packets dropped: audio, passthrough, empty middle pieces. */
  readonly stats = { units: 0, bytes: 0, dropped: 0, audio: 0, passthrough: 0, oversize: 0, tooManyPieces: 0, emptyPieces: 0 };
  private readonly clock: () => number;
  private readonly maxPieces: number;
  private pieces: Buffer[] = [];
  private pieceBytes = 0;
  /** Bytes of the reads the frame's views pin, and the last of them (the next piece usually comes from it too). */
  private pinnedBytes = 0;
  private lastRead: ArrayBufferLike | null = null;
  private inFrame = false;
  /** The rest of a frame already counted as dropped: its later pieces are skipped silently. */
  private skipping = false;
  private frameType = 0;
  private framePt = 0;
  private frameTimestamp: number | null = null;
  private frameInterval: number | null = null;
  /** Sequence of the last packet of any type, and of the last video piece: devices number audio with video or apart. */
  private lastSeq = -1;
  private lastVideoSeq = -1;
  private lastTimestamp: number | null = null;
  private lastPts: number | null = null;
  private lastClock = 0;

  constructor(private readonly opts: Jt1078ReassemblerOptions) {
    this.clock = opts.clock ?? Date.now;
    this.maxPieces = opts.maxPieces ?? DEFAULT_MAX_PIECES;
  }

  push(p: Jt1078Packet): void {
    const prevSeq = this.lastSeq;
    this.lastSeq = p.seq;
    if (p.dataType === JT1078_DATA_TYPE.AUDIO) {
      this.stats.audio++;
      return;
    }
    if (p.dataType === JT1078_DATA_TYPE.PASSTHROUGH || p.dataType > JT1078_DATA_TYPE.B) {
      this.stats.passthrough++;
      return;
    }
    const prevVideoSeq = this.lastVideoSeq;
    this.lastVideoSeq = p.seq;
    switch (p.subpackage) {
      case JT1078_SUBPACKAGE.ATOMIC:
        this.abandon();
        this.skipping = false;
        if (p.body.length > this.opts.maxFrameBytes) {
          this.stats.oversize++;
          this.stats.dropped++;
          return;
        }
        this.emit(p.body, p.dataType, p.pt, p.timestamp, p.lastFrameInterval);
        return;
      case JT1078_SUBPACKAGE.FIRST:
        this.abandon();
        this.skipping = false;
        this.inFrame = true;
        this.frameType = p.dataType;
        this.framePt = p.pt;
        this.frameTimestamp = p.timestamp;
        this.frameInterval = p.lastFrameInterval;
        this.append(p.body);
        return;
      default: {
        const last = p.subpackage === JT1078_SUBPACKAGE.LAST;
        if (!this.inFrame) {
          // Its first piece never came (or the frame was dropped already): count the frame once.
          if (!this.skipping) this.stats.dropped++;
          this.skipping = !last;
          return;
        }
        const contiguous = p.seq === ((prevSeq + 1) & 0xffff) || p.seq === ((prevVideoSeq + 1) & 0xffff);
        if (!contiguous) {
          this.abandon();
          this.skipping = !last;
          return;
        }
        if (!last && p.body.length === 0) {
          // Adds nothing to the frame but a piece to hold; its sequence number was taken above, so the next piece is still contiguous.
          this.stats.emptyPieces++;
          return;
        }
        this.append(p.body);
        if (!this.inFrame) this.skipping = !last;
        if (!last || !this.inFrame) return;
        const data = this.pieces.length === 1 ? this.pieces[0]! : Buffer.concat(this.pieces, this.pieceBytes);
        this.clearPieces();
        this.emit(data, this.frameType, this.framePt, this.frameTimestamp, this.frameInterval);
      }
    }
  }

  private append(body: Buffer): void {
    if (this.pieceBytes + body.length > this.opts.maxFrameBytes) {
      this.stats.oversize++;
      this.abandon();
      this.skipping = true;
      return;
    }
    if (body.length === 0) return;
    if (this.pieces.length >= this.maxPieces) {
      this.stats.tooManyPieces++;
      this.abandon();
      this.skipping = true;
      return;
    }
    this.pieceBytes += body.length;
    if (body.buffer === this.lastRead) {
      this.pieces.push(body);
    } else if (this.pinnedBytes + body.buffer.byteLength <= PIN_RATIO * this.pieceBytes + PIN_ALLOWANCE) {
      this.pinnedBytes += body.buffer.byteLength;
      this.lastRead = body.buffer;
      this.pieces.push(body);
    } else {
      this.pieces.push(Buffer.from(body));
    }
  }

  private clearPieces(): void {
    this.inFrame = false;
    this.pieces = [];
    this.pieceBytes = 0;
    this.pinnedBytes = 0;
    this.lastRead = null;
  }

  /** Drops the frame in progress, if any, counting it. */
  private abandon(): void {
    if (!this.inFrame) return;
    this.clearPieces();
    this.stats.dropped++;
  }

  private emit(data: Buffer, dataType: number, pt: number, timestamp: number | null, frameInterval: number | null): void {
    const codec = pt === JT1078_PT.H264 ? 'h264' : pt === JT1078_PT.H265 ? 'h265' : null;
    if (codec === null) {
      this.stats.dropped++;
      return;
    }
    this.stats.units++;
    this.stats.bytes += data.length;
    this.opts.onUnit({ codec, pts90k: this.pts(timestamp, frameInterval), key: dataType === JT1078_DATA_TYPE.I, data });
  }

  /**
   * The device's timestamps while they step forward by a plausible interval (jt1078.md P5: some are
   * constant, some jump); otherwise the frame's "last frame interval", or else our own clock. Always increasing.
   */
  private pts(timestamp: number | null, frameInterval: number | null): number {
    const now = this.clock();
    let pts: number;
    if (this.lastPts === null) {
      pts = timestamp !== null ? (timestamp * 90) % PTS_WRAP : 0;
    } else {
      const step = timestamp !== null && this.lastTimestamp !== null ? timestamp - this.lastTimestamp : -1;
      let stepMs: number;
      if (step > 0 && step <= MAX_TIMESTAMP_STEP_MS) stepMs = step;
      else if (frameInterval !== null && frameInterval > 0 && frameInterval <= 1000) stepMs = frameInterval;
      else stepMs = now - this.lastClock;
      pts = (this.lastPts + Math.max(1, Math.round(stepMs * 90))) % PTS_WRAP;
    }
    this.lastPts = pts;
    this.lastTimestamp = timestamp;
    this.lastClock = now;
    return pts;
  }
}

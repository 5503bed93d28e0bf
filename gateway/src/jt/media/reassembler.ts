/**
 * One (SIM, channel) stream of JT/T 1078 packets → video access units (jt1078.md §3.3). A frame is
 * an atomic packet or first, middle..., last (codes 1, 3..., 2) with consecutive sequence numbers; a
 * frame that lost a piece is dropped whole, since a decoder fed half a picture shows garbage.
 */
import type { AccessUnit } from '../../gb28181/media/types.js';
import { JT1078_DATA_TYPE, JT1078_PT, JT1078_SUBPACKAGE, type Jt1078Packet } from './packet.js';

const PTS_WRAP = 2 ** 33;
/** A device timestamp step past this is a jump (a reset, a vendor's nonsense), not a frame interval. */
const MAX_TIMESTAMP_STEP_MS = 10_000;

export interface Jt1078ReassemblerOptions {
  /** The largest frame taken; a larger one is dropped (counted in stats.oversize). */
  maxFrameBytes: number;
  onUnit(u: AccessUnit): void;
  /** ms; our own clock for a device whose timestamps do not increase. */
  clock?: () => number;
}

export class Jt1078Reassembler {
  readonly stats = { units: 0, bytes: 0, dropped: 0, audio: 0, passthrough: 0, oversize: 0 };
  private readonly clock: () => number;
  private pieces: Buffer[] = [];
  private pieceBytes = 0;
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
        this.append(p.body);
        if (!this.inFrame) this.skipping = !last;
        if (!last || !this.inFrame) return;
        const data = this.pieces.length === 1 ? this.pieces[0]! : Buffer.concat(this.pieces, this.pieceBytes);
        this.inFrame = false;
        this.pieces = [];
        this.pieceBytes = 0;
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
    this.pieces.push(body);
    this.pieceBytes += body.length;
  }

  /** Drops the frame in progress, if any, counting it. */
  private abandon(): void {
    if (!this.inFrame) return;
    this.inFrame = false;
    this.pieces = [];
    this.pieceBytes = 0;
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

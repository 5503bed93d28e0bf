import type { GatewayError } from '../../errors.js';
import type { AccessUnit } from '../../gb28181/media/types.js';
import { classifyFailure } from '../failure.js';
import { tsPipeArgs } from '../process/args.js';
import type { DriverAttempt, DriverContext, DriverEvents } from './driver.js';
import { FfmpegRun, type FailureWords } from './ffmpeg-run.js';
import { TsWriter } from './mpegts.js';

/** Bytes ffmpeg may fall behind by (a few seconds of a camera's stream) before units are dropped. */
const DEFAULT_MAX_QUEUE_BYTES = 8 * 1024 * 1024;
/** Units kept from the latest keyframe while ffmpeg is still starting. */
const MAX_PENDING_BYTES = 8 * 1024 * 1024;

export interface EsIngestOptions {
  /** How ffmpeg's unexpected exit is worded (default: as for a pull). */
  words?: FailureWords;
  /** How far ffmpeg's stdin may fall behind before units are dropped. */
  maxQueueBytes?: number;
}

/**
 * The shared half of every socket-fed source (GB/T 28181 now, JT/T 1078 next): access units the
 * driver reassembled go into one ffmpeg as MPEG-TS on its stdin, which writes the attempt's HLS
 * directory and FLV on its stdout like a pull (FfmpegRun), so the session, its outputs, the
 * keyframe cache and the transcode of H.265 work as for any camera.
 *
 * The stream ffmpeg gets starts at a keyframe; when ffmpeg falls behind, units are dropped (and
 * counted) until it catches up, and writing resumes at the next keyframe, so it never decodes a
 * picture whose references are missing. The units' PTS go through as they are: ffmpeg's MPEG-TS
 * handling already evens out a device clock that stalls, goes back or jumps (the test shows it).
 */
export class EsIngest {
  private readonly run: FfmpegRun;
  private readonly maxQueueBytes: number;
  private writer: TsWriter | null = null;
  private codec: AccessUnit['codec'] | null = null;
  private needKey = true;
  /** Units received while ffmpeg starts, from the latest keyframe on. */
  private pending: AccessUnit[] = [];
  private pendingBytes = 0;
  private written = 0;
  private droppedUnits = 0;

  constructor(ctx: DriverContext, attempt: DriverAttempt, events: DriverEvents, opts: EsIngestOptions = {}) {
    this.run = new FfmpegRun(ctx, attempt, events, opts.words ?? classifyFailure);
    this.maxQueueBytes = opts.maxQueueBytes ?? DEFAULT_MAX_QUEUE_BYTES;
  }

  get pid(): number | null {
    return this.run.pid;
  }

  /** Units written to ffmpeg. */
  get units(): number {
    return this.written;
  }

  /** Units dropped: before the first keyframe, while ffmpeg was behind and until the next keyframe, or of another codec. */
  get dropped(): number {
    return this.droppedUnits;
  }

  /** A picture came out of ffmpeg. */
  get hadMedia(): boolean {
    return this.run.hadMedia;
  }

  /** Spawns the ffmpeg. Rejects with GW_ERR_INTERNAL when it cannot be started. */
  async start(): Promise<void> {
    const ff = await this.run.spawn(tsPipeArgs(this.run.output()), { streamStdin: true, secrets: [] });
    if (!ff) return;
    const pending = this.pending;
    this.pending = [];
    this.pendingBytes = 0;
    for (const u of pending) this.write(u);
  }

  /** Takes a unit; its data is read during the call only (a demuxer may reuse the buffer), and copied when it must wait. */
  push(u: AccessUnit): void {
    if (this.run.closed) return;
    if (this.run.process) return this.write(u);
    // Still starting: keep the stream from its latest keyframe, so the first picture needs no second GOP.
    if (u.key) {
      this.droppedUnits += this.pending.length;
      this.pending = [];
      this.pendingBytes = 0;
    }
    if ((this.pending.length === 0 && !u.key) || this.pendingBytes + u.data.length > MAX_PENDING_BYTES) {
      this.droppedUnits++;
      return;
    }
    this.pending.push({ ...u, data: Buffer.from(u.data) });
    this.pendingBytes += u.data.length;
  }

  /** The session gave up waiting; worded from what ffmpeg said. */
  timedOut(kind: 'start' | 'stall', ms: number): GatewayError {
    return this.run.timedOut(kind, ms);
  }

  stderrTail(): string[] {
    return this.run.stderrTail();
  }

  /** Stops ffmpeg (SIGTERM, then SIGKILL), also one still starting; nothing is reported afterwards. Idempotent. */
  async close(reason: string): Promise<void> {
    this.pending = [];
    await this.run.close(reason);
  }

  private write(u: AccessUnit) {
    const ff = this.run.process;
    if (!ff) return void this.droppedUnits++;
    if (this.codec !== null && u.codec !== this.codec) return void this.droppedUnits++;
    if (ff.inputBuffered > this.maxQueueBytes) {
      this.needKey = true;
      return void this.droppedUnits++;
    }
    if (this.needKey && !u.key) return void this.droppedUnits++;
    this.needKey = false;
    if (!this.writer) {
      this.codec = u.codec;
      this.writer = new TsWriter(u.codec);
    }
    if (ff.writeInput(this.writer.unit(u.data, u.pts90k, u.key))) this.written++;
    else this.droppedUnits++;
    // The pipe took every byte at once (or nothing was written): the writer's buffer is free for the next unit.
    if (ff.inputBuffered === 0) this.writer.recycle();
  }
}

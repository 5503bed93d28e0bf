import type { ChildProcess } from 'node:child_process';
import { PassThrough } from 'node:stream';
import ffmpeg from 'fluent-ffmpeg';
import { GatewayError } from '../errors.js';
import type { FlvTag } from '../streams/types.js';

/** A JPEG of one frame is far below this; a decoder writing more is broken and is stopped. */
const MAX_JPEG_BYTES = 16 * 1024 * 1024;
const STDERR_TAIL_LINES = 20;

export interface DecodeOptions {
  ffmpegPath: string;
  /**
   * The decoder configuration (the AVC sequence header) and then the keyframe. Absent for a spare:
   * started ahead and waiting on stdin until `feed` gives it its picture.
   */
  tags?: readonly FlvTag[];
  /** Output width; the frame's own when absent or wider (never scaled up). */
  width?: number;
  /** ffmpeg's -q:v for the JPEG. */
  quality: number;
  timeoutMs: number;
  /** SIGTERM to SIGKILL. */
  killGraceMs: number;
}

const running = new Set<KeyframeDecode>();

/**
 * One keyframe decoded to one JPEG by one ffmpeg, through fluent-ffmpeg: the FLV goes in on stdin
 * and the JPEG comes back on stdout, so nothing about the camera (its URL, its password) is on the
 * decoder's command line, which is fixed text plus a width. The object owns the child: one
 * idempotent close (SIGTERM, then SIGKILL after the grace), called on success, failure, timeout and
 * the gateway's shutdown alike; `result` settles only once the child has exited. A spare is
 * constructed without its picture: ffmpeg starts and waits on stdin until `feed`.
 *
 * The child is not given the gateway's instance marker (fluent-ffmpeg spawns with the gateway's own
 * environment), so the orphan sweep would not know it; it needs no sweep: its input is a pipe from
 * the gateway, and a gateway that dies closes it, after which the decoder ends by itself.
 */
export class KeyframeDecode {
  readonly result: Promise<Buffer>;
  private readonly command: ffmpeg.FfmpegCommand;
  private child: ChildProcess | null = null;
  private exited = false;
  private readonly exit: Promise<void>;
  private markExited!: () => void;
  /** Why it was stopped, when it was: what `result` rejects with. */
  private stopError: GatewayError | null = null;
  private killTimer: NodeJS.Timeout | null = null;
  private timeout: NodeJS.Timeout | null = null;
  private readonly input = new PassThrough();
  private fed = false;
  private readonly stderr: string[] = [];
  /** The command line fluent-ffmpeg spawned, once it has: fixed words and a width, never anything of the camera. */
  commandLine: string | null = null;

  /** The decoders running now, for shutdown and tests. */
  static running(): ReadonlySet<KeyframeDecode> {
    return running;
  }

  constructor(private readonly opts: DecodeOptions) {
    running.add(this);
    this.exit = new Promise((resolve) => {
      this.markExited = () => {
        if (this.exited) return;
        this.exited = true;
        running.delete(this);
        if (this.killTimer) clearTimeout(this.killTimer);
        resolve();
      };
    });
    const chunks: Buffer[] = [];
    let bytes = 0;
    const jpeg = new PassThrough();
    jpeg.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      if (bytes > MAX_JPEG_BYTES) void this.close(`it wrote more than ${MAX_JPEG_BYTES} bytes`, 'GW_ERR_INTERNAL');
      else chunks.push(chunk);
    });
    jpeg.on('error', () => {});
    this.input.on('error', () => {});
    this.command = ffmpeg({ stdoutLines: STDERR_TAIL_LINES })
      .setFfmpegPath(opts.ffmpegPath)
      .input(this.input)
      .inputFormat('flv')
      .inputOptions(['-hide_banner', '-loglevel', 'error'])
      .noAudio()
      .frames(1)
      .videoCodec('mjpeg')
      .outputOptions(['-q:v', String(opts.quality), '-pix_fmt', 'yuvj420p'])
      .format('image2pipe');
    // Never scaled up; -2 keeps the aspect ratio with an even height. Quoted: the comma would otherwise split the filter chain.
    if (opts.width) this.command.videoFilters(`scale=w='min(${Math.floor(opts.width)},iw)':h=-2`);
    this.command.on('start', (commandLine: string) => {
      this.commandLine = commandLine;
      this.onSpawned();
    });
    this.command.on('stderr', (line: string) => {
      this.stderr.push(line);
      if (this.stderr.length > STDERR_TAIL_LINES) this.stderr.shift();
    });
    // fluent-ffmpeg reports the exit, a closed pipe or its own checks here; the child's exit is watched on the child.
    const failed = new Promise<Error>((resolve) => this.command.on('error', (err: Error) => resolve(err)));
    this.command.on('end', () => {});
    this.result = this.settle(failed, chunks, () => bytes).finally(() => {
      if (this.timeout) clearTimeout(this.timeout);
    });
    // A spare's result is only awaited once it is fed; until then a failure must not go unhandled.
    this.result.catch(() => {});
    this.command.pipe(jpeg, { end: true });
    if (opts.tags) this.feed(opts.tags);
  }

  /** Whether it still waits for its picture: a spare not yet fed and not stopped. */
  get waiting(): boolean {
    return !this.fed && !this.exited && this.stopError === null;
  }

  /** Gives the decoder its picture (once); the decode timeout runs from now. */
  feed(tags: readonly FlvTag[]): void {
    if (this.fed) throw new Error('a decoder is fed once');
    this.fed = true;
    this.timeout = setTimeout(
      () => void this.close(`no picture within ${this.opts.timeoutMs} ms (streams.snapshots.decodeTimeoutMs)`, 'GW_ERR_INTERNAL'),
      this.opts.timeoutMs,
    );
    this.timeout.unref();
    this.input.end(flvFile(tags));
  }

  /** The child's pid once spawned (fluent-ffmpeg first checks the binary's formats), for tests. */
  get pid(): number | null {
    return this.child?.pid ?? null;
  }

  private onSpawned() {
    // fluent-ffmpeg sets ffmpegProc just before 'start'; its typings do not declare it.
    const child = (this.command as unknown as { ffmpegProc?: ChildProcess }).ffmpegProc ?? null;
    if (!child) return;
    this.child = child;
    if (child.exitCode !== null || child.signalCode !== null) this.markExited();
    child.once('exit', () => this.markExited());
    // A spawn failure (no ffmpeg) emits error and no exit.
    child.once('error', () => this.markExited());
    child.stdin?.on('error', () => {});
    // Closed before fluent-ffmpeg got to spawn it: stopped now.
    if (this.stopError !== null) this.signal('SIGTERM');
  }

  private async settle(failed: Promise<Error>, chunks: Buffer[], bytes: () => number): Promise<Buffer> {
    // fluent-ffmpeg's error event can come without a child at all (a missing binary, a failed format check).
    const outcome = await Promise.race([this.exit.then(() => null), failed]);
    if (outcome !== null && !this.child) {
      this.markExited();
      throw new GatewayError('GW_ERR_INTERNAL', `the snapshot decoder could not start: ${outcome.message}`);
    }
    await this.exit;
    const code = this.child?.exitCode ?? null;
    if (this.stopError) throw this.stopError;
    const out = Buffer.concat(chunks, bytes());
    if (code !== 0 || !isJpeg(out)) {
      throw new GatewayError('GW_ERR_INTERNAL', `the keyframe could not be decoded (ffmpeg exited with ${code}): ${this.stderr.join(' | ') || 'no message'}`);
    }
    return out;
  }

  /**
   * Stops the decoder: SIGTERM, SIGKILL after the grace. Safe to call any number of times; resolves
   * once it has exited. `result` then rejects with the reason, under `code`.
   */
  close(reason: string, code: 'GW_ERR_UNAVAILABLE' | 'GW_ERR_INTERNAL' = 'GW_ERR_UNAVAILABLE'): Promise<void> {
    if (!this.exited && this.stopError === null) {
      this.stopError = new GatewayError(code, `the snapshot decoder was stopped: ${reason}`);
      this.signal('SIGTERM');
      this.killTimer = setTimeout(() => this.signal('SIGKILL'), this.opts.killGraceMs);
      this.killTimer.unref();
      // Nothing was spawned yet and nothing will be waited for: fluent-ffmpeg's checks still run, and onSpawned stops what they start.
      if (!this.child) void this.closeBeforeSpawn();
    }
    return this.exit;
  }

  /** Closed while fluent-ffmpeg was still checking the binary: the exit is whenever its child (if any) goes. */
  private async closeBeforeSpawn() {
    const spawnedOrFailed = new Promise<void>((resolve) => {
      this.command.once('start', () => resolve());
      this.command.once('error', () => resolve());
    });
    await spawnedOrFailed;
    if (!this.child) this.markExited();
  }

  private signal(sig: NodeJS.Signals) {
    if (this.exited || !this.child) return;
    try {
      this.child.kill(sig);
    } catch {
      // already gone
    }
  }
}

/** The tags as an FLV file: the header announcing video only, then each tag with its trailing size. */
export function flvFile(tags: readonly FlvTag[]): Buffer {
  const header = Buffer.from([0x46, 0x4c, 0x56, 1, 0x01, 0, 0, 0, 9, 0, 0, 0, 0]);
  const parts: Buffer[] = [header];
  for (const tag of tags) {
    const head = Buffer.alloc(11);
    head[0] = tag.type;
    head.writeUIntBE(tag.data.length, 1, 3);
    // Every tag at time zero: one picture has no timeline, and a large stream time means nothing to the decoder.
    parts.push(head, tag.data);
    const size = Buffer.alloc(4);
    size.writeUInt32BE(11 + tag.data.length);
    parts.push(size);
  }
  return Buffer.concat(parts);
}

const isJpeg = (b: Buffer) => b.length > 4 && b[0] === 0xff && b[1] === 0xd8;

/** A JPEG's size from its start-of-frame marker; null when the bytes are not a JPEG with one. */
export function jpegSize(jpeg: Buffer): { width: number; height: number } | null {
  if (!isJpeg(jpeg)) return null;
  let at = 2;
  while (at + 4 <= jpeg.length) {
    if (jpeg[at] !== 0xff) return null;
    const marker = jpeg[at + 1]!;
    // Fill bytes, and markers without a length.
    if (marker === 0xff) {
      at++;
      continue;
    }
    if (marker === 0x01 || (marker >= 0xd0 && marker <= 0xd9)) {
      at += 2;
      continue;
    }
    const length = jpeg.readUInt16BE(at + 2);
    // SOF0..SOF15, except DHT (C4), JPG (C8) and DAC (CC).
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
      if (at + 9 > jpeg.length) return null;
      return { height: jpeg.readUInt16BE(at + 5), width: jpeg.readUInt16BE(at + 7) };
    }
    at += 2 + length;
  }
  return null;
}

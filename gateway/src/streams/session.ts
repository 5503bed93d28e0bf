import { EventEmitter } from 'node:events';
import { mkdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { GatewayError } from '../errors.js';
import { Backoff } from '../lib/backoff.js';
import { classifyFailure } from './failure.js';
import { FlvDemuxer } from './flv-demux.js';
import { GopStore } from './gop-store.js';
import { concatList, pullArgs, type PullInput } from './process/args.js';
import { FfmpegProcess, type FfmpegExit } from './process/ffmpeg-process.js';
import type { FlvTag, Profile, ResolvedSource, SessionState, StreamsConfig } from './types.js';

/** What a session needs from its manager: everything outside the session itself. */
export interface SessionHost {
  config: StreamsConfig;
  instanceId: string;
  /** A fresh input for each attempt: credentials are opened and the host re-checked every time. */
  prepareInput(source: ResolvedSource): Promise<{ input: PullInput; secrets: string[] }>;
  /** Takes a transcode slot; false when none is free. */
  acquireTranscode(): boolean;
  releaseTranscode(): void;
  health(session: StreamSession, health: 'online' | 'offline', error: string | null): void;
  /** A pull delivered its first frame this long after it was spawned. */
  started(session: StreamSession, ms: number): void;
  log: { info(o: object, m: string): void; warn(o: object, m: string): void };
  /** Called once, when the session has closed and let go of everything. */
  closed(session: StreamSession): void;
}

export interface Reader {
  readonly id: string;
  /** 'prewarm': the control plane starting a tour's next camera before it shows. */
  readonly kind: 'hls' | 'flv' | 'webrtc' | 'prewarm';
  readonly userId: string;
  readonly since: number;
  /** Told when the session closes under the reader (force-stop, shutdown). */
  onClose?: (error: GatewayError) => void;
}

interface Waiter {
  resolve(): void;
  reject(e: GatewayError): void;
}

const MAX_GOP_TAGS = 2_000;
const RESTART_TO_TRANSCODE = 'restart to transcode';

/** Where the next run's segment numbers start: after the last run's, read from its playlist. */
async function nextSegmentNumber(dir: string, fallback: number): Promise<number> {
  const text = await readFile(join(dir, 'index.m3u8'), 'utf8').catch(() => '');
  const sequence = /#EXT-X-MEDIA-SEQUENCE:(\d+)/.exec(text);
  const segments = text.match(/^seg\d+\.ts$/gm)?.length ?? 0;
  return sequence ? Math.max(fallback, Number(sequence[1]) + segments) : fallback;
}

/**
 * One watched camera: owns its ffmpeg, timers, readers and the state machine
 * idle → starting → ready → lingering → closed, plus retrying. Every ffmpeg callback carries
 * the generation it was started with, so a late event from a dead attempt changes nothing.
 */
export class StreamSession extends EventEmitter<{ tag: [FlvTag]; state: [SessionState] }> {
  state: SessionState = 'idle';
  readonly readers = new Map<string, Reader>();
  readonly createdAt = Date.now();
  restarts = 0;
  lastError: GatewayError | null = null;
  /** Set once ffmpeg names the input's codec. */
  inputCodec: string | null = null;
  resolution: string | null = null;
  transcoding = false;
  bytesIn = 0;
  bytesOut = 0;
  /** The decoder configuration (script data, AVC and AAC sequence headers), by FLV tag type. */
  readonly headers = new Map<string, FlvTag>();
  private readonly gop = new GopStore(MAX_GOP_TAGS);
  private waiters: Waiter[] = [];
  private ffmpeg: FfmpegProcess | null = null;
  private generation = 0;
  private hasMedia = false;
  private lastMediaAt = 0;
  private readonly backoff: Backoff;
  private startTimer: NodeJS.Timeout | null = null;
  private retryTimer: NodeJS.Timeout | null = null;
  private retryAt: number | null = null;
  private lingerTimer: NodeJS.Timeout | null = null;
  private watchdog: NodeJS.Timeout | null = null;
  private closing: Promise<void> | null = null;
  private segmentNumber = 1;
  private spawnedAt = 0;
  /** FLV timestamps continue across restarts, so a viewer's player never sees time go backwards. */
  private timestampBase = 0;
  private lastTimestamp = 0;
  private rate = { at: Date.now(), bytes: 0, kbps: 0 };

  constructor(
    readonly id: string,
    readonly source: ResolvedSource,
    readonly hlsDir: string,
    private readonly host: SessionHost,
  ) {
    super();
    this.backoff = new Backoff(host.config.retry.initialMs, host.config.retry.maxMs);
    this.transcoding = source.codec === 'h265';
  }

  get cameraId() {
    return this.source.cameraId;
  }

  get profile(): Profile {
    return this.source.profile;
  }

  /** The live ffmpeg's pid, for tests and the sessions list. */
  get pid(): number | null {
    return this.ffmpeg?.running ? this.ffmpeg.pid : null;
  }

  get bitrateKbps(): number {
    const now = Date.now();
    if (now - this.rate.at >= 1000) {
      this.rate = { at: now, bytes: this.bytesIn, kbps: Math.round(((this.bytesIn - this.rate.bytes) * 8) / (now - this.rate.at)) };
    }
    return this.rate.kbps;
  }

  /** The tags a new FLV viewer needs before live ones: decoder configuration, then the current GOP. */
  joinTags(): FlvTag[] {
    return [...this.headers.values(), ...this.gop.tags];
  }

  addReader(reader: Reader): void {
    if (this.state === 'closed') throw new GatewayError('GW_ERR_STREAM_CLOSED', 'the stream closed');
    this.readers.set(reader.id, reader);
    if (this.lingerTimer) {
      clearTimeout(this.lingerTimer);
      this.lingerTimer = null;
      this.setState(this.hasMedia ? 'ready' : 'starting');
    }
    if (this.state === 'idle') this.start();
  }

  removeReader(id: string): void {
    if (!this.readers.delete(id) || this.readers.size > 0 || this.state === 'closed') return;
    if (this.state === 'retrying') {
      void this.close('no viewers while the camera is down');
      return;
    }
    this.setState('lingering');
    this.lingerTimer = setTimeout(() => void this.close('no viewers'), this.host.config.closeAfterMs);
    this.lingerTimer.unref();
  }

  /** Resolves on the first video, rejects with the reason the start failed. */
  whenLive(): Promise<void> {
    if (this.hasMedia) return Promise.resolve();
    if (this.state === 'closed') return Promise.reject(this.lastError ?? new GatewayError('GW_ERR_STREAM_CLOSED', 'the stream closed'));
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  private setState(s: SessionState) {
    if (this.state === s) return;
    this.state = s;
    this.emit('state', s);
  }

  private start() {
    this.setState('starting');
    this.watchdog = setInterval(() => this.checkWatchdog(), Math.min(1000, this.host.config.watchdogMs / 2));
    this.watchdog.unref();
    void this.attempt();
  }

  private async attempt() {
    const gen = ++this.generation;
    this.retryTimer = null;
    this.retryAt = null;
    this.hasMedia = false;
    this.timestampBase = this.lastTimestamp ? this.lastTimestamp + 40 : 0;
    this.headers.clear();
    this.gop.clear();
    const cfg = this.host.config;
    let prepared: { input: PullInput; secrets: string[] };
    try {
      // ENDLIST from the last run and its segments must not be served as the new stream; the new
      // run's numbers continue the old ones, so a player's media sequence never goes backwards.
      this.segmentNumber = await nextSegmentNumber(this.hlsDir, this.segmentNumber);
      await rm(this.hlsDir, { recursive: true, force: true });
      await mkdir(this.hlsDir, { recursive: true });
      prepared = await this.host.prepareInput(this.source);
    } catch (e) {
      if (this.stale(gen)) return;
      this.failed(e instanceof GatewayError ? e : new GatewayError('GW_ERR_CAMERA_UNREACHABLE', (e as Error).message));
      return;
    }
    if (this.stale(gen)) return;
    const args = pullArgs(prepared.input, {
      transcode: this.transcoding ? { preset: cfg.transcode.preset, height: cfg.transcode.height, bitrateKbps: cfg.transcode.bitrateKbps } : null,
      audio: cfg.audio,
      hls: { segmentSec: cfg.hls.segmentSec, listSize: cfg.hls.listSize, startNumber: this.segmentNumber, discontinuity: this.restarts > 0 },
    });
    const demuxer = new FlvDemuxer((tag) => this.onTag(gen, tag));
    let ff: FfmpegProcess | null = null;
    try {
      ff = await FfmpegProcess.start({
        ffmpegPath: cfg.ffmpegPath,
        args,
        cwd: this.hlsDir,
        stdin: concatList(prepared.input),
        instanceId: this.host.instanceId,
        secrets: prepared.secrets,
        killGraceMs: cfg.killGraceMs,
        stderrTailLines: 30,
        onStdout: (chunk) => {
          if (gen !== this.generation) return;
          this.bytesIn += chunk.length;
          const err = demuxer.push(chunk);
          if (err) void ff?.close(err);
        },
      });
    } catch (e) {
      if (!this.stale(gen)) this.failed(new GatewayError('GW_ERR_INTERNAL', `cannot start ffmpeg: ${(e as Error).message}`));
      return;
    }
    if (this.stale(gen)) {
      void ff.close('stream closed while ffmpeg started');
      return;
    }
    this.ffmpeg = ff;
    this.spawnedAt = Date.now();
    ff.on('line', (line) => this.onStderr(gen, line));
    const started = ff;
    ff.once('exit', (exit) => this.onExit(gen, started, exit));
    this.startTimer = setTimeout(() => {
      if (gen === this.generation && !this.hasMedia) void started.close('start timeout');
    }, cfg.startTimeoutMs);
    this.startTimer.unref();
  }

  /** An attempt that a newer one, or close(), has superseded while it awaited something. */
  private stale(gen: number): boolean {
    return gen !== this.generation || this.state === 'closed';
  }

  private onStderr(gen: number, line: string) {
    if (gen !== this.generation || this.inputCodec) return;
    // "Stream #0:0: Video: hevc (Main), yuv420p(tv), 1280x720, 25 fps" names the input once it is probed.
    const m = /Stream #0:\d+.*?: Video: (\w+).*?, (\d{2,5}x\d{2,5})/.exec(line);
    if (!m) return;
    this.inputCodec = m[1]!;
    this.resolution = m[2]!;
    if (this.inputCodec === 'hevc' && !this.transcoding) {
      // Registered as H.264 or unknown but it is H.265: restart once with a transcode, if a slot is free.
      if (!this.restartWithTranscode('H.265')) {
        this.lastError = new GatewayError(
          'GW_ERR_CODEC_UNSUPPORTED',
          `the camera sends H.265, which browsers cannot play, and all ${this.host.config.transcode.maxConcurrent} transcode slots are busy`,
        );
        void this.ffmpeg?.close('no transcode slot');
      }
    }
  }

  /** The tag's data is a view of ffmpeg's read buffer: it is copied into the GOP store before anyone sees it. */
  private onTag(gen: number, raw: FlvTag) {
    if (gen !== this.generation) return;
    const timed = this.timestampBase ? { ...raw, timestamp: raw.timestamp + this.timestampBase } : raw;
    this.lastTimestamp = timed.timestamp;
    let tag: FlvTag;
    if (timed.header || timed.type === 18) {
      tag = { ...timed, data: Buffer.from(timed.data) };
      this.headers.set(`${tag.type}`, tag);
    } else if (timed.keyframe) {
      tag = this.gop.restart(timed);
    } else if (this.gop.tags.length > 0) {
      tag = this.gop.add(timed);
    } else {
      // Before the first keyframe nothing is kept; a listener gets its own copy.
      tag = { ...timed, data: Buffer.from(timed.data) };
    }
    if (tag.type === 9 && !tag.header) {
      this.lastMediaAt = Date.now();
      if (!this.hasMedia && tag.keyframe) this.onFirstFrame();
    }
    this.emit('tag', tag);
  }

  private onFirstFrame() {
    this.hasMedia = true;
    if (this.startTimer) clearTimeout(this.startTimer);
    this.backoff.reset();
    this.lastError = null;
    this.host.started(this, Date.now() - this.spawnedAt);
    if (this.state === 'starting' || this.state === 'retrying') this.setState('ready');
    for (const w of this.waiters.splice(0)) w.resolve();
    this.host.health(this, 'online', null);
  }

  private checkWatchdog() {
    if (!this.hasMedia || !this.ffmpeg?.running) return;
    const silentMs = Date.now() - this.lastMediaAt;
    if (silentMs > this.host.config.watchdogMs) void this.ffmpeg.close(`stalled: no video for ${silentMs} ms`);
  }

  /**
   * Restarts the pull once with the shared transcode (H.264 Main, no B-frames), for a stream some
   * viewer cannot play as sent: H.265, or B-frames for WebRTC, which has no frame reordering.
   * False when every transcode slot is busy; true when transcoding already.
   */
  restartWithTranscode(why: string): boolean {
    if (this.transcoding) return true;
    if (this.state === 'closed' || !this.host.acquireTranscode()) return false;
    this.transcoding = true;
    this.host.log.info({ camera: this.cameraId, profile: this.profile, why }, 'restarting the pull with a transcode');
    void this.ffmpeg?.close(RESTART_TO_TRANSCODE);
    return true;
  }

  private onExit(gen: number, ff: FfmpegProcess, exit: FfmpegExit) {
    if (this.startTimer) clearTimeout(this.startTimer);
    if (gen !== this.generation || this.state === 'closed') return;
    this.restarts++;
    if (exit.reason === RESTART_TO_TRANSCODE) {
      void this.attempt();
      return;
    }
    const error = this.lastError ?? classifyFailure(exit, ff.stderrTail(), this.hasMedia, this.host.config, this.source.protocol);
    this.host.log.warn({ camera: this.cameraId, profile: this.profile, code: error.code, reason: error.message, exit: exit.code, signal: exit.signal }, 'pull ended');
    this.failed(error);
  }

  /** An attempt failed or a live pull dropped: tell the waiters, mark the camera, retry only while watched. */
  private failed(error: GatewayError) {
    this.lastError = error;
    this.hasMedia = false;
    for (const w of this.waiters.splice(0)) w.reject(error);
    this.host.health(this, 'offline', error.message);
    if (this.readers.size === 0) {
      void this.close(error.message);
      return;
    }
    const delay = this.backoff.next();
    // Set before the state changes, so whoever hears 'retrying' can already count down.
    this.retryAt = Date.now() + delay;
    this.setState('retrying');
    this.retryTimer = setTimeout(() => void this.attempt(), delay);
    this.retryTimer.unref();
  }

  /** Milliseconds until the next retry, for a tile that shows a countdown. */
  retryInMs(): number | null {
    return this.state === 'retrying' && this.retryAt !== null ? Math.max(0, this.retryAt - Date.now()) : null;
  }

  /** Tears everything down in a fixed order; safe to call any number of times. */
  close(reason: string, error?: GatewayError): Promise<void> {
    return (this.closing ??= (async () => {
      this.setState('closed');
      this.generation++;
      for (const t of [this.startTimer, this.retryTimer, this.lingerTimer]) if (t) clearTimeout(t);
      if (this.watchdog) clearInterval(this.watchdog);
      const closedError = error ?? new GatewayError('GW_ERR_STREAM_CLOSED', `the stream closed: ${reason}`);
      for (const w of this.waiters.splice(0)) w.reject(this.lastError ?? closedError);
      for (const r of [...this.readers.values()]) r.onClose?.(closedError);
      this.readers.clear();
      if (this.ffmpeg) await this.ffmpeg.close(reason);
      if (this.transcoding) this.host.releaseTranscode();
      this.gop.clear();
      this.headers.clear();
      await rm(this.hlsDir, { recursive: true, force: true }).catch(() => {});
      this.host.log.info({ camera: this.cameraId, profile: this.profile, reason }, 'stream closed');
      this.host.closed(this);
    })());
  }
}

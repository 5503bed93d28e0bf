import { EventEmitter } from 'node:events';
import { mkdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { GatewayError, reasoned } from '../errors.js';
import { Backoff } from '../lib/backoff.js';
import type { Clock, TimerHandle } from '../lib/clock.js';
import { GopStore, type GopBudget } from './gop-store.js';
import type { DriverEvents, DriverFactory, SourceDriver } from './sources/driver.js';
import type { FlvTag, Profile, ResolvedSource, SessionState, StreamsConfig } from './types.js';

/** What a session needs from its manager: everything outside the session itself. */
export interface SessionHost {
  config: StreamsConfig;
  /** Makes each attempt's driver: the session never knows what kind of source it has. */
  createDriver: DriverFactory;
  clock: Clock;
  /** Shared by every session's GOP store: streams.gopCache.maxBytesTotal. */
  gopBudget: GopBudget;
  /** Takes a transcode slot; false when none is free. */
  acquireTranscode(): boolean;
  releaseTranscode(): void;
  health(session: StreamSession, health: 'online' | 'offline', error: GatewayError | null): void;
  /** An attempt delivered its first frame this long after it began. */
  started(session: StreamSession, ms: number): void;
  log: { info(o: object, m: string): void; warn(o: object, m: string): void };
  /** Called once, when the session has closed and let go of everything. */
  closed(session: StreamSession): void;
}

export interface Reader {
  readonly id: string;
  /**
   * 'prewarm': the control plane starting a tour's next camera before it shows. 'snapshot': a
   * picture of an idle camera, held only until its keyframe arrives.
   */
  readonly kind: 'hls' | 'flv' | 'webrtc' | 'prewarm' | 'snapshot';
  readonly userId: string;
  readonly since: number;
  /** Told when the session closes under the reader (force-stop, shutdown). */
  onClose?: (error: GatewayError) => void;
}

interface Waiter {
  resolve(): void;
  reject(e: GatewayError): void;
}


/** Where the next run's segment numbers start: after the last run's, read from its playlist. */
async function nextSegmentNumber(dir: string, fallback: number): Promise<number> {
  const text = await readFile(join(dir, 'index.m3u8'), 'utf8').catch(() => '');
  const sequence = /#EXT-X-MEDIA-SEQUENCE:(\d+)/.exec(text);
  const segments = text.match(/^seg\d+\.ts$/gm)?.length ?? 0;
  return sequence ? Math.max(fallback, Number(sequence[1]) + segments) : fallback;
}

/**
 * One watched camera: owns its source driver, timers, readers and the state machine
 * idle → starting → ready → lingering → closed, plus retrying. Each attempt gets a new driver
 * (sources/driver.ts) and a generation; anything a superseded attempt reports is dropped, so a late
 * event from a dead attempt changes nothing. The session does not know what kind of source it has.
 */
export class StreamSession extends EventEmitter<{ tag: [FlvTag]; state: [SessionState] }> {
  state: SessionState = 'idle';
  readonly readers = new Map<string, Reader>();
  readonly createdAt: number;
  restarts = 0;
  /** Why the latest attempt failed; null once video flows. */
  lastError: GatewayError | null = null;
  /** Set once the source's video codec is known. */
  inputCodec: string | null = null;
  resolution: string | null = null;
  transcoding = false;
  bytesIn = 0;
  /** When the keyframe that starts the cached GOP arrived (clock ms); null before the first. */
  keyframeAt: number | null = null;
  private sentBytes = 0;
  /** Someone other than a snapshot has read this session: it lingers streams.closeAfterMs, not snapshots.lingerMs. */
  private watched = false;
  /** The decoder configuration (script data, AVC and AAC sequence headers), by FLV tag type. */
  readonly headers = new Map<string, FlvTag>();
  private readonly gop: GopStore;
  private waiters: Waiter[] = [];
  private driver: SourceDriver | null = null;
  /** Every dropped driver letting go: the next attempt waits for it, so two never write one directory. */
  private released: Promise<void> = Promise.resolve();
  private generation = 0;
  private hasMedia = false;
  private lastMediaAt = 0;
  private readonly backoff: Backoff;
  private readonly clock: Clock;
  private startTimer: TimerHandle | null = null;
  private retryTimer: TimerHandle | null = null;
  private retryAt: number | null = null;
  private lingerTimer: TimerHandle | null = null;
  private watchdog: TimerHandle | null = null;
  private closing: Promise<void> | null = null;
  private segmentNumber = 1;
  private attemptStartedAt = 0;
  /** FLV timestamps continue across restarts, so a viewer's player never sees time go backwards. */
  private timestampBase = 0;
  private lastTimestamp = 0;
  private rate: { at: number; bytes: number; kbps: number };

  constructor(
    readonly id: string,
    readonly source: ResolvedSource,
    readonly hlsDir: string,
    private readonly host: SessionHost,
  ) {
    super();
    this.clock = host.clock;
    this.createdAt = this.clock.now();
    this.rate = { at: this.createdAt, bytes: 0, kbps: 0 };
    this.backoff = new Backoff(host.config.retry.initialMs, host.config.retry.maxMs);
    this.gop = new GopStore(host.config.gopCache.maxBytesPerSession, host.gopBudget);
    this.transcoding = source.codec === 'h265';
  }

  get cameraId() {
    return this.source.cameraId;
  }

  get profile(): Profile {
    return this.source.profile;
  }

  /** The running driver's ffmpeg pid, for tests and the sessions list. */
  get pid(): number | null {
    return this.driver?.pid ?? null;
  }

  /** Bytes the outputs sent to viewers. */
  get bytesOut(): number {
    return this.sentBytes;
  }

  countSent(bytes: number): void {
    this.sentBytes += bytes;
  }

  get bitrateKbps(): number {
    const now = this.clock.now();
    if (now - this.rate.at >= 1000) {
      this.rate = { at: now, bytes: this.bytesIn, kbps: Math.round(((this.bytesIn - this.rate.bytes) * 8) / (now - this.rate.at)) };
    }
    return this.rate.kbps;
  }

  /**
   * The tags a joining viewer of any output needs before live ones: decoder configuration, then the
   * current GOP (none while it is dropped for outgrowing its bound). The one cached copy: valid until
   * the next keyframe, so read it synchronously and copy what you keep.
   */
  joinTags(): FlvTag[] {
    return [...this.headers.values(), ...this.gop.tags];
  }

  addReader(reader: Reader): void {
    if (this.state === 'closed') throw new GatewayError('GW_ERR_STREAM_CLOSED', 'the stream closed');
    this.readers.set(reader.id, reader);
    if (reader.kind !== 'snapshot') this.watched = true;
    if (this.lingerTimer) {
      this.clock.clearTimeout(this.lingerTimer);
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
    // A pull only snapshots used has given what it was for: lingering as long as a viewer's would hold a camera (and a
    // slot under streams.limits.sessions) for each thumbnail asked of an idle camera.
    const usual = this.watched ? this.host.config.closeAfterMs : this.host.config.snapshots.lingerMs;
    // A source may want it shorter: a vehicle past its data budget lets its channel go early.
    const lingerMs = Math.min(usual, this.driver?.lingerMs?.() ?? usual);
    this.lingerTimer = this.clock.setTimeout(() => void this.close('no viewers'), lingerMs);
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
    this.scheduleWatchdog();
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
    try {
      await this.released;
      if (this.stale(gen)) return;
      // ENDLIST from the last run and its segments must not be served as the new stream; the new
      // run's numbers continue the old ones, so a player's media sequence never goes backwards.
      this.segmentNumber = await nextSegmentNumber(this.hlsDir, this.segmentNumber);
      await rm(this.hlsDir, { recursive: true, force: true });
      await mkdir(this.hlsDir, { recursive: true });
    } catch (e) {
      if (!this.stale(gen)) this.endAttempt(new GatewayError('GW_ERR_INTERNAL', `cannot prepare the HLS directory: ${(e as Error).message}`), 'no HLS directory');
      return;
    }
    if (this.stale(gen)) return;
    const attempt = { hlsDir: this.hlsDir, segmentStart: this.segmentNumber, discontinuity: this.restarts > 0, transcode: this.transcoding };
    let driver: SourceDriver;
    try {
      driver = this.host.createDriver(this.source, attempt, this.eventsFor(gen));
    } catch (e) {
      // attempt() runs unawaited (`void`): a throw escaping here would be an unhandled rejection, which ends Node.
      this.endAttempt(e instanceof GatewayError ? e : new GatewayError('GW_ERR_INTERNAL', `the source could not be created: ${(e as Error).message}`), 'no driver');
      return;
    }
    this.driver = driver;
    this.attemptStartedAt = this.clock.now();
    const timeoutMs = Math.max(this.host.config.startTimeoutMs, driver.startTimeoutMs?.() ?? 0);
    this.startTimer = this.clock.setTimeout(() => {
      if (gen === this.generation && !this.hasMedia) this.endAttempt(driver.timedOut('start', timeoutMs), 'start timeout');
    }, timeoutMs);
    try {
      await driver.start();
    } catch (e) {
      if (this.stale(gen)) return;
      this.endAttempt(e instanceof GatewayError ? e : new GatewayError('GW_ERR_INTERNAL', `the source could not start: ${(e as Error).message}`), 'start failed');
    }
  }

  /** What the attempt of this generation may report; nothing, once it is superseded or the session closed. */
  private eventsFor(gen: number): DriverEvents {
    return {
      tag: (tag) => {
        if (!this.stale(gen)) this.onTag(tag);
      },
      bytes: (n) => {
        if (!this.stale(gen)) this.bytesIn += n;
      },
      probed: (codec, resolution) => {
        if (!this.stale(gen)) this.onProbed(codec, resolution);
      },
      failed: (error) => {
        if (!this.stale(gen)) this.endAttempt(error, 'source failed');
      },
    };
  }

  /** An attempt that a newer one, or close(), has superseded. */
  private stale(gen: number): boolean {
    return gen !== this.generation || this.state === 'closed';
  }

  private onProbed(codec: string, resolution: string | null) {
    this.inputCodec = codec;
    this.resolution = resolution;
    // Registered as H.264 or unknown but it is H.265: restart once with a transcode, if a slot is free.
    if (codec === 'hevc' && !this.transcoding && !this.restartWithTranscode('H.265')) {
      this.endAttempt(
        reasoned(
          'GW_ERR_CODEC_UNSUPPORTED',
          'h265Busy',
          { limit: this.host.config.transcode.maxConcurrent },
          `the camera sends H.265, which browsers cannot play, and all ${this.host.config.transcode.maxConcurrent} transcode slots are busy`,
        ),
        'no transcode slot',
      );
    }
  }

  /** The tag's data may be a view of a reused read buffer: it is copied into the GOP store before anyone sees it. */
  private onTag(raw: FlvTag) {
    const timed = this.timestampBase ? { ...raw, timestamp: raw.timestamp + this.timestampBase } : raw;
    this.lastTimestamp = timed.timestamp;
    let tag: FlvTag;
    if (timed.header || timed.type === 18) {
      tag = { ...timed, data: Buffer.from(timed.data) };
      this.headers.set(`${tag.type}`, tag);
    } else if (timed.keyframe) {
      tag = this.gop.restart(timed);
      this.keyframeAt = this.clock.now();
    } else if (this.gop.tags.length > 0) {
      tag = this.gop.add(timed);
    } else {
      // Before the first keyframe nothing is kept; a listener gets its own copy.
      tag = { ...timed, data: Buffer.from(timed.data) };
    }
    if (tag.type === 9 && !tag.header) {
      this.lastMediaAt = this.clock.now();
      if (!this.hasMedia && tag.keyframe) this.onFirstFrame();
    }
    this.emit('tag', tag);
  }

  private onFirstFrame() {
    this.hasMedia = true;
    if (this.startTimer) this.clock.clearTimeout(this.startTimer);
    this.startTimer = null;
    this.backoff.reset();
    this.lastError = null;
    this.host.started(this, this.clock.now() - this.attemptStartedAt);
    if (this.state === 'starting' || this.state === 'retrying') this.setState('ready');
    for (const w of this.waiters.splice(0)) w.resolve();
    this.host.health(this, 'online', null);
  }

  private scheduleWatchdog() {
    this.watchdog = this.clock.setTimeout(
      () => {
        this.checkWatchdog();
        if (this.state !== 'closed') this.scheduleWatchdog();
      },
      Math.min(1000, this.host.config.watchdogMs / 2),
    );
  }

  private checkWatchdog() {
    if (!this.hasMedia || !this.driver) return;
    const silentMs = this.clock.now() - this.lastMediaAt;
    if (silentMs > this.host.config.watchdogMs) this.endAttempt(this.driver.timedOut('stall', silentMs), `stalled: no video for ${silentMs} ms`);
  }

  /**
   * An output cannot play the stream as sent (B-frames for WebRTC, which has no frame reordering):
   * restarts it with the transcode. False when every transcode slot is busy.
   */
  reportUndecodable(reason: string): boolean {
    return this.restartWithTranscode(reason);
  }

  /**
   * Restarts the source once with the shared transcode (H.264 Main, no B-frames), for a stream some
   * viewer cannot play as sent: H.265, or what an output reports undecodable.
   * False when every transcode slot is busy; true when transcoding already.
   */
  private restartWithTranscode(why: string): boolean {
    if (this.transcoding) return true;
    if (this.state === 'closed' || !this.host.acquireTranscode()) return false;
    this.transcoding = true;
    this.host.log.info({ camera: this.cameraId, profile: this.profile, why }, 'restarting the pull with a transcode');
    // Without a running attempt, the next one transcodes anyway.
    if (this.driver) {
      this.dropDriver('restart to transcode');
      this.restarts++;
      void this.attempt();
    }
    return true;
  }

  /** Supersedes the current attempt and closes its driver; the next attempt waits until it has let go. */
  private dropDriver(reason: string) {
    this.generation++;
    if (this.startTimer) this.clock.clearTimeout(this.startTimer);
    this.startTimer = null;
    const driver = this.driver;
    this.driver = null;
    if (driver) {
      const closing = driver.close(reason).catch(() => {});
      this.released = Promise.all([this.released, closing]).then(() => {});
    }
  }

  /** The current attempt is over, for the driver's reason or the session's (timeout, stall, codec): its own error is reported. */
  private endAttempt(error: GatewayError, reason: string) {
    this.dropDriver(reason);
    this.restarts++;
    this.host.log.warn({ camera: this.cameraId, profile: this.profile, code: error.code, reason: error.message }, 'pull ended');
    this.failed(error);
  }

  /** An attempt failed or a live pull dropped: tell the waiters, mark the camera, retry only while watched. */
  private failed(error: GatewayError) {
    this.lastError = error;
    this.hasMedia = false;
    for (const w of this.waiters.splice(0)) w.reject(error);
    this.host.health(this, 'offline', error);
    if (this.readers.size === 0) {
      void this.close(error.message);
      return;
    }
    const delay = this.backoff.next();
    // Set before the state changes, so whoever hears 'retrying' can already count down.
    this.retryAt = this.clock.now() + delay;
    this.setState('retrying');
    this.retryTimer = this.clock.setTimeout(() => void this.attempt(), delay);
  }

  /** Milliseconds until the next retry, for a tile that shows a countdown. */
  retryInMs(): number | null {
    return this.state === 'retrying' && this.retryAt !== null ? Math.max(0, this.retryAt - this.clock.now()) : null;
  }

  /** Tears everything down in a fixed order; safe to call any number of times. */
  close(reason: string, error?: GatewayError): Promise<void> {
    return (this.closing ??= (async () => {
      this.setState('closed');
      for (const t of [this.retryTimer, this.lingerTimer, this.watchdog]) if (t) this.clock.clearTimeout(t);
      this.dropDriver(reason);
      const closedError = error ?? new GatewayError('GW_ERR_STREAM_CLOSED', `the stream closed: ${reason}`);
      for (const w of this.waiters.splice(0)) w.reject(this.lastError ?? closedError);
      for (const r of [...this.readers.values()]) r.onClose?.(closedError);
      this.readers.clear();
      await this.released;
      if (this.transcoding) this.host.releaseTranscode();
      this.gop.clear();
      this.headers.clear();
      await rm(this.hlsDir, { recursive: true, force: true }).catch(() => {});
      this.host.log.info({ camera: this.cameraId, profile: this.profile, reason }, 'stream closed');
      this.host.closed(this);
    })());
  }
}

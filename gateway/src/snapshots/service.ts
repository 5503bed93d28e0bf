import { EventEmitter } from 'node:events';
import { performance } from 'node:perf_hooks';
import { LRUCache } from 'lru-cache';
import { GatewayError, reasoned } from '../errors.js';
import type { ReaderLease, ReaderRequest } from '../streams/manager.js';
import type { StreamSession } from '../streams/session.js';
import type { FlvTag, Profile, StreamsConfig } from '../streams/types.js';
import { jpegSize, KeyframeDecode } from './decoder.js';
import type { Snapshot, SnapshotRequest, Snapshotter } from './types.js';

/** What the snapshots need of the stream engine: the running sessions, and a reader to start or join one. */
export interface SnapshotEngine {
  sessionFor(cameraId: string, profile: Profile): StreamSession | undefined;
  addReader(req: ReaderRequest): Promise<ReaderLease>;
}

/** A keyframe copied out of a session's GOP store, with the decoder configuration before it. */
interface Keyframe {
  tags: FlvTag[];
  /** When it arrived, ms since the epoch. */
  at: number;
  profile: Profile;
}

export interface SnapshotStats {
  /** Decodes finished (each one ffmpeg), successful or not. */
  readonly decodes: number;
  /** Requests answered from the cache. */
  readonly cacheHits: number;
  /** Requests that joined a decode another request had started. */
  readonly coalesced: number;
  on(event: 'decoded', listener: (ms: number) => void): unknown;
}

const copy = (tag: FlvTag): FlvTag => ({ ...tag, data: Buffer.from(tag.data) });

/**
 * Pictures of cameras as JPEG. A live session's cached keyframe is decoded at once; an idle camera
 * gets a 'snapshot' reader (admitted under the same caps as a viewer), which is let go as soon as
 * the keyframe is copied, so the pull then ends after streams.snapshots.lingerMs. Decoding is one
 * ffmpeg per picture (KeyframeDecode), at most maxConcurrentDecodes at once with a bounded queue;
 * requests for the same camera, profile and width share one decode while it runs and its result
 * for cacheMs after. Each decode leaves a spare ffmpeg started for its width, so the next picture
 * of that width does not wait for ffmpeg to start.
 */
export class SnapshotService extends EventEmitter<{ decoded: [number] }> implements Snapshotter, SnapshotStats {
  private readonly config: StreamsConfig['snapshots'];
  private readonly cache: LRUCache<string, Snapshot> | null;
  private readonly flights = new Map<string, Promise<Snapshot | null>>();
  private readonly decoders = new Set<KeyframeDecode>();
  /** Decoders started ahead, by width (0: the camera's own), in the order they were started. */
  private readonly spares = new Map<number, { decode: KeyframeDecode; idle: NodeJS.Timeout }>();
  /** Spares being stopped, which close() waits for too. */
  private readonly retiring = new Set<Promise<void>>();
  private readonly leases = new Set<ReaderLease>();
  private readonly queue: { start(): void; refuse(e: GatewayError): void }[] = [];
  private activeDecodes = 0;
  /** Aborted on close: every wait for a keyframe ends then. */
  private readonly closing = new AbortController();
  decodes = 0;
  cacheHits = 0;
  coalesced = 0;

  constructor(
    private readonly engine: SnapshotEngine,
    private readonly streams: Pick<StreamsConfig, 'snapshots' | 'ffmpegPath' | 'killGraceMs'>,
  ) {
    super();
    this.config = streams.snapshots;
    this.cache =
      this.config.cacheMs > 0 && this.config.cacheMaxBytes > 0
        ? new LRUCache<string, Snapshot>({ maxSize: this.config.cacheMaxBytes, sizeCalculation: (s) => s.jpeg.length, ttl: this.config.cacheMs })
        : null;
  }

  take(req: SnapshotRequest): Promise<Snapshot | null> {
    if (this.closing.signal.aborted) return Promise.reject(new GatewayError('GW_ERR_UNAVAILABLE', 'the gateway is shutting down'));
    const key = `${req.cameraId}\u0000${req.profile}\u0000${req.width ?? ''}`;
    const hit = this.cache?.get(key);
    if (hit) {
      this.cacheHits++;
      return Promise.resolve(hit);
    }
    // An ifLive request may end in null, which a request that may start a pull must not be given.
    const flightKey = req.ifLive ? `${key}\u0000live` : key;
    const running = this.flights.get(flightKey);
    if (running) {
      this.coalesced++;
      return running;
    }
    const flight = this.takeOnce(req, key).finally(() => this.flights.delete(flightKey));
    this.flights.set(flightKey, flight);
    return flight;
  }

  private async takeOnce(req: SnapshotRequest, key: string): Promise<Snapshot | null> {
    // Refused before a pull is started for a picture that could not be decoded anyway.
    this.refuseWhenQueueFull();
    const keyframe = await this.keyframe(req);
    if (!keyframe) return null;
    const jpeg = await this.decode(keyframe.tags, req.width);
    const size = jpegSize(jpeg);
    if (!size) throw new GatewayError('GW_ERR_INTERNAL', 'the decoder wrote a JPEG without a frame header');
    const snapshot: Snapshot = { cameraId: req.cameraId, profile: keyframe.profile, jpeg, ...size, takenAt: keyframe.at };
    this.cache?.set(key, snapshot);
    return snapshot;
  }

  /**
   * A live session of the camera: the profile asked, or for 'sub' the main stream if that is what
   * plays (a smaller picture of it costs a decode, a sub-stream pull costs a camera connection).
   */
  private liveSession(cameraId: string, profile: Profile): { session: StreamSession; cached: Keyframe | null } | null {
    for (const p of profile === 'sub' ? (['sub', 'main'] as const) : (['main'] as const)) {
      const session = this.engine.sessionFor(cameraId, p);
      if (!session) continue;
      const cached = cachedKeyframe(session);
      if (session.state === 'ready' || cached) return { session, cached };
    }
    return null;
  }

  private async keyframe(req: SnapshotRequest): Promise<Keyframe | null> {
    const live = this.liveSession(req.cameraId, req.profile);
    if (live) {
      if (live.cached) return live.cached;
      // The GOP was dropped for outgrowing its bound: the next keyframe comes within a GOP.
      if (req.ifLive) return this.nextKeyframe(live.session, this.config.coldTimeoutMs);
    }
    // Nothing is started for a picture asked only of a live camera.
    if (req.ifLive) return null;
    return this.pull(req);
  }

  /** Starts or joins the camera's pull with a 'snapshot' reader, held until a keyframe is copied. */
  private async pull(req: SnapshotRequest): Promise<Keyframe> {
    const deadline = performance.now() + this.config.coldTimeoutMs;
    const lease = await this.engine.addReader({ cameraId: req.cameraId, profile: req.profile, kind: 'snapshot', userId: req.userId });
    this.leases.add(lease);
    try {
      await this.untilLive(lease, this.config.coldTimeoutMs);
      const keyframe = cachedKeyframe(lease.session) ?? (await this.nextKeyframe(lease.session, deadline - performance.now()));
      if (!keyframe) {
        this.refuseWhenClosing();
        // The camera dropped between its first frame and a keyframe we could keep: its own reason, as a viewer would get.
        throw lease.session.lastError ?? reasoned('GW_ERR_STREAM_TIMEOUT', 'start', { ms: this.config.coldTimeoutMs }, `no keyframe arrived within ${this.config.coldTimeoutMs} ms (streams.snapshots.coldTimeoutMs)`);
      }
      return keyframe;
    } finally {
      this.leases.delete(lease);
      lease.release();
    }
  }

  /** Resolves once the pull is live; rejects with why it failed to start, on the timeout, or on close. */
  private untilLive(lease: ReaderLease, timeoutMs: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const signal = this.closing.signal;
      const onAbort = () => finish(new GatewayError('GW_ERR_UNAVAILABLE', 'the gateway is shutting down'));
      const timer = setTimeout(
        () => finish(reasoned('GW_ERR_STREAM_TIMEOUT', 'start', { ms: timeoutMs }, `the camera sent no video within ${timeoutMs} ms (streams.snapshots.coldTimeoutMs)`)),
        Math.max(0, timeoutMs),
      );
      const finish = (error?: GatewayError) => {
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
        if (error) reject(error);
        else resolve();
      };
      signal.addEventListener('abort', onAbort);
      if (signal.aborted) onAbort();
      lease.live().then(
        () => finish(),
        (e: GatewayError) => finish(e),
      );
    });
  }

  /** The session's next keyframe; null when none comes in time, the session closes, or the service does. */
  private nextKeyframe(session: StreamSession, timeoutMs: number): Promise<Keyframe | null> {
    return new Promise((resolve) => {
      const signal = this.closing.signal;
      const finish = (keyframe: Keyframe | null) => {
        clearTimeout(timer);
        session.off('tag', onTag);
        session.off('state', onState);
        signal.removeEventListener('abort', onAbort);
        resolve(keyframe);
      };
      const onTag = (tag: FlvTag) => {
        if (tag.type !== 9 || tag.header || !tag.keyframe) return;
        const header = session.headers.get('9');
        finish(header ? { tags: [copy(header), copy(tag)], at: session.keyframeAt ?? Date.now(), profile: session.profile } : null);
      };
      const onState = (state: string) => {
        if (state === 'closed') finish(null);
      };
      const onAbort = () => finish(null);
      const timer = setTimeout(() => finish(null), Math.max(0, timeoutMs));
      session.on('tag', onTag);
      session.on('state', onState);
      signal.addEventListener('abort', onAbort);
      if (signal.aborted || session.state === 'closed') finish(null);
    });
  }

  private refuseWhenClosing() {
    if (this.closing.signal.aborted) throw new GatewayError('GW_ERR_UNAVAILABLE', 'the gateway is shutting down');
  }

  private refuseWhenQueueFull() {
    if (this.activeDecodes >= this.config.maxConcurrentDecodes && this.queue.length >= this.config.maxQueuedDecodes) {
      throw reasoned(
        'GW_ERR_CAPACITY',
        'snapshotDecodes',
        { limit: this.config.maxConcurrentDecodes },
        `${this.activeDecodes} snapshots are being decoded and ${this.queue.length} are waiting (streams.snapshots.maxConcurrentDecodes, maxQueuedDecodes)`,
      );
    }
  }

  /** A decoder slot: at once if one is free, else in turn from the bounded queue. */
  private async decoderSlot(): Promise<void> {
    this.refuseWhenClosing();
    if (this.activeDecodes < this.config.maxConcurrentDecodes) {
      this.activeDecodes++;
      return;
    }
    this.refuseWhenQueueFull();
    // The slot is handed over by the decode that frees it, so activeDecodes does not change.
    await new Promise<void>((start, refuse) => this.queue.push({ start, refuse }));
  }

  private freeDecoderSlot() {
    const next = this.queue.shift();
    if (next) next.start();
    else this.activeDecodes--;
  }

  private async decode(tags: FlvTag[], width: number | undefined): Promise<Buffer> {
    await this.decoderSlot();
    try {
      this.refuseWhenClosing();
      const started = performance.now();
      const decode = this.takeSpare(width) ?? this.startDecoder(width);
      this.decoders.add(decode);
      decode.feed(tags);
      try {
        // Settles only once the child has exited.
        return await decode.result;
      } finally {
        this.decoders.delete(decode);
        this.decodes++;
        this.emit('decoded', performance.now() - started);
        this.startSpare(width);
      }
    } finally {
      this.freeDecoderSlot();
    }
  }

  private startDecoder(width: number | undefined): KeyframeDecode {
    return new KeyframeDecode({
      ffmpegPath: this.streams.ffmpegPath,
      ...(width ? { width } : {}),
      quality: this.config.quality,
      timeoutMs: this.config.decodeTimeoutMs,
      killGraceMs: this.streams.killGraceMs,
    });
  }

  /** The spare started for this width, if one is still waiting. */
  private takeSpare(width: number | undefined): KeyframeDecode | null {
    const spare = this.spares.get(width ?? 0);
    if (!spare) return null;
    this.spares.delete(width ?? 0);
    clearTimeout(spare.idle);
    if (spare.decode.waiting) return spare.decode;
    this.retire(spare.decode, 'a spare that had stopped');
    return null;
  }

  private retire(decode: KeyframeDecode, reason: string) {
    const closed = decode.close(reason).finally(() => this.retiring.delete(closed));
    this.retiring.add(closed);
  }

  /**
   * Starts a decoder for this width that waits on stdin for the next request, so that request does
   * not pay for starting ffmpeg (about 100 ms of a 140 ms decode at 1080p). At most spareDecoders,
   * for the widths most recently decoded; each stopped after spareIdleMs unused.
   */
  private startSpare(width: number | undefined) {
    const key = width ?? 0;
    if (this.config.spareDecoders === 0 || this.closing.signal.aborted || this.spares.has(key)) return;
    while (this.spares.size >= this.config.spareDecoders) {
      const [oldest, spare] = this.spares.entries().next().value!;
      this.spares.delete(oldest);
      clearTimeout(spare.idle);
      this.retire(spare.decode, 'replaced by a spare for a width asked more recently');
    }
    const decode = this.startDecoder(width);
    const idle = setTimeout(() => {
      if (this.spares.get(key)?.decode !== decode) return;
      this.spares.delete(key);
      this.retire(decode, `unused for ${this.config.spareIdleMs} ms (streams.snapshots.spareIdleMs)`);
    }, this.config.spareIdleMs);
    idle.unref();
    this.spares.set(key, { decode, idle });
  }

  /** The spare decoders waiting now, by width (0: the camera's own), for tests. */
  spareWidths(): number[] {
    return [...this.spares.keys()];
  }

  /** Refuses what waits, stops every decoder (SIGTERM, then SIGKILL) and lets go of every pull it holds. */
  async close(): Promise<void> {
    this.closing.abort();
    const shuttingDown = new GatewayError('GW_ERR_UNAVAILABLE', 'the gateway is shutting down');
    for (const waiting of this.queue.splice(0)) waiting.refuse(shuttingDown);
    for (const lease of this.leases) lease.release();
    this.leases.clear();
    const spares = [...this.spares.values()];
    this.spares.clear();
    for (const spare of spares) clearTimeout(spare.idle);
    await Promise.all([...[...this.decoders, ...spares.map((s) => s.decode)].map((d) => d.close('gateway shutting down')), ...this.retiring]);
    this.cache?.clear();
  }
}

/** The first tag of the cached GOP is its keyframe; with the decoder configuration it is a picture. */
function cachedKeyframe(session: StreamSession): Keyframe | null {
  const header = session.headers.get('9');
  const first = session.joinTags().find((tag) => tag.type === 9 && !tag.header);
  if (!header || !first?.keyframe) return null;
  return { tags: [copy(header), copy(first)], at: session.keyframeAt ?? Date.now(), profile: session.profile };
}

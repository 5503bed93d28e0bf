import { createHash, randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { mkdir, realpath, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { GatewayError, reasoned, type ErrorParams } from '../errors.js';
import { systemClock, type Clock } from '../lib/clock.js';
import { FfmpegProcess } from './process/ffmpeg-process.js';
import { sweepOrphans } from './process/sweep.js';
import { CheckedFetcher } from './sources/checked-fetcher.js';
import { GopBudget } from './gop-store.js';
import { StreamSession, type Reader, type SessionHost } from './session.js';
import type { DriverContext, DriverFactory } from './sources/driver.js';
import { driverFactory } from './sources/index.js';
import type { Profile, ResolvedSource, SessionState, SourceResolver, StreamsConfig } from './types.js';

export interface HealthEvent {
  cameraId: string;
  health: 'online' | 'offline';
  error: string | null;
  /** The failure's code and parameters, for clients that word it themselves (null when online). */
  failure: { code: string; params: ErrorParams | null } | null;
  since: number;
}

export interface ReaderRequest {
  cameraId: string;
  profile: Profile;
  kind: Reader['kind'];
  userId: string;
  onClose?: (error: GatewayError) => void;
}

/** A reader's hold on a session: the session stays up until every lease is released. */
export interface ReaderLease {
  readonly id: string;
  readonly session: StreamSession;
  /** Resolves on the first video, rejects with why the start failed. */
  live(): Promise<void>;
  /** Idempotent. */
  release(): void;
}

export interface SessionSummary {
  id: string;
  cameraId: string;
  cameraName: string;
  profile: Profile;
  state: SessionState;
  readers: Record<Reader['kind'], number>;
  bitrateKbps: number;
  uptimeMs: number;
  restarts: number;
  inputCodec: string | null;
  resolution: string | null;
  transcoding: boolean;
  pid: number | null;
  retryInMs: number | null;
  lastError: { code: string; message: string; params?: ErrorParams } | null;
}

export interface EngineStats {
  sessions: Record<SessionState, number>;
  readers: number;
  transcodes: number;
  restarts: number;
  bytesIn: number;
  bytesOut: number;
  /** Bytes the GOP caches hold over all sessions (against streams.gopCache.maxBytesTotal). */
  gopCacheBytes: number;
}

type Logger = SessionHost['log'] & { error(o: object, m: string): void };

/** What tests replace: the sources (a fake driver instead of ffmpeg) and time. */
export interface EngineParts {
  drivers?: (ctx: DriverContext) => DriverFactory;
  clock?: Clock;
  /** The GB/T 28181 link GB channels play through (app.ts wires it when gb28181.enabled). */
  gb28181?: DriverContext['gb28181'];
  /** The JT/T 1078 channels vehicle channels play through (app.ts wires them when jt808 and jt1078 are enabled). */
  jt1078?: DriverContext['jt1078'];
}

/**
 * Owns every StreamSession: one per (camera, profile) while something watches it. Admission is
 * decided here, synchronously after the source is resolved, so two requests racing for the last
 * slot cannot both start a process.
 */
export class StreamManager extends EventEmitter<{
  health: [HealthEvent];
  session: [StreamSession];
  closed: [StreamSession];
  started: [{ cameraId: string; ms: number }];
}> {
  private readonly sessions = new Map<string, StreamSession>();
  private readonly readersByUser = new Map<string, number>();
  private totalReaders = 0;
  private transcodes = 0;
  private totalRestarts = 0;
  private totalBytesIn = 0;
  private totalBytesOut = 0;
  private readonly lastHealth = new Map<string, string>();
  private runDir = '';
  private instanceIdValue = '';
  private closing = false;
  /** The start in progress: close() waits for it, or it would stop a fetcher that has not listened yet. */
  private starting: Promise<void> | null = null;
  private createDriver: DriverFactory | null = null;
  private readonly clock: Clock;
  /** HTTP(S) sources reach ffmpeg only through it, every hop checked against the network policy. */
  private readonly fetcher: CheckedFetcher;
  private readonly gopBudget: GopBudget;

  constructor(
    private readonly config: StreamsConfig,
    private readonly dataDir: string,
    private readonly resolver: SourceResolver,
    private readonly log: Logger,
    private readonly parts: EngineParts = {},
  ) {
    super();
    this.clock = parts.clock ?? systemClock;
    this.fetcher = new CheckedFetcher({ check: (host) => this.resolver.checkConnect(host), ioTimeoutMs: config.ioTimeoutMs });
    this.gopBudget = new GopBudget(config.gopCache.maxBytesTotal);
  }

  /** This gateway's marker on its ffmpeg processes, derived from the data directory so a restart finds its orphans. */
  get instanceId(): string {
    return this.instanceIdValue;
  }

  /** Sweeps orphans of a previous run and clears its scratch files; call before serving. */
  start(): Promise<void> {
    this.starting ??= this.startOnce();
    return this.starting;
  }

  private async startOnce(): Promise<void> {
    await mkdir(this.dataDir, { recursive: true });
    this.instanceIdValue = await instanceIdFor(this.dataDir);
    this.runDir = join(await realpath(this.dataDir), 'run', 'hls');
    const killed = await sweepOrphans(this.instanceIdValue);
    if (killed.length) this.log.warn({ pids: killed }, 'killed ffmpeg processes left by a previous gateway');
    await rm(this.runDir, { recursive: true, force: true });
    await mkdir(this.runDir, { recursive: true });
    if (this.closing) return;
    await this.fetcher.start();
    const ctx: DriverContext = {
      config: this.config,
      instanceId: this.instanceIdValue,
      checkConnect: (host) => this.resolver.checkConnect(host),
      checkedFetcher: this.fetcher,
      ...(this.parts.gb28181 ? { gb28181: this.parts.gb28181 } : {}),
      ...(this.parts.jt1078 ? { jt1078: this.parts.jt1078 } : {}),
    };
    this.createDriver = (this.parts.drivers ?? driverFactory)(ctx);
  }

  private key(cameraId: string, profile: Profile) {
    return `${cameraId}\u0000${profile}`;
  }

  get(sessionId: string): StreamSession | undefined {
    for (const s of this.sessions.values()) if (s.id === sessionId) return s;
    return undefined;
  }

  /** The camera's session for a profile, if one is running. */
  sessionFor(cameraId: string, profile: Profile): StreamSession | undefined {
    return this.sessions.get(this.key(cameraId, profile));
  }

  /** Starts or joins the camera's session. Throws 503/429 over a cap, before any process starts. */
  async addReader(req: ReaderRequest): Promise<ReaderLease> {
    this.refuseWhenClosing();
    const key = this.key(req.cameraId, req.profile);
    let session = this.sessions.get(key);
    let source: ResolvedSource | null = null;
    if (!session) {
      source = await this.resolver.resolve(req.cameraId, req.profile);
      if (!source) throw new GatewayError('GW_ERR_NOT_FOUND', `camera "${req.cameraId}" not found`);
      if (!source.enabled) throw reasoned('GW_ERR_CONFLICT', 'disabled', { camera: req.cameraId }, `camera "${req.cameraId}" is disabled`);
      // A camera without a sub-stream serves its main one; and someone may have started it while the source was resolved.
      session = this.sessions.get(this.key(req.cameraId, source.profile));
      // close() may have run while the source was resolved: a session made now would escape it.
      this.refuseWhenClosing();
    }
    this.admitReader(req.userId);
    if (!session) {
      this.admitSession(source!);
      session = this.createSession(source!);
    }
    return this.lease(session, req);
  }

  private refuseWhenClosing() {
    if (this.closing) throw new GatewayError('GW_ERR_UNAVAILABLE', 'the gateway is shutting down');
  }

  private admitReader(userId: string) {
    const limits = this.config.limits;
    if ((this.readersByUser.get(userId) ?? 0) >= limits.viewersPerUser) {
      throw reasoned('GW_ERR_USER_QUOTA', 'viewings', { limit: limits.viewersPerUser }, `you already have ${limits.viewersPerUser} viewings open (streams.limits.viewersPerUser)`);
    }
    if (this.totalReaders >= limits.viewers) {
      throw reasoned('GW_ERR_CAPACITY', 'viewers', { limit: limits.viewers }, `the gateway is serving its maximum of ${limits.viewers} viewers (streams.limits.viewers)`);
    }
  }

  private admitSession(source: ResolvedSource) {
    const limits = this.config.limits;
    if (this.sessions.size >= limits.sessions) {
      throw reasoned('GW_ERR_CAPACITY', 'sessions', { limit: limits.sessions }, `the gateway is pulling its maximum of ${limits.sessions} cameras (streams.limits.sessions)`);
    }
    for (const [department, cap] of Object.entries(limits.departmentPulls)) {
      const prefix = `/${department}/`;
      if (!source.deptPath.includes(prefix)) continue;
      let pulls = 0;
      for (const s of this.sessions.values()) if (s.source.deptPath.includes(prefix)) pulls++;
      if (pulls >= cap) {
        throw reasoned('GW_ERR_CAPACITY', 'departmentPulls', { department, limit: cap }, `department "${department}" is pulling its maximum of ${cap} cameras (streams.limits.departmentPulls)`);
      }
    }
    if (source.codec === 'h265' && !this.acquireTranscode()) {
      throw reasoned(
        'GW_ERR_CAPACITY',
        'transcode',
        { limit: this.config.transcode.maxConcurrent },
        `this H.265 camera needs a transcode and all ${this.config.transcode.maxConcurrent} are busy (streams.transcode.maxConcurrent)`,
      );
    }
  }

  private acquireTranscode(): boolean {
    if (this.transcodes >= this.config.transcode.maxConcurrent) return false;
    this.transcodes++;
    return true;
  }

  private createSession(source: ResolvedSource): StreamSession {
    const id = randomUUID();
    const session = new StreamSession(id, source, join(this.runDir, id), this.host());
    this.sessions.set(this.key(source.cameraId, source.profile), session);
    this.emit('session', session);
    return session;
  }

  private lease(session: StreamSession, req: ReaderRequest): ReaderLease {
    const id = randomUUID();
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      this.totalReaders--;
      const n = (this.readersByUser.get(req.userId) ?? 1) - 1;
      if (n > 0) this.readersByUser.set(req.userId, n);
      else this.readersByUser.delete(req.userId);
      session.removeReader(id);
    };
    this.totalReaders++;
    this.readersByUser.set(req.userId, (this.readersByUser.get(req.userId) ?? 0) + 1);
    session.addReader({
      id,
      kind: req.kind,
      userId: req.userId,
      since: this.clock.now(),
      onClose: (error) => {
        release();
        req.onClose?.(error);
      },
    });
    return { id, session, live: () => session.whenLive(), release };
  }

  private host(): SessionHost {
    return {
      config: this.config,
      createDriver: (source, attempt, events) => {
        if (!this.createDriver) throw new GatewayError('GW_ERR_INTERNAL', 'the stream engine was not started');
        return this.createDriver(source, attempt, events);
      },
      clock: this.clock,
      gopBudget: this.gopBudget,
      acquireTranscode: () => this.acquireTranscode(),
      releaseTranscode: () => {
        this.transcodes = Math.max(0, this.transcodes - 1);
      },
      health: (session, health, error) => this.reportHealth(session, health, error),
      started: (session, ms) => this.emit('started', { cameraId: session.cameraId, ms }),
      log: this.log,
      closed: (session) => {
        this.totalBytesIn += session.bytesIn;
        this.totalBytesOut += session.bytesOut;
        this.totalRestarts += session.restarts;
        const key = this.key(session.cameraId, session.profile);
        if (this.sessions.get(key) === session) this.sessions.delete(key);
        this.emit('closed', session);
      },
    };
  }

  private reportHealth(session: StreamSession, health: 'online' | 'offline', failure: GatewayError | null) {
    const cameraId = session.cameraId;
    const error = failure?.message ?? null;
    const signature = `${health}\u0000${error ?? ''}`;
    if (this.lastHealth.get(cameraId) === signature) return;
    this.lastHealth.set(cameraId, signature);
    const coded = failure && { code: failure.code, params: failure.params ?? null };
    const event: HealthEvent = { cameraId, health, error, failure: coded, since: this.clock.now() };
    this.emit('health', event);
    this.resolver.setHealth(cameraId, health, coded && { ...coded, message: failure!.message }).catch((e: Error) => this.log.error({ camera: cameraId, err: e.message }, 'health write failed'));
  }

  list(filter: (s: StreamSession) => boolean = () => true): SessionSummary[] {
    return [...this.sessions.values()].filter(filter).map((s) => summarize(s, this.clock.now()));
  }

  stats(): EngineStats {
    const sessions: Record<SessionState, number> = { idle: 0, starting: 0, ready: 0, lingering: 0, retrying: 0, closed: 0 };
    let bytesIn = this.totalBytesIn;
    let bytesOut = this.totalBytesOut;
    let restarts = this.totalRestarts;
    for (const s of this.sessions.values()) {
      sessions[s.state]++;
      bytesIn += s.bytesIn;
      bytesOut += s.bytesOut;
      restarts += s.restarts;
    }
    return { sessions, readers: this.totalReaders, transcodes: this.transcodes, restarts, bytesIn, bytesOut, gopCacheBytes: this.gopBudget.used };
  }

  /** Force-stops a session: its viewers are told why and let go. */
  async stop(sessionId: string, reason: string): Promise<boolean> {
    const s = this.get(sessionId);
    if (!s) return false;
    await s.close(reason);
    return true;
  }

  async close(): Promise<void> {
    this.closing = true;
    await this.starting?.catch(() => {});
    await Promise.all([...this.sessions.values()].map((s) => s.close('gateway shutting down')));
    // Anything still running (a session that failed to track its child) is stopped too.
    await Promise.all([...FfmpegProcess.running()].map((p) => p.close('gateway shutting down')));
    await this.fetcher.close();
  }
}

/** The marker of the ffmpeg processes of the gateway on this data directory: the same across restarts. */
export async function instanceIdFor(dataDir: string): Promise<string> {
  return createHash('sha256')
    .update(await realpath(dataDir))
    .digest('hex')
    .slice(0, 24);
}

function summarize(s: StreamSession, now: number): SessionSummary {
  const readers: Record<Reader['kind'], number> = { hls: 0, flv: 0, webrtc: 0, prewarm: 0, snapshot: 0 };
  for (const r of s.readers.values()) readers[r.kind]++;
  return {
    id: s.id,
    cameraId: s.cameraId,
    cameraName: s.source.name,
    profile: s.profile,
    state: s.state,
    readers,
    bitrateKbps: s.bitrateKbps,
    uptimeMs: now - s.createdAt,
    restarts: s.restarts,
    inputCodec: s.inputCodec,
    resolution: s.resolution,
    transcoding: s.transcoding,
    pid: s.pid,
    retryInMs: s.retryInMs(),
    lastError: s.lastError ? { code: s.lastError.code, message: s.lastError.message, ...(s.lastError.params ? { params: s.lastError.params } : {}) } : null,
  };
}

import type { ReaderLease, StreamManager } from '../streams/manager.js';
import type { TileStatus } from './model.js';
import type { Prewarmer } from './walls.js';

/** What a tile's stream is doing, so a wall can say why a tile is black. */
export interface StreamStatusSource {
  statusOf(cameraId: string, profile: 'main' | 'sub'): TileStatus;
  /** Called with a camera id whenever that camera's status may have changed. */
  onChange(listener: (cameraId: string) => void): void;
}

type Failure = Pick<TileStatus, 'reason' | 'code' | 'params'>;
const NO_FAILURE: Failure = { reason: null, code: null, params: null };

/** The streaming engine's sessions and health reports, as tile states. */
export function engineStatus(streams: StreamManager): StreamStatusSource {
  const listeners: ((cameraId: string) => void)[] = [];
  const offline = new Map<string, Failure>();
  const notify = (cameraId: string) => listeners.forEach((l) => l(cameraId));
  streams.on('session', (session) => {
    session.on('state', () => notify(session.cameraId));
    notify(session.cameraId);
  });
  streams.on('closed', (session) => notify(session.cameraId));
  streams.on('health', (e) => {
    if (e.health === 'offline') offline.set(e.cameraId, { reason: e.error, code: e.failure?.code ?? null, params: e.failure?.params ?? null });
    else offline.delete(e.cameraId);
    notify(e.cameraId);
  });
  return {
    onChange: (l) => listeners.push(l),
    statusOf(cameraId, profile) {
      const s = streams.sessionFor(cameraId, profile);
      const last = s?.lastError;
      const failure: Failure = last ? { reason: last.message, code: last.code, params: last.params ?? null } : (offline.get(cameraId) ?? NO_FAILURE);
      switch (s?.state) {
        case 'idle':
        case 'starting':
          return { state: 'starting', ...NO_FAILURE, retryInMs: null };
        case 'ready':
        case 'lingering':
          return { state: 'live', ...NO_FAILURE, retryInMs: null };
        case 'retrying':
          return { state: 'retrying', ...failure, retryInMs: s.retryInMs() };
        default:
          // Nobody is pulling it: what the last pull found, or nothing known yet.
          return offline.has(cameraId) ? { state: 'offline', ...failure, retryInMs: null } : { state: 'idle', ...NO_FAILURE, retryInMs: null };
      }
    },
  };
}

/** A prewarmer whose holds end with it: close() lets go of every held reader and of any still starting. */
export interface EnginePrewarmer extends Prewarmer {
  /** A hold taken here whatever happens to it: a failure is logged, never handed to `onFailed`. */
  prewarmHere(cameraId: string, profile: 'main' | 'sub', holdMs: number): void;
  /**
   * Told of a pre-warm that could not start here; returns true when it took care of it (cluster mode:
   * another node pulls the camera, and holds it there), else the failure is logged.
   */
  onFailed: ((err: Error, cameraId: string, profile: 'main' | 'sub', holdMs: number) => boolean) | null;
  close(): void;
}

/**
 * Pre-warming opens an ordinary reader on the camera's session, so the stream is pulled, shared and
 * admitted like any other viewing, and lets go of it after `holdMs`, by when the wall's players hold their own.
 */
export function enginePrewarmer(streams: StreamManager, log: { warn(o: object, m: string): void }): EnginePrewarmer {
  const holds = new Map<NodeJS.Timeout, ReaderLease>();
  let closed = false;
  const hold = (cameraId: string, profile: 'main' | 'sub', holdMs: number, failed: (err: Error) => void) => {
    if (closed) return;
    streams.addReader({ cameraId, profile, kind: 'prewarm', userId: `prewarm:${cameraId}` }).then((lease) => {
      // A start that outlived the shutdown of the prewarmer is let go at once.
      if (closed) return lease.release();
      const timer = setTimeout(() => {
        holds.delete(timer);
        lease.release();
      }, holdMs);
      timer.unref();
      holds.set(timer, lease);
    }, failed);
  };
  const logFailure = (cameraId: string) => (err: Error) => log.warn({ camera: cameraId, err: err.message }, 'tour pre-warm did not start');
  const prewarmer: EnginePrewarmer = {
    onFailed: null,
    prewarm(cameraId, profile, holdMs) {
      hold(cameraId, profile, holdMs, (err) => {
        if (!prewarmer.onFailed?.(err, cameraId, profile, holdMs)) logFailure(cameraId)(err);
      });
    },
    prewarmHere(cameraId, profile, holdMs) {
      hold(cameraId, profile, holdMs, logFailure(cameraId));
    },
    close() {
      closed = true;
      for (const [timer, lease] of holds) {
        clearTimeout(timer);
        lease.release();
      }
      holds.clear();
    },
  };
  return prewarmer;
}

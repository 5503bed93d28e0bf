import type { EnginePrewarmer } from '../control/engine.js';
import { share, type PeerBus } from '../lib/peers.js';
import { OwnedElsewhere } from './ownership.js';

const TOPIC = 'streams.prewarm';
/** A hold longer than this is no pre-warm: a malformed or hostile message is not obeyed. */
const MAX_HOLD_MS = 10 * 60_000;
const MAX_CAMERA_ID = 256;

/** A hold for `nodeId` to take, because it pulls the camera. */
interface PrewarmRequest {
  nodeId: string;
  cameraId: string;
  profile: 'main' | 'sub';
  holdMs: number;
}

/**
 * Cluster mode: a pre-warm (a tour's next camera on the leader, an alarm's cameras on the node that
 * got the alarm) of a camera another node pulls cannot start here, since one node pulls a camera. It
 * is passed to that node over the bus, which holds the camera for the same time, so the tile finds it
 * live when its turn comes. The owner holds it only here (a camera that moved on meanwhile is logged
 * there, not passed on again), so a message cannot go round the cluster.
 */
export function sharePrewarms(prewarmer: EnginePrewarmer, nodeId: () => string, bus: PeerBus, log: { warn(o: object, m: string): void }): void {
  prewarmer.onFailed = (err, cameraId, profile, holdMs) => {
    if (!(err instanceof OwnedElsewhere) || err.lease.nodeId === nodeId()) return false;
    const request: PrewarmRequest = { nodeId: err.lease.nodeId, cameraId, profile, holdMs };
    share(bus, TOPIC, request, log);
    return true;
  };
  bus.subscribe(TOPIC, (m) => {
    const request = asRequest(m);
    if (!request) return log.warn({ topic: TOPIC }, 'cluster: malformed pre-warm from another node dropped');
    if (request.nodeId === nodeId()) prewarmer.prewarmHere(request.cameraId, request.profile, request.holdMs);
  });
}

function asRequest(m: unknown): PrewarmRequest | null {
  const r = m as Partial<PrewarmRequest> | null;
  if (typeof r?.nodeId !== 'string' || typeof r.cameraId !== 'string' || r.cameraId.length === 0 || r.cameraId.length > MAX_CAMERA_ID) return null;
  if (r.profile !== 'main' && r.profile !== 'sub') return null;
  if (typeof r.holdMs !== 'number' || !Number.isFinite(r.holdMs) || r.holdMs <= 0 || r.holdMs > MAX_HOLD_MS) return null;
  return { nodeId: r.nodeId, cameraId: r.cameraId, profile: r.profile, holdMs: r.holdMs };
}

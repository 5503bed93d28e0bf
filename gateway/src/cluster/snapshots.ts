import type { StreamTokens } from '../auth/stream-tokens.js';
import { GatewayError, errorCodes, type ErrorCode, type ErrorParams } from '../errors.js';
import type { Snapshot, SnapshotRequest, Snapshotter } from '../snapshots/types.js';
import type { NodeInfo } from './node.js';
import { OwnedElsewhere, type CameraOwnership } from './ownership.js';

/** A picture bigger than this from another node is refused (a 4K JPEG is well under it). */
const MAX_PICTURE_BYTES = 16 * 1024 * 1024;

export interface ClusterSnapshotOptions {
  cluster: { readonly id: string; nodes(): NodeInfo[]; readonly ownership: Pick<CameraOwnership, 'owner'> };
  /** Signs the camera-bound stream token the owner checks (nodes share secrets.tokenKey). */
  tokens: Pick<StreamTokens, 'issue'>;
  /** How long the owner may take to answer: its own start timeout when it must start the pull. */
  timeoutMs: number;
}

/**
 * Pictures in cluster mode: a camera another node pulls is not pulled here (its lease is there), so
 * the picture is asked of that node, at the stream URL of the camera's picture
 * (/streams/<camera>/<profile>/<stream token>/snapshot.jpg, routes/snapshots.ts), under a stream
 * token for that camera and the asker's user: the grant a stream URL carries, so it opens nothing a
 * viewing would not. The owner answers from its own engine and never sends the request further.
 */
export class ClusterSnapshotter implements Snapshotter {
  constructor(
    private readonly local: Snapshotter,
    private readonly opts: ClusterSnapshotOptions,
  ) {}

  async take(req: SnapshotRequest): Promise<Snapshot | null> {
    let shot: Snapshot | null;
    try {
      shot = await this.local.take(req);
    } catch (err) {
      if (!(err instanceof OwnedElsewhere)) throw err;
      return this.fromOwner(req, err.lease.nodeId);
    }
    if (shot || !req.ifLive) return shot;
    // Not live here (ifLive never starts a pull, so never meets the lease): it may be live where it is pulled.
    const lease = await this.opts.cluster.ownership.owner(req.cameraId).catch(() => null);
    return lease && lease.nodeId !== this.opts.cluster.id ? this.fromOwner(req, lease.nodeId) : null;
  }

  private async fromOwner(req: SnapshotRequest, nodeId: string): Promise<Snapshot | null> {
    const node = this.opts.cluster.nodes().find((n) => n.id === nodeId);
    if (!node) throw new GatewayError('GW_ERR_UNAVAILABLE', `camera "${req.cameraId}" is pulled by node ${nodeId}, which is not answering its heartbeat`);
    const token = this.opts.tokens.issue({ userId: req.userId, cameraId: req.cameraId, profile: req.profile }).token;
    const url = new URL(`/streams/${encodeURIComponent(req.cameraId)}/${req.profile}/${token}/snapshot.jpg`, node.url);
    if (req.width !== undefined) url.searchParams.set('width', String(req.width));
    if (req.ifLive) url.searchParams.set('ifLive', '1');
    let res: Response;
    try {
      res = await fetch(url, { signal: AbortSignal.timeout(this.opts.timeoutMs), redirect: 'error' });
    } catch (err) {
      throw new GatewayError('GW_ERR_UNAVAILABLE', `node ${nodeId}, which pulls camera "${req.cameraId}", did not answer for its picture: ${(err as Error).name}`);
    }
    if (res.status === 204) return null;
    const declared = Number(res.headers.get('content-length') ?? 0);
    if (declared > MAX_PICTURE_BYTES) {
      await res.body?.cancel();
      throw new GatewayError('GW_ERR_UNAVAILABLE', `node ${nodeId} answered with a picture over ${MAX_PICTURE_BYTES} bytes`);
    }
    const body = Buffer.from(await res.arrayBuffer());
    if (res.status !== 200) throw ownerError(body, nodeId);
    const width = Number(res.headers.get('x-picture-width'));
    const height = Number(res.headers.get('x-picture-height'));
    const takenAt = Number(res.headers.get('x-picture-taken-at'));
    if (!(width > 0 && height > 0 && takenAt > 0) || body.length > MAX_PICTURE_BYTES) {
      throw new GatewayError('GW_ERR_UNAVAILABLE', `node ${nodeId} answered with a picture this node cannot read`);
    }
    return { cameraId: req.cameraId, profile: req.profile, jpeg: body, width, height, takenAt };
  }
}

/** The owner's refusal, passed on in its own words (a capacity, timeout or camera error is the caller's to see). */
function ownerError(body: Buffer, nodeId: string): GatewayError {
  try {
    const e = JSON.parse(body.subarray(0, 64 * 1024).toString('utf8')) as { code?: string; message?: string; params?: ErrorParams };
    if (typeof e.code === 'string' && e.code in errorCodes && typeof e.message === 'string') return new GatewayError(e.code as ErrorCode, e.message, undefined, e.params);
  } catch {
    // Not the gateway's error body: fall through.
  }
  return new GatewayError('GW_ERR_UNAVAILABLE', `node ${nodeId} could not give the picture`);
}

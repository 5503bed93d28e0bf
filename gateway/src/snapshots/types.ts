/**
 * What the rest of the gateway asks of the snapshot engine. Alarms (evidence), the REST route and
 * anything else that wants a picture depend on this interface only, never on how it is decoded.
 */
import type { Profile } from '../streams/types.js';

export interface SnapshotRequest {
  cameraId: string;
  profile: Profile;
  /** Output width in pixels (height keeps the aspect ratio); the camera's own size when absent. */
  width?: number;
  /** Who asks: counted against the viewing caps like a viewer when the camera has to be pulled. */
  userId: string;
  /** Take it only from a session that is already live; never start a pull (thumbnails). */
  ifLive?: boolean;
}

export interface Snapshot {
  cameraId: string;
  profile: Profile;
  jpeg: Buffer;
  width: number;
  height: number;
  /** When the keyframe it shows arrived (ms since the epoch). */
  takenAt: number;
}

export interface Snapshotter {
  /**
   * Resolves with the picture, or null only when `ifLive` is set and the camera is not live.
   * Rejects with the GatewayError a viewing of that camera would get (GW_ERR_CAPACITY,
   * GW_ERR_CAMERA_UNREACHABLE, GW_ERR_STREAM_TIMEOUT, ...). Scope is the caller's job.
   */
  take(req: SnapshotRequest): Promise<Snapshot | null>;
}

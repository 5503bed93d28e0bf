import type { Config } from '../config/schema.js';
import type { Codec, HealthFailure, Protocol } from '../store/types.js';

export type StreamsConfig = Config['streams'];

export type Profile = 'main' | 'sub';

export type SessionState = 'idle' | 'starting' | 'ready' | 'lingering' | 'retrying' | 'closed';

/** What the engine needs to pull a camera; the registry provides it through the resolver app.ts wires. */
export interface ResolvedSource {
  cameraId: string;
  name: string;
  departmentId: string;
  /** The department path, "/root/a/b/": per-department caps count pulls in a subtree. */
  deptPath: string;
  /** The profile served: 'main' when a sub-stream was asked of a camera without one. */
  profile: Profile;
  /** The URL for this profile, without user info. */
  url: string;
  protocol: Protocol;
  codec: Codec;
  enabled: boolean;
  /** Opened only when a pull starts; the engine never stores or logs it. */
  credential: { username: string; password: string | null } | null;
}

export interface SourceResolver {
  resolve(cameraId: string, profile: Profile): Promise<ResolvedSource | null>;
  /** The addresses a host resolves to, checked against the network policy at connect time; null when refused, with the reason. */
  checkConnect(host: string): Promise<{ addresses: string[] } | { refused: string }>;
  /** failure is null when the camera is online; its code and params let a page word the reason in its own language. */
  setHealth(cameraId: string, health: 'online' | 'offline', failure: HealthFailure | null): Promise<void>;
}

/** A demuxed FLV tag from the pull's FLV output: the FLV output fans these out. */
export interface FlvTag {
  /** 8 audio, 9 video, 18 script data. */
  type: number;
  timestamp: number;
  data: Buffer;
  /** A video keyframe: a joining viewer starts here. */
  keyframe: boolean;
  /** An AVC or AAC sequence header (decoder configuration). */
  header: boolean;
}

import { GatewayError } from '../errors.js';
import type { ReaderRequest } from '../streams/manager.js';
import type { FlvTag, Profile, SessionState } from '../streams/types.js';

/** What a stream token grants: one user, one camera and profile, one viewing. Declared here; app.ts wires the signer. */
export interface StreamGrant {
  userId: string;
  cameraId: string;
  profile: Profile;
  /** One viewing: HLS requests carrying the same token count as one viewer. */
  viewingId: string;
  /** Epoch ms after which the token may no longer start a viewing. */
  expiresAt: number;
}

export interface StreamTokenVerifier {
  /** The grant of a well-signed token, expired or not (an HLS viewing outlives its token); null for anything forged. */
  verify(token: string): StreamGrant | null;
}

/** What a session tells its listeners. */
export interface LiveStreamEvents {
  /** A media tag; valid until the next keyframe (copy what you keep). */
  tag: [FlvTag];
  state: [SessionState];
}

/**
 * What an output sees of a camera's stream: it reads the media and reports back what it did and
 * what it could not play. It steers nothing: restarts, transcodes and counters are the session's.
 */
export interface LiveStream {
  readonly id: string;
  readonly cameraId: string;
  readonly profile: Profile;
  /** The directory the session's HLS playlist and segments are written to. */
  readonly hlsDir: string;
  /** The stream is already re-encoded (H.264 Main, no B-frames). */
  readonly transcoding: boolean;
  /** The decoder configuration (script data, AVC and AAC sequence headers), by FLV tag type. */
  readonly headers: ReadonlyMap<string, FlvTag>;
  /**
   * The tags a joining viewer needs before live ones: decoder configuration, then the current GOP
   * (none while a GOP over its byte bound is dropped). The session's one cached copy, which every
   * output reads instead of keeping its own: valid until the next keyframe, so read it at once and
   * copy what you keep.
   */
  joinTags(): FlvTag[];
  on<E extends keyof LiveStreamEvents>(event: E, listener: (...args: LiveStreamEvents[E]) => void): unknown;
  off<E extends keyof LiveStreamEvents>(event: E, listener: (...args: LiveStreamEvents[E]) => void): unknown;
  /** Bytes an output sent to its viewers, for the session's and the gateway's totals. */
  countSent(bytes: number): void;
  /**
   * Some viewer cannot play the stream as sent (B-frames over WebRTC). The session decides what to
   * do: restart with the shared transcode if a slot is free. False when it cannot help.
   */
  reportUndecodable(reason: string): boolean;
}

/** A reader's hold on a camera's stream: the session stays up until every lease is released. */
export interface StreamLease {
  readonly id: string;
  readonly session: LiveStream;
  /** Resolves on the first video, rejects with why the latest attempt failed. */
  live(): Promise<void>;
  /** Idempotent. */
  release(): void;
}

/** The part of the stream engine the outputs use. */
export interface ReaderSource {
  addReader(req: ReaderRequest): Promise<StreamLease>;
}

/** URL parameters shared by every stream output route. */
export const STREAM_PARAMS = {
  type: 'object',
  required: ['camera', 'profile', 'token'],
  properties: {
    camera: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$' },
    profile: { type: 'string', enum: ['main', 'sub'] },
    token: { type: 'string', pattern: '^[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+$', maxLength: 2048 },
  },
} as const;

/**
 * The grant behind a stream URL, checked against the camera and profile in the same URL. A token for
 * one camera opens no other; a forged one opens nothing.
 */
export function grantFor(verifier: StreamTokenVerifier, p: { camera: string; profile: string; token: string }): StreamGrant {
  const grant = verifier.verify(p.token);
  if (!grant) throw new GatewayError('GW_ERR_UNAUTHENTICATED', 'the stream token is not valid; ask for a new stream URL');
  if (grant.cameraId !== p.camera || grant.profile !== p.profile) {
    throw new GatewayError('GW_ERR_FORBIDDEN', 'this stream token is for another camera');
  }
  return grant;
}

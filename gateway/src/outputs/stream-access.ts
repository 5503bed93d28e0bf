import { GatewayError } from '../errors.js';
import type { ReaderLease, ReaderRequest } from '../streams/manager.js';
import type { Profile } from '../streams/types.js';

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

/** The part of the stream engine the outputs use. */
export interface ReaderSource {
  addReader(req: ReaderRequest): Promise<ReaderLease>;
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

import { randomUUID } from 'node:crypto';
import { createSigner, createVerifier } from 'fast-jwt';

export interface StreamTokenClaims {
  userId: string;
  cameraId: string;
  profile: 'main' | 'sub';
}

const ISSUER = 'wallgate';
/** Another audience than API tokens: a stream URL is no API key, and an API token opens no stream. */
const AUDIENCE = 'wallgate-stream';

/**
 * Short-lived, signed stream tokens carried in stream URLs (players cannot add headers to every
 * segment request). Expiry is checked by the outputs, not here: an HLS viewing that started in time
 * keeps fetching with its token for as long as it plays.
 */
export class StreamTokens {
  private readonly sign: (claims: Record<string, unknown>) => string;
  private readonly verifier: (token: string) => Record<string, unknown>;

  constructor(
    key: Buffer,
    readonly ttlSec: number,
  ) {
    this.sign = createSigner({ key, algorithm: 'HS256', iss: ISSUER, aud: AUDIENCE });
    this.verifier = createVerifier({ key, algorithms: ['HS256'], allowedIss: ISSUER, allowedAud: AUDIENCE, ignoreExpiration: true, cache: 2000 });
  }

  issue(c: StreamTokenClaims): { token: string; expiresAt: number } {
    const expiresAt = Date.now() + this.ttlSec * 1000;
    const token = this.sign({ sub: c.userId, cam: c.cameraId, prof: c.profile, jti: randomUUID(), use: Math.floor(expiresAt / 1000) });
    return { token, expiresAt };
  }

  verify(token: string) {
    try {
      const c = this.verifier(token);
      if (typeof c.sub !== 'string' || typeof c.cam !== 'string' || (c.prof !== 'main' && c.prof !== 'sub')) return null;
      if (typeof c.jti !== 'string' || typeof c.use !== 'number') return null;
      return { userId: c.sub, cameraId: c.cam, profile: c.prof, viewingId: c.jti, expiresAt: c.use * 1000 } as const;
    } catch {
      return null;
    }
  }
}

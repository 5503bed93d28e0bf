import { createHash } from 'node:crypto';
import { createSigner, createVerifier } from 'fast-jwt';

export interface TokenClaims {
  /** User id. */
  sub: string;
  /** The user's token version when issued: a later change to the user invalidates the token. */
  tv: number;
  /**
   * The sign-in this token belongs to, kept through renewals: signing out denies the session id,
   * which ends the token and every renewal of it at once.
   */
  sid: string;
}

export interface VerifiedToken extends TokenClaims {
  /** When it was issued, in ms (the JWT `iat` has whole seconds only: too coarse to order a sign-out and a new sign-in). */
  issuedAt: number;
  /** When it expires, in ms. */
  expiresAt: number;
}

const ISSUER = 'wallgate';
const AUDIENCE = 'wallgate-api';

/** HS256 only: the verifier refuses any other algorithm, "none" included, whatever the header says. */
export class TokenService {
  private readonly sign: (claims: Record<string, unknown>) => string;
  private readonly verifier: (token: string) => Record<string, unknown>;

  constructor(key: Buffer, readonly ttlSec: number) {
    this.sign = createSigner({ key, algorithm: 'HS256', expiresIn: ttlSec * 1000, iss: ISSUER, aud: AUDIENCE });
    this.verifier = createVerifier({ key, algorithms: ['HS256'], allowedIss: ISSUER, allowedAud: AUDIENCE, cache: 1000 });
  }

  issue(claims: TokenClaims): { token: string; expiresAt: string } {
    const now = Date.now();
    return { token: this.sign({ ...claims, ims: now }), expiresAt: new Date(now + this.ttlSec * 1000).toISOString() };
  }

  /** The claims of a valid token, or null for anything else (bad signature, expired, wrong algorithm, malformed). */
  verify(token: string): VerifiedToken | null {
    try {
      const c = this.verifier(token);
      if (typeof c.sub !== 'string' || typeof c.tv !== 'number' || typeof c.exp !== 'number') return null;
      if (typeof c.sid === 'string' && typeof c.ims === 'number') {
        return { sub: c.sub, tv: c.tv, sid: c.sid, issuedAt: c.ims, expiresAt: c.exp * 1000 };
      }
      // Issued before sign-out existed: an unattended wall screen holding one must not go dark on the
      // upgrade. The token itself names its session, so signing out or renewing it works as for any other.
      if (c.sid !== undefined || c.ims !== undefined || typeof c.iat !== 'number') return null;
      const sid = `legacy-${createHash('sha256').update(token).digest('base64url').slice(0, 22)}`;
      return { sub: c.sub, tv: c.tv, sid, issuedAt: c.iat * 1000, expiresAt: c.exp * 1000 };
    } catch {
      return null;
    }
  }
}

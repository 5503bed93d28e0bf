import { createSigner, createVerifier } from 'fast-jwt';

export interface TokenClaims {
  /** User id. */
  sub: string;
  /** The user's token version when issued: a later change to the user invalidates the token. */
  tv: number;
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
    return { token: this.sign({ ...claims }), expiresAt: new Date(Date.now() + this.ttlSec * 1000).toISOString() };
  }

  /** The claims of a valid token, or null for anything else (bad signature, expired, wrong algorithm, malformed). */
  verify(token: string): TokenClaims | null {
    try {
      const c = this.verifier(token);
      return typeof c.sub === 'string' && typeof c.tv === 'number' ? { sub: c.sub, tv: c.tv } : null;
    } catch {
      return null;
    }
  }
}

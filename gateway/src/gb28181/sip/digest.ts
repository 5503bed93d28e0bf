/**
 * HTTP digest authentication as SIP uses it (RFC 2617, MD5, qop "auth" or none), which is what
 * GB/T 28181 §9.1 asks of every REGISTER.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/** 'Digest a="b", c=d' → {a:'b', c:'d'}: quotes and the scheme stripped, keys lower-case. */
export function parseDigestParams(value: string): Record<string, string> {
  const params: Record<string, string> = {};
  const text = value.trim().replace(/^digest\s+/i, '');
  const re = /\s*([A-Za-z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,"]*))\s*(?:,|$)/y;
  let m: RegExpExecArray | null;
  while (re.lastIndex < text.length && (m = re.exec(text)) !== null) {
    params[m[1]!.toLowerCase()] = m[2] !== undefined ? m[2].replace(/\\(.)/g, '$1') : m[3]!;
  }
  return params;
}

const md5 = (s: string) => createHash('md5').update(s).digest('hex');

/** The `response` value: MD5(HA1:nonce:HA2), or MD5(HA1:nonce:nc:cnonce:qop:HA2) with qop. */
export function digestResponse(p: { username: string; realm: string; password: string; method: string; uri: string; nonce: string; qop?: string; nc?: string; cnonce?: string }): string {
  const ha1 = md5(`${p.username}:${p.realm}:${p.password}`);
  const ha2 = md5(`${p.method}:${p.uri}`);
  return p.qop ? md5(`${ha1}:${p.nonce}:${p.nc ?? ''}:${p.cnonce ?? ''}:${p.qop}:${ha2}`) : md5(`${ha1}:${p.nonce}:${ha2}`);
}

/** Compares two digest responses in constant time (they are hex of equal length when well formed). */
export function sameDigest(a: string, b: string): boolean {
  const x = Buffer.from(a.toLowerCase());
  const y = Buffer.from(b.toLowerCase());
  return x.length === y.length && timingSafeEqual(x, y);
}

/** Used nonces remembered at most; beyond that the oldest are forgotten (see `forgottenUpTo`). */
export const NONCE_STORE_MAX_ENTRIES = 50_000;

const NONCE_RE = /^([0-9a-f]{12})([0-9a-f]{16})([0-9a-f]{16})$/;
/** Written by no-qop use: any later use of that nonce is a replay. */
const USED_ONCE = Number.POSITIVE_INFINITY;

/**
 * Issues nonces and says whether one may be used. A nonce carries its issue time and an HMAC, so
 * issuing costs no memory (a flood of unauthenticated REGISTERs grows nothing); only used nonces
 * are remembered, to refuse replays: without qop a nonce is good once, with qop each use needs a
 * higher nc. Past the TTL a genuine nonce is 'stale' (the registrar re-challenges with stale=true).
 */
export class NonceStore {
  private readonly key = randomBytes(32);
  /** nonce → issue time and the highest nc seen, in order of first use. */
  private readonly used = new Map<string, { issuedAt: number; nc: number }>();
  /**
   * The latest issue time among the used nonces forgotten to stay bounded: a nonce issued at or
   * before it and not remembered might have been used already, so it is treated as stale.
   */
  private forgottenUpTo = -1;

  constructor(
    private readonly ttlMs: number,
    private readonly clock: () => number = Date.now,
    private readonly maxEntries = NONCE_STORE_MAX_ENTRIES,
  ) {}

  issue(): string {
    const stamp = Math.max(0, Math.floor(this.clock())).toString(16).padStart(12, '0').slice(-12);
    const body = stamp + randomBytes(8).toString('hex');
    return body + this.sign(body);
  }

  /** `nc` is the Authorization's nc (8 hex digits) when it has qop, else undefined. Records the use. */
  check(nonce: string, nc: string | undefined): 'ok' | 'stale' | 'unknown' | 'replayed' {
    const m = NONCE_RE.exec(nonce);
    if (!m || !sameDigest(this.sign(m[1]! + m[2]!), m[3]!)) return 'unknown';
    const now = this.clock();
    const issuedAt = parseInt(m[1]!, 16);
    if (issuedAt > now) return 'unknown';
    this.prune(now);
    if (now - issuedAt > this.ttlMs) return 'stale';
    let count = USED_ONCE;
    if (nc !== undefined) {
      if (!/^[0-9a-fA-F]{1,8}$/.test(nc)) return 'unknown';
      count = parseInt(nc, 16);
    }
    const seen = this.used.get(nonce);
    if (seen) {
      if (count === USED_ONCE || seen.nc === USED_ONCE || count <= seen.nc) return 'replayed';
      seen.nc = count;
      return 'ok';
    }
    if (issuedAt <= this.forgottenUpTo) return 'stale';
    this.used.set(nonce, { issuedAt, nc: count });
    while (this.used.size > this.maxEntries) this.forgetOldest();
    return 'ok';
  }

  get size(): number {
    return this.used.size;
  }

  private sign(body: string): string {
    return createHmac('sha256', this.key).update(body).digest('hex').slice(0, 16);
  }

  /** Used nonces past their TTL need no memory: they are stale by their own stamp. */
  private prune(now: number): void {
    for (const [nonce, entry] of this.used) {
      // First-use order is nearly issue order; stop at the first live one rather than scan all.
      if (now - entry.issuedAt <= this.ttlMs) break;
      this.used.delete(nonce);
    }
  }

  private forgetOldest(): void {
    const oldest = this.used.entries().next().value;
    if (!oldest) return;
    this.used.delete(oldest[0]);
    this.forgottenUpTo = Math.max(this.forgottenUpTo, oldest[1].issuedAt);
  }
}

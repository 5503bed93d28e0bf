import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { isIP, type AddressInfo, type LookupFunction } from 'node:net';

/** The network policy's verdict on a host at connect time (the SourceResolver's checkConnect). */
export type ConnectCheck = (host: string) => Promise<{ addresses: string[] } | { refused: string }>;

export interface CheckedFetcherOptions {
  check: ConnectCheck;
  /** Budget for an upstream's answer and for each pause in its body (streams.ioTimeoutMs). */
  ioTimeoutMs: number;
  maxPlaylistBytes?: number;
  maxSegmentBytes?: number;
  maxRedirects?: number;
  /** A source left open (its attempt never closed it) and idle this long is forgotten, its credential with it. */
  idleMs?: number;
}

interface Source {
  /** The registered URL, without its credential. */
  root: string;
  /** scheme://host:port of the registered URL: its credential is sent there and nowhere else. */
  origin: string;
  auth: string | null;
  /** The origin's last Digest challenge: later requests answer it up front, as a browser does. */
  digest: { challenge: DigestChallenge; nc: number } | null;
  /** HTTP-FLV: the body is a live stream with no end, so it has no size limit. */
  live: boolean;
  lastUsed: number;
  /** Requests being served: a live HTTP-FLV relay can run for days after its one request began. */
  active: number;
  onRefused(reason: string): void;
}

export interface OpenedSource {
  url: string;
  token: string;
  close(): void;
}

/** A hop the network policy forbids: ffmpeg gets a 403 and the session the reason. */
class Refused extends Error {}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);
const PLAYLIST_MAGIC = '#EXTM3U';

/**
 * ffmpeg reads HTTP(S) sources (HLS, HTTP-FLV) only through this loopback server, never from the
 * camera: every playlist, segment, key and redirect hop is fetched here, its host resolved and checked
 * against registry.networks, and the connection pinned to the checked address. A playlist is rewritten
 * so that each URI in it leads back here, signed, so ffmpeg has nothing else it could open. The
 * camera's credential stays in this process's memory and goes only to the registered origin.
 */
export class CheckedFetcher {
  private server: Server | null = null;
  private port = 0;
  private readonly key = randomBytes(32);
  private readonly sources = new Map<string, Source>();
  private sweep: NodeJS.Timeout | null = null;
  private readonly maxPlaylistBytes: number;
  private readonly maxSegmentBytes: number;
  private readonly maxRedirects: number;
  private readonly idleMs: number;

  constructor(private readonly opts: CheckedFetcherOptions) {
    this.maxPlaylistBytes = opts.maxPlaylistBytes ?? 1024 * 1024;
    this.maxSegmentBytes = opts.maxSegmentBytes ?? 256 * 1024 * 1024;
    this.maxRedirects = opts.maxRedirects ?? 5;
    this.idleMs = opts.idleMs ?? Math.max(60_000, opts.ioTimeoutMs * 4);
  }

  async start(): Promise<void> {
    const server = createServer((req, res) => void this.serve(req, res).catch(() => res.destroy()));
    server.on('connection', (socket) => socket.on('error', () => socket.destroy()));
    server.on('clientError', (_err, socket) => socket.destroy());
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    this.server = server;
    this.port = (server.address() as AddressInfo).port;
    this.sweep = setInterval(() => {
      const before = Date.now() - this.idleMs;
      for (const [token, s] of this.sources) if (s.active === 0 && s.lastUsed < before) this.sources.delete(token);
    }, Math.min(this.idleMs, 30_000));
    this.sweep.unref();
  }

  async close(): Promise<void> {
    if (this.sweep) clearInterval(this.sweep);
    this.sources.clear();
    const server = this.server;
    this.server = null;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /**
   * Registers a camera URL (credentials included) and returns the loopback URL ffmpeg opens in its
   * place, with the token in it (a secret: whoever has it can fetch through here) and close(), which
   * forgets the credential and refuses the token from then on. onRefused hears each hop the policy
   * refuses, with the reason.
   */
  open(upstream: string, opts: { live: boolean; onRefused(reason: string): void }): OpenedSource {
    if (!this.server) throw new Error('the checked fetcher is not started');
    const url = new URL(upstream);
    const auth = url.username || url.password ? `${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}` : null;
    url.username = '';
    url.password = '';
    const token = randomBytes(16).toString('base64url');
    this.sources.set(token, { root: url.toString(), origin: url.origin, auth, digest: null, live: opts.live, lastUsed: Date.now(), active: 0, onRefused: opts.onRefused });
    return { url: this.local(token, url.toString()), token, close: () => void this.sources.delete(token) };
  }

  /** The fetcher as an HTTP proxy: ffmpeg's second line of defence, should a URI ever escape the rewrite. */
  get proxyUrl(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  private sign(token: string, encoded: string): string {
    return createHmac('sha256', this.key).update(`${token}/${encoded}`).digest('base64url').slice(0, 22);
  }

  /** /<token>/<signature>/<target, base64url>/<its file name, for ffmpeg's extension checks>. */
  private local(token: string, target: string): string {
    const encoded = Buffer.from(target).toString('base64url');
    let name = 'index';
    try {
      name = new URL(target).pathname.split('/').pop()!.replace(/[^A-Za-z0-9._-]/g, '').slice(-64) || 'index';
    } catch {
      // An unparsable target is refused when fetched; its name does not matter.
    }
    return `http://127.0.0.1:${this.port}/${token}/${this.sign(token, encoded)}/${encoded}/${name}`;
  }

  private async serve(req: IncomingMessage, res: ServerResponse) {
    res.on('error', () => {});
    // Through the proxy, ffmpeg asks for the absolute URL: only this server's own URLs are served.
    let path = req.url ?? '';
    if (/^[a-z]+:\/\//i.test(path)) {
      const asked = URL.canParse(path) ? new URL(path) : null;
      path = asked && asked.protocol === 'http:' && asked.host === `127.0.0.1:${this.port}` ? asked.pathname : '';
    }
    const [, token = '', signature = '', encoded = ''] = path.split('/');
    const source = this.sources.get(token);
    const expected = source ? Buffer.from(this.sign(token, encoded)) : null;
    if (!source || !expected || expected.length !== Buffer.byteLength(signature) || !timingSafeEqual(expected, Buffer.from(signature))) {
      res.writeHead(404).end();
      return;
    }
    if (req.method !== 'GET') {
      res.writeHead(405).end();
      return;
    }
    source.lastUsed = Date.now();
    source.active++;
    res.once('close', () => {
      source.active--;
      source.lastUsed = Date.now();
    });
    const target = Buffer.from(encoded, 'base64url').toString();
    let upstream: { res: IncomingMessage; url: URL };
    try {
      upstream = await this.fetch(source, target, req.headers.range);
    } catch (e) {
      if (e instanceof Refused) {
        source.onRefused(e.message);
        // ffmpeg prints the reason phrase ("HTTP error 403 …"), so its log says why too.
        res.writeHead(403, `wallgate refused: ${e.message}`.replace(/[^\x20-\x7e]/g, '?')).end();
      } else {
        res.writeHead(502, 'upstream failed').end();
      }
      return;
    }
    this.relay(token, source, upstream, res);
  }

  /** GETs the target, following redirects, each hop's host checked against the policy and pinned. */
  private async fetch(source: Source, target: string, range: string | undefined): Promise<{ res: IncomingMessage; url: URL }> {
    let url: URL;
    try {
      url = new URL(target);
    } catch {
      throw new Refused('the playlist names a URI that is not a URL');
    }
    for (let hop = 0; ; hop++) {
      const what = hop > 0 ? 'a redirect' : target === source.root ? 'the stream' : 'the playlist';
      if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Refused(`${what} leads to a ${url.protocol.replace(/:$/, '')}: URL; only http and https are fetched`);
      const host = url.hostname.replace(/^\[|\]$/g, '');
      const verdict = await this.opts.check(host);
      if ('refused' in verdict) throw new Refused(`${what} leads to ${host}: ${verdict.refused}`);
      const address = verdict.addresses[0]!;
      const own = url.origin === source.origin && source.auth !== null;
      let res = await this.get(source, url, host, address, range, own ? digestAuthorization(source, url) : null);
      // A camera that wants Digest (Hikvision, Dahua) answers 401 with its challenge: answer it, once.
      const challenge = own && res.statusCode === 401 ? parseDigestChallenge(res.headers['www-authenticate']) : null;
      if (challenge) {
        res.resume();
        source.digest = { challenge, nc: 0 };
        res = await this.get(source, url, host, address, range, digestAuthorization(source, url));
      }
      if (!REDIRECTS.has(res.statusCode ?? 0) || !res.headers.location) return { res, url };
      res.resume();
      if (hop >= this.maxRedirects) throw new Error('too many redirects');
      url = new URL(res.headers.location, url);
    }
  }

  private get(source: Source, url: URL, host: string, address: string, range: string | undefined, authorization: string | null): Promise<IncomingMessage> {
    const family = isIP(address);
    // The checked address, whatever a second lookup would say now.
    const lookup: LookupFunction = (_name, options, done) => {
      if ((options as { all?: boolean }).all) (done as unknown as (e: null, a: { address: string; family: number }[]) => void)(null, [{ address, family }]);
      else done(null, address, family);
    };
    const auth = authorization ? null : url.origin === source.origin ? source.auth : url.username ? `${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}` : null;
    const request = url.protocol === 'https:' ? httpsRequest : httpRequest;
    return new Promise((resolve, reject) => {
      const req = request({
        protocol: url.protocol,
        host,
        port: url.port || undefined,
        path: url.pathname + url.search,
        method: 'GET',
        headers: { 'user-agent': 'wallgate', accept: '*/*', ...(range ? { range } : {}), ...(authorization ? { authorization } : {}) },
        ...(auth ? { auth } : {}),
        lookup,
        agent: false,
        // As ffmpeg did (tls_verify is off by default): cameras carry self-signed certificates.
        rejectUnauthorized: false,
        ...(isIP(host) ? {} : { servername: host }),
      });
      req.setTimeout(this.opts.ioTimeoutMs, () => req.destroy(new Error('timed out')));
      req.on('error', reject);
      req.on('response', (res) => {
        // An upstream that resets mid-body must not take the gateway with it; relay() ends the reply.
        res.on('error', () => {});
        resolve(res);
      });
      req.end();
    });
  }

  /** Passes the answer on: a playlist rewritten to lead back here, anything else streamed with its limit. */
  private relay(token: string, source: Source, upstream: { res: IncomingMessage; url: URL }, res: ServerResponse) {
    const up = upstream.res;
    res.on('close', () => up.destroy());
    up.on('error', () => res.destroy());
    const status = up.statusCode ?? 502;
    if (status >= 300) {
      up.resume();
      res.writeHead(status, up.statusMessage).end();
      return;
    }
    let head = Buffer.alloc(0);
    let relayed = 0;
    const limit = source.live ? Infinity : this.maxSegmentBytes;
    let mode: 'sniff' | 'playlist' | 'stream' = 'sniff';
    const chunks: Buffer[] = [];
    const startStream = (first: Buffer) => {
      mode = 'stream';
      const headers: Record<string, string> = {};
      for (const h of ['content-type', 'content-length', 'content-range', 'accept-ranges'] as const) {
        const v = up.headers[h];
        if (typeof v === 'string') headers[h] = v;
      }
      res.writeHead(status, headers);
      if (first.length) write(first);
    };
    const write = (chunk: Buffer) => {
      relayed += chunk.length;
      if (relayed > limit) {
        res.destroy();
        return;
      }
      if (!res.write(chunk)) {
        up.pause();
        res.once('drain', () => up.resume());
      }
    };
    up.on('data', (chunk: Buffer) => {
      if (mode === 'stream') return write(chunk);
      if (mode === 'sniff') {
        head = Buffer.concat([head, chunk]);
        const text = head.subarray(0, 16).toString('utf8').replace(/^\ufeff/, '');
        if (text.length < PLAYLIST_MAGIC.length && head.length < 16) return;
        if (!text.startsWith(PLAYLIST_MAGIC)) return startStream(head);
        mode = 'playlist';
        chunks.push(head);
        relayed = head.length;
      } else {
        chunks.push(chunk);
        relayed += chunk.length;
      }
      if (relayed > this.maxPlaylistBytes) {
        up.destroy();
        res.writeHead(502, 'playlist too large').end();
      }
    });
    up.on('end', () => {
      if (mode === 'sniff') startStream(head);
      if (mode === 'stream') {
        res.end();
        return;
      }
      if (res.headersSent) return;
      const text = rewritePlaylist(Buffer.concat(chunks).toString('utf8'), upstream.url, (target) => this.local(token, target));
      res.writeHead(200, { 'content-type': 'application/vnd.apple.mpegurl', 'content-length': Buffer.byteLength(text) }).end(text);
    });
  }
}

interface DigestChallenge {
  realm: string;
  nonce: string;
  opaque: string | undefined;
  /** 'auth', or null when the camera offers no qop (RFC 2069). */
  qop: 'auth' | null;
  algorithm: 'MD5' | 'MD5-sess' | 'SHA-256' | 'SHA-256-sess';
}

/** The Digest challenge among a 401's WWW-Authenticate schemes, or null when there is none we can answer. */
export function parseDigestChallenge(header: string | string[] | undefined): DigestChallenge | null {
  const text = (Array.isArray(header) ? header.join(', ') : (header ?? '')).slice(0, 8192);
  const at = text.search(/(?:^|[\s,])Digest\s/i);
  if (at < 0) return null;
  const params = new Map<string, string>();
  // The first value of each name wins: a scheme after Digest (Basic realm=…) does not overwrite it.
  for (const m of text.slice(at).matchAll(/([A-Za-z-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))/g)) {
    const name = m[1]!.toLowerCase();
    if (!params.has(name)) params.set(name, m[2] !== undefined ? m[2].replace(/\\(.)/g, '$1') : m[3]!);
  }
  const nonce = params.get('nonce');
  if (!nonce) return null;
  const algorithm = (['MD5', 'MD5-sess', 'SHA-256', 'SHA-256-sess'] as const).find((a) => a.toLowerCase() === (params.get('algorithm') ?? 'MD5').toLowerCase());
  const qops = params.get('qop')?.split(',').map((q) => q.trim().toLowerCase());
  if (!algorithm || (qops && !qops.includes('auth'))) return null;
  return { realm: params.get('realm') ?? '', nonce, opaque: params.get('opaque'), qop: qops ? 'auth' : null, algorithm };
}

/** The Authorization header answering the source's Digest challenge for this URL (RFC 7616), or null before any challenge. */
function digestAuthorization(source: Source, url: URL): string | null {
  if (!source.digest || source.auth === null) return null;
  const { challenge } = source.digest;
  const colon = source.auth.indexOf(':');
  const [user, password] = [source.auth.slice(0, colon), source.auth.slice(colon + 1)];
  const hash = (s: string) => createHash(challenge.algorithm.startsWith('SHA-256') ? 'sha256' : 'md5').update(s).digest('hex');
  const uri = url.pathname + url.search;
  const cnonce = randomBytes(8).toString('hex');
  const nc = (++source.digest.nc).toString(16).padStart(8, '0');
  let ha1 = hash(`${user}:${challenge.realm}:${password}`);
  if (challenge.algorithm.endsWith('-sess')) ha1 = hash(`${ha1}:${challenge.nonce}:${cnonce}`);
  const ha2 = hash(`GET:${uri}`);
  const response = challenge.qop ? hash(`${ha1}:${challenge.nonce}:${nc}:${cnonce}:auth:${ha2}`) : hash(`${ha1}:${challenge.nonce}:${ha2}`);
  const quote = (v: string) => `"${v.replace(/[\\"]/g, '\\$&')}"`;
  const parts = [`username=${quote(user)}`, `realm=${quote(challenge.realm)}`, `nonce=${quote(challenge.nonce)}`, `uri=${quote(uri)}`, `algorithm=${challenge.algorithm}`, `response=${quote(response)}`];
  if (challenge.qop) parts.push('qop=auth', `nc=${nc}`, `cnonce=${quote(cnonce)}`);
  if (challenge.opaque !== undefined) parts.push(`opaque=${quote(challenge.opaque)}`);
  return `Digest ${parts.join(', ')}`;
}

/**
 * Every URI in a playlist (a line that is not a tag, and each URI attribute, quoted or not: keys, maps,
 * media and variant streams), made absolute against where the playlist came from, then mapped.
 * ffmpeg ends a line at \n, \r or NUL, so the rewrite splits where ffmpeg does and writes \n only:
 * a URI hidden after a bare \r is a line of its own here as it is there.
 */
export function rewritePlaylist(text: string, base: URL, map: (absolute: string) => string): string {
  const absolute = (uri: string) => {
    try {
      return new URL(uri, base).toString();
    } catch {
      return `invalid:${uri}`;
    }
  };
  return text
    .split(/\r\n|\r|\n|\0/)
    .map((line) => {
      const t = line.trim();
      if (!t) return '';
      // ffmpeg reads an unquoted value up to a comma or a space, and a quoted one to its closing quote or the line's end.
      if (t.startsWith('#')) return t.replace(/URI=(?:"([^"]*)"?|([^\s,]*))/g, (_, quoted: string | undefined, bare: string | undefined) => `URI="${map(absolute(quoted ?? bare ?? ''))}"`);
      return map(absolute(t));
    })
    .join('\n');
}

import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import type { NetworkPolicy } from '../lib/cidr.js';
import type { Protocol } from '../store/types.js';

/**
 * A camera URL ends up as an ffmpeg input, and ffmpeg will open files, pipes and nested
 * protocols when asked. So this is an allow-list: only these schemes, a real host, and
 * nothing that ffmpeg could read as an option or a protocol chain.
 */
const SCHEME_PROTOCOLS: Record<string, Protocol[]> = {
  rtsp: ['rtsp'],
  rtsps: ['rtsps'],
  rtmp: ['rtmp', 'rtmp-push'],
  rtmps: ['rtmps'],
  srt: ['srt'],
  http: ['hls', 'http-flv'],
  https: ['hls', 'http-flv'],
  gb28181: ['gb28181'],
  jt1078: ['jt1078'],
};
const DEFAULT_PORTS: Record<string, number> = { rtsp: 554, rtsps: 322, rtmp: 1935, rtmps: 443, http: 80, https: 443 };
export const ALLOWED_SCHEMES = Object.keys(SCHEME_PROTOCOLS);

const HOSTNAME = /^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/i;
/** SRT carries its secret in the query; it is treated as the password and kept out of the stored URL. */
const SRT_SECRET_PARAM = 'passphrase';

export interface ParsedCameraUrl {
  /** The URL without user info (and without an SRT passphrase): safe to store and show. */
  url: string;
  scheme: string;
  host: string;
  port: number;
  username: string | null;
  password: string | null;
}

/** A refused camera URL; `rule` is what the player words (a wrong scheme, or any other fault). */
export class UrlRejected extends Error {
  constructor(
    message: string,
    readonly rule: ['url'] | ['urlScheme', { allowed: string }] = ['url'],
  ) {
    super(message);
  }
}

/**
 * A GB/T 28181 channel: the device (or lower platform) that registered and the channel's id, both 20
 * digits, and `?stream=1` for its sub-stream. Nothing else: no host (the device reaches us over SIP,
 * so nothing is looked up or connected to from this URL), no user info, no other query.
 */
const GB_URL = /^gb28181:\/\/([0-9]{20})\/([0-9]{20})(\?stream=1)?$/;

export function parseGbUrl(url: string): { deviceId: string; channelId: string; sub: boolean } | null {
  const m = GB_URL.exec(url);
  return m ? { deviceId: m[1]!, channelId: m[2]!, sub: m[3] !== undefined } : null;
}

/** The URL of a GB channel's stream (the main one, or the sub-stream). */
export const gbUrl = (deviceId: string, channelId: string, sub = false) => `gb28181://${deviceId}/${channelId}${sub ? '?stream=1' : ''}`;

/**
 * A JT/T 1078 vehicle channel: the vehicle (as the vehicles module names it) and the terminal's
 * logical channel 1..64, and `?stream=1` for its sub-stream. No host: the terminal comes to us over
 * JT/T 808 and is told where to send its media, so nothing is connected to from this URL.
 */
const JT_URL = /^jt1078:\/\/([A-Za-z0-9][A-Za-z0-9_.:-]{0,63})\/([1-9][0-9]?)(\?stream=1)?$/;

export function parseJtUrl(url: string): { vehicleId: string; channel: number; sub: boolean } | null {
  const m = JT_URL.exec(url);
  const channel = m ? Number(m[2]) : 0;
  return m && channel <= 64 ? { vehicleId: m[1]!, channel, sub: m[3] !== undefined } : null;
}

/** The URL of a vehicle channel's stream (the main one, or the sub-stream). */
export const jtUrl = (vehicleId: string, channel: number, sub = false) => `jt1078://${vehicleId}/${channel}${sub ? '?stream=1' : ''}`;

/** Parses and checks one camera URL. The URL itself never appears in an error: it may hold a password. */
export function parseCameraUrl(raw: string): ParsedCameraUrl {
  if (raw.length === 0) throw new UrlRejected('must not be empty');
  if (raw.length > 2048) throw new UrlRejected('must be at most 2048 characters');
  if (raw.startsWith('-')) throw new UrlRejected("must not start with '-'");
  if (/[\s\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/u.test(raw)) throw new UrlRejected('must not contain white space or control characters');
  const schemeMatch = /^([a-zA-Z][a-zA-Z0-9+.-]*):/.exec(raw);
  const allowed = { allowed: ALLOWED_SCHEMES.map((s) => s + '://').join(', ') };
  if (!schemeMatch) throw new UrlRejected(`must start with one of ${allowed.allowed}`, ['urlScheme', allowed]);
  const scheme = schemeMatch[1]!.toLowerCase();
  if (!SCHEME_PROTOCOLS[scheme]) {
    throw new UrlRejected(`scheme "${scheme}" is not allowed; use one of ${ALLOWED_SCHEMES.join(', ')}`, ['urlScheme', allowed]);
  }
  if (!raw.slice(scheme.length + 1).startsWith('//')) throw new UrlRejected(`expected ${scheme}://host`);
  if (scheme === 'gb28181') {
    const gb = parseGbUrl(raw);
    if (!gb) throw new UrlRejected('a GB/T 28181 channel is gb28181://<device id>/<channel id>, both of 20 digits, with ?stream=1 for the sub-stream and nothing else');
    return { url: raw, scheme, host: gb.deviceId, port: 0, username: null, password: null };
  }
  if (scheme === 'jt1078') {
    const jt = parseJtUrl(raw);
    if (!jt) throw new UrlRejected('a JT/T 1078 channel is jt1078://<vehicle id>/<channel 1-64>, with ?stream=1 for the sub-stream and nothing else');
    return { url: raw, scheme, host: jt.vehicleId, port: 0, username: null, password: null };
  }

  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new UrlRejected('is not a valid URL');
  }
  let host = url.hostname.toLowerCase();
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  if (!host) throw new UrlRejected('must name a host');
  if (!isIP(host) && !HOSTNAME.test(host)) throw new UrlRejected('host must be an IP address or a DNS name');
  const port = url.port ? Number(url.port) : (DEFAULT_PORTS[scheme] ?? 0);
  if (scheme === 'srt' && !url.port) throw new UrlRejected('srt:// needs a port');

  let username: string | null = null;
  let password: string | null = null;
  try {
    if (url.username || url.password) {
      username = decodeURIComponent(url.username);
      password = url.password ? decodeURIComponent(url.password) : null;
    }
  } catch {
    throw new UrlRejected('has badly escaped user info');
  }
  url.username = '';
  url.password = '';
  if (scheme === 'srt' && url.searchParams.has(SRT_SECRET_PARAM)) {
    password = url.searchParams.get(SRT_SECRET_PARAM);
    username ??= '';
    url.searchParams.delete(SRT_SECRET_PARAM);
  }
  return { url: url.toString(), scheme, host, port, username, password };
}

/** The protocol a URL implies, or the reason it cannot be told. */
export function protocolFor(parsed: ParsedCameraUrl, declared: Protocol | undefined): Protocol | string {
  const options = SCHEME_PROTOCOLS[parsed.scheme]!;
  if (declared) {
    return options.includes(declared) ? declared : `"${declared}" does not match a ${parsed.scheme}:// URL (expected ${options.join(' or ')})`;
  }
  // A push source is declared as such; an rtmp:// URL alone is a camera or platform to pull from.
  if (options.length === 1 || parsed.scheme === 'rtmp') return options[0]!;
  const path = new URL(parsed.url).pathname.toLowerCase();
  if (path.endsWith('.m3u8')) return 'hls';
  if (path.endsWith('.flv')) return 'http-flv';
  return 'cannot tell HLS from HTTP-FLV by this URL; set protocol to "hls" or "http-flv"';
}

/** The stream name an rtmp-push source publishes under: its URL must be rtmp://<gateway>/push/<name>. */
const PUSH_PATH = /^\/push\/([A-Za-z0-9_-]{1,64})$/;
export function pushStreamName(url: string): string | null {
  const u = new URL(url);
  const m = PUSH_PATH.exec(u.pathname);
  return m && !u.search ? m[1]! : null;
}

/** Shows a stored URL with its user name and a masked password, never the password itself. */
export function displayUrl(url: string, username: string | null, hasPassword: boolean): string {
  if (username === null && !hasPassword) return url;
  const i = url.indexOf('://') + 3;
  if (url.startsWith('srt:')) return hasPassword ? `${url}${url.includes('?') ? '&' : '?'}${SRT_SECRET_PARAM}=***` : url;
  const user = encodeURIComponent(username ?? '');
  return `${url.slice(0, i)}${user}${hasPassword ? ':***' : ''}@${url.slice(i)}`;
}

export type Resolver = (host: string) => Promise<string[]>;

export const dnsResolver =
  (timeoutMs: number): Resolver =>
  async (host) => {
    const timeout = new Promise<never>((_, reject) => setTimeout(() => reject(new Error('timed out')), timeoutMs).unref());
    const found = await Promise.race([lookup(host, { all: true, verbatim: true }), timeout]);
    return found.map((a) => a.address);
  };

/** Where a host leads under the network policy: its addresses if every one is allowed, or why not. */
export type HostVerdict = { addresses: string[] } | { refused: string } | { unresolved: string };

export async function allowedAddresses(host: string, policy: NetworkPolicy, resolve: Resolver): Promise<HostVerdict> {
  if (isIP(host)) {
    const why = policy.check(host);
    return why ? { refused: why } : { addresses: [host] };
  }
  let addresses: string[];
  try {
    addresses = await resolve(host);
  } catch (e) {
    return { unresolved: (e as Error).message };
  }
  if (addresses.length === 0) return { unresolved: 'no address' };
  for (const a of addresses) {
    const why = policy.check(a);
    if (why) return { refused: why };
  }
  return { addresses };
}

/**
 * Checks a host at registration. A name that does not resolve is let through unless an allow-list
 * is configured: the stream engine checks the addresses again when it connects.
 */
export async function checkHost(host: string, policy: NetworkPolicy, resolve: Resolver): Promise<string | null> {
  const verdict = await allowedAddresses(host, policy, resolve);
  if ('refused' in verdict) return verdict.refused;
  if ('unresolved' in verdict && policy.hasAllowList) return 'host name does not resolve, so it cannot be checked against registry.networks.allow';
  return null;
}

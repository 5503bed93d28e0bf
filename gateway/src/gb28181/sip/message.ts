/**
 * SIP messages (RFC 3261 §7, §20): the subset GB/T 28181 devices and platforms send, parsed under
 * hard limits because every byte here comes from the network before anyone is authenticated.
 */

export type SipHeaders = [name: string, value: string][];
export interface SipRequest { type: 'request'; method: string; uri: string; headers: SipHeaders; body: Buffer }
export interface SipResponse { type: 'response'; status: number; reason: string; headers: SipHeaders; body: Buffer }
export type SipMessage = SipRequest | SipResponse;

export class SipParseError extends Error {
  override name = 'SipParseError';
}

/** Limits on one message. A GB REGISTER is ~500 bytes with ~12 headers; these leave a wide margin. */
export const SIP_MAX_MESSAGE_BYTES = 65_536;
/** Content-Length is not counted: the serializer always writes one, and what was accepted must read back. */
export const SIP_MAX_HEADERS = 64;
/** A header line after unfolding; a long Authorization with qop is ~400 bytes. */
export const SIP_MAX_HEADER_LINE_BYTES = 4_096;
export const SIP_MAX_START_LINE_BYTES = 1_024;

/** RFC 3261 §7.3.3 compact forms; GB devices rarely use them but some stacks do. */
const COMPACT: Record<string, string> = {
  v: 'Via',
  f: 'From',
  t: 'To',
  i: 'Call-ID',
  m: 'Contact',
  l: 'Content-Length',
  c: 'Content-Type',
  k: 'Supported',
  s: 'Subject',
  e: 'Content-Encoding',
};

const TOKEN = /^[A-Za-z0-9.!%*_+`'~-]+$/;
const SIP_VERSION = 'SIP/2.0';

const fullName = (name: string) => COMPACT[name.toLowerCase()] ?? name;

/** Splits a header value at commas outside quotes and angle brackets (several Vias on one line). */
function splitList(value: string): string[] {
  const parts: string[] = [];
  let quoted = false;
  let angle = false;
  let start = 0;
  for (let i = 0; i < value.length; i++) {
    const ch = value[i];
    if (ch === '"' && value[i - 1] !== '\\') quoted = !quoted;
    else if (!quoted && ch === '<') angle = true;
    else if (!quoted && ch === '>') angle = false;
    else if (ch === ',' && !quoted && !angle) {
      parts.push(value.slice(start, i).trim());
      start = i + 1;
    }
  }
  parts.push(value.slice(start).trim());
  return parts.filter((p) => p !== '');
}

/**
 * Parses one message (one UDP datagram, or one frame the TCP transport cut by Content-Length).
 * Tolerates LF-only line ends, folded header lines and leading blank lines (RFC 3261 §7.5).
 * A body shorter than its Content-Length is an error; bytes past it are ignored (UDP padding).
 */
export function parseSipMessage(buf: Buffer, maxBytes = SIP_MAX_MESSAGE_BYTES): SipMessage {
  if (buf.length > maxBytes) throw new SipParseError(`message of ${buf.length} bytes exceeds the limit of ${maxBytes}`);
  let pos = 0;
  const nextLine = (limit: number, what: string): string => {
    const nl = buf.indexOf(0x0a, pos);
    if (nl < 0) throw new SipParseError(`${what}: no end of line (headers not terminated by an empty line)`);
    const end = nl > pos && buf[nl - 1] === 0x0d ? nl - 1 : nl;
    if (end - pos > limit) throw new SipParseError(`${what} longer than ${limit} bytes`);
    const line = buf.toString('utf8', pos, end);
    // A CR inside a line would end it early when the message is written out again.
    if (line.includes('\r')) throw new SipParseError(`${what}: stray CR`);
    pos = nl + 1;
    return line;
  };

  let startLine = '';
  while (startLine === '') {
    if (pos >= buf.length) throw new SipParseError('empty message');
    startLine = nextLine(SIP_MAX_START_LINE_BYTES, 'start line');
  }

  const headers: SipHeaders = [];
  for (;;) {
    const line = nextLine(SIP_MAX_HEADER_LINE_BYTES, 'header line');
    if (line === '') break;
    if (line[0] === ' ' || line[0] === '\t') {
      const last = headers[headers.length - 1];
      if (!last) throw new SipParseError('folded line before the first header');
      last[1] = `${last[1]} ${line.trim()}`.trim();
      if (Buffer.byteLength(last[1]) + last[0].length + 2 > SIP_MAX_HEADER_LINE_BYTES) throw new SipParseError(`header ${last[0]} longer than ${SIP_MAX_HEADER_LINE_BYTES} bytes`);
      continue;
    }
    const colon = line.indexOf(':');
    const name = colon > 0 ? line.slice(0, colon).trim() : '';
    if (!TOKEN.test(name)) throw new SipParseError(`malformed header line ${JSON.stringify(line.slice(0, 40))}`);
    if (headers.length > SIP_MAX_HEADERS) throw new SipParseError(`more than ${SIP_MAX_HEADERS} headers`);
    headers.push([fullName(name), line.slice(colon + 1).trim()]);
  }

  // Several Vias may share one line; split them so the top Via is always the first entry.
  const expanded: SipHeaders = [];
  for (const [name, value] of headers) {
    if (name.toLowerCase() === 'via') for (const v of splitList(value)) expanded.push([name, v]);
    else expanded.push([name, value]);
  }
  const lengths = expanded.filter(([n]) => n.toLowerCase() === 'content-length').map(([, v]) => v);
  if (expanded.length - lengths.length > SIP_MAX_HEADERS) throw new SipParseError(`more than ${SIP_MAX_HEADERS} headers`);
  let body = buf.subarray(pos);
  if (lengths.length > 1) throw new SipParseError('more than one Content-Length header');
  if (lengths.length === 1) {
    const [value] = lengths;
    if (!/^\d{1,9}$/.test(value!)) throw new SipParseError(`invalid Content-Length ${JSON.stringify(value)}`);
    const length = Number(value);
    if (length > body.length) throw new SipParseError(`Content-Length ${length} but only ${body.length} body bytes`);
    body = body.subarray(0, length);
  }

  const parts = startLine.split(' ');
  if (parts[0] === SIP_VERSION) {
    const status = parts[1] ?? '';
    if (!/^[1-6]\d\d$/.test(status)) throw new SipParseError(`bad status line ${JSON.stringify(startLine.slice(0, 40))}`);
    return { type: 'response', status: Number(status), reason: parts.slice(2).join(' '), headers: expanded, body: Buffer.from(body) };
  }
  const [method, uri, version] = parts;
  if (parts.length !== 3 || !TOKEN.test(method!) || !/^[a-zA-Z][a-zA-Z0-9+.-]*:\S+$/.test(uri!) || version !== SIP_VERSION) {
    throw new SipParseError(`bad request line ${JSON.stringify(startLine.slice(0, 40))}`);
  }
  return { type: 'request', method: method!, uri: uri!, headers: expanded, body: Buffer.from(body) };
}

/** The wire form; Content-Length is always written from the body, whatever the headers said. */
export function serializeSipMessage(m: SipMessage): Buffer {
  const start = m.type === 'request' ? `${m.method} ${m.uri} ${SIP_VERSION}` : `${SIP_VERSION} ${m.status} ${m.reason}`;
  const lines = [start];
  for (const [name, value] of m.headers) {
    if (name.toLowerCase() === 'content-length') continue;
    // A value taken from one message into another must never smuggle in a header of its own.
    if (/[\r\n]/.test(name) || /[\r\n]/.test(value)) throw new TypeError(`SIP header ${JSON.stringify(name)} contains a line break`);
    lines.push(`${name}: ${value}`);
  }
  lines.push(`Content-Length: ${m.body.length}`, '', '');
  return Buffer.concat([Buffer.from(lines.join('\r\n')), m.body]);
}

/** The first value of a header (case-insensitive; compact names accepted). */
export function header(m: SipMessage, name: string): string | undefined {
  const wanted = fullName(name).toLowerCase();
  return m.headers.find(([n]) => n.toLowerCase() === wanted)?.[1];
}

export function headers(m: SipMessage, name: string): string[] {
  const wanted = fullName(name).toLowerCase();
  return m.headers.filter(([n]) => n.toLowerCase() === wanted).map(([, v]) => v);
}

/** `;a=b;c` → {a:'b', c:''}; keys lower-case. */
function parseParams(text: string): Record<string, string> {
  const params: Record<string, string> = {};
  for (const part of text.split(';')) {
    const p = part.trim();
    if (p === '') continue;
    const eq = p.indexOf('=');
    const key = (eq < 0 ? p : p.slice(0, eq)).trim().toLowerCase();
    let value = eq < 0 ? '' : p.slice(eq + 1).trim();
    if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
    if (key !== '') params[key] = value;
  }
  return params;
}

/** host[:port], IPv6 in brackets. */
function parseHostPort(text: string, what: string): { host: string; port: number | null } {
  const m = /^(\[[0-9a-fA-F:.]+\]|[^:\s[\]]+)(?::(\d{1,5}))?$/.exec(text.trim());
  if (!m) throw new SipParseError(`${what}: bad host ${JSON.stringify(text.slice(0, 40))}`);
  const port = m[2] === undefined ? null : Number(m[2]);
  if (port !== null && port > 65_535) throw new SipParseError(`${what}: bad port ${port}`);
  return { host: m[1]!, port };
}

interface SipUri { user: string | null; host: string; port: number | null }

function parseSipUri(uri: string, what: string): SipUri {
  const m = /^sips?:([^;?]+)/i.exec(uri);
  if (!m) throw new SipParseError(`${what}: not a sip URI ${JSON.stringify(uri.slice(0, 40))}`);
  const rest = m[1]!;
  const at = rest.lastIndexOf('@');
  const userinfo = at < 0 ? null : rest.slice(0, at);
  const user = userinfo === null ? null : decodeURIComponentSafe(userinfo.split(':')[0]!);
  return { user, ...parseHostPort(at < 0 ? rest : rest.slice(at + 1), what) };
}

function decodeURIComponentSafe(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

export interface NameAddr { display: string | null; uri: string; user: string | null; host: string; port: number | null; tag: string | null; params: Record<string, string> }

/** From, To and Contact values: `"Name" <sip:user@host:port;uri-params>;tag=x` or the bare `sip:user@host;tag=x`. */
export function parseNameAddr(value: string): NameAddr {
  const text = value.trim();
  let display: string | null = null;
  let uri: string;
  let rest: string;
  const lt = text.indexOf('<');
  if (lt >= 0) {
    const gt = text.indexOf('>', lt);
    if (gt < 0) throw new SipParseError(`name-addr without '>': ${JSON.stringify(text.slice(0, 40))}`);
    const name = text.slice(0, lt).trim();
    display = name === '' ? null : name.replace(/^"(.*)"$/, '$1');
    uri = text.slice(lt + 1, gt).trim();
    rest = text.slice(gt + 1);
  } else {
    // Without brackets, everything after the first ';' is a header parameter (RFC 3261 §20.10).
    const semi = text.indexOf(';');
    uri = semi < 0 ? text : text.slice(0, semi);
    rest = semi < 0 ? '' : text.slice(semi);
  }
  const params = parseParams(rest);
  return { display, uri, ...parseSipUri(uri, 'name-addr'), tag: params.tag ?? null, params };
}

export interface Via { transport: string; host: string; port: number | null; branch: string | null; rport: number | true | null; received: string | null; params: Record<string, string> }

export function parseVia(value: string): Via {
  const m = /^SIP\s*\/\s*2\.0\s*\/\s*([A-Za-z]+)\s+([^;\s]+(?:\s*:\s*\d+)?)\s*(;.*)?$/i.exec(value.trim());
  if (!m) throw new SipParseError(`bad Via ${JSON.stringify(value.slice(0, 60))}`);
  const { host, port } = parseHostPort(m[2]!.replace(/\s+/g, ''), 'Via');
  const params = parseParams(m[3] ?? '');
  let rport: number | true | null = null;
  if ('rport' in params) {
    const r = params.rport!;
    rport = r === '' ? true : /^\d{1,5}$/.test(r) ? Number(r) : null;
  }
  return { transport: m[1]!.toUpperCase(), host, port, branch: params.branch ?? null, rport, received: params.received ?? null, params };
}

export function parseCSeq(value: string): { seq: number; method: string } {
  const m = /^(\d{1,10})\s+([A-Za-z0-9.!%*_+`'~-]+)$/.exec(value.trim());
  if (!m || Number(m[1]) > 0x7fffffff) throw new SipParseError(`bad CSeq ${JSON.stringify(value.slice(0, 40))}`);
  return { seq: Number(m[1]), method: m[2]! };
}

/** "sip:34020000001320000001@3402000000" → "34020000001320000001"; null when the URI names no user. */
export function sipUser(uri: string): string | null {
  const bare = uri.trim().replace(/^<(.*)>$/, '$1');
  try {
    return parseSipUri(bare, 'URI').user;
  } catch {
    return null;
  }
}

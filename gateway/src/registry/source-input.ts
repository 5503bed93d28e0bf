import { Type } from '@sinclair/typebox';
import { orNull } from '../lib/schema-check.js';
import type { ErrorParams, FieldIssue, IssueRule } from '../errors.js';
import { LEVELS, PROTOCOLS, type Codec, type Protocol, type SourceFields, type SourceRecord } from '../store/types.js';
import { parseCameraUrl, parseGbUrl, parseJtUrl, protocolFor, pushStreamName, UrlRejected, type ParsedCameraUrl } from './url-policy.js';

/**
 * One validator for every way a source arrives: REST create/replace/patch, NDJSON rows and CSV rows
 * (whose values are all strings and are coerced here). Each problem names its field.
 */
const SOURCE_ID = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$/;
const TAG = /^[^|\p{Cc},;]{1,32}$/u;
const MAX_TAGS = 20;

/** Fields a source input may carry; anything else is reported as unknown. */
export const SOURCE_INPUT_FIELDS = [
  'id',
  'name',
  'departmentId',
  'level',
  'address',
  'url',
  'subUrl',
  'protocol',
  'username',
  'password',
  'codec',
  'lat',
  'lon',
  'tags',
  'enabled',
] as const;
const KNOWN = new Set<string>(SOURCE_INPUT_FIELDS);

/**
 * What validateSourceInput takes, described for the API's document. The validator below is the
 * check (it also takes the text forms a CSV row has, and names each field it refuses); this schema
 * is not compiled against requests.
 */
export const SOURCE_INPUT = Type.Object(
  {
    id: Type.Optional(Type.String({ pattern: SOURCE_ID.source, description: 'required on create and import; a 20-digit GB/T 28181 id fits' })),
    name: Type.String({ minLength: 1, maxLength: 200 }),
    departmentId: Type.String({ minLength: 1, maxLength: 64 }),
    level: Type.Optional(Type.Union(LEVELS.map((l) => Type.Literal(l)), { default: 'site' })),
    address: Type.Optional(Type.String({ maxLength: 300 })),
    url: Type.String({ description: 'rtsp, rtmp, srt, http(s) HLS or FLV, rtmp://<gateway>/push/<name> (protocol rtmp-push), gb28181://<device id>/<channel id>, or jt1078://<vehicle id>/<channel>; credentials in it are sealed and shown masked' }),
    subUrl: Type.Optional(orNull(Type.String({ description: 'the sub stream (profile=sub)' }))),
    protocol: Type.Optional(Type.Union(PROTOCOLS.map((p) => Type.Literal(p)), { description: 'from the URL when not given' })),
    username: Type.Optional(orNull(Type.String())),
    password: Type.Optional(orNull(Type.String({ description: 'write-only; "***" keeps the stored one' }))),
    codec: Type.Optional(Type.Union([Type.Literal('h264'), Type.Literal('h265'), Type.Literal('unknown')])),
    lat: Type.Optional(orNull(Type.Number({ minimum: -90, maximum: 90 }))),
    lon: Type.Optional(orNull(Type.Number({ minimum: -180, maximum: 180 }))),
    tags: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 32 }), { maxItems: MAX_TAGS })),
    enabled: Type.Optional(Type.Boolean({ default: true })),
  },
  { additionalProperties: false },
);

/** Credentials as given; a missing half was not given (passwords are write-only, so it may be kept). */
export interface PlainCredential {
  username?: string;
  password?: string;
}

/** The password the API shows in masked URLs; sent back, it means "unchanged", never a new password. */
export const MASKED_PASSWORD = '***';

/** A validated input: the stored fields, with the URLs still parsed and the department not yet resolved. */
export interface SourceDraft extends Omit<SourceFields, 'id' | 'deptPath' | 'url' | 'subUrl'> {
  id: string | undefined;
  url: ParsedCameraUrl;
  subUrl: ParsedCameraUrl | null;
  /** 'keep': the input said nothing about credentials. */
  credential: PlainCredential | 'keep';
}

export type DraftResult = { draft: SourceDraft; issues?: undefined } | { issues: FieldIssue[]; draft?: undefined };

const CODEC_ALIASES: Record<string, Codec> = { h264: 'h264', avc: 'h264', h265: 'h265', hevc: 'h265', unknown: 'unknown', '': 'unknown' };
const BOOL_TEXT: Record<string, boolean> = { true: true, false: false, '1': true, '0': false, yes: true, no: false };

const isBlank = (v: unknown) => v === undefined || v === null || v === '';
const hasControl = (s: string) => /\p{Cc}/u.test(s);

export function validateSourceInput(raw: Record<string, unknown>, opts: { requireId: boolean }): DraftResult {
  const issues: FieldIssue[] = [];
  const bad = (field: string, message: string, rule?: IssueRule, params?: ErrorParams) =>
    void issues.push({ field, message, ...(rule ? { rule } : {}), ...(params ? { params } : {}) });

  for (const key of Object.keys(raw)) if (!KNOWN.has(key)) bad(key, 'unknown field', 'unknownField');

  const text = (field: string, max: number, required: boolean): string => {
    const v = raw[field];
    if (isBlank(v)) {
      if (required) bad(field, 'is required', 'required');
      return '';
    }
    if (typeof v !== 'string') return (bad(field, 'expected a string', 'type', { type: 'string' }), '');
    const t = v.trim();
    if (required && !t) return (bad(field, 'is required', 'required'), '');
    if ([...t].length > max) return (bad(field, `must be at most ${max} characters`, 'maxLength', { limit: max }), '');
    if (hasControl(t)) return (bad(field, 'must not contain control characters', 'controlChars'), '');
    return t;
  };

  const oneOf = <T extends string>(field: string, allowed: readonly T[], fallback: T | undefined): T | undefined => {
    const v = raw[field];
    if (isBlank(v)) return fallback;
    const t = typeof v === 'string' ? v.trim().toLowerCase() : v;
    if (typeof t === 'string' && (allowed as readonly string[]).includes(t)) return t as T;
    bad(field, `expected one of ${allowed.join(', ')}`, 'enum', { allowed: allowed.join(', ') });
    return fallback;
  };

  const num = (field: string, min: number, max: number): number | null => {
    const v = raw[field];
    if (isBlank(v)) return null;
    const n = typeof v === 'string' ? Number(v.trim()) : v;
    if (typeof n !== 'number' || !Number.isFinite(n)) return (bad(field, 'expected a number', 'type', { type: 'number' }), null);
    if (n < min || n > max) return (bad(field, `must be between ${min} and ${max}`, 'range', { min, max }), null);
    return n;
  };

  let id: string | undefined;
  const rawId = raw.id;
  if (isBlank(rawId)) {
    if (opts.requireId) bad('id', 'is required (rows are matched by id so that a re-run updates instead of duplicating)', 'required');
  } else if (typeof rawId !== 'string' || !SOURCE_ID.test(rawId)) {
    bad('id', 'expected 1-64 letters, digits, "_", ".", ":" or "-", starting with a letter or digit (a 20-digit GB/T 28181 id fits)', 'pattern');
  } else id = rawId;

  const name = text('name', 200, true);
  const departmentId = text('departmentId', 64, true);
  const address = text('address', 300, false);
  const level = oneOf('level', LEVELS, 'site')!;
  const declared = oneOf('protocol', PROTOCOLS, undefined);

  let codec: Codec = 'unknown';
  if (!isBlank(raw.codec)) {
    const c = typeof raw.codec === 'string' ? CODEC_ALIASES[raw.codec.trim().toLowerCase().replace(/[.\s_-]/g, '')] : undefined;
    if (c) codec = c;
    else bad('codec', 'expected h264, h265 or unknown', 'enum', { allowed: 'h264, h265, unknown' });
  }

  const lat = num('lat', -90, 90);
  const lon = num('lon', -180, 180);
  if ((lat === null) !== (lon === null) && !issues.some((i) => i.field === 'lat' || i.field === 'lon')) {
    bad(lat === null ? 'lat' : 'lon', 'lat and lon go together: give both or neither', 'latLon');
  }

  let tags: string[] = [];
  const rawTags = raw.tags;
  if (!isBlank(rawTags)) {
    const list = typeof rawTags === 'string' ? rawTags.split(';').map((t) => t.trim()).filter(Boolean) : rawTags;
    if (!Array.isArray(list) || list.some((t) => typeof t !== 'string' || !TAG.test(t))) {
      bad('tags', 'expected a list of tags of 1-32 characters without "|", "," or ";" (in CSV: separated by ";")');
    } else if (list.length > MAX_TAGS) bad('tags', `at most ${MAX_TAGS} tags`);
    else tags = [...new Set(list as string[])];
  }

  let enabled = true;
  if (!isBlank(raw.enabled)) {
    const e = typeof raw.enabled === 'string' ? BOOL_TEXT[raw.enabled.trim().toLowerCase()] : raw.enabled;
    if (typeof e === 'boolean') enabled = e;
    else bad('enabled', 'expected true or false', 'type', { type: 'boolean' });
  }

  const parseUrl = (field: string): ParsedCameraUrl | null => {
    const v = raw[field];
    if (isBlank(v)) {
      if (field === 'url') bad(field, 'is required', 'required');
      return null;
    }
    if (typeof v !== 'string') return (bad(field, 'expected a string', 'type', { type: 'string' }), null);
    try {
      return parseCameraUrl(v);
    } catch (err) {
      if (err instanceof UrlRejected) return (bad(field, err.message, err.rule[0], err.rule[1]), null);
      throw err;
    }
  };
  const url = parseUrl('url');
  const subUrl = parseUrl('subUrl');

  let protocol: Protocol | undefined;
  if (url) {
    const p = protocolFor(url, declared);
    if ((PROTOCOLS as readonly string[]).includes(p)) protocol = p as Protocol;
    else bad('protocol', p);
    if (subUrl && protocol) {
      const sp = protocolFor(subUrl, protocol);
      if (sp !== protocol) bad('subUrl', `must use the same protocol as url (${protocol})`);
    }
    if (protocol === 'rtmp-push') {
      if (!pushStreamName(url.url)) bad('url', 'a push source is rtmp://<gateway host>/push/<name>, the name of letters, digits, _ and -');
      if (subUrl) bad('subUrl', 'a push source has one stream');
      if (url.username !== null) bad('url', 'a push source has no camera credentials; publishers get a signed URL instead');
    }
    if (protocol === 'gb28181') {
      const gb = parseGbUrl(url.url)!;
      if (gb.sub) bad('url', 'the main stream has no ?stream=1; that is the sub-stream (subUrl)');
      if (subUrl && subUrl.url !== `${url.url}?stream=1`) bad('subUrl', 'a GB/T 28181 sub-stream is the same channel URL with ?stream=1');
      if (id === undefined) id = gb.channelId;
      else if (id !== gb.channelId) bad('id', `a GB/T 28181 channel is registered under its channel id (${gb.channelId})`);
      for (const field of ['username', 'password'] as const) {
        if (!isBlank(raw[field])) bad(field, 'a GB/T 28181 channel has no camera credentials: its device registers with its own password');
      }
    }
    if (protocol === 'jt1078') {
      if (parseJtUrl(url.url)!.sub) bad('url', 'the main stream has no ?stream=1; that is the sub-stream (subUrl)');
      if (subUrl && subUrl.url !== `${url.url}?stream=1`) bad('subUrl', 'a JT/T 1078 sub-stream is the same channel URL with ?stream=1');
      for (const field of ['username', 'password'] as const) {
        if (!isBlank(raw[field])) bad(field, "a JT/T 1078 channel has no camera credentials: the vehicle's terminal authenticates over JT/T 808");
      }
    }
  }

  // Credentials may come as fields or inside the URLs; one set per source, and never echoed in an error.
  let credential: PlainCredential | 'keep' = 'keep';
  const sets: PlainCredential[] = [];
  const given: PlainCredential = {};
  for (const [field, max] of [['username', 128], ['password', 256]] as const) {
    const v = raw[field];
    if (isBlank(v)) continue;
    if (typeof v !== 'string' || v.length > max || hasControl(v)) bad(field, `expected a string of at most ${max} characters without control characters`, 'maxLength', { limit: max });
    else given[field] = v;
  }
  if (given.username !== undefined || given.password !== undefined) sets.push(given);
  for (const [field, u] of [['url', url], ['subUrl', subUrl]] as const) {
    if (!u || u.username === null) continue;
    // Checked after decoding: %0d%0a in user info would otherwise reach an RTSP or HTTP header.
    if (hasControl(u.username) || (u.password !== null && hasControl(u.password))) {
      bad(field, 'user info must not contain control characters', 'controlChars');
      continue;
    }
    sets.push({ username: u.username, ...(u.password !== null && u.password !== MASKED_PASSWORD ? { password: u.password } : {}) });
  }
  const [first, ...rest] = sets;
  if (first) {
    const merged: PlainCredential = {};
    for (const set of sets) {
      if (set.username !== undefined) merged.username ??= set.username;
      if (set.password !== undefined) merged.password ??= set.password;
    }
    if (rest.concat(first).some((c) => (c.username !== undefined && c.username !== merged.username) || (c.password !== undefined && c.password !== merged.password))) {
      bad('password', 'the URLs and the username/password fields carry different credentials; give one set');
    } else credential = merged;
  }

  if (issues.length || !url || !protocol) return { issues: issues.length ? issues : [{ field: 'url', message: 'is required', rule: 'required' }] };
  return {
    draft: { id, name, departmentId, level, address, url, subUrl, protocol, codec, lat, lon, tags, enabled, credential },
  };
}

/** A stored source as input fields, for a patch or a re-import to merge onto (credentials left to 'keep'). */
export function storedInput(r: SourceRecord): Record<string, unknown> {
  return {
    name: r.name,
    departmentId: r.departmentId,
    level: r.level,
    address: r.address,
    url: r.url,
    subUrl: r.subUrl,
    protocol: r.protocol,
    codec: r.codec,
    lat: r.lat,
    lon: r.lon,
    tags: r.tags,
    enabled: r.enabled,
  };
}

import { Type, type Static, type TSchema } from '@sinclair/typebox';
import type { ErrorParams, FieldIssue, IssueRule } from '../errors.js';
import { literals, schemaCheck } from '../lib/schema-check.js';
import {
  ALARM_TYPES,
  HAZARD_CLASSES,
  PLATE_COLORS,
  SEVERITIES,
  VEHICLE_CATEGORIES,
  type Cargo,
  type HazardClass,
  type Vehicle,
  type VehicleChannel,
} from './model.js';
import { normalisePlate, plateProblem } from './plate.js';

/**
 * Input checks for vehicles (REST and imports alike; CSV cells arrive as strings and are coerced
 * here), geofences, linkage rules and the feed's reports. Each problem names its field.
 */

const ID_PATTERN = '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$';
const ID_RE = new RegExp(ID_PATTERN);
const MAX_CHANNELS = 16;
const MAX_TAGS = 20;

export const VEHICLE_INPUT_FIELDS = [
  'id',
  'plate',
  'plateColor',
  'category',
  'hazardClass',
  'unNumber',
  'cargo',
  'company',
  'departmentId',
  'terminalId',
  'sim',
  'channels',
  'tags',
] as const;
const KNOWN = new Set<string>(VEHICLE_INPUT_FIELDS);

/** A checked input: the vehicle's fields, its id if one was given, and no version or times yet. */
export type VehicleDraft = Omit<Vehicle, 'id' | 'version' | 'createdAt' | 'updatedAt'> & { id: string | undefined };

const isBlank = (v: unknown) => v === undefined || v === null || v === '';

/** "1:front road:cam-1;2:driver:cam-2", the CSV form of channels. */
function channelsFromText(text: string): unknown[] {
  return text
    .split(';')
    .map((part) => part.trim())
    .filter(Boolean)
    .map((part) => {
      const [channel, name, sourceId, ...rest] = part.split(':');
      // A source id may itself hold colons: everything after the second colon is the id.
      return { channel: Number(channel), name, sourceId: [sourceId, ...rest].join(':') };
    });
}

export function validateVehicleInput(raw: Record<string, unknown>, opts: { requireId: boolean }): { draft: VehicleDraft; issues?: undefined } | { issues: FieldIssue[]; draft?: undefined } {
  const issues: FieldIssue[] = [];
  const bad = (field: string, message: string, rule?: IssueRule, params?: ErrorParams) =>
    void issues.push({ field, message, ...(rule ? { rule } : {}), ...(params ? { params } : {}) });
  for (const key of Object.keys(raw)) if (!KNOWN.has(key)) bad(key, 'unknown field', 'unknownField');

  const text = (field: string, max: number, required: boolean, pattern?: RegExp, patternText?: string): string => {
    const v = raw[field];
    if (isBlank(v)) return (required && bad(field, 'is required', 'required'), '');
    if (typeof v !== 'string' && typeof v !== 'number') return (bad(field, 'expected a string', 'type', { type: 'string' }), '');
    const t = String(v).trim();
    if ([...t].length > max) return (bad(field, `must be at most ${max} characters`, 'maxLength', { limit: max }), '');
    if (/\p{Cc}/u.test(t)) return (bad(field, 'must not contain control characters', 'controlChars'), '');
    if (pattern && !pattern.test(t)) return (bad(field, patternText!), '');
    return t;
  };
  const oneOf = <T extends string>(field: string, allowed: readonly T[]): T | undefined => {
    const v = raw[field];
    if (isBlank(v)) return undefined;
    if (typeof v === 'string' && (allowed as readonly string[]).includes(v.trim())) return v.trim() as T;
    return void bad(field, `expected one of ${allowed.join(', ')}`, 'enum', { allowed: allowed.join(', ') });
  };

  const id = text('id', 64, opts.requireId, ID_RE, 'expected letters, digits and _.:- (at most 64, starting with a letter or digit)') || undefined;
  let plate = '';
  if (isBlank(raw.plate)) bad('plate', 'is required', 'required');
  else if (typeof raw.plate !== 'string') bad('plate', 'expected a string');
  else {
    plate = normalisePlate(raw.plate);
    const problem = plateProblem(plate);
    if (problem) bad('plate', problem);
  }
  const category = oneOf('category', VEHICLE_CATEGORIES);
  if (category === undefined && isBlank(raw.category)) bad('category', `is required (${VEHICLE_CATEGORIES.join(', ')})`);
  // Coaches, tourist buses and trucks carry yellow plates; a new-energy one a yellow-green plate.
  const plateColor = oneOf('plateColor', PLATE_COLORS) ?? ([...plate].length === 8 ? 'yellow-green' : 'yellow');

  let cargo: Cargo | null = null;
  const hazardClass = raw.hazardClass;
  const unNumber = text('unNumber', 6, false, /^(UN)?[0-9]{4}$/i, 'expected a four-digit UN number, e.g. UN1203');
  const cargoText = text('cargo', 100, false);
  if (category === 'dangerous-goods') {
    if (isBlank(hazardClass)) bad('hazardClass', 'is required for dangerous goods (UN class, e.g. 3 or 2.1)');
    else if (!(HAZARD_CLASSES as readonly string[]).includes(String(hazardClass).trim())) bad('hazardClass', `expected a UN class or division: ${HAZARD_CLASSES.join(', ')}`);
    else cargo = { hazardClass: String(hazardClass).trim() as HazardClass, unNumber: unNumber ? `UN${unNumber.slice(-4)}` : null, description: cargoText };
  } else if (category !== undefined) {
    for (const field of ['hazardClass', 'unNumber', 'cargo']) if (!isBlank(raw[field])) bad(field, 'only dangerous-goods vehicles carry cargo');
  }

  const company = text('company', 100, true);
  const departmentId = text('departmentId', 64, true, ID_RE, 'expected a department id');
  const terminalId = text('terminalId', 30, false, /^[A-Za-z0-9]+$/, 'expected letters and digits (the JT/T 808 terminal id)');
  const sim = text('sim', 20, false, /^[0-9]{11,20}$/, 'expected the SIM number: 11 to 20 digits');

  const channels: VehicleChannel[] = [];
  const rawChannels = typeof raw.channels === 'string' ? channelsFromText(raw.channels) : (raw.channels ?? []);
  if (!Array.isArray(rawChannels)) bad('channels', 'expected a list of {channel, name, sourceId}, or "1:front:cam-1;2:driver:cam-2"');
  else if (rawChannels.length > MAX_CHANNELS) bad('channels', `at most ${MAX_CHANNELS} channels`);
  else {
    const numbers = new Set<number>();
    const sources = new Set<string>();
    rawChannels.forEach((c: unknown, i) => {
      const field = `channels[${i}]`;
      if (!c || typeof c !== 'object') return bad(field, 'expected {channel, name, sourceId}');
      const { channel, name, sourceId, ...extra } = c as Record<string, unknown>;
      for (const k of Object.keys(extra)) bad(`${field}.${k}`, 'unknown field');
      const n = typeof channel === 'string' ? Number(channel) : channel;
      if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > 64) bad(`${field}.channel`, 'expected a channel number from 1 to 64');
      else if (numbers.has(n)) bad(`${field}.channel`, `channel ${n} is given twice`);
      else numbers.add(n);
      const label = typeof name === 'string' ? name.trim() : '';
      if (!label || [...label].length > 32 || /\p{Cc}/u.test(label)) bad(`${field}.name`, 'expected a name of 1 to 32 characters (front road, driver, cabin, cargo, rear, ...)');
      if (typeof sourceId !== 'string' || !ID_RE.test(sourceId)) bad(`${field}.sourceId`, 'expected the id of a registered camera source');
      else if (sources.has(sourceId)) bad(`${field}.sourceId`, `source "${sourceId}" is given for two channels`);
      else sources.add(sourceId);
      if (typeof n === 'number' && typeof sourceId === 'string') channels.push({ channel: n, name: label, sourceId });
    });
    channels.sort((a, b) => a.channel - b.channel);
  }

  let tags: string[] = [];
  const rawTags = typeof raw.tags === 'string' ? raw.tags.split(';').map((t) => t.trim()).filter(Boolean) : (raw.tags ?? []);
  if (!Array.isArray(rawTags) || rawTags.some((t) => typeof t !== 'string' || !/^[^|\p{Cc},;]{1,32}$/u.test(t)) || rawTags.length > MAX_TAGS) {
    bad('tags', `expected at most ${MAX_TAGS} tags of 1 to 32 characters, without , ; or |`);
  } else tags = [...new Set(rawTags as string[])];

  if (issues.length) return { issues };
  return { draft: { id, plate, plateColor, category: category!, cargo, company, departmentId, terminalId, sim, channels, tags } };
}

// ---- JSON inputs (REST bodies and WebSocket payloads) ------------------------------------------

const strict = <T extends Record<string, TSchema>>(props: T) => Type.Object(props, { additionalProperties: false });
const ID = Type.String({ pattern: ID_PATTERN });
const NAME = Type.String({ minLength: 1, maxLength: 100, pattern: '^[^\\u0000-\\u001f\\u007f]*$' });
const LON = Type.Number({ minimum: -180, maximum: 180 });
const LAT = Type.Number({ minimum: -90, maximum: 90 });
const POINT = Type.Tuple([LON, LAT]);
/** Milliseconds since the epoch, or an ISO 8601 time with its offset. */
const TIME = Type.Union([Type.Integer({ minimum: 0 }), Type.String({ pattern: '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})$' })]);
const TILE_ID = Type.String({ pattern: '^(s[0-9]{1,3}|wall)-[0-9]{1,3}$' });

/**
 * A vehicle as a REST body gives it: the known fields only, each a value or a list (or the CSV text
 * form of one). What each must be is validateVehicleInput's to say, for REST and import alike.
 */
export const VEHICLE_BODY = strict(
  Object.fromEntries(
    VEHICLE_INPUT_FIELDS.map((field) => [
      field,
      Type.Optional(field === 'channels' || field === 'tags' ? Type.Union([Type.Array(Type.Unknown()), Type.String(), Type.Null()]) : Type.Union([Type.String(), Type.Number(), Type.Null()])),
    ]),
  ),
);

/** A geofence as a REST body gives it. */
export const GEOFENCE_INPUT = strict({
  id: Type.Optional(ID),
  name: NAME,
  departmentId: ID,
  shape: Type.Union([
    strict({ kind: Type.Literal('polygon'), points: Type.Array(POINT, { minItems: 3, maxItems: 1000 }) }),
    strict({ kind: Type.Literal('circle'), center: POINT, radiusM: Type.Number({ exclusiveMinimum: 0, maximum: 100_000 }) }),
  ]),
  rules: Type.Array(
    strict({ forbid: literals(['enter', 'leave'] as const), categories: Type.Array(literals(VEHICLE_CATEGORIES), { uniqueItems: true }), severity: literals(SEVERITIES) }),
    { maxItems: 10 },
  ),
  enabled: Type.Optional(Type.Boolean()),
});
export const geofenceInput = schemaCheck(GEOFENCE_INPUT);
export type GeofenceInput = ReturnType<typeof geofenceInput.parse>;
export type LinkageInput = ReturnType<typeof linkageInput.parse>;

/** A linkage rule as a REST body gives it. */
export const LINKAGE_INPUT = strict({
  id: Type.Optional(ID),
  name: NAME,
  departmentId: ID,
  match: strict({
    categories: Type.Optional(Type.Array(literals(VEHICLE_CATEGORIES), { uniqueItems: true })),
    types: Type.Optional(Type.Array(literals(ALARM_TYPES), { uniqueItems: true })),
    minSeverity: Type.Optional(literals(SEVERITIES)),
    geofenceIds: Type.Optional(Type.Array(ID, { uniqueItems: true, maxItems: 100 })),
  }),
  wallId: ID,
  tileIds: Type.Array(TILE_ID, { minItems: 1, maxItems: 64, uniqueItems: true }),
  channels: Type.Optional(Type.Array(Type.Integer({ minimum: 1, maximum: 64 }), { uniqueItems: true, maxItems: 16 })),
  priority: Type.Integer({ minimum: 1, maximum: 100 }),
  holdSec: Type.Optional(Type.Integer({ minimum: 0, maximum: 86_400 })),
  enabled: Type.Optional(Type.Boolean()),
});
export const linkageInput = schemaCheck(LINKAGE_INPUT);

/**
 * An item of a feed's batch: checked on its own (positionItem, alarmItem), so a bad one is refused by
 * its index and the rest are taken. The batch's check lets any item through (Unknown); the item's
 * schema is there for the API's and the protocol's descriptions.
 */
const checkedOneByOne = (item: TSchema, what: string) => Type.Unknown({ anyOf: [item], description: `a ${what}, checked on its own: a bad one is refused by its index, the others are taken` });

const POSITION = strict({
  vehicleId: Type.Optional(ID),
  plate: Type.Optional(Type.String({ minLength: 1, maxLength: 16 })),
  lat: LAT,
  lon: LON,
  speed: Type.Number({ minimum: 0, maximum: 400 }),
  heading: Type.Number({ minimum: 0, maximum: 360 }),
  at: TIME,
});
/** A feed's batch (REST body and WebSocket payload); each item is checked on its own, and refused by index. */
export const POSITIONS_REPORT = strict({ positions: Type.Array(checkedOneByOne(POSITION, 'position'), { minItems: 1, maxItems: 5000 }) });
export const positionsReport = schemaCheck(POSITIONS_REPORT);
export const positionItem = schemaCheck(POSITION);

const ALARM_REPORT = strict({
  vehicleId: Type.Optional(ID),
  plate: Type.Optional(Type.String({ minLength: 1, maxLength: 16 })),
  type: literals(ALARM_TYPES.filter((t) => t !== 'geofence-enter' && t !== 'geofence-leave')),
  severity: Type.Optional(literals(SEVERITIES)),
  /** 'raised' (the default) or 'cleared' when the terminal reports the condition over. */
  state: Type.Optional(literals(['raised', 'cleared'] as const)),
  at: TIME,
  lat: Type.Optional(LAT),
  lon: Type.Optional(LON),
  detail: Type.Optional(Type.String({ maxLength: 200 })),
});
export const ALARMS_REPORT = strict({ alarms: Type.Array(checkedOneByOne(ALARM_REPORT, 'alarm'), { minItems: 1, maxItems: 1000 }) });
export const alarmsReport = schemaCheck(ALARMS_REPORT);
export const alarmItem = schemaCheck(ALARM_REPORT);
export type AlarmReportItem = Static<typeof ALARM_REPORT>;
export type PositionReportItem = Static<typeof POSITION>;

/** Acknowledging or closing an alarm; over REST the alarm's id is in the path. */
export const ALARM_ACTION = strict({ alarmId: Type.Optional(ID), note: Type.Optional(Type.String({ maxLength: 500 })) });
export const alarmAction = schemaCheck(ALARM_ACTION);

export const POSITION_SUBSCRIPTION = strict({
    categories: Type.Optional(Type.Array(literals(VEHICLE_CATEGORIES), { uniqueItems: true, minItems: 1 })),
    bbox: Type.Optional(Type.Tuple([LON, LAT, LON, LAT])),
    departmentId: Type.Optional(ID),
    intervalMs: Type.Optional(Type.Integer({ minimum: 0, maximum: 600_000 })),
});
export const positionSubscription = schemaCheck(POSITION_SUBSCRIPTION);
export type PositionFilter = ReturnType<typeof positionSubscription.parse>;

export const ALARM_SUBSCRIPTION = strict({ minSeverity: Type.Optional(literals(SEVERITIES)) });
export const alarmSubscription = schemaCheck(ALARM_SUBSCRIPTION);
export const EMPTY_PAYLOAD = strict({});
export const emptyPayload = schemaCheck(EMPTY_PAYLOAD);

/** Milliseconds from a TIME value. */
export function timeOf(v: number | string): number {
  return typeof v === 'number' ? v : Date.parse(v);
}

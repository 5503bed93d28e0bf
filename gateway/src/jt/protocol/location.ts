/**
 * 0x0200 position reports and 0x0704 batches (jt808.md §3.6, jt1078.md §5–6): the 28-byte basic block,
 * then TLV extra items walked by their own length. Vendors reuse standard ids for private data
 * (jt808.md P5), so an item whose length does not fit what we read is kept raw in `unknown`, never thrown on.
 */
import { readBcdTime, writeBcdTime } from './bcd.js';
import { JtParseError } from './errors.js';
import { decodeGbk, encodeGbk } from './messages.js';

export interface ActiveSafetyIdentifier {
  /** Jiangsu (T/JSATL 12-2017, 16 bytes) or Guangdong (T/GDRTA 002-2020, 40 bytes). */
  form: 'su' | 'yue';
  terminalId: string;
  time: number;
  sequence: number;
  attachments: number;
}

export interface ActiveSafetyAlarm {
  alarmId: number;
  /** 0 n/a, 1 start, 2 end. */
  flag: number;
  type: number;
  /** 1 first level, 2 second level. */
  level: number;
  speedKmh: number;
  altitude: number;
  lat: number;
  lon: number;
  time: number;
  vehicleStatus: number;
  identifier: ActiveSafetyIdentifier;
  /** ADAS: speed of the vehicle ahead (types 1/2). */
  frontSpeedKmh?: number;
  /** ADAS: distance to what is ahead, in 100 ms (types 1/2/4). */
  distance?: number;
  /** ADAS: 1 left, 2 right (type 2). */
  departure?: number;
  /** ADAS: 1 speed, 2 height, 3 weight limit (Yue: 4 no entry, 5 no parking). */
  signType?: number;
  signValue?: number;
  /** DSM: fatigue level (type 1). */
  fatigueLevel?: number;
}

/** What 0x66/0x67 carry besides their alarm id, flag and type: present when decoded, optional when encoding. */
export interface ActiveSafetyContext {
  speedKmh?: number;
  altitude?: number;
  lat?: number;
  lon?: number;
  time?: number;
  vehicleStatus?: number;
  identifier?: ActiveSafetyIdentifier;
}

export interface BsdAlarm extends ActiveSafetyContext {
  alarmId: number;
  flag: number;
  /** 1 rear approach, 2 left rear, 3 right rear. */
  type: number;
}

export interface TpmsTyre {
  position: number;
  /** Bits: 0 periodic, 1 high pressure, 2 low pressure, 3 high temperature, 4 sensor fault, 5 imbalance, 6 slow leak, 7 low battery. */
  types: number;
  pressureKpa: number;
  temperatureC: number;
  batteryPct?: number;
}

export interface TpmsAlarm extends ActiveSafetyContext {
  alarmId: number;
  flag: number;
  tyres: TpmsTyre[];
}

export interface LocationExtras {
  /** 0x01, km. */
  mileageKm?: number;
  /** 0x02, L. */
  fuelL?: number;
  /** 0x03, tachograph speed. */
  recorderSpeedKmh?: number;
  /** 0x04: the alarm event that wants a manual confirmation. */
  manualAlarmId?: number;
  /** 0x14 bits: 0 signal lost, 1 occluded, 2 storage fault, 3 other device fault, 4 overcrowded, 5 abnormal driving, 6 recording threshold. */
  videoAlarm?: number;
  /** 0x15: bit i = logical channel i+1 lost its video. */
  videoLost?: number;
  /** 0x16: bit i = logical channel i+1 occluded. */
  videoOccluded?: number;
  /** 0x17: bits 0–11 main storage units, 12–15 disaster-backup units. */
  storageFault?: number;
  /** 0x18: type bits (0 fatigue, 1 phone call, 2 smoking) and, when the item has its third byte, the fatigue level. */
  abnormalDriving?: { types: number; fatigueLevel: number | null };
  /** 0x30: wireless signal strength. */
  signal?: number;
  /** 0x31: GNSS satellites. */
  satellites?: number;
  /** 0x25: extended vehicle signals (lamps, brake, reverse...). */
  vehicleSignals?: number;
  /** 0x2A: IO status (bit 0 deep sleep, 1 sleep). */
  ioStatus?: number;
  /** 0x2B: AD0 in bits 0–15, AD1 in 16–31. */
  analog?: number;
  /** 0x64. */
  adas?: ActiveSafetyAlarm;
  /** 0x65. */
  dsm?: ActiveSafetyAlarm;
  /** 0x67. */
  bsd?: BsdAlarm;
  /** 0x66. */
  tpms?: TpmsAlarm;
  /** Ids we do not read, and known ids whose length did not fit, raw. */
  unknown: { id: number; value: Buffer }[];
}

export interface Location {
  /** DWORD alarm bits (jt808.md §3.6.1). */
  alarm: number;
  /** DWORD status bits (§3.6.2). */
  status: number;
  /** Degrees, negative when status bit 2 (south). */
  lat: number;
  /** Degrees, negative when status bit 3 (west). */
  lon: number;
  altitude: number;
  speedKmh: number;
  heading: number;
  /** ms since the epoch, from BCD GMT+8; 0 when the terminal sent zeros. */
  time: number;
  extras: LocationExtras;
}

const SOUTH = 1 << 2;
const WEST = 1 << 3;
const BASIC_BYTES = 28;

const IDENTIFIER_BYTES = { su: 16, yue: 40 } as const;
const TERMINAL_ID_BYTES = { su: 7, yue: 30 } as const;
/** ADAS/DSM: 31 bytes, then the identifier. */
const SAFETY_HEAD = 31;
/** BSD and TPMS: alarm id, flag, (BSD: type,) speed, altitude, lat, lon, time, status, then the identifier. */
const TPMS_HEAD = 24;
const BSD_HEAD = 25;
const TYRE_BYTES = 9;

function readIdentifier(b: Buffer, at: number, form: 'su' | 'yue'): ActiveSafetyIdentifier {
  const idBytes = TERMINAL_ID_BYTES[form];
  return {
    form,
    terminalId: decodeGbk(b, at, at + idBytes),
    time: readBcdTime(b, at + idBytes, 'alarm identifier time'),
    sequence: b[at + idBytes + 6]!,
    attachments: b[at + idBytes + 7]!,
  };
}

function writeIdentifier(b: Buffer, at: number, id: ActiveSafetyIdentifier | undefined, form: 'su' | 'yue'): void {
  b.fill(0, at, at + IDENTIFIER_BYTES[form]);
  if (!id) return;
  const idBytes = TERMINAL_ID_BYTES[form];
  const terminal = encodeGbk(id.terminalId);
  if (terminal.length > idBytes) throw new Error(`alarm identifier terminal ID "${id.terminalId}" is over ${idBytes} bytes`);
  terminal.copy(b, at);
  writeBcdTime(b, at + idBytes, id.time);
  b[at + idBytes + 6] = id.sequence;
  b[at + idBytes + 7] = id.attachments;
}

/** The form an active-safety item's length says, given the bytes before its identifier and a per-entry tail. */
function formOf(len: number, head: number, entry = 0): 'su' | 'yue' | null {
  for (const form of ['su', 'yue'] as const) {
    const rest = len - head - IDENTIFIER_BYTES[form];
    if (rest === 0 && entry === 0) return form;
    if (entry > 0 && rest >= 1 && (rest - 1) % entry === 0) return form;
  }
  return null;
}

function readSafety(v: Buffer, dsm: boolean): ActiveSafetyAlarm | null {
  const form = formOf(v.length, SAFETY_HEAD);
  if (!form) return null;
  const a: ActiveSafetyAlarm = {
    alarmId: v.readUInt32BE(0),
    flag: v[4]!,
    type: v[5]!,
    level: v[6]!,
    speedKmh: v[12]!,
    altitude: v.readUInt16BE(13),
    lat: v.readUInt32BE(15) / 1e6,
    lon: v.readUInt32BE(19) / 1e6,
    time: readBcdTime(v, 23, dsm ? '0x65 time' : '0x64 time'),
    vehicleStatus: v.readUInt16BE(29),
    identifier: readIdentifier(v, SAFETY_HEAD, form),
  };
  if (dsm) a.fatigueLevel = v[7]!;
  else Object.assign(a, { frontSpeedKmh: v[7]!, distance: v[8]!, departure: v[9]!, signType: v[10]!, signValue: v[11]! });
  return a;
}

function writeSafety(a: ActiveSafetyAlarm, dsm: boolean, form: 'su' | 'yue'): Buffer {
  const v = Buffer.alloc(SAFETY_HEAD + IDENTIFIER_BYTES[form]);
  v.writeUInt32BE(a.alarmId >>> 0, 0);
  v[4] = a.flag;
  v[5] = a.type;
  v[6] = a.level;
  if (dsm) v[7] = a.fatigueLevel ?? 0;
  else {
    v[7] = a.frontSpeedKmh ?? 0;
    v[8] = a.distance ?? 0;
    v[9] = a.departure ?? 0;
    v[10] = a.signType ?? 0;
    v[11] = a.signValue ?? 0;
  }
  v[12] = a.speedKmh;
  v.writeUInt16BE(a.altitude, 13);
  v.writeUInt32BE(Math.round(a.lat * 1e6) >>> 0, 15);
  v.writeUInt32BE(Math.round(a.lon * 1e6) >>> 0, 19);
  writeBcdTime(v, 23, a.time);
  v.writeUInt16BE(a.vehicleStatus, 29);
  writeIdentifier(v, SAFETY_HEAD, a.identifier, form);
  return v;
}

/** speed, altitude, lat, lon, time, status from `at` (BSD and TPMS share them). */
function readContext(v: Buffer, at: number, form: 'su' | 'yue', what: string): Required<ActiveSafetyContext> {
  return {
    speedKmh: v[at]!,
    altitude: v.readUInt16BE(at + 1),
    lat: v.readUInt32BE(at + 3) / 1e6,
    lon: v.readUInt32BE(at + 7) / 1e6,
    time: readBcdTime(v, at + 11, `${what} time`),
    vehicleStatus: v.readUInt16BE(at + 17),
    identifier: readIdentifier(v, at + 19, form),
  };
}

function writeContext(v: Buffer, at: number, c: ActiveSafetyContext, form: 'su' | 'yue'): void {
  v[at] = c.speedKmh ?? 0;
  v.writeUInt16BE(c.altitude ?? 0, at + 1);
  v.writeUInt32BE(Math.round((c.lat ?? 0) * 1e6) >>> 0, at + 3);
  v.writeUInt32BE(Math.round((c.lon ?? 0) * 1e6) >>> 0, at + 7);
  writeBcdTime(v, at + 11, c.time ?? 0);
  v.writeUInt16BE(c.vehicleStatus ?? 0, at + 17);
  writeIdentifier(v, at + 19, c.identifier, form);
}

function readTpms(v: Buffer): TpmsAlarm | null {
  const form = formOf(v.length, TPMS_HEAD, TYRE_BYTES);
  if (!form) return null;
  const countAt = TPMS_HEAD + IDENTIFIER_BYTES[form];
  const count = v[countAt]!;
  if (countAt + 1 + count * TYRE_BYTES !== v.length) return null;
  const tyres: TpmsTyre[] = [];
  for (let i = 0, at = countAt + 1; i < count; i++, at += TYRE_BYTES) {
    tyres.push({ position: v[at]!, types: v.readUInt16BE(at + 1), pressureKpa: v.readUInt16BE(at + 3), temperatureC: v.readUInt16BE(at + 5), batteryPct: v.readUInt16BE(at + 7) });
  }
  return { alarmId: v.readUInt32BE(0), flag: v[4]!, ...readContext(v, 5, form, '0x66'), tyres };
}

function writeTpms(t: TpmsAlarm, form: 'su' | 'yue'): Buffer {
  const countAt = TPMS_HEAD + IDENTIFIER_BYTES[form];
  const v = Buffer.alloc(countAt + 1 + t.tyres.length * TYRE_BYTES);
  v.writeUInt32BE(t.alarmId >>> 0, 0);
  v[4] = t.flag;
  writeContext(v, 5, t, form);
  v[countAt] = t.tyres.length;
  t.tyres.forEach((tyre, i) => {
    const at = countAt + 1 + i * TYRE_BYTES;
    v[at] = tyre.position;
    v.writeUInt16BE(tyre.types, at + 1);
    v.writeUInt16BE(tyre.pressureKpa, at + 3);
    v.writeUInt16BE(tyre.temperatureC, at + 5);
    v.writeUInt16BE(tyre.batteryPct ?? 0, at + 7);
  });
  return v;
}

function readBsd(v: Buffer): BsdAlarm | null {
  const form = formOf(v.length, BSD_HEAD);
  if (!form) return null;
  return { alarmId: v.readUInt32BE(0), flag: v[4]!, type: v[5]!, ...readContext(v, 6, form, '0x67') };
}

function writeBsd(b: BsdAlarm, form: 'su' | 'yue'): Buffer {
  const v = Buffer.alloc(BSD_HEAD + IDENTIFIER_BYTES[form]);
  v.writeUInt32BE(b.alarmId >>> 0, 0);
  v[4] = b.flag;
  v[5] = b.type;
  writeContext(v, 6, b, form);
  return v;
}

/** Reads one known item into `x`; false when its length is not one we read (it is then kept raw). */
function readItem(x: LocationExtras, id: number, v: Buffer): boolean {
  const len = v.length;
  switch (id) {
    case 0x01:
      return len === 4 && ((x.mileageKm = v.readUInt32BE(0) / 10), true);
    case 0x02:
      return len === 2 && ((x.fuelL = v.readUInt16BE(0) / 10), true);
    case 0x03:
      return len === 2 && ((x.recorderSpeedKmh = v.readUInt16BE(0) / 10), true);
    case 0x04:
      return len === 2 && ((x.manualAlarmId = v.readUInt16BE(0)), true);
    case 0x14:
      return len === 4 && ((x.videoAlarm = v.readUInt32BE(0)), true);
    case 0x15:
      return len === 4 && ((x.videoLost = v.readUInt32BE(0)), true);
    case 0x16:
      return len === 4 && ((x.videoOccluded = v.readUInt32BE(0)), true);
    case 0x17:
      return len === 2 && ((x.storageFault = v.readUInt16BE(0)), true);
    case 0x18:
      // The 1078 table lists 3 bytes, its length column 2: both are seen (jt1078.md §5).
      return (len === 2 || len === 3) && ((x.abnormalDriving = { types: v.readUInt16BE(0), fatigueLevel: len === 3 ? v[2]! : null }), true);
    case 0x25:
      return len === 4 && ((x.vehicleSignals = v.readUInt32BE(0)), true);
    case 0x2a:
      return len === 2 && ((x.ioStatus = v.readUInt16BE(0)), true);
    case 0x2b:
      return len === 4 && ((x.analog = v.readUInt32BE(0)), true);
    case 0x30:
      return len === 1 && ((x.signal = v[0]!), true);
    case 0x31:
      return len === 1 && ((x.satellites = v[0]!), true);
    case 0x64:
    case 0x65: {
      const a = readSafety(v, id === 0x65);
      if (!a) return false;
      if (id === 0x64) x.adas = a;
      else x.dsm = a;
      return true;
    }
    case 0x66: {
      const t = readTpms(v);
      return t !== null && ((x.tpms = t), true);
    }
    case 0x67: {
      const b = readBsd(v);
      return b !== null && ((x.bsd = b), true);
    }
    default:
      return false;
  }
}

/** The extra items from `at` to the end; never throws (an item that does not read is kept raw). */
export function decodeExtras(body: Buffer, at = BASIC_BYTES): LocationExtras {
  const x: LocationExtras = { unknown: [] };
  while (at < body.length) {
    if (at + 2 > body.length) {
      x.unknown.push({ id: body[at]!, value: body.subarray(at + 1) });
      break;
    }
    const id = body[at]!;
    const len = body[at + 1]!;
    const end = Math.min(body.length, at + 2 + len);
    const value = body.subarray(at + 2, end);
    let read = false;
    if (end === at + 2 + len) {
      try {
        read = readItem(x, id, value);
      } catch (err) {
        if (!(err instanceof JtParseError)) throw err;
      }
    }
    if (!read) x.unknown.push({ id, value });
    at = end;
  }
  return x;
}

/** 0x0200. Throws JtParseError('truncated') under 28 bytes, 'value' on a time that is not one; extra items never throw. */
export function decodeLocation(body: Buffer): Location {
  if (body.length < BASIC_BYTES) throw new JtParseError('truncated', `0x0200 of ${body.length} bytes is shorter than its ${BASIC_BYTES}-byte basic block`);
  const status = body.readUInt32BE(4);
  const lat = body.readUInt32BE(8) / 1e6;
  const lon = body.readUInt32BE(12) / 1e6;
  return {
    alarm: body.readUInt32BE(0),
    status,
    lat: status & SOUTH ? -lat : lat,
    lon: status & WEST ? -lon : lon,
    altitude: body.readUInt16BE(16),
    speedKmh: body.readUInt16BE(18) / 10,
    heading: body.readUInt16BE(20),
    time: readBcdTime(body, 22, '0x0200 time'),
    extras: decodeExtras(body),
  };
}

function tlv(id: number, value: Buffer): Buffer {
  if (value.length > 255) throw new Error(`extra item 0x${id.toString(16)} of ${value.length} bytes is over 255`);
  return Buffer.concat([Buffer.from([id, value.length]), value]);
}

const u8 = (n: number) => Buffer.from([n]);
function u16(n: number): Buffer {
  const b = Buffer.allocUnsafe(2);
  b.writeUInt16BE(Math.round(n) & 0xffff);
  return b;
}
function u32(n: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(Math.round(n) >>> 0);
  return b;
}

/**
 * 0x0200 body. Items go in id order. `form` chooses the alarm-identifier layout of the active-safety
 * items (0x64–0x67); without it, an item's own identifier.form decides, and Su when there is none.
 */
export function encodeLocation(l: Omit<Location, 'extras'> & { extras?: Partial<LocationExtras> }, form?: 'su' | 'yue'): Buffer {
  const basic = Buffer.allocUnsafe(BASIC_BYTES);
  const status = (l.status | (l.lat < 0 ? SOUTH : 0) | (l.lon < 0 ? WEST : 0)) >>> 0;
  basic.writeUInt32BE(l.alarm >>> 0, 0);
  basic.writeUInt32BE(status, 4);
  basic.writeUInt32BE(Math.round(Math.abs(l.lat) * 1e6), 8);
  basic.writeUInt32BE(Math.round(Math.abs(l.lon) * 1e6), 12);
  basic.writeUInt16BE(l.altitude & 0xffff, 16);
  basic.writeUInt16BE(Math.round(l.speedKmh * 10) & 0xffff, 18);
  basic.writeUInt16BE(l.heading & 0xffff, 20);
  writeBcdTime(basic, 22, l.time);
  const x = l.extras ?? {};
  const formFor = (id?: ActiveSafetyIdentifier) => form ?? id?.form ?? 'su';
  const items: [number, Buffer][] = [];
  if (x.mileageKm !== undefined) items.push([0x01, u32(x.mileageKm * 10)]);
  if (x.fuelL !== undefined) items.push([0x02, u16(x.fuelL * 10)]);
  if (x.recorderSpeedKmh !== undefined) items.push([0x03, u16(x.recorderSpeedKmh * 10)]);
  if (x.manualAlarmId !== undefined) items.push([0x04, u16(x.manualAlarmId)]);
  if (x.videoAlarm !== undefined) items.push([0x14, u32(x.videoAlarm)]);
  if (x.videoLost !== undefined) items.push([0x15, u32(x.videoLost)]);
  if (x.videoOccluded !== undefined) items.push([0x16, u32(x.videoOccluded)]);
  if (x.storageFault !== undefined) items.push([0x17, u16(x.storageFault)]);
  if (x.abnormalDriving !== undefined) {
    const { types, fatigueLevel } = x.abnormalDriving;
    items.push([0x18, fatigueLevel === null ? u16(types) : Buffer.concat([u16(types), u8(fatigueLevel)])]);
  }
  if (x.vehicleSignals !== undefined) items.push([0x25, u32(x.vehicleSignals)]);
  if (x.ioStatus !== undefined) items.push([0x2a, u16(x.ioStatus)]);
  if (x.analog !== undefined) items.push([0x2b, u32(x.analog)]);
  if (x.signal !== undefined) items.push([0x30, u8(x.signal)]);
  if (x.satellites !== undefined) items.push([0x31, u8(x.satellites)]);
  if (x.adas !== undefined) items.push([0x64, writeSafety(x.adas, false, formFor(x.adas.identifier))]);
  if (x.dsm !== undefined) items.push([0x65, writeSafety(x.dsm, true, formFor(x.dsm.identifier))]);
  if (x.tpms !== undefined) items.push([0x66, writeTpms(x.tpms, formFor(x.tpms.identifier))]);
  if (x.bsd !== undefined) items.push([0x67, writeBsd(x.bsd, formFor(x.bsd.identifier))]);
  for (const u of x.unknown ?? []) items.push([u.id, u.value]);
  items.sort((a, b) => a[0] - b[0]);
  return Buffer.concat([basic, ...items.map(([id, v]) => tlv(id, v))]);
}

/** 0x0704: count WORD · type BYTE (0 normal, 1 blind-area backfill) · per item length WORD + a 0x0200 body. */
export function decodeLocationBatch(body: Buffer): { blindArea: boolean; items: Location[] } {
  if (body.length < 3) throw new JtParseError('truncated', `0x0704 of ${body.length} bytes has no count and type`);
  const count = body.readUInt16BE(0);
  const items: Location[] = [];
  let at = 3;
  for (let i = 0; i < count; i++) {
    if (at + 2 > body.length) throw new JtParseError('length', `0x0704 counts ${count} items, the body ends after ${i}`);
    const len = body.readUInt16BE(at);
    if (at + 2 + len > body.length) throw new JtParseError('length', `0x0704 item ${i + 1} says ${len} bytes, ${body.length - at - 2} are left`);
    items.push(decodeLocation(body.subarray(at + 2, at + 2 + len)));
    at += 2 + len;
  }
  return { blindArea: body[2] === 1, items };
}

export function encodeLocationBatch(b: { blindArea: boolean; items: Buffer[] }): Buffer {
  const head = Buffer.allocUnsafe(3);
  head.writeUInt16BE(b.items.length, 0);
  head[2] = b.blindArea ? 1 : 0;
  return Buffer.concat([head, ...b.items.flatMap((item) => [u16(item.length), item])]);
}

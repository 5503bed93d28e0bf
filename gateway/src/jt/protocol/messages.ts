/**
 * JT/T 808 and 1078 message bodies (references jt808.md §3, jt1078.md §2). Strings are GBK; fixed-width
 * ones are 0x00-padded on either side depending on the edition, so both ends are stripped on decoding.
 * Decoders throw only JtParseError.
 */
import iconv from 'iconv-lite';
import { readBcdTime, writeBcdTime } from './bcd.js';
import { JtParseError } from './errors.js';
import type { JtEdition } from './frame.js';

export const JT_MSG = {
  TERMINAL_RESPONSE: 0x0001,
  HEARTBEAT: 0x0002,
  UNREGISTER: 0x0003,
  QUERY_TIME: 0x0004,
  REGISTER: 0x0100,
  AUTH: 0x0102,
  LOCATION: 0x0200,
  LOCATION_BATCH: 0x0704,
  PLATFORM_RESPONSE: 0x8001,
  RESEND_REQUEST: 0x8003,
  QUERY_TIME_REPLY: 0x8004,
  REGISTER_REPLY: 0x8100,
  LIVE_REQUEST: 0x9101,
  LIVE_CONTROL: 0x9102,
  LIVE_STATUS: 0x9105,
} as const;

/** 0x0001/0x8001 results (0x8001's 4 confirms an alarm, clearing the terminal's "ack" bits). */
export const JT_RESULT = { OK: 0, FAILURE: 1, MESSAGE_ERROR: 2, NOT_SUPPORTED: 3, ALARM_CONFIRMED: 4 } as const;

/** 0x8100 results. */
export const JT_REGISTER_RESULT = { OK: 0, VEHICLE_REGISTERED: 1, VEHICLE_UNKNOWN: 2, TERMINAL_REGISTERED: 3, TERMINAL_UNKNOWN: 4 } as const;

function need(body: Buffer, bytes: number, what: string): void {
  if (body.length < bytes) throw new JtParseError('truncated', `${what}: ${body.length} bytes, needs ${bytes}`);
}

/** GBK bytes with the 0x00 padding of either side stripped. */
export function decodeGbk(buf: Buffer, start = 0, end = buf.length): string {
  while (start < end && buf[start] === 0) start++;
  while (end > start && buf[end - 1] === 0) end--;
  return start === end ? '' : iconv.decode(buf.subarray(start, end), 'gbk');
}

export function encodeGbk(s: string): Buffer {
  return iconv.encode(s, 'gbk');
}

/** `s` in GBK, right-padded with 0x00 to `width`; throws if it does not fit (our own input, never cut silently). */
function fixedGbk(s: string, width: number, field: string): Buffer {
  const b = encodeGbk(s);
  if (b.length > width) throw new Error(`${field} "${s}" takes ${b.length} bytes, more than its ${width}`);
  const out = Buffer.alloc(width);
  b.copy(out);
  return out;
}

export interface GeneralResponse {
  /** Serial of the message answered. */
  serial: number;
  /** Id of the message answered. */
  msgId: number;
  result: number;
}

/** 0x0001 and 0x8001 bodies. */
export function decodeGeneralResponse(body: Buffer): GeneralResponse {
  need(body, 5, 'general response');
  return { serial: body.readUInt16BE(0), msgId: body.readUInt16BE(2), result: body[4]! };
}

export function encodeGeneralResponse(r: GeneralResponse): Buffer {
  const b = Buffer.allocUnsafe(5);
  b.writeUInt16BE(r.serial & 0xffff, 0);
  b.writeUInt16BE(r.msgId & 0xffff, 2);
  b[4] = r.result;
  return b;
}

export interface Registration {
  province: number;
  city: number;
  manufacturer: string;
  model: string;
  terminalId: string;
  plateColor: number;
  /** GBK decoded; the VIN (2013) or frame number (2019) when there is no plate. */
  plate: string;
  edition: '2011' | '2013' | '2019';
}

/** Field widths of 0x0100 by edition: manufacturer, model, terminal ID (jt808.md §3.3). */
const REGISTRATION_WIDTHS = { '2011': [5, 8, 7], '2013': [5, 20, 7], '2019': [11, 30, 30] } as const;

/**
 * 0x0100. A 2019 header means the 2019 body; otherwise 2011 and 2013 share the header and differ only
 * in the model's width, told apart by the body's length (2013's fixed part is 37 bytes, 2011's 25).
 */
export function decodeRegistration(body: Buffer, edition: JtEdition): Registration {
  const bodyEdition: Registration['edition'] = edition === '2019' ? '2019' : body.length >= 37 ? '2013' : '2011';
  const [maker, model, id] = REGISTRATION_WIDTHS[bodyEdition];
  const fixed = 4 + maker + model + id + 1;
  need(body, fixed, `0x0100 (${bodyEdition})`);
  let at = 4;
  const manufacturer = decodeGbk(body, at, (at += maker));
  const modelName = decodeGbk(body, at, (at += model));
  const terminalId = decodeGbk(body, at, (at += id));
  return {
    province: body.readUInt16BE(0),
    city: body.readUInt16BE(2),
    manufacturer,
    model: modelName,
    terminalId,
    plateColor: body[at]!,
    plate: decodeGbk(body, at + 1),
    edition: bodyEdition,
  };
}

export function encodeRegistration(r: Omit<Registration, 'edition'>, edition: '2011' | '2013' | '2019'): Buffer {
  const [maker, model, id] = REGISTRATION_WIDTHS[edition];
  const head = Buffer.allocUnsafe(4);
  head.writeUInt16BE(r.province, 0);
  head.writeUInt16BE(r.city, 2);
  return Buffer.concat([
    head,
    fixedGbk(r.manufacturer, maker, 'manufacturer'),
    fixedGbk(r.model, model, 'model'),
    fixedGbk(r.terminalId, id, 'terminalId'),
    Buffer.from([r.plateColor]),
    encodeGbk(r.plate),
  ]);
}

/** 0x8100: the auth code follows only on success (result 0), to the end of the body. */
export function encodeRegistrationReply(r: { serial: number; result: 0 | 1 | 2 | 3 | 4; authCode?: string }): Buffer {
  const head = Buffer.allocUnsafe(3);
  head.writeUInt16BE(r.serial & 0xffff, 0);
  head[2] = r.result;
  return r.result === 0 && r.authCode !== undefined ? Buffer.concat([head, encodeGbk(r.authCode)]) : head;
}

export function decodeRegistrationReply(body: Buffer): { serial: number; result: number; authCode: string | null } {
  need(body, 3, '0x8100');
  return { serial: body.readUInt16BE(0), result: body[2]!, authCode: body.length > 3 ? decodeGbk(body, 3) : null };
}

export interface Authentication {
  authCode: string;
  /** 2019 only. */
  imei: string | null;
  /** 2019 only. */
  softwareVersion: string | null;
}

/**
 * 0x0102. 2013: the whole body is the code. 2019: len BYTE · code · IMEI BYTE[15] · software version
 * BYTE[20] (real offsets 0, 1, 1+len, 16+len); a terminal that stops after the code (vendors differ,
 * jt808.md P4) gets nulls for the rest.
 */
export function decodeAuthentication(body: Buffer, edition: JtEdition): Authentication {
  if (edition === '2013') return { authCode: decodeGbk(body), imei: null, softwareVersion: null };
  need(body, 1, '0x0102 (2019)');
  const len = body[0]!;
  need(body, 1 + len, '0x0102 (2019) auth code');
  const imeiEnd = Math.min(body.length, 16 + len);
  return {
    authCode: decodeGbk(body, 1, 1 + len),
    imei: body.length > 1 + len ? decodeGbk(body, 1 + len, imeiEnd) : null,
    softwareVersion: body.length > 16 + len ? decodeGbk(body, 16 + len, Math.min(body.length, 36 + len)) : null,
  };
}

export function encodeAuthentication(a: Authentication, edition: JtEdition): Buffer {
  const code = encodeGbk(a.authCode);
  if (edition === '2013') return code;
  if (code.length > 255) throw new Error(`auth code of ${code.length} bytes does not fit 2019's length byte`);
  return Buffer.concat([Buffer.from([code.length]), code, fixedGbk(a.imei ?? '', 15, 'imei'), fixedGbk(a.softwareVersion ?? '', 20, 'softwareVersion')]);
}

export interface LiveRequest {
  /** Where the terminal sends media (an IP address; a host name is untested with devices). */
  ip: string;
  tcpPort: number;
  udpPort: number;
  channel: number;
  /** 0 audio+video, 1 video, 2 two-way talk, 3 listen, 4 broadcast, 5 passthrough. */
  dataType: number;
  /** 0 main, 1 sub. */
  stream: 0 | 1;
}

/** 0x9101 (jt1078.md §2.1). */
export function encodeLiveRequest(r: LiveRequest): Buffer {
  const ip = Buffer.from(r.ip, 'latin1');
  if (ip.length > 255) throw new Error(`media address of ${ip.length} bytes does not fit its length byte`);
  const b = Buffer.allocUnsafe(1 + ip.length + 7);
  b[0] = ip.length;
  ip.copy(b, 1);
  let at = 1 + ip.length;
  b.writeUInt16BE(r.tcpPort, at);
  b.writeUInt16BE(r.udpPort, at + 2);
  at += 4;
  b[at] = r.channel;
  b[at + 1] = r.dataType;
  b[at + 2] = r.stream;
  return b;
}

export function decodeLiveRequest(body: Buffer): LiveRequest {
  need(body, 1, '0x9101');
  const n = body[0]!;
  need(body, 1 + n + 7, '0x9101');
  const at = 1 + n;
  const stream = body[at + 6]!;
  if (stream > 1) throw new JtParseError('value', `0x9101 stream ${stream} is neither 0 (main) nor 1 (sub)`);
  return {
    ip: body.toString('latin1', 1, at),
    tcpPort: body.readUInt16BE(at),
    udpPort: body.readUInt16BE(at + 2),
    channel: body[at + 4]!,
    dataType: body[at + 5]!,
    stream: stream as 0 | 1,
  };
}

export interface LiveControl {
  channel: number;
  /** 0 close, 1 switch stream, 2 pause, 3 resume, 4 close two-way talk. */
  command: 0 | 1 | 2 | 3 | 4;
  /** With command 0: 0 audio and video, 1 audio only, 2 video only. */
  closeType: 0 | 1 | 2;
  /** With command 1: 0 main, 1 sub. */
  stream: 0 | 1;
}

/** 0x9102 (jt1078.md §2.2). */
export function encodeLiveControl(c: LiveControl): Buffer {
  return Buffer.from([c.channel, c.command, c.closeType, c.stream]);
}

export function decodeLiveControl(body: Buffer): LiveControl {
  need(body, 4, '0x9102');
  const [channel, command, closeType, stream] = [body[0]!, body[1]!, body[2]!, body[3]!];
  if (command > 4) throw new JtParseError('value', `0x9102 command ${command} is not 0..4`);
  if (closeType > 2) throw new JtParseError('value', `0x9102 close type ${closeType} is not 0..2`);
  if (stream > 1) throw new JtParseError('value', `0x9102 stream ${stream} is neither 0 (main) nor 1 (sub)`);
  return { channel, command: command as LiveControl['command'], closeType: closeType as LiveControl['closeType'], stream: stream as 0 | 1 };
}

/** 0x9105: channel · loss rate in percent (integer part). */
export function encodeLiveStatus(s: { channel: number; lossPct: number }): Buffer {
  return Buffer.from([s.channel, Math.max(0, Math.min(100, Math.floor(s.lossPct)))]);
}

export function decodeLiveStatus(body: Buffer): { channel: number; lossPct: number } {
  need(body, 2, '0x9105');
  return { channel: body[0]!, lossPct: body[1]! };
}

/** 0x8003: first serial · count (BYTE in 2013, WORD in 2019) · the missing pieces' IDs (packet numbers). */
export function encodeResendRequest(r: { firstSerial: number; ids: number[] }, edition: JtEdition): Buffer {
  const countBytes = edition === '2019' ? 2 : 1;
  if (r.ids.length > (edition === '2019' ? 0xffff : 0xff)) throw new Error(`${r.ids.length} pieces do not fit 0x8003's count`);
  const b = Buffer.allocUnsafe(2 + countBytes + 2 * r.ids.length);
  b.writeUInt16BE(r.firstSerial & 0xffff, 0);
  if (countBytes === 2) b.writeUInt16BE(r.ids.length, 2);
  else b[2] = r.ids.length;
  r.ids.forEach((id, i) => b.writeUInt16BE(id, 2 + countBytes + 2 * i));
  return b;
}

export function decodeResendRequest(body: Buffer, edition: JtEdition): { firstSerial: number; ids: number[] } {
  const countBytes = edition === '2019' ? 2 : 1;
  need(body, 2 + countBytes, '0x8003');
  const count = countBytes === 2 ? body.readUInt16BE(2) : body[2]!;
  if (body.length !== 2 + countBytes + 2 * count) throw new JtParseError('length', `0x8003 counts ${count} pieces in ${body.length} bytes`);
  const ids: number[] = [];
  for (let i = 0; i < count; i++) ids.push(body.readUInt16BE(2 + countBytes + 2 * i));
  return { firstSerial: body.readUInt16BE(0), ids };
}

/** 0x8004: the server time as BCD[6] in UTC (808-2019; unlike every other time, not GMT+8). */
export function encodeQueryTimeReply(ms: number): Buffer {
  const b = Buffer.allocUnsafe(6);
  writeBcdTime(b, 0, ms, true);
  return b;
}

export function decodeQueryTimeReply(body: Buffer): number {
  // readBcdTime reads GMT+8; this one time is UTC.
  const gmt8 = readBcdTime(body, 0, '0x8004 time');
  return gmt8 === 0 ? 0 : gmt8 + 8 * 3600_000;
}

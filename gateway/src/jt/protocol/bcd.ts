/**
 * Packed BCD as JT/T 808 and 1078 carry it: two digits a byte, high nibble first. Times are
 * YYMMDDhhmmss in GMT+8 (808 §4.2), so a terminal in Beijing and the gateway agree on the instant.
 */
import { JtParseError } from './errors.js';

const GMT8_MS = 8 * 3600_000;

/** The digits of buf[start, start+len), or null when a nibble is over 9. */
export function readBcd(buf: Buffer, start: number, len: number): string | null {
  let s = '';
  for (let i = start; i < start + len; i++) {
    const b = buf[i]!;
    const hi = b >> 4;
    const lo = b & 0x0f;
    if (hi > 9 || lo > 9) return null;
    s += String.fromCharCode(48 + hi, 48 + lo);
  }
  return s;
}

/**
 * Writes `digits` as BCD[len] at `at`, left-padded with zeros. Throws on anything but digits or on too
 * many of them: an encoder's input is our own, and a silently cut phone number would reach another terminal.
 */
export function writeBcd(buf: Buffer, at: number, len: number, digits: string, field: string): void {
  if (!/^[0-9]*$/.test(digits)) throw new Error(`${field} must be decimal digits, got "${digits}"`);
  if (digits.length > len * 2) throw new Error(`${field} has ${digits.length} digits, more than the ${len * 2} of BCD[${len}]`);
  const padded = digits.padStart(len * 2, '0');
  for (let i = 0; i < len; i++) buf[at + i] = ((padded.charCodeAt(2 * i) - 48) << 4) | (padded.charCodeAt(2 * i + 1) - 48);
}

/** A BCD number with its leading zeros stripped ('0' when it is all zeros): the key 808 and 1078 share. */
export function stripLeadingZeros(digits: string): string {
  let i = 0;
  while (i < digits.length - 1 && digits.charCodeAt(i) === 48) i++;
  return digits.slice(i);
}

/**
 * BCD[6] YYMMDDhhmmss in GMT+8 → ms since the epoch. All zeros (a terminal without a fix yet) reads
 * as 0. Throws JtParseError('value') naming `field` on a nibble over 9 or a date that cannot be.
 */
export function readBcdTime(buf: Buffer, at: number, field: string): number {
  if (at + 6 > buf.length) throw new JtParseError('truncated', `${field}: BCD[6] time past the end of the body`);
  const d = readBcd(buf, at, 6);
  if (d === null) throw new JtParseError('value', `${field}: ${buf.subarray(at, at + 6).toString('hex')} is not BCD`);
  if (d === '000000000000') return 0;
  const year = 2000 + Number(d.slice(0, 2));
  const month = Number(d.slice(2, 4));
  const day = Number(d.slice(4, 6));
  const hour = Number(d.slice(6, 8));
  const minute = Number(d.slice(8, 10));
  const second = Number(d.slice(10, 12));
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 59) {
    throw new JtParseError('value', `${field}: ${d} is not a time`);
  }
  const utc = Date.UTC(year, month - 1, day, hour, minute, second);
  // Date.UTC rolls 31 February over into March: a day past its month's end is no time either.
  if (new Date(utc).getUTCDate() !== day) throw new JtParseError('value', `${field}: ${d} is not a time`);
  return utc - GMT8_MS;
}

/** ms since the epoch → BCD[6] in GMT+8 (seconds kept, ms dropped), or in UTC when `utc` (0x8004's reply). 0 writes all zeros. */
export function writeBcdTime(buf: Buffer, at: number, ms: number, utc = false): void {
  if (ms === 0) {
    buf.fill(0, at, at + 6);
    return;
  }
  const t = new Date(ms + (utc ? 0 : GMT8_MS));
  const year = t.getUTCFullYear();
  if (year < 2000 || year > 2099) throw new Error(`time ${new Date(ms).toISOString()} does not fit a BCD[6] year`);
  const parts = [year - 2000, t.getUTCMonth() + 1, t.getUTCDate(), t.getUTCHours(), t.getUTCMinutes(), t.getUTCSeconds()];
  for (let i = 0; i < 6; i++) buf[at + i] = (Math.floor(parts[i]! / 10) << 4) | parts[i]! % 10;
}

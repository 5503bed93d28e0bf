/**
 * JT/T 1078 media packets ("01cd", jt1078.md §3): the 2016 layout (SIM BCD[6]) and the "2019" one
 * (SIM BCD[10], every later field 4 bytes on), with a header whose length depends on the data type
 * (video 30/34, audio 26/30, passthrough 18/22). Pure codecs and a stream parser; no sockets.
 */
import { stripLeadingZeros, writeBcd } from '../protocol/bcd.js';

export type Jt1078Layout = '2016' | '2019';

export interface Jt1078Packet {
  layout: Jt1078Layout;
  /** M bit: the end of a frame (unreliable on some devices; the subpackage nibble is what counts). */
  marker: boolean;
  /** Payload type (jt1078.md §3.4): 98 H.264, 99 H.265, 6/7 G.711A/U, 8 G.726, 19 AAC... */
  pt: number;
  seq: number;
  /** The SIM as sent, leading zeros stripped. */
  sim: string;
  channel: number;
  /** 0 I, 1 P, 2 B, 3 audio, 4 passthrough. */
  dataType: number;
  /** 0 atomic, 1 first, 2 last, 3 middle. */
  subpackage: number;
  /** ms; null for passthrough, which has none. */
  timestamp: number | null;
  /** Video only. */
  lastIInterval: number | null;
  /** Video only. */
  lastFrameInterval: number | null;
  /** A view into the bytes pushed (no copy). */
  body: Buffer;
}

export const JT1078_MAGIC = 0x30316364;
const MAGIC_BYTES = Buffer.from([0x30, 0x31, 0x63, 0x64]);
/** V=2, P=0, X=0, CC=1: what every device sends (other values are taken too). */
const VPXCC = 0x81;
export const JT1078_DATA_TYPE = { I: 0, P: 1, B: 2, AUDIO: 3, PASSTHROUGH: 4 } as const;
export const JT1078_SUBPACKAGE = { ATOMIC: 0, FIRST: 1, LAST: 2, MIDDLE: 3 } as const;
export const JT1078_PT = { H264: 98, H265: 99, PASSTHROUGH: 91 } as const;
/** The standard's body cap; devices go over it (jt1078.md P4), so it only bounds what we send. */
export const JT1078_STANDARD_BODY = 950;

const SIM_BYTES: Record<Jt1078Layout, number> = { '2016': 6, '2019': 10 };
const LAYOUTS: readonly Jt1078Layout[] = ['2016', '2019'];

/** Header length (body length field included) for a data type, or -1 for a type that does not exist. */
export function jt1078HeaderLength(layout: Jt1078Layout, dataType: number): number {
  const base = layout === '2016' ? 0 : 4;
  if (dataType <= 2) return 30 + base;
  if (dataType === 3) return 26 + base;
  if (dataType === 4) return 18 + base;
  return -1;
}

export function encodeJt1078Packet(p: Omit<Jt1078Packet, 'layout' | 'sim'> & { sim: string }, layout: Jt1078Layout): Buffer {
  const headerLength = jt1078HeaderLength(layout, p.dataType);
  if (headerLength < 0) throw new Error(`1078 data type ${p.dataType} does not exist`);
  if (p.subpackage > 3) throw new Error(`1078 subpackage flag ${p.subpackage} does not exist`);
  if (p.body.length > 0xffff) throw new Error(`1078 body of ${p.body.length} bytes is over its 16-bit length`);
  const b = Buffer.allocUnsafe(headerLength + p.body.length);
  b.writeUInt32BE(JT1078_MAGIC, 0);
  b[4] = VPXCC;
  b[5] = (p.marker ? 0x80 : 0) | (p.pt & 0x7f);
  b.writeUInt16BE(p.seq & 0xffff, 6);
  const simBytes = SIM_BYTES[layout];
  writeBcd(b, 8, simBytes, p.sim, 'sim');
  let at = 8 + simBytes;
  b[at++] = p.channel;
  b[at++] = (p.dataType << 4) | p.subpackage;
  if (p.dataType !== JT1078_DATA_TYPE.PASSTHROUGH) {
    const ts = Math.max(0, Math.floor(p.timestamp ?? 0));
    b.writeUInt32BE(Math.floor(ts / 2 ** 32) >>> 0, at);
    b.writeUInt32BE(ts >>> 0, at + 4);
    at += 8;
  }
  if (p.dataType <= 2) {
    b.writeUInt16BE((p.lastIInterval ?? 0) & 0xffff, at);
    b.writeUInt16BE((p.lastFrameInterval ?? 0) & 0xffff, at + 2);
    at += 4;
  }
  b.writeUInt16BE(p.body.length, at);
  p.body.copy(b, at + 2);
  return b;
}

/**
 * One video frame → its packets: atomic when it fits `maxBody`, else first, middle..., last (codes
 * 1, 3..., 2), with consecutive sequence numbers from firstSeq and the M bit on the last. What the
 * simulator terminal and the bench send.
 */
export function packetiseFrame(
  f: { sim: string; channel: number; pt: number; dataType: number; timestamp: number; lastIInterval: number; lastFrameInterval: number; data: Buffer; firstSeq: number },
  layout: Jt1078Layout,
  maxBody = JT1078_STANDARD_BODY,
): Buffer[] {
  if (maxBody < 1) throw new Error(`maxBody ${maxBody} must be at least 1`);
  const count = Math.max(1, Math.ceil(f.data.length / maxBody));
  const packets: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    const subpackage = count === 1 ? JT1078_SUBPACKAGE.ATOMIC : i === 0 ? JT1078_SUBPACKAGE.FIRST : i === count - 1 ? JT1078_SUBPACKAGE.LAST : JT1078_SUBPACKAGE.MIDDLE;
    packets.push(
      encodeJt1078Packet(
        {
          marker: i === count - 1,
          pt: f.pt,
          seq: (f.firstSeq + i) & 0xffff,
          sim: f.sim,
          channel: f.channel,
          dataType: f.dataType,
          subpackage,
          timestamp: f.timestamp,
          lastIInterval: f.lastIInterval,
          lastFrameInterval: f.lastFrameInterval,
          body: f.data.subarray(i * maxBody, Math.min(f.data.length, (i + 1) * maxBody)),
        },
        layout,
      ),
    );
  }
  return packets;
}

/** Outcomes of measuring the packet at a position (non-negative: its end). */
const NEED_MORE = -1;
const INVALID = -2;
const OVERSIZE = -3;

export interface Jt1078StreamParserOptions {
  /** The largest body one packet may declare (devices exceed the standard's 950; 64 KiB is the format's own limit). */
  maxBodyBytes: number;
  /** Known from the terminal's 808 edition; detected from the first packets otherwise. */
  layout?: Jt1078Layout;
  /** Each push is one UDP datagram: bytes left over at its end are dropped ('truncated'), not kept for the next. */
  datagram?: boolean;
  onPacket(p: Jt1078Packet): void;
  /** 'resync': bytes skipped to the next magic; 'oversize': a packet declaring more than maxBodyBytes; 'truncated': a datagram's unfinished tail. */
  onError(kind: 'resync' | 'oversize' | 'truncated', bytes: number): void;
}

/**
 * TCP bytes (or UDP datagrams) → packets. A position without the magic, with a data type or
 * subpackage flag that cannot be, or declaring an oversize body, is skipped to the next magic.
 * Holds at most one packet's header and body (plus the 4 bytes that confirm a detected layout).
 */
export class Jt1078StreamParser {
  private rest: Buffer | null = null;
  private detected: Jt1078Layout | null;
  /** Consecutive resyncs without a packet: a detection that guessed wrong shows as a run of them. */
  private misses = 0;
  private lastSimBytes = Buffer.alloc(10);
  private lastSimLength = 0;
  private lastSim = '';

  constructor(private readonly opts: Jt1078StreamParserOptions) {
    this.detected = opts.layout ?? null;
  }

  get layout(): Jt1078Layout | null {
    return this.detected;
  }

  get buffered(): number {
    return this.rest?.length ?? 0;
  }

  push(chunk: Buffer): void {
    let buf = chunk;
    let pos = 0;
    const rest = this.rest;
    if (rest) {
      this.rest = null;
      // Finish the packet left from the last push with only the bytes of the chunk it needs, then go on
      // in the chunk itself, so the rest of its packets' bodies are views into it and it is never copied whole.
      const take = Math.min(chunk.length, this.wanted(rest));
      const joined = Buffer.concat([rest, chunk.subarray(0, take)]);
      const stop = this.parse(joined, 0);
      if (stop >= rest.length) pos = stop - rest.length;
      else if (take === chunk.length) {
        buf = joined;
        pos = stop;
      } else buf = Buffer.concat([joined.subarray(stop, rest.length), chunk]);
    }
    const stop = this.parse(buf, pos);
    if (stop >= buf.length) return;
    if (this.opts.datagram) {
      this.opts.onError('truncated', buf.length - stop);
      return;
    }
    // Only the unfinished packet stays; copied, so it does not pin the whole chunk.
    this.rest = Buffer.from(buf.subarray(stop));
  }

  /** Hands on every whole packet in buf from `pos`; returns where the first unfinished one starts (buf.length if none). */
  private parse(buf: Buffer, pos: number): number {
    const len = buf.length;
    while (pos < len) {
      if (len - pos >= 4 && buf.readUInt32BE(pos) !== JT1078_MAGIC) {
        pos = this.resync(buf, pos);
        continue;
      }
      let layout = this.detected;
      if (layout === null) {
        const found = this.detect(buf, pos);
        if (found === NEED_MORE) break;
        if (found === INVALID || found === OVERSIZE) {
          if (found === OVERSIZE) this.opts.onError('oversize', declaredBody);
          pos = this.resync(buf, pos);
          continue;
        }
        layout = found;
        this.detected = found;
      }
      const end = measure(buf, pos, layout, this.opts.maxBodyBytes);
      if (end === NEED_MORE) break;
      if (end === INVALID || end === OVERSIZE) {
        if (end === OVERSIZE) this.opts.onError('oversize', declaredBody);
        pos = this.resync(buf, pos);
        continue;
      }
      const packet = this.read(buf, pos, end, layout);
      pos = end;
      this.misses = 0;
      this.opts.onPacket(packet);
    }
    return pos;
  }

  /** How many more bytes the unfinished packet at the start of `rest` needs (and 4 to confirm a layout), or enough for any header. */
  private wanted(rest: Buffer): number {
    let wanted = 64;
    if (rest.length < 4 || rest.readUInt32BE(0) !== JT1078_MAGIC) return wanted;
    for (const layout of this.detected ? [this.detected] : LAYOUTS) {
      const typeAt = 9 + SIM_BYTES[layout];
      if (typeAt >= rest.length) continue;
      const headerLength = jt1078HeaderLength(layout, rest[typeAt]! >> 4);
      if (headerLength < 0 || headerLength > rest.length) continue;
      const bodyLength = rest.readUInt16BE(headerLength - 2);
      if (bodyLength <= this.opts.maxBodyBytes) wanted = Math.max(wanted, headerLength + bodyLength + 4 - rest.length);
    }
    return wanted;
  }

  /** Skips from `pos` (not a packet) to the next magic; keeps a tail that may be the start of one. */
  private resync(buf: Buffer, pos: number): number {
    const next = buf.indexOf(MAGIC_BYTES, pos + 1);
    let to = next;
    if (next < 0) {
      // The last 3 bytes may be the start of a magic split across pushes.
      to = Math.max(pos + 1, buf.length - 3);
      while (to < buf.length && !MAGIC_BYTES.subarray(0, buf.length - to).equals(buf.subarray(to))) to++;
    }
    this.opts.onError('resync', to - pos);
    if (++this.misses > 8 && this.opts.layout === undefined) this.detected = null;
    return to;
  }

  /**
   * The layout of the packet at `pos` (it has the magic): the one whose computed end is followed by
   * another magic, as C5 does (jt1078.md §3.2); in datagram mode also the one that ends the datagram exactly.
   * OVERSIZE when neither fits and one of them declares a body over the limit.
   */
  private detect(buf: Buffer, pos: number): Jt1078Layout | typeof NEED_MORE | typeof INVALID | typeof OVERSIZE {
    let waiting = false;
    let oversize = false;
    for (const layout of LAYOUTS) {
      const end = measure(buf, pos, layout, this.opts.maxBodyBytes);
      if (end === NEED_MORE) waiting = true;
      if (end === OVERSIZE) oversize = true;
      if (end < 0) continue;
      if (end + 4 <= buf.length) {
        if (buf.readUInt32BE(end) === JT1078_MAGIC) return layout;
      } else if (this.opts.datagram) {
        if (end === buf.length) return layout;
      } else if (MAGIC_BYTES.subarray(0, buf.length - end).equals(buf.subarray(end))) waiting = true;
    }
    if (waiting && !this.opts.datagram) return NEED_MORE;
    // Read either way the header declares a body over the limit: say so (a device over its limit, or junk).
    return oversize ? OVERSIZE : INVALID;
  }

  private read(buf: Buffer, pos: number, end: number, layout: Jt1078Layout): Jt1078Packet {
    const simBytes = SIM_BYTES[layout];
    let at = pos + 8 + simBytes;
    const channel = buf[at]!;
    const typeByte = buf[at + 1]!;
    const dataType = typeByte >> 4;
    at += 2;
    let timestamp: number | null = null;
    let lastIInterval: number | null = null;
    let lastFrameInterval: number | null = null;
    if (dataType !== JT1078_DATA_TYPE.PASSTHROUGH) {
      timestamp = buf.readUInt32BE(at) * 2 ** 32 + buf.readUInt32BE(at + 4);
      at += 8;
    }
    if (dataType <= 2) {
      lastIInterval = buf.readUInt16BE(at);
      lastFrameInterval = buf.readUInt16BE(at + 2);
      at += 4;
    }
    return {
      layout,
      marker: (buf[pos + 5]! & 0x80) !== 0,
      pt: buf[pos + 5]! & 0x7f,
      seq: buf.readUInt16BE(pos + 6),
      sim: this.sim(buf, pos + 8, simBytes),
      channel,
      dataType,
      subpackage: typeByte & 0x0f,
      timestamp,
      lastIInterval,
      lastFrameInterval,
      body: buf.subarray(at + 2, end),
    };
  }

  /** The SIM's digits (a nibble over 9 read as hex, not refused: the 808 service decides who is known), cached per connection. */
  private sim(buf: Buffer, at: number, bytes: number): string {
    // Byte by byte: for 6 or 10 bytes this beats Buffer#compare's native call by far.
    const last = this.lastSimBytes;
    let same = bytes === this.lastSimLength;
    for (let i = 0; same && i < bytes; i++) same = buf[at + i] === last[i];
    if (same) return this.lastSim;
    buf.copy(last, 0, at, at + bytes);
    this.lastSimLength = bytes;
    this.lastSim = stripLeadingZeros(buf.toString('hex', at, at + bytes));
    return this.lastSim;
  }
}

/** The body length the last measured packet declared (what an oversize one is reported with). */
let declaredBody = 0;

/** The end of the packet at `pos` (which has the magic) read with `layout`, or NEED_MORE / INVALID / OVERSIZE. */
function measure(buf: Buffer, pos: number, layout: Jt1078Layout, maxBody: number): number {
  const typeAt = pos + 9 + SIM_BYTES[layout];
  if (typeAt >= buf.length) return NEED_MORE;
  const typeByte = buf[typeAt]!;
  if ((typeByte & 0x0f) > 3) return INVALID;
  const headerLength = jt1078HeaderLength(layout, typeByte >> 4);
  if (headerLength < 0) return INVALID;
  if (pos + headerLength > buf.length) return NEED_MORE;
  const bodyLength = buf.readUInt16BE(pos + headerLength - 2);
  declaredBody = bodyLength;
  if (bodyLength > maxBody) return OVERSIZE;
  const end = pos + headerLength + bodyLength;
  return end > buf.length ? NEED_MORE : end;
}

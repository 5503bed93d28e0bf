/**
 * H.264 from FLV video tags (AVCC: length-prefixed NAL units plus a decoder configuration record)
 * into RTP payloads (RFC 6184, packetization-mode 1). Done once per camera; every peer sends the
 * same payload buffers with its own headers.
 */

/** Payloads stay under a 1280-byte IPv6 minimum MTU after RTP (12), SRTP (10) and UDP/IP headers. */
export const MAX_PAYLOAD = 1_200;

const NAL_SLICE_IDR = 5;
const NAL_SEI = 6;
const NAL_SPS = 7;
const NAL_PPS = 8;
const NAL_AUD = 9;
const NAL_FILLER = 12;
const STAP_A = 24;
const FU_A = 28;

/** One video frame, ready to send: a peer gives its packets consecutive sequence numbers and one timestamp. */
export interface AccessUnit {
  /** Increases by one per frame from a packetizer: a peer never sends a frame twice or out of order. */
  index: number;
  /** Presentation time on the 90 kHz RTP clock (wraps at 2^32 when sent). */
  timestamp: number;
  keyframe: boolean;
  /** RTP payloads in order; the last one carries the marker bit. */
  payloads: Buffer[];
  bytes: number;
}

export interface AvcConfig {
  lengthSize: number;
  sps: Buffer[];
  pps: Buffer[];
  /** profile_idc, constraint flags and level_idc as SDP's profile-level-id, e.g. "64001f". */
  profileLevelId: string;
}

/** Parses an AVCDecoderConfigurationRecord; null when it is not one. */
export function parseAvcConfig(record: Buffer): AvcConfig | null {
  if (record.length < 7 || record[0] !== 1) return null;
  const lengthSize = (record[4]! & 3) + 1;
  let pos = 6;
  const readSet = (count: number): Buffer[] | null => {
    const out: Buffer[] = [];
    for (let i = 0; i < count; i++) {
      if (pos + 2 > record.length) return null;
      const n = record.readUInt16BE(pos);
      pos += 2;
      if (n === 0 || pos + n > record.length) return null;
      out.push(record.subarray(pos, pos + n));
      pos += n;
    }
    return out;
  };
  const sps = readSet(record[5]! & 0x1f);
  if (!sps || pos >= record.length) return null;
  const pps = readSet(record[pos++]!);
  if (!pps || sps.length === 0 || pps.length === 0) return null;
  return {
    lengthSize,
    sps: sps.map((b) => Buffer.from(b)),
    pps: pps.map((b) => Buffer.from(b)),
    profileLevelId: record.subarray(1, 4).toString('hex'),
  };
}

/**
 * Turns FLV video tags into access units. Feed it the AVC sequence header first (and again when the
 * camera restarts); NAL units that only delimit or pad (AUD, filler) are dropped, and a keyframe
 * without in-band SPS/PPS gets them prepended, so any keyframe alone starts a decoder.
 */
export class H264Packetizer {
  config: AvcConfig | null = null;
  /** Set when a frame's decode and presentation times differ: the stream has B-frames. */
  sawReordering = false;
  private frames = 0;

  /** Takes a tag body of FLV type 9; returns the access unit it carries, or null (headers, other codecs, junk). */
  push(tag: Buffer, timestampMs: number): AccessUnit | null {
    if (tag.length < 5 || (tag[0]! & 0x0f) !== 7) return null;
    const packetType = tag[1]!;
    if (packetType === 0) {
      this.config = parseAvcConfig(tag.subarray(5)) ?? this.config;
      return null;
    }
    if (packetType !== 1 || !this.config) return null;
    const cts = tag.readIntBE(2, 3);
    if (cts !== 0) this.sawReordering = true;
    const nals = splitAvcc(tag.subarray(5), this.config.lengthSize);
    if (nals.length === 0) return null;
    const keyframe = nals.some((n) => (n[0]! & 0x1f) === NAL_SLICE_IDR);
    const hasSps = nals.some((n) => (n[0]! & 0x1f) === NAL_SPS);
    const units = keyframe && !hasSps ? [...this.config.sps, ...this.config.pps, ...nals] : nals;
    const payloads = packetize(units);
    let bytes = 0;
    for (const p of payloads) bytes += p.length;
    return { index: ++this.frames, timestamp: (timestampMs + cts) * 90, keyframe, payloads, bytes };
  }
}

function splitAvcc(data: Buffer, lengthSize: number): Buffer[] {
  const out: Buffer[] = [];
  let pos = 0;
  while (pos + lengthSize <= data.length) {
    const n = data.readUIntBE(pos, lengthSize);
    pos += lengthSize;
    if (n === 0 || pos + n > data.length) break;
    const nal = data.subarray(pos, pos + n);
    pos += n;
    const type = nal[0]! & 0x1f;
    if (type !== NAL_AUD && type !== NAL_FILLER) out.push(nal);
  }
  return out;
}

/**
 * Small NAL units (parameter sets, SEI) are aggregated into STAP-A packets, large ones split into
 * FU-A fragments. All payloads of a frame live in one buffer, copied once.
 */
export function packetize(nals: Buffer[]): Buffer[] {
  let size = 0;
  for (const n of nals) size += n.length + 2 * Math.ceil(n.length / (MAX_PAYLOAD - 2)) + 3;
  const out = Buffer.allocUnsafe(size);
  let pos = 0;
  const payloads: Buffer[] = [];
  let i = 0;
  while (i < nals.length) {
    const nal = nals[i]!;
    // Aggregate a run of small units that fit one packet together.
    let runEnd = i;
    let runBytes = 1;
    while (runEnd < nals.length && runBytes + 2 + nals[runEnd]!.length <= MAX_PAYLOAD && isAggregatable(nals[runEnd]!)) {
      runBytes += 2 + nals[runEnd]!.length;
      runEnd++;
    }
    if (runEnd - i >= 2) {
      const start = pos;
      let nri = 0;
      for (let k = i; k < runEnd; k++) nri = Math.max(nri, nals[k]![0]! & 0x60);
      out[pos++] = nri | STAP_A;
      for (let k = i; k < runEnd; k++) {
        out.writeUInt16BE(nals[k]!.length, pos);
        pos += 2;
        pos += nals[k]!.copy(out, pos);
      }
      payloads.push(out.subarray(start, pos));
      i = runEnd;
      continue;
    }
    if (nal.length <= MAX_PAYLOAD) {
      const start = pos;
      pos += nal.copy(out, pos);
      payloads.push(out.subarray(start, pos));
    } else {
      const indicator = (nal[0]! & 0xe0) | FU_A;
      const type = nal[0]! & 0x1f;
      for (let off = 1; off < nal.length; off += MAX_PAYLOAD - 2) {
        const end = Math.min(nal.length, off + MAX_PAYLOAD - 2);
        const start = pos;
        out[pos++] = indicator;
        out[pos++] = (off === 1 ? 0x80 : 0) | (end === nal.length ? 0x40 : 0) | type;
        pos += nal.copy(out, pos, off, end);
        payloads.push(out.subarray(start, pos));
      }
    }
    i++;
  }
  return payloads;
}

function isAggregatable(nal: Buffer): boolean {
  const type = nal[0]! & 0x1f;
  return type === NAL_SPS || type === NAL_PPS || type === NAL_SEI;
}

import { crc32Mpeg, writeTimestamp } from '../../lib/mpeg.js';
import type { AccessUnit } from './types.js';

/**
 * MPEG-2 program stream packs and their RTP packets as GB/T 28181 devices send them (reference §6):
 * one frame per pack; keyframes carry a system header and a PSM; the payload is cut into RTP
 * packets at arbitrary byte boundaries, one timestamp per frame. The simulator sends this, and a
 * cascade to an upper platform will.
 */

/** A PES payload limit that keeps PES_packet_length (16 bits) clear of its header. */
export const PES_PAYLOAD_MAX = 65_000;
/** program_mux_rate and rate_bound, in units of 50 bytes/s: 40 Mbit/s, above any camera's rate. */
const MUX_RATE = 100_000;
const VIDEO_STREAM_ID = 0xe0;
const STREAM_TYPE = { h264: 0x1b, h265: 0x24 } as const;
/** 2^30: the 33-bit clock values are split at bit 30, since JavaScript's bit operators work on 32 bits. */
const BIT30 = 0x4000_0000;

export function psPack(u: AccessUnit, opts: { withHeaders?: boolean } = {}): Buffer {
  const withHeaders = opts.withHeaders ?? u.key;
  const parts: Buffer[] = [packHeader(u.pts90k)];
  if (withHeaders) parts.push(SYSTEM_HEADER, programStreamMap(STREAM_TYPE[u.codec]));
  for (let at = 0, first = true; at < u.data.length || first; at += PES_PAYLOAD_MAX, first = false) {
    const payload = u.data.subarray(at, at + PES_PAYLOAD_MAX);
    parts.push(pesHeader(payload.length, first ? u.pts90k : null), payload);
  }
  return Buffer.concat(parts);
}

function packHeader(scr90k: number): Buffer {
  const b = Buffer.alloc(14);
  b.writeUInt32BE(0x0000_01ba, 0);
  const hi = Math.floor(scr90k / BIT30) & 0x07;
  const lo = scr90k % BIT30;
  b[4] = 0x40 | (hi << 3) | 0x04 | ((lo >>> 28) & 0x03);
  b[5] = (lo >>> 20) & 0xff;
  b[6] = ((lo >>> 12) & 0xf8) | 0x04 | ((lo >>> 13) & 0x03);
  b[7] = (lo >>> 5) & 0xff;
  // SCR extension 0: the 27 MHz remainder is not modelled.
  b[8] = ((lo & 0x1f) << 3) | 0x04;
  b[9] = 0x01;
  b.writeUIntBE((MUX_RATE << 2) | 0x03, 10, 3);
  // Reserved bits, no stuffing.
  b[13] = 0xf8;
  return b;
}

/** One video stream (E0), no audio: rate bound, the bounds and a 232 × 1024-byte buffer as the Dahua vector declares. */
const SYSTEM_HEADER = (() => {
  const b = Buffer.alloc(15);
  b.writeUInt32BE(0x0000_01bb, 0);
  b.writeUInt16BE(9, 4);
  b.writeUIntBE(0x80_0001 | (MUX_RATE << 1), 6, 3);
  b[9] = 0x00; // audio_bound 0, fixed 0, CSPS 0
  b[10] = 0xe1; // audio and video locked, marker, video_bound 1
  b[11] = 0x7f; // no packet-rate restriction, reserved
  b[12] = VIDEO_STREAM_ID;
  b.writeUInt16BE(0xe000 | 232, 13); // '11', buffer scale 1 (×1024), size 232
  return b;
})();

function programStreamMap(streamType: number): Buffer {
  const b = Buffer.alloc(24);
  b.writeUInt32BE(0x0000_01bc, 0);
  b.writeUInt16BE(b.length - 6, 4);
  b[6] = 0xe0; // current_next 1, reserved, version 0
  b[7] = 0xff; // reserved, marker
  b.writeUInt16BE(0, 8); // program_stream_info_length
  b.writeUInt16BE(4, 10); // elementary_stream_map_length: one entry without descriptors
  b[12] = streamType;
  b[13] = VIDEO_STREAM_ID;
  b.writeUInt16BE(0, 14);
  b.writeUInt32BE(crc32Mpeg(b.subarray(0, 20)), 20);
  return b;
}

function pesHeader(payloadLength: number, pts90k: number | null): Buffer {
  const b = Buffer.alloc(pts90k === null ? 9 : 14);
  b.writeUInt32BE(0x0000_0100 | VIDEO_STREAM_ID, 0);
  b.writeUInt16BE(b.length - 6 + payloadLength, 4);
  b[6] = 0x80;
  if (pts90k === null) return b; // flags2 0, header_data_length 0: a continuation of the frame
  b[7] = 0x80; // PTS only (DTS = PTS: no B-frames reach a wall)
  b[8] = 5;
  writeTimestamp(b, 9, 0b0010, pts90k);
  return b;
}

export const RTP_HEADER_BYTES = 12;

/**
 * Cuts one pack into RTP packets of at most `maxPayload` bytes: version 2, the same timestamp on
 * every packet, the marker on the last (the frame's end, GB/T 28181-2022 §4.3.6).
 */
export function rtpPackets(ps: Buffer, p: { ssrc: number; seq: number; timestamp: number; payloadType?: number; maxPayload?: number }): { packets: Buffer[]; nextSeq: number } {
  const maxPayload = p.maxPayload ?? 1400;
  const payloadType = p.payloadType ?? 96;
  const packets: Buffer[] = [];
  let seq = p.seq & 0xffff;
  for (let at = 0; at < ps.length; at += maxPayload) {
    const payload = ps.subarray(at, at + maxPayload);
    const last = at + maxPayload >= ps.length;
    const packet = Buffer.allocUnsafe(RTP_HEADER_BYTES + payload.length);
    packet[0] = 0x80;
    packet[1] = (last ? 0x80 : 0) | (payloadType & 0x7f);
    packet.writeUInt16BE(seq, 2);
    packet.writeUInt32BE(p.timestamp >>> 0, 4);
    packet.writeUInt32BE(p.ssrc >>> 0, 8);
    payload.copy(packet, RTP_HEADER_BYTES);
    packets.push(packet);
    seq = (seq + 1) & 0xffff;
  }
  return { packets, nextSeq: seq };
}

/** RTP over TCP (RFC 4571, GB/T 28181 App. D): each packet behind its 2-byte big-endian length. */
export const rfc4571 = (packet: Buffer): Buffer => {
  const framed = Buffer.allocUnsafe(2 + packet.length);
  framed.writeUInt16BE(packet.length, 0);
  packet.copy(framed, 2);
  return framed;
};

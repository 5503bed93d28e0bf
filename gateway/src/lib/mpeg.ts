/** Pieces MPEG-2 systems streams share (ISO/IEC 13818-1): the program stream GB/T 28181 sends, and the transport stream fed to ffmpeg. */

/** 2^30: 33-bit clock values are split at bit 30, since JavaScript's bit operators work on 32 bits. */
const BIT30 = 0x4000_0000;

/**
 * Writes a 33-bit PTS or DTS in the PES header's 5-byte form: `prefix` (4 bits: 0010 PTS only,
 * 0011 PTS before a DTS, 0001 DTS), [32..30], marker, [29..15], marker, [14..0], marker.
 */
export function writeTimestamp(b: Buffer, at: number, prefix: number, ts90k: number): void {
  const hi = Math.floor(ts90k / BIT30) & 0x07;
  const lo = ts90k % BIT30;
  b[at] = (prefix << 4) | (hi << 1) | 0x01;
  b[at + 1] = (lo >>> 22) & 0xff;
  b[at + 2] = ((lo >>> 14) & 0xfe) | 0x01;
  b[at + 3] = (lo >>> 7) & 0xff;
  b[at + 4] = ((lo << 1) & 0xfe) | 0x01;
}

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i << 24;
    for (let k = 0; k < 8; k++) c = c & 0x8000_0000 ? (c << 1) ^ 0x04c1_1db7 : c << 1;
    table[i] = c >>> 0;
  }
  return table;
})();

/** CRC-32/MPEG-2 (Annex A), which PSM, PAT and PMT sections end with. */
export function crc32Mpeg(data: Uint8Array): number {
  let crc = 0xffff_ffff;
  for (const byte of data) crc = ((crc << 8) ^ CRC_TABLE[((crc >>> 24) ^ byte) & 0xff]!) >>> 0;
  return crc;
}

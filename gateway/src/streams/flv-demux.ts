import type { FlvTag } from './types.js';

/** A 4K keyframe is a few MB; anything near the 16 MB the field can say is a broken stream. */
const MAX_TAG_BYTES = 8 * 1024 * 1024;
const FILE_HEADER_BYTES = 13;
const TAG_HEADER_BYTES = 11;
const BACK_POINTER_BYTES = 4;

/**
 * Splits ffmpeg's FLV output into tags. Tags are views of the chunk they arrived in, valid only
 * during the callback (the chunk's buffer is reused for the next read); only a tag split across two
 * chunks is copied, once, to join its parts.
 */
export class FlvDemuxer {
  /** The start of a tag (or of the file header) whose end has not arrived yet. */
  private carry: Buffer | null = null;
  private headerSeen = false;

  constructor(private readonly onTag: (tag: FlvTag) => void) {}

  /** Returns an error message when the stream is not FLV; the pull is then broken. */
  push(chunk: Buffer): string | null {
    let buf = chunk;
    if (this.carry) {
      const joined = this.completeCarry(chunk);
      if (joined === null) return null;
      if (typeof joined === 'string') return joined;
      buf = joined.rest;
      if (joined.unit.length) {
        const err = this.parse(joined.unit, true);
        if (err) return err;
      }
    }
    return this.parse(buf, false);
  }

  /** Bytes still needed after `head` to finish the unit it starts, or -1 when its header is incomplete. */
  private unitLength(head: Buffer): number | string {
    if (!this.headerSeen) {
      if (head.length < FILE_HEADER_BYTES) return -1;
      if (head.toString('latin1', 0, 3) !== 'FLV') return 'output is not FLV';
      return head.readUInt32BE(5) + BACK_POINTER_BYTES;
    }
    if (head.length < TAG_HEADER_BYTES) return -1;
    const size = head.readUIntBE(1, 3);
    if (size > MAX_TAG_BYTES) return `FLV tag of ${size} bytes`;
    return TAG_HEADER_BYTES + size + BACK_POINTER_BYTES;
  }

  /** Joins the carried start of a unit with the bytes that finish it; null while still incomplete. */
  private completeCarry(chunk: Buffer): { unit: Buffer; rest: Buffer } | string | null {
    const carry = this.carry!;
    // Enough of the header to know the unit's length (at most 13 bytes are borrowed).
    const probe = carry.length >= FILE_HEADER_BYTES ? carry : Buffer.concat([carry, chunk.subarray(0, FILE_HEADER_BYTES)]);
    const length = this.unitLength(probe);
    if (typeof length === 'string') return length;
    if (length < 0 || carry.length + chunk.length < length) {
      this.carry = Buffer.concat([carry, chunk]);
      return null;
    }
    const need = length - carry.length;
    this.carry = null;
    return { unit: Buffer.concat([carry, chunk.subarray(0, need)], length), rest: chunk.subarray(need) };
  }

  private parse(buf: Buffer, whole: boolean): string | null {
    let at = 0;
    while (at < buf.length) {
      const length = this.unitLength(buf.subarray(at));
      if (typeof length === 'string') return length;
      if (length < 0 || buf.length - at < length) {
        if (whole) return 'FLV unit shorter than its header says';
        // The chunk's buffer is reused for the next read: the carried bytes are copied.
        this.carry = Buffer.from(buf.subarray(at));
        return null;
      }
      if (!this.headerSeen) this.headerSeen = true;
      else this.emit(buf, at);
      at += length;
    }
    return null;
  }

  private emit(buf: Buffer, at: number) {
    const type = buf[at]! & 0x1f;
    const size = buf.readUIntBE(at + 1, 3);
    const timestamp = (buf.readUIntBE(at + 4, 3) | (buf[at + 7]! << 24)) >>> 0;
    const data = buf.subarray(at + TAG_HEADER_BYTES, at + TAG_HEADER_BYTES + size);
    // Video: frame type 1 is a keyframe; AVC packet type 0 is the sequence header, 1 a picture. AAC: 0 is the header.
    const header = (type === 9 || type === 8) && size > 1 && data[1] === 0;
    const keyframe = type === 9 && size > 1 && data[0]! >> 4 === 1 && data[1] === 1;
    this.onTag({ type, timestamp, data, keyframe, header });
  }
}

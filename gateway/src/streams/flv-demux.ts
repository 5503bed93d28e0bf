import type { FlvTag } from './types.js';

const MAX_TAG_BYTES = 16 * 1024 * 1024;

/**
 * Splits ffmpeg's FLV output into tags. Chunks from a pipe cut tags anywhere, so bytes are kept
 * until a whole tag (11-byte header, body, 4-byte back pointer) is there.
 */
export class FlvDemuxer {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private headerSeen = false;

  constructor(private readonly onTag: (tag: FlvTag) => void) {}

  /** Returns an error message when the stream is not FLV; the pull is then broken. */
  push(chunk: Buffer): string | null {
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    let buf = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending, this.pendingBytes);
    let at = 0;
    if (!this.headerSeen) {
      if (buf.length < 13) return this.keep(buf);
      if (buf.toString('latin1', 0, 3) !== 'FLV') return 'output is not FLV';
      at = buf.readUInt32BE(5) + 4;
      this.headerSeen = true;
    }
    while (buf.length - at >= 11) {
      const size = buf.readUIntBE(at + 1, 3);
      if (size > MAX_TAG_BYTES) return `FLV tag of ${size} bytes`;
      if (buf.length - at < 11 + size + 4) break;
      const type = buf[at]! & 0x1f;
      const timestamp = (buf.readUIntBE(at + 4, 3) | (buf[at + 7]! << 24)) >>> 0;
      const data = buf.subarray(at + 11, at + 11 + size);
      // Video tag: frame type 1 is a keyframe, AVC packet type 0 the sequence header and 1 a picture.
      const header = (type === 9 || type === 8) && size > 1 && data[1] === 0;
      const keyframe = type === 9 && size > 1 && data[0]! >> 4 === 1 && data[1] === 1;
      this.onTag({ type, timestamp, data, keyframe, header });
      at += 11 + size + 4;
    }
    buf = buf.subarray(at);
    return this.keep(buf);
  }

  private keep(buf: Buffer): null {
    // Copy the remainder: it would otherwise pin the whole chunk it was cut from.
    this.pending = buf.length ? [Buffer.from(buf)] : [];
    this.pendingBytes = buf.length;
    return null;
  }
}

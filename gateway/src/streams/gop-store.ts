import type { FlvTag } from './types.js';

const BLOCK_BYTES = 128 * 1024;
const MAX_FREE_BLOCKS = 8;

/**
 * The tags since the last keyframe, copied out of the read buffer into blocks that are reused from
 * one GOP to the next: a joining FLV viewer starts from here, and steady state allocates nothing.
 * A tag is only valid until the next keyframe arrives; consumers copy what they keep.
 */
export class GopStore {
  private blocks: Buffer[] = [];
  private free: Buffer[] = [];
  private offset = BLOCK_BYTES;
  private stored: FlvTag[] = [];

  constructor(private readonly maxTags: number) {}

  get tags(): readonly FlvTag[] {
    return this.stored;
  }

  /** Starts a new GOP with this keyframe. */
  restart(keyframe: FlvTag): FlvTag {
    this.free.push(...this.blocks.splice(0, Math.max(0, MAX_FREE_BLOCKS - this.free.length)));
    this.blocks = [];
    this.offset = BLOCK_BYTES;
    this.stored = [];
    return this.add(keyframe);
  }

  /** Stores a copy of the tag; past maxTags (a GOP that never ends) the tag is returned uncopied and not kept. */
  add(tag: FlvTag): FlvTag {
    if (this.stored.length >= this.maxTags) return { ...tag, data: Buffer.from(tag.data) };
    const n = tag.data.length;
    let data: Buffer;
    if (n > BLOCK_BYTES) {
      data = Buffer.from(tag.data);
    } else {
      if (this.offset + n > BLOCK_BYTES) {
        this.blocks.push(this.free.pop() ?? Buffer.allocUnsafe(BLOCK_BYTES));
        this.offset = 0;
      }
      data = this.blocks.at(-1)!.subarray(this.offset, this.offset + n);
      tag.data.copy(data);
      this.offset += n;
    }
    const copy = { ...tag, data };
    this.stored.push(copy);
    return copy;
  }

  clear() {
    this.blocks = [];
    this.free = [];
    this.stored = [];
    this.offset = BLOCK_BYTES;
  }
}

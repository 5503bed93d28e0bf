import type { FlvTag } from './types.js';

const BLOCK_BYTES = 128 * 1024;
const MAX_FREE_BLOCKS = 8;

/** The bytes every session's GOP store holds together, against one total (streams.gopCache.maxBytesTotal). */
export class GopBudget {
  private usedBytes = 0;

  constructor(readonly maxBytes: number) {}

  get used(): number {
    return this.usedBytes;
  }

  /** Counts n more bytes if the total allows them. */
  take(n: number): boolean {
    if (this.usedBytes + n > this.maxBytes) return false;
    this.usedBytes += n;
    return true;
  }

  give(n: number): void {
    this.usedBytes -= n;
  }
}

/**
 * The tags since the last keyframe, copied out of the read buffer into blocks that are reused from
 * one GOP to the next: a joining viewer of any output starts from here, and steady state allocates
 * nothing. A tag is only valid until the next keyframe arrives; consumers copy what they keep.
 *
 * Bounded in bytes, per store and over all stores (the budget): a GOP that outgrows either is
 * dropped whole, not truncated, since a GOP cut short would start a viewer on a picture that stops.
 * Until the next keyframe nothing is kept, and viewers joining meanwhile wait for that keyframe.
 */
export class GopStore {
  private blocks: Buffer[] = [];
  private free: Buffer[] = [];
  private offset = BLOCK_BYTES;
  private stored: FlvTag[] = [];
  /** Bytes of tags too large for a block, each copied on its own. */
  private largeBytes = 0;
  /** Blocks in use and free, and large tags: what the bounds count. */
  private heldBytes = 0;
  private overflowed = false;
  /** GOPs dropped for outgrowing a bound. */
  dropped = 0;

  constructor(
    private readonly maxBytes: number,
    private readonly budget: GopBudget,
  ) {}

  get tags(): readonly FlvTag[] {
    return this.stored;
  }

  /** Bytes held against the bounds. */
  get bytes(): number {
    return this.heldBytes;
  }

  /** Starts a new GOP with this keyframe. */
  restart(keyframe: FlvTag): FlvTag {
    this.recycle();
    this.overflowed = false;
    return this.add(keyframe);
  }

  /** Stores a copy of the tag; once the GOP has outgrown a bound the tag is copied for the caller and not kept. */
  add(tag: FlvTag): FlvTag {
    if (this.overflowed) return { ...tag, data: Buffer.from(tag.data) };
    const n = tag.data.length;
    let data: Buffer;
    if (n > BLOCK_BYTES) {
      if (!this.reserve(n)) return this.overflow(tag);
      this.largeBytes += n;
      data = Buffer.from(tag.data);
    } else {
      if (this.offset + n > BLOCK_BYTES) {
        const block = this.free.pop() ?? (this.reserve(BLOCK_BYTES) ? Buffer.allocUnsafe(BLOCK_BYTES) : null);
        if (!block) return this.overflow(tag);
        this.blocks.push(block);
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

  /** Lets go of everything, free blocks included. */
  clear() {
    this.blocks = [];
    this.free = [];
    this.stored = [];
    this.offset = BLOCK_BYTES;
    this.largeBytes = 0;
    this.release(this.heldBytes);
  }

  private reserve(n: number): boolean {
    if (this.heldBytes + n > this.maxBytes || !this.budget.take(n)) return false;
    this.heldBytes += n;
    return true;
  }

  private release(n: number) {
    this.heldBytes -= n;
    this.budget.give(n);
  }

  /** The GOP's blocks go to the free list, as many as it keeps; the rest, and large tags, are let go. */
  private recycle() {
    for (const block of this.blocks) {
      if (this.free.length < MAX_FREE_BLOCKS) this.free.push(block);
      else this.release(BLOCK_BYTES);
    }
    this.release(this.largeBytes);
    this.largeBytes = 0;
    this.blocks = [];
    this.offset = BLOCK_BYTES;
    this.stored = [];
  }

  private overflow(tag: FlvTag): FlvTag {
    this.recycle();
    this.overflowed = true;
    this.dropped++;
    return { ...tag, data: Buffer.from(tag.data) };
  }
}

import t from 'tap';
import { GopBudget, GopStore } from '../../../gateway/src/streams/gop-store.js';
import type { FlvTag } from '../../../gateway/src/streams/types.js';

const KB = 1024;
const BLOCK = 128 * KB;

function tag(bytes: number, keyframe = false, fill = 1): FlvTag {
  return { type: 9, timestamp: 0, data: Buffer.alloc(bytes, fill), keyframe, header: false };
}

/** A GOP of `frames` tags of `bytes` each, keyframe first; returns what the store kept. */
function gop(store: GopStore, frames: number, bytes: number, fill = 1) {
  store.restart(tag(bytes, true, fill));
  for (let i = 1; i < frames; i++) store.add(tag(bytes, false, fill));
  return store.tags.length;
}

t.test('a GOP within its bound is kept whole, and later GOPs reuse its blocks', async (t) => {
  const budget = new GopBudget(64 * 1024 * KB);
  const store = new GopStore(4 * 1024 * KB, budget);
  t.equal(gop(store, 100, 20 * KB), 100, 'all 100 tags of a 2 MB GOP are kept');
  const held = store.bytes;
  t.ok(held >= 100 * 20 * KB && held <= 100 * 20 * KB + 2 * BLOCK, `held ${held} bytes: the GOP plus at most a block`);
  for (let i = 0; i < 5; i++) gop(store, 100, 20 * KB, i);
  t.ok(store.bytes <= held + 8 * BLOCK, 'steady GOPs hold no more than the first plus the free blocks kept');
  t.equal(budget.used, store.bytes, 'the shared budget counts what the store holds');
  t.equal(store.tags[5]!.data[0], 4, 'the tags are the latest GOP');
  t.equal(store.dropped, 0);
});

t.test('a GOP that outgrows the per-session bound is dropped until the next keyframe', async (t) => {
  const budget = new GopBudget(64 * 1024 * KB);
  const store = new GopStore(1024 * KB, budget);
  // 100 × 20 KB = 2 MB against a 1 MB bound (an 8 Mbit/s camera with a long GOP, say).
  store.restart(tag(20 * KB, true));
  let most = 0;
  for (let i = 1; i < 100; i++) {
    const copy = store.add(tag(20 * KB, false, 7));
    t.equal(copy.data.length, 20 * KB, 'the caller still gets its copy of every tag');
    most = Math.max(most, store.bytes);
  }
  t.ok(most <= 1024 * KB, `never more than the bound held (${most} bytes)`);
  t.equal(store.tags.length, 0, 'the GOP is dropped whole: a joining viewer waits for the next keyframe');
  t.equal(store.dropped, 1);
  t.ok(budget.used <= 8 * BLOCK, 'what the dropped GOP held went back to the budget, bar the free blocks kept');
  t.equal(gop(store, 20, 20 * KB), 20, 'the next GOP that fits is kept again');
});

t.test('tags larger than a block count too', async (t) => {
  const budget = new GopBudget(64 * 1024 * KB);
  const store = new GopStore(1024 * KB, budget);
  store.restart(tag(600 * KB, true));
  t.equal(store.tags.length, 1, 'a 600 KB keyframe fits a 1 MB bound');
  t.ok(store.bytes >= 600 * KB);
  store.add(tag(600 * KB));
  t.equal(store.tags.length, 0, 'a second one does not, and the GOP goes');
  t.ok(store.bytes <= 1024 * KB);
  store.clear();
  t.equal(store.bytes, 0);
  t.equal(budget.used, 0, 'clear gives everything back');
});

t.test('all stores together stay within the global budget; a GOP that would pass it is dropped', async (t) => {
  const budget = new GopBudget(3 * 1024 * KB);
  const a = new GopStore(2 * 1024 * KB, budget);
  const b = new GopStore(2 * 1024 * KB, budget);
  t.equal(gop(a, 80, 20 * KB), 80, 'the first camera caches its 1.6 MB GOP');
  t.equal(gop(b, 80, 20 * KB), 0, 'the second would take the total past 3 MB: its GOP is dropped');
  t.ok(budget.used <= 3 * 1024 * KB, `the total stays within the budget (${budget.used} bytes)`);
  t.equal(b.dropped, 1);
  a.clear();
  t.equal(gop(b, 80, 20 * KB), 80, 'once the first session is gone, the second caches again');
  t.equal(budget.used, b.bytes);
});

import t from 'tap';
import { Backoff } from '../../../gateway/src/lib/backoff.js';

t.test('delays double up to the cap, with jitter in the upper half, and start over after a reset', async (t) => {
  const low = new Backoff(1_000, 8_000, () => 0);
  t.same([1, 2, 3, 4, 5, 6].map(() => low.next()), [500, 1_000, 2_000, 4_000, 4_000, 4_000], 'the lowest draw is half the step');
  const high = new Backoff(1_000, 8_000, () => 1);
  t.same([1, 2, 3, 4, 5].map(() => high.next()), [1_000, 2_000, 4_000, 8_000, 8_000], 'never past maxMs');
  high.reset();
  t.equal(high.next(), 1_000, 'a reset (the first frame after a drop) starts from initialMs');
  const many = new Backoff(1_000, 30_000);
  for (let i = 0; i < 100; i++) many.next();
  const d = many.next();
  t.ok(d >= 15_000 && d <= 30_000, `still capped after 100 attempts (${d})`);
});

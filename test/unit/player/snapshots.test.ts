import t from 'tap';
import { RequestSlots, snapshotWidth } from '../../../player/src/lib/snapshots.js';

/** The console's picture requests: a few at once, in order, and an abandoned one never sent. */

const deferred = () => {
  let resolve!: () => void;
  let reject!: (e: Error) => void;
  const promise = new Promise<void>((res, rej) => ((resolve = res), (reject = rej)));
  return { promise, resolve, reject };
};
const turn = () => new Promise((r) => setImmediate(r));

t.test('at most `size` jobs run at once; the others start in order as slots free, failed or not', async (t) => {
  const slots = new RequestSlots(2);
  const started: number[] = [];
  const jobs = Array.from({ length: 5 }, () => deferred());
  const results = jobs.map((job, i) =>
    slots
      .run(new AbortController().signal, () => {
        started.push(i);
        return job.promise.then(() => i);
      })
      .catch((e: Error) => e.message),
  );
  await turn();
  t.same(started, [0, 1], 'two run, three wait');
  jobs[1]!.reject(new Error('refused'));
  await turn();
  t.same(started, [0, 1, 2], 'a failed job frees its slot for the next in line');
  jobs[0]!.resolve();
  await turn();
  t.same(started, [0, 1, 2, 3], 'so does a finished one');
  for (const job of jobs.slice(2)) job.resolve();
  t.same(await Promise.all(results), [0, 'refused', 2, 3, 4], 'each caller gets its own job’s outcome');
});

t.test('a job aborted while it waits leaves the queue without running; an aborted signal never queues', async (t) => {
  const slots = new RequestSlots(1);
  const first = deferred();
  const ran: string[] = [];
  const job = (name: string, p: Promise<void> = Promise.resolve()) => () => {
    ran.push(name);
    return p;
  };
  const running = slots.run(new AbortController().signal, job('first', first.promise));
  const abort = new AbortController();
  const waiting = slots.run(abort.signal, job('abandoned'));
  const after = slots.run(new AbortController().signal, job('after'));
  abort.abort();
  await t.rejects(waiting, { name: 'AbortError' }, 'the abandoned job rejects with an AbortError at once');
  first.resolve();
  await running;
  await after;
  t.same(ran, ['first', 'after'], 'and never runs: the next one takes the slot');
  const gone = new AbortController();
  gone.abort();
  await t.rejects(slots.run(gone.signal, job('late')), { name: 'AbortError' });
  t.same(ran, ['first', 'after'], 'a job whose signal has already aborted is not run');
});

t.test('the width asked for is the smallest step that fills the tile in device pixels', async (t) => {
  const g = globalThis as { devicePixelRatio?: number };
  const before = g.devicePixelRatio;
  t.teardown(() => {
    g.devicePixelRatio = before;
  });
  g.devicePixelRatio = 1;
  t.same([100, 160, 161, 300, 470, 640, 2000].map(snapshotWidth), [160, 160, 320, 320, 480, 640, 640], 'steps of 160 up to 640');
  g.devicePixelRatio = 2;
  t.equal(snapshotWidth(200), 480, 'a high-density screen gets the pixels it shows');
});

import t from 'tap';
import { Lifecycle, StartAborted } from '../../../gateway/src/lib/lifecycle.js';

t.test('shutdown runs the phases in the designed order, the last opened first within a phase', async (t) => {
  const life = new Lifecycle();
  const order: string[] = [];
  const step = (name: string) => () => void order.push(name);
  // Registered in the order a start opens them, not the order they close in.
  life.own('store', 'store', step('store'));
  life.own('sessions', 'ingest', step('ingest'));
  life.own('sessions', 'sessions', step('sessions'));
  life.own('accepting', 'listener', step('listener'));
  life.own('requests', 'in flight', step('in flight'));
  life.own('readers', 'hls', step('hls'));
  life.own('writes', 'walls', step('walls'));
  life.own('readers', 'control', step('control'));
  life.own('writes', 'vehicles', step('vehicles'));
  await life.close();
  t.same(order, ['listener', 'control', 'hls', 'sessions', 'ingest', 'in flight', 'vehicles', 'walls', 'store']);
});

t.test('a step that fails or rejects does not stop the others; the errors come back together', async (t) => {
  const life = new Lifecycle();
  const logged: object[] = [];
  life.setLog({ error: (o) => void logged.push(o) });
  const closed: string[] = [];
  life.own('readers', 'control', () => Promise.reject(new Error('socket gone')));
  life.own('sessions', 'sessions', () => {
    throw new Error('ffmpeg would not die');
  });
  life.own('store', 'store', () => void closed.push('store'));
  const err = await life.close().then(
    () => null,
    (e: unknown) => e,
  );
  t.ok(err instanceof AggregateError, 'rejects with every failure');
  t.same((err as AggregateError).errors.map((e: Error) => e.message), ['control: socket gone', 'sessions: ffmpeg would not die']);
  t.same(closed, ['store'], 'the store closed all the same');
  t.equal(logged.length, 2, 'each failure is logged as it happens');
});

t.test('close is one shutdown, however many call it', async (t) => {
  const life = new Lifecycle();
  let runs = 0;
  let finish!: () => void;
  life.own('sessions', 'slow', () => (runs++, new Promise<void>((r) => (finish = r))));
  const a = life.close();
  const b = life.close();
  t.equal(a, b);
  finish();
  await a;
  await life.close();
  t.equal(runs, 1);
});

t.test('a start that a shutdown overtakes is stopped, and what it opens late is closed too', async (t) => {
  const life = new Lifecycle();
  const order: string[] = [];
  let releaseReaders!: () => void;
  life.own('readers', 'control', () => new Promise<void>((r) => (releaseReaders = () => (order.push('control'), r()))));
  life.own('store', 'store', () => void order.push('store'));
  const closing = life.close();
  t.ok(life.stopping);
  t.throws(() => life.checkpoint('routes'), StartAborted);
  // The shutdown is in the readers phase: a listener opened now is past its phase and closes at once;
  // a session still has its phase ahead and closes in it.
  t.throws(() => life.own('accepting', 'late listener', () => void order.push('late listener')), StartAborted);
  t.throws(() => life.own('sessions', 'late session', () => void order.push('late session')), StartAborted);
  releaseReaders();
  await closing;
  t.same(order, ['late listener', 'control', 'late session', 'store']);
});

import t from 'tap';
import { enginePrewarmer } from '../../../gateway/src/control/engine.js';
import type { ReaderLease, StreamManager } from '../../../gateway/src/streams/manager.js';

/** The stream engine as the prewarmer sees it: leases handed out when the test says, releases counted. */
function fakeEngine() {
  const released: string[] = [];
  const pending: (() => void)[] = [];
  const engine = {
    addReader: ({ cameraId }: { cameraId: string }) =>
      new Promise<ReaderLease>((resolve) =>
        pending.push(() => resolve({ id: cameraId, release: () => void released.push(cameraId) } as unknown as ReaderLease)),
      ),
  } as unknown as StreamManager;
  const grant = async () => {
    for (const g of pending.splice(0)) g();
    await new Promise((r) => setImmediate(r));
  };
  return { engine, released, grant };
}

t.test('closing the prewarmer lets go of every hold at once, and of a pre-warm that was still starting', async (t) => {
  const { engine, released, grant } = fakeEngine();
  const prewarmer = enginePrewarmer(engine, { warn: () => undefined });
  prewarmer.prewarm('held', 'main', 3_600_000);
  await grant();
  t.same(released, [], 'held for its hold time');
  prewarmer.prewarm('starting', 'main', 3_600_000);
  prewarmer.close();
  t.same(released, ['held'], 'the hold ends with the prewarmer, not an hour later');
  await grant();
  t.same(released, ['held', 'starting'], 'a lease granted after the close is released at once');
  prewarmer.prewarm('after', 'main', 1_000);
  await grant();
  t.same(released, ['held', 'starting'], 'no pre-warm starts after the close');
});

t.test('a hold ends by itself after its time', async (t) => {
  const { engine, released, grant } = fakeEngine();
  const prewarmer = enginePrewarmer(engine, { warn: () => undefined });
  prewarmer.prewarm('cam', 'sub', 20);
  await grant();
  await new Promise((r) => setTimeout(r, 60));
  t.same(released, ['cam']);
  prewarmer.close();
  t.same(released, ['cam'], 'released once');
});

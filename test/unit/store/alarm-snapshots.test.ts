import { join } from 'node:path';
import t, { type Test } from 'tap';
import { SqliteStore } from '../../../gateway/src/store/sqlite/index.js';
import type { AlarmSnapshotWrite } from '../../../gateway/src/store/types.js';
import { tempDir } from '../../helpers/gateway.js';

async function storeWithAlarms(t: Test, n: number) {
  const store = SqliteStore.open(join(tempDir(t), 'a.db'));
  t.teardown(() => store.close());
  for (let i = 0; i < n; i++) {
    await store.alarms.save({ id: `a${i}`, vehicleId: 'v', deptPath: '/root/', type: 'leak', state: 'raised', raisedAt: i, updatedAt: i, doc: '{}' }, null);
  }
  return store;
}

const shot = (i: number, bytes: number): AlarmSnapshotWrite => ({ alarmId: `a${i}`, cameraId: 'c', takenAt: 1_000 + i, width: 4, height: 3, jpeg: Buffer.alloc(bytes, i), error: null });
const kept = (store: SqliteStore) => store.db.prepare('SELECT alarm_id FROM alarm_snapshots ORDER BY taken_at').pluck().all();

t.test('pictures past maxBytes go oldest first, and the alarms they belonged to are named', async (t) => {
  const store = await storeWithAlarms(t, 6);
  const bounds = { maxCount: 100, maxBytes: 2_500 };
  for (let i = 0; i < 4; i++) t.same(await store.alarms.saveSnapshot(shot(i, 600), bounds), [], `${(i + 1) * 600} bytes fit`);
  t.same(await store.alarms.saveSnapshot(shot(4, 600), bounds), ['a0'], 'the fifth pushes the oldest out');
  t.same(await store.alarms.saveSnapshot(shot(5, 1_300), bounds), ['a1', 'a2'], 'a large one pushes out as many as it needs (2,500 bytes left: at the bound is within it)');
  t.same(kept(store), ['a3', 'a4', 'a5']);
  t.equal((await store.alarms.snapshot('a5'))?.jpeg.length, 1_300);
  t.equal(await store.alarms.snapshot('a0'), null);
});

t.test('a failure is kept as written, counts toward maxCount, and reads back as no picture', async (t) => {
  const store = await storeWithAlarms(t, 3);
  const bounds = { maxCount: 2, maxBytes: 1_000_000 };
  const error = JSON.stringify({ code: 'GW_ERR_CAMERA_UNREACHABLE', message: 'connection refused' });
  await store.alarms.saveSnapshot({ alarmId: 'a0', cameraId: 'c', takenAt: 1, width: 0, height: 0, jpeg: null, error }, bounds);
  t.same((await store.alarms.get('a0'))?.evidence, { snapshot: null, snapshotError: error }, 'the failure reads back as written');
  t.equal(await store.alarms.snapshot('a0'), null, 'no picture to serve');
  await store.alarms.saveSnapshot(shot(1, 10), bounds);
  t.same(await store.alarms.saveSnapshot(shot(2, 10), bounds), ['a0']);
  t.same((await store.alarms.get('a1'))?.evidence, { snapshot: { cameraId: 'c', takenAt: 1_001, width: 4, height: 3 }, snapshotError: null });
  t.same((await store.alarms.get('a0'))?.evidence, { snapshot: null, snapshotError: null }, 'pruned: neither picture nor reason');
});

t.test('rewriting an alarm keeps its picture; deleting it deletes the picture', async (t) => {
  const store = await storeWithAlarms(t, 1);
  await store.alarms.saveSnapshot(shot(0, 10), { maxCount: 10, maxBytes: 1_000 });
  await store.alarms.save({ id: 'a0', vehicleId: 'v', deptPath: '/root/', type: 'leak', state: 'closed', raisedAt: 0, updatedAt: 5, doc: '{}' }, null);
  t.ok(await store.alarms.snapshot('a0'), 'closing the alarm (a rewrite of its row) kept it');
  t.equal((await store.alarms.list({ ranges: [['/', '0']], limit: 10 }))[0]?.evidence?.snapshot?.cameraId, 'c', 'the list reads it too');
  store.db.prepare('DELETE FROM alarms').run();
  t.same(kept(store), []);
});

import { join } from 'node:path';
import t from 'tap';
import { SqliteStore } from '../../../gateway/src/store/sqlite/index.js';
import { tempDir } from '../../helpers/gateway.js';

// The pictures' bounds and reads are in the store contract (test/store/sections/alarms.ts); what stays
// here is SQLite's: nothing in the store interface deletes an alarm, but a database pruned by hand
// must not keep pictures of alarms that are gone.
t.test('deleting an alarm deletes its picture', async (t) => {
  const store = SqliteStore.open(join(tempDir(t), 'a.db'));
  t.teardown(() => store.close());
  await store.alarms.save({ id: 'a0', vehicleId: 'v', deptPath: '/root/', type: 'leak', state: 'raised', raisedAt: 0, updatedAt: 0, doc: '{}' }, null);
  await store.alarms.saveSnapshot({ alarmId: 'a0', cameraId: 'c', takenAt: 1, width: 4, height: 3, jpeg: Buffer.alloc(10), error: null }, { maxCount: 10, maxBytes: 1_000 });
  const kept = () => store.db.prepare('SELECT alarm_id FROM alarm_snapshots').pluck().all();
  t.same(kept(), ['a0']);
  store.db.prepare('DELETE FROM alarms').run();
  t.same(kept(), []);
});

/** Vehicle alarms, and the pictures kept as their evidence. */
import type { Test } from 'tap';
import { subtreeEnd, type AlarmQuery, type AlarmRow, type AlarmSnapshotWrite, type Store } from '../../../gateway/src/store/types.js';
import type { OpenStore } from '../contract.js';
import { auditTrail, departmentTree, moveBelowNew, subtree, uid } from '../fixtures.js';

const alarm = (id: string, raisedAt: number, deptPath: string, extra: Partial<AlarmRow> = {}): AlarmRow => ({
  id,
  vehicleId: 'v',
  deptPath,
  type: 'leak',
  state: 'raised',
  raisedAt,
  updatedAt: raisedAt,
  doc: JSON.stringify({ id }),
  ...extra,
});

/** A store of its own (the pictures' bounds are the whole table's) with alarms a0..a<n-1>. */
async function storeWithAlarms(t: Test, open: OpenStore, n: number): Promise<Store> {
  const store = await open(t, { empty: true });
  for (let i = 0; i < n; i++) await store.alarms.save(alarm(`a${i}`, i, '/d/'), null);
  return store;
}

const shot = (i: number, bytes: number): AlarmSnapshotWrite => ({ alarmId: `a${i}`, cameraId: 'c', takenAt: 1_000 + i, width: 4, height: 3, jpeg: Buffer.alloc(bytes, i), error: null });

/** The alarms of a0..a<n-1> whose picture is kept. */
async function withPicture(store: Store, n: number): Promise<string[]> {
  const kept: string[] = [];
  for (let i = 0; i < n; i++) if (await store.alarms.snapshot(`a${i}`)) kept.push(`a${i}`);
  return kept;
}

export default function alarms(t: Test, open: OpenStore) {
  t.test('an alarm is saved and rewritten by id, with its audit entry; open ones are listed oldest first', async (t) => {
    const store = await open(t);
    const { top, east } = await departmentTree(store);
    const audit = auditTrail(store, top.path);
    const p = uid('a');
    const [a1, a2, a3] = [`${p}1`, `${p}2`, `${p}3`];
    await store.alarms.save(alarm(a2, 2, east.path), null);
    await store.alarms.save(alarm(a1, 1, east.path, { type: 'overspeed' }), null);
    await store.alarms.save(alarm(a3, 3, east.path), null);
    t.same(await audit.actions(), [], 'a raised alarm is not audited');
    await store.alarms.save(alarm(a3, 3, east.path, { state: 'acknowledged', updatedAt: 9 }), audit.entry('alarm.ack', a3));
    await store.alarms.save(alarm(a2, 2, east.path, { state: 'closed', updatedAt: 10 }), audit.entry('alarm.close', a2));
    t.same(await audit.actions(), [`alarm.ack ${a3}`, `alarm.close ${a2}`]);
    t.same(await store.alarms.get(a3), { ...alarm(a3, 3, east.path, { state: 'acknowledged', updatedAt: 9 }), evidence: { snapshot: null, snapshotError: null } }, 'read back whole');
    t.equal(await store.alarms.get(`${p}9`), null);
    const open_ = (await store.alarms.open()).filter((a) => a.id.startsWith(p));
    t.same(open_.map((a) => `${a.id} ${a.state}`), [`${a1} raised`, `${a3} acknowledged`], 'closed ones are not open');
  });

  t.test('a write that would take an alarm back is refused, with its audit entry: a handled alarm never comes back', async (t) => {
    const store = await open(t);
    const { top, east } = await departmentTree(store);
    const audit = auditTrail(store, top.path);
    const p = uid('a');
    const state = async (id: string) => (await store.alarms.get(id))?.state;
    t.equal(await store.alarms.save(alarm(`${p}1`, 1, east.path), null), true, 'a new alarm is written');
    t.equal(await store.alarms.save(alarm(`${p}1`, 1, east.path, { state: 'acknowledged', updatedAt: 5 }), audit.entry('alarm.ack', `${p}1`)), true);
    // The raising node's repeat, written after the acknowledgement another node made.
    t.equal(await store.alarms.save(alarm(`${p}1`, 1, east.path, { updatedAt: 6, doc: '{"occurrences":2}' }), null), false, 'a raised alarm does not overwrite an acknowledged one');
    t.equal(await state(`${p}1`), 'acknowledged');
    t.equal(await store.alarms.save(alarm(`${p}1`, 1, east.path, { state: 'acknowledged', updatedAt: 7, doc: '{"occurrences":3}' }), null), true, 'a repeat that knows of the acknowledgement is written');
    t.equal((await store.alarms.get(`${p}1`))?.doc, '{"occurrences":3}');
    t.equal(await store.alarms.save(alarm(`${p}1`, 1, east.path, { state: 'closed', updatedAt: 8 }), audit.entry('alarm.close', `${p}1`)), true);
    t.equal(await store.alarms.save(alarm(`${p}1`, 1, east.path, { state: 'acknowledged', updatedAt: 9 }), audit.entry('alarm.ack', `${p}1`)), false, 'an acknowledgement after the close is refused');
    t.equal(await store.alarms.save(alarm(`${p}1`, 1, east.path, { updatedAt: 10 }), null), false, 'so is a repeat');
    t.equal(await state(`${p}1`), 'closed');
    t.equal(await store.alarms.save(alarm(`${p}1`, 1, east.path, { state: 'closed', updatedAt: 11, doc: '{"linkagesEnded":true}' }), null), true, 'a closed alarm is still rewritten closed (its pop-ups ended)');
    t.same(await audit.actions(), [`alarm.ack ${p}1`, `alarm.close ${p}1`], 'no audit entry for a refused write');
    t.equal((await store.alarms.open()).filter((a) => a.id.startsWith(p)).length, 0, 'not open again');
  });

  t.test('lists are scoped, filtered and paged newest first by (raisedAt, id)', async (t) => {
    const store = await open(t);
    const { top, east, west } = await departmentTree(store);
    const p = uid('a');
    // A path that starts with east's path as a string but is not below it.
    const eastern = `${east.path.slice(0, -1)}ern/`;
    const rows = [
      alarm(`${p}1`, 1, east.path),
      alarm(`${p}2`, 2, west.path, { vehicleId: 'w' }),
      alarm(`${p}3`, 3, east.path, { type: 'overspeed' }),
      alarm(`${p}4`, 4, east.path, { state: 'closed' }),
      // Two at one instant: the id breaks the tie.
      alarm(`${p}5a`, 5, east.path),
      alarm(`${p}5b`, 5, east.path),
      alarm(`${p}6`, 6, eastern),
    ];
    for (const row of rows) await store.alarms.save(row, null);
    const ids = async (q: Partial<AlarmQuery>) => (await store.alarms.list({ ranges: [subtree(top)], limit: 100, ...q })).map((a) => a.id.slice(p.length));
    t.same(await ids({}), ['6', '5b', '5a', '4', '3', '2', '1']);
    t.same(await ids({ ranges: [subtree(east)] }), ['5b', '5a', '4', '3', '1'], "a subtree is its range, not its path's prefix");
    t.same(await ids({ ranges: [[east.path, subtreeEnd(east.path)], [west.path, subtreeEnd(west.path)]].sort() as [string, string][] }), ['5b', '5a', '4', '3', '2', '1'], 'several subtrees');
    t.same(await ids({ ranges: [] }), [], 'an empty scope sees nothing');
    t.same(await ids({ states: ['raised', 'acknowledged'] }), ['6', '5b', '5a', '3', '2', '1']);
    t.same(await ids({ vehicleId: 'w' }), ['2']);
    t.same(await ids({ type: 'overspeed' }), ['3']);
    t.same(await ids({ since: 5 }), ['6', '5b', '5a'], 'since is inclusive');
    t.same(await ids({ limit: 2 }), ['6', '5b']);
    t.same(await ids({ before: { raisedAt: 5, id: `${p}5b` }, limit: 2 }), ['5a', '4'], 'the next page starts below the cursor, inside a tie');
  });

  t.test('pictures past maxBytes go oldest first, and the alarms they belonged to are named', async (t) => {
    const store = await storeWithAlarms(t, open, 6);
    const bounds = { maxCount: 100, maxBytes: 2_500 };
    for (let i = 0; i < 4; i++) t.same(await store.alarms.saveSnapshot(shot(i, 600), bounds), [], `${(i + 1) * 600} bytes fit`);
    t.same(await store.alarms.saveSnapshot(shot(4, 600), bounds), ['a0'], 'the fifth pushes the oldest out');
    t.same((await store.alarms.saveSnapshot(shot(5, 1_300), bounds)).sort(), ['a1', 'a2'], 'a large one pushes out as many as it needs (2,500 bytes left: at the bound is within it)');
    t.same(await withPicture(store, 6), ['a3', 'a4', 'a5']);
    t.same(await store.alarms.snapshot('a5'), { cameraId: 'c', takenAt: 1_005, width: 4, height: 3, jpeg: Buffer.alloc(1_300, 5) }, 'the picture reads back byte for byte');
    t.equal(await store.alarms.snapshot('a0'), null);
  });

  t.test('a failure is kept as written, counts toward maxCount, and reads back as no picture', async (t) => {
    const store = await storeWithAlarms(t, open, 3);
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

  t.test('a second picture of an alarm replaces the first; rewriting the alarm keeps it', async (t) => {
    const store = await storeWithAlarms(t, open, 1);
    const bounds = { maxCount: 10, maxBytes: 1_000 };
    await store.alarms.saveSnapshot({ alarmId: 'a0', cameraId: null, takenAt: 1, width: 0, height: 0, jpeg: null, error: '{"code":"GW_ERR_TIMEOUT"}' }, bounds);
    await store.alarms.saveSnapshot(shot(0, 900), bounds);
    t.same((await store.alarms.get('a0'))?.evidence, { snapshot: { cameraId: 'c', takenAt: 1_000, width: 4, height: 3 }, snapshotError: null }, 'a picture after a failed attempt replaces the failure');
    t.same(await store.alarms.saveSnapshot(shot(0, 800), bounds), [], 'one row per alarm: the picture it replaces does not count (900 + 800 would be past the bound)');
    await store.alarms.save(alarm('a0', 0, '/d/', { state: 'closed', updatedAt: 5 }), null);
    t.equal((await store.alarms.snapshot('a0'))?.jpeg.length, 800, 'closing the alarm (a rewrite of its row) kept it');
    t.equal((await store.alarms.list({ ranges: [['/', '0']], limit: 10 }))[0]?.evidence?.snapshot?.cameraId, 'c', 'the list reads it too');
  });

  t.test('alarms follow a department move', async (t) => {
    const store = await open(t);
    const { top, east, west } = await departmentTree(store);
    const p = uid('a');
    await store.alarms.save(alarm(`${p}1`, 1, east.path), null);
    await store.alarms.save(alarm(`${p}2`, 2, west.path), null);
    const moved = await moveBelowNew(store, top, east);
    t.same((await store.alarms.list({ ranges: [subtree(moved)], limit: 10 })).map((a) => `${a.id} ${a.deptPath}`), [`${p}1 ${moved.path}`]);
    t.equal((await store.alarms.get(`${p}2`))?.deptPath, west.path);
  });
}

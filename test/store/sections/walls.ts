/** Video walls: create, versioned saves (only the next version), tiles, get, delete with presets; presets and plans. */
import type { Test } from 'tap';
import { StoreConflict, type AuditEntry } from '../../../gateway/src/store/types.js';
import type { OpenStore } from '../contract.js';
import { auditEntry, department, uid } from '../fixtures.js';

export default function walls(t: Test, open: OpenStore) {
  t.test('create, save only the next version, tiles, get, all, delete', async (t) => {
    const store = await open(t);
    const dep = await department(store);
    const actor = uid('actor');
    const audit = (action: string): Omit<AuditEntry, 'seq'> => auditEntry({ actor, action, scopePath: dep.path });
    const id = uid('w');
    const row = { id, departmentId: dep.id, deptPath: dep.path, version: 1, doc: '{"v":1}' };
    await store.walls.create(row, new Map([['t1', 'a'], ['t2', 'b']]), audit('wall.create'));
    await t.rejects(store.walls.create(row, new Map(), audit('wall.create')), StoreConflict, 'an existing id');
    t.same(await store.walls.get(id), { ...row, tiles: new Map([['t1', 'a'], ['t2', 'b']]) });
    t.equal(await store.walls.get(uid()), null);

    await store.walls.save({ ...row, version: 2, doc: '{"v":2}' }, { rows: new Map([['t2', 'B'], ['t3', 'c']]), replace: false }, audit('wall.change'));
    t.same(await store.walls.get(id), { ...row, version: 2, doc: '{"v":2}', tiles: new Map([['t1', 'a'], ['t2', 'B'], ['t3', 'c']]) }, 'changed tiles merged');

    await t.rejects(store.walls.save({ ...row, version: 2, doc: '{"v":"2 again"}' }, { rows: new Map([['t1', 'X']]), replace: false }, audit('wall.lost')), StoreConflict, 'version 2 exists: refused');
    await t.rejects(store.walls.save({ ...row, version: 4, doc: '{"v":4}' }, { rows: new Map(), replace: false }, audit('wall.lost')), StoreConflict, 'a version that skips one: refused');
    t.match(await store.walls.get(id), { version: 2, doc: '{"v":2}', tiles: new Map([['t1', 'a'], ['t2', 'B'], ['t3', 'c']]) }, 'a refused save wrote nothing');

    await store.walls.save({ ...row, version: 3, doc: '{"v":3}' }, { rows: new Map([['n1', 'z']]), replace: true }, null);
    t.same(await store.walls.get(id), { ...row, version: 3, doc: '{"v":3}', tiles: new Map([['n1', 'z']]) }, 'replace: these are all the tiles now');
    await t.rejects(store.walls.save({ ...row, id: uid(), version: 2 }, { rows: new Map(), replace: false }, null), StoreConflict, 'an unknown wall');

    const listed = (await store.walls.all()).find((w) => w.id === id);
    t.same(listed, await store.walls.get(id), 'all() holds the same wall');
    const actions = (await store.audit.list({ actor, limit: 10, ranges: [[dep.path, dep.path + '\uffff']], includeSystem: false })).map((e) => e.action);
    t.same(actions, ['wall.change', 'wall.create'], 'audited with its writes; refused saves left no entry');

    await store.walls.createPreset({ id: uid('p'), wallId: id, kind: 'preset', name: 'P', priority: 0, state: '{}', createdBy: actor, createdAt: 1 }, audit('preset.create'));
    t.equal(await store.walls.delete(id, audit('wall.delete')), true);
    t.equal(await store.walls.get(id), null);
    t.notOk((await store.walls.presets()).some((p) => p.wallId === id), 'its presets went with it');
    t.equal(await store.walls.delete(id, audit('wall.delete')), false);
  });

  t.test('presets and plans: unique name per wall and kind, ordered by creation', async (t) => {
    const store = await open(t);
    const dep = await department(store);
    const id = uid('w');
    await store.walls.create({ id, departmentId: dep.id, deptPath: dep.path, version: 1, doc: '{}' }, new Map(), auditEntry());
    const p1 = { id: uid('p'), wallId: id, kind: 'preset' as const, name: 'Morning', priority: 0, state: '{"a":1}', createdBy: 'alice', createdAt: 10 };
    const p2 = { ...p1, id: uid('p'), kind: 'plan' as const, priority: 5, createdAt: 5 };
    await store.walls.createPreset(p1, auditEntry());
    await store.walls.createPreset(p2, auditEntry());
    await t.rejects(store.walls.createPreset({ ...p1, id: uid('p') }, auditEntry()), StoreConflict, 'same wall, kind and name');
    t.same((await store.walls.presets()).filter((p) => p.wallId === id), [p2, p1], 'by creation time');
    t.equal(await store.walls.deletePreset(p1.id, auditEntry()), true);
    t.equal(await store.walls.deletePreset(p1.id, auditEntry()), false);
    t.same((await store.walls.presets()).filter((p) => p.wallId === id), [p2]);
  });
}

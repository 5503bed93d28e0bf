/** Geofences and linkage rules: versioned documents in a department. */
import type { Test } from 'tap';
import { StoreConflict, type DepartmentRecord, type RuleRow } from '../../../gateway/src/store/types.js';
import type { OpenStore } from '../contract.js';
import { auditTrail, departmentTree, moveBelowNew, uid } from '../fixtures.js';

const rule = (id: string, kind: RuleRow['kind'], dep: DepartmentRecord, extra: Partial<RuleRow> = {}): RuleRow => ({
  id,
  kind,
  departmentId: dep.id,
  deptPath: dep.path,
  version: 1,
  doc: JSON.stringify({ id, kind }),
  ...extra,
});

export default function rules(t: Test, open: OpenStore) {
  t.test('rules are created once, updated at the version read, deleted, and each change audited', async (t) => {
    const store = await open(t);
    const { top, east, west } = await departmentTree(store);
    const audit = auditTrail(store, top.path);
    const p = uid('g');
    const [g1, g2, g9] = [`${p}1`, `${p}2`, `${p}9`];
    const mine = async (kind: RuleRow['kind']) => (await store.rules.all(kind)).filter((r) => r.id.startsWith(p));
    t.equal(await store.rules.put(rule(g2, 'geofence', east), null, audit.entry('geofence.create', g2)), 'ok');
    t.equal(await store.rules.put(rule(g1, 'geofence', west), null, audit.entry('geofence.create', g1)), 'ok');
    t.equal(await store.rules.put(rule(g1, 'linkage', east), null, audit.entry('linkage.create', g1)), 'ok', 'kinds have their own ids');
    await t.rejects(store.rules.put(rule(g1, 'geofence', east), null, audit.entry('geofence.create', g1)), StoreConflict);
    t.same(await mine('geofence'), [rule(g1, 'geofence', west), rule(g2, 'geofence', east)], 'by id, of one kind');

    const next = rule(g2, 'geofence', west, { version: 2, doc: '{"changed":true}' });
    t.equal(await store.rules.put(next, 2, audit.entry('geofence.update', g2)), 'version-conflict', 'the version read must be the stored one');
    t.equal(await store.rules.put(next, 1, audit.entry('geofence.update', g2)), 'ok');
    t.same((await mine('geofence'))[1], next);
    t.equal(await store.rules.put(rule(g9, 'geofence', east, { version: 2 }), 1, audit.entry('geofence.update', g9)), 'not-found');

    t.equal(await store.rules.delete('linkage', g2, audit.entry('linkage.delete', g2)), false, 'only the kind named');
    t.equal(await store.rules.delete('geofence', g2, audit.entry('geofence.delete', g2)), true);
    t.same((await mine('geofence')).map((r) => r.id), [g1]);
    t.same((await mine('linkage')).map((r) => r.id), [g1]);
    t.same(await audit.actions(), [`geofence.create ${g2}`, `geofence.create ${g1}`, `linkage.create ${g1}`, `geofence.update ${g2}`, `geofence.delete ${g2}`], 'refused writes wrote no entry');
  });

  t.test('a rule holds its department, and follows it when it moves', async (t) => {
    const store = await open(t);
    const { top, east } = await departmentTree(store);
    const audit = auditTrail(store, top.path);
    const id = uid('g');
    await store.rules.put(rule(id, 'geofence', east), null, audit.entry('geofence.create', id));
    t.equal(await store.departments.delete(east.id), false);
    const moved = await moveBelowNew(store, top, east);
    t.equal((await store.rules.all('geofence')).find((r) => r.id === id)?.deptPath, moved.path);
    await store.rules.delete('geofence', id, audit.entry('geofence.delete', id));
    t.equal(await store.departments.delete(east.id), true);
  });
}

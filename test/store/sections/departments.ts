/** Departments: unique ids, moves rewrite the subtree's paths (and its sources', searchable still), deletes refused while in use. */
import type { Test } from 'tap';
import { StoreConflict, subtreeEnd } from '../../../gateway/src/store/types.js';
import type { OpenStore } from '../contract.js';
import { department, sourceWrite, uid } from '../fixtures.js';

export default function departments(t: Test, open: OpenStore) {
  t.test('create, all by path, conflict on an existing id', async (t) => {
    const store = await open(t);
    const top = await department(store, undefined, 'Top');
    const child = await department(store, top, 'Child');
    t.match(child, { parentId: top.id, path: `${top.path}${child.id}/`, createdAt: 1_000, updatedAt: 1_000 });
    const mine = (await store.departments.all()).filter((d) => d.path.startsWith(top.path));
    t.same(mine.map((d) => d.id), [top.id, child.id], 'ordered by path');
    await t.rejects(store.departments.create({ id: child.id, name: 'x', parentId: null, level: 'city', path: `/${uid()}/` }, 2), StoreConflict);
  });

  t.test('a move rewrites the paths of the subtree and of its sources', async (t) => {
    const store = await open(t);
    const [from, to] = [await department(store), await department(store)];
    const moved = await department(store, from);
    const below = await department(store, moved);
    const cam = sourceWrite(below, { name: 'Moved camera' });
    await store.sources.create(cam, 1);
    const newPath = `${to.path}${moved.id}/`;
    const rec = await store.departments.update(moved.id, { parentId: to.id, path: newPath, name: 'Renamed' }, 5);
    t.match(rec, { parentId: to.id, path: newPath, name: 'Renamed', updatedAt: 5 });
    const all = await store.departments.all();
    t.equal(all.find((d) => d.id === below.id)!.path, `${newPath}${below.id}/`, 'the child moved too');
    t.match(all.find((d) => d.id === moved.id), { name: 'Renamed', parentId: to.id });
    t.equal((await store.sources.get(cam.id))!.deptPath, `${newPath}${below.id}/`);
    const inTo = await store.sources.list({ ranges: [[to.path, subtreeEnd(to.path)]], text: 'moved camera', limit: 10 });
    t.same(inTo.items.map((s) => s.id), [cam.id], 'found by text under its new parent');
    t.same((await store.sources.list({ ranges: [[from.path, subtreeEnd(from.path)]], text: 'moved', limit: 10 })).items, [], 'and no longer under the old one');
    await t.rejects(store.departments.update(uid(), { name: 'x' }, 6), StoreConflict, 'an unknown department');
  });

  t.test('delete is refused while the department has children or sources', async (t) => {
    const store = await open(t);
    const top = await department(store);
    const child = await department(store, top);
    const cam = sourceWrite(child);
    await store.sources.create(cam, 1);
    t.equal(await store.departments.delete(top.id), false, 'has a child');
    t.equal(await store.departments.delete(child.id), false, 'has a source');
    await store.sources.delete(cam.id);
    t.equal(await store.departments.delete(child.id), true);
    t.equal(await store.departments.delete(top.id), true);
    t.equal(await store.departments.delete(top.id), false, 'already gone');
    t.notOk((await store.departments.all()).some((d) => d.id === top.id || d.id === child.id));
  });
}

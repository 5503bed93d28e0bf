/** Sources: create/update/delete with versions, credentials shared by fingerprint, lists, paging, import. */
import { randomBytes } from 'node:crypto';
import type { Test } from 'tap';
import { StoreConflict, subtreeEnd, type Store } from '../../../gateway/src/store/types.js';
import type { OpenStore } from '../contract.js';
import { credential, department, sourceWrite } from '../fixtures.js';

export default function sources(t: Test, open: OpenStore) {
  t.test('create, get, conflict on an existing id', async (t) => {
    const store = await open(t);
    const dep = await department(store);
    const w = sourceWrite(dep, { name: 'Gate 1', address: 'Main St 5', tags: ['north', 'gate'], lat: 39.9, lon: 116.4, subUrl: 'rtsp://10.0.0.1/sub', credential: credential('admin', 'pw') });
    const rec = await store.sources.create(w, 5_000);
    t.match(rec, { id: w.id, name: 'Gate 1', tags: ['north', 'gate'], lat: 39.9, lon: 116.4, version: 1, createdAt: 5_000, updatedAt: 5_000, username: 'admin', hasPassword: true, health: 'unknown', enabled: true, subUrl: 'rtsp://10.0.0.1/sub' });
    t.type(rec.seq, 'number');
    t.same(await store.sources.get(w.id), rec, 'get returns what create returned');
    t.equal(await store.sources.get('nope-' + w.id), null);
    await t.rejects(store.sources.create({ ...w, name: 'again' }, 6_000), StoreConflict);
    t.equal((await store.sources.get(w.id))!.name, 'Gate 1', 'the refused create changed nothing');
    const sealed = await store.sources.sealedCredential(w.id);
    t.ok(sealed && sealed.fingerprint.equals(credential('admin', 'pw').fingerprint) && sealed.sealedPassword!.equals(Buffer.from('sealed:pw')), 'sealed credential round-trips as bytes');
  });

  t.test('update checks the version; keep/replace/remove credentials; delete', async (t) => {
    const store = await open(t);
    const dep = await department(store);
    const w = sourceWrite(dep, { credential: credential('u', 'p') });
    await store.sources.create(w, 1);
    const stale = await store.sources.update(w.id, { ...w, name: 'B', credential: 'keep' }, 7, 2);
    t.equal(stale.status, 'version-conflict');
    t.equal(stale.status === 'version-conflict' && stale.current.version, 1, 'the conflict carries the stored row');
    const up = await store.sources.update(w.id, { ...w, name: 'B', credential: 'keep' }, 1, 2);
    t.match(up, { status: 'updated', record: { name: 'B', version: 2, username: 'u', hasPassword: true, updatedAt: 2, createdAt: 1 } });
    const cleared = await store.sources.update(w.id, { ...w, name: 'B', credential: null }, 2, 3);
    t.match(cleared, { status: 'updated', record: { username: null, hasPassword: false, version: 3 } });
    t.equal(await store.sources.sealedCredential(w.id), null);
    t.same(await store.sources.update('nope-' + w.id, w, 1, 4), { status: 'not-found' });
    t.equal(await store.sources.delete(w.id, 1), 'version-conflict');
    t.equal(await store.sources.delete(w.id, 3), 'deleted');
    t.equal(await store.sources.delete(w.id), 'not-found');
    t.equal(await store.sources.get(w.id), null);
  });

  t.test('equal credentials are one row: changing one source leaves the other its credential', async (t) => {
    const store = await open(t);
    const dep = await department(store);
    const a = sourceWrite(dep, { credential: credential('shared', 'secret') });
    const b = sourceWrite(dep, { credential: credential('shared', 'secret') });
    await store.sources.create(a, 1);
    await store.sources.create(b, 1);
    await store.sources.update(a.id, { ...a, credential: credential('other', 'x') }, 1, 2);
    t.match(await store.sources.sealedCredential(b.id), { username: 'shared' });
    t.match(await store.sources.sealedCredential(a.id), { username: 'other' });
    t.equal(await store.sources.delete(a.id), 'deleted');
    t.match(await store.sources.sealedCredential(b.id), { username: 'shared' }, 'a delete sweeps only orphans');
  });

  t.test('lists: department path then id, filters, cursor pages; ranges select subtrees', async (t) => {
    const store = await open(t);
    const top = await department(store);
    const a = await department(store, top);
    const b = await department(store, top);
    const other = await department(store);
    const made: string[] = [];
    for (const dep of [b, a, top]) {
      for (const n of ['3', '1', '2']) {
        const w = sourceWrite(dep, { id: `${dep.id}-${n}`, protocol: n === '2' ? 'hls' : 'rtsp', tags: n === '1' ? ['x'] : [], enabled: n !== '3', lat: Number(n), lon: Number(n) });
        await store.sources.create(w, 1);
        made.push(w.id);
      }
    }
    await store.sources.create(sourceWrite(other), 1);
    const expected = made.map((id) => [id.slice(0, id.lastIndexOf('-')), id] as const);
    const pathOf = new Map([top, a, b].map((d) => [d.id, d.path]));
    const order = expected.map(([dep, id]) => ({ path: pathOf.get(dep)!, id })).sort((x, y) => (x.path < y.path ? -1 : x.path > y.path ? 1 : x.id < y.id ? -1 : x.id > y.id ? 1 : 0));
    const all = await store.sources.list({ ranges: [[top.path, subtreeEnd(top.path)]], limit: 100 });
    t.same(all.items.map((s) => s.id), order.map((o) => o.id), 'ordered by (dept_path, id), nothing outside the subtree');
    t.equal(all.next, null);

    const seen: string[] = [];
    let after = undefined as undefined | { path: string; id: string } | { seq: number };
    for (let i = 0; i < 10; i++) {
      const page = await store.sources.list({ ranges: [[top.path, subtreeEnd(top.path)]], limit: 4, after });
      seen.push(...page.items.map((s) => s.id));
      if (!page.next) break;
      after = page.next;
    }
    t.same(seen, order.map((o) => o.id), 'cursor pages cover the list once, in order');

    // Ranges come sorted (SourceQuery).
    const ab = [a.path, b.path].sort().map((p) => [p, subtreeEnd(p)] as [string, string]);
    const two = await store.sources.list({ ranges: ab, limit: 100 });
    t.same(two.items.map((s) => s.departmentId).filter((d) => d !== a.id && d !== b.id), [], 'only the two subtrees');
    t.equal(two.items.length, 6);
    const paged = await store.sources.list({ ranges: ab, limit: 4 });
    const rest = await store.sources.list({ ranges: ab, limit: 4, after: paged.next! });
    t.same([...paged.items, ...rest.items].map((s) => s.id), two.items.map((s) => s.id), 'a cursor crosses from one range to the next');

    const r = [[top.path, subtreeEnd(top.path)]] as [string, string][];
    t.equal((await store.sources.list({ ranges: r, protocol: 'hls', limit: 100 })).items.length, 3, 'protocol filter');
    t.same((await store.sources.list({ ranges: r, tag: 'x', limit: 100 })).items.map((s) => s.id.slice(-1)), ['1', '1', '1'], 'tag filter');
    t.equal((await store.sources.list({ ranges: r, enabled: false, limit: 100 })).items.length, 3, 'enabled filter');
    t.equal((await store.sources.list({ ranges: r, bbox: { minLat: 1.5, maxLat: 2.5, minLon: 0, maxLon: 3 }, limit: 100 })).items.length, 3, 'bbox filter');
    t.equal((await store.sources.list({ ranges: r, level: 'city', limit: 100 })).items.length, 6, 'level filter');
    t.same((await store.sources.list({ ranges: [], limit: 100 })).items, [], 'no ranges: nothing');
  });

  t.test('text search: exact substrings of id, name and address, in registration order, 2 characters and more', async (t) => {
    const store = await open(t);
    const { b, all, ids, search } = await searchFixture(store, [
      { dep: 'a', name: '东城区解放路口', address: '解放路1号' },
      { dep: 'b', name: 'North Gate', address: 'Harbour Rd 12' },
      { dep: 'a', name: '西城区 解放 桥', address: '' },
      { dep: 'b', name: 'Gatehouse', address: '东城区' },
      { dep: 'a', name: 'Rear', address: 'harbour-road' },
      { dep: 'b', name: 'Depot 7', address: 'No. 123-456' },
    ]);
    t.same(await search('解放'), [0, 2], 'two characters; spaces do not count');
    t.same(await search('解放路'), [0]);
    t.same(await search('东城区'), [0, 3], 'name or address');
    t.same(await search('GATE'), [1, 3], 'case does not count');
    t.same(await search('harbour'), [1, 4]);
    t.same(await search('harbourx'), [], 'an exact substring, not a fuzzy match');
    t.same(await search('gateharbour'), [], 'no match across two fields');
    t.same(await search('rd12'), [1], 'punctuation and spaces are dropped from both sides');
    t.same(await search('3456'), [5], 'digits only (no two-character term)');
    t.same(await search('34'), [5], 'two digits');
    t.same(await search('12 45'), [], 'digits that are not adjacent in the row');
    t.same(await search('t7'), [5]);
    t.same(await search('ga', [[b.path, subtreeEnd(b.path)]]), [1, 3], 'within a subtree');
    t.same(await search('东城', [[b.path, subtreeEnd(b.path)]]), [3]);
    t.same(await search(ids[2]!.slice(1)), [2], 'the id is searched too');
    const first = await store.sources.list({ ranges: all, text: 'r', limit: 1 });
    t.ok(first.next && 'seq' in first.next, 'a text page continues by registration order');
    const second = await store.sources.list({ ranges: all, text: 'r', limit: 50, after: first.next! });
    t.same([...first.items, ...second.items].map((s) => ids.indexOf(s.id)), [1, 4], 'a one-character needle, paged, in registration order');
    t.equal(second.next, null);

    const renamed = await store.sources.update(ids[1]!, { ...sourceWrite(b, { id: ids[1]! }), name: 'Quayside', address: '' }, 1, 2);
    t.equal(renamed.status, 'updated');
    t.same(await search('harbour'), [4], 'an update drops the old words from the index');
    t.same(await search('quays'), [1], 'and adds the new ones');
    await store.sources.delete(ids[4]!);
    t.same(await search('harbour'), [], 'a delete drops its words');
  });

  t.test('text search: digit needles inside long runs of digits, paged; updates and deletes', async (t) => {
    const store = await open(t);
    const { a, b, all, ids, search } = await searchFixture(store, [
      { dep: 'a', name: 'Cam 32010200001320000123', address: '' },
      { dep: 'b', name: 'Cam 32010200001320000999', address: 'Lot 77' },
      { dep: 'a', name: 'Pier 123a456', address: 'Dock 1320000123' },
    ]);
    t.same(await search('32010200001320000123'), [0], 'longer than 16 digits: the whole needle counts, not its first 16');
    t.same(await search('3201020000132000'), [0, 1]);
    t.same(await search('1320000'), [0, 1, 2], 'inside a run, and in the address');
    t.same(await search('000123'), [0, 2], 'at the end of a run');
    t.same(await search('1320000', [[b.path, subtreeEnd(b.path)]]), [1], 'within a subtree');
    t.same(await search('123456'), [], 'a letter splits a run');
    t.same(await search('777'), []);
    const first = await store.sources.list({ ranges: all, text: '1320000', limit: 2 });
    t.same(first.items.map((s) => ids.indexOf(s.id)), [0, 1]);
    const rest = await store.sources.list({ ranges: all, text: '1320000', limit: 2, after: first.next! });
    t.same(rest.items.map((s) => ids.indexOf(s.id)), [2], 'paged in registration order');
    t.equal(rest.next, null);

    const renamed = await store.sources.update(ids[0]!, { ...sourceWrite(a, { id: ids[0]! }), name: 'Cam 5550', address: '' }, 1, 2);
    t.equal(renamed.status, 'updated');
    t.same(await search('000123'), [2], 'an update drops the old digits');
    t.same(await search('555'), [0], 'and adds the new ones');
    await store.sources.delete(ids[2]!);
    t.same(await search('000123'), [], 'a delete drops its digits');
  });

  t.test('import: created, updated, unchanged, refused; all-or-nothing rolls back everything', async (t) => {
    const store = await open(t);
    const mine = await department(store);
    const theirs = await department(store);
    const kept = sourceWrite(mine, { credential: credential('k', 'k') });
    const changed = sourceWrite(mine);
    const foreign = sourceWrite(theirs);
    for (const w of [kept, changed, foreign]) await store.sources.create(w, 1);
    const fresh = sourceWrite(mine, { credential: credential('n', 'n') });
    const writable = [[mine.path, subtreeEnd(mine.path)]] as [string, string][];
    const rows = [
      { line: 2, write: kept },
      { line: 3, write: { ...changed, name: 'Changed' } },
      { line: 4, write: fresh },
      { line: 5, write: { ...foreign, name: 'Hijack' } },
    ];
    const refusedAll = await store.sources.importRows(rows, writable, true, 2);
    t.same(refusedAll, { created: 0, updated: 0, unchanged: 0, refused: [{ line: 5, id: foreign.id }], applied: false });
    t.equal(await store.sources.get(fresh.id), null, 'nothing of a refused all-or-nothing import was written');
    t.equal((await store.sources.get(changed.id))!.name, 'Camera');
    const partial = await store.sources.importRows(rows, writable, false, 3);
    t.same(partial, { created: 1, updated: 1, unchanged: 1, refused: [{ line: 5, id: foreign.id }], applied: true });
    t.match(await store.sources.get(fresh.id), { username: 'n', version: 1, createdAt: 3 });
    t.match(await store.sources.get(changed.id), { name: 'Changed', version: 2 });
    t.match(await store.sources.get(kept.id), { version: 1, username: 'k' }, 'an unchanged row keeps its version');
    t.equal((await store.sources.get(foreign.id))!.name, 'Camera');
    const fs = await store.sources.list({ ranges: writable, text: 'changed', limit: 10 });
    t.same(fs.items.map((s) => s.id), [changed.id], 'imported rows are searchable');
  });

  t.test('import: many rows keep their file order; an id twice is created, then updated', async (t) => {
    const store = await open(t);
    const dep = await department(store);
    const writes = Array.from({ length: 1_100 }, (_, i) => sourceWrite(dep, { id: `${dep.id}-${String(i).padStart(4, '0')}`, name: `Bulk ${i}` }));
    writes.reverse();
    const twice = sourceWrite(dep, { name: 'First' });
    const rows = [...writes, twice, { ...twice, name: 'Second' }].map((write, i) => ({ line: i + 2, write }));
    const range = [[dep.path, subtreeEnd(dep.path)]] as [string, string][];
    t.match(await store.sources.importRows(rows, range, true, 5), { created: 1_101, updated: 1, unchanged: 0, refused: [], applied: true });
    t.match(await store.sources.get(twice.id), { name: 'Second', version: 2 });
    const ordered: string[] = [];
    let after: { seq: number } | undefined;
    for (;;) {
      const page = await store.sources.list({ ranges: range, text: 'bulk', limit: 500, after });
      ordered.push(...page.items.map((s) => s.id));
      if (!page.next) break;
      after = page.next as { seq: number };
    }
    t.same(ordered, writes.map((w) => w.id), 'registration order is the file order');
    t.match(await store.sources.importRows(rows.slice(0, 1_100), range, true, 6), { created: 0, updated: 0, unchanged: 1_100, applied: true }, 'again: nothing changes');
  });

  t.test('health: written, counted per department; a fence refuses older lease holders', async (t) => {
    const store = await open(t);
    const dep = await department(store);
    const [a, b, c] = [sourceWrite(dep), sourceWrite(dep), sourceWrite(dep)];
    for (const w of [a, b, c]) await store.sources.create(w, 1);
    t.equal(await store.sources.setHealth(a.id, 'online', null, 10), true);
    const failure = { code: 'GW_ERR_CAMERA_UNREACHABLE', message: 'camera unreachable', params: { reason: 'unreachable' } };
    t.equal(await store.sources.setHealth(b.id, 'offline', failure, 11), true);
    t.match(await store.sources.get(b.id), { health: 'offline', healthError: 'camera unreachable', healthCode: 'GW_ERR_CAMERA_UNREACHABLE', healthParams: { reason: 'unreachable' }, healthSince: 11, version: 1 });
    t.same((await store.sources.countsByDepartment()).get(dep.id), { total: 3, online: 1, offline: 1 });

    t.equal(await store.sources.setHealth(c.id, 'online', null, 20, 5), true, 'fence 5 writes');
    t.equal(await store.sources.setHealth(c.id, 'offline', failure, 21, 4), false, 'fence 4 after 5 is refused');
    t.match(await store.sources.get(c.id), { health: 'online', healthSince: 20 });
    t.equal(await store.sources.setHealth(c.id, 'offline', failure, 22, 5), true, 'the same fence writes again');
    t.equal(await store.sources.setHealth(c.id, 'online', null, 23, 6), true, 'a higher fence writes');
    t.equal(await store.sources.setHealth(c.id, 'unknown', null, 24), true, 'no fence: unconditional');
    t.equal(await store.sources.setHealth(c.id, 'offline', failure, 25, 5), false, 'an unfenced write does not lower the fence');
    t.match(await store.sources.get(c.id), { health: 'unknown', healthSince: 24 });

    const out = await store.sources.setHealthMany([{ id: a.id, health: 'offline', failure }, { id: c.id, health: 'offline', failure }], 30, 6);
    t.same(out, [], 'fence 6 writes both (a had none)');
    const fencedOut = await store.sources.setHealthMany([{ id: a.id, health: 'online', failure: null }, { id: b.id, health: 'online', failure: null }], 31, 3);
    t.same(fencedOut, [a.id], 'fenced out ids are returned; the rest is written');
    t.match(await store.sources.get(a.id), { health: 'offline', healthSince: 30 });
    t.match(await store.sources.get(b.id), { health: 'online', healthSince: 31 });
    t.same(await store.sources.setHealthMany([{ id: a.id, health: 'online', failure: null }], 32), [], 'unfenced many');
    t.same((await store.sources.countsByDepartment()).get(dep.id), { total: 3, online: 2, offline: 1 });
  });
}

/**
 * Rows for the text-search tests, in two departments a and b under one top, each with an id of
 * letters no needle holds (ids are searched too). `search` answers with the rows' indexes, in the
 * store's order.
 */
async function searchFixture(store: Store, rows: { dep: 'a' | 'b'; name: string; address: string }[]) {
  const top = await department(store);
  const a = await department(store, top);
  const b = await department(store, top);
  const ids: string[] = [];
  const letters = () => Array.from(randomBytes(12), (x) => 'klmnpvwxz'[x % 9]).join('');
  for (const r of rows) {
    const w = sourceWrite(r.dep === 'a' ? a : b, { id: `id-${letters()}`, name: r.name, address: r.address });
    await store.sources.create(w, 1);
    ids.push(w.id);
  }
  const all = [[top.path, subtreeEnd(top.path)]] as [string, string][];
  const search = async (text: string, ranges = all, limit = 50) => (await store.sources.list({ ranges, text, limit })).items.map((s) => ids.indexOf(s.id));
  return { a, b, all, ids, search };
}

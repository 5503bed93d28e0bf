import { join } from 'node:path';
import t from 'tap';
import { SqliteStore } from '../../../gateway/src/store/sqlite/index.js';
import { migrations } from '../../../gateway/src/store/sqlite/migrations.js';
import { tempDir } from '../../helpers/gateway.js';

t.test('an empty file migrates to the latest version, and reopening changes nothing', async (t) => {
  const file = join(tempDir(t), 'nested', 'wallgate.db');
  const store = SqliteStore.open(file);
  const latest = migrations[migrations.length - 1]!.version;
  t.equal(await store.schemaVersion(), latest);
  const tables = store.db.prepare(`SELECT name FROM sqlite_master WHERE type IN ('table') ORDER BY name`).pluck().all();
  for (const name of ['audit', 'credentials', 'departments', 'sources', 'sources_search', 'users']) t.ok(tables.includes(name), `table ${name}`);
  t.equal(store.db.pragma('journal_mode', { simple: true }), 'wal');
  await store.departments.create({ id: 'root', name: 'Root', parentId: null, level: 'national', path: '/root/' }, 1);
  await store.close();
  await store.close();

  const again = SqliteStore.open(file);
  t.equal(await again.schemaVersion(), latest);
  t.equal((await again.departments.all()).length, 1, 'data survives a reopen; migrations did not run twice');
  await again.close();
});

t.test('migration versions are strictly increasing from 1', async (t) => {
  migrations.forEach((m, i) => t.equal(m.version, i + 1));
});

t.test('the audit log is append-only in the database itself', async (t) => {
  const store = SqliteStore.open(join(tempDir(t), 'a.db'));
  t.teardown(() => store.close());
  await store.audit.append({ at: 1, actor: 'a', actorIp: '-', action: 'x', target: 'y', outcome: 'ok', detail: {}, scopePath: null });
  t.throws(() => store.db.prepare(`UPDATE audit SET actor = 'b'`).run(), /append-only/);
  t.throws(() => store.db.prepare(`DELETE FROM audit`).run(), /append-only/);
  t.equal((await store.audit.list({ limit: 10, ranges: [], includeSystem: true })).length, 1);
});

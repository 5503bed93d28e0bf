import { join } from 'node:path';
import t from 'tap';
import Database from 'better-sqlite3';
import { SqliteStore } from '../../../gateway/src/store/sqlite/index.js';
import { migrations } from '../../../gateway/src/store/sqlite/migrations.js';
import { tempDir } from '../../helpers/gateway.js';

t.test('an empty file migrates to the latest version, and reopening changes nothing', async (t) => {
  const file = join(tempDir(t), 'nested', 'wallgate.db');
  const store = SqliteStore.open(file);
  const latest = migrations[migrations.length - 1]!.version;
  t.equal(await store.schemaVersion(), latest);
  const tables = store.db.prepare(`SELECT name FROM sqlite_master WHERE type IN ('table') ORDER BY name`).pluck().all();
  for (const name of ['audit', 'credentials', 'departments', 'sources', 'sources_search', 'users', 'gb_devices', 'gb_admission_rules', 'gb_refusals', 'jt_terminals', 'jt_refusals']) t.ok(tables.includes(name), `table ${name}`);
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

t.test("migration 6 keeps a camera's stored health; a failure then keeps its code and parameters, and going online clears them", async (t) => {
  const file = join(tempDir(t), 'v5.db');
  const old = new Database(file);
  for (const m of migrations.filter((m) => m.version <= 5)) old.exec(m.sql);
  old.pragma('user_version = 5');
  old.prepare(`INSERT INTO departments (id, name, parent_id, level, path, created_at, updated_at) VALUES ('root', 'Root', NULL, 'national', '/root/', 1, 1)`).run();
  old
    .prepare(
      `INSERT INTO sources (id, name, department_id, dept_path, level, search_key, url, protocol, codec, enabled, health, health_error, health_since, version, created_at, updated_at)
       VALUES ('gate', 'Gate', 'root', '/root/', 'national', 'gate', 'rtsp://10.0.0.1/live', 'rtsp', 'h264', 1, 'offline', 'the camera is unreachable: Connection refused', 5, 1, 1, 1)`,
    )
    .run();
  old.close();

  const store = SqliteStore.open(file);
  t.teardown(() => store.close());
  t.equal(await store.schemaVersion(), migrations[migrations.length - 1]!.version);
  t.match(await store.sources.get('gate'), { health: 'offline', healthError: 'the camera is unreachable: Connection refused', healthCode: null, healthParams: null, healthSince: 5 }, 'an older row has its English message and no code');

  const failure = { code: 'GW_ERR_CAMERA_UNREACHABLE', message: 'the camera is unreachable: Connection refused', params: { reason: 'unreachable', detail: 'Connection refused' } };
  await store.sources.setHealth('gate', 'offline', failure, 10);
  t.match(await store.sources.get('gate'), { health: 'offline', healthError: failure.message, healthCode: failure.code, healthParams: failure.params, healthSince: 10 });
  await store.sources.setHealth('gate', 'online', null, 20);
  t.match(await store.sources.get('gate'), { health: 'online', healthError: null, healthCode: null, healthParams: null, healthSince: 20 }, 'online: no reason left behind');
});

/** The store contract on PostgreSQL (the same sections as SQLite), and what only PostgreSQL has: migrations shared by nodes. */
import t from 'tap';
import { PgStore } from '../../gateway/src/store/pg/index.js';
import { PgDb } from '../../gateway/src/store/pg/db.js';
import { migratePg, pgMigrations } from '../../gateway/src/store/pg/migrations.js';
import { subtreeEnd } from '../../gateway/src/store/types.js';
import { freshDatabase, needsCluster } from '../helpers/cluster.js';
import { storeContract } from '../store/contract.js';

const log = { warn: () => undefined };
const options = (url: string) => ({ url, poolSize: 4, connectTimeoutMs: 3_000, statementTimeoutMs: 10_000, log });

t.test('migrations: two stores opening one fresh database at once both succeed at the latest version', needsCluster(), async (t) => {
  const url = await freshDatabase(t);
  const [a, b] = await Promise.all([PgStore.open(options(url)), PgStore.open(options(url))]);
  t.teardown(() => Promise.all([a.close(), b.close()]));
  const latest = pgMigrations[pgMigrations.length - 1]!.version;
  t.equal(await a.schemaVersion(), latest);
  t.equal(await b.schemaVersion(), latest);
  pgMigrations.forEach((m, i) => t.equal(m.version, i + 1, 'versions strictly increasing from 1'));
  const c = await PgStore.open(options(url));
  t.equal(await c.schemaVersion(), latest, 'reopening changes nothing');
  await c.close();
});

t.test('a database from before migration 3 finds its existing sources by digits and three-character terms afterwards', needsCluster(), async (t) => {
  const url = await freshDatabase(t);
  const before = await PgDb.open(options(url));
  await migratePg(before, pgMigrations.filter((m) => m.version < 3));
  await before.exec(`INSERT INTO departments (id, name, parent_id, level, path, created_at, updated_at) VALUES ('d1', 'D', NULL, 'province', '/d1/', 1, 1)`);
  for (const [id, key] of [['s1', `s1\u000132010200001320000123\u0001`], ['s2', `s2\u0001cam\u0001dock1320000999`]]) {
    await before.exec(
      `INSERT INTO sources (id, name, department_id, dept_path, level, search_key, url, protocol, codec, enabled, version, created_at, updated_at)
       VALUES ($1, 'x', 'd1', '/d1/', 'site', $2, 'rtsp://10.0.0.1/', 'rtsp', 'h264', true, 1, 1, 1)`,
      [id, key],
    );
  }
  await before.close();
  const store = await PgStore.open(options(url));
  t.teardown(() => store.close());
  const search = async (text: string) => (await store.sources.list({ ranges: [['/d1/', subtreeEnd('/d1/')]], text, limit: 10 })).items.map((s) => s.id);
  t.same(await search('1320000'), ['s1', 's2']);
  t.same(await search('0000123'), ['s1']);
  t.same(await search('dock'), ['s2'], 'and by their three-character terms');
});

t.test('the audit log is append-only in the database itself', needsCluster(), async (t) => {
  const store = await PgStore.open(options(await freshDatabase(t)));
  t.teardown(() => store.close());
  await store.audit.append({ at: 1, actor: 'a', actorIp: '::1', action: 'x', target: 'y', outcome: 'ok', detail: {}, scopePath: null });
  await t.rejects(store.db.exec(`UPDATE audit SET actor = 'b'`), /append-only/);
  await t.rejects(store.db.exec(`DELETE FROM audit`), /append-only/);
  await t.rejects(store.db.exec(`TRUNCATE audit`), /append-only/);
  t.equal((await store.audit.list({ limit: 5, ranges: [], includeSystem: true })).length, 1);
});

t.test('store contract on PostgreSQL', needsCluster(), async (t) => {
  const url = await freshDatabase(t);
  // In public, where every schema's migration finds it (its CREATE EXTENSION IF NOT EXISTS is then a no-op).
  const admin = await PgStore.open(options(url));
  t.teardown(() => admin.close());
  let schemas = 0;
  await storeContract(t, async (t, opts) => {
    let at = url;
    if (opts?.empty) {
      // A schema of its own, migrated afresh: a fraction of a new database's cost.
      const schema = `empty_${++schemas}`;
      await admin.db.exec(`CREATE SCHEMA ${schema}`);
      at = `${url}?options=${encodeURIComponent(`-c search_path=${schema},public`)}`;
    }
    const store = await PgStore.open(options(at));
    t.teardown(() => store.close());
    return store;
  });
});

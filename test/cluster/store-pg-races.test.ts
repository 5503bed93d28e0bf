/**
 * What one PostgreSQL database must keep true when several nodes write at the same instant, which
 * the SQLite store (one process, one writer) never had to: checks made before a write still hold
 * when it commits, and bounds hold for the table, not per node.
 */
import t, { type Test } from 'tap';
import { PgStore } from '../../gateway/src/store/pg/index.js';
import type { DepartmentRecord, VehicleRow } from '../../gateway/src/store/types.js';
import { freshDatabase, needsCluster } from '../helpers/cluster.js';
import { auditEntry as entry, department, sourceWrite } from '../store/fixtures.js';

const auditEntry = (action: string, target: string) => entry({ action, target });

/** Two nodes on one fresh database, their pools warmed so their statements really overlap. */
async function twoNodes(t: Test): Promise<[PgStore, PgStore, DepartmentRecord]> {
  const url = await freshDatabase(t);
  const open = async () => {
    const store = await PgStore.open({ url, poolSize: 4, connectTimeoutMs: 5_000, statementTimeoutMs: 10_000, log: { warn: () => undefined } });
    t.teardown(() => store.close());
    await Promise.all(Array.from({ length: 4 }, () => store.db.query('SELECT 1')));
    return store;
  };
  const a = await open();
  const b = await open();
  return [a, b, await department(a)];
}

const vehicleIn = (dep: DepartmentRecord) => (id: string, plate: string, extra: Partial<VehicleRow> = {}): VehicleRow => ({
  id,
  plate,
  departmentId: dep.id,
  deptPath: dep.path,
  version: 1,
  doc: JSON.stringify({ id, sim: '' }),
  sourceIds: [],
  sim: '',
  ...extra,
});

const ROUNDS = 12;

t.test('vehicles written by two nodes at once', needsCluster(), async (t) => {
  const [a, b, dep] = await twoNodes(t);
  const vehicle = vehicleIn(dep);
  for (let i = 0; i < ROUNDS; i++) await a.sources.create(sourceWrite(dep, { id: `cam${i}` }), 1);

  // Each pair's outcomes, sorted: 'ok' before any refusal.
  const outcomes = (pairs: unknown[][]) => pairs.map((pair) => pair.map((r) => (typeof r === 'string' ? r : JSON.stringify(r))).sort());

  const plates = await Promise.all(
    Array.from({ length: ROUNDS }, (_, i) =>
      Promise.all([a.vehicles.put(vehicle(`pa${i}`, `P${i}`), null, auditEntry('vehicle.create', `pa${i}`)), b.vehicles.put(vehicle(`pb${i}`, `P${i}`), null, auditEntry('vehicle.create', `pb${i}`))]),
    ),
  );
  t.same(
    outcomes(plates),
    Array.from({ length: ROUNDS }, (_, i) => ['ok', JSON.stringify({ conflict: 'plate', value: `P${i}` })]),
    'one plate, one vehicle: one of each pair is written, the other told the plate is taken (not thrown at)',
  );

  const cameras = await Promise.all(
    Array.from({ length: ROUNDS }, (_, i) =>
      Promise.all([
        a.vehicles.put(vehicle(`ca${i}`, `CA${i}`, { sourceIds: [`cam${i}`] }), null, auditEntry('vehicle.create', `ca${i}`)),
        b.vehicles.put(vehicle(`cb${i}`, `CB${i}`, { sourceIds: [`cam${i}`] }), null, auditEntry('vehicle.create', `cb${i}`)),
      ]),
    ),
  );
  t.same(outcomes(cameras), Array.from({ length: ROUNDS }, (_, i) => ['ok', JSON.stringify({ conflict: 'source', value: `cam${i}` })]), "one camera, one vehicle's channel");

  const written = plates.map((pair, i) => vehicle(pair[0] === 'ok' ? `pa${i}` : `pb${i}`, `P${i}`, { version: 2 }));
  const updates = await Promise.all(
    written.map((row) =>
      Promise.all([
        a.vehicles.put({ ...row, doc: '{"sim":"","by":"a"}' }, 1, auditEntry('vehicle.update', row.id)),
        b.vehicles.put({ ...row, doc: '{"sim":"","by":"b"}' }, 1, auditEntry('vehicle.update', row.id)),
      ]),
    ),
  );
  t.same(outcomes(updates), Array(ROUNDS).fill(['ok', 'version-conflict']), 'two updates from version 1: one is written, the other finds version 2');
  const audited = await a.audit.list({ limit: 1000, ranges: [['/', '0']], includeSystem: true });
  t.equal(audited.length, ROUNDS * 3, 'an audit entry for each write made, none for the refused');
});

t.test('bounded tables written by two nodes at once hold their bound', needsCluster(), async (t) => {
  const [a, b] = await twoNodes(t);
  const MAX = 5;
  const attempts = Array.from({ length: 40 }, (_, i) => ({ i, at: 1_000 + ((i * 17) % 40) }));
  await Promise.all(
    attempts.map(({ i, at }) =>
      (i % 2 ? a : b).gb.recordRefusal({ deviceId: `3402000000132000${String(i).padStart(4, '0')}`, address: '198.51.100.1:5060', reason: 'unknown', deptPath: null, at }, MAX),
    ),
  );
  const kept = await a.gb.refusals({ ranges: [], includeUnscoped: true, limit: 100 });
  t.same(kept.map((r) => r.lastAt), [1_039, 1_038, 1_037, 1_036, 1_035], 'exactly the bound, and the most recent attempts, whatever order they came in');

  for (let i = 0; i < 20; i++) await a.alarms.save({ id: `a${String(i).padStart(2, '0')}`, vehicleId: 'v', deptPath: '/east/', type: 'leak', state: 'raised', raisedAt: i, updatedAt: i, doc: '{}' }, null);
  const bounds = { maxCount: 4, maxBytes: 1_000_000 };
  const evicted = await Promise.all(
    Array.from({ length: 20 }, (_, i) => {
      const alarmId = `a${String(i).padStart(2, '0')}`;
      return (i % 2 ? a : b).alarms.saveSnapshot({ alarmId, cameraId: 'c', takenAt: 2_000 + i, width: 4, height: 3, jpeg: Buffer.alloc(100, i), error: null }, bounds);
    }),
  );
  const withPicture: string[] = [];
  for (let i = 0; i < 20; i++) if (await a.alarms.snapshot(`a${String(i).padStart(2, '0')}`)) withPicture.push(`a${i}`);
  t.same(withPicture, ['a16', 'a17', 'a18', 'a19'], 'the newest pictures within maxCount');
  const named = evicted.flat().sort();
  t.same(named, Array.from({ length: 16 }, (_, i) => `a${String(i).padStart(2, '0')}`), 'every evicted alarm named once, by the node whose save evicted it');
});

t.test('a source added during an import on another node never lands between the import rows', needsCluster(), async (t) => {
  const [a, b, dep] = await twoNodes(t);
  // Search pages by seq: a single add that took a seq inside a running import's range, and committed
  // first, would let a reader page past the import's rows before they were visible.
  const rows = Array.from({ length: 3_000 }, (_, i) => ({ line: i + 2, write: sourceWrite(dep, { id: `imp${i}` }) }));
  const importing = a.sources.importRows(rows, [['/', '0']], true, 1);
  // Adds one after another on the other node while the import runs, until it has committed.
  let done = false;
  const imported = importing.finally(() => (done = true));
  let singles = 0;
  while (!done) await b.sources.create(sourceWrite(dep, { id: `single${singles++}` }), 1);
  t.equal((await imported).created, rows.length);
  const seqs = await a.db.query<{ id: string; seq: number }>(`SELECT id, seq FROM sources ORDER BY seq`);
  const importSeqs = seqs.filter((r) => r.id.startsWith('imp')).map((r) => r.seq);
  const [low, high] = [Math.min(...importSeqs), Math.max(...importSeqs)];
  t.same(
    seqs.filter((r) => r.id.startsWith('single') && r.seq > low && r.seq < high).map((r) => r.id),
    [],
    'every single add took a seq before or after the whole import',
  );
});

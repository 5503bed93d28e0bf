import { join } from 'node:path';
import t, { type Test } from 'tap';
import { SqliteStore } from '../../../gateway/src/store/sqlite/index.js';
import { StoreConflict, type GbDeviceRecord } from '../../../gateway/src/store/types.js';
import { tempDir } from '../../helpers/gateway.js';

const audit = (action: string, target: string) => ({ at: 1, actor: 'admin', actorIp: '127.0.0.1', action, target, outcome: 'ok' as const, detail: {}, scopePath: '/root/' });

async function storeWithTree(t: Test) {
  const store = SqliteStore.open(join(tempDir(t), 'gb.db'));
  t.teardown(() => store.close());
  await store.departments.create({ id: 'root', name: 'Root', parentId: null, level: 'national', path: '/root/' }, 1);
  await store.departments.create({ id: 'east', name: 'East', parentId: 'root', level: 'province', path: '/root/east/' }, 1);
  await store.departments.create({ id: 'west', name: 'West', parentId: 'root', level: 'province', path: '/root/west/' }, 1);
  return store;
}

const device = (id: string, dep: 'east' | 'west', extra: Partial<GbDeviceRecord> = {}): GbDeviceRecord => ({
  id,
  name: `Device ${id.slice(-3)}`,
  departmentId: dep,
  deptPath: `/root/${dep}/`,
  sealedPassword: Buffer.from('sealed'),
  streamMode: 'udp',
  origin: 'admin',
  ruleId: null,
  enabled: true,
  online: false,
  transport: null,
  address: null,
  port: null,
  registeredAt: null,
  expiresAt: null,
  lastKeepaliveAt: null,
  manufacturer: null,
  model: null,
  firmware: null,
  channelCount: 0,
  catalogAt: null,
  createdAt: 10,
  updatedAt: 10,
  ...extra,
});

const actions = async (store: SqliteStore) => (await store.audit.list({ limit: 100, ranges: [['/', '0']], includeSystem: true })).map((e) => `${e.action} ${e.target}`).reverse();

t.test('a device is created with its audit entry, read back whole, and a second one with the same id is a conflict', async (t) => {
  const store = await storeWithTree(t);
  const d = device('34020000001320000001', 'east');
  await store.gb.createDevice(d, audit('gb.device.create', d.id));
  t.same(await store.gb.getDevice(d.id), d);
  await t.rejects(store.gb.createDevice(d, audit('gb.device.create', d.id)), StoreConflict);
  t.same(await actions(store), ['gb.device.create 34020000001320000001'], 'the failed create wrote no audit entry');
});

t.test('devices list by department subtree, paged by (path, id)', async (t) => {
  const store = await storeWithTree(t);
  for (const [i, dep] of (['east', 'west', 'east', 'west', 'east'] as const).entries()) {
    await store.gb.createDevice(device(`3402000000132000000${i}`, dep), audit('gb.device.create', String(i)));
  }
  const east = await store.gb.listDevices({ ranges: [['/root/east/', '/root/east0']], limit: 10 });
  t.same(east.map((d) => d.id), ['34020000001320000000', '34020000001320000002', '34020000001320000004']);
  const first = await store.gb.listDevices({ ranges: [['/root/', '/root0']], limit: 2 });
  const last = first[first.length - 1]!;
  const rest = await store.gb.listDevices({ ranges: [['/root/', '/root0']], after: { path: last.deptPath, id: last.id }, limit: 10 });
  t.same([...first, ...rest].map((d) => d.deptPath + d.id), [...first, ...rest].map((d) => d.deptPath + d.id).sort(), 'in path order');
  t.equal(first.length + rest.length, 5, 'every device once across the pages');
  t.same(await store.gb.listDevices({ ranges: [], limit: 10 }), [], 'an empty scope sees nothing');
});

t.test('presence, info and the catalog count are written; updates keep what they do not change', async (t) => {
  const store = await storeWithTree(t);
  const d = device('34020000001320000001', 'east');
  await store.gb.createDevice(d, audit('gb.device.create', d.id));
  const presence = { online: true, transport: 'tcp' as const, address: '192.0.2.10', port: 5060, registeredAt: 100, expiresAt: 3_700, lastKeepaliveAt: 160 };
  t.ok(await store.gb.setPresence(d.id, presence, 160));
  t.notOk(await store.gb.setPresence('34020000001320000099', presence, 160), 'an unknown device is reported');
  await store.gb.setInfo(d.id, { manufacturer: 'Hikvision', model: 'DS-2CD', firmware: 'V5.5', name: 'Gate camera' }, 170);
  await store.gb.setCatalog(d.id, 12, 180);
  t.match(await store.gb.getDevice(d.id), { ...presence, manufacturer: 'Hikvision', model: 'DS-2CD', firmware: 'V5.5', name: d.name, channelCount: 12, catalogAt: 180 }, 'the admin-given name is not replaced by DeviceInfo');

  const ruled = device('34020000001320000002', 'east', { name: '34020000001320000002', origin: 'rule' });
  await store.gb.createDevice(ruled, audit('gb.device.admit', ruled.id));
  await store.gb.setInfo(ruled.id, { manufacturer: null, model: null, firmware: null, name: '东门' }, 170);
  t.equal((await store.gb.getDevice(ruled.id))?.name, '东门', 'a device still named by its id takes the name it reports');

  const updated = await store.gb.updateDevice(d.id, { enabled: false, streamMode: 'tcp-active' }, 200, audit('gb.device.update', d.id));
  t.match(updated, { enabled: false, streamMode: 'tcp-active', name: d.name, sealedPassword: Buffer.from('sealed'), online: true, updatedAt: 200 });
  t.same(await store.gb.getDevice(d.id), updated);
  t.equal(await store.gb.updateDevice('34020000001320000099', { enabled: false }, 200, audit('gb.device.update', 'x')), null);
  t.ok(await store.gb.deleteDevice(d.id, audit('gb.device.delete', d.id)));
  t.notOk(await store.gb.deleteDevice(d.id, audit('gb.device.delete', d.id)));
  t.same(await actions(store), ['gb.device.create 34020000001320000001', 'gb.device.admit 34020000001320000002', 'gb.device.update 34020000001320000001', 'gb.device.delete 34020000001320000001']);
});

t.test('refusals count per id and address, stay within their bound by dropping the least recent, and are forgotten when the device is admitted', async (t) => {
  const store = await storeWithTree(t);
  const id = (i: number) => `3402000000132000${String(i).padStart(4, '0')}`;
  for (let i = 0; i < 5; i++) await store.gb.recordRefusal({ deviceId: id(i), address: '198.51.100.1:5060', reason: 'unknown', deptPath: null, at: 100 + i }, 4);
  await store.gb.recordRefusal({ deviceId: id(1), address: '198.51.100.1:5060', reason: 'unknown', deptPath: null, at: 200 }, 4);
  const rows = await store.gb.refusals({ ranges: [], includeUnscoped: true, limit: 10 });
  t.same(rows.map((r) => r.deviceId), [id(1), id(4), id(3), id(2)], 'the oldest (0) went; the repeated one is most recent');
  t.match(rows[0], { count: 2, firstAt: 101, lastAt: 200 });
  t.same(await store.gb.refusals({ ranges: [['/root/', '/root0']], includeUnscoped: false, limit: 10 }), [], 'unknown ids have no department');

  await store.gb.recordRefusal({ deviceId: id(9), address: '198.51.100.2:5060', reason: 'password', deptPath: '/root/east/', at: 300 }, 10);
  t.same((await store.gb.refusals({ ranges: [['/root/east/', '/root/east0']], includeUnscoped: false, limit: 10 })).map((r) => r.deviceId), [id(9)], 'a known device\'s refusal is in its department');

  await store.gb.createDevice(device(id(1), 'east'), audit('gb.device.create', id(1)));
  t.notOk((await store.gb.refusals({ ranges: [], includeUnscoped: true, limit: 10 })).some((r) => r.deviceId === id(1)), 'admitted: no longer refused');
  const all = { ranges: [], includeUnscoped: true };
  t.equal(await store.gb.deleteRefusals(id(9), { ranges: [['/root/west/', '/root/west0']], includeUnscoped: true }, null), 0, "another department's refusal is not the actor's to delete");
  t.equal(await store.gb.deleteRefusals(id(9), { ranges: [['/root/east/', '/root/east0']], includeUnscoped: false }, null), 1, 'its own department may');
  t.equal(await store.gb.deleteRefusals(id(4), all, audit('gb.refusal.delete', id(4))), 1);
  t.equal(await store.gb.deleteRefusals(id(4), all, null), 0);
});

t.test('admission rules: a prefix is unique; a department with devices or rules is not deleted, and a move carries their paths', async (t) => {
  const store = await storeWithTree(t);
  const rule = { id: 'r1', prefix: '3402000000132', departmentId: 'west', deptPath: '/root/west/', sealedPassword: Buffer.from('s'), streamMode: 'udp' as const, createdAt: 5 };
  await store.gb.createRule(rule, audit('gb.rule.create', 'r1'));
  await t.rejects(store.gb.createRule({ ...rule, id: 'r2' }, audit('gb.rule.create', 'r2')), StoreConflict);
  t.same(await store.gb.rules(), [rule]);
  await store.gb.createDevice(device('34020000001320000001', 'east'), audit('gb.device.create', 'd'));
  await store.gb.recordRefusal({ deviceId: '34020000001320000007', address: 'a', reason: 'disabled', deptPath: '/root/east/', at: 1 }, 10);
  t.equal(await store.departments.delete('east'), false, 'a device holds its department');
  t.equal(await store.departments.delete('west'), false, 'a rule holds its department');

  await store.departments.create({ id: 'north', name: 'North', parentId: 'root', level: 'province', path: '/root/north/' }, 1);
  await store.departments.update('east', { parentId: 'north', path: '/root/north/east/' }, 2);
  t.equal((await store.gb.getDevice('34020000001320000001'))?.deptPath, '/root/north/east/');
  t.equal((await store.gb.refusals({ ranges: [['/root/north/', '/root/north0']], includeUnscoped: false, limit: 10 })).length, 1, 'refusals follow the move');
  t.ok(await store.gb.deleteRule('r1', audit('gb.rule.delete', 'r1')));
  t.equal(await store.departments.delete('west'), true);
});

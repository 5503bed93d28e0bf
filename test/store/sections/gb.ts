/** GB/T 28181 devices, admission rules and refused registrations. */
import type { Test } from 'tap';
import { StoreConflict, type DepartmentRecord, type GbDeviceRecord } from '../../../gateway/src/store/types.js';
import { blankGbDevice } from '../../../gateway/src/gb28181/directory.js';
import type { OpenStore } from '../contract.js';
import { auditTrail, departmentTree, digits, moveBelowNew, subtree } from '../fixtures.js';

const device = (id: string, dep: DepartmentRecord, extra: Partial<GbDeviceRecord> = {}): GbDeviceRecord => ({
  ...blankGbDevice(id, 10),
  name: `Device ${id.slice(-3)}`,
  departmentId: dep.id,
  deptPath: dep.path,
  sealedPassword: Buffer.from('sealed'),
  ...extra,
});

/** 20-digit device ids sharing a random 16-digit prefix, numbered by `i`. */
const deviceIds = () => {
  const prefix = digits(16);
  return (i: number) => `${prefix}${String(i).padStart(4, '0')}`;
};

export default function gb(t: Test, open: OpenStore) {
  t.test('a device is created with its audit entry, read back whole, and a second one with the same id is a conflict', async (t) => {
    const store = await open(t);
    const { top, east } = await departmentTree(store);
    const audit = auditTrail(store, top.path);
    const d = device(digits(20), east);
    await store.gb.createDevice(d, audit.entry('gb.device.create', d.id));
    t.same(await store.gb.getDevice(d.id), d);
    await t.rejects(store.gb.createDevice(d, audit.entry('gb.device.create', d.id)), StoreConflict);
    t.same(await audit.actions(), [`gb.device.create ${d.id}`], 'the failed create wrote no audit entry');
  });

  t.test('devices list by department subtree, paged by (path, id)', async (t) => {
    const store = await open(t);
    const { top, east, west } = await departmentTree(store);
    const audit = auditTrail(store, top.path);
    const id = deviceIds();
    for (const [i, dep] of [east, west, east, west, east].entries()) await store.gb.createDevice(device(id(i), dep), audit.entry('gb.device.create', id(i)));
    const inEast = await store.gb.listDevices({ ranges: [subtree(east)], limit: 10 });
    t.same(inEast.map((d) => d.id), [id(0), id(2), id(4)]);
    const first = await store.gb.listDevices({ ranges: [subtree(top)], limit: 2 });
    const last = first[first.length - 1]!;
    const rest = await store.gb.listDevices({ ranges: [subtree(top)], after: { path: last.deptPath, id: last.id }, limit: 10 });
    const order = [east, west].sort((a, b) => (a.path < b.path ? -1 : 1));
    const expected = order.flatMap((dep) => [0, 1, 2, 3, 4].filter((i) => (i % 2 === 0) === (dep === east)).map(id));
    t.same([...first, ...rest].map((d) => d.id), expected, 'in (path, id) order, every device once across the pages');
    t.same(await store.gb.listDevices({ ranges: [], limit: 10 }), [], 'an empty scope sees nothing');
  });

  t.test('presence, info and the catalog count are written; updates keep what they do not change', async (t) => {
    const store = await open(t);
    const { top, east } = await departmentTree(store);
    const audit = auditTrail(store, top.path);
    const id = deviceIds();
    const d = device(id(1), east);
    await store.gb.createDevice(d, audit.entry('gb.device.create', d.id));
    const presence = { online: true, transport: 'tcp' as const, address: '192.0.2.10', port: 5060, registeredAt: 100, expiresAt: 3_700, lastKeepaliveAt: 160 };
    t.ok(await store.gb.setPresence(d.id, presence, 160));
    t.notOk(await store.gb.setPresence(id(99), presence, 160), 'an unknown device is reported');
    await store.gb.setInfo(d.id, { manufacturer: 'Hikvision', model: 'DS-2CD', firmware: 'V5.5', name: 'Gate camera' }, 170);
    await store.gb.setCatalog(d.id, 12, 180);
    t.match(await store.gb.getDevice(d.id), { ...presence, manufacturer: 'Hikvision', model: 'DS-2CD', firmware: 'V5.5', name: d.name, channelCount: 12, catalogAt: 180 }, 'the admin-given name is not replaced by DeviceInfo');

    const ruled = device(id(2), east, { name: id(2), origin: 'rule' });
    await store.gb.createDevice(ruled, audit.entry('gb.device.admit', ruled.id));
    await store.gb.setInfo(ruled.id, { manufacturer: null, model: null, firmware: null, name: '东门' }, 170);
    t.equal((await store.gb.getDevice(ruled.id))?.name, '东门', 'a device still named by its id takes the name it reports');

    const updated = await store.gb.updateDevice(d.id, { enabled: false, streamMode: 'tcp-active' }, 200, audit.entry('gb.device.update', d.id));
    t.match(updated, { enabled: false, streamMode: 'tcp-active', name: d.name, sealedPassword: Buffer.from('sealed'), online: true, updatedAt: 200 });
    t.same(await store.gb.getDevice(d.id), updated);
    t.equal(await store.gb.updateDevice(id(99), { enabled: false }, 200, audit.entry('gb.device.update', 'x')), null);
    t.ok(await store.gb.deleteDevice(d.id, audit.entry('gb.device.delete', d.id)));
    t.notOk(await store.gb.deleteDevice(d.id, audit.entry('gb.device.delete', d.id)));
    t.same(await audit.actions(), [`gb.device.create ${id(1)}`, `gb.device.admit ${id(2)}`, `gb.device.update ${id(1)}`, `gb.device.delete ${id(1)}`]);
  });

  t.test('refusals count per id and address, stay within their bound by dropping the least recent, and are forgotten when the device is admitted', async (t) => {
    // The bound is the whole table's.
    const store = await open(t, { empty: true });
    const { top, east, west } = await departmentTree(store);
    const audit = auditTrail(store, top.path);
    const id = deviceIds();
    for (let i = 0; i < 5; i++) await store.gb.recordRefusal({ deviceId: id(i), address: '198.51.100.1:5060', reason: 'unknown', deptPath: null, at: 100 + i }, 4);
    await store.gb.recordRefusal({ deviceId: id(1), address: '198.51.100.1:5060', reason: 'unknown', deptPath: null, at: 200 }, 4);
    const rows = await store.gb.refusals({ ranges: [], includeUnscoped: true, limit: 10 });
    t.same(rows.map((r) => r.deviceId), [id(1), id(4), id(3), id(2)], 'the oldest (0) went; the repeated one is most recent');
    t.match(rows[0], { count: 2, firstAt: 101, lastAt: 200 });
    t.same(await store.gb.refusals({ ranges: [subtree(top)], includeUnscoped: false, limit: 10 }), [], 'unknown ids have no department');

    await store.gb.recordRefusal({ deviceId: id(9), address: '198.51.100.2:5060', reason: 'password', deptPath: east.path, at: 300 }, 10);
    t.same((await store.gb.refusals({ ranges: [subtree(east)], includeUnscoped: false, limit: 10 })).map((r) => r.deviceId), [id(9)], "a known device's refusal is in its department");

    await store.gb.createDevice(device(id(1), east), audit.entry('gb.device.create', id(1)));
    t.notOk((await store.gb.refusals({ ranges: [], includeUnscoped: true, limit: 10 })).some((r) => r.deviceId === id(1)), 'admitted: no longer refused');
    const all = { ranges: [subtree(top)], includeUnscoped: true };
    t.equal(await store.gb.deleteRefusals(id(9), { ranges: [subtree(west)], includeUnscoped: true }, null), 0, "another department's refusal is not the actor's to delete");
    t.equal(await store.gb.deleteRefusals(id(9), { ranges: [subtree(east)], includeUnscoped: false }, null), 1, 'its own department may');
    t.equal(await store.gb.deleteRefusals(id(4), all, audit.entry('gb.refusal.delete', id(4))), 1);
    t.equal(await store.gb.deleteRefusals(id(4), all, audit.entry('gb.refusal.delete', id(4))), 0);
    t.same(await audit.actions(), [`gb.device.create ${id(1)}`, `gb.refusal.delete ${id(4)}`], 'a deletion that removed nothing is not audited');
  });

  t.test('admission rules: a prefix is unique; a department with devices or rules is not deleted, and a move carries their paths', async (t) => {
    const store = await open(t);
    const { top, east, west } = await departmentTree(store);
    const audit = auditTrail(store, top.path);
    const id = deviceIds();
    const rule = { id: `r${digits(8)}`, prefix: digits(13), departmentId: west.id, deptPath: west.path, sealedPassword: Buffer.from('s'), streamMode: 'udp' as const, createdAt: 5 };
    await store.gb.createRule(rule, audit.entry('gb.rule.create', rule.id));
    await t.rejects(store.gb.createRule({ ...rule, id: `${rule.id}b` }, audit.entry('gb.rule.create', 'b')), StoreConflict, 'the prefix is taken');
    await t.rejects(store.gb.createRule({ ...rule, prefix: digits(14) }, audit.entry('gb.rule.create', 'c')), StoreConflict, 'the id is taken');
    t.same((await store.gb.rules()).filter((r) => r.id === rule.id), [rule]);
    await store.gb.createDevice(device(id(1), east), audit.entry('gb.device.create', 'd'));
    await store.gb.recordRefusal({ deviceId: id(7), address: 'a', reason: 'disabled', deptPath: east.path, at: 1 }, 1_000);
    t.equal(await store.departments.delete(east.id), false, 'a device holds its department');
    t.equal(await store.departments.delete(west.id), false, 'a rule holds its department');

    const moved = await moveBelowNew(store, top, east);
    t.equal((await store.gb.getDevice(id(1)))?.deptPath, moved.path);
    t.same((await store.gb.rules()).filter((r) => r.id === rule.id).map((r) => r.deptPath), [west.path], 'a rule outside the moved subtree keeps its path');
    t.same((await store.gb.refusals({ ranges: [subtree(moved)], includeUnscoped: false, limit: 10 })).map((r) => r.deviceId), [id(7)], 'refusals follow the move');
    t.ok(await store.gb.deleteRule(rule.id, audit.entry('gb.rule.delete', rule.id)));
    t.equal(await store.departments.delete(west.id), true);
  });
}

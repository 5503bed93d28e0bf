import { join } from 'node:path';
import t, { type Test } from 'tap';
import { SqliteStore } from '../../../gateway/src/store/sqlite/index.js';
import type { JtTerminalRecord } from '../../../gateway/src/store/types.js';
import { tempDir } from '../../helpers/gateway.js';

async function storeWithTree(t: Test) {
  const store = SqliteStore.open(join(tempDir(t), 'jt.db'));
  t.teardown(() => store.close());
  await store.departments.create({ id: 'root', name: 'Root', parentId: null, level: 'national', path: '/root/' }, 1);
  await store.departments.create({ id: 'east', name: 'East', parentId: 'root', level: 'province', path: '/root/east/' }, 1);
  return store;
}

const terminal = (sim: string, extra: Partial<JtTerminalRecord> = {}): JtTerminalRecord => ({
  sim,
  vehicleId: `veh-${sim}`,
  authCode: 'code-1',
  edition: '2013',
  phone: sim.padStart(12, '0'),
  plate: '粤A12345',
  plateColor: 2,
  terminalId: 'CHI123',
  manufacturer: '1234',
  model: 'smallchi123',
  registeredAt: 10,
  seenAt: null,
  address: null,
  ...extra,
});

const info = { plate: '', plateColor: 0, terminalId: '', manufacturer: '', model: '' };

t.test('a terminal is stored whole, replaced by a new registration, marked seen, and deleted', async (t) => {
  const store = await storeWithTree(t);
  const a = terminal('13800000001');
  await store.jt.putTerminal(a);
  t.same(await store.jt.getTerminal(a.sim), a);
  await store.jt.putTerminal({ ...a, authCode: 'code-2', edition: '2019', phone: a.sim.padStart(20, '0') });
  t.match(await store.jt.getTerminal(a.sim), { authCode: 'code-2', edition: '2019' }, 'a new registration replaces the code');
  t.ok(await store.jt.setSeen(a.sim, 50, '192.0.2.7:40000', null));
  t.match(await store.jt.getTerminal(a.sim), { seenAt: 50, address: '192.0.2.7:40000', edition: '2019' }, 'an address or edition not given is kept');
  t.ok(await store.jt.setSeen(a.sim, 60, null, null));
  t.match(await store.jt.getTerminal(a.sim), { seenAt: 60, address: '192.0.2.7:40000' });
  t.notOk(await store.jt.setSeen('13800000099', 60, null, null), 'an unknown SIM is reported');
  await store.jt.putTerminal(terminal('13800000002'));
  t.same((await store.jt.terminals()).map((r) => r.sim), ['13800000001', '13800000002']);
  t.notOk(await store.jt.deleteTerminal(a.sim, 'veh-other'), "another vehicle's deletion leaves the SIM's code (it moved since)");
  t.ok(await store.jt.deleteTerminal(a.sim, a.vehicleId));
  t.notOk(await store.jt.deleteTerminal(a.sim, a.vehicleId));
  t.equal(await store.jt.getTerminal(a.sim), null);
});

t.test('refusals are counted per SIM and address, keep what the terminal sent, and are bounded', async (t) => {
  const store = await storeWithTree(t);
  const sent = { plate: '粤B00001', plateColor: 1, terminalId: 'T1', manufacturer: 'ACME', model: 'X1' };
  await store.jt.recordRefusal({ sim: '13900000001', address: '192.0.2.1:1000', reason: 'unknown', deptPath: null, ...sent, at: 1 }, 3);
  // An authentication attempt sends no plate: what the registration told us stays.
  await store.jt.recordRefusal({ sim: '13900000001', address: '192.0.2.1:1000', reason: 'unknown', deptPath: null, ...info, at: 2 }, 3);
  await store.jt.recordRefusal({ sim: '13900000002', address: '192.0.2.2:1000', reason: 'auth', deptPath: '/root/east/', ...info, at: 3 }, 3);
  await store.jt.recordRefusal({ sim: '13900000003', address: '192.0.2.3:1000', reason: 'unknown', deptPath: null, ...info, at: 4 }, 3);
  const all = await store.jt.refusals({ ranges: [['/root/', '/root0']], includeUnscoped: true, limit: 10 });
  t.same(all.map((r) => r.sim), ['13900000003', '13900000002', '13900000001'], 'most recent first');
  t.match(all[2], { ...sent, count: 2, firstAt: 1, lastAt: 2 });
  await store.jt.recordRefusal({ sim: '13900000004', address: '192.0.2.4:1000', reason: 'unknown', deptPath: null, ...info, at: 5 }, 3);
  const bounded = await store.jt.refusals({ ranges: [['/root/', '/root0']], includeUnscoped: true, limit: 10 });
  t.same(bounded.map((r) => r.sim), ['13900000004', '13900000003', '13900000002'], 'the least recent row went');
  t.same((await store.jt.refusals({ ranges: [['/root/east/', '/root/east0']], includeUnscoped: false, limit: 10 })).map((r) => r.sim), ['13900000002'], 'a department admin sees only its SIMs');
  t.same(await store.jt.refusals({ ranges: [], includeUnscoped: false, limit: 10 }), [], 'an empty scope sees nothing');

  await store.jt.putTerminal(terminal('13900000003'));
  t.notOk((await store.jt.refusals({ ranges: [], includeUnscoped: true, limit: 10 })).some((r) => r.sim === '13900000003'), 'registering forgets its refusals');
  const everywhere = { ranges: [['/root/', '/root0']] as [string, string][], includeUnscoped: true };
  t.equal(await store.jt.deleteRefusals('13900000004', everywhere, { at: 9, actor: 'admin', actorIp: '-', action: 'jt.refusal.delete', target: '13900000004', outcome: 'ok', detail: {}, scopePath: null }), 1);
  t.equal(await store.jt.deleteRefusals('13900000004', everywhere, null), 0);
  // The same SIM refused from two addresses, listed under two departments: an admin forgets only the row it sees.
  await store.jt.recordRefusal({ sim: '13900000002', address: '192.0.2.9:1000', reason: 'auth', deptPath: '/root/west/', ...info, at: 6 }, 10);
  t.equal(await store.jt.deleteRefusals('13900000002', { ranges: [['/root/east/', '/root/east0']], includeUnscoped: false }, null), 1);
  t.same((await store.jt.refusals({ ...everywhere, limit: 10 })).filter((r) => r.sim === '13900000002').map((r) => r.deptPath), ['/root/west/'], "the other department's row stays");
  await store.jt.recordRefusal({ sim: '13900000002', address: '192.0.2.2:1000', reason: 'auth', deptPath: '/root/east/', ...info, at: 3 }, 10);

  await store.departments.create({ id: 'north', name: 'North', parentId: 'root', level: 'province', path: '/root/north/' }, 1);
  await store.departments.update('east', { parentId: 'north', path: '/root/north/east/' }, 2);
  t.same((await store.jt.refusals({ ranges: [['/root/north/', '/root/north0']], includeUnscoped: false, limit: 10 })).map((r) => r.sim), ['13900000002'], 'refusals follow a department move');
});

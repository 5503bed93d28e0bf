/** JT/T 808 terminals (their auth codes) and refused terminals. */
import type { Test } from 'tap';
import type { JtTerminalRecord } from '../../../gateway/src/store/types.js';
import type { OpenStore } from '../contract.js';
import { auditTrail, departmentTree, digits, moveBelowNew, subtree } from '../fixtures.js';

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

/** 11-digit SIMs sharing a random prefix, numbered by `i` (no leading zero: stored SIMs have none). */
const sims = () => {
  const prefix = `1${digits(7)}`;
  return (i: number) => `${prefix}${String(i).padStart(3, '0')}`;
};

export default function jt(t: Test, open: OpenStore) {
  t.test('a terminal is stored whole, replaced by a new registration, marked seen, and deleted', async (t) => {
    const store = await open(t);
    const audit = auditTrail(store);
    const sim = sims();
    const a = terminal(sim(1));
    await store.jt.putTerminal(a);
    t.same(await store.jt.getTerminal(a.sim), a);
    await store.jt.putTerminal({ ...a, authCode: 'code-2', edition: '2019', phone: a.sim.padStart(20, '0') });
    t.match(await store.jt.getTerminal(a.sim), { authCode: 'code-2', edition: '2019' }, 'a new registration replaces the code');
    t.ok(await store.jt.setSeen(a.sim, 50, '192.0.2.7:40000', null));
    t.match(await store.jt.getTerminal(a.sim), { seenAt: 50, address: '192.0.2.7:40000', edition: '2019' }, 'an address or edition not given is kept');
    t.ok(await store.jt.setSeen(a.sim, 60, null, null));
    t.match(await store.jt.getTerminal(a.sim), { seenAt: 60, address: '192.0.2.7:40000' });
    t.notOk(await store.jt.setSeen(sim(99), 60, null, null), 'an unknown SIM is reported');
    await store.jt.putTerminal(terminal(sim(2)));
    t.same((await store.jt.terminals()).map((r) => r.sim).filter((s) => s.startsWith(sim(0).slice(0, 8))), [sim(1), sim(2)], 'by SIM');
    t.notOk(await store.jt.deleteTerminal(a.sim, 'veh-other'), "another vehicle's deletion leaves the SIM's code (it moved since)");
    t.ok(await store.jt.deleteTerminal(a.sim, a.vehicleId, audit.entry('jt.terminal.reset', a.sim)));
    t.notOk(await store.jt.deleteTerminal(a.sim, a.vehicleId, audit.entry('jt.terminal.reset', a.sim)));
    t.same(await audit.actions(), [`jt.terminal.reset ${a.sim}`], 'audited once: the second deletion found nothing');
    t.equal(await store.jt.getTerminal(a.sim), null);
  });

  t.test('refusals are counted per SIM and address, keep what the terminal sent, and are bounded', async (t) => {
    // The bound is the whole table's.
    const store = await open(t, { empty: true });
    const { top, east, west } = await departmentTree(store);
    const audit = auditTrail(store);
    const sim = sims();
    const sent = { plate: '粤B00001', plateColor: 1, terminalId: 'T1', manufacturer: 'ACME', model: 'X1' };
    await store.jt.recordRefusal({ sim: sim(1), address: '192.0.2.1:1000', reason: 'unknown', deptPath: null, ...sent, at: 1 }, 3);
    // An authentication attempt sends no plate: what the registration told us stays.
    await store.jt.recordRefusal({ sim: sim(1), address: '192.0.2.1:1000', reason: 'unknown', deptPath: null, ...info, at: 2 }, 3);
    await store.jt.recordRefusal({ sim: sim(2), address: '192.0.2.2:1000', reason: 'auth', deptPath: east.path, ...info, at: 3 }, 3);
    await store.jt.recordRefusal({ sim: sim(3), address: '192.0.2.3:1000', reason: 'unknown', deptPath: null, ...info, at: 4 }, 3);
    const everything = { ranges: [subtree(top)], includeUnscoped: true };
    const all = await store.jt.refusals({ ...everything, limit: 10 });
    t.same(all.map((r) => r.sim), [sim(3), sim(2), sim(1)], 'most recent first');
    t.match(all[2], { ...sent, count: 2, firstAt: 1, lastAt: 2 });
    await store.jt.recordRefusal({ sim: sim(4), address: '192.0.2.4:1000', reason: 'unknown', deptPath: null, ...info, at: 5 }, 3);
    t.same((await store.jt.refusals({ ...everything, limit: 10 })).map((r) => r.sim), [sim(4), sim(3), sim(2)], 'the least recent row went');
    t.same((await store.jt.refusals({ ranges: [subtree(east)], includeUnscoped: false, limit: 10 })).map((r) => r.sim), [sim(2)], 'a department admin sees only its SIMs');
    t.same(await store.jt.refusals({ ranges: [], includeUnscoped: false, limit: 10 }), [], 'an empty scope sees nothing');

    await store.jt.putTerminal(terminal(sim(3)));
    t.notOk((await store.jt.refusals({ ranges: [], includeUnscoped: true, limit: 10 })).some((r) => r.sim === sim(3)), 'registering forgets its refusals');
    t.equal(await store.jt.deleteRefusals(sim(4), everything, audit.entry('jt.refusal.delete', sim(4))), 1);
    t.equal(await store.jt.deleteRefusals(sim(4), everything, audit.entry('jt.refusal.delete', sim(4))), 0);
    t.same(await audit.actions(), [`jt.refusal.delete ${sim(4)}`], 'a deletion that removed nothing is not audited');
    // The same SIM refused from two addresses, listed under two departments: an admin forgets only the row it sees.
    await store.jt.recordRefusal({ sim: sim(2), address: '192.0.2.9:1000', reason: 'auth', deptPath: west.path, ...info, at: 6 }, 10);
    t.equal(await store.jt.deleteRefusals(sim(2), { ranges: [subtree(east)], includeUnscoped: false }, null), 1);
    t.same((await store.jt.refusals({ ...everything, limit: 10 })).filter((r) => r.sim === sim(2)).map((r) => r.deptPath), [west.path], "the other department's row stays");
    await store.jt.recordRefusal({ sim: sim(2), address: '192.0.2.2:1000', reason: 'auth', deptPath: east.path, ...info, at: 3 }, 10);

    const moved = await moveBelowNew(store, top, east);
    t.same((await store.jt.refusals({ ranges: [subtree(moved)], includeUnscoped: false, limit: 10 })).map((r) => `${r.sim} ${r.deptPath}`), [`${sim(2)} ${moved.path}`], 'refusals follow a department move');
  });
}

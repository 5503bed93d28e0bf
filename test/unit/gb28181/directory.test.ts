import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { GatewayError, ValidationError } from '../../../gateway/src/errors.js';
import { GbDirectory } from '../../../gateway/src/gb28181/directory.js';
import { NetworkPolicy } from '../../../gateway/src/lib/cidr.js';
import { CredentialSealer } from '../../../gateway/src/registry/credentials.js';
import { Registry, type Actor } from '../../../gateway/src/registry/service.js';
import { SqliteStore } from '../../../gateway/src/store/sqlite/index.js';
import { tempDir } from '../../helpers/gateway.js';

const admin: Actor = { id: 'a', username: 'admin', ip: '127.0.0.1', scopes: ['root'] };
const eastAdmin: Actor = { id: 'e', username: 'east-admin', ip: '127.0.0.2', scopes: ['east'] };
const DEVICE = '34020000001320000001';

async function setup(t: Test) {
  const store = SqliteStore.open(join(tempDir(t), 'dir.db'));
  t.teardown(() => store.close());
  await store.departments.create({ id: 'root', name: 'Root', parentId: null, level: 'national', path: '/root/' }, 1);
  await store.departments.create({ id: 'east', name: 'East', parentId: 'root', level: 'province', path: '/root/east/' }, 1);
  await store.departments.create({ id: 'west', name: 'West', parentId: 'root', level: 'province', path: '/root/west/' }, 1);
  const sealer = new CredentialSealer(randomBytes(32));
  const registry = new Registry(store, sealer, new NetworkPolicy({ allow: [], deny: [] }), async () => []);
  await registry.init();
  const logged: unknown[] = [];
  const log = { info: (o: object, m: string) => void logged.push([o, m]), warn: (o: object, m: string) => void logged.push([o, m]) };
  let now = 1_000;
  const directory = new GbDirectory({ store, sealer, registry, refusedListSize: 3, log, clock: () => now });
  return { store, directory, logged, tick: (ms: number) => (now += ms) };
}

const fieldsOf = (err: unknown) => (err as ValidationError).issues.map((i) => i.field);

t.test('a device added by an admin is admitted with its password, which the store holds sealed and the API never shows', async (t) => {
  const { store, directory, logged } = await setup(t);
  const created = await directory.create(admin, { id: DEVICE, name: 'East gate NVR', departmentId: 'east', password: 'Secr3t-digest', streamMode: 'tcp-passive' });
  t.match(created, { id: DEVICE, origin: 'admin', streamMode: 'tcp-passive', enabled: true, deptPath: '/root/east/' });
  const stored = (await store.gb.getDevice(DEVICE))!;
  t.notOk(stored.sealedPassword!.includes(Buffer.from('Secr3t-digest')), 'sealed, not in clear');
  const admitted = await directory.admission(DEVICE);
  t.equal(admitted?.password, 'Secr3t-digest');
  t.equal(admitted?.device.id, DEVICE);

  const view = directory.view(stored);
  t.equal(view.hasPassword, true);
  t.notMatch(JSON.stringify(view), /Secr3t|sealed/i, 'the view has no password nor its sealed form');
  const audit = await store.audit.list({ limit: 10, ranges: [['/', '0']], includeSystem: true });
  t.match(audit[0], { action: 'gb.device.create', actor: 'admin', target: DEVICE, scopePath: '/root/east/' });
  t.notMatch(JSON.stringify(audit) + JSON.stringify(logged), /Secr3t/, 'nor does the audit log or the log');
});

t.test('the sealed password is bound to its device: copied onto another row it does not open', async (t) => {
  const { store, directory } = await setup(t);
  await directory.create(admin, { id: DEVICE, name: 'A', departmentId: 'east', password: 'first-pass' });
  await directory.create(admin, { id: '34020000001320000002', name: 'B', departmentId: 'east', password: 'other-pass' });
  const sealed = (await store.gb.getDevice(DEVICE))!.sealedPassword!;
  store.db.prepare('UPDATE gb_devices SET sealed_password = ? WHERE id = ?').run(sealed, '34020000001320000002');
  await t.rejects(directory.admission('34020000001320000002'), /unsupported state|authenticate/);
});

t.test('unknown ids are refused (null) unless a rule matches; the longest prefix wins and creates the device in its department', async (t) => {
  const { store, directory } = await setup(t);
  t.equal(await directory.admission(DEVICE), null, 'no device, no rule');
  t.equal(await directory.admission('not-a-gb-id'), null);
  await directory.createRule(admin, { prefix: '3402', departmentId: 'west', password: 'wide-pass' });
  const narrow = await directory.createRule(admin, { prefix: '340200000013', departmentId: 'east', password: 'narrow-pass', streamMode: 'tcp-active' });
  const admitted = await directory.admission(DEVICE);
  t.match(admitted, { password: 'narrow-pass', proposed: true, device: { id: DEVICE, origin: 'rule', ruleId: narrow.id, departmentId: 'east', streamMode: 'tcp-active', name: DEVICE } });
  t.equal(await directory.device(DEVICE), null, 'a proposal writes nothing: ids guessed under a prefix fill no table');
  await directory.admit(admitted!.device);
  t.equal((await directory.device(DEVICE))?.ruleId, narrow.id, 'admitted once its digest passed');
  t.equal((await directory.admission('34029999991320000001'))?.device.departmentId, 'west', 'a shorter prefix for the rest');
  t.equal(await directory.admission('44020000001320000001'), null, 'no rule matches');

  // The device now stands on its own: deleting the rule or changing its password does not change the device's.
  await directory.deleteRule(admin, narrow.id);
  t.equal((await directory.admission(DEVICE))?.password, 'narrow-pass');
  const audit = (await store.audit.list({ limit: 10, ranges: [['/', '0']], includeSystem: true })).map((e) => `${e.actor} ${e.action}`);
  t.ok(audit.includes('system gb.device.admit'), 'the admission by rule is audited as the system');
  t.ok(audit.includes('admin gb.rule.delete'));
});

t.test('a disabled device is refused and told apart from an unknown one', async (t) => {
  const { directory } = await setup(t);
  await directory.create(admin, { id: DEVICE, name: 'A', departmentId: 'east', password: 'pass1234', enabled: false });
  t.equal(await directory.admission(DEVICE), null);
  t.equal((await directory.device(DEVICE))?.enabled, false);
  await directory.update(admin, DEVICE, { enabled: true });
  t.equal((await directory.admission(DEVICE))?.password, 'pass1234');
});

t.test('validation names the field: id, department (missing or outside the scope), stream mode, password length, unknown fields', async (t) => {
  const { directory } = await setup(t);
  const good = { id: DEVICE, name: 'A', departmentId: 'east', password: 'pass1234' };
  const refused: [Record<string, unknown>, Actor, string[]][] = [
    [{ ...good, id: '3402000000132000000' }, admin, ['id']],
    [{ ...good, id: '3402000000132000000x' }, admin, ['id']],
    [{ ...good, departmentId: 'nowhere' }, admin, ['departmentId']],
    [{ ...good, departmentId: 'west' }, eastAdmin, ['departmentId']],
    [{ ...good, streamMode: 'tcp' }, admin, ['streamMode']],
    [{ ...good, password: 'abc' }, admin, ['password']],
    [{ ...good, password: 'x'.repeat(65) }, admin, ['password']],
    [{ ...good, name: '' }, admin, ['name']],
    [{ ...good, colour: 'red' }, admin, ['colour']],
    [{ id: DEVICE, name: 'A', departmentId: 'east' }, admin, ['password']],
  ];
  for (const [input, actor, fields] of refused) {
    const err = await directory.create(actor, input).catch((e: unknown) => e);
    t.type(err, ValidationError, JSON.stringify(input));
    t.same(fieldsOf(err), fields, `names ${fields.join(', ')}`);
    t.notMatch((err as Error).message, /pass1234|x{65}/, 'the password is not in the error');
  }
  await directory.create(admin, good);
  await t.rejects(directory.create(admin, good), { code: 'GW_ERR_CONFLICT' });
  const patchErr = await directory.update(admin, DEVICE, { streamMode: 'rtp' }).catch((e: unknown) => e);
  t.same(fieldsOf(patchErr), ['streamMode']);
  const ruleErr = await directory.createRule(admin, { prefix: '34a', departmentId: 'east', password: 'pass1234' }).catch((e: unknown) => e);
  t.same(fieldsOf(ruleErr), ['prefix']);
});

t.test('department scope: a device outside the actor\'s departments is not found, exactly like a missing one', async (t) => {
  const { directory } = await setup(t);
  await directory.create(admin, { id: DEVICE, name: 'West cam', departmentId: 'west', password: 'pass1234' });
  for (const id of [DEVICE, '34020000001320000099']) {
    const err = await directory.get(eastAdmin, id).catch((e: unknown) => e);
    t.type(err, GatewayError);
    t.equal((err as GatewayError).code, 'GW_ERR_NOT_FOUND');
    t.equal((err as GatewayError).message, `GB device "${id}" not found`);
  }
  await t.rejects(directory.update(eastAdmin, DEVICE, { name: 'x' }), { code: 'GW_ERR_NOT_FOUND' });
  await t.rejects(directory.delete(eastAdmin, DEVICE), { code: 'GW_ERR_NOT_FOUND' });
  t.same((await directory.list(eastAdmin, { limit: 10 })).items, []);
  t.equal((await directory.list(admin, { limit: 10 })).items.length, 1);
  await t.rejects(directory.list(eastAdmin, { departmentId: 'west', limit: 10 }), { code: 'GW_ERR_NOT_FOUND' });
  await directory.createRule(admin, { prefix: '3403', departmentId: 'west', password: 'pass1234' });
  t.same(await directory.listRules(eastAdmin), []);
  t.equal((await directory.listRules(admin)).length, 1);
});

t.test('devices page with a cursor', async (t) => {
  const { directory } = await setup(t);
  for (let i = 0; i < 5; i++) await directory.create(admin, { id: `3402000000132000000${i}`, name: `D${i}`, departmentId: i % 2 ? 'east' : 'west', password: 'pass1234' });
  const seen: string[] = [];
  let cursor: string | undefined;
  do {
    const page = await directory.list(admin, { limit: 2, cursor });
    seen.push(...page.items.map((d) => d.id));
    cursor = page.nextCursor ?? undefined;
  } while (cursor);
  t.equal(seen.length, 5);
  t.equal(new Set(seen).size, 5);
  await t.rejects(directory.list(admin, { limit: 2, cursor: 'garbage' }), { code: 'GW_ERR_BAD_CURSOR' });
});

t.test('refusals: bounded, printable, scoped (unknown ids for whole-system admins only), forgotten on admission', async (t) => {
  const { directory, tick } = await setup(t);
  await directory.create(admin, { id: DEVICE, name: 'A', departmentId: 'east', password: 'pass1234' });
  await directory.recordRefusal(DEVICE, '192.0.2.1:5060', 'password');
  tick(1);
  await directory.recordRefusal('34020000001320000077', '192.0.2.2:5060', 'unknown');
  tick(1);
  await directory.recordRefusal('bad\r\nid\u0000' + 'x'.repeat(100), '192.0.2.3:5060', 'unknown');
  const all = await directory.refusals(admin, 10);
  t.equal(all.length, 3);
  t.match(all[0]!.deviceId, /^bad\?\?id\?x+$/);
  t.equal(all[0]!.deviceId.length, 64);
  t.same((await directory.refusals(eastAdmin, 10)).map((r) => r.deviceId), [DEVICE], 'a department admin sees only the refusals of their devices');
  tick(1);
  await directory.recordRefusal('34020000001320000078', '192.0.2.4:5060', 'unknown');
  t.equal((await directory.refusals(admin, 10)).length, 3, 'refusedListSize 3: the least recent went');
  t.notOk((await directory.refusals(admin, 10)).some((r) => r.deviceId === DEVICE));

  await directory.create(admin, { id: '34020000001320000077', name: 'Admitted', departmentId: 'east', password: 'pass1234' });
  t.notOk((await directory.refusals(admin, 10)).some((r) => r.deviceId === '34020000001320000077'), 'admitting removes it from the list');
  await directory.forgetRefusals(admin, '34020000001320000078');
  await t.rejects(directory.forgetRefusals(eastAdmin, '34020000001320000078'), { code: 'GW_ERR_NOT_FOUND' });
});

t.test('presence and info reach the device; reported text is bounded and printable', async (t) => {
  const { directory } = await setup(t);
  await directory.create(admin, { id: DEVICE, name: DEVICE, departmentId: 'east', password: 'pass1234' });
  await directory.setPresence(DEVICE, { online: true, transport: 'udp', address: '192.0.2.9', port: 5060, registeredAt: 5, expiresAt: 3_605, lastKeepaliveAt: 65 });
  await directory.setInfo(DEVICE, { manufacturer: 'Dahua\u0007', model: 'M'.repeat(300), firmware: null, name: '北门\n' });
  await directory.setCatalog(DEVICE, 42);
  const d = (await directory.device(DEVICE))!;
  t.match(d, { online: true, address: '192.0.2.9', manufacturer: 'Dahua', firmware: null, name: '北门', channelCount: 42 });
  t.equal(d.model!.length, 100);
  t.match(directory.view(d), { lastKeepaliveAt: new Date(65).toISOString(), online: true });
});

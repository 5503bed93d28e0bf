import t from 'tap';
import { buildManscdp, parseManscdp } from '../../../gateway/src/gb28181/xml.js';
import { smallTree, startGateway, type TestGateway } from '../../helpers/gateway.js';

/**
 * The GB/T 28181 admin API over a real gateway (SQLite, routes, guards, response schemas checked):
 * devices, admission rules, refused attempts, scope, and GB channels in the registry.
 */

const DEVICE = '34020000001320000001';
const PLATFORM_B = '34020000002000000002';
const SECRET = 'Dev1ce-Secret!';
const channel = (n: number) => `3402000000131${String(n).padStart(7, '0')}`;

async function gateway(t: Parameters<typeof startGateway>[0]) {
  const gw = await startGateway(t);
  await smallTree(gw);
  return gw;
}

const asAdmin = (gw: TestGateway, method: string, url: string, body?: unknown) => gw.api(method, url, { token: gw.adminToken, ...(body !== undefined ? { body } : {}) });

t.test('an admin adds, reads, changes and deletes a device; the password is write-only and never echoed or logged', async (t) => {
  const gw = await gateway(t);
  const created = await asAdmin(gw, 'POST', '/api/gb28181/devices', { id: DEVICE, name: 'Town A NVR', departmentId: 'townA', password: SECRET, streamMode: 'tcp-passive' });
  t.equal(created.status, 201, created.body);
  t.equal(created.headers.location, `/api/gb28181/devices/${DEVICE}`);
  t.match(created.json, { id: DEVICE, name: 'Town A NVR', departmentId: 'townA', departmentName: 'Town A', streamMode: 'tcp-passive', origin: 'admin', enabled: true, hasPassword: true, online: false, channelCount: 0 });
  t.notOk('password' in created.json);

  const list = await asAdmin(gw, 'GET', '/api/gb28181/devices');
  t.same(list.json.items.map((d: { id: string }) => d.id), [DEVICE]);
  const patched = await asAdmin(gw, 'PATCH', `/api/gb28181/devices/${DEVICE}`, { enabled: false, password: 'An0ther-secret' });
  t.equal(patched.status, 200, patched.body);
  t.equal(patched.json.enabled, false);
  t.equal((await gw.gbDirectory.admission(DEVICE)), null, 'disabled: refused at registration');
  await asAdmin(gw, 'PATCH', `/api/gb28181/devices/${DEVICE}`, { enabled: true });
  t.equal((await gw.gbDirectory.admission(DEVICE))?.password, 'An0ther-secret', 'the new password is the one the registrar checks');

  const everything = [created.body, list.body, patched.body, (await asAdmin(gw, 'GET', `/api/gb28181/devices/${DEVICE}`)).body, gw.logs.join('\n')].join('\n');
  t.notMatch(everything, /Dev1ce-Secret|An0ther-secret/, 'no password in any answer or log line');
  const audit = await gw.api('GET', '/api/audit?limit=20', { token: await gw.userToken('auditor', ['auditor'], ['root']) });
  t.ok(audit.json.items.some((e: { action: string; target: string }) => e.action === 'gb.device.update' && e.target === DEVICE), 'changes are audited');
  t.notMatch(audit.body, /Dev1ce-Secret|An0ther-secret/);

  t.equal((await asAdmin(gw, 'DELETE', `/api/gb28181/devices/${DEVICE}`)).status, 204);
  t.equal((await asAdmin(gw, 'GET', `/api/gb28181/devices/${DEVICE}`)).status, 404);
});

t.test('bad input is refused naming the field', async (t) => {
  const gw = await gateway(t);
  const good = { id: DEVICE, name: 'A', departmentId: 'townA', password: SECRET };
  for (const [body, field] of [
    [{ ...good, id: '123' }, 'id'],
    [{ ...good, departmentId: 'atlantis' }, 'departmentId'],
    [{ ...good, streamMode: 'multicast' }, 'streamMode'],
    [{ ...good, password: 'abc' }, 'password'],
    [{ ...good, extra: 1 }, 'extra'],
  ] as const) {
    const res = await asAdmin(gw, 'POST', '/api/gb28181/devices', body);
    t.equal(res.status, 400, `${field}: ${res.body}`);
    t.equal(res.json.code, 'GW_ERR_VALIDATION');
    t.same(res.json.issues.map((i: { field: string }) => i.field), [field]);
    t.notMatch(res.body, /Dev1ce-Secret/);
  }
  t.equal((await asAdmin(gw, 'GET', '/api/gb28181/devices/not-a-gb-id')).status, 400, 'a path id that is no GB id');
  t.equal((await asAdmin(gw, 'POST', '/api/gb28181/rules', { prefix: '34x', departmentId: 'townA', password: SECRET })).json.issues[0].field, 'prefix');
});

t.test('department scope: another department\'s device is 404 exactly like a missing one, and read-only users cannot change anything', async (t) => {
  const gw = await gateway(t);
  t.equal((await asAdmin(gw, 'POST', '/api/gb28181/devices', { id: DEVICE, name: 'B cam', departmentId: 'countyB', password: SECRET })).status, 201);
  const countyAdmin = await gw.userToken('county-a-admin', ['admin'], ['countyA']);
  const missing = await gw.api('GET', '/api/gb28181/devices/34020000001320000099', { token: countyAdmin });
  for (const [method, url, body] of [
    ['GET', `/api/gb28181/devices/${DEVICE}`, undefined],
    ['PATCH', `/api/gb28181/devices/${DEVICE}`, { name: 'mine now' }],
    ['DELETE', `/api/gb28181/devices/${DEVICE}`, undefined],
    ['POST', `/api/gb28181/devices/${DEVICE}/catalog`, undefined],
    ['GET', `/api/gb28181/devices/${DEVICE}/info`, undefined],
    ['GET', `/api/gb28181/devices/${DEVICE}/status`, undefined],
  ] as const) {
    const res = await gw.api(method, url, { token: countyAdmin, ...(body ? { body } : {}) });
    t.equal(res.status, 404, `${method} ${url}`);
    t.equal(res.json.message, `GB device "${DEVICE}" not found`);
  }
  t.equal(missing.status, 404);
  t.same((await gw.api('GET', '/api/gb28181/devices', { token: countyAdmin })).json.items, []);
  const moved = await gw.api('POST', '/api/gb28181/devices', { token: countyAdmin, body: { id: '34020000001320000002', name: 'x', departmentId: 'countyB', password: SECRET } });
  t.equal(moved.status, 400, 'a department outside the scope is refused');
  t.same(moved.json.issues.map((i: { field: string }) => i.field), ['departmentId']);

  const operator = await gw.userToken('op', ['operator'], ['root']);
  t.equal((await gw.api('GET', `/api/gb28181/devices/${DEVICE}`, { token: operator })).status, 200, 'sources:read may look');
  t.equal((await gw.api('PATCH', `/api/gb28181/devices/${DEVICE}`, { token: operator, body: { name: 'x' } })).status, 403);
  t.equal((await gw.api('POST', '/api/gb28181/rules', { token: operator, body: { prefix: '34', departmentId: 'root', password: SECRET } })).status, 403);
});

t.test('device queries answer 503 while the GB service is off', async (t) => {
  const gw = await startGateway(t, { gb28181: { enabled: false } });
  await smallTree(gw);
  await asAdmin(gw, 'POST', '/api/gb28181/devices', { id: DEVICE, name: 'A', departmentId: 'townA', password: SECRET });
  for (const [method, url] of [['POST', `/api/gb28181/devices/${DEVICE}/catalog`], ['GET', `/api/gb28181/devices/${DEVICE}/info`], ['GET', `/api/gb28181/devices/${DEVICE}/status`]] as const) {
    const res = await asAdmin(gw, method, url);
    t.equal(res.status, 503, url);
    t.match(res.json, { code: 'GW_ERR_UNAVAILABLE', params: { reason: 'gb28181Off' } });
  }
});

t.test('admission rules and the refused list: an unknown id is listed, admitted by adding it, and gone from the list', async (t) => {
  const gw = await gateway(t);
  const rule = await asAdmin(gw, 'POST', '/api/gb28181/rules', { prefix: '3402000000132', departmentId: 'countyA', password: SECRET });
  t.equal(rule.status, 201, rule.body);
  t.match(rule.json, { prefix: '3402000000132', departmentId: 'countyA', departmentName: 'County A', streamMode: 'udp' });
  t.notOk('password' in rule.json);
  t.equal((await asAdmin(gw, 'POST', '/api/gb28181/rules', { prefix: '3402000000132', departmentId: 'countyA', password: SECRET })).status, 400, 'one rule per prefix');
  t.same((await asAdmin(gw, 'GET', '/api/gb28181/rules')).json.items.map((r: { id: string }) => r.id), [rule.json.id]);
  t.same((await gw.api('GET', '/api/gb28181/rules', { token: await gw.userToken('b-admin', ['admin'], ['countyB']) })).json.items, [], 'another county does not see it');
  t.equal((await asAdmin(gw, 'DELETE', `/api/gb28181/rules/${rule.json.id}`)).status, 204);
  t.equal((await asAdmin(gw, 'DELETE', `/api/gb28181/rules/${rule.json.id}`)).status, 404);

  await gw.gbDirectory.recordRefusal('34020000001320000555', '203.0.113.7:5060', 'unknown');
  await gw.gbDirectory.recordRefusal('34020000001320000555', '203.0.113.7:5060', 'unknown');
  const refused = await asAdmin(gw, 'GET', '/api/gb28181/refused');
  t.match(refused.json.items, [{ deviceId: '34020000001320000555', address: '203.0.113.7:5060', reason: 'unknown', count: 2 }]);
  const countyAdmin = await gw.userToken('a-admin', ['admin'], ['countyA']);
  t.same((await gw.api('GET', '/api/gb28181/refused', { token: countyAdmin })).json.items, [], 'unknown ids are for whole-system admins');
  t.equal((await asAdmin(gw, 'POST', '/api/gb28181/devices', { id: '34020000001320000555', name: 'Admitted', departmentId: 'townA', password: SECRET })).status, 201);
  t.same((await asAdmin(gw, 'GET', '/api/gb28181/refused')).json.items, [], 'admitted, so no longer refused');
  await gw.gbDirectory.recordRefusal('34020000001320000556', '203.0.113.8:5060', 'unknown');
  t.equal((await asAdmin(gw, 'DELETE', '/api/gb28181/refused/34020000001320000556')).status, 204);
  t.equal((await asAdmin(gw, 'DELETE', '/api/gb28181/refused/34020000001320000556')).status, 404);
});

t.test('a gb28181 source is registered by hand only for a device here, under its channel id, with nothing else in its URL', async (t) => {
  const gw = await gateway(t);
  const url = `gb28181://${DEVICE}/${channel(1)}`;
  const body = { name: 'Gate', departmentId: 'townA', url };
  const before = await asAdmin(gw, 'POST', '/api/sources', body);
  t.equal(before.status, 400);
  t.match(before.json.issues, [{ field: 'url', message: /not registered here/ }]);
  await asAdmin(gw, 'POST', '/api/gb28181/devices', { id: DEVICE, name: 'NVR', departmentId: 'townA', password: SECRET });
  const created = await asAdmin(gw, 'POST', '/api/sources', body);
  t.equal(created.status, 201, created.body);
  t.match(created.json, { id: channel(1), protocol: 'gb28181', url, username: null, hasPassword: false });
  for (const [extra, field] of [
    [{ id: 'gate-1', url: `gb28181://${DEVICE}/${channel(2)}` }, 'id'],
    [{ url: `gb28181://${DEVICE}/${channel(3)}`, username: 'admin', password: 'x' }, 'username'],
    [{ url: `gb28181://${DEVICE}/${channel(4)}`, subUrl: `gb28181://${DEVICE}/${channel(5)}?stream=1` }, 'subUrl'],
    [{ url: `gb28181://${DEVICE}/${channel(6)}?stream=1` }, 'url'],
    [{ url: `gb28181://10.0.0.1/${channel(7)}` }, 'url'],
    [{ url: `gb28181://${DEVICE}/${channel(8)}?host=evil` }, 'url'],
    [{ url: `gb28181://${DEVICE}/${channel(9)}`, protocol: 'rtsp' }, 'protocol'],
  ] as const) {
    const res = await asAdmin(gw, 'POST', '/api/sources', { ...body, ...extra });
    t.equal(res.status, 400, JSON.stringify(extra));
    t.ok(res.json.issues.some((i: { field: string }) => i.field === field), `names ${field}: ${res.body}`);
  }
  const countyB = await gw.userToken('b-admin', ['admin'], ['countyB']);
  const elsewhere = await gw.api('POST', '/api/sources', { token: countyB, body: { name: 'x', departmentId: 'countyB', url: `gb28181://${DEVICE}/${channel(10)}` } });
  t.match(elsewhere.json.issues, [{ field: 'url', message: /not registered here/ }], "another department's device is not theirs to use");
});

t.test('a department-scoped operator sees only the GB channels of their departments', async (t) => {
  const gw = await gateway(t);
  await asAdmin(gw, 'POST', '/api/gb28181/devices', { id: DEVICE, name: 'A', departmentId: 'townA', password: SECRET });
  await asAdmin(gw, 'POST', '/api/gb28181/devices', { id: PLATFORM_B, name: 'B', departmentId: 'countyB', password: SECRET });
  for (const [device, first] of [[DEVICE, 1], [PLATFORM_B, 100]] as const) {
    const done = gw.gbCatalog.begin(device, 7);
    const items = [0, 1, 2].map((i) => ({ DeviceID: channel(first + i), Name: `通道 ${first + i}`, Parental: 0, Status: 'ON' }));
    gw.gbCatalog.accept(device, parseManscdp(buildManscdp('Response', { CmdType: 'Catalog', SN: 7, DeviceID: device, SumNum: 3, DeviceList: { Item: items } }), 65_536));
    t.match(await done, { created: 3 });
  }
  const operator = await gw.userToken('op-b', ['operator'], ['countyB']);
  const seen = await gw.api('GET', '/api/sources?protocol=gb28181', { token: operator });
  t.same(seen.json.items.map((s: { id: string }) => s.id).sort(), [channel(100), channel(101), channel(102)]);
  t.equal((await gw.api('GET', `/api/sources/${channel(1)}`, { token: operator })).status, 404);
  t.equal((await asAdmin(gw, 'GET', `/api/gb28181/devices/${DEVICE}`)).json.channelCount, 3);
});

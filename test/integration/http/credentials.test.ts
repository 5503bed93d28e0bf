import t from 'tap';
import { camera, smallTree, startGateway, type TestGateway } from '../../helpers/gateway.js';

async function storedPassword(gw: TestGateway, id: string): Promise<{ username: string; password: string | null } | null> {
  const sealed = await gw.registry.sealedCredential(id);
  if (!sealed) return null;
  // The test reads the sealed password back the way the stream engine will.
  const { CredentialSealer } = await import('../../../gateway/src/registry/credentials.js');
  const { loadSecrets } = await import('../../../gateway/src/lib/secrets.js');
  const { join } = await import('node:path');
  const { secrets } = loadSecrets(join(gw.config.dataDir, 'secrets.json'), { tokenKey: '', credentialKey: '' });
  const sealer = new CredentialSealer(secrets.credentialKey);
  return { username: sealed.username, password: sealed.sealedPassword ? sealer.open(sealed.sealedPassword, sealed.fingerprint) : null };
}

t.test('an export re-imports as it is: nothing changes and no password is lost', async (t) => {
  const gw = await startGateway(t);
  await smallTree(gw);
  for (const fmt of ['csv', 'ndjson'] as const) {
    const id = `rt-${fmt}`;
    await gw.api('POST', '/api/sources', { token: gw.adminToken, body: camera(id, 'townA', { url: 'rtsp://bob:s3cret-pw@10.0.0.5/main', subUrl: 'rtsp://10.0.0.5/sub', tags: ['a', 'b'], lat: 30.5, lon: 118.25 }) });
    const exported = await gw.api('GET', `/api/sources/export?format=${fmt}&q=${id}`, { token: gw.adminToken });
    t.notMatch(exported.body, /s3cret/);
    const re = await gw.api('POST', '/api/sources/import?mode=all-or-nothing', {
      token: gw.adminToken,
      payload: exported.body,
      headers: { 'content-type': fmt === 'csv' ? 'text/csv' : 'application/x-ndjson' },
    });
    t.match(re.json, { applied: true, created: 0, updated: 0, unchanged: 1 }, `${fmt}: ${re.body}`);
    t.same(await storedPassword(gw, id), { username: 'bob', password: 's3cret-pw' }, `${fmt}: the password survives`);
  }
});

t.test('saving back what was read keeps the password; halves of a credential are merged or refused', async (t) => {
  const gw = await startGateway(t);
  await smallTree(gw);
  const token = gw.adminToken;
  await gw.api('POST', '/api/sources', { token, body: camera('m1', 'townA', { url: 'rtsp://eve:orig-pass@10.0.0.5/s' }) });
  const read = await gw.api('GET', '/api/sources/m1', { token });
  t.equal(read.json.url, 'rtsp://eve:***@10.0.0.5/s');
  const { id: _id, departmentName: _d, health: _h, version: _v, createdAt: _c, updatedAt: _u, hasPassword: _p, ...editable } = read.json;
  const put = await gw.api('PUT', '/api/sources/m1', { token, body: { ...editable, name: 'Renamed' }, headers: { 'if-match': String(read.json.version) } });
  t.equal(put.status, 200, put.body);
  t.same(await storedPassword(gw, 'm1'), { username: 'eve', password: 'orig-pass' }, 'the masked URL did not become the password');

  const pw = await gw.api('PATCH', '/api/sources/m1', { token, body: { password: 'new-pass' }, headers: { 'if-match': String(put.json.version) } });
  t.equal(pw.status, 200, pw.body);
  t.same(await storedPassword(gw, 'm1'), { username: 'eve', password: 'new-pass' }, 'a password alone keeps the user name');

  const user = await gw.api('PATCH', '/api/sources/m1', { token, body: { username: 'dave' }, headers: { 'if-match': String(pw.json.version) } });
  t.equal(user.status, 400);
  t.match(user.json.message, /password: required when the user name changes/);
  const both = await gw.api('PATCH', '/api/sources/m1', { token, body: { username: 'dave', password: 'dave-pass' }, headers: { 'if-match': String(pw.json.version) } });
  t.equal(both.status, 200);
  t.same(await storedPassword(gw, 'm1'), { username: 'dave', password: 'dave-pass' });
  const cleared = await gw.api('PATCH', '/api/sources/m1', { token, body: { username: null }, headers: { 'if-match': String(both.json.version) } });
  t.equal(cleared.status, 200);
  t.equal(cleared.json.hasPassword, false);
  t.equal(await storedPassword(gw, 'm1'), null, 'an empty user name removes the credentials');

  for (const url of ['rtsp://u%0d%0aX-Injected:1@10.0.0.6/s', 'rtsp://u:p%00w@10.0.0.6/s']) {
    const res = await gw.api('POST', '/api/sources', { token, body: camera('cc', 'townA', { url }) });
    t.equal(res.status, 400, url);
    t.match(res.json.message, /user info must not contain control characters/);
  }
});

t.test('NDJSON: an over-long line is one error row and the rest still import; a file without line ends stays cheap', async (t) => {
  const gw = await startGateway(t);
  await smallTree(gw);
  const long = JSON.stringify(camera('long', 'townA', { address: 'x'.repeat(200_000) }));
  const body = [JSON.stringify(camera('before', 'townA')), long, JSON.stringify(camera('after', 'townA'))].join('\n');
  const res = await gw.api('POST', '/api/sources/import?mode=keep-valid', { token: gw.adminToken, payload: body, headers: { 'content-type': 'application/x-ndjson' } });
  t.equal(res.json.created, 2, res.body.slice(0, 500));
  t.match(res.json.errors, [{ line: 2, message: /longer than 65536 characters/ }]);
  const crOnly = Array.from({ length: 20_000 }, (_, i) => JSON.stringify(camera(`cr${i}`, 'townA'))).join('\r');
  const started = Date.now();
  const cr = await gw.api('POST', '/api/sources/import?mode=keep-valid', { token: gw.adminToken, payload: crOnly, headers: { 'content-type': 'application/x-ndjson' } });
  t.equal(cr.json.created, 0);
  t.equal(cr.json.rejected, 1, 'one over-long line');
  t.ok(Date.now() - started < 20_000, `answered in ${Date.now() - started} ms, not minutes`);
});

t.test('auditors see the events of their departments only; scoped departments cannot be deleted', async (t) => {
  const gw = await startGateway(t);
  await smallTree(gw);
  await gw.api('POST', '/api/sources', { token: gw.adminToken, body: camera('a1', 'townA') });
  await gw.api('POST', '/api/sources', { token: gw.adminToken, body: camera('b1', 'countyB') });
  const auditorA = await gw.userToken('auditor-a', ['auditor'], ['countyA']);
  const auditorAll = await gw.userToken('auditor-all', ['auditor'], ['root']);
  const seenA = (await gw.api('GET', '/api/audit?limit=1000', { token: auditorA })).json.items;
  const seenAll = (await gw.api('GET', '/api/audit?limit=1000', { token: auditorAll })).json.items;
  const targets = (items: { target: string }[]) => items.map((e) => e.target);
  t.ok(targets(seenA).includes('a1'));
  t.notOk(targets(seenA).includes('b1'), 'county B events are not shown to county A');
  t.notOk(seenA.some((e: { action: string }) => e.action === 'user.bootstrap'), 'nor system events');
  t.ok(targets(seenAll).includes('b1') && seenAll.some((e: { action: string }) => e.action === 'user.bootstrap'));

  const del = await gw.api('DELETE', '/api/departments/townA', { token: gw.adminToken });
  t.equal(del.status, 409, 'still has a source');
  await gw.api('DELETE', '/api/sources/a1', { token: gw.adminToken });
  await gw.userToken('op-town', ['operator'], ['townA']);
  const stillScoped = await gw.api('DELETE', '/api/departments/townA', { token: gw.adminToken });
  t.equal(stillScoped.status, 409);
  t.match(stillScoped.json.message, /still in users' scopes/);
});

t.test('a lockout is per user name and address', async (t) => {
  const gw = await startGateway(t, { auth: { loginMaxFailures: 2, loginLockoutSec: 60 } });
  const login = (ip: string, password: string) =>
    gw.http.inject({ method: 'POST', url: '/api/auth/login', remoteAddress: ip, payload: { username: 'admin', password } });
  await login('10.9.9.9', 'wrong');
  await login('10.9.9.9', 'wrong');
  const locked = await login('10.9.9.9', gw.bootstrapAdmin!.password);
  t.equal(locked.statusCode, 429, 'locked from the guessing address');
  t.match(locked.json(), { code: 'GW_ERR_LOGIN_LOCKED', params: { reason: 'wait', retryAfterSec: Number } }, 'saying how long to wait, as a number the page words');
  t.equal((await login('10.1.1.1', gw.bootstrapAdmin!.password)).statusCode, 200, 'the admin still signs in from elsewhere');
});

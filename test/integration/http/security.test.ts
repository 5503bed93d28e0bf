import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { camera, smallTree, startGateway, type TestGateway } from '../../helpers/gateway.js';

const PLANTED = 'Pl4nted-S3cret!xyz';

t.test('a camera password appears in no response, export, error or log line', async (t) => {
  const gw = await startGateway(t, { log: { level: 'trace' } });
  await smallTree(gw);
  const token = gw.adminToken;
  const seen: string[] = [];
  const call = async (...args: Parameters<TestGateway['api']>) => {
    const res = await gw.api(...args);
    seen.push(res.body, JSON.stringify(res.headers));
    return res;
  };
  const inUrl = await call('POST', '/api/sources', { token, body: camera('p1', 'townA', { url: `rtsp://admin:${encodeURIComponent(PLANTED)}@10.0.0.1:554/live` }) });
  t.equal(inUrl.status, 201);
  t.equal(inUrl.json.url, 'rtsp://admin:***@10.0.0.1:554/live', 'shown masked');
  t.equal(inUrl.json.hasPassword, true);
  await call('POST', '/api/sources', { token, body: camera('p2', 'townA', { username: 'op', password: PLANTED, subUrl: 'rtsp://10.0.0.2/sub' }) });
  await call('POST', '/api/sources', { token, body: camera('p3', 'townA', { url: `srt://10.0.0.3:9000?streamid=a&passphrase=${PLANTED}` }) });
  // Errors around a password: a conflicting pair, a bad URL carrying one, a bad import row carrying one.
  const conflict = await call('POST', '/api/sources', { token, body: camera('p4', 'townA', { url: `rtsp://a:${PLANTED}@10.0.0.4/`, password: 'other-password' }) });
  t.equal(conflict.status, 400);
  await call('POST', '/api/sources', { token, body: camera('p5', 'townA', { url: `gopher://a:${PLANTED}@10.0.0.5/` }) });
  await call('POST', '/api/sources', { token, body: camera('p6', 'townA', { url: `rtsp://a:${PLANTED}@10.0.0.6/\u0001` }) });
  await call('POST', '/api/sources/import?mode=keep-valid', {
    token,
    payload: `{"id":"p7","password":"${PLANTED}", broken\n` + JSON.stringify(camera('p8', 'nowhere', { password: PLANTED, username: 'x' })) + '\n',
    headers: { 'content-type': 'application/x-ndjson' },
  });
  await call('POST', '/api/sources/import?mode=keep-valid', {
    token,
    payload: `id,name,departmentId,url,password\np9,"x,townA,rtsp://10.0.0.9/,${PLANTED}\n`,
    headers: { 'content-type': 'text/csv' },
  });
  await call('PATCH', '/api/sources/p2', { token, body: { password: PLANTED + '2' }, headers: { 'if-match': '1' } });
  for (const id of ['p1', 'p2', 'p3']) await call('GET', `/api/sources/${id}`, { token });
  await call('GET', '/api/sources?limit=100', { token });
  await call('GET', `/api/sources?q=${encodeURIComponent('Camera')}`, { token });
  await call('GET', '/api/sources/export?format=ndjson', { token });
  await call('GET', '/api/sources/export?format=csv', { token });
  const auditor = await gw.userToken('auditor1', ['auditor'], ['root']);
  await call('GET', '/api/audit?limit=1000', { token: auditor });

  t.ok(seen.length > 20);
  const everything = [...seen, ...gw.logs].join('\n');
  t.notOk(everything.includes(PLANTED), 'the password is nowhere in responses or logs');
  t.notOk(everything.includes(encodeURIComponent(PLANTED)), 'nor its URL-encoded form');
  t.ok(gw.logs.length > 10, 'logs were captured');

  // At rest: not in the database file in clear.
  await gw.close();
  const db = readFileSync(join(gw.config.dataDir, 'wallgate.db'));
  const wal = (() => {
    try {
      return readFileSync(join(gw.config.dataDir, 'wallgate.db-wal'));
    } catch {
      return Buffer.alloc(0);
    }
  })();
  t.notOk(db.includes(Buffer.from(PLANTED)) || wal.includes(Buffer.from(PLANTED)), 'encrypted at rest');
});

t.test('department scope: a county user cannot read, list, search, export or learn of another county\'s camera', async (t) => {
  const gw = await startGateway(t);
  await smallTree(gw);
  for (const [id, dep] of [['mine-1', 'countyA'], ['mine-2', 'townA'], ['theirs-1', 'countyB']]) {
    await gw.api('POST', '/api/sources', { token: gw.adminToken, body: camera(id!, dep!, { name: `Shared name ${id}` }) });
  }
  const operator = await gw.userToken('op-a', ['operator'], ['countyA']);
  const countyAdmin = await gw.userToken('admin-a', ['admin'], ['countyA']);
  for (const token of [operator, countyAdmin]) {
    const missing = await gw.api('GET', '/api/sources/does-not-exist', { token });
    const foreign = await gw.api('GET', '/api/sources/theirs-1', { token });
    t.equal(foreign.status, 404);
    t.same(foreign.json.code, missing.json.code);
    t.equal(foreign.json.message.replace('theirs-1', 'X'), missing.json.message.replace('does-not-exist', 'X'), 'same answer as for a camera that does not exist');
    const list = await gw.api('GET', '/api/sources?limit=500', { token });
    t.same(list.json.items.map((s: { id: string }) => s.id).sort(), ['mine-1', 'mine-2']);
    const search = await gw.api('GET', `/api/sources?q=${encodeURIComponent('Shared name')}`, { token });
    t.same(search.json.items.map((s: { id: string }) => s.id).sort(), ['mine-1', 'mine-2']);
    t.equal((await gw.api('GET', '/api/sources?q=theirs', { token })).json.items.length, 0);
    t.equal((await gw.api('GET', '/api/sources?departmentId=countyB', { token })).status, 404);
    const tree = await gw.api('GET', '/api/departments', { token });
    t.same(tree.json.items.map((d: { id: string }) => d.id), ['countyA'], 'the tree starts at their scope');
    t.notMatch(JSON.stringify(tree.json), /countyB/);
  }
  const exported = await gw.api('GET', '/api/sources/export?format=ndjson', { token: countyAdmin });
  t.same(exported.body.trim().split('\n').map((l) => JSON.parse(l).id).sort(), ['mine-1', 'mine-2']);
  t.equal((await gw.api('GET', '/api/sources/export?format=csv&departmentId=countyB', { token: countyAdmin })).status, 404);
  // Writes: nothing into, onto or out of county B.
  t.equal((await gw.api('POST', '/api/sources', { token: countyAdmin, body: camera('sneak', 'countyB') })).status, 400);
  t.equal((await gw.api('PATCH', '/api/sources/theirs-1', { token: countyAdmin, body: { name: 'x' }, headers: { 'if-match': '1' } })).status, 404);
  t.equal((await gw.api('PATCH', '/api/sources/mine-1', { token: countyAdmin, body: { departmentId: 'countyB' }, headers: { 'if-match': '1' } })).status, 400);
  t.equal((await gw.api('DELETE', '/api/sources/theirs-1', { token: countyAdmin })).status, 404);
  const grant = await gw.api('POST', '/api/users', { token: countyAdmin, body: { username: 'escalate', password: 'long enough pw', roles: ['operator'], scopes: ['countyB'] } });
  t.equal(grant.status, 400, 'cannot grant a scope beyond their own');
  t.equal((await gw.api('GET', '/api/users', { token: countyAdmin })).json.items.map((u: { username: string }) => u.username).sort().join(), 'admin-a,op-a');
});

t.test('every route checks authentication and roles', async (t) => {
  const gw = await startGateway(t);
  await smallTree(gw);
  await gw.api('POST', '/api/sources', { token: gw.adminToken, body: camera('r1', 'townA') });
  const tokens: Record<string, string> = { admin: gw.adminToken };
  for (const role of ['supervisor', 'operator', 'regulator', 'auditor', 'feed']) tokens[role] = await gw.userToken(`${role}-user`, [role], ['root']);

  // Metrics carry counts only (no camera ids, no names), so Prometheus scrapes them without an account.
  // CORS preflights carry no credentials by definition (WHEP players in other origins need them).
  // The player's pages and bundles are public like any login page: what they show comes from the API.
  // /api/ui is the language and map settings the sign-in page needs before anyone signs in.
  const open = new Set([
    'GET /healthz',
    'GET /readyz',
    'POST /api/auth/login',
    'GET /metrics',
    'OPTIONS /whep/:camera',
    'OPTIONS /whep/:camera/:resource',
    'GET /api/ui',
    // The API's description (swagger-ui, its assets, the document) and the control protocol's: they hold no data.
    'GET /docs',
    'GET /docs/static/index.html',
    'GET /docs/static/swagger-initializer.js',
    'GET /docs/json',
    'GET /docs/yaml',
    'GET /docs/static/*',
    'GET /api/control/schema.json',
    'GET /*',
    'HEAD /*',
    // Without a built player the gateway answers / with how to build it.
    'GET /',
    'HEAD /',
  ]);
  // WHEP takes the stream token as its bearer token; a login token (even an admin's) opens nothing there.
  const whepRoutes = new Set(['POST /whep/:camera', 'PATCH /whep/:camera/:resource', 'DELETE /whep/:camera/:resource']);
  // Stream URLs carry a stream token in the path; a bearer token (even an admin's) opens nothing there.
  const streamTokenRoutes = new Set(['GET /streams/:camera/:profile/:token/:file', 'GET /streams/:camera/:profile/:token/live.flv']);
  // The cluster's node list is what every page reads to fail over to another node.
  const signedIn = new Set(['GET /api/auth/me', 'POST /api/auth/password', 'POST /api/auth/renew', 'POST /api/auth/logout', 'POST /api/auth/logout-all', 'GET /api/cluster/nodes']);
  // Who may call what; a route missing from this table fails the test, so new routes must be placed in it.
  const read = ['admin', 'supervisor', 'operator', 'regulator'];
  const drive = ['admin', 'supervisor', 'operator'];
  const manage = ['admin', 'supervisor'];
  const allowed: Record<string, string[]> = {
    'GET /api/sources': read,
    'GET /api/sources/:id': read,
    'POST /api/sources': ['admin'],
    'PUT /api/sources/:id': ['admin'],
    'PATCH /api/sources/:id': ['admin'],
    'DELETE /api/sources/:id': ['admin'],
    'POST /api/sources/import': ['admin'],
    'GET /api/sources/export': ['admin'],
    'GET /api/departments': read,
    'POST /api/departments': ['admin'],
    'PATCH /api/departments/:id': ['admin'],
    'DELETE /api/departments/:id': ['admin'],
    'GET /api/users': ['admin'],
    'POST /api/users': ['admin'],
    'PATCH /api/users/:id': ['admin'],
    'POST /api/users/:id/sessions/revoke': ['admin'],
    'GET /api/audit': ['auditor'],
    'GET /api/cluster': ['admin', 'auditor'],
    'POST /api/streams/:cameraId/view': read,
    'GET /api/streams/:cameraId/snapshot.jpg': read,
    'GET /api/streams': ['admin'],
    'DELETE /api/streams/:sessionId': ['admin'],
    'POST /api/sources/:cameraId/publish-url': ['admin'],
    'GET /api/walls': read,
    'GET /api/walls/:wallId': read,
    'GET /api/walls/:wallId/presets': read,
    'POST /api/walls': manage,
    'PATCH /api/walls/:wallId': manage,
    'DELETE /api/walls/:wallId': manage,
    'POST /api/walls/:wallId/plans': manage,
    'DELETE /api/walls/:wallId/plans/:planId': manage,
    'POST /api/walls/:wallId/locks/break': manage,
    'PUT /api/walls/:wallId/layout': drive,
    'PUT /api/walls/:wallId/tiles/:tileId': drive,
    'POST /api/walls/:wallId/locks': drive,
    'POST /api/walls/:wallId/locks/release': drive,
    'POST /api/walls/:wallId/tours': drive,
    'DELETE /api/walls/:wallId/tours/:tourId': drive,
    'POST /api/walls/:wallId/presets': drive,
    'POST /api/walls/:wallId/presets/:presetId/recall': drive,
    'DELETE /api/walls/:wallId/presets/:presetId': drive,
    'POST /api/walls/:wallId/plans/revert': drive,
    'POST /api/walls/:wallId/plans/:planId/activate': drive,
    'DELETE /api/walls/:wallId/popups/:popupId': drive,
    'GET /api/vehicles': read,
    'GET /api/vehicles/:id': read,
    'GET /api/vehicles/:id/track': read,
    'POST /api/vehicles': ['admin'],
    'PUT /api/vehicles/:id': ['admin'],
    'PATCH /api/vehicles/:id': ['admin'],
    'DELETE /api/vehicles/:id': ['admin'],
    'POST /api/vehicles/import': ['admin'],
    'POST /api/feed/positions': ['admin', 'feed'],
    'POST /api/feed/alarms': ['admin', 'feed'],
    'GET /api/alarms': read,
    'GET /api/alarms/:id': read,
    'GET /api/alarms/export': read,
    'GET /api/alarms/:id/snapshot.jpg': read,
    'POST /api/alarms/:id/ack': read,
    'POST /api/alarms/:id/close': read,
    'GET /api/geofences': read,
    'POST /api/geofences': manage,
    'PUT /api/geofences/:id': manage,
    'DELETE /api/geofences/:id': manage,
    'GET /api/linkage-rules': read,
    'POST /api/linkage-rules': manage,
    'PUT /api/linkage-rules/:id': manage,
    'DELETE /api/linkage-rules/:id': manage,
    'GET /api/gb28181/devices': read,
    'POST /api/gb28181/devices': ['admin'],
    'GET /api/gb28181/devices/:id': read,
    'PATCH /api/gb28181/devices/:id': ['admin'],
    'DELETE /api/gb28181/devices/:id': ['admin'],
    'POST /api/gb28181/devices/:id/catalog': ['admin'],
    'GET /api/gb28181/devices/:id/info': read,
    'GET /api/gb28181/devices/:id/status': read,
    'GET /api/gb28181/rules': read,
    'POST /api/gb28181/rules': ['admin'],
    'DELETE /api/gb28181/rules/:id': ['admin'],
    'GET /api/gb28181/refused': read,
    'DELETE /api/gb28181/refused/:deviceId': ['admin'],
    'GET /api/jt808/terminals': read,
    'GET /api/jt808/refused': read,
    'DELETE /api/jt808/refused/:sim': ['admin'],
    'DELETE /api/jt808/terminals/:sim': ['admin'],
    'GET /api/cameras/:cameraId/ptz': drive,
    'POST /api/cameras/:cameraId/ptz': drive,
    'DELETE /api/cameras/:cameraId/ptz': drive,
  };
  const registered = gw.routes.filter((r) => r.method !== 'HEAD').map((r) => `${r.method} ${r.url}`);
  for (const r of registered) {
    if (open.has(r)) continue;
    const [method, path] = r.split(' ') as [string, string];
    if (streamTokenRoutes.has(r)) {
      for (const [what, token] of [['forged', 'eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.x'], ['an API token', gw.adminToken]] as const) {
        const url = path.replace(':camera', 'r1').replace(':profile', 'main').replace(':token', token).replace(':file', 'index.m3u8');
        t.equal((await gw.api(method, url, { token: gw.adminToken })).status, 401, `${r} with ${what} in the path`);
      }
      continue;
    }
    if (whepRoutes.has(r)) {
      const url = path.replace(':camera', 'r1').replace(':resource', 'AAAAAAAAAAAAAAAAAAAAAA');
      for (const token of [null, 'eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.x', gw.adminToken]) {
        t.equal((await gw.api(method, url, { token, headers: { 'content-type': 'application/sdp' }, payload: 'v=0' })).status, 401, `${r} with ${token ? 'a forged or login token' : 'no token'}`);
      }
      continue;
    }
    const url = path.replace(':wallId', 'w1').replace(':tileId', 's1-1').replace(/:(tourId|presetId|planId|popupId)/, 'x1').replace(':id', 'r1').replace(':cameraId', 'r1').replace(':sessionId', '00000000-0000-0000-0000-000000000000') + (path === '/api/sources/export' ? '?format=csv' : path.endsWith('/import') ? '?mode=keep-valid' : '');
    const anon = await gw.api(method, url);
    t.equal(anon.status, 401, `${r} without a token`);
    const forged = await gw.api(method, url, { token: 'eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4IiwidHYiOjF9.' });
    t.equal(forged.status, 401, `${r} with a forged token`);
    if (signedIn.has(r)) continue;
    t.ok(allowed[r], `${r} is in the permission table`);
    for (const role of ['admin', 'supervisor', 'operator', 'regulator', 'auditor', 'feed']) {
      const res = await gw.api(method, url, { token: tokens[role], body: method === 'GET' || method === 'DELETE' ? undefined : {} });
      if (allowed[r]?.includes(role)) t.ok(res.status !== 403 && res.status < 500, `${role} may ${r} (got ${res.status})`);
      else t.equal(res.status, 403, `${role} may not ${r}`);
    }
  }
  t.ok(registered.length >= 19, `walked ${registered.length} routes`);
});

t.test('tokens: alg none, bad signature, expired and revoked ones are refused', async (t) => {
  const gw = await startGateway(t);
  const good = gw.adminToken;
  t.equal((await gw.api('GET', '/api/auth/me', { token: good })).status, 200);
  const [header, payload, sig] = good.split('.') as [string, string, string];
  const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const claims = JSON.parse(Buffer.from(payload, 'base64url').toString());
  const secrets = JSON.parse(readFileSync(join(gw.config.dataDir, 'secrets.json'), 'utf8'));
  const signWith = (key: Buffer, h: object, c: object) => {
    const data = `${b64(h)}.${b64(c)}`;
    return `${data}.${createHmac('sha256', key).update(data).digest('base64url')}`;
  };
  const key = Buffer.from(secrets.tokenKey, 'base64');
  t.equal(JSON.parse(Buffer.from(header, 'base64url').toString()).alg, 'HS256');
  const cases: [string, string][] = [
    ['alg none', `${b64({ alg: 'none', typ: 'JWT' })}.${payload}.`],
    ['alg none with signature kept', `${b64({ alg: 'none', typ: 'JWT' })}.${payload}.${sig}`],
    ['alg HS512 signed with the real key', signWith(key, { alg: 'HS512', typ: 'JWT' }, claims).replace(/\.[^.]+$/, '.' + createHmac('sha512', key).update(`${b64({ alg: 'HS512', typ: 'JWT' })}.${b64(claims)}`).digest('base64url'))],
    ['bad signature', `${header}.${payload}.${sig.slice(0, -4)}AAAA`],
    ['claims changed', `${header}.${b64({ ...claims, sub: 'someone-else' })}.${sig}`],
    ['signed with another key', signWith(Buffer.alloc(32, 7), { alg: 'HS256', typ: 'JWT' }, claims)],
    ['expired', signWith(key, { alg: 'HS256', typ: 'JWT' }, { ...claims, iat: 1000, exp: 2000 })],
    ['wrong audience', signWith(key, { alg: 'HS256', typ: 'JWT' }, { ...claims, aud: 'other' })],
    ['garbage', 'not.a.token'],
  ];
  t.equal((await gw.api('GET', '/api/auth/me', { token: signWith(key, { alg: 'HS256', typ: 'JWT' }, claims) })).status, 200, 'a correctly re-signed token works (the harness is right)');
  for (const [name, token] of cases) {
    const res = await gw.api('GET', '/api/auth/me', { token });
    t.equal(res.status, 401, name);
    t.equal(res.json.code, 'GW_ERR_UNAUTHENTICATED', name);
  }
  // Changing a password revokes the tokens issued before it.
  const changed = await gw.api('POST', '/api/auth/password', { token: good, body: { currentPassword: gw.bootstrapAdmin!.password, newPassword: 'a brand new password' } });
  t.equal(changed.status, 200, changed.body);
  t.equal((await gw.api('GET', '/api/auth/me', { token: good })).status, 401, 'old token revoked');
  t.equal((await gw.api('GET', '/api/auth/me', { token: changed.json.token })).status, 200);
});

t.test('login: wrong passwords fail alike, repeated failures lock, and all of it is audited', async (t) => {
  const gw = await startGateway(t, { auth: { loginMaxFailures: 3, loginLockoutSec: 60 } });
  const unknown = await gw.api('POST', '/api/auth/login', { body: { username: 'ghost', password: 'whatever' } });
  const wrong = await gw.api('POST', '/api/auth/login', { body: { username: 'admin', password: 'whatever' } });
  t.equal(unknown.status, 401);
  t.same(unknown.json, wrong.json, 'unknown user and wrong password look the same');
  await gw.api('POST', '/api/auth/login', { body: { username: 'admin', password: 'whatever' } });
  await gw.api('POST', '/api/auth/login', { body: { username: 'admin', password: 'whatever' } });
  const locked = await gw.api('POST', '/api/auth/login', { body: { username: 'admin', password: gw.bootstrapAdmin!.password } });
  t.equal(locked.status, 429, 'locked even with the right password');
  const log = await gw.store.audit.list({ limit: 50, action: 'auth.login', ranges: [['/', '0']], includeSystem: true });
  t.ok(log.filter((e) => e.outcome === 'failed').length >= 3);
  t.ok(log.some((e) => e.outcome === 'denied'));
  t.ok(log.every((e) => e.actorIp.length > 0));
  const auditor = await (async () => {
    const g2 = await startGateway(t);
    const tok = await g2.userToken('aud', ['auditor'], ['root']);
    await g2.api('POST', '/api/users', { token: g2.adminToken, body: { username: 'newop', password: 'long password', roles: ['operator'], scopes: ['root'] } });
    return (await g2.api('GET', '/api/audit?limit=100', { token: tok })).json.items;
  })();
  t.ok(auditor.some((e: { action: string; actor: string }) => e.action === 'user.create' && e.actor === 'admin'), 'permission changes are audited with who');
  t.ok(auditor.every((e: { at: string }) => !Number.isNaN(Date.parse(e.at))));
});

t.test('a lost password is reset from the console: a new one works, old tokens stop, it is audited', async (t) => {
  const gw = await startGateway(t);
  const before = gw.adminToken;
  const password = await gw.users.resetPassword('admin');
  t.not(password, gw.bootstrapAdmin!.password);
  t.equal((await gw.api('GET', '/api/auth/me', { token: before })).status, 401);
  t.ok(await gw.login('admin', password));
  const entries = await gw.store.audit.list({ limit: 10, action: 'user.password-reset', ranges: [['/', '0']], includeSystem: true });
  t.match(entries, [{ actor: 'console', target: 'admin', outcome: 'ok' }]);
  await t.rejects(gw.users.resetPassword('nobody'), /user "nobody" not found/);
});

t.test('a console reset lifts that user\'s lockout', async (t) => {
  const gw = await startGateway(t, { auth: { loginMaxFailures: 1, loginLockoutSec: 600 } });
  const login = (password: string) => gw.http.inject({ method: 'POST', url: '/api/auth/login', remoteAddress: '10.7.7.7', payload: { username: 'admin', password } });
  await login('wrong');
  t.equal((await login(gw.bootstrapAdmin!.password)).statusCode, 429, 'locked');
  const password = await gw.users.resetPassword('admin');
  t.equal((await login(password)).statusCode, 200, 'the new password works at once from the same address');
});

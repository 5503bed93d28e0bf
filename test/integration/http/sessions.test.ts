import t from 'tap';
import { ControlClient } from '../../../scripts/sim/control-client.js';
import { startControlGateway } from '../../helpers/control.js';
import { camera, startGateway, tempDir, TEST_PASSWORD } from '../../helpers/gateway.js';
import { spawnGateway } from '../../helpers/process.js';
import { waitFor } from '../../helpers/streams.js';

/** Signing out ends a session on the gateway, not only in the browser. */

t.test('logout: the token, and every renewal of it, is refused at once; other sessions go on', async (t) => {
  const gw = await startGateway(t);
  await gw.api('POST', '/api/sources', { token: gw.adminToken, body: camera('c1', 'root') });
  const first = await gw.userToken('op', ['operator'], ['root']);
  const other = await gw.login('op', TEST_PASSWORD);
  const renewed = await gw.api('POST', '/api/auth/renew', { token: first });
  t.equal(renewed.status, 200, renewed.body);
  t.equal((await gw.api('POST', '/api/streams/c1/view', { token: first, body: {} })).status, 200, 'the token gets stream tokens before');

  const out = await gw.api('POST', '/api/auth/logout', { token: first });
  t.equal(out.status, 204, out.body);
  for (const [what, token] of [['the signed-out token', first], ['its renewal', renewed.json.token as string]] as const) {
    const me = await gw.api('GET', '/api/auth/me', { token });
    t.equal(me.status, 401, `${what} is refused`);
    t.equal(me.json.code, 'GW_ERR_UNAUTHENTICATED');
    t.equal((await gw.api('POST', '/api/streams/c1/view', { token, body: {} })).status, 401, `${what} gets no new stream token`);
    t.equal((await gw.api('POST', '/api/auth/renew', { token })).status, 401, `${what} cannot be renewed`);
  }
  t.equal((await gw.api('GET', '/api/auth/me', { token: other })).status, 200, 'a session signed in elsewhere is not ended');
  t.equal((await gw.api('GET', '/api/auth/me', { token: gw.adminToken })).status, 200, 'nor is another user\'s');
  t.equal((await gw.api('POST', '/api/auth/logout', { token: first })).status, 401, 'a second logout with the same token is refused');
  const audit = await gw.store.audit.list({ limit: 10, action: 'auth.logout', ranges: [['/', '0']], includeSystem: true });
  t.same(audit.map((e) => [e.actor, e.outcome]), [['op', 'ok']], 'the sign-out is audited once');
});

t.test('the deny list forgets sessions whose tokens have expired', async (t) => {
  const gw = await startGateway(t);
  const now = Date.now();
  // A session signed out long enough ago that its last token has expired since.
  await gw.store.sessions.revoke({ sessionId: 'stale', userId: 'u', expiresAt: now - 1 }, now - 60_000);
  t.equal(await gw.store.sessions.count(), 1);
  t.ok(await gw.store.sessions.isRevoked('stale'));
  t.equal((await gw.api('POST', '/api/auth/logout', { token: gw.adminToken })).status, 204);
  t.equal(await gw.store.sessions.count(), 1, 'the next sign-out pruned the expired denial and kept its own');
  t.notOk(await gw.store.sessions.isRevoked('stale'));
  t.equal((await gw.api('GET', '/api/auth/me', { token: gw.adminToken })).status, 401);
});

t.test('sign out everywhere, by the user or by an admin, ends every token issued before it', async (t) => {
  const gw = await startGateway(t);
  const tokens = [await gw.userToken('op', ['operator'], ['root']), await gw.login('op', TEST_PASSWORD)];
  const renewed = await gw.api('POST', '/api/auth/renew', { token: tokens[0] });
  tokens.push(renewed.json.token);
  const bystander = await gw.userToken('op2', ['operator'], ['root']);

  t.equal((await gw.api('POST', '/api/auth/logout-all', { token: tokens[1] })).status, 204);
  for (const [i, token] of tokens.entries()) t.equal((await gw.api('GET', '/api/auth/me', { token })).status, 401, `token ${i + 1} of 3 is refused`);
  t.equal((await gw.api('GET', '/api/auth/me', { token: bystander })).status, 200, 'another user is not signed out');
  const again = await gw.login('op', TEST_PASSWORD);
  t.equal((await gw.api('GET', '/api/auth/me', { token: again })).status, 200, 'signing in afterwards works');

  const users = (await gw.api('GET', '/api/users', { token: gw.adminToken })).json.items as { id: string; username: string }[];
  const op = users.find((u) => u.username === 'op')!;
  const byOperator = await gw.api('POST', `/api/users/${op.id}/sessions/revoke`, { token: bystander });
  t.equal(byOperator.status, 403, 'an operator may not sign others out');
  t.equal((await gw.api('POST', '/api/users/nobody/sessions/revoke', { token: gw.adminToken })).status, 404);
  const revoked = await gw.api('POST', `/api/users/${op.id}/sessions/revoke`, { token: gw.adminToken });
  t.equal(revoked.status, 204, revoked.body);
  t.equal((await gw.api('GET', '/api/auth/me', { token: again })).status, 401, 'the admin signed the user out everywhere');
  t.equal((await gw.api('GET', '/api/auth/me', { token: gw.adminToken })).status, 200, 'the admin stays signed in');
  t.equal((await gw.api('GET', '/api/auth/me', { token: await gw.login('op', TEST_PASSWORD) })).status, 200, 'the user can sign in again');

  const log = await gw.store.audit.list({ limit: 50, ranges: [['/', '0']], includeSystem: true });
  t.ok(log.some((e) => e.action === 'auth.logout-all' && e.actor === 'op' && e.target === 'op'), 'the user\'s own sign-out everywhere is audited');
  t.ok(log.some((e) => e.action === 'user.sessions-revoke' && e.actor === 'admin' && e.target === 'op' && e.outcome === 'ok'), 'the admin\'s is audited with who and whom');

  // A county admin manages only users inside their county.
  await gw.api('POST', '/api/departments', { token: gw.adminToken, body: { id: 'cty', name: 'County', parentId: 'root', level: 'county' } });
  const countyAdmin = await gw.userToken('cadmin', ['admin'], ['cty']);
  t.equal((await gw.api('POST', `/api/users/${op.id}/sessions/revoke`, { token: countyAdmin })).status, 404, 'a user outside the admin\'s scope is not found');
});

t.test('a signed-out token ends its control connection at the next heartbeat, with the reason', async (t) => {
  const gw = await startControlGateway(t, { control: { heartbeatMs: 200 } });
  const opToken = await gw.userToken('op', ['operator'], ['countyA']);
  const supToken = await gw.userToken('sup', ['supervisor'], ['countyA']);
  const op = await gw.client(opToken);
  const sup = await gw.client(supToken);
  const admin = await gw.client(gw.adminToken);
  t.equal((await op.request('walls.list')).type, 'ack');

  t.equal((await gw.api('POST', '/api/auth/logout', { token: opToken })).status, 204);
  const closed = await waitFor(() => op.closed, (v) => v !== null, 2_000, 20);
  t.same(closed, { code: 4001, reason: 'signed out' });
  const refused = await ControlClient.connect(gw.wsUrl, opToken).then(
    (c) => (void c.close(), null),
    (err: { status?: number }) => err.status,
  );
  t.equal(refused, 401, 'the token opens no new control connection');

  t.equal((await gw.api('POST', '/api/auth/logout-all', { token: supToken })).status, 204);
  t.same(await waitFor(() => sup.closed, (v) => v !== null, 2_000, 20), { code: 4001, reason: 'signed out everywhere' });
  t.equal(admin.closed, null, 'another user\'s connection stays');
  t.equal((await admin.request('walls.list')).type, 'ack');
});

t.test('a sign-out survives a restart of the gateway', async (t) => {
  const dataDir = tempDir(t);
  const first = await spawnGateway(t, dataDir);
  const login = async (base: string, password: string) => {
    const res = await fetch(`${base}/api/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'admin', password }) });
    return ((await res.json()) as { token: string }).token;
  };
  const call = async (base: string, method: string, path: string, token: string) =>
    (await fetch(`${base}${path}`, { method, headers: { authorization: `Bearer ${token}` } })).status;
  const password = first.adminPassword!;
  const signedOut = await login(first.baseUrl, password);
  const everywhere = await login(first.baseUrl, password);
  t.equal(await call(first.baseUrl, 'POST', '/api/auth/logout', signedOut), 204);
  const users = (await (await fetch(`${first.baseUrl}/api/users`, { headers: { authorization: `Bearer ${everywhere}` } })).json()) as { items: { id: string }[] };
  t.equal(await call(first.baseUrl, 'POST', `/api/users/${users.items[0]!.id}/sessions/revoke`, everywhere), 204);
  // kill -9: the sign-out was acknowledged, so it must be on disk already.
  first.child.kill('SIGKILL');
  await first.exited;

  const second = await spawnGateway(t, dataDir);
  t.equal(await call(second.baseUrl, 'GET', '/api/auth/me', signedOut), 401, 'the signed-out token is still refused');
  t.equal(await call(second.baseUrl, 'GET', '/api/auth/me', everywhere), 401, 'so is a token from before sign out everywhere');
  t.equal(await call(second.baseUrl, 'GET', '/api/auth/me', await login(second.baseUrl, password)), 200, 'a new sign-in works');
  second.child.kill('SIGTERM');
  await second.exited;
});

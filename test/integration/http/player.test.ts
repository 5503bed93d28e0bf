import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { startGateway, tempDir } from '../../helpers/gateway.js';

t.test('the pages are served with a strict content security policy; bundles are cached, pages are not', async (t) => {
  const dir = tempDir(t);
  mkdirSync(join(dir, 'assets'));
  writeFileSync(join(dir, 'index.html'), '<!doctype html><title>x</title>');
  writeFileSync(join(dir, 'wall.html'), '<!doctype html><title>wall</title>');
  writeFileSync(join(dir, 'assets', 'wall-ABC.js'), 'export {};');
  const gw = await startGateway(t, { player: { dir, map: { tileUrl: 'https://tiles.example.cn/{z}/{x}/{y}.png' } } });

  const index = await gw.api('GET', '/');
  t.equal(index.status, 200, 'the sign-in page is the index');
  const csp = String(index.headers['content-security-policy']);
  t.match(csp, /script-src 'self'(;|$)/, 'scripts only from the gateway: no inline script can run');
  t.match(csp, /frame-ancestors 'none'/, 'no page may frame it');
  t.match(csp, /img-src 'self' data: blob: https:\/\/tiles\.example\.cn/, "images also from the configured map server's origin");
  t.equal(index.headers['cache-control'], 'no-cache', 'pages are revalidated, so a new build is picked up');
  t.equal(index.headers['x-content-type-options'], 'nosniff');

  const bundle = await gw.api('GET', '/assets/wall-ABC.js');
  t.equal(bundle.status, 200);
  t.match(String(bundle.headers['cache-control']), /immutable/, 'hashed bundles are cached for good');
  t.equal((await gw.api('GET', '/wall.html')).status, 200);
  t.equal((await gw.api('GET', '/../package.json')).status, 404, 'nothing outside the player directory');
  t.equal((await gw.api('GET', '/api/nothing-here')).status, 404, 'unknown API paths stay 404');
});

t.test('a tile server with {s} subdomains is allowed as a wildcard; a template that would widen the policy adds nothing', async (t) => {
  const { contentSecurityPolicy } = await import('../../../gateway/src/http/player.js');
  t.match(contentSecurityPolicy('https://{s}.tiles.example.cn:8443/{z}/{x}/{y}.png'), /img-src 'self' data: blob: https:\/\/\*\.tiles\.example\.cn:8443;/);
  t.match(contentSecurityPolicy('/tiles/{z}/{x}/{y}.png'), /img-src 'self' data: blob:;/, 'a path on the gateway is already self');
  t.match(contentSecurityPolicy("http://a.b;script-src 'unsafe-inline'/{z}"), /img-src 'self' data: blob:;/, 'no directive can be smuggled in');
  t.notMatch(contentSecurityPolicy("http://a.b;script-src 'unsafe-inline'/{z}"), /unsafe-inline'\/|script-src 'unsafe-inline'/);
});

t.test('/api/ui gives the language and map settings without signing in, and nothing else', async (t) => {
  const gw = await startGateway(t, { player: { language: 'en', map: { tileUrl: '', centre: [116.4, 39.9] } } });
  const res = await gw.api('GET', '/api/ui');
  t.equal(res.status, 200);
  t.same(res.json, { language: 'en', map: { tileUrl: null, attribution: '', maxZoom: 18, centre: [116.4, 39.9] } }, 'an empty tile URL means the plain coordinate view');
});

t.test('a gateway whose player is not built says how to build it', async (t) => {
  const gw = await startGateway(t, { player: { dir: join(tempDir(t), 'missing') } });
  const res = await gw.api('GET', '/');
  t.equal(res.status, 503);
  t.match(res.body, /npm run build:player/);
  t.ok(gw.logs.some((l) => l.includes('the player is not built')), 'and the log says so at start');
  t.equal((await gw.api('GET', '/api/ui')).status, 200, 'the API works regardless');
});

t.test('the map tile URL must be http(s) or a path on the gateway', async (t) => {
  const { loadConfig } = await import('../../../gateway/src/config/load.js');
  t.throws(() => loadConfig({ argv: [], env: { WALLGATE_PLAYER_MAP_TILE_URL: 'javascript:alert(1)' } }), /player\.map\.tileUrl/);
});

t.test('a signed-in page renews its token; a changed password still ends the renewed one', async (t) => {
  const gw = await startGateway(t);
  const token = await gw.userToken('screen-1', ['operator'], ['root']);
  const renewed = await gw.api('POST', '/api/auth/renew', { token });
  t.equal(renewed.status, 200);
  t.ok(Date.parse(renewed.json.expiresAt) > Date.now() + 11 * 3600_000, 'good for another full lifetime');
  t.equal((await gw.api('GET', '/api/auth/me', { token: renewed.json.token })).status, 200, 'and it works');
  t.equal((await gw.api('POST', '/api/auth/renew')).status, 401, 'nobody renews without a token');

  const changed = await gw.api('POST', '/api/auth/password', { token: renewed.json.token, body: { currentPassword: 'correct horse battery', newPassword: 'another long password' } });
  t.equal(changed.status, 200);
  t.equal((await gw.api('GET', '/api/auth/me', { token: renewed.json.token })).status, 401, 'the renewed token ends with the password');
  t.equal((await gw.api('POST', '/api/auth/renew', { token: renewed.json.token })).status, 401, 'and cannot renew itself');
});

import { createServer } from 'node:net';
import t from 'tap';
import { CameraSimulator } from '../../scripts/sim/rtsp-server.js';
import { ensureClip } from '../../scripts/sim/clips.js';
import { launchBrowser, playerBuild, signIn, waitForTiles } from '../helpers/browser.js';
import { tempDir, TEST_PASSWORD } from '../helpers/gateway.js';
import { spawnGateway } from '../helpers/process.js';

/** A port free now, for a gateway that must come back where the screen left it. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function rest(baseUrl: string, token: string | null, method: string, path: string, body?: unknown) {
  const res = await fetch(`${baseUrl}${path}`, {
    method,
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body ? { 'content-type': 'application/json' } : {}) },
    ...(body ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  return { status: res.status, json: (text ? JSON.parse(text) : null) as any };
}

t.test('a wall screen comes back by itself when the gateway is killed and restarted', async (t) => {
  await ensureClip('h264-720p-1s');
  const sim = await CameraSimulator.start();
  t.teardown(() => sim.close());
  sim.addCamera('gate', { clip: 'h264-720p-1s' });
  const dataDir = tempDir(t);
  const env = { WALLGATE_SERVER_PORT: String(await freePort()), WALLGATE_PLAYER_DIR: await playerBuild() };
  const first = await spawnGateway(t, dataDir, env);
  const admin = (await rest(first.baseUrl, null, 'POST', '/api/auth/login', { username: 'admin', password: first.adminPassword })).json.token as string;
  t.equal((await rest(first.baseUrl, admin, 'POST', '/api/sources', { id: 'gate', name: 'Main gate', departmentId: 'root', url: sim.url('gate', true) })).status, 201);
  const wall = await rest(first.baseUrl, admin, 'POST', '/api/walls', { id: 'hall', name: 'Hall', departmentId: 'root', screens: { rows: 1, cols: 1, width: 1920, height: 1080 }, layout: '1' });
  t.equal((await rest(first.baseUrl, admin, 'PUT', '/api/walls/hall/tiles/s1-1', { baseVersion: wall.json.wall.version, content: { kind: 'camera', cameraId: 'gate' } })).status, 200);
  t.equal((await rest(first.baseUrl, admin, 'POST', '/api/users', { username: 'op', password: TEST_PASSWORD, roles: ['operator'], scopes: ['root'] })).status, 201);

  const browser = await launchBrowser(t, 'wall-restart');
  const page = await browser.page('screen');
  await signIn(page, first.baseUrl, 'op', '/wall.html?wall=hall&screen=1');
  await waitForTiles(page, (ts) => ts[0]?.state === 'live', 30_000);

  first.child.kill('SIGKILL');
  await first.exited;
  const killed = Date.now();
  await page.waitForSelector('.wall-connection.shown', { timeout: 10_000 });
  t.pass(`the screen says the connection is lost ${Date.now() - killed} ms after the gateway died`);
  const frozen = await waitForTiles(page, (ts) => ts[0]?.state === 'retrying', 15_000);
  t.equal(frozen[0]?.state, 'retrying', `the tile whose picture stopped says it is retrying ${Date.now() - killed} ms after the gateway died`);
  // The lost stream is asked for again at once, which finds the gateway gone: the countdown says so.
  t.match(frozen[0]?.badge ?? '', /\d+ 秒后重试（无法连接网关。）/, `with a countdown and why: "${frozen[0]?.badge}"`);

  const second = await spawnGateway(t, dataDir, env);
  const restarted = Date.now();
  const back = await waitForTiles(page, (ts) => ts[0]?.state === 'live' && ts[0].currentTime > 0, 45_000, 250);
  t.equal(back[0]?.state, 'live', `the tile plays again ${Date.now() - restarted} ms after the gateway came back`);
  const before = back[0]!;
  await new Promise((r) => setTimeout(r, 1_500));
  const after = (await waitForTiles(page, () => true, 0))[0]!;
  t.ok(after.currentTime > before.currentTime + 0.5, 'and its video moves, without anyone touching the screen');
  await page.waitForSelector('.wall-connection.shown', { state: 'detached', timeout: 10_000 }).catch(() => {});
  t.equal(await page.isVisible('.wall-connection.shown'), false, 'the connection warning is gone');
  t.match(page.url(), /\/wall\.html\?wall=hall&screen=1$/, 'the screen never left the wall page (the sign-in survived)');
  second.child.kill('SIGTERM');
  t.equal((await second.exited).code, 0, 'the gateway stops cleanly');
});

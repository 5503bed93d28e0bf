import { join } from 'node:path';
import t from 'tap';
import { HOP_PARAM } from '../../gateway/src/cluster/routing.js';
import { clusterNodeEnv, makeSharedSecrets } from '../../scripts/cluster-local.js';
import { ensureClip } from '../../scripts/sim/clips.js';
import { CameraSimulator } from '../../scripts/sim/rtsp-server.js';
import { launchBrowser, playerBuild, signIn, tiles, waitForTiles, type TileSample } from '../helpers/browser.js';
import { freshDatabase, needsCluster, redisPrefix, sharedRedisUrl } from '../helpers/cluster.js';
import { tempDir, TEST_PASSWORD } from '../helpers/gateway.js';
import { adminLogin, gatewayApi, spawnGateway, type GatewayProcess } from '../helpers/process.js';
import { waitFor } from '../helpers/streams.js';

const CAMERAS = ['gate', 'yard', 'dock', 'lane'];

t.test('a wall screen keeps playing when the node pulling one of its cameras dies, and when its own node dies', needsCluster(), async (t) => {
  await ensureClip('h264-360p-1s');
  const sim = await CameraSimulator.start();
  t.teardown(() => sim.close());
  for (const id of CAMERAS) sim.addCamera(id, { clip: 'h264-360p-1s' });
  const dir = tempDir(t);
  const pgUrl = await freshDatabase(t);
  const keyPrefix = redisPrefix();
  const secretsFile = makeSharedSecrets(join(dir, 'secrets.json'));
  const playerDir = await playerBuild();
  const node = (index: number) =>
    spawnGateway(
      t,
      join(dir, `node-${index}`),
      clusterNodeEnv({
        index,
        dataDir: join(dir, `node-${index}`),
        secretsFile,
        pgUrl,
        redisUrl: sharedRedisUrl(),
        keyPrefix,
        port: 0,
        extra: { WALLGATE_PLAYER_DIR: playerDir, WALLGATE_CLUSTER_LEASE_MS: '2000', WALLGATE_CLUSTER_HEARTBEAT_MS: '500', WALLGATE_STREAMS_CLOSE_AFTER_MS: '1000' },
      }),
    );
  // Node 1 creates the tables and the admin; the others start beside each other once it has.
  const a = await node(1);
  const [b, c] = await Promise.all([node(2), node(3)]);
  const admin = await adminLogin(a.baseUrl, a.adminPassword!);
  const call = async (gw: GatewayProcess, method: string, path: string, body?: unknown) => {
    const res = await gatewayApi(gw.baseUrl, admin, method, path, body);
    if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(res.json)}`);
    return res.json;
  };
  await waitFor(() => call(a, 'GET', '/api/cluster/nodes'), (v) => v.nodes.length === 3, 10_000, 100, 'node 1 to see three nodes');
  for (const id of CAMERAS) await call(a, 'POST', '/api/sources', { id, name: `Camera ${id}`, departmentId: 'root', url: sim.url(id, true) });
  const wall = await call(a, 'POST', '/api/walls', { id: 'hall', name: 'Hall', departmentId: 'root', screens: { rows: 1, cols: 1, width: 1920, height: 1080 }, layout: '4' });
  let version = wall.wall.version;
  for (const [i, id] of CAMERAS.entries()) version = (await call(a, 'PUT', `/api/walls/hall/tiles/s1-${i + 1}`, { baseVersion: version, content: { kind: 'camera', cameraId: id } })).version;
  await call(a, 'POST', '/api/users', { username: 'op', password: TEST_PASSWORD, roles: ['operator'], scopes: ['root'] });

  // "yard" is pulled by node 2: asked there as a request already sent on once, it is served where it lands.
  const yard = await call(b, 'POST', '/api/streams/yard/view');
  await waitFor(async () => (await fetch(`${b.baseUrl}${yard.hls}?${HOP_PARAM}=1`)).status, (s) => s === 200, 20_000, 200, 'node 2 to play yard');
  const ownerOf = async (camera: string) => {
    const view = await call(a, 'GET', '/api/cluster');
    return view.nodes.find((n: { cameras: { cameraId: string }[] }) => n.cameras.some((cam) => cam.cameraId === camera))?.id ?? null;
  };
  t.equal(await ownerOf('yard'), 'node-2', 'node 2 pulls yard');

  const browser = await launchBrowser(t, 'cluster-failover');
  const page = await browser.page('screen');
  await signIn(page, a.baseUrl, 'op', '/wall.html?wall=hall&screen=1');
  const playing = (ts: TileSample[]) => ts.length === 4 && ts.every((x) => x.state === 'live' && x.currentTime > 0);
  await waitForTiles(page, playing, 30_000);
  t.pass('the screen on node 1 plays all four cameras');
  t.equal(await ownerOf('yard'), 'node-2', 'yard is still pulled by node 2 while the screen watches it');

  /** Samples the tiles every half second until `done`; records any other tile whose video did not move. */
  const watchOthers = (except: string) => {
    const stalls: string[] = [];
    let last = new Map<string, number>();
    let lastAt = Date.now();
    const check = (ts: TileSample[]) => {
      const now = Date.now();
      for (const x of ts) {
        if (x.camera === except) continue;
        const before = last.get(x.camera);
        // Over at least a second the video of a playing tile must have moved on.
        if (before !== undefined && now - lastAt >= 1_000 && (x.state !== 'live' || x.currentTime <= before)) stalls.push(`${x.camera} ${x.state} at ${x.currentTime}`);
      }
      if (now - lastAt >= 1_000) {
        last = new Map(ts.map((x) => [x.camera, x.currentTime]));
        lastAt = now;
      }
    };
    return { check, stalls };
  };

  t.comment('node 2, which pulls yard, is killed');
  const others = watchOthers('yard');
  b.child.kill('SIGKILL');
  await b.exited;
  const killed = Date.now();
  // A WebRTC picture's clock runs on when its packets stop: yard is back when another node holds it and its frames are decoded again.
  const newOwner = await waitFor(
    async () => {
      others.check(await tiles(page));
      return ownerOf('yard');
    },
    (o) => o !== null && o !== 'node-2',
    10_000,
    250,
    'a surviving node to hold the lease of yard',
  );
  const framesThen = (await tiles(page)).find((x) => x.camera === 'yard')!.frames;
  const back = await waitForTiles(
    page,
    (ts) => {
      others.check(ts);
      const y = ts.find((x) => x.camera === 'yard');
      return !!y && y.state === 'live' && y.frames > framesThen + 10;
    },
    Math.max(0, 10_000 - (Date.now() - killed)),
    250,
  );
  t.ok(Date.now() - killed <= 10_000, `yard plays again through ${newOwner}, ${Date.now() - killed} ms after node 2 died`);
  t.equal(back.find((x) => x.camera === 'yard')?.state, 'live');
  t.same(others.stalls, [], 'the other tiles never stopped');

  t.comment("node 1, the screen's own node, is killed");
  const marks = new Map((await tiles(page)).map((x) => [x.camera, x.frames]));
  a.child.kill('SIGKILL');
  await a.exited;
  const lost = Date.now();
  const resumed = await waitForTiles(page, (ts) => ts.length === 4 && ts.every((x) => x.state === 'live' && x.frames > (marks.get(x.camera) ?? 0) + 10), 25_000, 250);
  t.ok(resumed.every((x) => x.state === 'live'), `every tile plays again through node 3, ${Date.now() - lost} ms after node 1 died`);
  await page.waitForSelector('.wall-connection.shown', { state: 'detached', timeout: 10_000 });
  t.pass('the screen is connected again (its control connection moved to node 3)');
  t.match(page.url(), new RegExp(`^${a.baseUrl}/wall\\.html`), 'without leaving its page');
  c.child.kill('SIGTERM');
  t.equal((await c.exited).code, 0, 'node 3 stops cleanly');
});

/**
 * Walls across nodes, at the wall service: two (or three) WallService instances on one store, as two
 * gateways on one database are, joined by a real Redis. A "screen" follows one node's service the way
 * the control server and the player do: a snapshot, then each delta in version order, a snapshot again
 * when the node resets the wall.
 */
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import t, { type Test } from 'tap';
import { ClusterBus } from '../../gateway/src/cluster/bus.js';
import { ClusterLeader } from '../../gateway/src/cluster/leader.js';
import { defaultConfig } from '../../gateway/src/config/load.js';
import { applyDelta, type WallDelta, type WallView } from '../../gateway/src/control/model.js';
import { WallService, type ControlActor } from '../../gateway/src/control/walls.js';
import { NetworkPolicy } from '../../gateway/src/lib/cidr.js';
import { CredentialSealer } from '../../gateway/src/registry/credentials.js';
import { Registry } from '../../gateway/src/registry/service.js';
import { SqliteStore } from '../../gateway/src/store/sqlite/index.js';
import type { Store } from '../../gateway/src/store/types.js';
import { needsCluster, ownRedis, redisPrefix, sharedRedisUrl } from '../helpers/cluster.js';
import { tempDir } from '../helpers/gateway.js';
import { waitFor } from '../helpers/streams.js';

const admin: ControlActor = { id: 'u-admin', username: 'admin', ip: '127.0.0.1', scopes: ['root'], roles: ['admin'] };
const CAMERAS = ['c1', 'c2', 'c3', 'c4', 'c5', 'c6', 'c7', 'c8'];
const TILES = Array.from({ length: 4 }, (_, s) => Array.from({ length: 4 }, (_, i) => `s${s + 1}-${i + 1}`)).flat();

interface Cluster {
  store: Store;
  registry: Registry;
  redisUrl: string;
  prefix: string;
}

async function cluster(t: Test, redisUrl = sharedRedisUrl()): Promise<Cluster> {
  const store = SqliteStore.open(join(tempDir(t), 'walls.db'));
  t.teardown(() => store.close());
  await store.departments.create({ id: 'root', name: 'Root', parentId: null, level: 'national', path: '/root/' }, 1);
  const registry = new Registry(store, new CredentialSealer(randomBytes(32)), new NetworkPolicy({ allow: [], deny: [] }), async () => []);
  await registry.init();
  for (const [i, id] of CAMERAS.entries()) await registry.createSource(admin, { id, name: `Camera ${id}`, departmentId: 'root', url: `rtsp://10.1.0.${i + 1}:554/s` });
  return { store, registry, redisUrl, prefix: redisPrefix() };
}

function quietLog() {
  const lines: string[] = [];
  const at = (level: string) => (o: object, m: string) => void lines.push(`${level} ${m} ${JSON.stringify(o)}`);
  return { lines, info: at('info'), warn: at('warn'), error: at('error'), debug: () => undefined };
}

type Node = Awaited<ReturnType<typeof node>>;

/** One node's wall service; `joined: false` makes one that writes to the store but never tells the others (its messages lost). */
async function node(t: Test, c: Cluster, id: string, o: { joined?: boolean } = {}) {
  const config = structuredClone(defaultConfig().control);
  config.tours.minDwellSec = 1;
  config.tours.prewarmMs = 0;
  const log = quietLog();
  const walls = new WallService(c.store, c.registry, config, { prewarm: () => undefined }, log);
  let bus: ClusterBus | null = null;
  let leader: ClusterLeader | null = null;
  let redis: Redis | null = null;
  if (o.joined !== false) {
    bus = await ClusterBus.open({ redisUrl: c.redisUrl, prefix: c.prefix, nodeId: id, log });
    redis = new Redis(c.redisUrl, { enableOfflineQueue: false, maxRetriesPerRequest: 1, retryStrategy: () => 50 });
    redis.on('error', () => undefined);
    await once(redis, 'ready');
    leader = new ClusterLeader({ redis, prefix: c.prefix, nodeId: id, leaseMs: 1_000, heartbeatMs: 250, log });
    walls.joinCluster(bus, leader);
  }
  await walls.init();
  await leader?.start();
  await bus?.subscribed();
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    await leader?.close();
    await walls.close();
    await bus?.close();
    redis?.disconnect();
  };
  t.teardown(close);
  const run = <T = { version: number }>(type: Parameters<WallService['execute']>[1], payload: object, actor = admin) => walls.execute(actor, type, payload) as Promise<T>;
  return { id, walls, bus, leader, log, run, close };
}

/** A screen following one node's wall as the control server and the player do. */
function screen(n: Node, wallId: string) {
  let wall = structuredClone(n.walls.peek(wallId)!) as WallView;
  const seen: Array<{ version: number; snapshot: boolean; json?: string }> = [{ version: wall.version, snapshot: true }];
  const problems: string[] = [];
  n.walls.on('delta', (d: WallDelta, json: string) => {
    if (d.wallId !== wallId) return;
    const parsed = JSON.parse(json) as WallDelta;
    if (parsed.version <= wall.version) return problems.push(`version ${parsed.version} again after ${wall.version}`);
    if (!applyDelta(wall, parsed)) return problems.push(`version ${parsed.version} does not follow ${wall.version}`);
    seen.push({ version: parsed.version, snapshot: false, json });
  });
  n.walls.on('reset', (id: string) => {
    if (id !== wallId) return;
    wall = structuredClone(n.walls.peek(wallId)!);
    seen.push({ version: wall.version, snapshot: true });
  });
  return {
    get wall() {
      return wall;
    },
    seen,
    problems,
  };
}

async function createWall(n: Node, id = 'w1') {
  await n.run('wall.create', { id, name: 'Wall', departmentId: 'root', screens: { rows: 2, cols: 2, width: 1920, height: 1080 }, layout: '4' });
  return id;
}

/** Two nodes on one store and bus, with wall w1 created on node a and known to node b. */
async function twoNodesSharingWall(t: Test, redisUrl?: string) {
  const c = await cluster(t, redisUrl);
  const a = await node(t, c, 'node-a');
  const b = await node(t, c, 'node-b');
  await createWall(a);
  await waitFor(() => b.walls.peek('w1'), (w) => !!w, 3_000, 10, 'node b to learn of the wall created on node a');
  return { c, a, b };
}

const assign = (n: Node, wallId: string, tileId: string, cameraId: string, baseVersion: number) =>
  n.run('tile.assign', { wallId, tileId, baseVersion, content: { kind: 'camera', cameraId } });

const stored = async (c: Cluster, wallId: string) => (await c.store.walls.get(wallId))!;
const cameraOn = (w: WallView, tile: string) => (w.tiles[tile]!.content as { cameraId?: string }).cameraId;

t.test('an assignment on node A reaches a screen on node B with the next version, as the same delta', needsCluster(), async (t) => {
  const { c, a, b } = await twoNodesSharingWall(t);
  const onA = screen(a, 'w1');
  const onB = screen(b, 'w1');
  const { version } = await assign(a, 'w1', 's1-1', 'c1', 1);
  t.equal(version, 2);
  await waitFor(() => onB.seen.length, (n) => n === 2, 3_000, 10, 'the delta on node b');
  t.same(onB.seen[1], onA.seen[1], 'node b emits the very delta node a did, so every screen sees the same');
  t.equal(cameraOn(onB.wall, 's1-1'), 'c1');
  t.same(onB.problems, []);

  await b.run('wall.rename', { wallId: 'w1', name: 'Renamed', baseVersion: 2 });
  await waitFor(() => a.walls.peek('w1')!.name, (n) => n === 'Renamed', 3_000, 10, 'the rename on node a');
  t.equal(onA.wall.version, 3, 'a change on node b reaches node a too');

  await a.run('preset.save', { wallId: 'w1', name: 'Morning' });
  await waitFor(() => b.walls.presetRows('w1').map((p) => p.name), (n) => n.includes('Morning'), 3_000, 10, 'the preset on node b');
  await b.run('wall.delete', { wallId: 'w1' });
  await waitFor(() => a.walls.peek('w1'), (w) => w === undefined, 3_000, 10, 'the wall to be gone from node a');
  t.equal(a.walls.presetRows('w1').length, 0, 'with its presets');
});

t.test('changes on A and B to one wall at once are all acknowledged, each version handed out once, and both screens agree', needsCluster(), async (t) => {
  const { c, a, b } = await twoNodesSharingWall(t);
  const onA = screen(a, 'w1');
  const onB = screen(b, 'w1');
  // Each node drives its own tiles; both start from version 1, so most changes meet a version the other took.
  const jobs = TILES.slice(0, 8).map((tile, i) => ({ n: i % 2 ? b : a, tile, camera: CAMERAS[i]! }));
  const acks = await Promise.all(jobs.map((j) => assign(j.n, 'w1', j.tile, j.camera, 1)));
  const versions = acks.map((r) => r.version).sort((x, y) => x - y);
  t.same(versions, [2, 3, 4, 5, 6, 7, 8, 9], 'all eight acknowledged, with versions 2..9, none twice');
  const row = await stored(c, 'w1');
  t.equal(row.version, 9);
  await waitFor(() => [onA.wall.version, onB.wall.version], (v) => v[0] === 9 && v[1] === 9, 3_000, 10, 'both screens at version 9');
  for (const s of [onA, onB]) {
    t.same(s.problems, [], 'no screen saw a version twice or out of order');
    for (const j of jobs) t.equal(cameraOn(s.wall, j.tile), j.camera, `${j.tile} shows ${j.camera}`);
    const order = s.seen.map((x) => x.version);
    t.same(order, [...order].sort((x, y) => x - y), 'versions only go up');
  }
  t.same(onA.wall, onB.wall, 'both screens hold the same wall');
  t.same(onA.wall.tiles, JSON.parse(JSON.stringify(b.walls.peek('w1')!.tiles)));
});

t.test('a node that missed a version reloads the wall and gives its screens a snapshot', needsCluster(), async (t) => {
  const { c, a, b } = await twoNodesSharingWall(t);
  // A node whose messages never reach the others: what it writes is in the store only.
  const lost = await node(t, c, 'node-lost', { joined: false });
  const onA = screen(a, 'w1');
  const onB = screen(b, 'w1');
  await assign(lost, 'w1', 's2-1', 'c5', 1);
  // Node a does not know version 2 was taken: its change conflicts, reloads, and goes through as 3.
  t.equal((await assign(a, 'w1', 's1-1', 'c1', 1)).version, 3, 'acknowledged at the next free version');
  t.same(onA.seen.map((s) => [s.version, s.snapshot]), [[1, true], [2, true], [3, false]], "node a's screens: a snapshot of what it missed, then its change");
  await waitFor(() => onB.wall.version, (v) => v === 3, 3_000, 10, 'node b at version 3');
  t.same(onB.seen.at(-1), { version: 3, snapshot: true }, 'node b saw a gap (2 never came) and gave its screens a snapshot');
  for (const s of [onA, onB]) t.same([cameraOn(s.wall, 's1-1'), cameraOn(s.wall, 's2-1')], ['c1', 'c5']);
  t.same([onA.problems, onB.problems], [[], []]);
});

t.test('a Redis restart loses nothing acknowledged: every node reloads from the store', needsCluster(), async (t) => {
  const redis = await ownRedis(t);
  const { c, a, b } = await twoNodesSharingWall(t, redis.url);
  const onA = screen(a, 'w1');
  const onB = screen(b, 'w1');
  await redis.kill();
  // Acknowledged while Redis is down: written to the store, told to nobody.
  t.equal((await assign(a, 'w1', 's1-1', 'c1', 1)).version, 2);
  t.equal((await assign(b, 'w1', 's1-2', 'c2', 1)).version, 3, "node b's change conflicts with node a's, reloads and is acknowledged too");
  t.equal((await assign(a, 'w1', 's1-3', 'c3', 1)).version, 4);
  await redis.restart();
  await waitFor(() => [onA.wall.version, onB.wall.version], (v) => v[0] === 4 && v[1] === 4, 8_000, 20, 'every screen back at the store\'s version 4');
  const row = await stored(c, 'w1');
  t.equal(row.version, 4);
  for (const s of [onA, onB]) {
    t.same([cameraOn(s.wall, 's1-1'), cameraOn(s.wall, 's1-2'), cameraOn(s.wall, 's1-3')], ['c1', 'c2', 'c3'], 'every acknowledged change is on every screen');
    t.same(s.problems, []);
  }
  // And the bus carries changes again.
  await assign(b, 'w1', 's1-4', 'c4', 4);
  await waitFor(() => onA.wall.version, (v) => v === 5, 3_000, 10, 'a change after the restart');
  t.same(onA.seen.at(-1)?.snapshot, false, 'as a delta again');
});

t.test('a tour rotates on the leader only, and moves to the other node when the leader closes', needsCluster(), async (t) => {
  const c = await cluster(t);
  const a = await node(t, c, 'node-a');
  const b = await node(t, c, 'node-b');
  t.equal(a.leader!.isLeader, true, 'node a leads');
  await createWall(a);
  await waitFor(() => b.walls.peek('w1'), (w) => !!w, 3_000, 10, 'the wall on node b');
  const rotatedBy: string[] = [];
  for (const n of [a, b]) {
    n.walls.on('delta', (d) => {
      if (d.cause === 'tour.rotate' || d.cause === 'tour.resume') rotatedBy.push(`${n.id}:${d.version}`);
    });
  }
  const fromBus: string[] = [];
  a.bus!.subscribe('walls.delta', (m, from) => {
    if ((m as WallDelta).cause === 'tour.rotate') fromBus.push(from);
  });
  // Started on node b, which does not lead: node a runs its timer.
  await b.run('tour.start', { wallId: 'w1', baseVersion: 1, name: 'Patrol', tileIds: ['s1-1', 's1-2'], cameras: CAMERAS, dwellSec: 1 });
  await waitFor(() => rotatedBy.filter((r) => r.startsWith('node-b')).length, (n) => n >= 2, 5_000, 20, 'two rotations to reach node b');
  t.same(fromBus, [], 'node b never rotated it');
  const onB = screen(b, 'w1');
  const stepBefore = b.walls.peek('w1')!.tours[Object.keys(b.walls.peek('w1')!.tours)[0]!]!.step;

  await a.close();
  await waitFor(() => b.leader!.isLeader, (v) => v, 2_000, 10, 'node b to lead');
  await waitFor(() => onB.seen.filter((s) => !s.snapshot).length, (n) => n >= 2, 5_000, 20, 'node b to rotate the tour itself');
  const tour = Object.values(b.walls.peek('w1')!.tours)[0]!;
  t.ok(tour.step > stepBefore, `the tour went on from step ${stepBefore} to ${tour.step}`);
  t.same(onB.problems, []);
  t.equal((await stored(c, 'w1')).version, b.walls.peek('w1')!.version, 'every rotation written');
});

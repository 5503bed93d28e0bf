/**
 * Vehicles across nodes, at the vehicle service: two VehicleService instances on one store, as two
 * gateways on one database are, joined by a real Redis. What a regulator on node B is shown comes
 * from node B's events, which is what its control connections push.
 */
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import t, { type Test } from 'tap';
import { ClusterBus } from '../../gateway/src/cluster/bus.js';
import { ClusterLeader } from '../../gateway/src/cluster/leader.js';
import { defaultConfig } from '../../gateway/src/config/load.js';
import { NetworkPolicy } from '../../gateway/src/lib/cidr.js';
import { CredentialSealer } from '../../gateway/src/registry/credentials.js';
import { Registry } from '../../gateway/src/registry/service.js';
import { SqliteStore } from '../../gateway/src/store/sqlite/index.js';
import type { Alarm } from '../../gateway/src/vehicles/model.js';
import { VehicleService, type VehicleActor } from '../../gateway/src/vehicles/service.js';
import { needsCluster, redisPrefix, sharedRedisUrl } from '../helpers/cluster.js';
import { tempDir } from '../helpers/gateway.js';
import { waitFor } from '../helpers/streams.js';
import { vehicleBody } from '../helpers/vehicles.js';

const admin: VehicleActor = { id: 'u-admin', username: 'admin', ip: '127.0.0.1', scopes: ['root'], roles: ['admin'] };
const feed: VehicleActor = { id: 'u-feed', username: 'feed', ip: '127.0.0.1', scopes: ['root'], roles: ['feed'] };

function quietLog() {
  const lines: string[] = [];
  const at = (level: string) => (o: object, m: string) => void lines.push(`${level} ${m} ${JSON.stringify(o)}`);
  return { lines, info: at('info'), warn: at('warn'), error: at('error') };
}

async function setup(t: Test) {
  const store = SqliteStore.open(join(tempDir(t), 'vehicles.db'));
  t.teardown(() => store.close());
  await store.departments.create({ id: 'root', name: 'Root', parentId: null, level: 'national', path: '/root/' }, 1);
  const registry = new Registry(store, new CredentialSealer(randomBytes(32)), new NetworkPolicy({ allow: [], deny: [] }), async () => []);
  await registry.init();
  for (const v of ['v1', 'v2', 'v3']) {
    for (const ch of [1, 2, 3]) await registry.createSource(admin, { id: `${v}-ch${ch}`, name: `${v} ${ch}`, departmentId: 'root', url: `rtsp://10.2.0.${ch}:554/${v}` });
  }
  const prefix = redisPrefix();
  const node = async (id: string) => {
    const log = quietLog();
    const config = structuredClone(defaultConfig().vehicles);
    const vehicles = new VehicleService(store, registry, { show: async () => null, clear: async () => false, checkTarget: () => undefined }, config, log);
    const bus = await ClusterBus.open({ redisUrl: sharedRedisUrl(), prefix, nodeId: id, log });
    const redis = new Redis(sharedRedisUrl(), { enableOfflineQueue: false, maxRetriesPerRequest: 1 });
    redis.on('error', () => undefined);
    await once(redis, 'ready');
    const leader = new ClusterLeader({ redis, prefix, nodeId: id, leaseMs: 1_000, heartbeatMs: 250, log });
    vehicles.joinCluster(bus, leader);
    await vehicles.init();
    await leader.start();
    await bus.subscribed();
    t.teardown(async () => {
      await leader.close();
      await vehicles.close();
      await bus.close();
      redis.disconnect();
    });
    return { id, vehicles, bus, leader, log };
  };
  const a = await node('node-a');
  const b = await node('node-b');
  // A third bus on the same cluster, to count what travels.
  const observer = await ClusterBus.open({ redisUrl: sharedRedisUrl(), prefix, nodeId: 'observer', log: quietLog() });
  t.teardown(() => observer.close());
  return { store, a, b, observer };
}

t.test('vehicles, positions and alarms reported on node A reach node B; positions travel one message per batch', needsCluster(), async (t) => {
  const { a, b, observer } = await setup(t);
  const batches: number[] = [];
  observer.subscribe('vehicles.positions', (m) => batches.push((m as { items: unknown[] }).items.length));
  await observer.subscribed();

  for (const [id, plate] of [['v1', '粤A11111'], ['v2', '粤A22222'], ['v3', '粤A33333']] as const) await a.vehicles.create(admin, vehicleBody(id, plate, 'root'));
  await waitFor(() => b.vehicles.size, (n) => n === 3, 3_000, 10, 'node b to know the three vehicles registered on node a');

  const seenOnB: Array<{ id: string; lon: number }> = [];
  b.vehicles.on('position', (e) => seenOnB.push({ id: e.vehicle.id, lon: e.live.position!.lon }));
  const now = Date.now();
  const out = await a.vehicles.reportPositions(feed, ['v1', 'v2', 'v3'].map((vehicleId, i) => ({ vehicleId, lat: 32.05, lon: 118.1 + i / 10, speed: 40, heading: 90, at: now - 1_000 })));
  t.equal(out.accepted, 3);
  await waitFor(() => seenOnB.length, (n) => n === 3, 3_000, 10, 'three positions on node b');
  t.same(seenOnB.map((s) => s.id).sort(), ['v1', 'v2', 'v3']);
  t.same(batches, [3], 'one message for the batch, not one per report');
  const v1OnB = b.vehicles.get('v1')!;
  t.match(v1OnB.live, { status: 'online', moving: true, position: { lon: 118.1, at: now - 1_000 } }, 'node b shows it online, moving, where node a put it');

  const alarmsOnB: Array<[string, string]> = [];
  b.vehicles.on('alarm', (al: Alarm, change) => alarmsOnB.push([al.type, change]));
  const raised = await a.vehicles.reportAlarms(feed, [{ vehicleId: 'v2', type: 'collision-warning', severity: 'critical', at: Date.now() }]);
  const alarmId = raised.raised[0]!;
  await waitFor(() => alarmsOnB, (l) => l.length === 1, 3_000, 10, 'the alarm on node b');
  t.same(alarmsOnB[0], ['collision-warning', 'raised']);
  t.same(b.vehicles.openAlarms(admin).map((al) => al.id), [alarmId], "it is among node b's open alarms");
  t.equal(b.vehicles.get('v2')!.live.openAlarms, 1);

  // A regulator on node b handles it; node a, which raised it, sees that.
  const alarmsOnA: string[] = [];
  a.vehicles.on('alarm', (_al, change) => alarmsOnA.push(change));
  await b.vehicles.acknowledge(admin, alarmId, 'on it');
  await waitFor(() => alarmsOnA, (l) => l.includes('acknowledged'), 3_000, 10, 'the acknowledgement on node a');
  t.equal(a.vehicles.openAlarms(admin)[0]!.acknowledgedBy, 'admin');
  await a.vehicles.closeAlarmById(admin, alarmId, 'done');
  await waitFor(() => b.vehicles.openAlarms(admin).length, (n) => n === 0, 3_000, 10, 'the alarm closed on node b');
  t.equal(b.vehicles.get('v2')!.live.openAlarms, 0);

  // Edits made on node b reach node a's caches.
  await b.vehicles.putGeofence(admin, null, { name: 'Depot', departmentId: 'root', shape: { kind: 'circle', center: [118.1, 32.05], radiusM: 500 }, rules: [] }, null);
  await waitFor(() => a.vehicles.geofenceList(admin).map((g) => g.name), (n) => n.includes('Depot'), 3_000, 10, 'the geofence on node a');
  await b.vehicles.delete(admin, 'v3', undefined);
  await waitFor(() => a.vehicles.get('v3'), (e) => e === undefined, 3_000, 10, 'the deleted vehicle gone from node a');
});

t.test("a node's late change to an alarm another node handled meanwhile does not take it back", needsCluster(), async (t) => {
  const { a, b, observer } = await setup(t);
  await a.vehicles.create(admin, vehicleBody('v1', '粤A11111', 'root'));
  await a.vehicles.create(admin, vehicleBody('v2', '粤A22222', 'root'));
  await waitFor(() => b.vehicles.size, (n) => n === 2, 3_000, 10, 'node b to know both vehicles');
  const raise = async (vehicleId: string) => (await a.vehicles.reportAlarms(feed, [{ vehicleId, type: 'collision-warning', severity: 'critical', at: Date.now() }])).raised[0]!;
  const acked = await raise('v1');
  const closed = await raise('v2');
  await waitFor(() => b.vehicles.openAlarms(admin).length, (n) => n === 2, 3_000, 10, 'both alarms open on node b');
  // Node a's copies as they were before node b handled them: what a repeat node a wrote meanwhile carries.
  const stale = (id: string) => ({ ...structuredClone(a.vehicles.openAlarms(admin).find((al) => al.id === id)!), occurrences: 2 });
  const [staleAcked, staleClosed] = [stale(acked), stale(closed)];
  await b.vehicles.acknowledge(admin, acked, 'on it');
  await b.vehicles.closeAlarmById(admin, closed, 'done');
  // Those repeats arrive at node b only now (another connection than node b's own messages), then a marker.
  const seen: string[] = [];
  b.vehicles.on('alarm', (al: Alarm, change) => seen.push(`${al.id} ${change}`));
  await observer.publish('vehicles.alarm', { alarm: staleAcked, change: 'updated' });
  await observer.publish('vehicles.alarm', { alarm: staleClosed, change: 'updated' });
  const marker = await raise('v2');
  await waitFor(() => seen, (l) => l.includes(`${marker} raised`), 3_000, 10, 'the marker alarm on node b');
  const open = new Map(b.vehicles.openAlarms(admin).map((al) => [al.id, al]));
  t.notOk(open.has(closed), 'the closed alarm stays closed on node b');
  t.match(open.get(acked), { state: 'acknowledged', acknowledgedBy: 'admin', occurrences: 2 }, 'the acknowledged one keeps its acknowledgement and takes the new count');
  t.notOk(seen.includes(`${closed} updated`), 'no event shows the closed alarm changed');
  t.equal(b.vehicles.get('v2')!.live.openAlarms, 1, 'only the marker counts as open');
  t.equal((await a.vehicles.getAlarm(admin, closed)).state, 'closed');
});

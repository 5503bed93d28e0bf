/**
 * The control plane across two real gateways (one PostgreSQL database, their own Redis), with wall
 * screens on the control WebSocket: a change on one node reaches the other's screens, and a Redis
 * restart loses nothing acknowledged. A GB device revoked on one node loses its registration on the
 * node that holds it, also when the revocation was made while Redis was down.
 */
import t from 'tap';
import { ControlClient } from '../../scripts/sim/control-client.js';
import { GbSimDevice } from '../../scripts/sim/gb-device.js';
import { needsCluster, ownRedis } from '../helpers/cluster.js';
import { startCluster } from '../helpers/cluster-gateways.js';
import { camera } from '../helpers/gateway.js';
import { waitFor, type StreamingGateway } from '../helpers/streams.js';

t.test('wall screens on two gateways follow changes made on either, through a Redis restart', needsCluster(), async (t) => {
  const redis = await ownRedis(t);
  const { nodes } = await startCluster(t, 2, { cluster: { redisUrl: redis.url } });
  const [a, b] = nodes as [StreamingGateway, StreamingGateway];
  for (const id of ['a1', 'a2', 'a3', 'a4']) {
    const res = await a.api('POST', '/api/sources', { token: a.adminToken, body: camera(id, 'root') });
    t.equal(res.status, 201, `camera ${id}`);
  }
  const created = await a.api('POST', '/api/walls', { token: a.adminToken, body: { id: 'w1', name: 'Wall', departmentId: 'root', screens: { rows: 1, cols: 1, width: 1920, height: 1080 }, layout: '4' } });
  t.equal(created.status, 201);
  const screen = async (gw: StreamingGateway) => {
    const c = await ControlClient.connect(`${gw.baseUrl.replace('http', 'ws')}${gw.config.control.path}`, gw.adminToken);
    t.teardown(() => c.close());
    return c;
  };
  const onA = await screen(a);
  const onB = await screen(b);
  await onA.subscribe('w1');
  // Node b hears of the wall over the bus.
  const subscribed = await waitFor(() => onB.request('subscribe', { wallId: 'w1' }), (reply) => reply.type === 'ack', 3_000, 50, 'node b to know wall w1');
  onB.walls.set('w1', subscribed.payload.wall);
  const assign = (c: ControlClient, tileId: string, cameraId: string, baseVersion: number) =>
    c.request('tile.assign', { wallId: 'w1', tileId, baseVersion, content: { kind: 'camera', cameraId } });

  const ack = await assign(onA, 's1-1', 'a1', 1);
  t.match(ack, { type: 'ack', payload: { version: 2 } });
  const wallOnB = await onB.untilVersion('w1', 2);
  t.match(wallOnB.tiles['s1-1']!.content, { kind: 'camera', cameraId: 'a1' }, 'the screen on node b shows the assignment made on node a, as version 2');

  const gbDevice = async (id: string) => {
    const res = await b.api('POST', '/api/gb28181/devices', { token: b.adminToken, body: { id, name: `设备 ${id.slice(-4)}`, departmentId: 'root', password: 'device-secret' } });
    t.equal(res.status, 201, `GB device ${id} added on node b`);
    const device = new GbSimDevice({ id, password: 'device-secret', server: { address: '127.0.0.1', port: a.gb28181!.ports.udpPort!, id: a.config.gb28181.id }, keepaliveIntervalMs: 60_000 });
    t.teardown(() => device.stop());
    await device.start();
    await waitFor(() => a.gb28181!.isOnline(id), (on) => on, 5_000, 20, `GB device ${id} registered with node a`);
    return device;
  };
  const [disabled, rekeyed] = ['34020000001180000021', '34020000001180000022'] as const;
  const disabledDevice = await gbDevice(disabled);
  await gbDevice(rekeyed);

  await redis.kill();
  const rekey = await b.api('PATCH', `/api/gb28181/devices/${rekeyed}`, { token: b.adminToken, body: { password: 'new-device-secret' } });
  t.equal(rekey.status, 200, 'a GB device gets a new password on node b while Redis is down');
  // Acknowledged while Redis is down (written to PostgreSQL), on both nodes.
  t.match(await assign(onA, 's1-2', 'a2', 2), { type: 'ack', payload: { version: 3 } });
  t.match(await assign(onB, 's1-3', 'a3', 2), { type: 'ack', payload: { version: 4 } }, "node b's change meets the version node a took, and is acknowledged as the next");
  await redis.restart();
  for (const c of [onA, onB]) {
    const wall = await c.untilVersion('w1', 4, 10_000);
    t.same(
      ['s1-1', 's1-2', 's1-3'].map((id) => (wall.tiles[id]!.content as { cameraId?: string }).cameraId),
      ['a1', 'a2', 'a3'],
      'every screen resynchronised to what the store holds: nothing acknowledged was lost',
    );
    t.same(c.gaps, [], 'and never applied a delta out of order');
  }
  t.match(await assign(onB, 's1-4', 'a4', 4), { type: 'ack', payload: { version: 5 } });
  t.match((await onA.untilVersion('w1', 5)).tiles['s1-4']!.content, { cameraId: 'a4' }, 'the bus carries changes again after the restart');
  t.notOk(
    await waitFor(() => a.gb28181!.isOnline(rekeyed), (on) => !on, 5_000, 20, 'node a to drop the registration granted on the old password'),
    'node a, resynchronised, dropped the registration granted on the password changed on node b while Redis was down',
  );

  const off = await b.api('PATCH', `/api/gb28181/devices/${disabled}`, { token: b.adminToken, body: { enabled: false } });
  t.equal(off.status, 200);
  t.notOk(await waitFor(() => a.gb28181!.isOnline(disabled), (on) => !on, 3_000, 20, 'node a to drop the registration'), 'node a dropped the registration of the device disabled on node b');
  t.equal(await disabledDevice.keepalive(), 403, 'the disabled device is refused by the node it registered with');

  // A department made on node a is in node b's tree: a camera can be registered in it there.
  const dep = await a.api('POST', '/api/departments', { token: a.adminToken, body: { id: 'east', name: 'East', parentId: 'root', level: 'city' } });
  t.equal(dep.status, 201);
  const registered = async () => (await b.api('POST', '/api/sources', { token: b.adminToken, body: camera('e1', 'east') })).status;
  t.equal(await waitFor(registered, (status) => status === 201, 3_000, 50, 'a camera in department east registered on node b'), 201, "node b reloaded its department tree when node a's changed");
});

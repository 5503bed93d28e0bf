import t from 'tap';
import { serverMessageCheck } from '../../helpers/control.js';
import { startVehicleGateway, vehicleBody } from '../../helpers/vehicles.js';

/**
 * Every message the server sends over a realistic session, checked against the schema the gateway
 * publishes for its type at /api/control/schema.json: a type it does not describe fails, as does a
 * message that does not fit.
 */
t.test('every message the control WebSocket sends fits the published schema of its type', async (t) => {
  const gw = await startVehicleGateway(t, { control: { tours: { minDwellSec: 1 } }, vehicles: { subscriptions: { minIntervalMs: 100 } } });
  const check = await serverMessageCheck(gw);

  await gw.addVehicle(vehicleBody('v1', '粤A11111', 'countyA', {}, 2));
  const rule = await gw.api('POST', '/api/linkage-rules', {
    token: gw.adminToken,
    body: { name: 'serious alarms', departmentId: 'city', wallId: 'alarm-wall', tileIds: ['s4-1', 's4-2'], priority: 50, match: { minSeverity: 'high' }, channels: [1] },
  });
  t.equal(rule.status, 201, rule.body);
  const tempWall = await gw.createWall({ id: 'temp', name: 'temporary', departmentId: 'countyA', screens: { rows: 1, cols: 1, width: 1920, height: 1080 }, layout: '4' });

  const client = await gw.client(gw.adminToken);
  const ok = async (type: string, payload: Record<string, unknown>) => {
    const reply = await client.request(type, payload);
    t.equal(reply.type, 'ack', `${type}: ${JSON.stringify(reply).slice(0, 300)}`);
    return reply.payload;
  };
  await ok('walls.list', {});
  let version = (await client.subscribe('alarm-wall')).version;
  await client.subscribe(tempWall);
  version = (await ok('tile.assign', { wallId: 'alarm-wall', baseVersion: version, tileId: 's1-1', content: { kind: 'camera', cameraId: 'a1' } })).version;
  await client.next((m) => m.type === 'wall.status');
  version = (await ok('layout.set', { wallId: 'alarm-wall', baseVersion: version, target: 2, layout: '9' })).version;
  version = (await ok('lock', { wallId: 'alarm-wall', tileIds: ['s1-2'] })).version;
  const tour = await ok('tour.start', { wallId: 'alarm-wall', baseVersion: version, name: 'round', tileIds: ['s1-3'], cameras: ['a1', 'a2'], dwellSec: 1 });
  await client.next((m) => m.type === 'wall.deltas' && m.payload.deltas.some((d: { cause: string }) => d.cause === 'tour.rotate'));
  await ok('tour.stop', { wallId: 'alarm-wall', tourId: tour.tourId });
  await ok('preset.save', { wallId: 'alarm-wall', name: '早班' });
  await client.next((m) => m.type === 'wall.presets');

  // Refusals: a stale version (with the wall as it is), a refused field (with its issues), a lock held by someone else, an unknown type, not JSON.
  t.match(await client.request('tile.assign', { wallId: 'alarm-wall', baseVersion: 0, tileId: 's1-1', content: { kind: 'empty' } }), { type: 'error', code: 'GW_ERR_VERSION_CONFLICT' });
  t.match(await client.request('tile.assign', { wallId: 'alarm-wall', baseVersion: 'x' }), { type: 'error', code: 'GW_ERR_VALIDATION' });
  const other = await gw.client(await gw.userToken('op', ['operator'], ['city']));
  const otherVersion = (await other.subscribe('alarm-wall')).version;
  t.match(await other.request('tile.assign', { wallId: 'alarm-wall', baseVersion: otherVersion, tileId: 's1-2', content: { kind: 'empty' } }), { type: 'error', code: 'GW_ERR_LOCKED' });
  t.match(await client.request('no.such.type', {}), { type: 'error', code: 'GW_ERR_BAD_MESSAGE' });

  // Vehicles: a position batch, an alarm raised and linked to the wall, then acknowledged.
  await ok('vehicles.subscribe', {});
  await ok('alarms.subscribe', {});
  await gw.positions([{ vehicleId: 'v1', lat: 32.05, lon: 118.78, speed: 42, heading: 90, at: Date.now() }]);
  await client.next((m) => m.type === 'vehicles.positions');
  const raised = await gw.alarms([{ vehicleId: 'v1', type: 'collision-warning', severity: 'critical', at: Date.now() }]);
  const alarmId = raised.raised[0];
  await client.next((m) => m.type === 'alarm' && m.payload.change === 'raised');
  await client.next((m) => m.type === 'wall.deltas' && m.payload.deltas.some((d: { cause: string }) => d.cause === 'popup.show'));
  const acked = await gw.api('POST', `/api/alarms/${alarmId}/ack`, { token: gw.adminToken, body: {} });
  t.equal(acked.status, 200, acked.body);
  await client.next((m) => m.type === 'alarm' && m.payload.change === 'acknowledged');

  await ok('wall.delete', { wallId: tempWall });
  await client.next((m) => m.type === 'wall.removed');

  const seen = new Map<string, number>();
  for (const m of [...client.messages, ...other.messages]) {
    seen.set(m.type, (seen.get(m.type) ?? 0) + 1);
    const problem = check.problem(m);
    if (problem) t.fail(problem);
  }
  t.comment(`messages checked: ${JSON.stringify(Object.fromEntries(seen))}`);
  for (const type of ['ack', 'error', 'wall.deltas', 'wall.status', 'wall.presets', 'wall.removed', 'vehicles.positions', 'alarm']) t.ok(seen.has(type), `the session got ${type}`);
});

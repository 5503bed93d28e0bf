import t from 'tap';
import { ControlClient } from '../../../scripts/sim/control-client.js';
import { startStreamingGateway, waitFor } from '../../helpers/streams.js';

t.test('an alarm starts its channels\' pulls before anyone watches; they stop after the hold, leaving no ffmpeg', async (t) => {
  const gw = await startStreamingGateway(t, {}, {}, { vehicles: { linkageHoldMs: 2_000 } });
  for (const id of ['bus-front', 'bus-driver']) await gw.addCamera(id, { clip: 'h264-720p-1s' });
  const vehicle = { id: 'bus', plate: '粤A55555', category: 'tourist', company: 'Tours', departmentId: 'root', channels: [{ channel: 1, name: 'front', sourceId: 'bus-front' }, { channel: 2, name: 'driver', sourceId: 'bus-driver' }] };
  t.equal((await gw.api('POST', '/api/vehicles', { token: gw.adminToken, body: vehicle })).status, 201);
  t.equal((await gw.api('POST', '/api/walls', { token: gw.adminToken, body: { id: 'hall', name: 'Hall', departmentId: 'root', screens: { rows: 1, cols: 1, width: 1920, height: 1080 }, layout: '4' } })).status, 201);
  const rule = await gw.api('POST', '/api/linkage-rules', { token: gw.adminToken, body: { name: 'all', departmentId: 'root', wallId: 'hall', tileIds: ['s1-1', 's1-2'], priority: 10, match: {} } });
  t.equal(rule.status, 201, rule.body);
  const screen = await ControlClient.connect(`${gw.baseUrl.replace('http', 'ws')}/api/control`, gw.adminToken);
  t.teardown(() => screen.close());
  await screen.subscribe('hall');

  const sent = Date.now();
  const res = await gw.api('POST', '/api/feed/alarms', { token: gw.adminToken, body: { alarms: [{ vehicleId: 'bus', type: 'emergency-button', severity: 'critical', at: sent }] } });
  t.equal(res.json.raised.length, 1);
  const ready = await waitFor(
    () => ['bus-front', 'bus-driver'].map((id) => gw.streams.sessionFor(id, 'sub') ?? gw.streams.sessionFor(id, 'main')),
    (s) => s.every((x) => x?.state === 'ready'),
    5_000,
  );
  t.ok(ready.every((x) => x?.state === 'ready'), `both channels live ${Date.now() - sent} ms after the alarm, with no viewer`);
  t.ok(Date.now() - sent < 3_000, 'within a GOP and a start of the alarm');
  t.match(screen.walls.get('hall')!.tiles['s1-2'], { stream: { cameraId: 'bus-driver' } }, 'and on the wall');
  t.equal((await gw.ffmpegPids()).length, 2, 'one pull per channel');

  // Nobody joins: after the hold (2 s) and the linger (1 s) the pulls stop and their processes are gone.
  const pids = await waitFor(() => gw.ffmpegPids(), (p) => p.length === 0, 8_000);
  t.same(pids, [], 'no ffmpeg outlives the pre-warm');
});

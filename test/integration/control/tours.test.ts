import t from 'tap';
import { ControlClient } from '../../../scripts/sim/control-client.js';
import { startStreamingGateway, waitFor } from '../../helpers/streams.js';

const WALL = { name: 'Tour wall', departmentId: 'root', screens: { rows: 1, cols: 1, width: 1920, height: 1080 }, layout: '4' };

t.test('a tour rotates on schedule, with the next camera pre-warmed so it is live when it shows', async (t) => {
  const gw = await startStreamingGateway(t);
  for (const id of ['c1', 'c2', 'c3', 'u1', 'u2']) await gw.addCamera(id, { clip: 'h264-720p-1s' });
  const wall = await gw.api('POST', '/api/walls', { token: gw.adminToken, body: WALL });
  const wallId = wall.json.wall.id as string;
  // A tour on a wall no screen follows rotates but pulls nothing ahead of time.
  const unwatched = await gw.api('POST', '/api/walls', { token: gw.adminToken, body: { ...WALL, name: 'Nobody looks' } });
  const quiet = await gw.api('POST', `/api/walls/${unwatched.json.wall.id}/tours`, {
    token: gw.adminToken,
    body: { baseVersion: 1, name: 'Quiet', tileIds: ['s1-1'], cameras: ['u1', 'u2'], dwellSec: 5 },
  });
  t.equal(quiet.status, 201, quiet.body);
  const op = await ControlClient.connect(`${gw.baseUrl.replace('http', 'ws')}/api/control`, gw.adminToken);
  t.teardown(() => op.close());
  const { version } = await op.subscribe(wallId);

  const started = await op.request('tour.start', { wallId, baseVersion: version, name: '路口轮巡 Junctions', tileIds: ['s1-1'], cameras: ['c1', 'c2', 'c3'], dwellSec: 5 });
  t.equal(started.type, 'ack', JSON.stringify(started));
  const t0 = Date.now();
  let shown = await op.untilVersion(wallId, started.payload.version);
  t.match(shown.tiles['s1-1'], { content: { kind: 'tour', tourId: started.payload.tourId }, stream: { cameraId: 'c1', profile: 'main' } });
  t.match(shown.tours[started.payload.tourId], { dwellSec: 5, step: 0, cameraCount: 3 });

  // prewarmMs (3 s) before the rotation the gateway starts c2 with a reader of its own.
  const warmed = await waitFor(() => gw.streams.list().find((s) => s.cameraId === 'c2'), (s) => !!s && s.readers.prewarm === 1, 6_000, 50);
  const warmedAt = Date.now() - t0;
  t.ok(warmedAt >= 1_500 && warmedAt < 5_000, `c2 was pre-warmed ${warmedAt} ms into the 5 s step`);
  t.equal(warmed!.readers.hls + warmed!.readers.flv + warmed!.readers.webrtc, 0, 'nobody watches it yet');
  t.notOk(gw.streams.list().some((s) => s.cameraId.startsWith('u')), 'the unwatched wall\'s tour pre-warms nothing');

  const rotation = await op.next((m) => m.type === 'wall.deltas' && m.payload.deltas.some((d: { cause: string }) => d.cause === 'tour.rotate'), 7_000);
  const rotatedAt = Date.now() - t0;
  t.ok(rotatedAt >= 4_800 && rotatedAt < 6_500, `rotated after ${rotatedAt} ms`);
  t.match(gw.streams.list().find((s) => s.cameraId === 'c2'), { state: 'ready' }, 'c2 was already live when the tile switched to it');
  shown = op.walls.get(wallId)!;
  t.match(shown.tiles['s1-1'], { stream: { cameraId: 'c2' }, by: 'tour' });
  t.equal(rotation.payload.deltas[0].by, 'tour');
  const status = await waitFor(() => op.status.get(wallId)?.['s1-1'], (s) => s?.state === 'live', 2_000);
  t.match(status, { state: 'live' }, 'the tile reports its stream live');

  await op.next((m) => m.type === 'wall.deltas' && op.walls.get(wallId)!.tiles['s1-1']!.stream?.cameraId === 'c3', 7_000);
  const second = Date.now() - t0;
  t.ok(second >= 9_800 && second < 11_500, `second rotation after ${second} ms`);

  // Stopping freezes the tile on the camera it shows.
  const stop = await op.request('tour.stop', { wallId, tourId: started.payload.tourId });
  t.equal(stop.type, 'ack');
  shown = await op.untilVersion(wallId, stop.payload.version);
  t.match(shown.tiles['s1-1']!.content, { kind: 'camera', cameraId: 'c3' });
  t.same(shown.tours, {});

  // Pre-warm holds are let go (prewarmHoldMs after the rotation), and with no viewers every pull ends.
  await waitFor(() => gw.ffmpegPids(), (p) => p.length === 0, 20_000, 250);
  t.same(gw.streams.list(), [], 'no session or ffmpeg outlives the tour');
});

t.test('a tile reports why it is black: starting, live, retrying with the reason, live again', async (t) => {
  const gw = await startStreamingGateway(t);
  await gw.addCamera('flaky', { clip: 'h264-720p-1s' });
  const wall = await gw.api('POST', '/api/walls', { token: gw.adminToken, body: WALL });
  const wallId = wall.json.wall.id as string;
  const op = await ControlClient.connect(`${gw.baseUrl.replace('http', 'ws')}/api/control`, gw.adminToken);
  t.teardown(() => op.close());
  const { version } = await op.subscribe(wallId);
  const assigned = await op.request('tile.assign', { wallId, baseVersion: version, tileId: 's1-2', content: { kind: 'camera', cameraId: 'flaky' } });
  t.equal(assigned.type, 'ack');
  await op.untilVersion(wallId, assigned.payload.version);
  t.match(await waitFor(() => op.status.get(wallId)?.['s1-2'], (s) => !!s, 2_000), { state: 'idle' }, 'assigned, nobody playing it yet');

  // The wall's player holds the stream (as its WebRTC peer would) through the outage.
  const lease = await gw.streams.addReader({ cameraId: 'flaky', profile: 'main', kind: 'webrtc', userId: 'wall-screen' });
  t.teardown(() => lease.release());
  const states: string[] = [];
  op.ws.on('message', (d) => {
    const m = JSON.parse(String(d));
    if (m.type === 'wall.status' && m.payload.tiles['s1-2']) states.push(m.payload.tiles['s1-2'].state);
  });
  await waitFor(() => op.status.get(wallId)?.['s1-2']?.state, (s) => s === 'live', 10_000);
  gw.sim.setFault('flaky', { kind: 'drop', forMs: 2_500 });
  const retrying = await waitFor(() => op.status.get(wallId)?.['s1-2'], (s) => s?.state === 'retrying', 10_000, 20);
  t.match(retrying, { state: 'retrying', reason: /./ }, `retrying: ${retrying?.reason}`);
  t.type(retrying!.retryInMs, 'number', 'with the time to the next attempt, for a countdown');
  await waitFor(() => op.status.get(wallId)?.['s1-2']?.state, (s) => s === 'live', 15_000);
  t.match(states.join(','), /^starting,live,retrying,(starting,|retrying,)*live$/, `states sent: ${states.join(', ')}`);
});

import t from 'tap';
import { ControlClient } from '../../../scripts/sim/control-client.js';
import { checkAcknowledgedTiles, type SentAssignment } from '../../helpers/control.js';
import { tempDir } from '../../helpers/gateway.js';
import { spawnGateway } from '../../helpers/process.js';

/** Pre-warming would pull the (unreachable) registered cameras; it is not what this test is about. */
const ENV = { WALLGATE_CONTROL_TOURS_PREWARM_MS: '0' };

async function rest(baseUrl: string, token: string, method: string, path: string, body?: unknown) {
  const res = await fetch(`${baseUrl}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    ...(body ? { body: JSON.stringify(body) } : {}),
  });
  return { status: res.status, json: (await res.json()) as any };
}

t.test('kill -9 loses nothing that was acknowledged, and a running tour resumes on schedule', async (t) => {
  const dataDir = tempDir(t);
  const first = await spawnGateway(t, dataDir, ENV);
  const login = await fetch(`${first.baseUrl}/api/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'admin', password: first.adminPassword }) });
  const token = ((await login.json()) as { token: string }).token;
  for (let i = 1; i <= 4; i++) {
    const r = await rest(first.baseUrl, token, 'POST', '/api/sources', { id: `cam${i}`, name: `Camera ${i}`, departmentId: 'root', url: `rtsp://10.2.0.${i}:554/live` });
    t.equal(r.status, 201);
  }
  const created = await rest(first.baseUrl, token, 'POST', '/api/walls', { id: 'hall', name: 'Hall', departmentId: 'root', screens: { rows: 1, cols: 2, width: 1920, height: 1080 }, layout: '4' });
  t.equal(created.status, 201);

  const ws = (base: string) => ControlClient.connect(`${base.replace('http', 'ws')}/api/control`, token);
  const op = await ws(first.baseUrl);
  let { version } = await op.subscribe('hall');
  const lock = await op.request('lock', { wallId: 'hall', tileIds: ['s2-4'] });
  const preset = await op.request('preset.save', { wallId: 'hall', name: 'Evening' });
  const tour = await op.request('tour.start', { wallId: 'hall', baseVersion: lock.payload.version, name: 'Loop', tileIds: ['s2-1', 's2-2'], cameras: ['cam1', 'cam2', 'cam3', 'cam4'], dwellSec: 5 });
  t.equal(tour.type, 'ack', JSON.stringify(tour));
  version = tour.payload.version;

  // 200 assignments pipelined over s1-1..s1-4, each based on the version before it; kill -9 halfway through the acks.
  // (The tour may rotate in between and take a version of its own; it never touches these tiles.)
  const sent: SentAssignment[] = [];
  let acked = 0;
  const killed = new Promise<void>((resolve) => {
    for (let i = 0; i < 200; i++) {
      const job = { tile: `s1-${(i % 4) + 1}`, camera: `cam${(i % 3) + 1}`, version: null as number | null };
      sent.push(job);
      void op.request('tile.assign', { wallId: 'hall', baseVersion: version + i, tileId: job.tile, content: { kind: 'camera', cameraId: job.camera } }).then((m) => {
        if (m.type !== 'ack') return;
        job.version = m.payload.version;
        if (++acked === 100) {
          first.child.kill('SIGKILL');
          resolve();
        }
      });
    }
  });
  await killed;
  const exit = await first.exited;
  t.equal(exit.signal, 'SIGKILL');
  const ackedJobs = sent.filter((j) => j.version !== null);
  t.ok(ackedJobs.every((j, i) => i === 0 || j.version! > ackedJobs[i - 1]!.version!), 'acks came in the order sent, each a newer version');
  const lastAcked = ackedJobs[ackedJobs.length - 1]!.version!;

  const second = await spawnGateway(t, dataDir, ENV);
  const after = await rest(second.baseUrl, token, 'GET', '/api/walls/hall');
  const wall = after.json.wall;
  t.ok(wall.version >= lastAcked, `the wall is at version ${wall.version}; the last acknowledged was ${lastAcked}`);
  checkAcknowledgedTiles(t, wall, sent, ['s1-1', 's1-2', 's1-3', 's1-4']);
  t.match(wall.tiles['s2-4'].lock, { username: 'admin' }, 'the lock survived');
  const presets = await rest(second.baseUrl, token, 'GET', '/api/walls/hall/presets');
  t.same(presets.json.presets.map((p: { id: string }) => p.id), [preset.payload.id], 'the preset survived');

  // The tour is still running and rotates at its 5 s step boundaries, counted from its start.
  const tourState = wall.tours[tour.payload.tourId];
  t.match(tourState, { tileIds: ['s2-1', 's2-2'] }, 'the tour is still on the wall');
  const op2 = await ws(second.baseUrl);
  t.teardown(() => op2.close());
  await op2.subscribe('hall');
  const rotation = await op2.next((m) => m.type === 'wall.deltas' && m.payload.deltas.some((d: { cause: string }) => d.cause.startsWith('tour.')), 7_000);
  const rotated = rotation.payload.deltas.find((d: { cause: string }) => d.cause.startsWith('tour.'));
  const tourAfter = rotated.tours[0];
  const expectedStep = Math.floor((rotated.at - tourState.stepStartedAt) / 5_000) + tourState.step;
  t.equal(tourAfter.step, expectedStep, `the tour is at step ${tourAfter.step}, as its schedule says`);
  const cams = ['cam1', 'cam2', 'cam3', 'cam4'];
  t.equal(rotated.changes.find((x: { id: string }) => x.id === 's2-1').stream.cameraId, cams[(tourAfter.step * 2) % 4]);
  t.equal(rotated.changes.find((x: { id: string }) => x.id === 's2-2').stream.cameraId, cams[(tourAfter.step * 2 + 1) % 4]);
  await op.close();
  second.child.kill('SIGTERM');
  t.same(await second.exited, { code: 0, signal: null });
});

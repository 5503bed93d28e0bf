import t from 'tap';
import { ControlClient } from '../../../scripts/sim/control-client.js';
import { checkAcknowledgedTiles, type SentAssignment } from '../../helpers/control.js';
import { tempDir } from '../../helpers/gateway.js';
import { adminLogin, gatewayApi, liveSession, noProcessLeft, spawnGateway } from '../../helpers/process.js';

/*
 * SIGTERM while work is in flight, with a camera being pulled: what was acknowledged is in the store
 * after the exit, and no ffmpeg outlives the gateway. (One file per kind of write, so each stays
 * well inside the test time limit; shutdown.test.ts has the plain stop and the start.)
 */

t.test('SIGTERM during a burst of wall changes: every acknowledged change is there after the restart; no ffmpeg is left', async (t) => {
  const dataDir = tempDir(t);
  const env = { WALLGATE_CONTROL_TOURS_PREWARM_MS: '0' };
  const first = await spawnGateway(t, dataDir, env);
  const token = await adminLogin(first.baseUrl, first.adminPassword!);
  for (let i = 1; i <= 3; i++) {
    const r = await gatewayApi(first.baseUrl, token, 'POST', '/api/sources', { id: `cam${i}`, name: `Camera ${i}`, departmentId: 'root', url: `rtsp://10.2.0.${i}:554/live` });
    t.equal(r.status, 201);
  }
  const created = await gatewayApi(first.baseUrl, token, 'POST', '/api/walls', { id: 'hall', name: 'Hall', departmentId: 'root', screens: { rows: 1, cols: 2, width: 1920, height: 1080 }, layout: '4' });
  t.equal(created.status, 201);
  const ffmpeg = await liveSession(t, first, token, 'lobby');

  const op = await ControlClient.connect(`${first.baseUrl.replace('http', 'ws')}/api/control`, token);
  const { version } = await op.subscribe('hall');
  // 1,000 assignments pipelined over s1-1..s1-4, each based on the version before it; SIGTERM after the 100th ack.
  const sent: SentAssignment[] = [];
  let acked = 0;
  for (let i = 0; i < 1000; i++) {
    const job = { tile: `s1-${(i % 4) + 1}`, camera: `cam${(i % 3) + 1}`, version: null as number | null };
    sent.push(job);
    void op.request('tile.assign', { wallId: 'hall', baseVersion: version + i, tileId: job.tile, content: { kind: 'camera', cameraId: job.camera } }).then((m) => {
      if (m.type !== 'ack') return;
      job.version = m.payload.version;
      if (++acked === 100) first.child.kill('SIGTERM');
    });
  }
  t.same(await first.exited, { code: 0, signal: null }, 'exit code 0');
  // Replies that never came (the connection closed with 1001) stay unacknowledged.
  t.equal(op.closed?.code, 1001, 'the control connection was closed as going away');
  const ackedJobs = sent.filter((j) => j.version !== null);
  t.ok(ackedJobs.length >= 100, `${ackedJobs.length} changes were acknowledged`);
  await noProcessLeft(t, dataDir, ffmpeg);

  const second = await spawnGateway(t, dataDir, env);
  const wall = (await gatewayApi(second.baseUrl, token, 'GET', '/api/walls/hall')).json.wall;
  t.ok(wall.version >= ackedJobs.at(-1)!.version!, `the wall is at version ${wall.version}; the last acknowledged was ${ackedJobs.at(-1)!.version}`);
  checkAcknowledgedTiles(t, wall, sent, ['s1-1', 's1-2', 's1-3', 's1-4']);
  second.child.kill('SIGTERM');
  t.same(await second.exited, { code: 0, signal: null });
});

import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { ensureClip } from '../../../scripts/sim/clips.js';
import { CameraSimulator } from '../../../scripts/sim/rtsp-server.js';
import { tempDir } from '../../helpers/gateway.js';
import { adminLogin, gatewayApi, spawnGateway } from '../../helpers/process.js';
import { waitFor } from '../../helpers/streams.js';

const run = promisify(execFile);
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function picture(baseUrl: string, token: string, alarmId: string, path = `/api/alarms/${alarmId}/snapshot.jpg`) {
  const res = await fetch(`${baseUrl}${path}`, { headers: { authorization: `Bearer ${token}` } });
  return { status: res.status, type: res.headers.get('content-type'), body: Buffer.from(await res.arrayBuffer()) };
}

/** What ffprobe reads in the bytes: a JPEG's codec and size, or it throws. */
async function probe(dir: string, jpeg: Buffer) {
  const file = join(dir, `probe-${sha(jpeg).slice(0, 8)}.jpg`);
  await writeFile(file, jpeg);
  const { stdout } = await run('ffprobe', ['-v', 'error', '-show_entries', 'stream=codec_name,width,height', '-of', 'json', file]);
  return (JSON.parse(stdout) as { streams: { codec_name: string; width: number; height: number }[] }).streams[0];
}

t.test('an alarm\'s picture of a real camera is a JPEG, and is still there, the same, after the gateway restarts', async (t) => {
  const dataDir = tempDir(t);
  await ensureClip('h264-720p-1s');
  const sim = await CameraSimulator.start();
  t.teardown(() => sim.close());
  sim.addCamera('cam1', { clip: 'h264-720p-1s' });
  const env = { WALLGATE_VEHICLES_ALARM_SNAPSHOTS_WIDTH: '640' };

  const first = await spawnGateway(t, dataDir, env);
  const admin = await adminLogin(first.baseUrl, first.adminPassword!);
  const api = (method: string, path: string, body?: unknown, token = admin) => gatewayApi(first.baseUrl, token, method, path, body);
  for (const id of ['countyA', 'countyB']) t.equal((await api('POST', '/api/departments', { id, name: id, parentId: 'root', level: 'county' })).status, 201);
  t.equal((await api('POST', '/api/sources', { id: 'cam1', name: 'Front road', departmentId: 'countyA', url: sim.url('cam1', true), codec: 'h264' })).status, 201);
  t.equal((await api('POST', '/api/sources', { id: 'cam2', name: 'Cabin', departmentId: 'countyA', url: 'rtsp://10.2.0.1:554/live' })).status, 201);
  const vehicle = { id: 'v1', plate: '粤A11111', category: 'passenger', company: 'C', departmentId: 'countyA', channels: [{ channel: 2, name: 'cabin', sourceId: 'cam2' }, { channel: 1, name: 'front', sourceId: 'cam1' }] };
  t.equal((await api('POST', '/api/vehicles', vehicle)).status, 201);
  for (const [username, scope] of [['reg-a', 'countyA'], ['reg-b', 'countyB']]) {
    t.equal((await api('POST', '/api/users', { username, password: 'correct horse battery', roles: ['regulator'], scopes: [scope] })).status, 201);
  }

  const raisedAt = Date.now();
  const report = await api('POST', '/api/feed/alarms', { alarms: [{ vehicleId: 'v1', type: 'collision-warning', severity: 'critical', at: raisedAt }] });
  t.equal(report.status, 200);
  t.ok(Date.now() - raisedAt < 2_000, 'the report is answered without waiting for the camera');
  const alarmId = report.json.raised[0] as string;
  const alarm = await waitFor(
    async () => (await api('GET', `/api/alarms/${alarmId}`)).json,
    (a) => a.snapshot !== null || a.snapshotError !== null,
    20_000,
    100,
    'the alarm\'s picture',
  );
  t.comment(`alarm reported → picture stored, from an idle camera (1 s GOP): ${Date.now() - raisedAt} ms (polled every 100 ms)`);
  t.match(alarm.snapshot, { cameraId: 'cam1', width: 640, height: 360 }, 'channel 1 (the first by number, not by listing), at the configured width');
  t.equal(alarm.snapshotError, null);
  t.ok(alarm.snapshot.takenAt >= raisedAt - 2_000, 'a keyframe from when the alarm opened');
  const before = await picture(first.baseUrl, admin, alarmId);
  t.equal(before.status, 200);
  t.equal(before.type, 'image/jpeg');
  t.same([...before.body.subarray(0, 2)], [0xff, 0xd8], 'starts as a JPEG does');
  t.same([...before.body.subarray(-2)], [0xff, 0xd9], 'and ends as one does');
  t.match(await probe(dataDir, before.body), { codec_name: 'mjpeg', width: 640, height: 360 }, 'ffmpeg reads it as a 640×360 JPEG');

  // Killed, not stopped: the picture must be on disk, not merely flushed by a polite shutdown.
  first.child.kill('SIGKILL');
  await first.exited;

  const second = await spawnGateway(t, dataDir, env);
  t.teardown(async () => {
    if (second.child.exitCode === null) {
      second.child.kill('SIGTERM');
      await second.exited;
    }
  });
  const api2 = (path: string, token = admin) => gatewayApi(second.baseUrl, token, 'GET', path);
  t.match((await api2(`/api/alarms/${alarmId}`)).json, { id: alarmId, state: 'raised', snapshot: alarm.snapshot, snapshotError: null }, 'the alarm still names its picture');
  const after = await picture(second.baseUrl, admin, alarmId);
  t.equal(after.status, 200, 'and serves it after the restart');
  t.equal(sha(after.body), sha(before.body), 'the same bytes');

  const login = async (username: string) => {
    const res = await fetch(`${second.baseUrl}/api/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username, password: 'correct horse battery' }) });
    return ((await res.json()) as { token: string }).token;
  };
  const [regA, regB] = [await login('reg-a'), await login('reg-b')];
  t.equal((await picture(second.baseUrl, regA, alarmId)).status, 200, 'the vehicle\'s regulator sees it');
  const foreign = await picture(second.baseUrl, regB, alarmId);
  t.equal(foreign.status, 404, 'another department\'s regulator gets 404, as for a missing alarm');
  t.equal(JSON.parse(foreign.body.toString()).code, 'GW_ERR_NOT_FOUND');

  const exported = await fetch(`${second.baseUrl}/api/alarms/export?format=ndjson`, { headers: { authorization: `Bearer ${regA}` } });
  const rows = (await exported.text()).trim().split('\n').map((l) => JSON.parse(l));
  t.match(rows, [{ id: alarmId, snapshotUrl: `/api/alarms/${alarmId}/snapshot.jpg`, snapshotTakenAt: new Date(alarm.snapshot.takenAt).toISOString(), snapshotCameraId: 'cam1' }], 'the export carries it');
  const viaExport = await picture(second.baseUrl, regA, alarmId, rows[0].snapshotUrl);
  t.equal(sha(viaExport.body), sha(before.body), 'and its URL serves the picture');

  second.child.kill('SIGTERM');
  t.match(await second.exited, { code: 0 }, 'the restarted gateway stops cleanly');
});

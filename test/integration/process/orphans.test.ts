import { setTimeout as sleep } from 'node:timers/promises';
import t from 'tap';
import { instanceIdFor } from '../../../gateway/src/streams/manager.js';
import { markedProcesses } from '../../../gateway/src/streams/process/sweep.js';
import { ensureClip } from '../../../scripts/sim/clips.js';
import { CameraSimulator } from '../../../scripts/sim/rtsp-server.js';
import { tempDir } from '../../helpers/gateway.js';
import { spawnGateway } from '../../helpers/process.js';
import { waitFor } from '../../helpers/streams.js';

const SLOW = { WALLGATE_STREAMS_START_TIMEOUT_MS: '60000', WALLGATE_STREAMS_IO_TIMEOUT_MS: '60000', WALLGATE_STREAMS_FLV_RTMP_ENABLED: 'false' };

async function api(baseUrl: string, method: string, path: string, token: string | null, body?: unknown) {
  const res = await fetch(baseUrl + path, {
    method,
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body ? { 'content-type': 'application/json' } : {}) },
    ...(body ? { body: JSON.stringify(body) } : {}),
  });
  return (await res.json()) as Record<string, string>;
}

t.test('ffmpeg left by a gateway killed with SIGKILL is gone after its next start', async (t) => {
  const sim = await CameraSimulator.start();
  t.teardown(() => sim.close());
  sim.addCamera('hung', { clip: 'h264-720p-1s' });
  sim.setFault('hung', { kind: 'stall' });
  const dataDir = tempDir(t);
  const instance = await instanceIdFor(dataDir);
  t.teardown(async () => {
    for (const pid of await markedProcesses(instance)) process.kill(pid, 'SIGKILL');
  });

  const first = await spawnGateway(t, dataDir, SLOW);
  const { token } = await api(first.baseUrl, 'POST', '/api/auth/login', null, { username: 'admin', password: first.adminPassword });
  await api(first.baseUrl, 'POST', '/api/sources', token!, { id: 'hung', name: 'Hung', departmentId: 'root', url: sim.url('hung') });
  const view = await api(first.baseUrl, 'POST', '/api/streams/hung/view', token!);
  // The playlist request waits on a camera that never answers: its ffmpeg waits too, writing nothing.
  void fetch(first.baseUrl + view.hls).catch(() => {});
  const pids = await waitFor(() => markedProcesses(instance), (p) => p.length === 1, 10_000);
  t.equal(pids.length, 1, 'the gateway started one ffmpeg');

  first.child.kill('SIGKILL');
  await first.exited;
  await sleep(500);
  t.same(await markedProcesses(instance), pids, 'that ffmpeg outlived its gateway (nothing it writes to has closed)');

  const second = await spawnGateway(t, dataDir, SLOW);
  t.same(await markedProcesses(instance), [], 'the next start swept it before serving');
  t.match(second.stdout.join(''), /killed ffmpeg processes left by a previous gateway/);
  second.child.kill('SIGTERM');
  await second.exited;
});

t.test('a gateway stopped with SIGTERM leaves no ffmpeg behind', async (t) => {
  const sim = await CameraSimulator.start();
  t.teardown(() => sim.close());
  await ensureClip('h264-720p-1s');
  sim.addCamera('live', { clip: 'h264-720p-1s' });
  const dataDir = tempDir(t);
  const instance = await instanceIdFor(dataDir);
  const gw = await spawnGateway(t, dataDir, { WALLGATE_STREAMS_FLV_RTMP_ENABLED: 'false' });
  const { token } = await api(gw.baseUrl, 'POST', '/api/auth/login', null, { username: 'admin', password: gw.adminPassword });
  await api(gw.baseUrl, 'POST', '/api/sources', token!, { id: 'live', name: 'Live', departmentId: 'root', url: sim.url('live') });
  const view = await api(gw.baseUrl, 'POST', '/api/streams/live/view', token!);
  const ac = new AbortController();
  const res = await fetch(gw.baseUrl + view.flv, { signal: ac.signal });
  t.equal(res.status, 200);
  t.equal((await markedProcesses(instance)).length, 1);
  gw.child.kill('SIGTERM');
  const exit = await gw.exited;
  ac.abort();
  t.equal(exit.code, 0, 'clean exit with a viewer connected');
  t.same(await markedProcesses(instance), [], 'no ffmpeg outlives the gateway');
});

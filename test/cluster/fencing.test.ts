import t from 'tap';
import { PgStore } from '../../gateway/src/store/pg/index.js';
import { needsCluster } from '../helpers/cluster.js';
import { clusterConfig, clusterEnv } from '../helpers/cluster-gateways.js';
import { tempDir } from '../helpers/gateway.js';
import { adminLogin, ffmpegChildren, spawnGateway } from '../helpers/process.js';
import { startStreamingGateway, waitFor } from '../helpers/streams.js';

const quiet = { warn: () => undefined };

t.test('a node paused past its lease loses the camera, stops its pull when it wakes, and its late health write is refused', needsCluster(), async (t) => {
  const { config } = await clusterConfig(t);
  const leaseMs = config.cluster!.leaseMs!;
  const heartbeatMs = config.cluster!.heartbeatMs!;
  // The paused node: a real process, so it can be stopped. Its viewing outlives the pause (long viewer timeout and linger).
  const paused = await spawnGateway(
    t,
    tempDir(t),
    clusterEnv(config, { WALLGATE_STREAMS_HLS_VIEWER_TIMEOUT_MS: '60000', WALLGATE_STREAMS_CLOSE_AFTER_MS: '60000', WALLGATE_STREAMS_FLV_RTMP_ENABLED: 'false' }),
  );
  const adminToken = await adminLogin(paused.baseUrl, paused.adminPassword!);
  const other = await startStreamingGateway(t, {}, {}, config, { adminToken });
  await waitFor(() => other.cluster!.nodes().length, (n) => n === 2, 5_000, 20, 'both nodes to list each other');
  const ownership = other.cluster!.ownership;

  await other.addCamera('yard', { clip: 'h264-360p-1s' });
  const hls = new URL((await other.view('yard')).hls);
  // Asked as a request already sent once: the paused-to-be node takes the camera where it is asked.
  const first = await fetch(`${paused.baseUrl}${hls.pathname}?wgr=1`);
  t.equal(first.status, 200, 'the first node plays the camera');
  const before = await ownership.owner('yard');
  t.not(before?.nodeId, other.cluster!.id, 'and holds its lease');
  const pulls = await ffmpegChildren(paused.child.pid!);
  t.equal(pulls.length, 1, 'with one ffmpeg');

  paused.child.kill('SIGSTOP');
  t.teardown(() => void paused.child.kill('SIGCONT'));
  const stoppedAt = Date.now();
  await waitFor(() => ownership.owner('yard'), (l) => l === null, leaseMs * 3, 50, 'the paused node\'s lease to lapse');
  t.ok(Date.now() - stoppedAt >= leaseMs - heartbeatMs, 'the lease outlived the last renewal by about its duration');
  const second = await fetch(`${other.baseUrl}${hls.pathname}?wgr=1`);
  t.equal(second.status, 200, 'the other node takes the camera and plays it');
  const after = await ownership.owner('yard');
  t.equal(after?.nodeId, other.cluster!.id);
  t.ok(after!.token > before!.token, `under a higher fencing token (${before!.token} → ${after!.token})`);

  // The new owner's health write (online) carries its token; the store now refuses anything older.
  const store = await PgStore.open({ url: config.store!.postgres!.url!, poolSize: 2, connectTimeoutMs: 2_000, statementTimeoutMs: 5_000, log: quiet });
  t.teardown(() => store.close());
  await waitFor(() => store.sources.get('yard'), (s) => s?.health === 'online', 5_000, 50, 'the new owner to write the camera online');

  paused.child.kill('SIGCONT');
  const wokeAt = Date.now();
  await waitFor(() => ffmpegChildren(paused.child.pid!), (pids) => pids.length === 0, heartbeatMs * 2 + 1_500, 20, 'the woken node to stop its pull');
  t.pass(`the woken node stopped its pull ${Date.now() - wokeAt} ms after it woke (its ffmpeg is gone)`);
  t.equal(await store.sources.setHealth('yard', 'offline', { code: 'GW_ERR_CAMERA_UNREACHABLE', params: null, message: 'stale' }, Date.now(), before!.token), false, 'a health write with the old token is refused');
  t.equal((await store.sources.get('yard'))?.health, 'online', 'the camera stays as its owner wrote it');
  t.equal((await ownership.owner('yard'))?.nodeId, other.cluster!.id, 'the lease stays with the new owner');
  t.match(paused.stdout.join(''), /camera lease lost: stopping its pull/, 'the woken node says why it stopped');
});

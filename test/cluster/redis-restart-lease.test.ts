import t from 'tap';
import { Redis } from 'ioredis';
import { CameraOwnership } from '../../gateway/src/cluster/ownership.js';
import { needsCluster, ownRedis } from '../helpers/cluster.js';
import { clusterConfig } from '../helpers/cluster-gateways.js';
import { startStreamingGateway, waitFor } from '../helpers/streams.js';

const quiet = { info: () => undefined, warn: () => undefined };

t.test('a Redis restart that comes back empty keeps every pull running, its lease back in Redis under a higher fencing token', needsCluster(), async (t) => {
  const redis = await ownRedis(t);
  const { config } = await clusterConfig(t, { redisUrl: redis.url, leaseMs: 3_000, heartbeatMs: 300 });
  // The viewing outlives the test's pauses: only a lost lease could end it.
  const gw = await startStreamingGateway(t, { closeAfterMs: 60_000, hls: { viewerTimeoutMs: 60_000 } }, {}, config);
  await waitFor(() => gw.cluster!.nodes().length, (n) => n === 1, 5_000, 20, 'the node to join');
  const ownership = gw.cluster!.ownership;
  const lost: string[] = [];
  const onLost = ownership.onLost;
  ownership.onLost = (camera, reason) => {
    lost.push(camera);
    onLost(camera, reason);
  };

  await gw.addCamera('yard', { clip: 'h264-360p-1s' });
  const playlist = await fetch((await gw.view('yard')).hls);
  t.equal(playlist.status, 200, 'the node plays the camera');
  const session = gw.streams.sessionFor('yard', 'main')!;
  const pid = await waitFor(() => session.pid, (p) => p !== null, 5_000, 20, 'the pull\'s ffmpeg');
  const before = await ownership.owner('yard');
  t.equal(before?.nodeId, gw.cluster!.id, 'the node holds the lease');
  await waitFor(() => gw.store.sources.get('yard'), (s) => s?.health === 'online', 5_000, 50, 'the pull to write the camera online under its token');

  // Another node (bare ownership on its own connection) takes and lets go a camera, to see the token a new lease gets.
  const otherRedis = new Redis(redis.url, { maxRetriesPerRequest: 1, retryStrategy: () => 100 });
  otherRedis.on('error', () => undefined);
  t.teardown(() => otherRedis.disconnect());
  const other = new CameraOwnership({ id: 'node-x', prefix: config.cluster!.keyPrefix!, redis: otherRedis, heartbeatMs: 300 }, { leaseMs: 3_000, limits: { departmentPulls: {} }, log: quiet });
  const spareBefore = await other.acquire('spare', '/root/');
  await other.release('spare');

  await redis.kill();
  await redis.restart();
  const after = await waitFor(() => ownership.owner('yard').catch(() => null), (l) => l !== null, 3_000, 50, 'the node to put its lease of yard back into the emptied Redis');
  t.equal(after!.nodeId, gw.cluster!.id, 'the lease is back in Redis, still this node\'s');
  t.ok(after!.token > before!.token, `under a higher fencing token (${before!.token} → ${after!.token})`);
  t.equal(after!.since, before!.since, 'held since the same time: the pull never stopped');
  t.equal(ownership.fence('yard'), after!.token, 'the pull\'s health writes carry the new token');
  t.same(lost, [], 'no pull was stopped');
  t.equal(gw.streams.sessionFor('yard', 'main'), session, 'the same session');
  t.equal(session.pid, pid, 'the same ffmpeg');
  t.same(await gw.ffmpegPids(), [pid], 'and no other');

  const spareAfter = await waitFor(() => other.acquire('spare', '/root/').catch(() => null), (l) => l !== null, 3_000, 50, 'the other node to take a lease after the restart');
  t.ok(spareAfter!.token > spareBefore.token, `a lease taken after the restart has a higher token than before it (${spareBefore.token} → ${spareAfter!.token})`);
  t.equal(
    await gw.store.sources.setHealth('yard', 'online', null, Date.now(), after!.token),
    true,
    'the database takes a health write under the new token (a counter restarted at 1 would be refused)',
  );
  await other.release('spare');
});

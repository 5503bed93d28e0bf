import { hostname } from 'node:os';
import t from 'tap';
import { Redis } from 'ioredis';
import { ClusterNode, type NodeInfo } from '../../gateway/src/cluster/node.js';
import { defaultConfig } from '../../gateway/src/config/load.js';
import type { Config } from '../../gateway/src/config/schema.js';
import { needsCluster, redisPrefix, sharedRedisUrl } from '../helpers/cluster.js';
import { clusterConfig as sharedClusterConfig } from '../helpers/cluster-gateways.js';
import { startGateway } from '../helpers/gateway.js';
import { waitFor } from '../helpers/streams.js';

const quiet = { info: () => undefined, warn: () => undefined, error: () => undefined };

function clusterConfig(prefix: string, over: Partial<Config['cluster']> = {}): Config {
  const config = defaultConfig();
  config.store.engine = 'postgres';
  config.cluster = { ...config.cluster, enabled: true, redisUrl: sharedRedisUrl(), keyPrefix: prefix, leaseMs: 1_500, heartbeatMs: 300, ...over };
  return config;
}

const ids = (nodes: NodeInfo[]) => nodes.map((n) => n.id);

t.test('nodes see each other, report their load, and drop out when they leave or die', needsCluster(), async (t) => {
  const prefix = redisPrefix();
  const a = await ClusterNode.open(clusterConfig(prefix, { nodeId: 'node-b' }), quiet);
  const b = await ClusterNode.open(clusterConfig(prefix, { advertiseUrl: 'http://10.0.0.7:8080' }), quiet);
  const c = await ClusterNode.open(clusterConfig(prefix, { nodeId: 'node-a' }), quiet);
  t.teardown(() => Promise.all([a.close(), b.close(), c.close()]));
  let bytesOut = 0;
  let sending = false;
  // Once sending, about 150 kB more out at each look: a steady rate, whenever the other node reads it.
  a.measure(() => ({ sessions: 3, viewers: 7, bytesOut: sending ? (bytesOut += 150_000) : bytesOut }));

  t.equal(a.id, '', 'no id before the node joins');
  await Promise.all([a.start(4001), b.start(4002), c.start(4003)]);
  t.equal(a.id, 'node-b', 'cluster.nodeId is the id');
  t.equal(a.url, 'http://127.0.0.1:4001', 'the advertised URL defaults to loopback and the port it listens on');
  t.equal(b.id, `${hostname()}-4002`, 'the id defaults to <hostname>-<port>');
  t.equal(b.url, 'http://10.0.0.7:8080', 'cluster.advertiseUrl is the URL');

  const all = [b.id, 'node-a', 'node-b'].sort();
  const seen = await waitFor(() => b.nodes(), (n) => ids(n).join() === all.join(), 5_000, 50, 'node b to list all three nodes');
  t.same(ids(seen), all, 'every live node, this one included, sorted by id');

  sending = true;
  const loaded = await waitFor(
    () => c.nodes().find((n) => n.id === 'node-b'),
    (n) => !!n && n.load.bytesOutPerSec > 0,
    5_000,
    50,
    'node a to report a byte rate',
  );
  t.match(loaded!.load, { sessions: 3, viewers: 7 }, 'the load comes from what the node measures');
  t.ok(loaded!.load.bytesOutPerSec > 100_000, `bytes out became a rate (${loaded!.load.bytesOutPerSec}/s)`);
  t.equal(loaded!.url, 'http://127.0.0.1:4001');

  // Leaving deletes the heartbeat: the others drop the node on their next beat, not after it expires.
  const leftAt = Date.now();
  await a.close();
  await waitFor(() => c.nodes(), (n) => !ids(n).includes('node-b'), 2_000, 20, 'the node that left to drop out');
  t.ok(Date.now() - leftAt < 900, 'a node that leaves drops out within about a heartbeat');

  // A node that dies (its connection gone, no goodbye) drops out once its heartbeat expires (3 × heartbeatMs).
  const beat = (b as unknown as { timer: NodeJS.Timeout | null }).timer;
  if (beat) clearTimeout(beat);
  b.redis.disconnect();
  await waitFor(() => c.nodes(), (n) => ids(n).join() === 'node-a', 3_000, 50, 'the dead node to drop out');
  t.pass('a node that stopped beating drops out');
});

t.test('a gateway in cluster mode joins when it listens and leaves when it closes', needsCluster(), async (t) => {
  const { config, prefix } = await sharedClusterConfig(t);
  const gw = await startGateway(t, config);
  t.ok(gw.cluster, 'the gateway has its cluster node');
  const address = await gw.http.listen({ host: '127.0.0.1', port: 0 });
  const port = Number(new URL(address).port);
  const node = gw.cluster!;
  t.equal(node.id, `${hostname()}-${port}`);
  t.equal(node.url, `http://127.0.0.1:${port}`);
  // fastify runs onListen hooks after listen() resolves: the first heartbeat lands a moment later.
  await waitFor(() => ids(node.nodes()), (n) => n.join() === node.id, 3_000, 20, 'the node to list itself');
  t.pass('it lists itself once it has joined');

  const redis = new Redis(sharedRedisUrl());
  t.teardown(() => redis.disconnect());
  t.ok(await redis.exists(`${prefix}node:${node.id}`), 'its heartbeat is in Redis');
  await gw.close();
  t.equal(await redis.exists(`${prefix}node:${node.id}`), 0, 'closing the gateway deletes its heartbeat');
  t.same(await redis.smembers(`${prefix}nodes`), [], 'and takes it out of the index');
});

t.test('cluster mode refuses keys a node would generate for itself', needsCluster(), async (t) => {
  const { config } = await sharedClusterConfig(t);
  await t.rejects(startGateway(t, { ...config, secrets: { tokenKey: '', credentialKey: '' } }), {
    name: 'ConfigError',
    message: /secrets\.file: .*secrets\.json does not exist, and in cluster mode a node does not generate keys of its own/,
  });
});

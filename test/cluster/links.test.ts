import t, { type Test } from 'tap';
import { ClusterNode } from '../../gateway/src/cluster/node.js';
import { ViewerRouter } from '../../gateway/src/cluster/routing.js';
import { defaultConfig } from '../../gateway/src/config/load.js';
import { needsCluster, redisPrefix, sharedRedisUrl } from '../helpers/cluster.js';
import { waitFor } from '../helpers/streams.js';

const quiet = { info: () => undefined, warn: () => undefined, error: () => undefined };

async function node(t: Test, prefix: string, nodeId: string, port: number) {
  const config = defaultConfig();
  config.store.engine = 'postgres';
  config.cluster = { ...config.cluster, enabled: true, nodeId, redisUrl: sharedRedisUrl(), keyPrefix: prefix, leaseMs: 1_500, heartbeatMs: 300 };
  const n = await ClusterNode.open(config, quiet);
  t.teardown(() => n.close());
  await n.start(port);
  return n;
}

t.test('GB and JT channels are placed on the node that holds their device\'s link', needsCluster(), async (t) => {
  const prefix = redisPrefix();
  const a = await node(t, prefix, 'node-a', 5001);
  const b = await node(t, prefix, 'node-b', 5002);
  await waitFor(() => b.nodes().length, (n) => n === 2, 3_000, 20, 'both nodes to list each other');
  const gbOnA = ['34020000001320000001'];
  a.links.sources.gb = () => gbOnA;
  a.links.sources.jt = () => ['truck-7'];
  await waitFor(() => b.links.nodeFor('gb', gbOnA[0]!), (n) => n === 'node-a', 2_000, 20, 'node a to publish its GB device');
  t.equal(await b.links.nodeFor('jt', 'truck-7'), 'node-a', 'and its vehicle\'s 808 link');

  const router = new ViewerRouter(b, async () => ({ deptPath: '/root/', linkNode: await b.links.nodeFor('gb', '34020000001320000001'), linkName: 'GB device 34020000001320000001' }));
  t.same(await router.route('gbcam', 0), { serve: false, to: 'http://127.0.0.1:5001' }, 'a viewer of the channel at node b is sent to node a');
  t.same(await new ViewerRouter(a, async () => ({ deptPath: '/root/', linkNode: 'node-a' })).route('gbcam', 0), { serve: true }, 'node a serves it, whatever placement says');
  t.equal((await a.ownership.owner('gbcam'))?.nodeId, 'node-a', 'under its lease');

  // The device unregisters: its record goes at the next beat, and nobody can pull its channels.
  gbOnA.length = 0;
  await waitFor(() => b.links.nodeFor('gb', '34020000001320000001'), (n) => n === null, 2_000, 20, 'the ended registration to be forgotten');
  await t.rejects(new ViewerRouter(b, async () => ({ deptPath: '/root/', linkNode: null, linkName: 'GB device 34020000001320000001' })).route('gbcam2', 0), {
    code: 'GW_ERR_UNAVAILABLE',
    message: 'camera "gbcam2" cannot play: no node holds the link of GB device 34020000001320000001',
  }, 'a clear error when no node holds the link');

  // The vehicle reconnects to node b; node a's record of the old link must not delete b's.
  b.links.sources.jt = () => ['truck-7'];
  await b.links.renew();
  a.links.sources.jt = () => [];
  await a.links.renew();
  t.equal(await b.links.nodeFor('jt', 'truck-7'), 'node-b', 'a link that moved stays with its new node');
});

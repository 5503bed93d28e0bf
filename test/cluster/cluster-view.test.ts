import t from 'tap';
import type { Test } from 'tap';
import { WebSocket } from 'ws';
import { contentSecurityPolicy } from '../../gateway/src/http/player.js';
import { freshDatabase, needsCluster, redisPrefix, sharedRedisUrl } from '../helpers/cluster.js';
import { startStreamingGateway, waitFor, type StreamingGateway } from '../helpers/streams.js';

/** Two nodes of one cluster in this process: one database, one Redis prefix, their own data dirs and ports. */
async function twoNodes(t: Test): Promise<[StreamingGateway, StreamingGateway]> {
  const url = await freshDatabase(t);
  const keyPrefix = redisPrefix();
  const tokenKey = Buffer.alloc(32, 7).toString('base64');
  const credentialKey = Buffer.alloc(32, 9).toString('base64');
  const node = (nodeId: string, joining?: { adminToken: string }) =>
    startStreamingGateway(
      t,
      {},
      {},
      {
        secrets: { tokenKey, credentialKey },
        store: { engine: 'postgres', postgres: { url } },
        cluster: { enabled: true, nodeId, redisUrl: sharedRedisUrl(), keyPrefix, leaseMs: 2_000, heartbeatMs: 500 },
      },
      joining,
    );
  // The first node creates the tables and the admin; the second finds them (the admin's token is good on both).
  const a = await node('node-a');
  const b = await node('node-b', { adminToken: a.adminToken });
  for (const gw of [a, b]) await waitFor(() => gw.cluster!.nodes().length, (n) => n === 2, 5_000, 50, `${gw.cluster!.id} to see both nodes`);
  return [a, b];
}

t.test('the cluster view, metrics and cross-node trust of two nodes', needsCluster(), async (t) => {
  const [a, b] = await twoNodes(t);
  await a.addCamera('gate', { clip: 'h264-360p-1s' });
  const urls = await a.view('gate');
  t.equal((await fetch(urls.hls)).status, 200, 'node a plays the camera');
  // Node b pulls nothing, so nothing on it has a reason to open a camera's credential: the view's names come from the record.
  const credentialOpens: string[] = [];
  const pullTarget = b.registry.pullTarget.bind(b.registry);
  b.registry.pullTarget = (id) => (credentialOpens.push(id), pullTarget(id));

  const view = await waitFor(
    async () => (await b.api('GET', '/api/cluster', { token: b.adminToken })).json,
    (v) => v.nodes?.find((n: { id: string }) => n.id === 'node-a')?.cameras.length === 1,
    10_000,
    200,
    "node b's cluster view to list node a's camera",
  );
  t.equal(view.mode, 'cluster');
  t.equal(view.nodeId, 'node-b', 'the node that answered');
  t.same(
    view.nodes.map((n: { id: string; url: string }) => [n.id, n.url]),
    [
      ['node-a', a.baseUrl],
      ['node-b', b.baseUrl],
    ],
    'both live nodes with their advertised URLs, by id',
  );
  const [nodeA, nodeB] = view.nodes;
  t.match(nodeA.cameras[0], { cameraId: 'gate', name: 'Camera gate', token: Number }, "the camera node a pulls, with its name and its lease's fencing token");
  t.ok(nodeA.cameras[0].token >= 1);
  t.same(nodeB.cameras, [], 'node b pulls nothing');
  t.equal(nodeA.load.sessions, 1, "node a's load, from its heartbeat");
  t.same(credentialOpens, [], "naming node a's camera did not open its credential on node b");

  const metrics = await fetch(`${a.baseUrl}/metrics`).then((r) => r.text());
  t.match(metrics, /wallgate_cluster_nodes\{node="node-a"\} 2/, 'node a counts two live nodes, labelled with its id');
  t.match(metrics, /wallgate_cluster_leases_held\{node="node-a"\} 1/, 'and one lease held');
  t.match(metrics, /wallgate_stream_readers\{node="node-a"\} 1/, 'every series carries the node label');

  const nodes = await b.api('GET', '/api/cluster/nodes', { token: b.adminToken });
  t.same(nodes.json.nodes, [
    { id: 'node-a', url: a.baseUrl },
    { id: 'node-b', url: b.baseUrl },
  ]);

  t.comment("a page of node a that fails over to node b: b's CORS and control WebSocket let a's origin in, and only the cluster's");
  const aOrigin = new URL(a.baseUrl).origin;
  const preflight = (origin: string) =>
    fetch(`${b.baseUrl}/api/auth/me`, { method: 'OPTIONS', headers: { origin, 'access-control-request-method': 'GET', 'access-control-request-headers': 'authorization' } });
  const ok = await preflight(aOrigin);
  t.equal(ok.status, 204, "a preflight from node a's origin is answered");
  t.equal(ok.headers.get('access-control-allow-origin'), aOrigin, 'naming that origin');
  t.match(ok.headers.get('access-control-allow-headers') ?? '', /authorization/);
  const evil = await preflight('http://evil.example');
  t.equal(evil.headers.get('access-control-allow-origin'), null, 'another origin gets no CORS answer');
  const me = await fetch(`${b.baseUrl}/api/auth/me`, { headers: { origin: aOrigin, authorization: `Bearer ${a.adminToken}` } });
  t.equal(me.status, 200, "node a's login token is good on node b");
  t.equal(me.headers.get('access-control-allow-origin'), aOrigin, 'and the answer is readable by the page of node a');

  const upgrade = (origin: string) =>
    new Promise<number>((resolve) => {
      const ws = new WebSocket(`${b.baseUrl.replace('http', 'ws')}/api/control`, ['wallgate.v1', `bearer.${a.adminToken}`], { origin });
      ws.on('open', () => {
        ws.close();
        resolve(101);
      });
      ws.on('unexpected-response', (_req, res) => {
        resolve(res.statusCode ?? 0);
        ws.terminate();
      });
      ws.on('error', () => resolve(-1));
    });
  t.equal(await upgrade(aOrigin), 101, "node b's control WebSocket takes a page of node a");
  t.equal(await upgrade('http://evil.example'), 403, 'and refuses any other origin');

  const csp = contentSecurityPolicy('', [aOrigin]);
  t.match(csp, new RegExp(`connect-src 'self' ${aOrigin} ${aOrigin.replace('http', 'ws')};`), "the pages' policy lets them connect to the other nodes, over HTTP and WebSocket");
});

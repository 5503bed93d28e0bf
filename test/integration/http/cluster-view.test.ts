import t from 'tap';
import { smallTree } from '../../helpers/gateway.js';
import { startStreamingGateway, waitFor } from '../../helpers/streams.js';

t.test('single-node mode: the cluster view is this node with its own pulls, its load, and only the caller\'s cameras named', async (t) => {
  const gw = await startStreamingGateway(t, {}, {}, { cluster: { nodeId: 'solo-1' } });
  await smallTree(gw);
  await gw.addCamera('gate', { clip: 'h264-360p-1s' }, { departmentId: 'townA' });
  await gw.addCamera('yard', { clip: 'h264-360p-1s' }, { departmentId: 'countyB' });
  const auditor = await gw.userToken('aud', ['auditor'], ['root']);
  const countyAdmin = await gw.userToken('admin-a', ['admin'], ['countyA']);
  const operator = await gw.userToken('op', ['operator'], ['root']);

  const idle = await gw.api('GET', '/api/cluster', { token: gw.adminToken });
  t.equal(idle.status, 200);
  t.match(idle.json, { mode: 'single', nodeId: 'solo-1', nodes: [{ id: 'solo-1', cameras: [], camerasElsewhere: 0, load: { sessions: 0, viewers: 0 } }] }, 'nothing pulled yet');

  const before = Date.now();
  const playlists: string[] = [];
  for (const id of ['gate', 'yard']) {
    const urls = await gw.view(id);
    t.equal((await fetch(urls.hls)).status, 200, `${id} plays over HLS`);
    playlists.push(urls.hls);
  }
  const view = await waitFor(
    async () => {
      // Fetched again as a player would, so neither counts as gone (streams.hls.viewerTimeoutMs) however slow the machine.
      await Promise.all(playlists.map((url) => fetch(url).then((r) => r.arrayBuffer())));
      return (await gw.api('GET', '/api/cluster', { token: gw.adminToken })).json;
    },
    (v) => v.nodes[0].cameras.length === 2 && v.nodes[0].load.bytesOutPerSec > 0,
    15_000,
    1_100,
    'both pulls listed, and bytes sent to their viewers measured',
  );
  t.equal(view.nodes.length, 1, 'one node');
  const [node] = view.nodes;
  t.same(
    node.cameras.map((c: { cameraId: string; name: string; token: unknown }) => [c.cameraId, c.name, c.token]),
    [
      ['gate', 'Camera gate', null],
      ['yard', 'Camera yard', null],
    ],
    'each camera it pulls, by id, with its name and no fencing token (no lease on a single node)',
  );
  for (const c of node.cameras) t.ok(Date.parse(c.since) >= before - 1_000 && Date.parse(c.since) <= Date.now(), `${c.cameraId}: since when it is pulled`);
  t.equal(node.load.sessions, 2, 'two pulls');
  t.equal(node.load.viewers, 2, 'one viewer each');
  t.ok(node.load.cpuPct >= 0, 'CPU measured');
  t.ok(Date.parse(node.heartbeatAt) >= Date.parse(node.startedAt), 'started before its heartbeat');

  const audited = await gw.api('GET', '/api/cluster', { token: auditor });
  t.equal(audited.status, 200, 'auditors see the cluster view');
  t.equal(audited.json.nodes[0].cameras.length, 2);

  const scoped = await gw.api('GET', '/api/cluster', { token: countyAdmin });
  t.same(scoped.json.nodes[0].cameras.map((c: { cameraId: string }) => c.cameraId), ['gate'], "a county admin sees its county's camera named");
  t.equal(scoped.json.nodes[0].camerasElsewhere, 1, 'and the other only counted');

  t.equal((await gw.api('GET', '/api/cluster', { token: operator })).status, 403, 'operators do not see the cluster view');
  const nodes = await gw.api('GET', '/api/cluster/nodes', { token: operator });
  t.equal(nodes.status, 200, 'any signed-in user reads the node list');
  t.same(nodes.json, { mode: 'single', nodeId: 'solo-1', nodes: [{ id: 'solo-1', url: '' }] }, 'one node, reached where the page came from');

  const metrics = await fetch(`${gw.baseUrl}/metrics`).then((r) => r.text());
  t.notMatch(metrics, /node="/, 'a single node does not label its metrics with a node');
  t.notMatch(metrics, /wallgate_cluster_/, 'and has no cluster gauges');
});

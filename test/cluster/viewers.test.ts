import t from 'tap';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { WebSocket } from 'ws';
import { place } from '../../gateway/src/cluster/routing.js';
import { needsCluster } from '../helpers/cluster.js';
import { startCluster } from '../helpers/cluster-gateways.js';
import { closedPort, waitFor, type StreamingGateway } from '../helpers/streams.js';

/** Resolves with the first FLV video tag's frame type byte once a WS-FLV viewer has a picture. */
function watchFlv(url: string) {
  const ws = new WebSocket(url);
  ws.on('error', () => undefined);
  let buf: Buffer | null = Buffer.alloc(0);
  const first = new Promise<{ keyframe: boolean }>((resolve, reject) => {
    ws.on('message', (data: Buffer) => {
      if (!buf) return;
      buf = Buffer.concat([buf, data]);
      if (buf.subarray(0, 3).toString() !== 'FLV') return reject(new Error(`not FLV: ${buf.subarray(0, 16).toString('hex')}`));
      let at = 13;
      while (buf.length >= at + 13) {
        const size = buf.readUIntBE(at + 1, 3);
        if (buf[at] === 9 && buf[at + 12] === 1) {
          resolve({ keyframe: buf[at + 11]! >> 4 === 1 });
          buf = null;
          return;
        }
        at += 15 + size;
      }
    });
    ws.on('unexpected-response', (_req, res) => reject(new Error(`refused: ${res.statusCode} ${res.statusMessage}`)));
    ws.on('close', () => reject(new Error('closed before a picture')));
  });
  return { ws, first };
}

const pathOf = (url: string) => {
  const u = new URL(url);
  return u.pathname + u.search;
};

t.test('cluster viewer routing', needsCluster(), async (t) => {
  const { nodes } = await startCluster(t, 2, { streams: { limits: { departmentPulls: { capped: 1 } } } });
  const [a, b] = nodes as [StreamingGateway, StreamingGateway];
  const byId = (id: string) => nodes.find((n) => n.cluster!.id === id)!;
  const res = await a.api('POST', '/api/departments', { token: a.adminToken, body: { id: 'capped', name: 'Capped', parentId: 'root', level: 'city' } });
  if (res.status !== 201) throw new Error(`department: ${res.body}`);

  await t.test('HLS and WHEP at a node that does not pull the camera get 307 to the one that does; WS-FLV is proxied from it', async (t) => {
    await a.addCamera('hall', { clip: 'h264-360p-1s' });
    const urls = await a.view('hall');
    const placed = byId(place('hall', a.cluster!.nodes())!.id);
    const other = placed === a ? b : a;

    const hlsPath = pathOf(urls.hls);
    const sent = await fetch(other.baseUrl + hlsPath, { redirect: 'manual' });
    t.equal(sent.status, 307, 'the node placement did not pick sends the viewer on');
    t.equal(sent.headers.get('location'), `${placed.cluster!.url}${hlsPath}?wgr=1`, 'to the same path and query on the placed node, marked as sent once');
    // A page of the node it asked follows the redirect: the placed node lets that origin read the answer (the cluster's CORS), and no other.
    const pageOrigin = new URL(other.baseUrl).origin;
    const playlist = await fetch(sent.headers.get('location')!, { headers: { origin: pageOrigin } });
    t.equal(playlist.status, 200, 'the placed node plays it with the same token');
    t.match(await playlist.text(), /#EXTM3U/);
    t.equal(playlist.headers.get('access-control-allow-origin'), pageOrigin, "HLS answers name the origin of a cluster node's page");
    const foreign = await fetch(sent.headers.get('location')!, { headers: { origin: 'http://evil.example' } });
    t.equal(foreign.status, 200);
    t.equal(foreign.headers.get('access-control-allow-origin'), null, 'and give no CORS answer to any other origin');
    t.equal((await a.cluster!.ownership.owner('hall'))?.nodeId, placed.cluster!.id, 'the node that plays it holds the lease');
    t.ok(placed.streams.sessionFor('hall', 'main'), 'and pulls it');
    t.notOk(other.streams.sessionFor('hall', 'main'), 'the other node pulls nothing');

    const again = await fetch(other.baseUrl + hlsPath, { redirect: 'manual' });
    t.equal(again.status, 307, 'a later viewer is sent to the owner too');

    const whepPath = pathOf(urls.whep);
    const offer = await fetch(other.baseUrl + whepPath, {
      method: 'POST',
      redirect: 'manual',
      headers: { authorization: `Bearer ${urls.token}`, 'content-type': 'application/sdp' },
      body: 'v=0\r\n',
    });
    t.equal(offer.status, 307, 'a WHEP offer is sent to the owner (307 keeps the method and body)');
    const location = new URL(offer.headers.get('location')!);
    t.equal(location.origin + location.pathname, placed.cluster!.url + new URL(urls.whep).pathname, 'to the same WHEP endpoint on the owner');
    t.equal(location.searchParams.get('wgr'), '1', 'marked as sent once');
    t.equal(location.searchParams.get('token'), urls.token, 'with the stream token in the query: a browser drops Authorization on a redirect to another origin');
    const followed = await fetch(location, { method: 'POST', redirect: 'manual', headers: { 'content-type': 'application/sdp' }, body: 'v=0\r\n' });
    t.equal(followed.status, 400, 'the owner takes the token from the query and answers the offer itself');
    t.match(await followed.json(), { code: 'GW_ERR_VALIDATION', issues: [{ field: 'offer' }] }, 'judging the offer (this one has no video), past the token check');
    t.equal(offer.headers.get('access-control-allow-origin'), '*', 'with WHEP\'s CORS');

    const wsPath = pathOf(urls.wsFlv);
    const viewer = watchFlv(other.baseUrl.replace(/^http/, 'ws') + wsPath);
    t.ok((await viewer.first).keyframe, 'a WS-FLV viewer of the other node gets FLV from a keyframe, through it');
    t.notOk(other.streams.sessionFor('hall', 'main'), 'the proxying node still pulls nothing');
    t.equal(placed.streams.list((s) => s.cameraId === 'hall')[0]?.readers.flv, 1, 'the owner counts the proxied viewer');
    viewer.ws.close();
    await waitFor(() => placed.streams.list((s) => s.cameraId === 'hall')[0]?.readers.flv ?? 0, (n) => n === 0, 5_000, 50, 'the owner to let the proxied viewer go');
    t.pass('closing the viewer closes its socket to the owner');

    const forged = await fetch(other.baseUrl + hlsPath.replace(urls.token, `${urls.token.slice(0, -4)}AAAA`), { redirect: 'manual' });
    t.equal(forged.status, 401, 'a forged token is refused where it lands, not sent on');
  });

  await t.test('a token from one node works on the other', async (t) => {
    const token = await a.userToken('operator', ['operator'], ['root']);
    const list = await b.api('GET', '/api/sources?limit=5', { token });
    t.equal(list.status, 200, 'an access token node A issued opens node B\'s API');
    const view = await b.api('POST', '/api/streams/hall/view', { token });
    t.equal(view.status, 200, 'and node B issues stream URLs for it');
    const owner = byId((await a.cluster!.ownership.owner('hall'))!.nodeId);
    const nonOwner = owner === a ? b : a;
    const sent = await fetch(nonOwner.baseUrl + view.json.hls, { redirect: 'manual' });
    t.equal(sent.status, 307, 'a stream URL from node B, asked at the node that does not pull the camera, is sent to the owner');
    const played = await fetch(sent.headers.get('location')!);
    t.equal(played.status, 200, 'where it plays');
    t.match(await played.text(), /#EXTM3U/);

    // Sign-out is kept in the store, read on every request: node B refuses the token as soon as node A signed it out.
    t.equal((await a.api('POST', '/api/auth/logout', { token })).status, 204);
    t.equal((await b.api('GET', '/api/sources?limit=5', { token })).status, 401, 'a token signed out on node A is refused on node B at once');
  });

  await t.test('two nodes asked for the same camera at the same instant start one pull, every time', async (t) => {
    // Cameras that accept the connection and never answer: each pull stays starting (and its lease held)
    // while the race is judged, so a pull that ended fast cannot make room for a second, later one.
    const silent = createServer((socket) => socket.on('error', () => undefined));
    const held = new Set<Socket>();
    silent.on('connection', (s) => (held.add(s), s.on('close', () => held.delete(s))));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    t.teardown(() => {
      for (const s of held) s.destroy();
      silent.close();
    });
    const port = (silent.address() as AddressInfo).port;
    const cameras = Array.from({ length: 12 }, (_, i) => `race${i}`);
    for (const id of cameras) {
      const r = await a.api('POST', '/api/sources', { token: a.adminToken, body: { id, name: id, departmentId: 'root', url: `rtsp://127.0.0.1:${port}/${id}` } });
      if (r.status !== 201) throw new Error(`register ${id}: ${r.body}`);
    }
    const pulls = new Map<string, string[]>();
    for (const gw of nodes) gw.streams.on('session', (s) => pulls.set(s.cameraId, [...(pulls.get(s.cameraId) ?? []), gw.cluster!.id]));
    // Half the cameras asked as first requests (placement decides; two nodes whose views of each
    // other's load differ by a beat may each send the viewer to the other, and the viewer, sent once,
    // is then served where it lands), half as requests already sent once (each node takes the lease
    // if it can). Viewers follow redirects, as players do; the pulls never go live, so each request
    // waits at the node that serves it until it is let go.
    await Promise.all(
      cameras.map(async (id, i) => {
        const urls = await a.view(id);
        const path = pathOf(urls.hls) + (i % 2 ? '?wgr=1' : '');
        // Only this test's own timeout counts as waiting: a reset or a crashed node is a failure, named.
        const answers = await Promise.all(
          nodes.map((gw) =>
            fetch(gw.baseUrl + path, { signal: AbortSignal.timeout(2_500) }).then(
              (r) => r.status,
              (err: Error) => (err.name === 'TimeoutError' ? 'waiting' : `failed: ${err.name}: ${err.message}`),
            ),
          ),
        );
        t.same(answers, ['waiting', 'waiting'], `${id}: both viewers wait for the one pull`);
      }),
    );
    for (const id of cameras) {
      const lease = await a.cluster!.ownership.owner(id);
      t.same(pulls.get(id), [lease?.nodeId], `${id}: one pull across the cluster, on the node holding the lease (${pulls.get(id)?.join(', ')})`);
    }
  });

  await t.test('department caps count the pulls of every node', async (t) => {
    await a.addCamera('capped1', { clip: 'h264-360p-1s' }, { departmentId: 'capped' });
    const port = await closedPort();
    const r = await a.api('POST', '/api/sources', { token: a.adminToken, body: { id: 'capped2', name: 'capped2', departmentId: 'capped', url: `rtsp://127.0.0.1:${port}/x` } });
    if (r.status !== 201) throw new Error(`register capped2: ${r.body}`);
    // Each asked at a different node, as a request already sent once: each node pulls where it is asked.
    const first = await fetch(`${a.baseUrl}${pathOf((await a.view('capped1')).hls)}?wgr=1`);
    t.equal(first.status, 200, 'node A pulls the department\'s one camera');
    t.equal((await a.cluster!.ownership.owner('capped1'))?.nodeId, a.cluster!.id);
    const second = await fetch(`${b.baseUrl}${pathOf((await a.view('capped2')).hls)}?wgr=1`);
    t.equal(second.status, 503, 'node B refuses a second camera of the department');
    t.match(await second.json(), { code: 'GW_ERR_CAPACITY', params: { reason: 'departmentPulls', department: 'capped', limit: 1 } }, 'saying which cap');
    t.notOk(b.streams.sessionFor('capped2', 'main'), 'and starts no pull');
  });
});

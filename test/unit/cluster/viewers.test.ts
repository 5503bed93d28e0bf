import Fastify from 'fastify';
import t, { type Test } from 'tap';
import type { ClusterNode, NodeInfo } from '../../../gateway/src/cluster/node.js';
import { OwnedElsewhere } from '../../../gateway/src/cluster/ownership.js';
import type { WsProxy } from '../../../gateway/src/cluster/proxy.js';
import { ViewerRouter } from '../../../gateway/src/cluster/routing.js';
import { installViewerRouting } from '../../../gateway/src/cluster/viewers.js';
import { installErrorHandler } from '../../../gateway/src/http/errors.js';

const nodeB: NodeInfo = { id: 'node-b', url: 'http://node-b:8080', startedAt: 0, heartbeatAt: 0, load: { sessions: 0, viewers: 0, bytesOutPerSec: 0, cpuPct: 0 } };

/**
 * Node a holds the camera's lease when it routes the viewer (so it serves), but by the time the
 * output starts the pull, its lease went (its last session closed) and node b took the camera: the
 * resolver's acquire throws OwnedElsewhere from inside the route's handler.
 */
async function gatewayA(t: Test, live: NodeInfo[]) {
  const node = { id: 'node-a', leaseMs: 2_000, heartbeatMs: 500, requireStarted: () => undefined, ownership: { fence: () => 1 }, nodes: () => live } as unknown as ClusterNode;
  const router = new ViewerRouter(node, async () => ({ deptPath: '/root/' }));
  const http = Fastify();
  t.teardown(() => http.close());
  installErrorHandler(http);
  installViewerRouting(http, {
    router,
    tokens: { verify: (token) => (token === 'tok' ? { userId: 'u', cameraId: 'cam1', profile: 'main', viewingId: 'v', expiresAt: Date.now() + 60_000 } : null) },
    proxy: {} as WsProxy,
    serveFlv: () => undefined,
  });
  const movedAway = async () => {
    throw new OwnedElsewhere({ cameraId: 'cam1', nodeId: 'node-b', token: 2, since: 0 });
  };
  http.addContentTypeParser('application/sdp', { parseAs: 'string' }, (_req, body, done) => done(null, body));
  http.get('/streams/:camera/:profile/:token/:file', movedAway);
  http.post('/whep/:camera', movedAway);
  http.get('/api/other/:camera', movedAway);
  await http.ready();
  return http;
}

t.test('a viewer whose camera moved to another node between routing and the pull start is sent there, not refused', async (t) => {
  const http = await gatewayA(t, [nodeB]);
  const hls = await http.inject({ method: 'GET', url: '/streams/cam1/main/tok/index.m3u8' });
  t.equal(hls.statusCode, 307, 'HLS: 307');
  t.equal(hls.headers.location, 'http://node-b:8080/streams/cam1/main/tok/index.m3u8?wgr=1', 'to the new owner, one hop further');
  const whep = await http.inject({ method: 'POST', url: '/whep/cam1', headers: { authorization: 'Bearer tok', 'content-type': 'application/sdp' }, payload: 'v=0' });
  t.equal(whep.statusCode, 307, 'WHEP: 307');
  t.equal(whep.headers.location, 'http://node-b:8080/whep/cam1?token=tok&wgr=1', 'the WHEP offer carries its token in the query');
  const sentOnce = await http.inject({ method: 'GET', url: '/streams/cam1/main/tok/index.m3u8?wgr=2' });
  t.equal(sentOnce.statusCode, 503, 'a request already sent on twice is not sent again: the nodes disagree');
  const other = await http.inject({ method: 'GET', url: '/api/other/cam1' });
  t.equal(other.statusCode, 409, 'a route that is not a stream keeps its conflict');
});

t.test('the new owner is not live (yet): the viewer is told the camera is moving', async (t) => {
  const http = await gatewayA(t, []);
  const res = await http.inject({ method: 'GET', url: '/streams/cam1/main/tok/index.m3u8' });
  t.equal(res.statusCode, 503);
  t.equal(res.json().code, 'GW_ERR_UNAVAILABLE');
  t.match(res.json().message, /moving between nodes/);
});

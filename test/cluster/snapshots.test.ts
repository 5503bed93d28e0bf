import t from 'tap';
import { place } from '../../gateway/src/cluster/routing.js';
import { needsCluster } from '../helpers/cluster.js';
import { startCluster } from '../helpers/cluster-gateways.js';
import { waitFor, type StreamingGateway } from '../helpers/streams.js';

const isJpeg = (b: Buffer) => b.length > 100 && b[0] === 0xff && b[1] === 0xd8;

t.test('a picture of a camera another node pulls is taken there and passed on', needsCluster(), async (t) => {
  const { nodes } = await startCluster(t, 2, { streams: { closeAfterMs: 60_000, hls: { viewerTimeoutMs: 60_000 } } });
  const [a, b] = nodes as [StreamingGateway, StreamingGateway];
  await a.addCamera('gate', { clip: 'h264-360p-1s' });
  await a.addCamera('side', { clip: 'h264-360p-1s' });
  const urls = await a.view('gate');
  const owner = nodes.find((n) => n.cluster!.id === place('gate', a.cluster!.nodes())!.id)!;
  const asker = owner === a ? b : a;
  const hls = new URL(urls.hls);
  t.equal((await fetch(`${owner.baseUrl}${hls.pathname}`)).status, 200, 'the placed node plays the camera');
  const session = owner.streams.sessionFor('gate', 'main')!;
  await waitFor(() => session.pid, (p) => p !== null, 5_000, 20, 'the owner\'s pull');

  const asked = await fetch(`${asker.baseUrl}/api/streams/gate/snapshot.jpg?width=320`, { headers: { authorization: `Bearer ${asker.adminToken}` } });
  t.equal(asked.status, 200, 'the node that does not pull the camera answers with a picture');
  t.equal(asked.headers.get('content-type'), 'image/jpeg', 'as image/jpeg');
  t.ok(isJpeg(Buffer.from(await asked.arrayBuffer())), 'a JPEG');
  t.notOk(asker.streams.sessionFor('gate', 'main'), 'without pulling the camera itself');
  t.equal(owner.streams.sessionFor('gate', 'main'), session, 'taken from the owner\'s own pull');
  t.equal((await a.cluster!.ownership.owner('gate'))?.nodeId, owner.cluster!.id, 'whose lease stays');

  const thumb = await fetch(`${asker.baseUrl}/api/streams/gate/snapshot.jpg?ifLive=1`, { headers: { authorization: `Bearer ${asker.adminToken}` } });
  t.equal(thumb.status, 200, 'a thumbnail (ifLive) of a camera live on another node comes from there too');
  const idle = await fetch(`${asker.baseUrl}/api/streams/side/snapshot.jpg?ifLive=1`, { headers: { authorization: `Bearer ${asker.adminToken}` } });
  t.equal(idle.status, 204, 'a camera live nowhere: nothing, and nothing started');
  t.equal(await a.cluster!.ownership.owner('side'), null, 'and no lease taken');

  // The owner's side takes a stream token bound to the camera, nothing else.
  const at = (token: string, camera = 'gate') => fetch(`${owner.baseUrl}/streams/${camera}/main/${token}/snapshot.jpg`);
  t.equal((await at(urls.token)).status, 200, 'a stream token of the camera opens its picture');
  t.equal((await at(owner.adminToken)).status, 401, 'an API token (even an admin\'s) opens nothing there');
  t.equal((await at(urls.token, 'side')).status, 403, 'a stream token of another camera opens nothing');
});

t.test("a pre-warm (a tour's next camera, an alarm's) of a camera another node pulls is held by that node", needsCluster(), async (t) => {
  const { nodes } = await startCluster(t, 2);
  const [a, b] = nodes as [StreamingGateway, StreamingGateway];
  await a.addCamera('lane', { clip: 'h264-360p-1s' });
  const viewer = await b.streams.addReader({ cameraId: 'lane', profile: 'main', kind: 'prewarm', userId: 'viewer' });
  t.teardown(() => viewer.release());
  await viewer.live();
  const prewarms = () => [...(b.streams.sessionFor('lane', 'main')?.readers.values() ?? [])].filter((r) => r.userId === 'prewarm:lane').length;
  a.prewarmer.prewarm('lane', 'main', 2_000);
  t.equal(await waitFor(prewarms, (n) => n === 1, 3_000, 20, "node b to hold node a's pre-warm"), 1, 'node b, which pulls the camera, holds the pre-warm asked of node a');
  t.notOk(a.streams.sessionFor('lane', 'main'), 'node a pulls nothing itself');
  t.equal((await a.cluster!.ownership.owner('lane'))?.nodeId, b.cluster!.id, 'the lease stays with node b');
  t.equal(await waitFor(prewarms, (n) => n === 0, 5_000, 50, 'the hold to end'), 0, 'and lets it go after the hold');
});

/**
 * A county regulator sees only their county's vehicles' video: a JT/T 1078 channel of their county
 * plays from its (simulated) terminal; another county's is refused like a missing camera, a stream
 * token of theirs opens no other camera's HLS, WS-FLV, WHEP or snapshot, and none of it reaches the
 * other vehicle's terminal, which is never asked for video.
 */
import t from 'tap';
import { JtSimTerminal } from '../../../scripts/sim/jt-terminal.js';
import { smallTree, startGateway } from '../../helpers/gateway.js';
import { whepConnect } from '../../../scripts/sim/whep-client.js';
import { decodeFrames, FAST_STREAMS, waitFor } from '../../helpers/streams.js';

const VEHICLES = [
  { id: 'veh-a', departmentId: 'townA', sim: '14400000001', plate: '苏A00001', terminalId: 'TA00001' },
  { id: 'veh-b', departmentId: 'countyB', sim: '14400000002', plate: '苏B00002', terminalId: 'TB00002' },
];

t.test("a county regulator plays their county's vehicle channel and nothing of another county's", async (t) => {
  const gw = await startGateway(t, { streams: FAST_STREAMS });
  const base = await gw.http.listen({ port: 0, host: '127.0.0.1' });
  await smallTree(gw);
  const terminals = new Map<string, JtSimTerminal>();
  for (const v of VEHICLES) {
    const url = `jt1078://${v.id}/1`;
    const source = await gw.api('POST', '/api/sources', { token: gw.adminToken, body: { id: `${v.id}-ch1`, name: `${v.plate} front road`, departmentId: v.departmentId, url, subUrl: `${url}?stream=1`, codec: 'h264' } });
    t.equal(source.status, 201, `${v.id}-ch1 registered${source.status === 201 ? '' : `: ${source.body}`}`);
    const vehicle = await gw.api('POST', '/api/vehicles', {
      token: gw.adminToken,
      body: { id: v.id, plate: v.plate, category: 'passenger', company: '临江长途客运集团', departmentId: v.departmentId, terminalId: v.terminalId, sim: v.sim, channels: [{ channel: 1, name: 'front road', sourceId: `${v.id}-ch1` }] },
    });
    t.equal(vehicle.status, 201, `${v.id} registered${vehicle.status === 201 ? '' : `: ${vehicle.body}`}`);
    const term = new JtSimTerminal({ host: '127.0.0.1', port: gw.jt808!.port!, sim: v.sim, edition: '2013', plate: v.plate, terminalId: v.terminalId, clip: 'h264-360p-1s', subClip: 'h264-360p-1s' });
    t.teardown(() => term.close());
    await term.connect();
    terminals.set(v.id, term);
  }
  const regulator = await gw.userToken('reg-a', ['regulator'], ['countyA']);

  // Their own county (a township under it): the channel plays from the terminal.
  const own = await gw.api('POST', '/api/streams/veh-a-ch1/view', { token: regulator });
  t.equal(own.status, 200, `their own channel's stream URLs${own.status === 200 ? '' : `: ${own.body}`}`);
  t.ok((await decodeFrames(base + own.json.hls, 5, 20_000)) >= 5, "the county's vehicle channel plays");
  t.equal(terminals.get('veh-a')!.commands.length, 1, 'its terminal was asked for video once');

  // Another county's vehicle: refused as if it did not exist.
  const other = await gw.api('POST', '/api/streams/veh-b-ch1/view', { token: regulator });
  t.equal(other.status, 404, 'another county\'s channel answers like a missing camera');
  const missing = await gw.api('POST', '/api/streams/no-such-camera/view', { token: regulator });
  t.same({ status: other.status, code: other.json.code }, { status: missing.status, code: missing.json.code }, 'exactly like a missing one');
  t.equal((await gw.api('GET', '/api/streams/veh-b-ch1/snapshot.jpg', { token: regulator })).status, 404, 'no picture of it either');

  // Their lists hold their county's vehicle and channel only.
  t.same((await gw.api('GET', '/api/vehicles', { token: regulator })).json.items.map((v: { id: string }) => v.id), ['veh-a'], 'their vehicles list holds their vehicle only');
  const sources = (await gw.api('GET', '/api/sources?q=front', { token: regulator })).json.items.map((s: { id: string }) => s.id);
  t.same(sources, ['veh-a-ch1'], 'their sources list holds their channel only');

  t.same(terminals.get('veh-b')!.commands, [], "the other county's terminal was never asked for video");
  t.equal(gw.streams.list().filter((s) => s.cameraId === 'veh-b-ch1').length, 0, 'and no session of it started');
  // An admin over both counties plays it: the refusal was the regulator's scope, not a broken channel.
  const admin = await gw.api('POST', '/api/streams/veh-b-ch1/view', { token: gw.adminToken });
  t.equal(admin.status, 200, `an admin over both counties gets its stream URLs${admin.status === 200 ? '' : `: ${admin.body}`}`);
  const adminToken = admin.json.token as string;
  const playlist = await fetch(`${base}/streams/veh-b-ch1/main/${adminToken}/index.m3u8`);
  t.equal(playlist.status, 200, "with the admin's token, veh-b's playlist is served: its session is live");
  await playlist.body?.cancel();

  // Now that veh-b plays, the stream token of the regulator's own channel still opens nothing of it.
  const token = own.json.token as string;
  for (const file of ['index.m3u8', 'live.flv']) {
    const res = await fetch(`${base}/streams/veh-b-ch1/main/${token}/${file}`);
    t.equal(res.status, 403, `${file} of the other channel with their token: ${res.status}`);
    if (res.status === 403) t.equal((await res.json()).code, 'GW_ERR_FORBIDDEN');
    else await res.body?.cancel();
  }
  // The token is checked before the offer is read: 403, not the 400 a bad offer would get.
  const whep = await fetch(`${base}/whep/veh-b-ch1`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/sdp' }, body: 'v=0\r\n' });
  t.equal(whep.status, 403, `WHEP of the other channel with their token: ${whep.status}`);
  await whep.body?.cancel();
  const viewer = await whepConnect(`${base}/whep/veh-b-ch1`, adminToken);
  t.teardown(() => viewer.close());
  await waitFor(() => viewer.timings.firstKeyframe, (x) => x !== null, 10_000, 20, "a keyframe over WebRTC with the admin's token");
  t.pass("the admin's token plays it over WHEP");
});

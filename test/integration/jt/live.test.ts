import t from 'tap';
import { JT_MSG } from '../../../gateway/src/jt/protocol/messages.js';
import { ensureClip } from '../../../scripts/sim/clips.js';
import { JtSimTerminal, type JtSimCommand, type JtSimTerminalOptions } from '../../../scripts/sim/jt-terminal.js';
import { whepConnect } from '../../../scripts/sim/whep-client.js';
import { smallTree } from '../../helpers/gateway.js';
import { startFails } from '../../helpers/gb28181.js';
import { decodeFrames, startStreamingGateway, waitFor, type StreamingGateway } from '../../helpers/streams.js';
import { vehicleBody } from '../../helpers/vehicles.js';

/**
 * JT/T 1078 live view end to end: simulated terminals (scripts/sim/jt-terminal.ts) register over
 * JT/T 808, and a reader of a vehicle channel makes the gateway send 0x9101 over that link; the
 * terminal's packets (TCP or UDP, 2016 or BCD[10] layout) play through HLS and WHEP; a tile
 * switching main/sub sends 0x9102 switch, the last reader leaving 0x9102 close; and a start that
 * cannot work says why in the tile's words. One gateway for the file.
 */

const START_MS = 1_500;

interface Vehicle {
  id: string;
  sim: string;
  term: JtSimTerminal | null;
}

async function setup(): Promise<{ gw: StreamingGateway; vehicles: Record<string, Vehicle> }> {
  await Promise.all([ensureClip('h264-360p-1s'), ensureClip('h264-720p-1s')]);
  const gw = await startStreamingGateway(
    t,
    { closeAfterMs: 500, startTimeoutMs: 8_000, hls: { viewerTimeoutMs: 1_000 } },
    {},
    { jt808: { commandTimeoutMs: 1_500 }, jt1078: { startTimeoutMs: START_MS } },
  );
  await smallTree(gw);
  const vehicles: Record<string, Vehicle> = {};
  const add = async (id: string, sim: string, channels: number, departmentId = 'root') => {
    for (let ch = 1; ch <= channels; ch++) {
      const url = `jt1078://${id}/${ch}`;
      const res = await gw.api('POST', '/api/sources', { token: gw.adminToken, body: { id: `${id}-ch${ch}`, name: `${id} ${ch}`, departmentId, url, subUrl: `${url}?stream=1`, codec: 'h264' } });
      if (res.status !== 201) throw new Error(`source ${id}-ch${ch}: ${res.body}`);
    }
    const res = await gw.api('POST', '/api/vehicles', { token: gw.adminToken, body: vehicleBody(id, `苏A${sim.slice(-5)}`, departmentId, { sim, terminalId: `T${sim.slice(-6)}` }, channels) });
    if (res.status !== 201) throw new Error(`vehicle ${id}: ${res.body}`);
    vehicles[id] = { id, sim, term: null };
  };
  await add('jt-tcp', '13800000001', 2);
  await add('jt-udp', '13800000002', 1);
  await add('jt-faulty', '13800000003', 1);
  await add('jt-never', '13800000004', 1);
  await add('jt-other', '13800000005', 1, 'countyB');
  return { gw, vehicles };
}

async function connectTerminal(gw: StreamingGateway, v: Vehicle, o: Partial<JtSimTerminalOptions> = {}): Promise<JtSimTerminal> {
  const term = new JtSimTerminal({
    host: '127.0.0.1',
    port: gw.jt808!.port!,
    sim: v.sim,
    edition: '2013',
    plate: `苏A${v.sim.slice(-5)}`,
    terminalId: `T${v.sim.slice(-6)}`,
    clip: 'h264-360p-1s',
    subClip: 'h264-360p-1s',
    ...o,
  });
  t.teardown(() => term.close());
  await term.connect();
  v.term = term;
  return term;
}

const requests = (term: JtSimTerminal) => term.commands.filter((c): c is Extract<JtSimCommand, { msgId: 0x9101 }> => c.msgId === JT_MSG.LIVE_REQUEST);
const controls = (term: JtSimTerminal) => term.commands.filter((c): c is Extract<JtSimCommand, { msgId: 0x9102 }> => c.msgId === JT_MSG.LIVE_CONTROL).map((c) => c.control);

const { gw, vehicles } = await setup();
// Main 720p, sub 360p: a switch between them changes the picture size mid-stream.
const tcp = await connectTerminal(gw, vehicles['jt-tcp']!, { clip: 'h264-720p-1s' });

t.test('a channel plays through HLS and WHEP with one 0x9101; the last reader leaving sends 0x9102 close', async (t) => {
  const urls = await gw.view('jt-tcp-ch1');
  // Both readers at once: the HLS one alone would let the session close before WHEP came.
  const [hlsFrames, viewer] = await Promise.all([decodeFrames(urls.hls, 10, 15_000), whepConnect(urls.whep, urls.token)]);
  t.teardown(() => viewer.close());
  t.ok(hlsFrames >= 10, `HLS decodes (${hlsFrames} frames)`);
  await waitFor(() => viewer.timings.firstKeyframe, (x) => x !== null, 10_000, 20, 'a keyframe over WebRTC');
  t.equal(requests(tcp).length, 1, 'HLS and WHEP share one 0x9101');
  t.match(requests(tcp)[0]!.request, { ip: '127.0.0.1', tcpPort: gw.jt1078!.ports.tcp, udpPort: gw.jt1078!.ports.udp, channel: 1, dataType: 1, stream: 0 }, 'our media address, both ports, video of the main stream');
  t.match(tcp.mediaInfo(), [{ channel: 1, transport: 'tcp', layout: '2016' }]);
  const metrics = (await gw.api('GET', '/metrics')).body;
  t.match(metrics, /wallgate_jt1078_packets_total [1-9]/, 'the media counted in the metrics');
  t.match(metrics, /wallgate_jt1078_media_connections 1/);

  await viewer.close();
  // The HLS viewer times out (streams.hls.viewerTimeoutMs), then the session lingers (closeAfterMs).
  await waitFor(() => controls(tcp), (c) => c.length === 1, 10_000, 50, '0x9102 once nobody watches');
  t.match(controls(tcp)[0], { channel: 1, command: 0, closeType: 0 }, 'close audio and video of the channel');
  await waitFor(() => tcp.mediaInfo().length, (n) => n === 0, 5_000, 50, 'the terminal stopped sending');
  await waitFor(() => gw.streams.list().length, (n) => n === 0, 5_000, 50, 'the session closed');
  t.same(await gw.ffmpegPids(), [], 'no ffmpeg left');
  await waitFor(() => gw.jt1078!.connections, (n) => n === 0, 5_000, 50, 'no media connection left');
});

t.test("a tile switching between sub and main sends 0x9102 switch: the channel's two sessions share the terminal's one stream", async (t) => {
  const before = requests(tcp).length;
  const sub = await gw.streams.addReader({ cameraId: 'jt-tcp-ch2', profile: 'sub', kind: 'prewarm', userId: 'tile' });
  t.teardown(() => sub.release());
  await sub.live();
  t.equal(requests(tcp).length, before + 1);
  t.match(requests(tcp).at(-1)!.request, { channel: 2, stream: 1 }, 'a sub tile asks for the sub-stream');
  const main = await gw.streams.addReader({ cameraId: 'jt-tcp-ch2', profile: 'main', kind: 'prewarm', userId: 'tile' });
  await main.live();
  t.equal(requests(tcp).length, before + 1, 'no second 0x9101 for the main session');
  t.match(controls(tcp).at(-1), { channel: 2, command: 1, stream: 0 }, 'switched to main while a main tile watches');
  t.match(tcp.mediaInfo(), [{ channel: 2, stream: 0 }]);
  main.release();
  await waitFor(() => controls(tcp).at(-1), (c) => c?.command === 1 && c.stream === 1, 5_000, 50, 'back to sub once the main session closed');
  t.ok(gw.streams.sessionFor('jt-tcp-ch2', 'sub'), 'the sub session plays on');
  await waitFor(() => tcp.mediaInfo()[0]?.stream, (s) => s === 1, 5_000, 20, 'the terminal sending the sub-stream');
  const subUrls = await gw.view('jt-tcp-ch2', gw.adminToken, 'sub');
  t.equal(subUrls.profile, 'sub');
  t.ok((await decodeFrames(subUrls.hls, 10, 10_000)) >= 10, 'the sub session decodes after the switch back (720p main to 360p sub mid-stream)');
  sub.release();
  await waitFor(() => controls(tcp).at(-1), (c) => c?.command === 0, 5_000, 50, 'closed with the last one');
});

t.test('a 2019 terminal sending BCD[10] packets over UDP plays too', async (t) => {
  const udp = await connectTerminal(gw, vehicles['jt-udp']!, { edition: '2019', mediaTransport: 'udp', sim: '13800000002' });
  const lease = await gw.streams.addReader({ cameraId: 'jt-udp-ch1', profile: 'main', kind: 'prewarm', userId: 'tile' });
  t.teardown(() => lease.release());
  await lease.live();
  t.match(udp.mediaInfo(), [{ transport: 'udp', layout: '2019' }], 'live() resolved on its first decoded picture');
});

t.test('a start that cannot work says why, in the words the tile shows', async (t) => {
  const faulty = await connectTerminal(gw, vehicles['jt-faulty']!, { faults: { noMedia: true } });
  const noMedia = await startFails(gw, 'jt-faulty-ch1');
  t.match(noMedia, { code: 'GW_ERR_CAMERA_UNREACHABLE', params: { reason: 'noMediaLink', ms: START_MS } });
  t.match(noMedia.message, /the terminal did not open the video link within 1\.5 s/);

  faulty.faults.noMedia = false;
  faulty.faults.refuseLive = 3;
  const refused = await startFails(gw, 'jt-faulty-ch1');
  t.match(refused, { params: { reason: 'terminalRefused', result: 3 } });
  t.match(refused.message, /the terminal refused the video request \(result 3\)/);

  const never = await startFails(gw, 'jt-never-ch1');
  t.match(never, { params: { reason: 'vehicleNeverOnline', vehicle: 'jt-never' } });

  const wentAt = Date.now();
  await faulty.disconnect();
  await waitFor(() => gw.jt808!.terminal('jt-faulty')?.online, (online) => online === false, 5_000, 20, 'the terminal offline');
  const offline = await startFails(gw, 'jt-faulty-ch1');
  t.match(offline, { params: { reason: 'vehicleOffline', vehicle: 'jt-faulty' } });
  const since = offline.params!.since as number;
  t.ok(Math.abs(since - wentAt) < 5_000, 'since: when its link was lost');
  t.match(offline.message, /vehicle jt-faulty offline since \d\d:\d\d/);
  const health = await gw.api('GET', '/api/sources/jt-faulty-ch1', { token: gw.adminToken });
  t.match(health.json.health, { code: 'GW_ERR_CAMERA_UNREACHABLE', params: { reason: 'vehicleOffline' } }, "the channel's health says so too");
});

t.test('vehicle channel sources: the URL exactly, no credentials, and never another department’s vehicle', async (t) => {
  const body = { name: 'x', departmentId: 'root' };
  for (const [extra, field] of [
    [{ url: 'jt1078://jt-tcp/3', subUrl: 'jt1078://jt-tcp/4?stream=1' }, 'subUrl'],
    [{ url: 'jt1078://jt-tcp/3?stream=1' }, 'url'],
    [{ url: 'jt1078://jt-tcp/65' }, 'url'],
    [{ url: 'jt1078://jt-tcp/3', username: 'admin', password: 'x' }, 'username'],
    [{ url: 'jt1078://jt-tcp/3', protocol: 'rtsp' }, 'protocol'],
  ] as const) {
    const res = await gw.api('POST', '/api/sources', { token: gw.adminToken, body: { ...body, ...extra } });
    t.equal(res.status, 400, JSON.stringify(extra));
    t.ok(res.json.issues.some((i: { field: string }) => i.field === field), `names ${field}: ${res.body}`);
  }
  const countyA = await gw.userToken('a-admin', ['admin'], ['countyA']);
  const theirs = await gw.api('POST', '/api/sources', { token: countyA, body: { name: 'x', departmentId: 'countyA', url: 'jt1078://jt-other/2' } });
  t.equal(theirs.status, 400);
  t.match(theirs.json.issues, [{ field: 'url', message: /not in your departments/ }], "county B's vehicle is not county A's to watch");
  const ours = await gw.api('POST', '/api/sources', { token: gw.adminToken, body: { name: 'x', departmentId: 'countyB', url: 'jt1078://jt-other/2' } });
  t.equal(ours.status, 201, 'the root admin may');
  const refused = await startFails(gw, ours.json.id);
  t.match(refused, { code: 'GW_ERR_FORBIDDEN', params: { reason: 'notVehicleChannel', vehicle: 'jt-other', channel: 2 } }, "but it plays nothing of the vehicle: it is not the vehicle's own channel source");
});

t.test('a terminal reconnecting during a live view: the channel asks its new link again, and the view goes on without a restart', async (t) => {
  const lease = await gw.streams.addReader({ cameraId: 'jt-tcp-ch1', profile: 'main', kind: 'prewarm', userId: 'tile' });
  t.teardown(() => lease.release());
  await lease.live();
  const session = gw.streams.sessionFor('jt-tcp-ch1', 'main')!;
  const restarts = session.restarts;
  // The same terminal on a new connection while its old one looks alive (a carrier NAT dropped it silently): the new link replaces the old.
  const again = await connectTerminal(gw, vehicles['jt-tcp']!, { authCode: tcp.authCode!, clip: 'h264-720p-1s' });
  await waitFor(() => requests(again).length, (n) => n === 1, 2_500, 20, '0x9101 on the new link, before the media link grace (3 s) runs out');
  t.match(requests(again)[0]!.request, { channel: 1, stream: 0 });
  await waitFor(() => again.mediaInfo()[0]?.frames ?? 0, (n) => n >= 50, 5_000, 50, 'two seconds of video from the new link');
  t.equal(session.state, 'ready', 'the view is live');
  t.equal(session.restarts, restarts, 'and was never restarted');
  t.equal(gw.streams.sessionFor('jt-tcp-ch1', 'main'), session, 'the same session');
});

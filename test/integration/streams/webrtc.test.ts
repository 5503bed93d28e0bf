import { execFile, spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t, { type Test } from 'tap';
import { RTCPeerConnection, useH264 } from 'werift';
import { whepConnect, type WhepViewer } from '../../../scripts/sim/whep-client.js';
import { startStreamingGateway, waitFor, type StreamingGateway } from '../../helpers/streams.js';

const run = promisify(execFile);

/** A minimal but complete browser-style offer, for requests that must fail before any peer exists. */
const AUDIO_ONLY_OFFER = [
  'v=0',
  'o=- 1 2 IN IP4 127.0.0.1',
  's=-',
  't=0 0',
  'a=group:BUNDLE 0',
  'm=audio 9 UDP/TLS/RTP/SAVPF 111',
  'c=IN IP4 0.0.0.0',
  'a=mid:0',
  'a=recvonly',
  'a=ice-ufrag:abcd',
  'a=ice-pwd:abcdefghijklmnopqrstuvwx',
  'a=fingerprint:sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF',
  'a=setup:actpass',
  'a=rtpmap:111 opus/48000/2',
  '',
].join('\r\n');

function postOffer(url: string, token: string | null, body: string, contentType = 'application/sdp') {
  const headers: Record<string, string> = { 'content-type': contentType };
  if (token) headers.authorization = `Bearer ${token}`;
  return fetch(url, { method: 'POST', headers, body });
}

async function firstKeyframe(v: WhepViewer, timeoutMs = 10_000) {
  return waitFor(() => v.timings.firstKeyframe, (x) => x !== null, timeoutMs, 20);
}

/** Nothing was started: no session, no reader, no ffmpeg. */
async function assertNoSideEffects(t: Test, gw: StreamingGateway) {
  t.equal(gw.streams.list().length, 0, 'no session was started');
  t.equal(gw.webrtc.peerCount, 0, 'no peer was created');
  t.same(await gw.ffmpegPids(), [], 'no ffmpeg was spawned');
}

t.test('a WHEP viewer receives a complete H.264 keyframe that ffmpeg decodes, from the shared pull', async (t) => {
  const gw = await startStreamingGateway(t);
  await gw.addCamera('wr1', { clip: 'h264-720p-1s' });
  const urls = await gw.view('wr1');
  const viewer = await whepConnect(urls.whep, urls.token);
  t.teardown(() => viewer.close());
  await firstKeyframe(viewer);
  t.ok(viewer.firstKeyframe, 'a keyframe was reassembled from RTP');
  t.equal(viewer.firstFrameWasKeyframe, true, 'the first frame is a keyframe');
  const file = join(t.testdir(), 'key.h264');
  await writeFile(file, viewer.firstKeyframe!);
  const { stdout } = await run('ffprobe', ['-v', 'error', '-count_frames', '-select_streams', 'v:0', '-show_entries', 'stream=width,height,nb_read_frames', '-of', 'json', file]);
  const stream = JSON.parse(stdout).streams[0];
  t.same({ width: stream.width, height: stream.height, frames: Number(stream.nb_read_frames) }, { width: 1280, height: 720, frames: 1 }, 'ffmpeg decodes the keyframe alone');

  t.comment('HLS, FLV and WebRTC share the one pull');
  const frames = viewer.frames;
  await waitFor(() => viewer.frames, (n) => n >= frames + 25, 5_000);
  t.ok(viewer.frames >= frames + 25, 'frames keep arriving (25 fps)');
  const hls = await fetch(urls.hls);
  t.equal(hls.status, 200, 'HLS of the same camera plays');
  t.equal((await gw.ffmpegPids()).length, 1, 'one ffmpeg serves every output');
  const session = gw.streams.list()[0]!;
  t.equal(session.readers.webrtc, 1, 'the peer is a reader of the session');
  // The direct send path leans on werift internals; an upgrade that moves them must show here.
  t.equal(gw.webrtc.list()[0]!.sendPath, 'direct', 'packets go straight to the socket, not through werift sendRtp');
  const metrics = (await gw.api('GET', '/metrics')).body;
  t.match(metrics, /^wallgate_webrtc_peers 1$/m, 'metrics count the peer');
  t.match(metrics, /^wallgate_webrtc_join_seconds_count 1$/m, 'and time its join');
  t.notMatch(metrics, /wr1/, 'without naming the camera');
});

t.test('the keyframe cache makes a late joiner start on a keyframe at once; without it the joiner waits for one', async (t) => {
  const gw = await startStreamingGateway(t);
  await gw.addCamera('wr2', { clip: 'h264-720p-2s' });
  const urls = await gw.view('wr2');
  const first = await whepConnect(urls.whep, urls.token);
  t.teardown(() => first.close());
  await firstKeyframe(first);
  // Join in the middle of a 2 s GOP.
  await new Promise((r) => setTimeout(r, 700));
  const late = await whepConnect(urls.whep, urls.token);
  t.teardown(() => late.close());
  await firstKeyframe(late);
  t.equal(late.firstFrameWasKeyframe, true, "the late joiner's first frame is a keyframe");
  t.ok(gw.webrtc.list().every((p) => p.timings.firstKeyframe !== null), 'every peer was sent a keyframe');
  const joined = gw.webrtc.list().at(-1)!;
  t.equal(joined.timings.firstKeyframe, joined.timings.firstPacket, 'its first packet was a keyframe packet');
  // Within a few ms of DTLS (the same turn, or the next on a loaded machine), not at the next keyframe up to 2 s later.
  const sinceDtls = joined.timings.firstKeyframe! - joined.timings.dtlsConnected!;
  t.ok(sinceDtls >= 0 && sinceDtls <= 50, `the cached keyframe went out ${sinceDtls} ms after DTLS connected`);

  const noCache = await startStreamingGateway(t, { webrtc: { keyframeCache: false } });
  await noCache.addCamera('wr3', { clip: 'h264-720p-2s' });
  const u3 = await noCache.view('wr3');
  const a = await whepConnect(u3.whep, u3.token);
  t.teardown(() => a.close());
  await firstKeyframe(a);
  await new Promise((r) => setTimeout(r, 700));
  const b = await whepConnect(u3.whep, u3.token);
  t.teardown(() => b.close());
  await firstKeyframe(b);
  t.equal(b.firstFrameWasKeyframe, true, 'without the cache the joiner still starts on a keyframe');
  const waited = noCache.webrtc.list().at(-1)!;
  t.ok(waited.timings.firstKeyframe! > waited.timings.dtlsConnected!, 'but only when the next one comes, after DTLS connected');
});

t.test('DELETE and a vanished client both release the reader, so the session lingers and closes', async (t) => {
  const gw = await startStreamingGateway(t, { webrtc: { idleTimeoutMs: 1_500 } });
  await gw.addCamera('wr4', { clip: 'h264-720p-1s' });
  const urls = await gw.view('wr4');
  const staying = await whepConnect(urls.whep, urls.token);
  const leaving = await whepConnect(urls.whep, urls.token);
  const vanishing = await whepConnect(urls.whep, urls.token);
  await Promise.all([staying, leaving, vanishing].map((v) => firstKeyframe(v)));
  t.equal(gw.streams.list()[0]!.readers.webrtc, 3, 'three peers read the session');

  const del = await fetch(leaving.resource, { method: 'DELETE', headers: { authorization: `Bearer ${urls.token}` } });
  t.equal(del.status, 200, 'DELETE on the resource ends it');
  t.equal(gw.streams.list()[0]!.readers.webrtc, 2, 'its reader is released at once');
  const again = await fetch(leaving.resource, { method: 'DELETE', headers: { authorization: `Bearer ${urls.token}` } });
  t.equal(again.status, 404, 'a second DELETE finds nothing');
  await leaving.pc.close();

  t.comment('a client that vanishes without a word is dropped, and the others keep playing');
  await vanishing.vanish();
  t.teardown(() => vanishing.pc.close());
  const before = staying.frames;
  const readers = await waitFor(() => gw.streams.list()[0]?.readers.webrtc, (n) => n === 1, 6_000);
  t.equal(readers, 1, 'the silent peer was dropped after streams.webrtc.idleTimeoutMs');
  t.ok(staying.frames > before + 25, `the remaining viewer kept receiving frames meanwhile (${staying.frames - before})`);

  await staying.close();
  t.equal(gw.webrtc.peerCount, 0, 'no peer left');
  t.equal(gw.streams.list()[0]?.state, 'lingering', 'the session lingers after its last viewer');
  const pids = await waitFor(() => gw.ffmpegPids(), (p) => p.length === 0, 10_000);
  t.same(pids, [], 'then its ffmpeg is gone');
});

t.test('unauthorised and malformed offers get 4xx without side effects', async (t) => {
  const gw = await startStreamingGateway(t, { webrtc: { maxOfferBytes: 4_096 } });
  await gw.addCamera('wr5', { clip: 'h264-720p-1s' });
  await gw.addCamera('wr6', { clip: 'h264-720p-1s' });
  const urls = await gw.view('wr5');
  const other = await gw.view('wr6');

  t.equal((await postOffer(urls.whep, null, AUDIO_ONLY_OFFER)).status, 401, 'no token: 401');
  const forged = urls.token.slice(0, -4) + (urls.token.endsWith('AAAA') ? 'BBBB' : 'AAAA');
  t.equal((await postOffer(urls.whep, forged, AUDIO_ONLY_OFFER)).status, 401, 'a forged token: 401');
  const foreign = await postOffer(urls.whep, other.token, AUDIO_ONLY_OFFER);
  t.equal(foreign.status, 403, "another camera's token: 403");
  const apiToken = await postOffer(urls.whep, gw.adminToken, AUDIO_ONLY_OFFER);
  t.equal(apiToken.status, 401, 'a login token is not a stream token');

  const garbage = await postOffer(urls.whep, urls.token, 'hello, this is not SDP');
  t.equal(garbage.status, 400, 'garbage: 400');
  t.match(await garbage.json(), { code: 'GW_ERR_VALIDATION', issues: [{ field: 'offer' }] }, 'the error names the offer');
  const noVideo = await postOffer(urls.whep, urls.token, AUDIO_ONLY_OFFER);
  t.equal(noVideo.status, 400, 'no video m-line: 400');
  t.match((await noVideo.json()).message, /no video m-line/);
  const noH264 = AUDIO_ONLY_OFFER.replace('m=audio 9 UDP/TLS/RTP/SAVPF 111', 'm=video 9 UDP/TLS/RTP/SAVPF 96').replace('a=rtpmap:111 opus/48000/2', 'a=rtpmap:96 VP8/90000');
  const vp8 = await postOffer(urls.whep, urls.token, noH264);
  t.equal(vp8.status, 400, 'video without H.264: 400');
  t.match((await vp8.json()).message, /H\.264/);
  const sendonly = noH264.replace('a=rtpmap:96 VP8/90000', 'a=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1').replace('a=recvonly', 'a=sendonly');
  t.equal((await postOffer(urls.whep, urls.token, sendonly)).status, 400, 'a client that only sends: 400');
  const huge = await postOffer(urls.whep, urls.token, AUDIO_ONLY_OFFER + 'a=x-padding:' + 'x'.repeat(8_000) + '\r\n');
  t.equal(huge.status, 413, 'a body over streams.webrtc.maxOfferBytes: 413');
  t.equal((await postOffer(urls.whep, urls.token, AUDIO_ONLY_OFFER, 'text/plain')).status, 415, 'not application/sdp: 415');
  const bad = await postOffer(`${gw.baseUrl}/whep/..%2Fetc`, urls.token, AUDIO_ONLY_OFFER);
  t.equal(bad.status, 400, 'a malformed camera id: 400');
  await assertNoSideEffects(t, gw);

  t.comment('resource URLs need the token that made them');
  const viewer = await whepConnect(urls.whep, urls.token);
  t.teardown(() => viewer.close());
  const operator = await gw.userToken('op1', ['operator'], ['root']);
  const theirs = await gw.view('wr5', operator);
  const stranger = await fetch(viewer.resource, { method: 'DELETE', headers: { authorization: `Bearer ${theirs.token}` } });
  t.equal(stranger.status, 404, "another user's stream token cannot end this viewing");
  t.equal(gw.webrtc.peerCount, 1, 'the peer is still there');
});

t.test('WHEP niceties: CORS preflight, trickle ICE with ETag, and the stream closing under the peer', async (t) => {
  const gw = await startStreamingGateway(t);
  await gw.addCamera('wr7', { clip: 'h264-720p-1s' });
  const urls = await gw.view('wr7');
  const pre = await fetch(urls.whep, { method: 'OPTIONS', headers: { origin: 'http://wall.example', 'access-control-request-method': 'POST' } });
  t.equal(pre.status, 204);
  t.equal(pre.headers.get('access-control-allow-origin'), '*');
  t.match(pre.headers.get('access-control-allow-headers'), /Authorization/);
  t.equal(pre.headers.get('accept-post'), 'application/sdp');

  const viewer = await whepConnect(urls.whep, urls.token);
  t.teardown(() => viewer.close());
  await firstKeyframe(viewer);
  const peerId = gw.webrtc.list()[0]!.id;
  const fragment = 'a=mid:0\r\na=candidate:1 1 udp 2130706431 127.0.0.1 9 typ host\r\n';
  const patch = (etag: string) =>
    fetch(viewer.resource, {
      method: 'PATCH',
      headers: { authorization: `Bearer ${urls.token}`, 'content-type': 'application/trickle-ice-sdpfrag', 'if-match': etag },
      body: fragment,
    });
  t.equal((await patch('"not-it"')).status, 412, 'a stale ETag: 412');
  t.equal((await patch('*')).status, 204, 'a trickled candidate: 204');
  const noMid = await fetch(viewer.resource, {
    method: 'PATCH',
    headers: { authorization: `Bearer ${urls.token}`, 'content-type': 'application/trickle-ice-sdpfrag' },
    body: 'a=candidate:2 1 udp 2130706431 127.0.0.1 10 typ host\r\n',
  });
  t.equal(noMid.status, 204, 'a fragment without a=mid applies to the video section');
  const restart = await fetch(viewer.resource, {
    method: 'PATCH',
    headers: { authorization: `Bearer ${urls.token}`, 'content-type': 'application/trickle-ice-sdpfrag' },
    body: 'a=ice-ufrag:other\r\na=ice-pwd:otherotherotherotherother\r\n',
  });
  t.equal(restart.status, 400, 'an ICE restart is refused with a reason');
  t.match(await restart.json(), { code: 'GW_ERR_VALIDATION', issues: [{ field: 'ice-ufrag', message: /ICE restarts are not supported/ }] });
  // Read after the PATCHes: the trickled candidates and the refused restart left the peer as it was.
  t.match(gw.webrtc.list(), [{ id: peerId, state: 'connected' }], 'the peer is still connected');
  const frames = viewer.frames;
  await waitFor(() => viewer.frames, (n) => n >= frames + 25, 5_000, 20, 'a second of frames after the PATCHes');
  t.pass('and its video keeps coming');

  t.comment('an admin force-stopping the session ends the peer');
  const session = gw.streams.list()[0]!;
  const stop = await gw.api('DELETE', `/api/streams/${session.id}`, { token: gw.adminToken });
  t.equal(stop.status, 204);
  t.equal(await waitFor(() => gw.webrtc.peerCount, (n) => n === 0, 3_000), 0, 'the peer is closed with the session');
});

t.test('caps on peers per camera and in total answer 503 before anything starts', async (t) => {
  const gw = await startStreamingGateway(t, { webrtc: { maxPeersPerCamera: 2, maxPeers: 3 } });
  await gw.addCamera('wr8', { clip: 'h264-720p-1s' });
  await gw.addCamera('wr9', { clip: 'h264-720p-1s' });
  const a = await gw.view('wr8');
  const b = await gw.view('wr9');
  const viewers = [await whepConnect(a.whep, a.token), await whepConnect(a.whep, a.token)];
  t.teardown(() => Promise.all(viewers.map((v) => v.close())));
  const third = await whepConnect(a.whep, a.token).catch((e: { status: number; body: string }) => e);
  t.match(third, { status: 503, body: /maxPeersPerCamera/ }, 'a third peer on one camera: 503');
  viewers.push(await whepConnect(b.whep, b.token));
  // werift keeps retransmitting a DTLS hello for up to 33 s when a peer closes mid-handshake; let them finish.
  await Promise.all(viewers.map((v) => firstKeyframe(v)));
  const fourth = await whepConnect(b.whep, b.token).catch((e: { status: number; body: string }) => e);
  t.match(fourth, { status: 503, body: /maxPeers\b/ }, 'a fourth peer in total: 503');
  t.equal(gw.webrtc.peerCount, 3, 'the refused offers left nothing behind');
  t.equal(gw.streams.list().reduce((n, s) => n + s.readers.webrtc, 0), 3);
});

t.test('an H.265 camera is transcoded once and shared by WebRTC and HLS viewers', async (t) => {
  const gw = await startStreamingGateway(t);
  await gw.addCamera('wr10', { clip: 'h265-720p-1s' });
  const urls = await gw.view('wr10');
  const v1 = await whepConnect(urls.whep, urls.token);
  t.teardown(() => v1.close());
  await firstKeyframe(v1, 15_000);
  const v2 = await whepConnect(urls.whep, urls.token);
  t.teardown(() => v2.close());
  await firstKeyframe(v2);
  const file = join(t.testdir(), 'key.h264');
  await writeFile(file, v2.firstKeyframe!);
  const { stdout } = await run('ffprobe', ['-v', 'error', '-show_entries', 'stream=codec_name,width', '-of', 'json', file]);
  t.match(JSON.parse(stdout).streams[0], { codec_name: 'h264', width: 1280 }, 'the peer gets H.264');
  t.equal((await fetch(urls.hls)).status, 200);
  const [session] = gw.streams.list();
  t.match(session, { transcoding: true, readers: { webrtc: 2 } });
  t.equal((await gw.ffmpegPids()).length, 1, 'one transcode for every viewer');
});

t.test('a camera sending B-frames is restarted once with the transcode, so WebRTC viewers get frames in order', async (t) => {
  const gw = await startStreamingGateway(t);
  const created = await gw.api('POST', '/api/sources', {
    token: gw.adminToken,
    body: { id: 'bcam', name: 'B-frame camera', departmentId: 'root', protocol: 'rtmp-push', url: 'rtmp://gateway.example/push/bcam' },
  });
  t.equal(created.status, 201, 'a push camera is registered');
  const issued = await gw.api('POST', '/api/sources/bcam/publish-url', { token: gw.adminToken });
  // A small live encode with B-frames, as some cameras send; the simulator's clips have none.
  const encoder = spawn(
    'ffmpeg',
    ['-hide_banner', '-loglevel', 'error', '-re', '-f', 'lavfi', '-i', 'testsrc2=size=320x240:rate=25',
     '-c:v', 'libx264', '-preset', 'veryfast', '-bf', '2', '-g', '25', '-pix_fmt', 'yuv420p', '-f', 'flv', issued.json.url.replace('localhost', '127.0.0.1')],
    { stdio: 'ignore' },
  );
  t.teardown(() => {
    encoder.kill('SIGKILL');
  });
  const urls = await gw.view('bcam');
  const afterRestart: Buffer[] = [];
  const viewer = await whepConnect(urls.whep, urls.token, {
    onFrame: (frame) => {
      if (!gw.streams.list()[0]?.transcoding) return;
      if (afterRestart.length || frame.keyframe) afterRestart.push(Buffer.from(frame.data));
    },
  });
  t.teardown(() => viewer.close());
  await waitFor(() => afterRestart.length, (n) => n >= 30, 15_000);
  const [session] = gw.streams.list();
  t.match(session, { transcoding: true, readers: { webrtc: 1 } }, 'the session now transcodes');
  t.equal(session!.restarts, 1, 'it restarted once for it');
  const file = join(t.testdir(), 'after.h264');
  await writeFile(file, Buffer.concat(afterRestart));
  const { stdout } = await run('ffprobe', ['-v', 'error', '-show_entries', 'stream=codec_name,has_b_frames', '-of', 'json', file]);
  t.match(JSON.parse(stdout).streams[0], { codec_name: 'h264', has_b_frames: 0 }, 'what the viewer gets has no B-frames');
  t.ok(gw.logs.some((l) => l.includes('restarting the pull with a transcode') && l.includes('B-frames')), 'the restart is logged with its reason');
});

t.test('the answer announces only the configured address, on a port of the configured range', async (t) => {
  const gw = await startStreamingGateway(t, { webrtc: { announcedAddresses: ['127.0.0.1'], portMin: 42_100, portMax: 42_140 } });
  await gw.addCamera('wr11', { clip: 'h264-720p-1s' });
  const urls = await gw.view('wr11');
  const viewer = await whepConnect(urls.whep, urls.token);
  t.teardown(() => viewer.close());
  const hosts = viewer.answer.split('\r\n').filter((l) => l.startsWith('a=candidate:') && l.includes(' typ host'));
  t.equal(hosts.length, 1, 'one host candidate');
  const [, , , , address, port] = hosts[0]!.split(' ');
  t.equal(address, '127.0.0.1', 'the announced address, and no other interface');
  t.ok(Number(port) >= 42_100 && Number(port) <= 42_140, `port ${port} is in streams.webrtc.portMin..portMax`);
  await firstKeyframe(viewer);
  t.equal(viewer.firstFrameWasKeyframe, true, 'and media flows through it');
});

t.test('a half-open peer that never completes ICE is dropped after connectTimeoutMs, releasing its reader', async (t) => {
  const gw = await startStreamingGateway(t, { webrtc: { connectTimeoutMs: 1_500 } });
  await gw.addCamera('wr12', { clip: 'h264-720p-1s' });
  // The camera is live first: the timeout runs from the offer, and this test is about ICE, not a cold
  // start (which, on a loaded machine, alone can take longer than the 1.5 s given here).
  const held = await gw.streams.addReader({ cameraId: 'wr12', profile: 'main', kind: 'flv', userId: 'wall-screen' });
  t.teardown(() => held.release());
  await held.live();
  const urls = await gw.view('wr12');
  // An offer from a client that then never uses the answer.
  const pc = new RTCPeerConnection({ iceUseIpv6: false, codecs: { video: [useH264()] } });
  t.teardown(() => pc.close());
  pc.addTransceiver('video', { direction: 'recvonly' });
  await pc.setLocalDescription(await pc.createOffer());
  if (pc.iceGatheringState !== 'complete') await pc.iceGatheringStateChange.watch((s) => s === 'complete');
  const res = await postOffer(urls.whep, urls.token, pc.localDescription!.sdp);
  t.equal(res.status, 201, `the offer is answered ${res.status === 201 ? '' : await res.text()}`);
  t.equal(gw.streams.list()[0]?.readers.webrtc, 1, 'the peer holds a reader meanwhile');
  const left = await waitFor(() => gw.webrtc.peerCount, (n) => n === 0, 5_000);
  t.equal(left, 0, 'the peer is gone once the timeout passed');
  t.equal(gw.streams.list()[0]?.readers.webrtc ?? 0, 0, 'and its reader with it');
  t.ok(gw.logs.some((l) => l.includes('connectTimeoutMs')), 'the reason is logged');
});

t.test('a camera that cannot start answers the offer with its reason, and leaves no peer behind', async (t) => {
  const gw = await startStreamingGateway(t);
  await gw.addCamera('wr13', { clip: 'h264-720p-1s' });
  gw.sim.setFault('wr13', { kind: 'refuse' });
  const urls = await gw.view('wr13');
  const refused = await whepConnect(urls.whep, urls.token).catch((e: { status: number; body: string }) => e);
  t.match(refused, { status: 502, body: /GW_ERR_CAMERA_UNREACHABLE/ }, 'the WHEP client learns why');
  t.equal(gw.webrtc.peerCount, 0, 'no peer is left');
  t.equal(gw.streams.list()[0]?.readers.webrtc ?? 0, 0, 'no reader is held');
});

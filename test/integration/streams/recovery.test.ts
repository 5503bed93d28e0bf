import t from 'tap';
import type { HealthEvent } from '../../../gateway/src/streams/manager.js';
import { allCommandLines, decodeFrames, startStreamingGateway, waitFor } from '../../helpers/streams.js';

/** Holds an HTTP-FLV viewer open (a tile on a wall) until aborted. */
function holdViewer(url: string): { bytes: () => number; stop: () => void } {
  const ac = new AbortController();
  let n = 0;
  void fetch(url, { signal: ac.signal })
    .then(async (res) => {
      const reader = res.body!.getReader();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        n += value.length;
      }
    })
    .catch(() => {});
  return { bytes: () => n, stop: () => ac.abort() };
}

t.test('a camera that drops for 10 s is reported offline and resumes by itself while watched', async (t) => {
  const gw = await startStreamingGateway(t);
  await gw.addCamera('bridge', { clip: 'h264-720p-1s' });
  const events: HealthEvent[] = [];
  gw.streams.on('health', (e) => events.push(e));
  const urls = await gw.view('bridge');
  t.equal(await decodeFrames(urls.flv, 5), 5);
  const viewer = holdViewer(urls.flv);
  await waitFor(() => viewer.bytes(), (n) => n > 10_000, 5_000);

  gw.sim.setFault('bridge', { kind: 'drop', forMs: 10_000 });
  const offline = await waitFor(() => events.find((e) => e.health === 'offline'), Boolean, 8_000);
  t.ok(offline, 'health event: offline');
  const source = await gw.api('GET', '/api/sources/bridge', { token: gw.adminToken });
  t.match(source.json.health, { state: 'offline', error: /closed the stream|unreachable/ }, 'written back to the registry, with why');
  t.match(gw.streams.list()[0], { state: 'retrying' });
  const pidsWhileDown = await gw.ffmpegPids();
  t.ok(pidsWhileDown.length <= 1, 'retries never overlap');

  const back = await waitFor(() => gw.streams.list()[0]?.state, (s) => s === 'ready', 20_000, 200);
  t.equal(back, 'ready', 'the session is live again without anyone asking');
  const online = events.filter((e) => e.health === 'online');
  t.ok(online.length >= 2, 'health event: online again');
  t.match((await gw.api('GET', '/api/sources/bridge', { token: gw.adminToken })).json.health, { state: 'online', error: null });
  const before = viewer.bytes();
  await waitFor(() => viewer.bytes(), (n) => n > before + 50_000, 5_000);
  t.ok(viewer.bytes() > before + 50_000, 'the viewer that stayed receives video again');
  t.ok(gw.streams.list()[0]!.restarts >= 1);
  const retries = gw.streams.list()[0]!.restarts;
  t.ok(retries < 15, `backoff kept retries to ${retries} in 10 s`);
  viewer.stop();
});

t.test('a camera that stalls mid-stream is killed by the watchdog and retried', async (t) => {
  const gw = await startStreamingGateway(t, { watchdogMs: 2_000 });
  await gw.addCamera('tunnel', { clip: 'h264-720p-1s' });
  const urls = await gw.view('tunnel');
  const viewer = holdViewer(urls.flv);
  await waitFor(() => viewer.bytes(), (n) => n > 10_000, 8_000);
  const pid = gw.streams.list()[0]!.pid;
  gw.sim.setFault('tunnel', { kind: 'stall' });
  const state = await waitFor(() => gw.streams.list()[0], (s) => !!s && (s.pid !== pid || s.state === 'retrying'), 10_000);
  t.not(state?.pid, pid, 'the stalled ffmpeg was killed');
  t.match(gw.logs.join('\n'), /stalled: no video for \d+ ms/, 'the log says why');
  gw.sim.clearFault('tunnel');
  const back = await waitFor(() => gw.streams.list()[0]?.state, (s) => s === 'ready', 15_000, 200);
  t.equal(back, 'ready');
  viewer.stop();
});

t.test('an unreachable camera fails the start with a clear error and is not retried', async (t) => {
  const gw = await startStreamingGateway(t, { startTimeoutMs: 3_000 });
  await gw.addCamera('dead', { clip: 'h264-720p-1s' });
  gw.sim.setFault('dead', { kind: 'stall' });
  const urls = await gw.view('dead');
  const started = Date.now();
  const res = await fetch(urls.hls);
  const body = await res.json();
  const ms = Date.now() - started;
  t.equal(res.status, 504);
  t.equal(body.code, 'GW_ERR_STREAM_TIMEOUT');
  t.match(body.message, /no video within 3000 ms/);
  t.ok(ms < 8_000, `failed after ${ms} ms`);
  await waitFor(() => gw.ffmpegPids(), (p) => p.length === 0, 5_000);
  t.same(await gw.ffmpegPids(), [], 'nothing keeps trying once the viewer got its answer');
  t.equal(gw.streams.list().length, 0);

  t.comment('a closed port: refused at once');
  const closed = await gw.api('POST', '/api/sources', {
    token: gw.adminToken,
    body: { id: 'gone', name: 'gone', departmentId: 'root', url: 'rtsp://127.0.0.1:9/cam/gone' },
  });
  t.equal(closed.status, 201);
  const goneUrls = await gw.view('gone');
  const gone = await fetch(goneUrls.hls);
  t.equal(gone.status, 502);
  t.match(await gone.json(), { code: 'GW_ERR_CAMERA_UNREACHABLE', message: /Connection refused/ });
  // A session retrying would still be listed: once it is gone, nothing can start another ffmpeg.
  t.equal(await waitFor(() => gw.streams.list().length, (n) => n === 0, 5_000, 50, 'the refused session to close'), 0, 'the refused session is closed');
  t.same(await gw.ffmpegPids(), [], 'no retry storm');
});

t.test('a retrying camera reports the reason of its latest attempt, not its first', async (t) => {
  const gw = await startStreamingGateway(t);
  gw.sim.addCamera('gate', { clip: 'h264-720p-1s', auth: { scheme: 'digest', username: 'ops', password: 'right' } });
  const registered = await gw.api('POST', '/api/sources', {
    token: gw.adminToken,
    body: { id: 'gate', name: 'gate', departmentId: 'root', url: gw.sim.url('gate').replace('rtsp://', 'rtsp://ops:wrong@') },
  });
  t.equal(registered.status, 201);
  const events: HealthEvent[] = [];
  gw.streams.on('health', (e) => events.push(e));
  // A tour's pre-warm holds the camera, so it is retried while it fails.
  const hold = await gw.streams.addReader({ cameraId: 'gate', profile: 'main', kind: 'prewarm', userId: 'tour' });
  t.teardown(() => hold.release());
  await t.rejects(hold.live(), { code: 'GW_ERR_CAMERA_AUTH' }, 'first the camera refuses the password');
  const health = async () => (await gw.api('GET', '/api/sources/gate', { token: gw.adminToken })).json.health;
  t.match(await waitFor(health, (h) => /refused the user name or password/.test(h?.error ?? ''), 5_000), { state: 'offline' });

  t.comment('then the camera goes away: the next attempts fail for another reason');
  gw.sim.removeCamera('gate');
  const moved = await waitFor(health, (h) => /no stream at this path/.test(h?.error ?? ''), 8_000);
  t.match(moved, { state: 'offline', error: /no stream at this path/ }, "the registry's health names the new reason");
  t.match(gw.streams.list()[0], { state: 'retrying', lastError: { code: 'GW_ERR_CAMERA_UNREACHABLE', message: /no stream at this path/ } }, 'so does the session (the tile)');
  t.match(events.at(-1), { health: 'offline', error: /no stream at this path/ });
  const urls = await gw.view('gate');
  const res = await fetch(urls.hls);
  t.equal(res.status, 502);
  t.match(await res.json(), { code: 'GW_ERR_CAMERA_UNREACHABLE', message: /no stream at this path/ }, 'and a viewer arriving now');
});

t.test('a kill -9 of the ffmpeg child is recovered', async (t) => {
  const gw = await startStreamingGateway(t);
  await gw.addCamera('depot', { clip: 'h264-720p-1s' });
  const urls = await gw.view('depot');
  const viewer = holdViewer(urls.flv);
  await waitFor(() => viewer.bytes(), (n) => n > 10_000, 8_000);
  const mediaSequence = async () => Number(/#EXT-X-MEDIA-SEQUENCE:(\d+)/.exec(await (await fetch(urls.hls)).text())?.[1]);
  const [pid] = await gw.ffmpegPids();
  const before = await mediaSequence();
  process.kill(pid!, 'SIGKILL');
  const next = await waitFor(() => gw.streams.list()[0], (s) => !!s && s.state === 'ready' && s.pid !== null && s.pid !== pid, 10_000, 100);
  t.ok(next && next.pid !== pid, 'a new ffmpeg serves the session');
  t.equal((await gw.ffmpegPids()).length, 1, 'and only one');
  const bytes = viewer.bytes();
  await waitFor(() => viewer.bytes(), (n) => n > bytes + 50_000, 5_000);
  t.ok(viewer.bytes() > bytes + 50_000, 'the viewer kept its connection and gets video');
  const playlist = await waitFor(async () => (await fetch(urls.hls)).text(), (p) => /seg\d+\.ts/.test(p), 5_000);
  t.ok(Number(/#EXT-X-MEDIA-SEQUENCE:(\d+)/.exec(playlist)?.[1]) > before, 'HLS segment numbers continue after the restart');
  t.match(playlist, /#EXT-X-DISCONTINUITY/, 'with a discontinuity for the player');
  viewer.stop();
});

t.test('a timestamp jump mid-stream and oversized RTSP headers do not break a pull', async (t) => {
  const gw = await startStreamingGateway(t);
  await gw.addCamera('chatty', { clip: 'h264-720p-1s' });
  gw.sim.setFault('chatty', { kind: 'oversized-headers', bytes: 65_536 });
  t.equal(await decodeFrames((await gw.view('chatty')).flv, 10), 10, 'a 64 KB RTSP header is read through');

  await gw.addCamera('jumpy', { clip: 'h264-720p-1s' });
  const urls = await gw.view('jumpy');
  const viewer = holdViewer(urls.flv);
  await waitFor(() => viewer.bytes(), (n) => n > 10_000, 8_000);
  const session = gw.streams.list().find((s) => s.cameraId === 'jumpy')!;
  const sentBefore = gw.sim.stats().perCamera.jumpy!.bytesSent;
  gw.sim.setFault('jumpy', { kind: 'jump', ms: 30_000 });
  // Two seconds of the clip (2 Mbit/s, two 1 s GOPs) sent with the jumped timestamps.
  const clipBytesPerSecond = 250_000;
  await waitFor(() => gw.sim.stats().perCamera.jumpy!.bytesSent - sentBefore, (n) => n > 2 * clipBytesPerSecond, 8_000, 100, 'the camera to send 2 s past the jump');
  const before = viewer.bytes();
  await waitFor(() => viewer.bytes(), (n) => n > before + 50_000, 5_000);
  t.ok(viewer.bytes() > before + 50_000, 'video keeps flowing after a 30 s jump');
  t.equal(await decodeFrames(urls.hls, 10), 10, 'and HLS still decodes');
  t.match(gw.streams.list().find((s) => s.cameraId === 'jumpy'), { id: session.id, state: 'ready', restarts: session.restarts }, 'the same pull, never restarted');
  viewer.stop();
});

t.test('RTSP over UDP when configured', async (t) => {
  const gw = await startStreamingGateway(t, { rtspTransport: 'udp' });
  await gw.addCamera('udp1', { clip: 'h264-720p-1s', auth: { scheme: 'digest', username: 'u', password: 'p4ss' } });
  const urls = await gw.view('udp1');
  t.equal(await decodeFrames(urls.flv, 25), 25, 'video arrives over RTP/UDP');
  t.match(await allCommandLines(), /-protocol_whitelist pipe,rtsp,rtp,tcp,udp/, 'the whitelist allows only what RTSP needs');
});

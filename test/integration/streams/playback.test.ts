import t from 'tap';
import { WebSocket } from 'ws';
import { ensureClip } from '../../../scripts/sim/clips.js';
import { allCommandLines, decodeFrames, startStreamingGateway, waitFor } from '../../helpers/streams.js';

const PASSWORD = 'Pl4nted#Secret-9x';

/** Time to a WS-FLV viewer's first video picture, and whether that picture is a keyframe. */
function firstPicture(ws: WebSocket): Promise<{ ms: number; keyframe: boolean }> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    ws.on('message', (data: Buffer) => {
      buf = Buffer.concat([buf, data]);
      // FLV header (13 bytes incl. back pointer), then tags: find the first video tag that is a picture.
      let at = 13;
      while (buf.length >= at + 11) {
        const size = buf.readUIntBE(at + 1, 3);
        if (buf.length < at + 11 + size) break;
        if (buf[at] === 9 && buf[at + 12] === 1) return resolve({ ms: Date.now() - started, keyframe: buf[at + 11]! >> 4 === 1 });
        at += 15 + size;
      }
    });
    ws.on('error', reject);
  });
}

t.test('a viewer gets playable HLS and FLV from one shared pull, which stops after the last viewer leaves', async (t) => {
  const gw = await startStreamingGateway(t);
  await gw.addCamera('gate1', { clip: 'h264-720p-1s', auth: { scheme: 'digest', username: 'admin', password: PASSWORD } });

  const urls = await gw.view('gate1');
  t.equal(await decodeFrames(urls.hls, 25), 25, 'HLS decodes');
  t.equal(await decodeFrames(urls.flv, 25), 25, 'HTTP-FLV decodes');
  t.same(await gw.ffmpegPids().then((p) => p.length), 1, 'one ffmpeg for both outputs');

  const playlist = await fetch(urls.hls);
  t.equal(playlist.headers.get('content-type'), 'application/vnd.apple.mpegurl');
  t.match(playlist.headers.get('cache-control'), /no-cache/);
  const text = await playlist.text();
  const segment = text.split('\n').find((l) => l.endsWith('.ts'))!;
  const seg = await fetch(urls.hls.replace('index.m3u8', segment));
  t.equal(seg.status, 200);
  t.equal(seg.headers.get('content-type'), 'video/mp2t');
  t.notOk(text.includes('.tmp'), 'a segment being written is never listed');

  t.comment('the pull lingers, then ffmpeg is gone');
  const left = await waitFor(() => gw.ffmpegPids(), (p) => p.length === 0, 15_000);
  t.same(left, [], 'no ffmpeg left after the linger time and the HLS viewer timeout');
  t.equal(await waitFor(() => gw.streams.list().length, (n) => n === 0, 2_000), 0, 'no session left');
});

t.test('20 concurrent viewers of one camera share one ffmpeg; a WS-FLV viewer gets a keyframe at once', async (t) => {
  const gw = await startStreamingGateway(t);
  await gw.addCamera('plaza', { clip: 'h264-720p-1s' });
  const viewers: AbortController[] = [];
  const firstBytes: Promise<number>[] = [];
  for (let i = 0; i < 20; i++) {
    const urls = await gw.view('plaza');
    const ac = new AbortController();
    viewers.push(ac);
    firstBytes.push(
      fetch(urls.flv, { signal: ac.signal }).then(async (res) => {
        const reader = res.body!.getReader();
        let n = 0;
        while (n < 50_000) n += (await reader.read()).value?.length ?? 0;
        return n;
      }),
    );
  }
  const got = await Promise.all(firstBytes);
  t.ok(got.every((n) => n >= 50_000), 'every viewer receives media');
  t.equal((await gw.ffmpegPids()).length, 1, 'one ffmpeg for 20 viewers');
  t.equal(gw.streams.list()[0]!.readers.flv, 20, 'the session counts 20 readers');

  const ws = new WebSocket((await gw.view('plaza')).wsFlv);
  const firstVideo = await firstPicture(ws);
  t.ok(firstVideo.keyframe, 'the first picture a joining WS-FLV viewer gets is a keyframe');
  t.ok(firstVideo.ms < 2_000, `first video after ${firstVideo.ms} ms`);
  ws.close();
  for (const ac of viewers) ac.abort();
  await waitFor(() => gw.streams.stats().readers, (n) => n === 0, 5_000);
  t.equal(gw.streams.stats().readers, 0, 'viewers that hang up are released');
});

t.test('the camera password appears in no log, error, metric, API answer or command line', async (t) => {
  const gw = await startStreamingGateway(t);
  await gw.addCamera('vault', { clip: 'h264-720p-1s', auth: { scheme: 'basic', username: 'ops', password: PASSWORD } });
  // A second source with the wrong password: its failure is reported, without the password it was given.
  gw.sim.addCamera('vault-bad', { clip: 'h264-720p-1s', auth: { scheme: 'digest', username: 'ops', password: 'other' } });
  const bad = await gw.api('POST', '/api/sources', {
    token: gw.adminToken,
    body: { id: 'vault-bad', name: 'bad', departmentId: 'root', url: gw.sim.url('vault-bad').replace('rtsp://', `rtsp://ops:${encodeURIComponent(PASSWORD)}@`) },
  });
  t.equal(bad.status, 201);

  const urls = await gw.view('vault');
  t.equal(await decodeFrames(urls.flv, 10), 10);
  const cmdlines = await allCommandLines();
  t.notOk(cmdlines.includes(PASSWORD) || cmdlines.includes(encodeURIComponent(PASSWORD)), 'not in any /proc/*/cmdline');
  t.ok(cmdlines.includes('pipe:0'), 'ffmpeg reads its input list from stdin');

  const badUrls = await gw.view('vault-bad');
  const res = await fetch(badUrls.hls);
  const body = await res.text();
  t.equal(res.status, 502);
  t.match(JSON.parse(body), { code: 'GW_ERR_CAMERA_AUTH' }, 'the error says the camera refused the credentials');

  const sessions = await gw.api('GET', '/api/streams', { token: gw.adminToken });
  const metrics = await gw.api('GET', '/metrics');
  const source = await gw.api('GET', '/api/sources/vault', { token: gw.adminToken });
  for (const [what, text] of [
    ['logs', gw.logs.join('\n')],
    ['error', body],
    ['sessions', sessions.body],
    ['metrics', metrics.body],
    ['source', source.body],
  ] as const) {
    t.notOk(text.includes(PASSWORD) || text.includes(encodeURIComponent(PASSWORD)), `not in ${what}`);
  }
  t.match(gw.logs.join('\n'), /pull ended/, 'the failure was logged');
});

t.test('stream tokens open one camera only; paths are checked', async (t) => {
  const gw = await startStreamingGateway(t);
  await gw.addCamera('a', { clip: 'h264-720p-1s' });
  await gw.addCamera('b', { clip: 'h264-720p-1s' });
  const a = await gw.view('a');
  const token = a.hls.split('/')[6]!;

  const cross = await fetch(`${gw.baseUrl}/streams/b/main/${token}/index.m3u8`);
  t.equal(cross.status, 403, "camera a's token does not open camera b");
  const forged = await fetch(`${gw.baseUrl}/streams/a/main/${token.slice(0, -4)}AAAA/index.m3u8`);
  t.equal(forged.status, 401, 'a forged token is refused');
  for (const path of ['..%2F..%2Fwallgate.db', '..%2Fsecrets.json', 'index.m3u8.tmp', 'seg1.ts%00.m3u8', '%2e%2e']) {
    const res = await fetch(`${gw.baseUrl}/streams/a/main/${token}/${path}`);
    t.ok([400, 404].includes(res.status), `${path} → ${res.status}`);
  }
  const traversal = await fetch(`${gw.baseUrl}/streams/a/main/${token}/../../../api/sources`);
  t.ok([400, 401, 404].includes(traversal.status), 'a dot-dot path never reaches a file');
  t.equal((await gw.ffmpegPids()).length, 0, 'no request above started a pull');

  t.comment('an operator outside the camera department gets no stream URL');
  const dept = await gw.api('POST', '/api/departments', { token: gw.adminToken, body: { id: 'other', name: 'Other', parentId: 'root', level: 'city' } });
  t.equal(dept.status, 201);
  const outsider = await gw.userToken('outsider', ['operator'], ['other']);
  const denied = await gw.api('POST', '/api/streams/a/view', { token: outsider });
  t.equal(denied.status, 404);
  const auditor = await gw.userToken('auditor1', ['auditor'], ['root']);
  t.equal((await gw.api('POST', '/api/streams/a/view', { token: auditor })).status, 403, 'an auditor watches nothing');
  t.match(gw.logs.join('\n'), /\/streams\/a\/main\/\*\*\*/, 'the request log drops the token');
  t.notOk(gw.logs.join('\n').includes(token), 'the token itself is not logged');
});

t.test('a viewer who leaves while the stream starts holds nothing', async (t) => {
  const gw = await startStreamingGateway(t);
  await gw.addCamera('slow', { clip: 'h264-720p-2s' });
  const urls = await gw.view('slow');
  const ac = new AbortController();
  const http = fetch(urls.flv, { signal: ac.signal }).catch(() => null);
  const ws = new WebSocket((await gw.view('slow')).wsFlv);
  ws.on('error', () => {});
  await waitFor(() => gw.streams.stats().readers, (n) => n === 2, 3_000);
  ac.abort();
  ws.terminate();
  await http;
  const state = await waitFor(() => gw.streams.list()[0]?.state, (s) => s === 'lingering', 8_000);
  t.equal(state, 'lingering', 'once live, the session finds no reader left and lingers');
  t.equal(gw.streams.stats().readers, 0);
});

t.test('WS-FLV answers the handshake before the camera is live; a camera that cannot start closes it with the reason', async (t) => {
  // A browser opens one WebSocket to a host at a time (RFC 6455 4.1): a handshake held through a cold
  // start would hold every other tile of a wall screen behind it.
  const gw = await startStreamingGateway(t, { startTimeoutMs: 3_000 });
  await gw.addCamera('cold', { clip: 'h264-720p-1s' });
  await gw.addCamera('mute', { clip: 'h264-720p-1s' });
  gw.sim.setFault('mute', { kind: 'stall' });
  const cold = new WebSocket((await gw.view('cold')).wsFlv);
  const mute = new WebSocket((await gw.view('mute')).wsFlv);
  const closed = new Promise<{ code: number; reason: string }>((resolve) => mute.on('close', (code, reason) => resolve({ code, reason: String(reason) })));
  const picture = firstPicture(cold);
  await Promise.all([cold, mute].map((ws) => new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject))));
  t.same(gw.streams.list().map((s) => s.state), ['starting', 'starting'], 'both handshakes are answered while their cameras start');
  t.ok((await picture).keyframe, 'the live camera then sends its first picture, a keyframe');
  t.same(await closed, { code: 1011, reason: 'GW_ERR_STREAM_TIMEOUT' }, 'the camera that sends nothing closes its WebSocket with why, after streams.startTimeoutMs');
  cold.close();
  t.equal(await waitFor(() => gw.streams.stats().readers, (n) => n === 0, 5_000), 0, 'neither holds a reader any more');
});

t.test("the first FLV viewer of a session watched only over HLS starts on the session's cached keyframe", async (t) => {
  const gw = await startStreamingGateway(t);
  await gw.addCamera('atrium', { clip: 'h264-720p-2s' });
  const hls = await gw.view('atrium');
  t.equal((await fetch(hls.hls)).status, 200, 'live over HLS');
  // Land mid-GOP: without the cache a 2 s GOP would make the viewer start on a P-frame or wait.
  await new Promise((r) => setTimeout(r, 700));
  const ws = new WebSocket((await gw.view('atrium')).wsFlv);
  const first = await firstPicture(ws);
  t.ok(first.keyframe, 'first picture is a keyframe');
  t.ok(first.ms < 1_000, `within ${first.ms} ms, not a GOP later`);
  ws.close();
});

t.test('the camera host is checked again when a pull starts, and the pull goes to the address checked', async (t) => {
  let answer = ['127.0.0.1'];
  const gw = await startStreamingGateway(t, {}, { resolver: async () => answer });
  await ensureClip('h264-720p-1s');
  gw.sim.addCamera('lobby', { clip: 'h264-720p-1s' });
  const url = gw.sim.url('lobby').replace('127.0.0.1', 'cam.example');
  const created = await gw.api('POST', '/api/sources', { token: gw.adminToken, body: { id: 'lobby', name: 'Lobby', departmentId: 'root', url } });
  t.equal(created.status, 201, 'registered while the name resolves to an allowed address');
  // cam.example resolves nowhere outside this test: the pull works only if ffmpeg got the checked address.
  t.equal(await decodeFrames((await gw.view('lobby')).flv, 5), 5, 'ffmpeg pulls from the address the name resolved to');
  const [session] = gw.streams.list();
  await gw.streams.stop(session!.id, 'test');

  answer = ['169.254.169.254'];
  const res = await fetch((await gw.view('lobby')).hls);
  t.equal(res.status, 403, 'the name now points at a denied network (DNS rebinding)');
  t.match(await res.json(), { code: 'GW_ERR_FORBIDDEN', message: /address is not allowed/ });
  t.same(await gw.ffmpegPids(), [], 'no pull was started');
});

import type { Page } from 'playwright-core';
import type { Test } from 'tap';
import { setTimeout as sleep } from 'node:timers/promises';
import t from 'tap';
import { launchBrowser, signIn, startPlayerGateway, tiles, waitForTiles, type TileSample } from '../helpers/browser.js';
import { ensureClip } from '../../scripts/sim/clips.js';
import { waitFor, type StreamingGateway } from '../helpers/streams.js';

/**
 * The wall screen in a real Chromium against a real gateway, real ffmpeg and simulated cameras:
 * what an operator standing in front of the wall would see.
 */

const NINE = Array.from({ length: 9 }, (_, i) => `cam-${i + 1}`);

// Six browser tests with real video: more than the suite's two minutes per file.
t.setTimeout(360_000);

async function nineTileWall(gw: StreamingGateway, wallId: string) {
  // Encoded on first use in a fresh clone: before any start timeout runs, not during one.
  await ensureClip('h264-360p-1s');
  for (const id of NINE) {
    // Each camera has a sub-stream: a 640-px tile of a 3×3 grid must play it, not the main stream.
    gw.sim.addCamera(`${id}-sub`, { clip: 'h264-360p-1s' });
    await gw.addCamera(id, { clip: 'h264-720p-1s' }, { subUrl: gw.sim.url(`${id}-sub`, true) });
  }
  const created = await gw.api('POST', '/api/walls', {
    token: gw.adminToken,
    body: { id: wallId, name: 'Hall', departmentId: 'root', screens: { rows: 1, cols: 1, width: 1920, height: 1080 }, layout: '9' },
  });
  if (created.status !== 201) throw new Error(`wall: ${created.body}`);
  let version = created.json.wall.version as number;
  for (const [i, cameraId] of NINE.entries()) {
    const res = await gw.api('PUT', `/api/walls/${wallId}/tiles/s1-${i + 1}`, { token: gw.adminToken, body: { baseVersion: version, content: { kind: 'camera', cameraId } } });
    if (res.status !== 200) throw new Error(`assign: ${res.body}`);
    version = res.json.version;
  }
}

/** Every tile live over `transport` with a picture, and each one's video moving between two samples. */
async function assertAllAdvance(t: Test, page: Page, transport: string, timeoutMs: number) {
  const live = await waitForTiles(page, (ts) => ts.length === 9 && ts.every((x) => x.state === 'live' && x.currentTime > 0 && x.frames > 0), timeoutMs, 250);
  t.equal(live.length, 9, 'nine tiles on the screen');
  t.same(
    live.filter((x) => x.state !== 'live').map((x) => `${x.tile}: ${x.state} ${x.badge}`),
    [],
    'every tile is live',
  );
  t.same([...new Set(live.map((x) => x.transport))], [transport], `every tile plays over ${transport}`);
  await sleep(2_000);
  const later = await tiles(page);
  const stuck = later.filter((x) => {
    const before = live.find((b) => b.tile === x.tile) as TileSample;
    return !(x.currentTime > before.currentTime + 1 && x.frames > before.frames + 20);
  });
  t.same(
    stuck.map((x) => x.tile),
    [],
    `every tile's video advances over 2 s (currentTime +${Math.min(...later.map((x, i) => x.currentTime - live[i]!.currentTime)).toFixed(2)} s at least, decoded frames +${Math.min(...later.map((x, i) => x.frames - live[i]!.frames))} at least)`,
  );
  t.ok(later.every((x) => x.width === 640), 'frames are the sub-streams’ 640 px');
  t.ok(later.every((x) => /Camera cam-\d/.test(x.label)), 'each tile is labelled with its camera');
}

t.test('a 3×3 wall screen plays every camera over WebRTC, each tile labelled and moving', async (t) => {
  const gw = await startPlayerGateway(t);
  await nineTileWall(gw, 'hall');
  await gw.userToken('op', ['operator'], ['root']);
  const browser = await launchBrowser(t, 'wall-webrtc');
  const page = await browser.page('screen');
  await signIn(page, gw.baseUrl, 'op', '/wall.html?wall=hall&screen=1');
  await assertAllAdvance(t, page, 'webrtc', 30_000);
  t.equal(gw.webrtc.peerCount, 9, 'nine WebRTC peers on the gateway');
  t.equal(gw.streams.list().length, 9, 'one pull per camera');
  t.same([...new Set(gw.streams.list().map((s) => s.profile))], ['sub'], 'every pull is the sub-stream, as small tiles should play');
  t.same([...new Set((await tiles(page)).map((x) => x.profile))], ['sub'], 'and the tiles say so');

  t.comment('the screen is closed: its players go, and so do the pulls');
  await page.close();
  t.equal(await waitFor(() => gw.webrtc.peerCount, (n) => n === 0, 10_000), 0, 'no WebRTC peer is left');
  t.equal(await waitFor(() => gw.streams.list().length, (n) => n === 0, 10_000), 0, 'no pull is left');
  t.same(await waitFor(() => gw.ffmpegPids(), (p) => p.length === 0, 5_000), [], 'no ffmpeg is left');
});

t.test('with WebRTC off the screen falls back: to HLS, and to WS-FLV by default', async (t) => {
  // Nine cold starts at once on a busy CI machine can take longer than the suite's quick 6 s start
  // timeout; this test is about the player's order, so the engine gets its production patience.
  const gw = await startPlayerGateway(t, { webrtc: { enabled: false }, startTimeoutMs: 15_000 });
  await nineTileWall(gw, 'hall');
  await gw.userToken('op', ['operator'], ['root']);
  const browser = await launchBrowser(t, 'wall-hls');
  const page = await browser.page('screen');
  // A screen whose network passes no WebRTC and no WebSocket media: WebRTC is tried and refused, HLS plays.
  await signIn(page, gw.baseUrl, 'op', '/wall.html?wall=hall&screen=1&transports=webrtc,hls');
  await assertAllAdvance(t, page, 'hls', 45_000);
  await page.close();
  // The next screen tests the player's order, not a viewer arriving while the engine closes a pull.
  await waitFor(() => gw.streams.list().length, (n) => n === 0, 15_000);

  const flv = await browser.page('flv-screen', { width: 1280, height: 720 });
  await signIn(flv, gw.baseUrl, 'op', '/wall.html?wall=hall&screen=1');
  const opened = Date.now();
  const live = await waitForTiles(flv, (ts) => ts.length === 9 && ts.every((x) => x.state === 'live'), 30_000, 250);
  const transports = live.map((x) => x.transport);
  t.ok(live.every((x) => x.state === 'live'), `every tile plays, ${Date.now() - opened} ms after the screen opened`);
  // Nine cold starts at once: the gateway answers each WS-FLV handshake before its camera is live,
  // or the browser's one-handshake-at-a-time rule would push the last tiles past their FLV deadline.
  t.same(transports, Array(9).fill('flv'), `the default order falls back from WebRTC to WS-FLV, on every tile (${transports.join(', ')})`);
});

async function wallOf(gw: StreamingGateway, wallId: string, departmentId: string, layout: string, cameras: string[]) {
  const created = await gw.api('POST', '/api/walls', {
    token: gw.adminToken,
    body: { id: wallId, name: wallId, departmentId, screens: { rows: 1, cols: 1, width: 1920, height: 1080 }, layout },
  });
  if (created.status !== 201) throw new Error(`wall: ${created.body}`);
  let version = created.json.wall.version as number;
  for (const [i, cameraId] of cameras.entries()) {
    const res = await gw.api('PUT', `/api/walls/${wallId}/tiles/s1-${i + 1}`, { token: gw.adminToken, body: { baseVersion: version, content: { kind: 'camera', cameraId } } });
    if (res.status !== 200) throw new Error(`assign: ${res.body}`);
    version = res.json.version;
  }
  return version;
}

const tileOf = (ts: TileSample[], id: string) => ts.find((x) => x.tile === id);

t.test('a tile whose camera drops says so, keeps its neighbours playing, and comes back by itself', async (t) => {
  const gw = await startPlayerGateway(t);
  await gw.addCamera('steady', { clip: 'h264-720p-1s' });
  await gw.addCamera('flaky', { clip: 'h264-720p-1s' });
  await wallOf(gw, 'hall', 'root', '4', ['steady', 'flaky']);
  await gw.userToken('op', ['operator'], ['root']);
  const browser = await launchBrowser(t, 'wall-drop');
  const page = await browser.page('screen');
  await signIn(page, gw.baseUrl, 'op', '/wall.html?wall=hall&screen=1');
  await waitForTiles(page, (ts) => tileOf(ts, 's1-1')?.state === 'live' && tileOf(ts, 's1-2')?.state === 'live', 30_000);

  const dropped = Date.now();
  gw.sim.setFault('flaky', { kind: 'drop', forMs: 8_000 });
  const down = await waitForTiles(page, (ts) => ['retrying', 'offline'].includes(tileOf(ts, 's1-2')?.state ?? ''), 15_000);
  const flaky = tileOf(down, 's1-2')!;
  t.match(flaky.state, /^(retrying|offline)$/, `the tile shows the camera down ${Date.now() - dropped} ms after it dropped`);
  t.match(flaky.badge, /\d+ 秒后重试（.+）|离线：.+/, `with a countdown and the reason, in the default language (Chinese): "${flaky.badge}"`);
  t.match(flaky.label, /Camera flaky/, 'and still names the camera');
  const steadyBefore = tileOf(down, 's1-1')!;
  await sleep(1_000);
  const steadyAfter = tileOf(await tiles(page), 's1-1')!;
  t.equal(steadyAfter.state, 'live', 'the neighbouring tile stays live');
  t.ok(steadyAfter.currentTime > steadyBefore.currentTime + 0.5, 'and its video keeps moving');

  const back = await waitForTiles(page, (ts) => tileOf(ts, 's1-2')?.state === 'live' && tileOf(ts, 's1-2')!.badge === '', 40_000, 250);
  t.equal(tileOf(back, 's1-2')?.state, 'live', `the tile is live again ${Date.now() - dropped} ms after the drop (the camera refused for 8 s)`);
  const first = tileOf(back, 's1-2')!;
  await sleep(1_500);
  const later = tileOf(await tiles(page), 's1-2')!;
  t.ok(later.currentTime > first.currentTime + 0.5 && later.frames > first.frames, 'its video moves again, without anyone touching the screen');
});

t.test('a wall tile showing a camera outside the viewer’s departments says so and plays nothing', async (t) => {
  const gw = await startPlayerGateway(t);
  for (const d of [
    { id: 'countyA', name: 'County A', parentId: 'root', level: 'county' },
    { id: 'countyB', name: 'County B', parentId: 'root', level: 'county' },
  ]) {
    const res = await gw.api('POST', '/api/departments', { token: gw.adminToken, body: d });
    if (res.status !== 201) throw new Error(res.body);
  }
  await gw.addCamera('mine', { clip: 'h264-720p-1s' }, { departmentId: 'countyA' });
  await gw.addCamera('theirs', { clip: 'h264-720p-1s' }, { departmentId: 'countyB' });
  // The city's operators put County B's camera on County A's wall; County A's own operator watches it.
  await wallOf(gw, 'county-a-wall', 'countyA', '4', ['mine', 'theirs']);
  await gw.userToken('op-a', ['operator'], ['countyA']);
  const browser = await launchBrowser(t, 'wall-scope');
  const page = await browser.page('screen');
  await signIn(page, gw.baseUrl, 'op-a', '/wall.html?wall=county-a-wall&screen=1');
  const ts = await waitForTiles(page, (x) => tileOf(x, 's1-1')?.state === 'live' && tileOf(x, 's1-2')?.state === 'denied', 30_000);
  t.equal(tileOf(ts, 's1-1')?.state, 'live', 'the own camera plays');
  t.match(tileOf(ts, 's1-1')?.label ?? '', /Camera mine\s*County A/, 'labelled with its name and department');
  t.equal(tileOf(ts, 's1-2')?.state, 'denied', 'the foreign camera is refused');
  t.match(tileOf(ts, 's1-2')?.badge ?? '', /无权查看该摄像机/, 'and the tile says why (in the default language, Chinese)');
  t.equal(tileOf(ts, 's1-2')?.frames, 0, 'it shows no picture');
  t.same(
    gw.streams.list().map((s) => s.cameraId),
    ['mine'],
    'the gateway pulls only the camera the viewer may see',
  );
});

/** What the browser does when the window is minimised or another tab covers it. */
const setVisibility = (state: 'hidden' | 'visible') => `(() => {
  Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => '${state}' });
  Object.defineProperty(document, 'hidden', { configurable: true, get: () => ${state === 'hidden'} });
  document.dispatchEvent(new Event('visibilitychange'));
})()`;

t.test('a hidden screen lets its streams go after a grace, and plays again when shown', async (t) => {
  const gw = await startPlayerGateway(t);
  await gw.addCamera('lobby', { clip: 'h264-720p-1s' });
  await wallOf(gw, 'hall', 'root', '1', ['lobby']);
  await gw.userToken('op', ['operator'], ['root']);
  const browser = await launchBrowser(t, 'wall-hidden');
  const page = await browser.page('screen');
  await signIn(page, gw.baseUrl, 'op', '/wall.html?wall=hall&screen=1');
  await waitForTiles(page, (ts) => ts[0]?.state === 'live', 30_000);

  await page.evaluate(setVisibility('hidden'));
  const hiddenAt = Date.now();
  await sleep(2_000);
  t.equal((await tiles(page))[0]?.state, 'live', 'a quick look away keeps the stream');
  const paused = await waitForTiles(page, (ts) => ts[0]?.state === 'paused', 10_000);
  t.equal(paused[0]?.state, 'paused', `paused ${Date.now() - hiddenAt} ms after the page was hidden`);
  t.equal(await waitFor(() => gw.webrtc.peerCount, (n) => n === 0, 10_000), 0, 'its WebRTC peer is released');
  t.equal(await waitFor(() => gw.streams.list().length, (n) => n === 0, 10_000), 0, 'so the gateway stops pulling the camera');

  await page.evaluate(setVisibility('visible'));
  const shown = Date.now();
  const back = await waitForTiles(page, (ts) => ts[0]?.state === 'live', 20_000);
  t.equal(back[0]?.state, 'live', `live again ${Date.now() - shown} ms after the page was shown`);
});

t.test('a screen whose WebRTC negotiates but never gets a picture falls back to HLS', async (t) => {
  // The gateway announces an address nobody can reach (TEST-NET-1): the offer is answered, the
  // browser attaches the track, and no packet ever arrives, as behind a firewall that drops UDP.
  const gw = await startPlayerGateway(t, { webrtc: { announcedAddresses: ['192.0.2.1'] } });
  await gw.addCamera('lobby', { clip: 'h264-720p-1s' });
  await wallOf(gw, 'hall', 'root', '1', ['lobby']);
  await gw.userToken('op', ['operator'], ['root']);
  const browser = await launchBrowser(t, 'wall-no-media');
  const page = await browser.page('screen');
  const started = Date.now();
  await signIn(page, gw.baseUrl, 'op', '/wall.html?wall=hall&screen=1&transports=webrtc,hls');
  const live = await waitForTiles(page, (ts) => ts[0]?.state === 'live', 40_000, 250);
  t.equal(live[0]?.state, 'live', `the tile plays ${Date.now() - started} ms after the page opened`);
  t.equal(live[0]?.transport, 'hls', 'over HLS, after WebRTC gave no picture');
  const before = live[0]!;
  await sleep(1_500);
  const after = (await tiles(page))[0]!;
  t.ok(after.frames > before.frames + 10 && after.currentTime > before.currentTime + 0.5, 'and its video advances');
});

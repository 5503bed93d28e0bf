import { setTimeout as sleep } from 'node:timers/promises';
import t from 'tap';
import { launchBrowser, signIn, startPlayerGateway, tiles, waitForTiles } from '../helpers/browser.js';

/**
 * A wall screen runs for months: a tour that changes its tiles every few seconds must not grow the
 * page. Minutes of rotation here, with the JS heap measured after forced garbage collections.
 */

const SOAK_MS = Number(process.env.WALLGATE_SOAK_MS ?? 150_000);
// Longer than the suite's two minutes per file: the soak itself takes three.
t.setTimeout(SOAK_MS + 120_000);
const DWELL_SEC = 5;
const LIVE_WITHIN_MS = 3_500;

t.test('a tour rotating four tiles for minutes: every step plays, and the page’s heap and players stay bounded', async (t) => {
  const gw = await startPlayerGateway(t);
  const cameras = Array.from({ length: 8 }, (_, i) => `tour-${i + 1}`);
  // Small streams: the test is about the page's memory over many rotations, not about decoding
  // power, and it shares two cores with the other browser tests.
  for (const id of cameras) await gw.addCamera(id, { clip: 'h264-360p-1s' });
  const created = await gw.api('POST', '/api/walls', {
    token: gw.adminToken,
    body: { id: 'hall', name: 'Hall', departmentId: 'root', screens: { rows: 1, cols: 1, width: 1920, height: 1080 }, layout: '4' },
  });
  t.equal(created.status, 201, 'wall created');
  const tileIds = ['s1-1', 's1-2', 's1-3', 's1-4'];
  const tour = await gw.api('POST', '/api/walls/hall/tours', {
    token: gw.adminToken,
    body: { baseVersion: created.json.wall.version, name: 'Patrol', tileIds, cameras, dwellSec: DWELL_SEC },
  });
  t.equal(tour.status, 201, 'tour started');
  await gw.userToken('op', ['operator'], ['root']);

  const browser = await launchBrowser(t, 'wall-soak');
  const page = await browser.page('screen');
  await signIn(page, gw.baseUrl, 'op', '/wall.html?wall=hall&screen=1');
  const cdp = await page.context().newCDPSession(page);
  const heapMb = async () => {
    // Two passes: the first finalises what the second frees.
    await cdp.send('HeapProfiler.collectGarbage');
    await cdp.send('HeapProfiler.collectGarbage');
    const { usedSize } = await cdp.send('Runtime.getHeapUsage');
    return usedSize / 1024 / 1024;
  };
  await waitForTiles(page, (ts) => ts.length === 4 && ts.every((x) => x.state === 'live'), 30_000);
  // The first rotations load the players' code (hls.js and mpegts.js stay unloaded: WebRTC plays).
  await sleep(2 * DWELL_SEC * 1000);
  const baseline = await heapMb();
  t.comment(`heap after warm-up: ${baseline.toFixed(2)} MB`);

  const seen = new Map<string, Set<string>>(tileIds.map((id) => [id, new Set()]));
  let steps = 0;
  const changedAt = new Map<string, { camera: string; at: number }>();
  const lateSamples: string[] = [];
  let maxVideos = 0;
  let maxPeers = 0;
  const samples: number[] = [];
  const started = Date.now();
  let lastCamera = '';
  while (Date.now() - started < SOAK_MS) {
    await sleep(1_000);
    const ts = await tiles(page);
    maxVideos = Math.max(maxVideos, await page.evaluate<number>('document.querySelectorAll("video").length'));
    maxPeers = Math.max(maxPeers, gw.webrtc.peerCount);
    for (const x of ts) {
      seen.get(x.tile)?.add(x.camera);
      const last = changedAt.get(x.tile);
      if (last?.camera !== x.camera) changedAt.set(x.tile, { camera: x.camera, at: Date.now() });
      // The tour pre-warms the next cameras: a tile that changed must be playing within a few seconds.
      else if (Date.now() - last.at > LIVE_WITHIN_MS && x.state !== 'live') lateSamples.push(`${x.tile} ${x.camera} ${x.state} ${x.badge}`);
    }
    const first = ts.find((x) => x.tile === 's1-1');
    if (first && first.camera !== lastCamera) {
      steps++;
      lastCamera = first.camera;
    }
    if (samples.length < Math.floor((Date.now() - started) / 30_000)) samples.push(await heapMb());
  }
  const end = await heapMb();
  t.comment(`heap every 30 s: ${samples.map((s) => s.toFixed(2)).join(', ')} MB; at the end ${end.toFixed(2)} MB after ${steps} rotations`);

  t.ok(steps >= SOAK_MS / 1000 / DWELL_SEC - 3, `the tour rotated the tile ${steps} times in ${SOAK_MS / 1000} s`);
  for (const [id, cams] of seen) t.equal(cams.size, 2, `tile ${id} alternated between its two cameras (${[...cams].join(', ')})`);
  t.same(lateSamples, [], `every tile was live within ${LIVE_WITHIN_MS / 1000} s of each rotation`);
  t.equal(maxVideos, 4, 'never more video elements than tiles');
  t.ok(maxPeers <= 8, `at most two peers per tile at once on the gateway while one replaces the other (saw ${maxPeers})`);
  t.ok(end - baseline < 1, `the JS heap stays bounded (under 1 MB of growth): ${baseline.toFixed(2)} → ${end.toFixed(2)} MB over ${steps} rotations`);
  const final = await tiles(page);
  t.ok(final.every((x) => x.state === 'live' || x.state === 'starting'), 'the tiles still play at the end');
});

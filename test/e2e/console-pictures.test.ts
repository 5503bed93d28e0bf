import type { Page } from 'playwright-core';
import t from 'tap';
import { launchBrowser, signIn, startPlayerGateway, waitForTiles } from '../helpers/browser.js';
import { miniTile, openConsole, resultSelector, searchFor, twoMonitorWall, wallState } from '../helpers/console.js';
import { waitFor } from '../helpers/streams.js';

/**
 * Pictures in the operator console, in a real Chromium against a real gateway, real ffmpeg and
 * simulated cameras: the miniature's live tiles show their current picture (and only live tiles ask
 * for one), and a camera of the search or the department tree shows its picture on hover.
 */

// One gateway, two cameras, a wall screen and a console on a machine other suites share.
t.setTimeout(150_000);

interface Picture {
  src: string;
  width: number;
  height: number;
  /** The picture scaled down to 32×18, RGBA: what the operator sees, decoded. */
  pixels: number[];
}

/**
 * The picture an <img> shows, decoded by the browser and read back through a canvas (a blob: URL is
 * same-origin, so the canvas is readable); null while it shows none. Plain JavaScript text: tsx would
 * compile a function with helpers that do not exist in the page.
 */
const pictureIn = (page: Page, selector: string) =>
  page.evaluate<Picture | null>(`(() => {
    const img = document.querySelector(${JSON.stringify(selector)});
    if (!img || img.hidden || !img.src || !img.complete || !img.naturalWidth) return null;
    const canvas = document.createElement('canvas');
    canvas.width = 32;
    canvas.height = 18;
    const g = canvas.getContext('2d');
    g.drawImage(img, 0, 0, 32, 18);
    return { src: img.src, width: img.naturalWidth, height: img.naturalHeight, pixels: Array.from(g.getImageData(0, 0, 32, 18).data) };
  })()`);

const tilePicture = (page: Page, tileId: string) => pictureIn(page, `.mini-tile[data-tile="${tileId}"] [data-role=tile-picture]`);

/** Mean absolute difference of two pictures' samples, 0..255. */
const difference = (a: Picture, b: Picture) => a.pixels.reduce((sum, v, i) => sum + Math.abs(v - b.pixels[i]!), 0) / a.pixels.length;

t.test("the miniature shows a live tile's picture, which changes while it plays; an idle tile asks for nothing", async (t) => {
  const gw = await startPlayerGateway(t);
  await gw.addCamera('pic-live', { clip: 'h264-720p-1s' });
  await gw.addCamera('pic-idle', { clip: 'h264-720p-1s' });
  await twoMonitorWall(gw, 'hall');
  for (const [tile, cameraId] of [
    ['s1-1', 'pic-live'],
    ['s2-1', 'pic-idle'],
  ] as const) {
    const baseVersion = (await wallState(gw, 'hall')).version;
    const put = await gw.api('PUT', `/api/walls/hall/tiles/${tile}`, { token: gw.adminToken, body: { baseVersion, content: { kind: 'camera', cameraId } } });
    if (put.status !== 200) throw new Error(`tile ${tile}: ${put.body}`);
  }
  await gw.userToken('opA', ['operator'], ['root']);
  const pulled: string[] = [];
  gw.streams.on('session', (s) => pulled.push(s.cameraId));

  const browser = await launchBrowser(t, 'console-pictures');
  const a = await openConsole(browser, gw, 'console-a', 'opA', 'hall', 'en');
  const asked: string[] = [];
  a.on('request', (r) => {
    if (r.url().includes('/snapshot.jpg')) asked.push(r.url());
  });
  t.match((await miniTile(a, 's1-1', () => true))?.text, /Not played yet/, 'before any screen plays the wall, its tiles say they are not played');

  // Only monitor 1 goes on a screen: its tiles play, monitor 2's stay idle.
  const screen = await browser.page('wall-screen');
  await signIn(screen, gw.baseUrl, 'opA', '/wall.html?wall=hall&screen=1');
  await waitForTiles(screen, (ts) => ts.some((x) => x.tile === 's1-1' && x.state === 'live'), 25_000);
  await miniTile(a, 's1-1', (x) => x?.status === 'live', 15_000);
  const first = await waitFor(() => tilePicture(a, 's1-1'), (p) => p !== null, 10_000, 100);
  if (!first) return t.fail('no picture');
  t.match(first.src, /^blob:/, "the live tile shows its picture, from a blob (the fetch carries the operator's bearer token)");
  const requested = Number(new URL(asked[0]!).searchParams.get('width'));
  t.ok([160, 320, 480, 640].includes(requested), `the picture is asked at a width step that fits the tile (${requested} px)`);
  t.same([first.width, first.height], [requested, (requested * 720) / 1280], `and decoded at that width, in the camera's proportions (${first.width}×${first.height})`);

  const badge = await a.evaluate<{ text: string; onTop: boolean }>(`(() => {
    const badge = document.querySelector('.mini-tile[data-tile="s1-1"] [data-role=tile-state]');
    const r = badge.getBoundingClientRect();
    return { text: badge.textContent, onTop: badge.contains(document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2)) };
  })()`);
  t.same(badge, { text: 'Live', onTop: true }, 'the state badge stays over the picture');

  const later = await waitFor(() => tilePicture(a, 's1-1'), (p) => p !== null && p.src !== first.src && difference(p, first) > 1, 12_000, 200);
  t.comment(`picture changed: mean difference ${difference(later!, first).toFixed(1)} of 255 after ${asked.length} requests`);
  t.ok(later && later.src !== first.src && difference(later, first) > 1, 'a few seconds later the tile shows a new picture: another JPEG, other pixels');
  t.notOk(
    asked.some((u) => !new URL(u).searchParams.has('ifLive')),
    `every thumbnail request says ifLive, so none can start a pull (${asked.length} requests)`,
  );

  t.notOk(asked.some((u) => u.includes('/pic-idle/')), "the idle tile's camera was never asked for a picture");
  t.notOk(pulled.includes('pic-idle'), 'nor pulled');
  const streams = await gw.api('GET', '/api/streams', { token: gw.adminToken });
  t.same(
    streams.json.items.map((s: { cameraId: string }) => s.cameraId),
    ['pic-live'],
    'the gateway pulls only the camera the wall screen plays',
  );
  const idle = await miniTile(a, 's2-1', () => true);
  t.match(idle?.text, /Not played yet/, 'the idle tile says it is not played');
  t.equal(await tilePicture(a, 's2-1'), null, 'and shows no picture');

  t.comment('a hidden console asks for nothing, and catches up as soon as it is shown again');
  const visibility = (state: 'hidden' | 'visible') =>
    a.evaluate(`(() => {
      if (${JSON.stringify(state)} === 'hidden') Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => 'hidden' });
      else delete document.visibilityState;
      document.dispatchEvent(new Event('visibilitychange'));
    })()`);
  await visibility('hidden');
  const whileHidden = asked.length;
  await new Promise((r) => setTimeout(r, 4_000));
  t.equal(asked.length, whileHidden, 'no picture is asked for while the page is hidden (over more than one refresh period)');
  await visibility('visible');
  t.ok(await waitFor(async () => asked.length, (n) => n > whileHidden, 1_000, 20), 'shown again, the page asks at once, not a period later');

  t.comment('the wall screen closes: the tile stops being live and its picture goes');
  await screen.close();
  await miniTile(a, 's1-1', (x) => x?.status !== 'live', 15_000);
  t.equal(await waitFor(() => tilePicture(a, 's1-1'), (p) => p === null, 2_000, 100), null, 'the tile no longer live shows no picture');
  const settled = asked.length;
  await new Promise((r) => setTimeout(r, 4_000));
  t.equal(asked.length, settled, 'and the console stops asking for one');
  t.equal(pulled.filter((id) => id === 'pic-live').length, 1, 'the thumbnails never restarted the pull');

  t.comment('hover: an online camera shows its picture, even idle (a short pull); an unchecked one shows nothing');
  t.same(await searchFor(a, 'pic-'), ['pic-idle', 'pic-live'], 'the search lists both cameras');
  // pic-live played, so it is online now; pic-idle was never pulled, so its health is still unknown.
  await a.hover(resultSelector('pic-live'));
  const preview = '[data-role=camera-preview] figure[data-camera="pic-live"]';
  await a.locator(`${preview}[data-picture=shown]`).waitFor({ timeout: 15_000 });
  const hovered = await pictureIn(a, `${preview} img`);
  t.match(hovered?.src, /^blob:/, 'resting on the online camera shows its picture in a popover');
  t.equal(hovered?.width, 320, 'a picture the size of the popover');
  t.equal(await a.locator(`${preview} figcaption`).textContent(), 'Camera pic-live', 'named');
  await a.hover(resultSelector('pic-idle'));
  await a.locator('[data-role=camera-preview]').waitFor({ state: 'hidden', timeout: 2_000 });
  await new Promise((r) => setTimeout(r, 1_000));
  t.ok(await a.locator('[data-role=camera-preview]').isHidden(), 'moving to a camera never checked hides it, and shows none for that one');
  t.notOk(asked.some((u) => u.includes('/pic-idle/')), 'nor asks for its picture');
  t.ok(pulled.filter((id) => id === 'pic-live').length === 2, 'the hover started one short pull of the idle online camera');
  t.same(
    (await waitFor(() => gw.api('GET', '/api/streams', { token: gw.adminToken }), (r) => r.json.items.length === 0, 15_000, 250)).json.items,
    [],
    'which ends by itself',
  );

  t.comment('hover on a department: pictures of its online cameras');
  // The tree counts cameras as they were when the page loaded; pic-live has come online since.
  await a.reload();
  await a.waitForSelector('[data-role=connection][data-state=open]', { timeout: 15_000 });
  await a.hover('[data-dept=root] > .dept-row');
  await a.locator('[data-role=camera-preview] figure[data-camera="pic-live"][data-picture=shown]').waitFor({ timeout: 15_000 });
  t.same(
    await a.locator('[data-role=camera-preview] figure').evaluateAll((els) => els.map((e) => e.getAttribute('data-camera'))),
    ['pic-live'],
    "the department's popover shows its one online camera",
  );
  await a.mouse.move(0, 0);
  await a.locator('[data-role=camera-preview]').waitFor({ state: 'hidden', timeout: 2_000 });
  t.pass('and goes when the pointer leaves');

  t.comment('the keyboard reaches the same pictures');
  await a.focus('[data-role=camera-search]');
  for (let i = 0; i < 8 && !(await a.evaluate<boolean>(`document.activeElement.dataset.camera === 'pic-live'`)); i++) await a.keyboard.press('Tab');
  await a.locator('[data-role=camera-preview] figure[data-camera="pic-live"][data-picture=shown]').waitFor({ timeout: 15_000 });
  t.pass('tabbing to an online camera shows its picture');
  await a.focus('[data-role=camera-search]');
  await a.locator('[data-role=camera-preview]').waitFor({ state: 'hidden', timeout: 2_000 });
  t.pass('and leaving it hides the picture');

  t.comment('a camera that refuses the pull: the popover says why');
  gw.sim.setFault('pic-live', { kind: 'drop', forMs: 60_000 });
  // The department's picture came from a pull that may still linger, and the gateway serves it again
  // for streams.snapshots.cacheMs: the next picture must come from a new pull.
  await waitFor(() => gw.api('GET', '/api/streams', { token: gw.adminToken }), (r) => r.json.items.length === 0, 15_000, 250);
  await new Promise((r) => setTimeout(r, gw.config.streams.snapshots.cacheMs + 500));
  await a.hover(resultSelector('pic-live'));
  const failed = a.locator('[data-role=camera-preview] figure[data-camera="pic-live"][data-picture=failed]');
  await failed.waitFor({ timeout: 20_000 });
  const said = await failed.locator('.preview-status').textContent();
  t.comment(`popover: ${said} (${await failed.getAttribute('data-code')})`);
  t.match(said, /^No picture: \S/, 'the popover shows the reason instead of a picture');
  t.match(await failed.getAttribute('data-code'), /^GW_ERR_/, "the gateway's code for a viewing of that camera");
});

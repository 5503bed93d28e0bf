import t from 'tap';
import { launchBrowser, signIn, startPlayerGateway } from '../helpers/browser.js';
import { waitFor } from '../helpers/streams.js';

/**
 * Every page at a control-room desk (1920×1080) and on a 4K wall or console (3840×2160): it renders
 * without script errors, fits the width (no sideways scrolling), and its text grows with the screen.
 */

const PAGES = ['/console.html?wall=hall', '/regulator.html', '/admin.html#sources', '/admin.html#health', '/admin.html#gb28181', '/wall.html?wall=hall&screen=1'];
const SIZES = [
  { width: 1920, height: 1080, minFontPx: 13, maxFontPx: 15 },
  { width: 3840, height: 2160, minFontPx: 26, maxFontPx: 28 },
];

interface PageShape {
  overflowX: number;
  fontPx: number;
  mainChildren: number;
}

const SHAPE = `(() => ({
  overflowX: document.documentElement.scrollWidth - window.innerWidth,
  fontPx: parseFloat(getComputedStyle(document.documentElement).fontSize),
  mainChildren: (document.querySelector('main') || { childElementCount: 0 }).childElementCount,
}))()`;

t.test('each page fits 1920×1080 and 3840×2160, with text scaled to the screen, and no script error', async (t) => {
  const gw = await startPlayerGateway(t);
  await gw.addCamera('lobby', { clip: 'h264-720p-1s' });
  const wall = await gw.api('POST', '/api/walls', {
    token: gw.adminToken,
    body: { id: 'hall', name: 'Hall', departmentId: 'root', screens: { rows: 1, cols: 2, width: 1920, height: 1080 }, layout: '4' },
  });
  t.equal(wall.status, 201);
  await gw.api('PUT', '/api/walls/hall/tiles/s1-1', { token: gw.adminToken, body: { baseVersion: wall.json.wall.version, content: { kind: 'camera', cameraId: 'lobby' } } });
  // An admin who is also an operator and a regulator sees every page.
  await gw.userToken('chief', ['admin', 'operator', 'regulator'], ['root']);
  // A GB device with a long name and every column filled, and a refused one, so its tables have rows to lay out.
  await gw.api('POST', '/api/gb28181/devices', { token: gw.adminToken, body: { id: '34020000001320000001', name: '东门广场高点全景摄像机（长江路与黄河路交叉口）', departmentId: 'root', password: 'pass1234' } });
  await gw.gbDirectory.setInfo('34020000001320000001', { manufacturer: 'Hikvision', model: 'DS-2DE7A432IW-AEB', firmware: 'V5.7.15 build 231120' });
  await gw.gbDirectory.recordRefusal('34020000001320000002', '203.0.113.250:51234', 'unknown');
  const browser = await launchBrowser(t, 'layout');
  for (const size of SIZES) {
    const page = await browser.page(`${size.width}`, { width: size.width, height: size.height });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await signIn(page, gw.baseUrl, 'chief', PAGES[0]!);
    for (const path of PAGES) {
      await page.goto(`${gw.baseUrl}${path}`);
      // Polled from outside: waitForFunction evaluates strings in the page, which its CSP forbids.
      await waitFor(() => page.evaluate<PageShape>(SHAPE).catch(() => null), (s) => (s?.mainChildren ?? 0) > 0, 15_000);
      await page.waitForTimeout(500);
      const shape = await page.evaluate<PageShape>(SHAPE);
      t.ok(shape.overflowX <= 0, `${path} at ${size.width}×${size.height} fits the width (overflow ${shape.overflowX} px)`);
      t.ok(shape.fontPx >= size.minFontPx && shape.fontPx <= size.maxFontPx, `${path}: root text ${shape.fontPx} px at ${size.width} wide`);
    }
    t.same(errors, [], `no script error on any page at ${size.width}×${size.height}`);
  }
});

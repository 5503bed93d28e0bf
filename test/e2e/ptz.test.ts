import t from 'tap';
import { launchBrowser, signIn, startPlayerGateway } from '../helpers/browser.js';
import { camera } from '../helpers/gateway.js';
import { openConsole, tileSelector, twoMonitorWall } from '../helpers/console.js';
import { gbChannel, RecordingPtzSender } from '../helpers/ptz.js';
import { waitFor } from '../helpers/streams.js';

/**
 * The PTZ pad in a real Chromium: the console's selected tile and the pop-out, against a gateway
 * whose PTZ sender records what it is given (BuildOptions.ptzSender, where the GB service's
 * DeviceControl goes). The simulator device's end-to-end run belongs to the GB service's tests.
 */

t.setTimeout(180_000);

const GB = '34020000001310000001';
// Up at the pad's default speed 128: B5 + 08 + 80 = 0x13D.
const UP = 'A50F01080080003D';
const STOP = 'A50F0100000000B5';

t.test("holding the pad's up moves the camera, releasing stops it; a camera that is not GB gets no pad", async (t) => {
  const sender = new RecordingPtzSender();
  // A short lease, so a button held past it shows the pad repeating the move.
  const gw = await startPlayerGateway(t, {}, { gb28181: { ptz: { leaseMs: 1_000 } } }, { ptzSender: sender });
  await gbChannel(gw, GB, 'root');
  const rtsp = await gw.api('POST', '/api/sources', { token: gw.adminToken, body: camera('rtsp-1', 'root') });
  if (rtsp.status !== 201) throw new Error(rtsp.body);
  await twoMonitorWall(gw, 'hall');
  for (const [tileId, cameraId] of [['s1-1', GB], ['s1-2', 'rtsp-1']] as const) {
    const version = (await gw.api('GET', '/api/walls/hall', { token: gw.adminToken })).json.wall.version;
    const res = await gw.api('PUT', `/api/walls/hall/tiles/${tileId}`, { token: gw.adminToken, body: { baseVersion: version, content: { kind: 'camera', cameraId } } });
    if (res.status !== 200) throw new Error(res.body);
  }
  await gw.userToken('opA', ['operator'], ['root']);
  const browser = await launchBrowser(t, 'ptz');
  const page = await openConsole(browser, gw, 'console', 'opA', 'hall', 'en');

  await page.click(tileSelector('s1-1'));
  const pad = page.locator(`[data-role=ptz-pad][data-camera="${GB}"]`);
  await pad.waitFor({ state: 'visible', timeout: 10_000 });
  const up = pad.locator('[data-ptz=up]');
  await up.hover();
  await page.mouse.down();
  const moved = await waitFor(() => sender.sent.map((s) => s.hex), (hexes) => hexes.length >= 1, 5_000);
  t.equal(moved[0], UP, 'pressing up sent a move up');
  t.equal(sender.sent[0]!.cameraId, GB, 'to the selected tile\'s camera');
  // The command reaches the camera before its answer reaches the page: the holder shows once the answer is in.
  const holder = await waitFor(() => pad.getAttribute('data-holder'), (h) => h === 'opA', 5_000, 20, 'the pad to show who holds the camera');
  t.equal(holder, 'opA', 'the pad shows the operator holds the camera');
  await page.mouse.up();
  const stopped = await waitFor(() => sender.sent.map((s) => s.hex), (hexes) => hexes.at(-1) === STOP, 5_000);
  t.same(new Set(stopped.slice(0, -1)), new Set([UP]), 'releasing sent the stop, after the move (repeated while held)');

  // The RTSP camera's tile: the pad asks the gateway, which says it cannot be steered, and stays hidden.
  const answered = page.waitForResponse((r) => r.url().endsWith('/api/cameras/rtsp-1/ptz'));
  await page.click(tileSelector('s1-2'));
  t.match(await (await answered).json(), { supported: false });
  t.equal(await page.locator('[data-role=ptz-pad]:visible').count(), 0, 'no pad for a camera that is not a GB/T 28181 channel');
  t.equal(await pad.count(), 0, "and the GB camera's pad went with its selection");

  // The pop-out of the GB camera has the pad too; zoom in held and released.
  const popout = await browser.page('popout');
  await signIn(popout, gw.baseUrl, 'opA', `/popout.html?camera=${GB}`);
  const popPad = popout.locator(`[data-role=ptz-pad][data-camera="${GB}"]`);
  await popPad.waitFor({ state: 'visible', timeout: 10_000 });
  const before = sender.sent.length;
  await popPad.locator('[data-ptz=zoom-in]').hover();
  await popout.mouse.down();
  // Held past the 1 s lease on purpose.
  await new Promise((r) => setTimeout(r, 1_800));
  await popout.mouse.up();
  const zoomed = await waitFor(() => sender.sent.slice(before).map((s) => s.hex), (hexes) => hexes.at(-1) === STOP, 5_000);
  t.match(zoomed[0], /^A50F0110000080/, 'the pop-out zooms in (zoom speed 8 in byte 7)');
  t.ok(zoomed.length >= 4, `held 1.8 s with a 1 s lease, the zoom was repeated ${zoomed.length - 2} times, so the gateway did not stop the camera under the finger`);
  t.same(new Set(zoomed.slice(0, -1)), new Set([zoomed[0]]), 'nothing but the zoom until the release, and then the stop');
});

t.test('another operator sees the pad disabled with who holds it; a supervisor takes over', async (t) => {
  const sender = new RecordingPtzSender();
  const gw = await startPlayerGateway(t, {}, { gb28181: { ptz: { leaseMs: 60_000 } } }, { ptzSender: sender });
  await gbChannel(gw, GB, 'root');
  const holder = await gw.userToken('opA', ['operator'], ['root']);
  await gw.userToken('opB', ['operator'], ['root']);
  await gw.userToken('boss', ['supervisor'], ['root']);
  const held = await gw.api('POST', `/api/cameras/${GB}/ptz`, { token: holder, body: { action: 'stop' } });
  if (held.status !== 200) throw new Error(held.body);
  const browser = await launchBrowser(t, 'ptz-lease');

  const op = await browser.page('opB');
  await op.addInitScript(`localStorage.setItem('wallgate.language', 'en')`);
  await signIn(op, gw.baseUrl, 'opB', `/popout.html?camera=${GB}`);
  const pad = op.locator('[data-role=ptz-pad]');
  await pad.waitFor({ state: 'visible', timeout: 10_000 });
  t.equal(await pad.locator('[data-ptz=up]').isDisabled(), true, 'the controls are disabled');
  t.match(await pad.locator('[data-role=ptz-status]').textContent(), /opA controls this camera/);
  t.equal(await pad.locator('[data-ptz=takeover]').isVisible(), false, 'an operator is not offered a takeover');

  const boss = await browser.page('boss');
  await signIn(boss, gw.baseUrl, 'boss', `/popout.html?camera=${GB}`);
  const bossPad = boss.locator('[data-role=ptz-pad]');
  await bossPad.waitFor({ state: 'visible', timeout: 10_000 });
  await bossPad.locator('[data-ptz=takeover]').click();
  await waitFor(() => bossPad.getAttribute('data-holder'), (h) => h === 'boss', 5_000);
  t.equal(await bossPad.locator('[data-ptz=up]').isDisabled(), false, 'the supervisor now steers');
  t.equal(sender.sent.length, 2, 'the takeover sent a stop');
  const auditor = await gw.userToken('aud', ['auditor'], ['root']);
  t.match((await gw.api('GET', '/api/audit?action=ptz.takeover', { token: auditor })).json.items, [{ actor: 'boss', target: GB, detail: { from: 'opA' } }]);
});

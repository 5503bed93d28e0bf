import t from 'tap';
import { smallTree } from '../helpers/gateway.js';
import { closedPort } from '../helpers/streams.js';
import { launchBrowser, signIn, startPlayerGateway, waitForTiles } from '../helpers/browser.js';

/**
 * The gateway sends codes and parameters; the page words them in its language. A tile whose camera
 * cannot be reached and a field the gateway refuses read in Chinese (the default), then in English
 * once the page is switched.
 */

t.setTimeout(180_000);

t.test('a tile’s failure and a refused field read in Chinese, and in English when switched', async (t) => {
  const gw = await startPlayerGateway(t);
  await smallTree(gw);
  const port = await closedPort();
  const cam = await gw.api('POST', '/api/sources', { token: gw.adminToken, body: { id: 'gone', name: 'Gone', departmentId: 'root', url: `rtsp://127.0.0.1:${port}/live`, codec: 'h264' } });
  t.equal(cam.status, 201, 'a camera nobody answers for');
  const wall = await gw.api('POST', '/api/walls', {
    token: gw.adminToken,
    body: { id: 'hall', name: 'Hall', departmentId: 'root', screens: { rows: 1, cols: 1, width: 1280, height: 720 }, layout: '1' },
  });
  const assigned = await gw.api('PUT', '/api/walls/hall/tiles/s1-1', { token: gw.adminToken, body: { baseVersion: wall.json.wall.version, content: { kind: 'camera', cameraId: 'gone' } } });
  t.equal(assigned.status, 200);
  await gw.userToken('chief', ['admin'], ['root']);

  const browser = await launchBrowser(t, 'i18n');
  const screen = await browser.page('screen', { width: 1280, height: 720 });
  await signIn(screen, gw.baseUrl, 'chief', '/wall.html?wall=hall&screen=1');
  const badge = async (want: RegExp) => (await waitForTiles(screen, (ts) => want.test(ts[0]?.badge ?? ''), 30_000, 250))[0]!.badge;
  const zh = await badge(/无法连接摄像机/);
  t.match(zh, /无法连接摄像机（.*Connection refused.*）/, `the tile says why in Chinese, ffmpeg's words as the detail: "${zh}"`);
  t.notMatch(zh, /the camera is unreachable/, 'not the gateway’s English sentence');
  await screen.evaluate(`localStorage.setItem('wallgate.language', 'en')`);
  await screen.reload();
  const en = await badge(/The camera cannot be reached/);
  t.match(en, /The camera cannot be reached \(.*Connection refused.*\)/, `and in English once switched: "${en}"`);

  const admin = await browser.page('admin');
  await signIn(admin, gw.baseUrl, 'chief', '/admin.html');
  const refuse = async () => {
    await admin.goto(`${gw.baseUrl}/admin.html#sources`);
    await admin.click('.section-body[data-section="sources"] button.primary');
    await admin.waitForSelector('#source-form');
    await admin.fill('#source-form-id', 'gate-7');
    await admin.selectOption('#source-form-departmentId', 'townA');
    await admin.fill('#source-form-url', 'file:///etc/passwd');
    await admin.click('#source-form button[type=submit]');
    await admin.waitForSelector('#source-form-url[aria-invalid="true"]', { timeout: 10_000 });
    return { name: await admin.textContent('#source-form-name-error'), url: await admin.textContent('#source-form-url-error') };
  };
  const chinese = await refuse();
  t.equal(chinese.name, '为必填项', 'the empty name is refused in Chinese');
  t.match(chinese.url, /^必须以下列之一开头：rtsp:\/\//, 'the URL too, with the schemes the gateway allows');
  await admin.keyboard.press('Escape');
  await admin.getByRole('button', { name: 'English' }).click();
  await admin.waitForLoadState('load');
  const english = await refuse();
  t.equal(english.name, 'is required', 'in English once switched');
  t.match(english.url, /scheme "file" is not allowed/);
});

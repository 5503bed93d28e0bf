import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { Locator } from 'playwright-core';
import t from 'tap';
import { GatewayError } from '../../gateway/src/errors.js';
import type { Snapshot, SnapshotRequest, Snapshotter } from '../../gateway/src/snapshots/types.js';
import { launchBrowser, signIn } from '../helpers/browser.js';
import { FLEET, fleetVehicle, startRegulatorGateway } from '../helpers/regulator.js';
import { waitFor } from '../helpers/streams.js';

/**
 * The alarm's picture in a real Chromium: the card shows it, the vehicle panel shows it larger, and a
 * picture that could not be taken says why. The pictures come from a snapshotter the test controls
 * (a real JPEG, one colour per camera), so what the page shows can be checked pixel for pixel.
 */

t.setTimeout(120_000);
const run = promisify(execFile);

/** A one-colour JPEG encoded by ffmpeg. */
async function solidJpeg(colour: string, width: number, height: number): Promise<Buffer> {
  const { stdout } = await run('ffmpeg', ['-v', 'error', '-f', 'lavfi', '-i', `color=c=${colour}:s=${width}x${height}`, '-frames:v', '1', '-c:v', 'mjpeg', '-f', 'image2', 'pipe:1'], {
    encoding: 'buffer',
    maxBuffer: 1 << 20,
  });
  return stdout;
}

/** The image an <img> shows: its natural size and the colour at its centre, read back through a canvas. */
const shown = (img: Locator) =>
  img.evaluate((el: HTMLImageElement) => {
    if (!el.complete || el.naturalWidth === 0) return null;
    const c = document.createElement('canvas');
    c.width = el.naturalWidth;
    c.height = el.naturalHeight;
    const g = c.getContext('2d')!;
    g.drawImage(el, 0, 0);
    const [r, gr, b] = g.getImageData(c.width >> 1, c.height >> 1, 1, 1).data;
    return { src: el.src.slice(0, 5), width: el.naturalWidth, height: el.naturalHeight, rgb: [r, gr, b], cssWidth: el.getBoundingClientRect().width };
  });

t.test('the alarm card shows the picture taken when the alarm opened, the vehicle panel shows it larger, and a failure says why', async (t) => {
  const red = await solidJpeg('red', 320, 180);
  const snapshotter: Snapshotter = {
    async take(req: SnapshotRequest): Promise<Snapshot> {
      if (req.cameraId === 'w1-front') throw new GatewayError('GW_ERR_CAMERA_UNREACHABLE', 'camera w1-front: no stream at this path', undefined, { reason: 'noStream' });
      return { cameraId: req.cameraId, profile: req.profile, jpeg: red, width: 320, height: 180, takenAt: Date.now() };
    },
  };
  const gw = await startRegulatorGateway(t, {}, { snapshotter });
  for (const id of ['v1-front', 'w1-front']) {
    const res = await gw.api('POST', '/api/sources', { token: gw.adminToken, body: { id, name: id, departmentId: FLEET, url: 'rtsp://10.2.0.1:554/live' } });
    t.equal(res.status, 201);
  }
  await gw.addVehicle(fleetVehicle('v1', '苏A12345', 'passenger', 'Linjiang Coaches', ['v1-front']));
  await gw.addVehicle(fleetVehicle('w1', '苏A54321', 'passenger', 'Linjiang Coaches', ['w1-front']));
  await gw.userToken('reg1', ['regulator'], [FLEET]);

  const browser = await launchBrowser(t, 'alarm-evidence');
  const page = await browser.page('reg1');
  await signIn(page, gw.baseUrl, 'reg1', '/regulator.html');
  await page.locator('.reg-layout').waitFor();

  const ok = (await gw.alarms([{ vehicleId: 'v1', type: 'collision-warning', severity: 'critical', at: Date.now() }])).raised[0] as string;
  const failed = (await gw.alarms([{ vehicleId: 'w1', type: 'leak', severity: 'high', at: Date.now() }])).raised[0] as string;

  const cardImg = page.locator(`li[data-alarm="${ok}"] figure.alarm-picture[data-state="taken"] img`);
  const onCard = await waitFor(() => shown(cardImg).catch(() => null), (v) => v !== null, 10_000, 100, 'the picture on the alarm card');
  t.match(onCard, { src: 'blob:', width: 320, height: 180 }, 'the card shows the JPEG from a blob URL');
  t.ok(onCard!.rgb[0]! > 200 && onCard!.rgb[1]! < 60 && onCard!.rgb[2]! < 60, `it is the alarm's picture (red: ${onCard!.rgb})`);
  t.match(await page.locator(`li[data-alarm="${ok}"] figure.alarm-picture figcaption`).innerText(), /v1-front/, 'captioned with its camera');

  const failure = page.locator(`li[data-alarm="${failed}"] figure.alarm-picture[data-state="failed"]`);
  await failure.waitFor({ timeout: 10_000 });
  t.equal(await failure.innerText(), 'No picture (The camera has no stream at this path)', 'the card of an alarm without a picture says why, worded from its code and reason');
  t.equal(await failure.locator('figcaption').getAttribute('title'), 'GW_ERR_CAMERA_UNREACHABLE');
  t.equal(await failure.locator('img').isVisible(), false, 'and shows no image');

  await page.locator(`li[data-alarm="${ok}"] .alarm-meta`).click();
  const detailImg = page.locator('.vehicle-detail[data-vehicle="v1"] figure.alarm-picture.large img');
  const inDetail = await waitFor(() => shown(detailImg).catch(() => null), (v) => v !== null, 10_000, 100, 'the picture in the vehicle panel');
  t.match(inDetail, { src: 'blob:', width: 320, height: 180 });
  t.ok(inDetail!.cssWidth > onCard!.cssWidth, `larger there (${Math.round(inDetail!.cssWidth)} px against ${Math.round(onCard!.cssWidth)} px on the card)`);
});

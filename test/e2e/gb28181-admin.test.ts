import t from 'tap';
import { smallTree } from '../helpers/gateway.js';
import { openAdmin, tableRows } from '../helpers/admin.js';
import { startPlayerGateway } from '../helpers/browser.js';
import { waitFor } from '../helpers/streams.js';

/**
 * The GB/T 28181 admin section in a real Chromium against a real gateway: a device that tried to
 * register and was refused is listed; the admin admits it, and from then on it may register.
 */

t.setTimeout(180_000);

const REFUSED = '34020000001320000777';
const PASSWORD = 'Gb-Digest-2026';

t.test('an admin sees a refused device in the list and admits it', async (t) => {
  // The GB service off: the device queries then answer the same way whatever the SIP side does.
  const gw = await startPlayerGateway(t, {}, { player: { language: 'en' }, gb28181: { enabled: false } });
  await smallTree(gw);
  await gw.userToken('chief', ['admin'], ['root']);
  // What the registrar does when an unknown id sends REGISTER (twice: the device retries).
  await gw.gbDirectory.recordRefusal(REFUSED, '203.0.113.9:5060', 'unknown');
  await gw.gbDirectory.recordRefusal(REFUSED, '203.0.113.9:5060', 'unknown');
  t.equal(await gw.gbDirectory.admission(REFUSED), null, 'not admitted yet');

  const page = await openAdmin(t, gw, 'chief', '#gb28181');
  const row = `.gb-refused tr[data-device="${REFUSED}"]`;
  await page.waitForSelector(row, { timeout: 15_000 });
  const [shown] = await tableRows(page, '.gb-refused');
  t.match(shown, [REFUSED, '203.0.113.9:5060', 'Unknown id', /\d/, /\d/, '2', /Admit/], 'id, address, reason, first and last time, attempts, and the admit button');
  t.match((await tableRows(page, '.gb-devices'))[0], [/No GB\/T 28181 device/], 'no device yet');

  await page.click(`${row} button[data-action="admit"]`);
  await page.waitForSelector('#gb-device-form');
  t.equal(await page.inputValue('#gb-device-form-id'), REFUSED, 'the form opens with the refused id filled in');

  t.comment('a password that is too short is refused at its field');
  await page.fill('#gb-device-form-name', 'Harbour NVR');
  await page.selectOption('#gb-device-form-departmentId', 'townA');
  await page.fill('#gb-device-form-password', 'abc');
  await page.click('#gb-device-form button[type=submit]');
  await page.waitForSelector('#gb-device-form-password[aria-invalid="true"]', { timeout: 10_000 });
  t.match(await page.textContent('#gb-device-form-password-error'), /4/, 'the field says what is wrong');

  await page.fill('#gb-device-form-password', PASSWORD);
  await page.click('#gb-device-form button[type=submit]');
  await page.waitForSelector(`.gb-devices tr[data-id="${REFUSED}"]`, { timeout: 10_000 });
  const device = (await tableRows(page, '.gb-devices'))[0]!;
  t.match(device, [REFUSED, 'Harbour NVR', 'Town A', 'Offline', '—', '—', '0', '—', /Device info/], 'the device is listed, offline until it registers');
  await page.waitForSelector(`${row}`, { state: 'detached', timeout: 10_000 });
  t.match((await tableRows(page, '.gb-refused'))[0], [/No refused registrations/], 'and it left the refused list');

  t.comment('the gateway agrees: the device is in Town A, and its next REGISTER is admitted with the password set here');
  const api = await gw.api('GET', `/api/gb28181/devices/${REFUSED}`, { token: gw.adminToken });
  t.match(api.json, { id: REFUSED, name: 'Harbour NVR', departmentId: 'townA', hasPassword: true, origin: 'admin' });
  t.equal((await gw.gbDirectory.admission(REFUSED))?.password, PASSWORD);
  t.notMatch(await page.content(), new RegExp(PASSWORD), 'the password is nowhere on the page');

  t.comment('device info with the GB service off says so, in the dialog');
  await page.click(`.gb-devices tr[data-id="${REFUSED}"] button[data-action="info"]`);
  const answer = await waitFor(() => page.textContent('.gb-answer'), (text) => !!text && !/Asking/.test(text), 10_000);
  t.match(answer, /The GB\/T 28181 service is not running/, `the reason, in the page's words: "${answer}"`);
});

import t from 'tap';
import { smallTree } from '../helpers/gateway.js';
import { openAdmin, tableRows } from '../helpers/admin.js';
import { startPlayerGateway } from '../helpers/browser.js';

/**
 * The JT/T 808 admin section in a real Chromium against a real gateway: a terminal that tried to
 * connect and was refused is listed with what it sent; the admin registers it as a vehicle from the
 * pre-filled form, and the gateway then has the vehicle with its SIM and its JT/T 1078 channels.
 */

t.setTimeout(180_000);

const SIM = '13912345678';

t.test('an admin registers a refused terminal as a vehicle from what it sent', async (t) => {
  const gw = await startPlayerGateway(t, {}, { player: { language: 'en' } });
  await smallTree(gw);
  await gw.userToken('chief', ['admin'], ['root']);
  // What the 808 server records when an unknown SIM registers (twice: the terminal retries).
  for (let i = 0; i < 2; i++) {
    await gw.jtDirectory.recordRefusal({ sim: SIM, address: '203.0.113.7', reason: 'unknown', plate: '粤B12345', plateColor: 2, terminalId: 'TX-0042', manufacturer: 'ACME', model: 'DVR-8' });
  }

  const page = await openAdmin(t, gw, 'chief', '#jt808');
  const row = `.jt-refused tr[data-sim="${SIM}"]`;
  await page.waitForSelector(row, { timeout: 15_000 });
  const [shown] = await tableRows(page, '.jt-refused');
  t.match(shown, [SIM, '203.0.113.7', 'SIM of no vehicle', '粤B12345', 'TX-0042 / ACME / DVR-8', /\d/, /\d/, '2', /Register as vehicle/], 'SIM, address, reason, what it sent, times, attempts, the action');
  t.match((await tableRows(page, '.jt-terminals'))[0], [/No terminal/], 'no terminal registered yet');

  await page.click(`${row} button[data-action="register"]`);
  await page.waitForSelector('#jt-vehicle-form');
  t.same(
    {
      id: await page.inputValue('#jt-vehicle-form-id'),
      plate: await page.inputValue('#jt-vehicle-form-plate'),
      plateColor: await page.inputValue('#jt-vehicle-form-plateColor'),
      terminalId: await page.inputValue('#jt-vehicle-form-terminalId'),
      sim: await page.inputValue('#jt-vehicle-form-sim'),
    },
    { id: `jt-${SIM}`, plate: '粤B12345', plateColor: 'yellow', terminalId: 'TX0042', sim: SIM },
    'the form opens with what the terminal sent',
  );

  t.comment('a missing operator is refused at its field');
  await page.selectOption('#jt-vehicle-form-departmentId', 'countyA');
  await page.fill('#jt-vehicle-form-channels', '2');
  await page.click('#jt-vehicle-form button[type=submit]');
  await page.waitForSelector('#jt-vehicle-form-company[aria-invalid="true"]', { timeout: 10_000 });

  await page.fill('#jt-vehicle-form-company', '深圳巴士集团');
  await page.click('#jt-vehicle-form button[type=submit]');
  await page.waitForSelector(row, { state: 'detached', timeout: 10_000 });
  t.match((await tableRows(page, '.jt-refused'))[0], [/No refused terminals/], 'the refusal is answered');

  const vehicle = (await gw.api('GET', `/api/vehicles/jt-${SIM}`, { token: gw.adminToken })).json;
  t.match(vehicle, { plate: '粤B12345', plateColor: 'yellow', departmentId: 'countyA', company: '深圳巴士集团', terminalId: 'TX0042', sim: SIM });
  t.same(vehicle.channels.map((c: { sourceId: string }) => c.sourceId), [`jt-${SIM}-ch1`, `jt-${SIM}-ch2`], 'with its two channels, retried without a conflict');
  t.match((await gw.api('GET', `/api/sources/jt-${SIM}-ch1`, { token: gw.adminToken })).json, { protocol: 'jt1078', url: `jt1078://jt-${SIM}/1`, subUrl: `jt1078://jt-${SIM}/1?stream=1` });
  t.equal(gw.jt808!.vehicleBySim(SIM), `jt-${SIM}`, 'its terminal now finds its vehicle');
});

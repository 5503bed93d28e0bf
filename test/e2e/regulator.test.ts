import { setTimeout as sleep } from 'node:timers/promises';
import type { Locator, Page, WebSocketRoute } from 'playwright-core';
import type { Test } from 'tap';
import t from 'tap';
import { launchBrowser, signIn, waitForTiles, type TestBrowser, type TileSample } from '../helpers/browser.js';
import { FLEET, fleetVehicle, listedVehicles, positionOf, startRegulatorGateway, startTileServer, texts, type RegulatorGateway } from '../helpers/regulator.js';
import { waitFor } from '../helpers/streams.js';

/**
 * The regulator's vehicle view in a real Chromium against a real gateway: what a transport
 * regulator watching the fleet sees and does, and (with real ffmpeg and simulated cameras) what the
 * wall then shows.
 */

// Five browser tests, each with its own gateway, Chromium and cameras: 87 s on a quiet CI machine, past
// tap's 120 s per file when the machine is shared, so the file gets the budget the other browser files have.
t.setTimeout(240_000);

const SCREEN = { rows: 1, cols: 1, width: 1920, height: 1080 };
/** Where the filter test's vehicles report from, [lat, lon]. */
const SPOTS: Record<string, [number, number]> = { p1: [32.04, 118.76], t1: [32.05, 118.77], d1: [32.06, 118.78] };

async function openRegulator(browser: TestBrowser, gw: RegulatorGateway, username: string, viewport?: { width: number; height: number }): Promise<Page> {
  const page = await browser.page(username, viewport);
  await signIn(page, gw.baseUrl, username, '/regulator.html');
  await page.locator('.reg-layout').waitFor();
  return page;
}

/** Waits until the locator's text matches, and says what it was when it did not. */
async function textOf(t: Test, locator: Locator, want: RegExp, message: string, timeoutMs = 5_000): Promise<string> {
  const text = await waitFor(() => locator.innerText().catch(() => ''), (s) => want.test(s), timeoutMs, 50);
  t.match(text, want, message);
  return text;
}

async function attributeOf(locator: Locator, name: string, want: string, timeoutMs = 5_000): Promise<string | null> {
  return waitFor(() => locator.getAttribute(name, { timeout: 1_000 }).catch(() => null), (v) => v === want, timeoutMs, 50);
}

t.test('the regulator sees a simulated alarm, acknowledges it, puts the vehicle’s channels on the wall and closes it', async (t) => {
  const gw = await startRegulatorGateway(t);
  for (const id of ['v1-front', 'v1-driver']) await gw.addCamera(id, { clip: 'h264-720p-1s' }, { departmentId: FLEET });
  await gw.addVehicle(fleetVehicle('v1', '苏A12345', 'passenger', 'Linjiang Coaches', ['v1-front', 'v1-driver']));
  const wall = await gw.api('POST', '/api/walls', { token: gw.adminToken, body: { id: 'fleet-wall', name: 'Fleet wall', departmentId: FLEET, screens: SCREEN, layout: '4' } });
  t.equal(wall.status, 201, 'the wall is created');
  await gw.userToken('reg1', ['regulator', 'operator'], [FLEET]);
  await gw.userToken('reg2', ['regulator', 'operator'], [FLEET]);
  await gw.userToken('screen', ['operator'], [FLEET]);

  const browser = await launchBrowser(t, 'regulator-alarm');
  // The first regulator's page can be made to miss wall changes, so that its "put on wall" is based
  // on a version the wall has moved past (the race with another operator, made certain).
  const reg1 = await browser.page('reg1');
  let dropWallDeltas = false;
  await reg1.routeWebSocket(/\/api\/control$/, (ws) => {
    const server = ws.connectToServer();
    server.onMessage((m) => {
      if (dropWallDeltas && String(m).startsWith('{"type":"wall.deltas"')) return;
      ws.send(m);
    });
  });
  await signIn(reg1, gw.baseUrl, 'reg1', '/regulator.html');
  // The second regulator's network drops closures (a flaky link): its page still offers to close
  // an alarm someone else closed, and the gateway's 409 must say who did.
  const reg2 = await browser.page('reg2');
  let dropClosures = false;
  await reg2.routeWebSocket(/\/api\/control$/, (ws) => {
    const server = ws.connectToServer();
    server.onMessage((m) => {
      if (dropClosures && String(m).includes('"change":"closed"')) return;
      ws.send(m);
    });
  });
  await signIn(reg2, gw.baseUrl, 'reg2', '/regulator.html');

  t.comment('positions come in: the vehicle is online in the list and on the map');
  const row = reg1.locator('tr[data-vehicle="v1"]');
  await textOf(t, row, /苏A12345[\s\S]*Coach[\s\S]*Linjiang Coaches[\s\S]*Offline/, 'the vehicle is listed, offline before its first report');
  await gw.positions([positionOf('v1', 32.06, 118.79, 42)]);
  await textOf(t, row, /Online[\s\S]*42 km\/h/, 'the row turns online with its speed, without a reload');
  const marker = reg1.locator('path.vehicle-marker[data-marker="v1"]');
  await marker.waitFor({ state: 'attached', timeout: 5_000 });
  t.notOk((await marker.getAttribute('class'))?.includes('offline'), 'a marker for it on the map, not greyed');
  t.equal(await marker.getAttribute('data-category'), 'passenger');

  t.comment('an alarm is raised: both regulators see it at once');
  const sent = Date.now();
  const raised = await gw.alarms([{ vehicleId: 'v1', type: 'collision-warning', severity: 'critical', at: Date.now(), lat: 32.06, lon: 118.79 }]);
  const alarmId = raised.raised[0] as string;
  const alarm1 = reg1.locator(`li[data-alarm="${alarmId}"]`);
  await alarm1.waitFor({ timeout: 2_000 });
  const alarmToList = Date.now() - sent;
  t.comment(`alarm fed → row in the regulator's list: ${alarmToList} ms`);
  t.ok(alarmToList <= 2_000, `the alarm is in the list within 2 s (${alarmToList} ms)`);
  // The flash itself lasts 3 s; these attributes stay, so a slow machine cannot miss it.
  t.equal(await alarm1.getAttribute('data-flashed'), 'true', 'a new critical alarm flashes');
  t.equal(await reg1.locator('.reg-alarms').getAttribute('data-flashes'), '1', 'and so does the alarm panel');
  await textOf(t, alarm1, /Critical[\s\S]*Collision warning[\s\S]*苏A12345[\s\S]*Raised[\s\S]*×1/, 'severity, type, plate, state and occurrences');
  t.equal(await alarm1.getAttribute('data-state'), 'raised');
  await textOf(t, row.locator('.alarms-cell'), /^1$/, 'the row counts one open alarm');
  await reg1.locator('path.vehicle-marker.alarmed[data-marker="v1"]').waitFor({ state: 'attached', timeout: 2_000 });
  t.pass('the alarmed vehicle stands out on the map');
  const alarm2 = reg2.locator(`li[data-alarm="${alarmId}"]`);
  await alarm2.waitFor({ timeout: 2_000 });
  t.equal(await alarm2.getAttribute('data-state'), 'raised', 'the second regulator sees it raised');

  t.comment('a repeat of the alarm is folded into it');
  await gw.alarms([{ vehicleId: 'v1', type: 'collision-warning', severity: 'critical', at: Date.now() }]);
  await textOf(t, alarm1, /×2/, 'two occurrences, still one row');
  t.equal(await reg1.locator('li[data-alarm]').count(), 1);

  t.comment('the first regulator acknowledges it with a note, pressing Enter twice in a hurry');
  await alarm1.locator('input.alarm-note').fill('called the driver');
  // Both presses in one go, so the second certainly comes while the first is being answered.
  await reg1.evaluate(`(() => {
    const input = document.querySelector('li[data-alarm="${alarmId}"] input.alarm-note');
    for (let i = 0; i < 2; i++) input.dispatchEvent(new KeyboardEvent('keydown', { key: 'Enter', bubbles: true }));
  })()`);
  t.equal(await attributeOf(alarm1, 'data-state', 'acknowledged'), 'acknowledged', 'the row is acknowledged');
  t.equal(await attributeOf(alarm2, 'data-state', 'acknowledged'), 'acknowledged', 'and so it is on the second regulator’s page, live');
  await textOf(t, alarm2, /Acknowledged[\s\S]*acknowledged by reg1[\s\S]*called the driver/, 'with who acknowledged it and the note');
  t.notOk(await alarm2.locator('button.alarm-ack').isVisible(), 'nothing left to acknowledge');
  t.equal(await alarm1.locator('.alarm-error').textContent(), '', 'the second Enter did nothing: no "already handled" for the regulator’s own acknowledgement');
  t.notMatch(await reg1.locator('#toasts').innerText().catch(() => ''), /Already handled/, 'and no toast saying so');

  t.comment('put on wall, from the vehicle panel: the channels on consecutive tiles from the first');
  const screen = await browser.page('screen');
  await signIn(screen, gw.baseUrl, 'screen', '/wall.html?wall=fleet-wall&screen=1');
  await waitForTiles(screen, (ts) => ts.length === 4, 10_000);
  await row.click();
  const detail = reg1.locator('aside.vehicle-detail[data-vehicle="v1"]');
  await textOf(t, detail, /苏A12345[\s\S]*Linjiang Coaches[\s\S]*32\.06000°N, 118\.79000°E[\s\S]*front road[\s\S]*driver[\s\S]*Collision warning/, 'the panel: plate, company, last position, channels, open alarm');
  t.equal(await reg1.locator('select[name=wall]').inputValue(), 'fleet-wall', 'the only wall is the one chosen');
  await waitFor(() => reg1.locator('select[name=start-tile] option').count(), (n) => n === 4, 5_000);
  t.equal(await reg1.locator('select[name=start-tile]').inputValue(), 's1-1', 'starting from the first tile');
  await detail.locator('button.put-on-wall').click();
  await textOf(t, reg1.locator('#toasts'), /苏A12345: 2 channel\(s\) on Fleet wall, tiles s1-1, s1-2/, 'the regulator is told where they went');
  const live = await waitForTiles(
    screen,
    (ts) => ['s1-1', 's1-2'].every((id) => ts.some((x) => x.tile === id && x.state === 'live' && x.currentTime > 0 && x.frames > 0)),
    30_000,
    250,
  );
  const byTile = (ts: TileSample[], id: string) => ts.find((x) => x.tile === id)!;
  t.match(byTile(live, 's1-1'), { camera: 'v1-front', state: 'live' }, 'channel 1 (front road) on s1-1, live');
  t.match(byTile(live, 's1-2'), { camera: 'v1-driver', state: 'live' }, 'channel 2 (driver) on s1-2, live');
  t.match(byTile(live, 's1-3'), { camera: '', state: 'empty' }, 'the other tiles untouched');
  const advanced = (ts: TileSample[], id: string) => {
    const [a, b] = [byTile(live, id), byTile(ts, id)];
    return b !== undefined && b.currentTime > a.currentTime + 1 && b.frames > a.frames + 20;
  };
  const later = await waitForTiles(screen, (ts) => advanced(ts, 's1-1') && advanced(ts, 's1-2'), 15_000, 250);
  for (const id of ['s1-1', 's1-2']) {
    const [a, b] = [byTile(live, id), byTile(later, id)];
    t.ok(advanced(later, id), `${id}: the video advances (+${(b.currentTime - a.currentTime).toFixed(2)} s, +${b.frames - a.frames} frames)`);
  }

  t.comment('put on wall again, from the alarm row, from tile s1-3, which another operator changed unseen');
  await reg1.locator('select[name=start-tile]').selectOption('s1-3');
  dropWallDeltas = true;
  const seen = (await gw.api('GET', '/api/walls/fleet-wall', { token: gw.adminToken })).json.wall.version as number;
  const other = await gw.api('PUT', '/api/walls/fleet-wall/tiles/s1-3', { token: gw.adminToken, body: { baseVersion: seen, content: { kind: 'camera', cameraId: 'v1-driver' } } });
  t.equal(other.status, 200, 'another operator puts a camera on s1-3');
  await waitForTiles(screen, (ts) => byTile(ts, 's1-3')?.camera === 'v1-driver', 10_000);
  await alarm1.locator('button.put-on-wall').click();
  const admin = gw.bootstrapAdmin!.username;
  await textOf(t, reg1.locator('#toasts'), new RegExp(`tile s1-3 refused channel 1 front road: Tile s1-3 was changed by ${admin} a moment ago`), 'the tile the other operator changed is refused, saying who changed it');
  await textOf(t, reg1.locator('#toasts'), /苏A12345: 1 channel\(s\) on Fleet wall, tiles s1-4/, 'the next channel goes on the next tile, which nobody changed');
  dropWallDeltas = false;
  const kept = await waitForTiles(screen, (ts) => byTile(ts, 's1-4')?.camera === 'v1-driver', 10_000);
  t.match(byTile(kept, 's1-3'), { camera: 'v1-driver' }, 'the other operator’s camera stays on s1-3');
  t.match(byTile(kept, 's1-4'), { camera: 'v1-driver' }, 'channel 2 on s1-4');

  t.comment('a tile another operator locked is passed over, and the regulator is told once');
  const locked = await gw.api('POST', '/api/walls/fleet-wall/locks', { token: gw.adminToken, body: { tileIds: ['s1-2'] } });
  t.equal(locked.status, 200, 'another operator locks s1-2');
  const lockShown = await waitFor(() => reg1.locator('select[name=start-tile] option[value="s1-2"]').innerText(), (s) => s.includes(`locked by ${admin}`), 5_000);
  t.match(lockShown, `locked by ${admin}`, 'the tile picker shows the lock');
  await reg1.locator('select[name=start-tile]').selectOption('s1-1');
  await detail.locator('button.put-on-wall').click();
  await textOf(t, reg1.locator('#toasts'), new RegExp(`Tiles passed over: s1-2 \\(locked by ${admin}\\)`), 'the locked tile is named, with its holder');
  t.equal(await reg1.locator('#toasts .toast', { hasText: 'Tiles passed over' }).count(), 1, 'said once');
  await textOf(t, reg1.locator('#toasts'), /苏A12345: 2 channel\(s\) on Fleet wall, tiles s1-1, s1-3/, 'the channels go on the tiles around it');
  t.notMatch(await reg1.locator('#toasts').innerText(), /refused channel 2/, 'the locked tile is not tried and refused');
  const { wall: after } = (await gw.api('GET', '/api/walls/fleet-wall', { token: gw.adminToken })).json;
  t.equal(after.tiles['s1-3'].by, 'reg1', 'channel 2 went onto s1-3');
  t.equal(after.tiles['s1-2'].lock?.username, admin, 's1-2 keeps its lock');

  t.comment('the first regulator closes the alarm; the second, who missed that, is told who did');
  dropClosures = true;
  await alarm1.locator('input.alarm-note').fill('driver safe, resolved');
  await alarm1.locator('button.alarm-close').click();
  await alarm1.waitFor({ state: 'detached', timeout: 5_000 });
  t.pass('the closed alarm leaves the open list');
  await textOf(t, reg1.locator('.reg-alarms'), /No open alarm/, 'the list says nothing is open');
  await textOf(t, row.locator('.alarms-cell'), /^0$/, 'the row counts no open alarm');
  await reg1.locator('path.vehicle-marker[data-marker="v1"]:not(.alarmed)').waitFor({ state: 'attached', timeout: 2_000 });
  t.pass('the marker no longer stands out');
  t.equal(await alarm2.count(), 1, 'the second page missed the closure and still shows it');
  await alarm2.locator('button.alarm-close').click();
  await textOf(t, reg2.locator('#toasts'), /Already handled by someone else: .*closed by reg1/, 'its 409 says who closed it');
  await alarm2.waitFor({ state: 'detached', timeout: 5_000 });
  t.pass('and the row goes');
});

t.test('filters, search and paging narrow the list; rows follow the feed live', async (t) => {
  const gw = await startRegulatorGateway(t, { vehicles: { offlineAfterSec: 5 } });
  await gw.addVehicle(fleetVehicle('p1', '苏A10001', 'passenger', 'Linjiang Coaches'));
  await gw.addVehicle(fleetVehicle('t1', '苏A10002', 'tourist', 'Golden Tours'));
  await gw.addVehicle(fleetVehicle('d1', '苏A10003', 'dangerous-goods', 'Yangtze Chemicals', [], { hazardClass: '3', unNumber: 'UN1203', cargo: 'petrol', plateColor: 'yellow' }));
  // Filler vehicles (plates after the three) so the list has more than one page.
  const fillers = Array.from({ length: 120 }, (_, i) => JSON.stringify(fleetVehicle(`f${i}`, `苏B${String(20000 + i)}`, 'passenger', 'Filler Transport')));
  const imported = await gw.api('POST', '/api/vehicles/import?mode=all-or-nothing', { token: gw.adminToken, headers: { 'content-type': 'application/x-ndjson' }, payload: fillers.join('\n') });
  t.equal(imported.status, 200, imported.body);
  await gw.userToken('reg', ['regulator'], [FLEET]);
  const feed = (ids: string[]) => gw.positions(ids.map((id) => positionOf(id, ...SPOTS[id]!, 30)));
  // p1 and t1 report every second throughout; d1 reports once, once the page is up.
  await feed(['p1', 't1']);
  const keepAlive = setInterval(() => void feed(['p1', 't1']).catch(() => {}), 1_000);
  t.teardown(() => clearInterval(keepAlive));

  const browser = await launchBrowser(t, 'regulator-filters');
  const page = await openRegulator(browser, gw, 'reg');
  await waitFor(() => listedVehicles(page), (ids) => ids.length === 100, 5_000);
  t.same((await listedVehicles(page)).slice(0, 3), ['p1', 't1', 'd1'], 'ordered by plate, a page of 100');
  t.match(await page.locator('.reg-vehicles .list-summary').innerText(), /100 shown, more to load/);
  await page.locator('button.load-more').click();
  t.equal((await waitFor(() => listedVehicles(page), (ids) => ids.length === 123, 5_000)).length, 123, '"load more" adds the rest');
  t.notOk(await page.locator('button.load-more').isVisible(), 'and then there is no more');

  t.comment('d1 reports once, then falls silent');
  const d1 = page.locator('tr[data-vehicle="d1"]');
  await textOf(t, d1, /Offline/, 'd1 is offline before it reports');
  await feed(['d1']);
  await textOf(t, d1, /Online/, 'd1 turns online in the list, live');
  await page.locator('path.vehicle-marker[data-marker="d1"]:not(.offline)').waitFor({ state: 'attached', timeout: 3_000 });
  await textOf(t, d1, /Offline/, 'and offline again after 5 s of silence, live', 12_000);
  await page.locator('path.vehicle-marker.offline[data-marker="d1"]').waitFor({ state: 'attached', timeout: 3_000 });
  t.pass('greyed on the map');
  t.equal(await page.locator('path.vehicle-marker.offline').count(), 1, 'only d1 is greyed');

  const only = async (want: string[], message: string) => t.same(await waitFor(() => listedVehicles(page), (ids) => JSON.stringify(ids) === JSON.stringify(want), 5_000), want, message);
  await page.locator('select[name=category]').selectOption('tourist');
  await only(['t1'], 'category: tourist coaches only');
  await page.locator('select[name=category]').selectOption('dangerous-goods');
  await only(['d1'], 'category: dangerous goods only');
  await page.locator('select[name=status]').selectOption('offline');
  await only(['d1'], 'dangerous goods and offline');
  await page.locator('select[name=category]').selectOption('');
  const offline = await waitFor(() => listedVehicles(page), (ids) => ids.length === 100 && ids[0] === 'd1', 5_000);
  t.ok(offline[0] === 'd1' && !offline.includes('p1') && !offline.includes('t1'), 'status: offline (d1 and the fillers, which never reported)');
  await page.locator('select[name=status]').selectOption('online');
  await only(['p1', 't1'], 'status: online');
  await page.locator('select[name=status]').selectOption('');
  await page.locator('input[name=q]').fill('10003');
  await only(['d1'], 'search as you type: part of a plate');
  await page.locator('input[name=q]').fill('golden');
  await only(['t1'], 'search: part of a company, any case');
  await page.locator('input[name=q]').fill('');
  await page.locator('input[name=company]').fill('Yangtze Chemicals');
  await only(['d1'], 'company: the full name');
  await page.locator('input[name=company]').fill('');

  const alarm = await gw.alarms([{ vehicleId: 't1', type: 'overspeed', severity: 'medium', at: Date.now() }]);
  await page.locator(`li[data-alarm="${alarm.raised[0]}"]`).waitFor({ timeout: 2_000 });
  t.notMatch(await page.locator(`li[data-alarm="${alarm.raised[0]}"]`).getAttribute('class'), /flash/, 'a medium alarm does not flash');
  await page.locator('select[name=alarm]').selectOption('open');
  await only(['t1'], 'open alarms only');
  await page.locator('select[name=alarm]').selectOption('');
  await waitFor(() => listedVehicles(page), (ids) => ids.length === 100, 5_000);

  t.comment('a dangerous-goods vehicle shows its cargo');
  await d1.click();
  await textOf(t, page.locator('aside.vehicle-detail'), /苏A10003[\s\S]*Dangerous goods[\s\S]*Yangtze Chemicals[\s\S]*Hazard class\s*3[\s\S]*UN1203[\s\S]*petrol[\s\S]*Offline/, 'hazard class, UN number and cargo');
  t.match(await page.locator('aside.vehicle-detail .plate').getAttribute('class'), /plate-yellow/, 'the plate in its colour');
  t.match(await d1.getAttribute('class'), /selected/, 'the row is marked as selected');
  await page.keyboard.press('Escape');
  t.ok(await page.locator('aside.vehicle-detail').isHidden(), 'Escape closes the panel');

  t.comment('clicking a marker selects its vehicle');
  await page.locator('path.vehicle-marker[data-marker="p1"]').click();
  await textOf(t, page.locator('aside.vehicle-detail'), /苏A10001[\s\S]*Linjiang Coaches/, 'the marker opens its vehicle');
  t.match(await page.locator('tr[data-vehicle="p1"]').getAttribute('class'), /selected/, 'and marks its row');

  t.comment('the tooltip of the marker under the pointer follows its vehicle');
  await page.locator('path.vehicle-marker[data-marker="p1"]').hover();
  const tip = page.locator('.leaflet-tooltip');
  const firstTip = await waitFor(() => tip.innerText().catch(() => ''), (s) => s.includes('苏A10001'), 3_000);
  t.match(firstTip, /苏A10001 · 30 km\/h · \d\d:\d\d:\d\d/, 'the tooltip: plate, speed and the time of the last report');
  // p1 reports every second: the open tooltip must show each new report's time.
  const nextTip = await waitFor(() => tip.innerText().catch(() => ''), (s) => s.includes('苏A10001') && s !== firstTip, 5_000);
  t.not(nextTip, firstTip, `and it changes while open (${firstTip.split('\n')[0]} → ${nextTip.split('\n')[0]})`);

  const bad = await gw.api('GET', `/api/vehicles?q=${'x'.repeat(101)}`, { token: gw.adminToken });
  t.equal(bad.status, 400, 'the API refuses an over-long search…');
  t.equal(await page.locator('input[name=q]').getAttribute('maxlength'), '100', '…which the field does not let anyone type');
  clearInterval(keepAlive);
});

t.test('the map: a lat/lon grid without a map server, the tiles of one when configured', async (t) => {
  const grid = await startRegulatorGateway(t);
  await grid.addVehicle(fleetVehicle('p1', '苏A10001', 'passenger', 'Linjiang Coaches'));
  await grid.addVehicle(fleetVehicle('p2', '苏A10002', 'tourist', 'Golden Tours'));
  // Far from where the map opens (118.78°E 32.05°N, zoom 12): only a map fitted to them shows them.
  await grid.positions([positionOf('p1', 31.22, 121.4), positionOf('p2', 31.3, 121.54)]);
  await grid.userToken('reg', ['regulator'], [FLEET]);
  const browser = await launchBrowser(t, 'regulator-map');
  const page = await openRegulator(browser, grid, 'reg');
  const map = page.locator('.vehicle-map');
  t.equal(await map.getAttribute('data-map-mode'), 'grid', 'no tile URL: grid mode');
  await page.locator('path.vehicle-marker').nth(1).waitFor({ state: 'attached', timeout: 5_000 });
  t.equal(await page.locator('path.vehicle-marker').count(), 2, 'both vehicles drawn');
  const labels = await waitFor(() => texts(page, '.graticule-label'), (l) => l.length >= 4, 5_000);
  const lat = labels.filter((l) => /°N$/.test(l));
  const lon = labels.filter((l) => /°E$/.test(l));
  t.ok(lat.length >= 2 && lon.length >= 2, `graticule labels on both axes (${lat.join(' ')} | ${lon.join(' ')})`);
  const latValues = lat.map((l) => parseFloat(l));
  const lonValues = lon.map((l) => parseFloat(l));
  t.ok(latValues.every((v) => v > 31 && v < 31.5) && lonValues.every((v) => v > 121.2 && v < 121.75), 'the grid is where the vehicles are (fitted to them), not where the map opened');
  const mapBox = (await map.boundingBox())!;
  for (const id of ['p1', 'p2']) {
    const box = await page.locator(`path.vehicle-marker[data-marker="${id}"]`).boundingBox();
    const inside = box && box.x >= mapBox.x && box.y >= mapBox.y && box.x + box.width <= mapBox.x + mapBox.width && box.y + box.height <= mapBox.y + mapBox.height;
    t.ok(inside, `${id} is within the visible map`);
  }
  t.ok((await page.locator('path.graticule-line').count()) >= 4, 'grid lines drawn');
  t.equal(await page.locator('img.leaflet-tile').count(), 0, 'no tile is fetched');
  const decimals = (l: string[]) => Math.max(...l.map((x) => x.replace(/°.*/, '').split('.')[1]?.length ?? 0));
  const before = decimals(lat);
  for (let i = 0; i < 3; i++) {
    await page.locator('.leaflet-control-zoom-in').click();
    await sleep(400);
  }
  const zoomed = await waitFor(() => texts(page, '.graticule-lat'), (l) => l.length >= 2 && decimals(l) > before, 5_000);
  t.ok(decimals(zoomed) > before, `zooming in makes the grid finer (${before} → ${decimals(zoomed)} decimals: ${zoomed.join(' ')})`);
  await page.close();

  const tileServer = await startTileServer(t);
  const tiled = await startRegulatorGateway(t, { player: { map: { tileUrl: tileServer.template, attribution: 'Command centre map', maxZoom: 16 } } });
  await tiled.userToken('reg', ['regulator'], [FLEET]);
  const page2 = await openRegulator(browser, tiled, 'reg');
  const map2 = page2.locator('.vehicle-map');
  t.equal(await map2.getAttribute('data-map-mode'), 'tiles', 'a tile URL: tiles mode');
  await page2.locator('img.leaflet-tile-loaded').first().waitFor({ state: 'attached', timeout: 10_000 });
  t.ok(tileServer.requests.length > 0, `the browser fetched ${tileServer.requests.length} tiles from the map server`);
  t.ok(tileServer.requests.every((r) => r.startsWith('/12/')), 'at the opening zoom (12), around the configured centre');
  await textOf(t, page2.locator('.leaflet-control-attribution'), /Command centre map/, 'with its attribution');
  t.equal(await page2.locator('.graticule-label').count(), 0, 'and no grid');
});

t.test('many open alarms are not news; refused subscriptions are tried again; after a dropped connection the page catches up and stays live', async (t) => {
  const gw = await startRegulatorGateway(t);
  // Twelve vehicles with nine open high alarms each: more than the first REST read's 100.
  const TYPES = ['overspeed', 'fatigue-driving', 'distracted-driving', 'collision-warning', 'lane-departure', 'tank-pressure', 'tank-temperature', 'leak', 'video-loss'];
  const ids = Array.from({ length: 12 }, (_, i) => `m${i}`);
  for (const [i, id] of ids.entries()) await gw.addVehicle(fleetVehicle(id, `苏C${30000 + i}`, 'passenger', 'Meridian Coaches'));
  await gw.positions(ids.map((id, i) => positionOf(id, 32 + i * 0.01, 118.7 + i * 0.01, 20)));
  const opened = await gw.alarms(ids.flatMap((vehicleId) => TYPES.map((type) => ({ vehicleId, type, severity: 'high', at: Date.now() }))));
  t.equal(opened.raised.length, 108, '108 open alarms before the page opens');
  await gw.userToken('reg', ['regulator'], [FLEET]);

  const browser = await launchBrowser(t, 'regulator-reconnect');
  const page = await browser.page('reg');
  // The gateway's first answer to each subscription is a refusal, as a page meets the rate limit.
  const refuseOnce = new Set(['vehicles.subscribe', 'alarms.subscribe']);
  const refused: string[] = [];
  let socket: WebSocketRoute | null = null;
  let connections = 0;
  await page.routeWebSocket(/\/api\/control$/, (ws) => {
    connections++;
    socket = ws;
    const server = ws.connectToServer();
    ws.onMessage((m) => {
      const msg = JSON.parse(String(m)) as { type: string; id: string };
      if (refuseOnce.delete(msg.type)) {
        refused.push(msg.type);
        ws.send(JSON.stringify({ type: 'error', id: msg.id, code: 'GW_ERR_RATE_LIMITED', message: 'more than 20 messages a second' }));
        return;
      }
      server.send(m);
    });
    server.onMessage((m) => ws.send(m));
  });
  await signIn(page, gw.baseUrl, 'reg', '/regulator.html');
  await page.locator('.reg-layout').waitFor();

  t.comment('the page opens: both subscriptions are refused once, and tried again');
  const rows = page.locator('li[data-alarm]');
  t.equal(await waitFor(() => rows.count(), (n) => n === 108, 10_000), 108, 'every open alarm is listed, past the first read’s 100');
  t.same([...refused].sort(), ['alarms.subscribe', 'vehicles.subscribe'], 'after both subscriptions were refused once');
  await textOf(t, page.locator('#toasts'), /Live alarms are not coming in \(Too many actions at once[^)]*\); trying again/, 'the regulator is told while it is tried again');
  t.equal(await waitFor(() => page.locator('path.vehicle-marker').count(), (n) => n === 12, 5_000), 12, 'every vehicle is on the map');
  await gw.positions([positionOf('m0', 32, 118.7, 77)]);
  await textOf(t, page.locator('tr[data-vehicle="m0"]'), /77 km\/h/, 'and positions come in live');
  t.equal(await page.locator('li[data-alarm][data-flashed]').count(), 0, 'none of the alarms the page opens with flashes');
  t.equal(await page.locator('.reg-alarms').getAttribute('data-flashes'), null, 'nor does the panel');
  t.notMatch(await page.locator('#toasts').innerText(), /New High alarm/, 'and none is announced as new');

  t.comment('a new alarm, with reduced motion: outlined while it flashes, then not');
  await page.emulateMedia({ reducedMotion: 'reduce' });
  const fresh = (await gw.alarms([{ vehicleId: 'm0', type: 'emergency-button', severity: 'critical', at: Date.now() }])).raised[0] as string;
  const freshRow = page.locator(`li[data-alarm="${fresh}"]`);
  await freshRow.waitFor({ timeout: 2_000 });
  t.equal(await freshRow.getAttribute('data-flashed'), 'true', 'the new critical alarm flashes');
  t.equal(await page.locator('.reg-alarms').getAttribute('data-flashes'), '1', 'and the panel, once');
  await textOf(t, page.locator('#toasts'), /New Critical alarm: 苏C30000 Emergency button/, 'it is announced');
  const marks = () =>
    page.evaluate<string>(`JSON.stringify([document.querySelector('.reg-alarms'), document.querySelector('li[data-alarm="${fresh}"]')].map((el) => [el.classList.contains('flash'), getComputedStyle(el).outlineStyle]))`);
  const settled = await waitFor(marks, (v) => v === JSON.stringify([[false, 'none'], [false, 'none']]), 8_000, 100);
  t.equal(settled, JSON.stringify([[false, 'none'], [false, 'none']]), 'the outline goes after the flash’s 3 s, panel and row alike');

  t.comment('a vehicle is deleted, then the connection drops and comes back');
  const deleted = await gw.api('DELETE', '/api/vehicles/m11', { token: gw.adminToken });
  t.ok(deleted.status >= 200 && deleted.status < 300, `m11 is deleted (${deleted.status})`);
  t.equal(await waitFor(() => rows.count(), (n) => n === 100, 5_000), 100, 'its alarms close with it, live');
  socket!.close({ code: 4000, reason: 'the network dropped' });
  t.ok((await waitFor(() => connections, (n) => n >= 2, 10_000)) >= 2, 'the page connects again');
  await page.locator('path.vehicle-marker[data-marker="m11"]').waitFor({ state: 'detached', timeout: 10_000 });
  t.pass('the deleted vehicle leaves the map once the page has subscribed again');
  t.equal(await page.locator('tr[data-vehicle="m11"]').count(), 0, 'and the list');
  t.equal(await page.locator('path.vehicle-marker').count(), 11, 'the other vehicles stay');
  const sent = Date.now();
  const again = (await gw.alarms([{ vehicleId: 'm1', type: 'emergency-button', severity: 'critical', at: Date.now() }])).raised[0] as string;
  await page.locator(`li[data-alarm="${again}"]`).waitFor({ timeout: 2_000 });
  const latency = Date.now() - sent;
  t.ok(latency <= 2_000, `a new alarm still arrives live after the reconnection (${latency} ms)`);
  t.equal(await page.locator(`li[data-alarm="${again}"]`).getAttribute('data-flashed'), 'true', 'and flashes');
});

t.test('without walls:drive "put on wall" is disabled with the reason; pop-out still opens the camera', async (t) => {
  // The page in its default language, Chinese.
  const gw = await startRegulatorGateway(t, { player: { language: 'zh' } });
  await gw.api('POST', '/api/sources', { token: gw.adminToken, body: { id: 'd1-front', name: 'd1 front', departmentId: FLEET, url: 'rtsp://10.1.0.7:554/front' } });
  await gw.api('POST', '/api/sources', { token: gw.adminToken, body: { id: 'd1-cargo', name: 'd1 cargo', departmentId: FLEET, url: 'rtsp://10.1.0.7:554/cargo' } });
  await gw.addVehicle(fleetVehicle('d1', '苏A10003', 'dangerous-goods', '扬子化工', ['d1-front', 'd1-cargo'], { hazardClass: '2.1' }));
  await gw.positions([positionOf('d1', 32.05, 118.78)]);
  const wall = await gw.api('POST', '/api/walls', { token: gw.adminToken, body: { id: 'fleet-wall', name: 'Fleet wall', departmentId: FLEET, screens: SCREEN, layout: '4' } });
  t.equal(wall.status, 201);
  await gw.userToken('watcher', ['regulator'], [FLEET]);
  const browser = await launchBrowser(t, 'regulator-readonly');
  const page = await openRegulator(browser, gw, 'watcher', { width: 3840, height: 2160 });

  const raised = await gw.alarms([{ vehicleId: 'd1', type: 'leak', severity: 'high', at: Date.now() }]);
  const alarm = page.locator(`li[data-alarm="${raised.raised[0]}"]`);
  await textOf(t, alarm, /高[\s\S]*泄漏[\s\S]*苏A10003[\s\S]*未处理/, 'the alarm in Chinese: severity, type, plate, state');
  await page.locator('tr[data-vehicle="d1"]').click();
  const detail = page.locator('aside.vehicle-detail[data-vehicle="d1"]');
  await textOf(t, detail, /危险类别\s*2\.1/, 'the panel in Chinese, with the hazard class');
  const put = detail.locator('button.put-on-wall');
  t.ok(await put.isDisabled(), '"put on wall" is disabled in the vehicle panel');
  await textOf(t, detail.locator('.refusal'), /上墙需要 walls:drive 权限/, 'with the reason beside it');
  t.ok(await alarm.locator('button.put-on-wall').isDisabled(), 'and in the alarm row');
  t.match(await alarm.locator('button.put-on-wall').getAttribute('title'), /walls:drive/, 'which gives the reason as its tooltip');
  t.ok(await page.locator('select[name=wall]').isDisabled(), 'the wall picker is off too');
  await textOf(t, page.locator('.wall-target-note'), /walls:drive/, 'saying why');
  t.ok(await alarm.locator('button.alarm-ack').isEnabled(), 'acknowledging is still the regulator’s to do');

  const [popup] = await Promise.all([page.waitForEvent('popup'), detail.locator('li[data-camera="d1-cargo"] button.pop-out').click()]);
  await popup.waitForLoadState('domcontentloaded').catch(() => {});
  const url = new URL(popup.url());
  t.equal(url.pathname, '/popout.html', 'pop-out opens the one-camera page');
  t.equal(url.searchParams.get('camera'), 'd1-cargo', 'for the channel clicked');
  const [fromAlarm] = await Promise.all([page.waitForEvent('popup'), alarm.locator('button.pop-out[data-camera="d1-front"]').click()]);
  t.equal(new URL(fromAlarm.url()).searchParams.get('camera'), 'd1-front', 'and from the alarm row');

  const box = await page.locator('.reg-layout').boundingBox();
  t.ok(box && box.width >= 3800 && box.height > 2000, 'at 3840×2160 the view fills the screen');
  const fontSize = await page.evaluate<number>(`parseFloat(getComputedStyle(document.documentElement).fontSize)`);
  t.ok(fontSize >= 26, `and its text scales up (${fontSize} px to the rem)`);
});

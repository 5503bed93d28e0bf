import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Page } from 'playwright-core';
import t from 'tap';
import { CODECS, LEVELS, PROTOCOLS, ROLES } from '../../gateway/src/store/types.js';
import { camera, smallTree } from '../helpers/gateway.js';
import { adminGateway, dataOf, fieldValues, goTo, openAdmin, search, tableRows, visibleText, waitForSourceIds } from '../helpers/admin.js';
import { waitFor } from '../helpers/streams.js';

/**
 * The admin pages in a real Chromium against a real gateway: what an administrator or an auditor
 * sees and does, checked on the screen and then against the gateway.
 */

// Six browser tests, each with its own gateway and Chromium, on machines shared with other suites.
t.setTimeout(240_000);

/** Eight rows, three of them bad: a forbidden URL scheme, an unknown department, a missing name. */
const CSV = [
  'id,name,departmentId,url,tags',
  'imp-1,Harbour Gate 1,townA,rtsp://10.1.0.11:554/s1,port;gate',
  'imp-2,Harbour Gate 2,townA,rtsp://10.1.0.12:554/s1,',
  'imp-3,Ring Road East,countyA,rtsp://10.1.0.13:554/s1,',
  'imp-bad-url,Stolen Files,townA,file:///etc/passwd,',
  'imp-4,Ring Road West,countyB,rtsp://10.1.0.14:554/s1,',
  'imp-bad-dept,Nowhere Cam,atlantis,rtsp://10.1.0.15:554/s1,',
  'imp-5,Old Bridge,city,rtsp://10.1.0.16:554/s1,',
  'imp-no-name,,townA,rtsp://10.1.0.17:554/s1,',
].join('\n');

const count = async (page: Page, key: string) => (await page.textContent(`.import-report [data-count="${key}"] .count-value`))?.trim();

t.test('the admin imports a CSV with bad rows and sees the report', async (t) => {
  const gw = await adminGateway(t);
  await smallTree(gw);
  const chief = await gw.userToken('chief', ['admin'], ['root']);
  // The report the gateway gives for this file, asked directly (all-or-nothing, so nothing is written).
  const direct = await gw.api('POST', '/api/sources/import?mode=all-or-nothing', { token: chief, payload: CSV, headers: { 'content-type': 'text/csv' } });
  t.equal(direct.status, 422, 'the gateway rejects the file as a whole in all-or-nothing mode');
  const gatewayErrors = direct.json.report.errors.map((e: { line: number; id?: string; field: string; message: string }) => [String(e.line), e.id ?? '', e.field, e.message]);

  const page = await openAdmin(t, gw, 'chief', '#import');
  await page.setInputFiles('#import-form-file', { name: 'cameras.csv', mimeType: 'text/csv', buffer: Buffer.from(CSV) });
  await page.check('input[name=mode][value=keep-valid]');
  await page.click('#import-form button[type=submit]');
  await page.waitForSelector('.import-report', { timeout: 15_000 });

  t.match(await page.textContent('.import-summary'), /Imported the valid rows; 3 of 8 rows were rejected/, 'the summary says the valid rows were kept');
  t.same(
    { rows: await count(page, 'rows'), created: await count(page, 'created'), updated: await count(page, 'updated'), rejected: await count(page, 'rejected') },
    { rows: '8', created: '5', updated: '0', rejected: '3' },
    'the counts: 8 rows, 5 created, 3 rejected',
  );
  const shown = await tableRows(page, '.import-errors');
  t.same(shown, gatewayErrors, 'the table lists every bad row exactly as the gateway reports it');
  t.equal(shown.length, 3, 'one problem per bad row');
  t.match(shown[0], ['5', 'imp-bad-url', 'url', /scheme "file" is not allowed/], 'line 5: the file:// URL, at the url field');
  t.match(shown[1], ['7', 'imp-bad-dept', 'departmentId', /unknown department "atlantis"/], 'line 7: the unknown department');
  t.match(shown[2], ['9', 'imp-no-name', 'name', /is required/], 'line 9: the missing name');

  t.comment('the CSV template has the export’s columns, and the password after the user name');
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('text=Download a CSV template')]);
  const template = (await readFile((await download.path())!, 'utf8')).trim().split(',');
  const exported = (await gw.api('GET', '/api/sources/export?format=csv', { token: chief })).body.split('\n')[0]!.split(',');
  t.same(template.filter((c) => c !== 'password'), exported, 'the template’s columns are the export’s');
  t.equal(template[template.indexOf('username') + 1], 'password', 'with the write-only password beside the user name');

  t.comment('the good rows are in the registry, and search finds them');
  await goTo(page, 'sources');
  t.same(await search(page, 'Harbour Gate', ['imp-1', 'imp-2']), ['imp-1', 'imp-2'], 'a search for "Harbour Gate" finds the two imported harbour cameras');
  t.same(await search(page, 'Ring Road', ['imp-3', 'imp-4']), ['imp-3', 'imp-4'], 'and "Ring Road" the two ring-road ones');
  t.same(await search(page, 'Stolen Files', []), [], 'the rejected row was not written');
  t.match(await page.textContent('.source-list .empty'), /No sources match/, 'the list says nothing matches');
  t.equal((await gw.api('GET', '/api/sources?limit=100', { token: chief })).json.items.length, 5, 'the gateway holds the five good rows');

  t.comment('all-or-nothing with one bad row writes nothing');
  await goTo(page, 'import');
  const pasted = ['id,name,departmentId,url', 'aon-1,Quay Cam,townA,rtsp://10.1.0.21:554/s1', 'aon-2,Piped,townA,pipe:0'].join('\n');
  await page.fill('#import-form-text', pasted);
  await page.check('input[name=mode][value=all-or-nothing]');
  await page.click('#import-form button[type=submit]');
  await page.waitForSelector('.import-report.rejected', { timeout: 15_000 });
  t.match(await page.textContent('.import-summary'), /Nothing was written: 1 of 2 rows are bad/, 'the report says nothing was written');
  t.equal(await count(page, 'created'), '0', 'nothing created');
  t.equal(await count(page, 'rejected'), '1', 'one row rejected');
  t.match(await tableRows(page, '.import-errors'), [['3', 'aon-2', 'url', /scheme "pipe" is not allowed/]], 'the bad row by line and field');
  t.equal((await gw.api('GET', '/api/sources/aon-1', { token: chief })).status, 404, 'the good row of that file was not written either');
  t.equal((await gw.api('GET', '/api/sources?limit=100', { token: chief })).json.items.length, 5, 'the registry is as it was');
});

t.test('creating a source shows the gateway’s errors at the fields; edits keep the password unseen', async (t) => {
  const gw = await adminGateway(t);
  await smallTree(gw);
  const chief = await gw.userToken('chief', ['admin'], ['root']);
  const SECRET = 'Cam-Secret-771';
  const page = await openAdmin(t, gw, 'chief', '#sources');
  await page.getByRole('button', { name: 'New source' }).click();
  await page.waitForSelector('#source-form');
  const options = (select: string) => page.evaluate<string[]>(`Array.from(document.querySelectorAll('${select} option')).map((o) => o.value).filter(Boolean)`);
  t.same(
    { level: await options('#source-form-level'), protocol: await options('#source-form-protocol'), codec: await options('#source-form-codec') },
    { level: [...LEVELS], protocol: [...PROTOCOLS], codec: [...CODECS] },
    'the form offers the gateway’s levels, protocols and codecs',
  );
  await page.fill('#source-form-id', 'gate-7');
  await page.selectOption('#source-form-departmentId', 'townA');
  await page.fill('#source-form-url', 'file:///etc/passwd');
  await page.fill('#source-form-username', 'ops');
  await page.fill('#source-form-password', SECRET);
  await page.click('#source-form button[type=submit]');

  await page.waitForSelector('#source-form-url[aria-invalid="true"]', { timeout: 10_000 });
  t.equal(await page.getAttribute('#source-form-name', 'aria-invalid'), 'true', 'the empty name is marked invalid');
  t.match(await page.textContent('#source-form-url-error'), /scheme "file" is not allowed/, 'the URL message is under the URL input');
  t.match(await page.textContent('#source-form-name-error'), /is required/, 'the name message is under the name input');
  t.equal(await page.getAttribute('#source-form-url', 'aria-describedby'), 'source-form-url-error', 'the message is tied to its input');
  t.equal(await page.getAttribute('#source-form-departmentId', 'aria-invalid'), null, 'a good field is not marked');
  t.equal((await gw.api('GET', '/api/sources/gate-7', { token: chief })).status, 404, 'nothing was written');

  t.comment('fixed, it is created and appears in the list');
  await page.fill('#source-form-name', 'North Gate 7');
  await page.fill('#source-form-url', 'rtsp://10.1.0.77:554/main');
  await page.click('#source-form button[type=submit]');
  await page.waitForSelector('#source-form', { state: 'detached', timeout: 10_000 });
  await page.waitForSelector('.sources-table tr[data-id="gate-7"]', { timeout: 10_000 });
  t.match(await page.textContent('.sources-table tr[data-id="gate-7"]'), /North Gate 7.*Town A.*rtsp/, 'the new source is listed with its department');
  t.same(await search(page, 'North Gate', ['gate-7']), ['gate-7'], 'a search finds it');
  const stored = (await gw.api('GET', '/api/sources/gate-7', { token: chief })).json;
  t.match(stored, { name: 'North Gate 7', departmentId: 'townA', username: 'ops', hasPassword: true, version: 1 }, 'the gateway holds it with its credentials');

  t.comment('editing changes the name; the password is never on screen');
  await page.click('.sources-table tr[data-id="gate-7"] button:has-text("Edit")');
  await page.waitForSelector('#source-form');
  t.equal(await page.inputValue('#source-form-password'), '', 'the password field is empty');
  t.equal(await page.textContent('#source-form .password-state'), 'A password is set.', 'it says a password is set');
  t.equal(await page.inputValue('#source-form-url'), 'rtsp://10.1.0.77:554/main', 'the URL carries no credentials, not even masked');
  t.equal(await page.inputValue('#source-form-username'), 'ops');
  t.notOk((await visibleText(page)).includes(SECRET), 'the password is not in the visible text');
  t.notOk((await fieldValues(page)).some((v) => v.includes(SECRET)), 'nor in any field');
  t.notOk((await page.content()).includes(SECRET), 'nor anywhere in the page');
  await page.fill('#source-form-name', 'North Gate 7 (rebuilt)');
  await page.click('#source-form button[type=submit]');
  await page.waitForSelector('#source-form', { state: 'detached', timeout: 10_000 });
  await waitFor(() => page.textContent('.sources-table tr[data-id="gate-7"] td.name'), (x) => x === 'North Gate 7 (rebuilt)', 5_000);
  t.equal(await page.textContent('.sources-table tr[data-id="gate-7"] td.name'), 'North Gate 7 (rebuilt)', 'the list shows the new name');
  t.match((await gw.api('GET', '/api/sources/gate-7', { token: chief })).json, { name: 'North Gate 7 (rebuilt)', username: 'ops', hasPassword: true, version: 2 }, 'the password was kept');

  t.comment('someone else saves first: the form says so and reloads');
  await page.click('.sources-table tr[data-id="gate-7"] button:has-text("Edit")');
  await page.waitForSelector('#source-form');
  const other = await gw.api('PATCH', '/api/sources/gate-7', { token: chief, headers: { 'if-match': '"2"' }, body: { name: 'Renamed Elsewhere' } });
  t.equal(other.status, 200, 'another admin renames it meanwhile');
  await page.fill('#source-form-name', 'My Name');
  await page.click('#source-form button[type=submit]');
  await page.waitForSelector('#source-form .form-error:has-text("Someone else changed this source")', { timeout: 10_000 });
  t.match(await page.textContent('#source-form .form-error'), /version 3/, 'the message names the version now stored');
  t.equal(await page.inputValue('#source-form-name'), 'Renamed Elsewhere', 'the form shows what the other admin saved');
  await page.fill('#source-form-name', 'Final Name');
  await page.click('#source-form button[type=submit]');
  await page.waitForSelector('#source-form', { state: 'detached', timeout: 10_000 });
  t.equal((await gw.api('GET', '/api/sources/gate-7', { token: chief })).json.name, 'Final Name', 'saving again over the current version works');

  t.comment('delete asks first');
  await page.click('.sources-table tr[data-id="gate-7"] button:has-text("Delete")');
  await page.waitForSelector('dialog.confirm');
  t.match(await page.textContent('dialog.confirm .confirm-message'), /Delete source "Final Name" \(gate-7\)/, 'the confirmation names the source');
  await page.click('dialog.confirm [data-confirm=yes]');
  await page.waitForSelector('.sources-table tr[data-id="gate-7"]', { state: 'detached', timeout: 10_000 });
  t.equal((await gw.api('GET', '/api/sources/gate-7', { token: chief })).status, 404, 'the gateway deleted it');
  t.notOk((await page.content()).includes(SECRET), 'the password never reached the page');
});

t.test('an admin scoped to a county sees no foreign cameras or departments', async (t) => {
  const gw = await adminGateway(t);
  await smallTree(gw);
  for (const [id, dept] of [
    ['a-1', 'countyA'],
    ['ta-1', 'townA'],
    ['b-1', 'countyB'],
    ['c-1', 'city'],
  ] as const) {
    const res = await gw.api('POST', '/api/sources', { token: gw.adminToken, body: camera(id, dept) });
    if (res.status !== 201) throw new Error(`source ${id}: ${res.body}`);
  }
  await gw.registry.setHealth('ta-1', 'offline', {
    code: 'GW_ERR_CAMERA_UNREACHABLE',
    message: 'the camera is unreachable: Connection refused',
    params: { reason: 'unreachable', detail: 'Connection refused' },
  });
  await gw.registry.setHealth('a-1', 'online', null);
  await gw.userToken('county-admin', ['admin'], ['countyA']);

  const page = await openAdmin(t, gw, 'county-admin', '#sources');
  t.same(await dataOf(page, '.admin-nav a', 'section'), ['sources', 'import', 'departments', 'gb28181', 'jt808', 'health', 'users', 'sessions', 'cluster'], 'an admin has every section but the audit log');
  t.same(await waitForSourceIds(page, ['a-1', 'ta-1']), ['a-1', 'ta-1'], 'the list shows the county A and town A cameras only');
  t.match(await page.textContent('.sources-table tr[data-id="ta-1"]'), /Offline.*The camera cannot be reached \(Connection refused\)\./, 'health is shown with its reason, worded from its code');
  const filterOptions = await waitFor(
    () => page.evaluate<string[]>(`Array.from(document.querySelectorAll('.toolbar select[name=departmentId] option')).map((o) => o.value)`),
    (values) => values.length > 1,
    5_000,
  );
  t.same(filterOptions, ['', 'countyA', 'townA'], 'the department filter offers only their departments');
  t.same(await search(page, 'Camera b-1', []), [], 'a search for the county B camera’s name finds nothing');
  t.match(await page.textContent('.source-list .empty'), /No sources match/, 'and says so');
  t.same(await search(page, 'Camera', ['a-1', 'ta-1']), ['a-1', 'ta-1'], 'a broad search still finds only their cameras');

  t.comment('the health overview: their departments, their counts');
  await goTo(page, 'health');
  await page.waitForSelector('.health-table tr[data-id]');
  t.same(await dataOf(page, '.health-table tr[data-id]', 'id'), ['countyA', 'townA'], 'only County A and Town A');
  t.equal(await page.textContent('.health-totals [data-count="total"] .count-value'), '2', 'two cameras in all');
  t.equal(await page.textContent('.health-totals [data-count="online"] .count-value'), '1', 'one online');
  t.equal(await page.textContent('.health-totals [data-count="offline"] .count-value'), '1', 'one offline');
  t.match(await page.textContent('.health-table tr[data-id="countyA"]'), /1 online · 1 offline · 2 in all/, 'County A rolls up Town A');
  const text = await visibleText(page);
  t.notOk(/County B|Camera b-1|Camera c-1/.test(text), 'nothing of County B or the city is on the page');
  await page.click('.health-table tr[data-id="countyA"] .dept-pick');
  t.same(await waitForSourceIds(page, ['ta-1'], { selector: '.health-detail .source-list' }), ['ta-1'], 'choosing County A lists its offline camera');
  t.match(await page.textContent('.health-detail .sources-table'), /The camera cannot be reached \(Connection refused\)/, 'with the reason it is offline');

  t.comment('the department tree');
  await goTo(page, 'departments');
  await page.waitForSelector('.dept-row');
  t.same(await dataOf(page, '.dept-row', 'id'), ['countyA', 'townA'], 'the tree holds their departments only');
  t.match(await page.textContent('.dept-row[data-id="countyA"]'), /2 cameras · 1 online · 1 offline/, 'with rolled-up counts');

  t.comment('the reason a camera is offline, in Chinese once the page is');
  await page.evaluate(`localStorage.setItem('wallgate.language', 'zh')`);
  await page.goto(`${gw.baseUrl}/admin.html#health`);
  await page.reload();
  await page.waitForSelector('.health-table tr[data-id="countyA"]', { timeout: 10_000 });
  await page.click('.health-table tr[data-id="countyA"] .dept-pick');
  await waitForSourceIds(page, ['ta-1'], { selector: '.health-detail .source-list' });
  const zh = await page.textContent('.health-detail .sources-table .health-error');
  t.match(zh, /^无法连接摄像机（Connection refused）。$/, `worded from its code: "${zh}"`);

  t.comment('at 3840×2160 the page scales rather than shrinking to a corner');
  const big = await openAdmin(t, gw, 'county-admin', '#health', { width: 3840, height: 2160 });
  await big.waitForSelector('.health-table tr[data-id]');
  const layout = await big.evaluate<{ rem: number; overflow: boolean; navWidth: number }>(
    `({ rem: parseFloat(getComputedStyle(document.documentElement).fontSize), overflow: document.documentElement.scrollWidth > innerWidth, navWidth: document.querySelector('.admin-nav').getBoundingClientRect().width })`,
  );
  t.equal(layout.rem, 28, 'the root font grows to 28 px');
  t.notOk(layout.overflow, 'nothing runs off the side');
  t.ok(layout.navWidth > 300, `the navigation grows with it (${layout.navWidth} px)`);
});

t.test('departments and users: created and edited with the gateway’s errors at the fields', async (t) => {
  const gw = await adminGateway(t);
  await smallTree(gw);
  const chief = await gw.userToken('chief', ['admin'], ['root']);
  const page = await openAdmin(t, gw, 'chief', '#departments');
  await page.waitForSelector('.dept-row[data-id="countyB"]');
  t.same(await dataOf(page, '.dept-row', 'id'), ['root', 'city', 'countyA', 'townA', 'countyB'], 'the whole tree, parents first');

  await page.click('.dept-row[data-id="countyB"] button:has-text("Add child")');
  await page.waitForSelector('#department-create');
  t.equal(await page.inputValue('#department-create-level'), 'township', 'a county’s child is a township by default');
  await page.fill('#department-create-id', 'bad id!');
  await page.fill('#department-create-name', 'Harbour Township');
  await page.click('#department-create button[type=submit]');
  await page.waitForSelector('#department-create-id[aria-invalid="true"]', { timeout: 10_000 });
  t.match(await page.textContent('#department-create-id-error'), /must match pattern/, 'a bad id is refused at the id field');
  await page.fill('#department-create-id', 'harbourB');
  await page.click('#department-create button[type=submit]');
  await page.waitForSelector('.dept-row[data-id="harbourB"]', { timeout: 10_000 });
  t.match(await page.textContent('.dept-row[data-id="harbourB"]'), /Harbour Township.*Township/, 'the new township is in the tree under County B');

  await page.click('.dept-row[data-id="harbourB"] button:has-text("Rename")');
  await page.waitForSelector('#department-edit');
  await page.fill('#department-edit-name', 'Harbour Town');
  await page.click('#department-edit button[type=submit]');
  await page.waitForSelector('.dept-row[data-id="harbourB"] .dept-name:has-text("Harbour Town")', { timeout: 10_000 });
  t.equal((await gw.api('GET', '/api/departments', { token: chief })).json.items[0].children[0].children[1].children[0].name, 'Harbour Town', 'renamed in the gateway');

  await page.click('.dept-row[data-id="countyA"] button:has-text("Delete")');
  await page.click('dialog.confirm [data-confirm=yes]');
  await page.waitForSelector('.section-body > .form-error:has-text("still in use")', { timeout: 10_000 });
  t.match(await page.textContent('.section-body > .form-error'), /Department countyA is still in use/, 'deleting a department with children shows the gateway’s refusal');
  t.equal(await page.locator('.dept-row[data-id="countyA"]').count(), 1, 'and the department stays');

  t.comment('a user: every bad field is marked, then created with a role and a department');
  await goTo(page, 'users');
  await page.getByRole('button', { name: 'New user' }).click();
  await page.waitForSelector('#user-form');
  const roleBoxes = await page.evaluate<string[]>(`Array.from(document.querySelectorAll('#user-form input[name=roles]')).map((box) => box.value)`);
  t.same(roleBoxes, [...ROLES], 'a check box for each of the gateway’s roles');
  await page.fill('#user-form-username', 'x');
  await page.fill('#user-form-password', 'short');
  await page.click('#user-form button[type=submit]');
  await page.waitForSelector('#user-form-username[aria-invalid="true"]', { timeout: 10_000 });
  t.match(await page.textContent('#user-form-username-error'), /expected 2-64 letters/, 'the user name, at its field');
  t.match(await page.textContent('#user-form-password-error'), /expected 10 to 256 characters/, 'the password, at its field');
  t.match(await page.textContent('[data-field="roles"] .field-error'), /non-empty list/, 'no role chosen, under the roles');
  t.match(await page.textContent('[data-field="scopes"] .field-error'), /non-empty list of department ids/, 'no department chosen, under the departments');
  t.equal(await page.getAttribute('[data-field="scopes"] fieldset', 'aria-invalid'), 'true', 'the department group is marked');
  await page.fill('#user-form-username', 'harbour-op');
  await page.fill('#user-form-displayName', 'Harbour operator');
  await page.fill('#user-form-password', 'long-enough-pass');
  await page.check('input[name=roles][value=operator]');
  await page.fill('.scope-filter', 'harbour');
  await page.check('input[name=scopes][value=harbourB]');
  await page.click('#user-form button[type=submit]');
  await page.waitForSelector('.users-table tr[data-username="harbour-op"]', { timeout: 10_000 });
  t.match(await page.textContent('.users-table tr[data-username="harbour-op"]'), /Harbour operator.*Operator.*Harbour Town.*Active/, 'listed with name, role, department and state');
  const harbourToken = await gw.login('harbour-op', 'long-enough-pass');
  t.equal((await gw.api('GET', '/api/auth/me', { token: harbourToken })).status, 200, 'the new user can sign in');

  await page.click('.users-table tr[data-username="harbour-op"] button[data-action=sign-out]');
  await page.click('dialog.confirm button[data-confirm=yes]');
  await page.waitForSelector('.toast:has-text("harbour-op is signed out everywhere")', { timeout: 10_000 });
  t.equal((await gw.api('GET', '/api/auth/me', { token: harbourToken })).status, 401, 'the admin signed the user out everywhere: their token is refused');
  t.equal((await gw.api('GET', '/api/auth/me', { token: chief })).status, 200, 'the admin stays signed in');

  await page.click('.users-table tr[data-username="harbour-op"] button:has-text("Edit")');
  await page.waitForSelector('#user-form');
  t.equal(await page.inputValue('#user-form-password'), '', 'no password is shown when editing');
  await page.check('#user-form-disabled');
  await page.click('#user-form button[type=submit]');
  await page.waitForSelector('.users-table tr[data-username="harbour-op"] .pill.bad', { timeout: 10_000 });
  t.match(await page.textContent('.users-table tr[data-username="harbour-op"]'), /Disabled/, 'the list shows the user disabled');
  await t.rejects(gw.login('harbour-op', 'long-enough-pass'), 'and they can no longer sign in');
});

t.test('live sessions: a viewing appears within seconds and force-stop ends it', async (t) => {
  const gw = await adminGateway(t);
  await gw.userToken('chief', ['admin'], ['root']);
  await gw.addCamera('lobby', { clip: 'h264-720p-2s' });
  const page = await openAdmin(t, gw, 'chief', '#sessions');
  await page.waitForSelector('.sessions-table');
  await page.waitForSelector('.section-body .empty:not([hidden])');
  t.pass('no session at first');

  const urls = await gw.view('lobby');
  const abort = new AbortController();
  t.teardown(() => abort.abort());
  const res = await fetch(urls.flv, { signal: abort.signal });
  t.equal(res.status, 200, 'a viewer is watching over FLV');
  const reader = res.body!.getReader();
  const watching = (async () => {
    try {
      for (;;) if ((await reader.read()).done) return 'ended';
    } catch {
      return 'ended';
    }
  })();

  const started = Date.now();
  // The list refreshes every 2 s by itself: the row must appear without a reload (waitForSelector throws otherwise).
  await page.waitForSelector('.sessions-table tr[data-camera="lobby"]', { timeout: 6_000 });
  t.pass(`the session is listed ${((Date.now() - started) / 1000).toFixed(1)} s later, without a reload`);
  const row = await waitFor(() => tableRows(page, '.sessions-table'), (rows) => /Live/.test(rows[0]?.[2] ?? ''), 10_000);
  t.match(row[0], [/Camera lobby/, 'Main', 'Live', /FLV 1/, /^0:00:\d\d$/], 'camera, stream, state, viewers per output and uptime');

  // The cluster section, single-node mode: this node, its load and the camera it pulls, refreshed by itself.
  await page.click('.admin-nav a[data-section="cluster"]');
  await page.waitForSelector('.cluster-node[data-node] tr[data-camera="lobby"]', { timeout: 6_000 });
  t.match(await page.textContent('.section-body > p.muted'), /single gateway/, 'the cluster section says there is one node');
  t.match(await page.textContent('.cluster-node tr[data-camera="lobby"]'), /Camera lobby.*lobby.*0:00:\d\d.*—/, 'the camera it pulls, for how long, and no fencing token on a single node');
  t.equal(await page.textContent('.cluster-node [data-figure="sessions"] .num'), '1', 'one pull');
  t.equal(await page.textContent('.cluster-node [data-figure="viewers"] .num'), '1', 'one viewer');
  t.match(await page.textContent('.cluster-node h2'), /this node/, 'marked as the node that answered');
  await page.click('.admin-nav a[data-section="sessions"]');
  await page.waitForSelector('.sessions-table tr[data-camera="lobby"]', { timeout: 6_000 });

  await page.click('.sessions-table tr[data-camera="lobby"] button:has-text("Force stop")');
  await page.waitForSelector('dialog.confirm');
  t.match(await page.textContent('dialog.confirm .confirm-message'), /Camera lobby/, 'the confirmation names the camera');
  await page.click('dialog.confirm [data-confirm=yes]');
  await page.waitForSelector('.sessions-table tr[data-camera="lobby"]', { state: 'detached', timeout: 5_000 });
  t.pass('the row goes');
  t.same(await waitFor(() => gw.streams.list(), (l) => l.length === 0, 10_000), [], 'the gateway’s session ended');
  t.equal(await Promise.race([watching, sleep(10_000).then(() => 'still open')]), 'ended', 'the viewer’s stream was closed');
  await sleep(2_500);
  t.equal(await page.locator('.sessions-table tr[data-camera="lobby"]').count(), 0, 'and it stays gone after the next refresh');
});

t.test('an auditor reads the audit log, and sees no sources section', async (t) => {
  const gw = await adminGateway(t);
  await smallTree(gw);
  const chief = await gw.userToken('chief', ['admin'], ['root']);
  const imported = await gw.api('POST', '/api/sources/import?mode=keep-valid', { token: chief, payload: CSV, headers: { 'content-type': 'text/csv' } });
  t.equal(imported.status, 200);
  const lone = await gw.api('POST', '/api/sources', { token: chief, body: camera('lone-1', 'countyB') });
  // Enough entries for more than one page of the log.
  const statuses: number[] = [];
  for (let i = 0; i < 50; i++) statuses.push((await gw.api('POST', '/api/sources', { token: chief, body: camera(`bulk-${i}`, 'townA') })).status);
  t.ok([lone.status, ...statuses].every((s) => s === 201), 'the admin created 51 sources');
  await gw.userToken('watcher', ['auditor'], ['root']);

  const page = await openAdmin(t, gw, 'watcher', '');
  t.same(await dataOf(page, '.admin-nav a', 'section'), ['audit', 'cluster'], 'an auditor is offered the audit log and the cluster view only');
  await page.waitForSelector('.audit-table tbody tr');
  const rows = await tableRows(page, '.audit-table');
  t.equal(rows.length, 50, 'the first page holds 50 entries');
  const seqs = await dataOf(page, '.audit-table tbody tr', 'seq');
  t.ok(seqs.every((s, i) => i === 0 || Number(s) < Number(seqs[i - 1])), 'newest first');

  t.comment('filtered by action');
  await page.fill('input[name=action]', 'source.import');
  const importRows = await waitFor(() => tableRows(page, '.audit-table'), (r) => r.length === 1, 5_000);
  t.match(importRows[0], [/\d/, 'chief', '127.0.0.1', 'source.import', '8 rows', 'OK', /mode: keep-valid.*created: 5.*rejected: 3/], 'the import: time, the admin, IP, action, target, outcome and detail');
  await page.fill('input[name=action]', 'source.create');
  await page.fill('input[name=actor]', 'chief');
  const creates = await waitFor(() => tableRows(page, '.audit-table'), (r) => r.length === 50 && r.every((x) => x[3] === 'source.create'), 5_000);
  t.equal(creates.length, 50, 'a page of creations');
  t.ok(creates.every((x) => x[1] === 'chief'), 'each creation names the admin');
  await page.click('.load-more');
  const allCreates = await waitFor(() => tableRows(page, '.audit-table'), (r) => r.length === 51, 5_000);
  t.match(allCreates[50], [/\d/, 'chief', '127.0.0.1', 'source.create', 'lone-1', 'OK', /departmentId: countyB/], 'older entries load below: the first creation');
  t.equal(await page.locator('.load-more').count(), 0, 'and there is nothing older');
  await page.fill('input[name=actor]', 'nobody');
  await page.waitForSelector('.list-status .empty', { timeout: 5_000 });
  t.pass('an actor with no entries shows an empty log');

  t.comment('the sources section is not theirs');
  await page.evaluate(`location.hash = '#sources'`);
  await page.waitForSelector('.section-body .refused', { timeout: 5_000 });
  t.match(await page.textContent('.section-body'), /not available to your account/, 'a typed #sources says it is not available');
  t.equal(await page.locator('.sources-table, .source-list').count(), 0, 'and shows no list');
});

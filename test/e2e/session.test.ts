import t from 'tap';
import { launchBrowser, signIn, startPlayerGateway } from '../helpers/browser.js';
import { waitFor } from '../helpers/streams.js';

/** How a signed-in user moves between tabs and windows of one browser, and how they leave. */

/** The gateway's answer to a token, asked from outside any browser. */
async function me(baseUrl: string, token: string): Promise<{ status: number; code: unknown }> {
  const res = await fetch(`${baseUrl}/api/auth/me`, { headers: { authorization: `Bearer ${token}` } });
  return { status: res.status, code: ((await res.json()) as { code?: unknown }).code };
}

t.test('a new tab of the same browser is signed in already; signing out in one tab signs out all of them', async (t) => {
  const gw = await startPlayerGateway(t);
  await gw.userToken('op', ['operator'], ['root']);
  const browser = await launchBrowser(t, 'session');
  const first = await browser.page('first');
  await signIn(first, gw.baseUrl, 'op', '/console.html');

  const second = await first.context().newPage();
  await second.goto(`${gw.baseUrl}/admin.html`);
  await waitFor(() => second.evaluate<number>('document.querySelectorAll("header.topbar").length'), (n) => n === 1, 10_000);
  t.match(second.url(), /\/admin\.html$/, 'a page opened in a new tab shows without signing in again');
  t.equal(await second.textContent('.topbar .who'), 'op', 'as the same user');

  const stranger = await browser.page('other-browser');
  await stranger.goto(`${gw.baseUrl}/console.html`);
  await stranger.waitForURL(/\/login\.html\?next=%2Fconsole\.html/, { timeout: 10_000 });
  t.pass('another browser (context) must sign in: the session never leaves the browser it was made in');

  const token = await first.evaluate<string>('JSON.parse(sessionStorage.getItem("wallgate.session")).token');
  t.equal((await me(gw.baseUrl, token)).status, 200, 'the gateway takes the token while signed in');
  await first.click('.topbar button[data-action=sign-out]');
  await first.waitForURL(/\/login\.html/, { timeout: 10_000 });
  await second.waitForURL(/\/login\.html/, { timeout: 10_000 });
  t.pass('signing out in one tab took the other tab back to the sign-in page');
  const refused = await me(gw.baseUrl, token);
  t.equal(refused.status, 401, 'the gateway refuses the signed-out token: copied out of the browser, it is worthless');
  t.equal(refused.code, 'GW_ERR_UNAUTHENTICATED');
  const third = await first.context().newPage();
  await third.goto(`${gw.baseUrl}/console.html`);
  await third.waitForURL(/\/login\.html/, { timeout: 10_000 });
  t.pass('and a new tab is not signed in any more');
});

t.test('sign out everywhere, from the user menu, ends the sign-ins of other browsers too', async (t) => {
  const gw = await startPlayerGateway(t);
  await gw.userToken('op', ['operator'], ['root']);
  const browser = await launchBrowser(t, 'session-everywhere');
  const office = await browser.page('office');
  const wallPc = await browser.page('wall-pc');
  await signIn(office, gw.baseUrl, 'op', '/console.html');
  await signIn(wallPc, gw.baseUrl, 'op', '/console.html');
  const tokenOf = (page: typeof office) => page.evaluate<string>('JSON.parse(sessionStorage.getItem("wallgate.session")).token');
  const tokens = [await tokenOf(office), await tokenOf(wallPc)];
  t.not(tokens[0], tokens[1], 'two browsers, two sign-ins');

  await office.click('.topbar .user-menu summary');
  await office.click('.topbar button[data-action=sign-out-everywhere]');
  await office.waitForURL(/\/login\.html/, { timeout: 10_000 });
  for (const [i, token] of tokens.entries()) t.equal((await me(gw.baseUrl, token)).status, 401, `sign-in ${i + 1} of 2 is refused by the gateway`);
  // The other browser learns at its next request; a reload is one.
  await wallPc.reload();
  await wallPc.waitForURL(/\/login\.html/, { timeout: 10_000 });
  t.pass('the other browser is back at the sign-in page');
  await signIn(office, gw.baseUrl, 'op', '/console.html');
  t.equal((await me(gw.baseUrl, await tokenOf(office))).status, 200, 'signing in again works');
});

t.test('the sign-in page goes on only to a page of the gateway, never back to itself', async (t) => {
  const gw = await startPlayerGateway(t);
  await gw.userToken('op', ['operator'], ['root']);
  const browser = await launchBrowser(t, 'session-next');
  for (const [next, lands] of [
    ['https://evil.example/', '/console.html'],
    ['//evil.example/x', '/console.html'],
    ['/login.html', '/console.html'],
    ['/', '/console.html'],
    ['/%6Cogin.html', '/console.html'],
    ['/admin.html#audit', '/admin.html#audit'],
  ] as const) {
    const page = await browser.page(`next-${lands.length}`);
    await page.goto(`${gw.baseUrl}/login.html?next=${encodeURIComponent(next)}`);
    await page.fill('input[name=username]', 'op');
    await page.fill('input[name=password]', 'correct horse battery');
    await page.click('button[type=submit]');
    await page.waitForURL((u) => u.pathname !== '/login.html', { timeout: 10_000 });
    const url = new URL(page.url());
    t.equal(url.origin + url.pathname + url.hash, gw.baseUrl + lands, `next=${next} lands on ${lands}`);
    await page.context().close();
  }
});

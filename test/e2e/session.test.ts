import t from 'tap';
import { launchBrowser, signIn, startPlayerGateway } from '../helpers/browser.js';
import { waitFor } from '../helpers/streams.js';

/** How a signed-in user moves between tabs and windows of one browser, and how they leave. */

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

  await first.click('.topbar button:last-child');
  await first.waitForURL(/\/login\.html/, { timeout: 10_000 });
  await second.waitForURL(/\/login\.html/, { timeout: 10_000 });
  t.pass('signing out in one tab took the other tab back to the sign-in page');
  const third = await first.context().newPage();
  await third.goto(`${gw.baseUrl}/console.html`);
  await third.waitForURL(/\/login\.html/, { timeout: 10_000 });
  t.pass('and a new tab is not signed in any more');
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

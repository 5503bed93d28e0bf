import t from 'tap';
import { launchBrowser } from '../helpers/browser.js';
import { startGateway } from '../helpers/gateway.js';

t.test('/docs renders the operations in Chromium under its own CSP, with no violation', async (t) => {
  const gw = await startGateway(t);
  const base = await gw.http.listen({ port: 0, host: '127.0.0.1' });
  const { page: open } = await launchBrowser(t, 'docs');
  const page = await open('docs');
  const violations: string[] = [];
  page.on('console', (m) => {
    if (/Content Security Policy|Refused to/i.test(m.text())) violations.push(m.text());
  });
  const res = await page.goto(`${base}/docs`);
  t.equal(res?.status(), 200);
  const csp = res?.headers()['content-security-policy'] ?? '';
  t.match(csp, "script-src 'self'", 'the page has its own policy');
  t.notMatch(csp, 'unsafe-inline', 'with no inline script or style allowed');
  t.notMatch(csp, 'unsafe-eval');
  await page.waitForSelector('.opblock', { timeout: 30_000 });
  const operations = await page.locator('.opblock').count();
  t.ok(operations > 50, `${operations} operations rendered`);
  t.ok(await page.locator('a[href="/api/control/schema.json"]').count(), 'the control protocol is linked');
  t.same(violations, [], 'no CSP violation');
});

import type { Page } from 'playwright-core';
import type { Test } from 'tap';
import { launchBrowser, signIn, startPlayerGateway, type TestBrowser } from './browser.js';
import type { StreamingGateway } from './streams.js';
import { waitFor } from './streams.js';

/**
 * Helpers for the admin pages' browser tests. Everything read from a page is plain JavaScript text:
 * tsx would compile a function with helpers that do not exist in the page.
 */

/** A gateway serving the player in English, so the tests read the labels an English-speaking user sees. */
export function adminGateway(t: Test): Promise<StreamingGateway> {
  return startPlayerGateway(t, {}, { player: { language: 'en' } });
}

/** One Chromium per test, however many users it signs in (each in a context of its own). */
const browsers = new WeakMap<Test, Promise<TestBrowser>>();

/** Signs `username` in through the sign-in page and opens the admin page at `hash`, once its section is drawn. */
export async function openAdmin(t: Test, gw: StreamingGateway, username: string, hash: string, viewport?: { width: number; height: number }): Promise<Page> {
  let browser = browsers.get(t);
  if (!browser) browsers.set(t, (browser = launchBrowser(t, `admin-${t.name.replace(/\W+/g, '-').slice(0, 40)}`)));
  const page = await (await browser).page(viewport ? `${username}-${viewport.width}` : username, viewport);
  await signIn(page, gw.baseUrl, username, '/admin.html');
  await page.waitForSelector('.admin-nav a', { timeout: 15_000 });
  // signIn waits for a path without a hash; a section is then opened by its address, as a bookmark would.
  if (hash) {
    await page.goto(`${gw.baseUrl}/admin.html${hash}`);
    await page.waitForSelector(`.section-body[data-section="${hash.slice(1)}"]`, { timeout: 15_000 });
  }
  return page;
}

/** Goes to a section by its link in the navigation, as a user would. */
export async function goTo(page: Page, section: string): Promise<void> {
  await page.click(`.admin-nav a[data-section="${section}"]`);
  await page.waitForSelector(`.section-body[data-section="${section}"]`, { timeout: 10_000 });
}

/** The text of each cell of each body row of the table matching `selector`. */
export const tableRows = (page: Page, selector: string) =>
  page.evaluate<string[][]>(
    `Array.from(document.querySelectorAll(${JSON.stringify(`${selector} tbody tr`)})).map((tr) => Array.from(tr.cells).map((td) => td.textContent.trim()))`,
  );

/** The `data-<key>` of every element matching `selector`, in page order. */
export const dataOf = (page: Page, selector: string, key: string) =>
  page.evaluate<string[]>(`Array.from(document.querySelectorAll(${JSON.stringify(selector)})).map((el) => el.dataset[${JSON.stringify(key)}] || '')`);

/** The ids of the rows of a source list, the search they answer, and whether it is still waiting for the gateway. */
const sourceListState = (page: Page, selector: string) =>
  page.evaluate<{ ids: string[]; q: string | null; busy: boolean }>(`(() => {
    const list = document.querySelector(${JSON.stringify(selector)});
    if (!list) return { ids: [], q: null, busy: true };
    return {
      ids: Array.from(list.querySelectorAll('tbody tr[data-id]')).map((tr) => tr.dataset.id).sort(),
      q: list.dataset.q ?? null,
      busy: list.getAttribute('aria-busy') === 'true',
    };
  })()`);

/**
 * Waits until the source list has settled on exactly `ids` (in any order), answering the search `q`
 * when one is given; returns the ids it shows last.
 */
export async function waitForSourceIds(page: Page, ids: string[], opts: { selector?: string; q?: string; timeoutMs?: number } = {}): Promise<string[]> {
  const want = [...ids].sort().join(',');
  const seen = await waitFor(
    () => sourceListState(page, opts.selector ?? '.section-body .source-list'),
    (s) => !s.busy && (opts.q === undefined || s.q === opts.q) && s.ids.join(',') === want,
    opts.timeoutMs ?? 10_000,
  );
  return seen.ids;
}

/** Types into the search box, as a user does, and waits for the list to answer that search. */
export async function search(page: Page, text: string, ids: string[]): Promise<string[]> {
  await page.fill('input[name=q]', text);
  return waitForSourceIds(page, ids, { q: text });
}

/** The whole visible text of the page (what a user can read), for proving a secret is not on screen. */
export const visibleText = (page: Page) => page.evaluate<string>('document.body.innerText');

/** Every value in every input, textarea and select of the page: a secret must not sit in a field either. */
export const fieldValues = (page: Page) =>
  page.evaluate<string[]>(`Array.from(document.querySelectorAll('input, textarea, select')).map((el) => el.value)`);

import type { Page } from 'playwright-core';
import { signIn, type TestBrowser } from './browser.js';
import { waitFor, type StreamingGateway } from './streams.js';

/** A wall of two 1080p monitors side by side, each in four tiles (s1-1..s1-4, s2-1..s2-4). */
export async function twoMonitorWall(gw: StreamingGateway, id: string): Promise<void> {
  const res = await gw.api('POST', '/api/walls', {
    token: gw.adminToken,
    body: { id, name: `Wall ${id}`, departmentId: 'root', screens: { rows: 1, cols: 2, width: 1920, height: 1080 }, layout: '4' },
  });
  if (res.status !== 201) throw new Error(`wall ${id}: ${res.body}`);
}

/** The wall as the gateway holds it. */
export async function wallState(gw: StreamingGateway, id: string): Promise<any> {
  const res = await gw.api('GET', `/api/walls/${id}`, { token: gw.adminToken });
  if (res.status !== 200) throw new Error(`wall ${id}: ${res.body}`);
  return res.json.wall;
}

/**
 * A console signed in as `username`, with the wall's miniature drawn and the control connection open.
 * It speaks the gateway's default, Chinese, unless asked for English (the operator's own choice, kept
 * in the browser).
 */
export async function openConsole(browser: TestBrowser, gw: StreamingGateway, label: string, username: string, wallId: string, language: 'zh' | 'en' = 'zh'): Promise<Page> {
  const page = await browser.page(label);
  if (language === 'en') await page.addInitScript(`localStorage.setItem('wallgate.language', 'en')`);
  await signIn(page, gw.baseUrl, username, `/console.html?wall=${wallId}`);
  await page.waitForSelector('[data-role=connection][data-state=open]', { timeout: 15_000 });
  await page.waitForSelector('.mini-tile[data-tile]', { timeout: 15_000 });
  return page;
}

export interface MiniTile {
  tile: string;
  camera: string;
  status: string;
  text: string;
  lock: string;
  selected: boolean;
}

/** Plain JavaScript text: tsx would compile a function with helpers that do not exist in the page. */
const MINI_TILES = `Array.from(document.querySelectorAll('.mini-tile')).map((el) => ({
  tile: el.dataset.tile || '',
  camera: el.dataset.camera || '',
  status: el.dataset.status || '',
  text: el.textContent || '',
  lock: (el.querySelector('.mini-tile-lock') || {}).textContent || '',
  selected: el.classList.contains('selected'),
}))`;

export const miniTiles = (page: Page) => page.evaluate<MiniTile[]>(MINI_TILES);

export async function miniTile(page: Page, tileId: string, ok: (t: MiniTile | undefined) => boolean, timeoutMs = 5_000): Promise<MiniTile | undefined> {
  return waitFor(async () => (await miniTiles(page)).find((x) => x.tile === tileId), ok, timeoutMs, 50);
}

/** The cameras the search lists, in order. */
export const resultIds = (page: Page) =>
  page.evaluate<string[]>(`Array.from(document.querySelectorAll('[data-role=camera-results] .result')).map((el) => el.dataset.camera)`);

/**
 * Types into a search box like a person, then waits until the list answers everything typed (a pause
 * in typing may have shown the results of a prefix first, which are replaced under the pointer).
 */
export async function typeSearch(page: Page, box: 'camera' | 'vehicle', typed: string, timeoutMs = 5_000): Promise<void> {
  const input = page.locator(`[data-role=${box}-search]`);
  await input.pressSequentially(typed, { delay: 40 });
  const query = (await input.inputValue()).trim();
  await page.locator(`[data-role=${box}-results][aria-busy=false]`).and(page.locator(`[data-query="${query}"]`)).waitFor({ timeout: timeoutMs });
}

/** Types into the camera search and returns the cameras listed for the whole text, sorted. */
export async function searchFor(page: Page, typed: string): Promise<string[]> {
  await typeSearch(page, 'camera', typed);
  return (await resultIds(page)).sort();
}

export const outcome = (page: Page) => page.locator('[data-role=outcome]').textContent().then((s) => s ?? '');

export const resultSelector = (cameraId: string) => `[data-role=camera-results] .result[data-camera="${cameraId}"]`;
export const tileSelector = (tileId: string) => `.mini-tile[data-tile="${tileId}"]`;

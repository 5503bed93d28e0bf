import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import type { Test } from 'tap';
import type { Config } from '../../gateway/src/config/schema.js';
import type { BuildOptions } from '../../gateway/src/app.js';
import { buildPlayer } from '../../scripts/build-player.js';
import { TEST_PASSWORD, type DeepPartial } from './gateway.js';
import { startStreamingGateway, waitFor, type StreamingGateway } from './streams.js';

export const CHROMIUM = '/usr/bin/chromium';

/**
 * Headless in a container, no GPU, nothing fetched from the network, video allowed to play unmuted
 * by no gesture. Not --use-fake-ui-for-media-stream: it grants camera permission, and a page with that
 * permission offers its real addresses instead of mDNS names, hiding what real browsers do.
 */
export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--autoplay-policy=no-user-gesture-required',
  // Background tabs of one headless browser must keep decoding: each context stands for a separate screen.
  '--disable-background-timer-throttling',
  '--disable-renderer-backgrounding',
  '--disable-backgrounding-occluded-windows',
];
const ARTIFACTS = 'test-artifacts';

let built: Promise<string> | null = null;

/**
 * The player as the sources are now, built once per test process into its own directory: a test
 * never runs against a stale dist/player, and parallel test files never rebuild under each other.
 */
export function playerBuild(): Promise<string> {
  built ??= (async () => {
    // Kept until the process ends: every test of the file serves it.
    const dir = mkdtempSync(join(tmpdir(), 'wallgate-player-'));
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
    await buildPlayer({ outDir: dir, minify: false });
    return dir;
  })();
  return built;
}

/** A streaming gateway (simulated cameras, real ffmpeg) that serves the freshly built player. */
export async function startPlayerGateway(
  t: Test,
  streams: DeepPartial<Config['streams']> = {},
  config: Omit<DeepPartial<Config>, 'streams'> = {},
  opts: BuildOptions = {},
): Promise<StreamingGateway> {
  const dir = await playerBuild();
  return startStreamingGateway(t, streams, opts, { ...config, player: { ...config.player, dir } });
}

export interface TestBrowser {
  browser: Browser;
  /** A fresh context (its own session storage, like a separate machine) and page. */
  page(label: string, viewport?: { width: number; height: number }): Promise<Page>;
}

/**
 * Debian's Chromium, headless, closed at teardown. When the test failed, every page it opened is
 * saved first as a screenshot and its console log in test-artifacts/ (CI keeps them).
 */
export async function launchBrowser(t: Test, name: string): Promise<TestBrowser> {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: the browser tests need Debian's chromium (scripts/setup.sh --tests installs it)`);
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, timeout: 30_000 });
  const pages: Array<{ label: string; page: Page; log: string[] }> = [];
  const contexts: BrowserContext[] = [];
  t.teardown(async () => {
    if (!t.passing()) {
      mkdirSync(ARTIFACTS, { recursive: true });
      for (const { label, page, log } of pages) {
        if (page.isClosed()) continue;
        const base = join(ARTIFACTS, `${name}-${label}-${Date.now()}`);
        await page.screenshot({ path: `${base}.png` }).catch(() => {});
        writeFileSync(`${base}.log`, `${page.url()}\n${log.join('\n')}\n`);
        t.comment(`failure artifacts: ${base}.png, ${base}.log`);
      }
    }
    await browser.close();
  });
  return {
    browser,
    async page(label, viewport = { width: 1920, height: 1080 }) {
      const context = await browser.newContext({ viewport, locale: 'en-GB' });
      contexts.push(context);
      const page = await context.newPage();
      const log: string[] = [];
      page.on('console', (m) => log.push(`${m.type()}: ${m.text()}`));
      page.on('pageerror', (e) => log.push(`pageerror: ${e.message}`));
      pages.push({ label, page, log });
      return page;
    },
  };
}

/** Signs in through the sign-in page, as a user would, and lands on `next`. */
export async function signIn(page: Page, baseUrl: string, username: string, next: string, password = TEST_PASSWORD): Promise<void> {
  await page.goto(`${baseUrl}/login.html?next=${encodeURIComponent(next)}`);
  await page.fill('input[name=username]', username);
  await page.fill('input[name=password]', password);
  await page.click('button[type=submit]');
  await page.waitForURL((u) => u.pathname + u.search === next, { timeout: 15_000 });
}

export interface TileSample {
  tile: string;
  camera: string;
  profile: string;
  state: string;
  transport: string;
  badge: string;
  label: string;
  currentTime: number;
  frames: number;
  width: number;
}

/**
 * Every tile of a wall page, read from the DOM as a user sees it. Plain JavaScript text: tsx would
 * compile a function with helpers that do not exist in the page.
 */
const TILES = `Array.from(document.querySelectorAll('.tile')).map((el) => {
  const v = el.querySelector('video');
  return {
    tile: el.dataset.tile || '',
    camera: el.dataset.camera || '',
    profile: el.dataset.profile || '',
    state: el.dataset.state || '',
    transport: el.dataset.transport || '',
    badge: (el.querySelector('.tile-badge') || {}).textContent || '',
    label: (el.querySelector('.tile-label') || {}).textContent || '',
    currentTime: v ? v.currentTime : 0,
    frames: v ? v.getVideoPlaybackQuality().totalVideoFrames : 0,
    width: v ? v.videoWidth : 0,
  };
})`;

export const tiles = (page: Page) => page.evaluate<TileSample[]>(TILES);

export async function waitForTiles(page: Page, ok: (tiles: TileSample[]) => boolean, timeoutMs: number, everyMs = 200): Promise<TileSample[]> {
  return waitFor(() => tiles(page), ok, timeoutMs, everyMs);
}

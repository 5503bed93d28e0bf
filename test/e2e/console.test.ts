import type { Page } from 'playwright-core';
import t, { type Test } from 'tap';
import { launchBrowser, signIn, startPlayerGateway, tiles, waitForTiles, type TileSample } from '../helpers/browser.js';
import { miniTile, miniTiles, openConsole, outcome, resultIds, resultSelector, searchFor, tileSelector, twoMonitorWall, typeSearch, wallState } from '../helpers/console.js';
import { waitFor, type StreamingGateway } from '../helpers/streams.js';

/**
 * The operator console in a real Chromium against a real gateway, real ffmpeg and simulated cameras,
 * with the wall screens it drives open beside it: what operators in the command centre see.
 */

const CLIP = { clip: 'h264-720p-1s' } as const;

// Four scenarios, each with its own gateway, cameras and browser, on a machine other suites share:
// more than the default budget of one file, which would end the run midway rather than fail a check.
t.setTimeout(240_000);

async function cameras(gw: StreamingGateway, ids: string[]) {
  for (const id of ids) await gw.addCamera(id, CLIP);
}

/** A wall screen showing monitor 1 of `wallId`, with its four tiles drawn. */
async function wallScreen(browser: Awaited<ReturnType<typeof launchBrowser>>, gw: StreamingGateway, username: string, wallId: string): Promise<Page> {
  const page = await browser.page('wall-screen');
  await signIn(page, gw.baseUrl, username, `/wall.html?wall=${wallId}&screen=1`);
  await waitForTiles(page, (ts) => ts.length === 4, 15_000);
  return page;
}

/** The screen's tile `tileId`, once `ok` holds. */
async function screenTile(page: Page, tileId: string, ok: (x: TileSample) => boolean, timeoutMs: number): Promise<TileSample | undefined> {
  const all = await waitForTiles(page, (ts) => ts.some((x) => x.tile === tileId && ok(x)), timeoutMs, 100);
  return all.find((x) => x.tile === tileId);
}

/** The tile is live and its picture moves: currentTime and decoded frames go on growing. */
async function assertPlays(t: Test, page: Page, tileId: string, cameraId: string) {
  const live = await screenTile(page, tileId, (x) => x.camera === cameraId && x.state === 'live' && x.currentTime > 0, 25_000);
  t.equal(live?.state, 'live', `the screen's tile ${tileId} plays ${cameraId} live (${live?.transport})`);
  if (!live) return;
  const later = await screenTile(page, tileId, (x) => x.camera === cameraId && x.currentTime > live.currentTime + 1 && x.frames > live.frames + 10, 10_000);
  t.ok(later, `its video advances (currentTime ${live.currentTime.toFixed(2)} → ${later?.currentTime.toFixed(2)} s)`);
}

t.test('an operator assigns a camera in the console and another screen shows it within a second', async (t) => {
  const gw = await startPlayerGateway(t);
  const all = ['gate-east-1', 'gate-east-2', 'gate-west-1', 'yard-1'];
  await cameras(gw, all);
  await twoMonitorWall(gw, 'hall');
  for (const u of ['opA', 'opB', 'opC']) await gw.userToken(u, ['operator'], ['root']);
  const bus = await gw.api('POST', '/api/vehicles', {
    token: gw.adminToken,
    body: { id: 'bus-1', plate: '粤A12345', category: 'passenger', company: '临江长途客运', departmentId: 'root', terminalId: 'T0001', sim: '14400000001', channels: [{ channel: 1, name: 'front road', sourceId: 'yard-1' }] },
  });
  if (bus.status !== 201) throw new Error(`vehicle: ${bus.body}`);
  const browser = await launchBrowser(t, 'console-assign');

  const screen = await wallScreen(browser, gw, 'opB', 'hall');
  const watcher = await openConsole(browser, gw, 'console-c', 'opC', 'hall');
  const a = await openConsole(browser, gw, 'console-a', 'opA', 'hall', 'en');

  t.same(await waitFor(async () => (await resultIds(a)).sort(), (ids) => ids.length === all.length, 5_000, 50), [...all].sort(), 'before typing, the search lists every camera');
  t.same(await searchFor(a, 'gate'), ['gate-east-1', 'gate-east-2', 'gate-west-1'], 'typing "gate" narrows the list to the gate cameras');
  t.same(await searchFor(a, '-east'), ['gate-east-1', 'gate-east-2'], '"gate-east" narrows it to two');
  t.same(await searchFor(a, '-2'), ['gate-east-2'], '"gate-east-2" to one');
  t.equal(await a.locator('[data-role=search-count]').textContent(), '1 camera', 'the count line says how many match');

  // Both ends keep their own clock reading; the browser contexts share the machine's clock.
  await screen.evaluate(`(() => {
    window.__shownAt = null;
    const check = () => {
      const el = document.querySelector('.tile[data-tile="s1-2"]');
      if (window.__shownAt === null && el && el.dataset.camera === 'gate-east-2') window.__shownAt = Date.now();
    };
    new MutationObserver(check).observe(document.body, { subtree: true, childList: true, attributes: true, attributeFilter: ['data-camera'] });
  })()`);
  await a.evaluate(`document.addEventListener('drop', () => { window.__droppedAt = Date.now(); }, { capture: true, once: true })`);
  await a.dragAndDrop(resultSelector('gate-east-2'), tileSelector('s1-2'));
  // The page's own observer took the time; polling here only waits for it (waitForFunction would need eval, which the CSP forbids).
  const shownAt = await waitFor(() => screen.evaluate<number | null>('window.__shownAt'), (at) => at !== null, 5_000, 20);
  const droppedAt = await a.evaluate<number>('window.__droppedAt');
  if (shownAt === null) return t.fail('the wall screen never showed the dropped camera');
  const ms = shownAt - droppedAt;
  t.comment(`drop in the console → camera on the wall screen: ${ms} ms`);
  t.ok(ms >= 0 && ms < 1_000, `the wall screen shows the dropped camera ${ms} ms after the drop (under 1 s)`);

  const mine = await miniTile(a, 's1-2', (x) => x?.camera === 'gate-east-2');
  t.match(mine?.text, /Camera gate-east-2/, "the operator's miniature shows the camera on the tile, by name");
  t.match(await outcome(a), /Camera gate-east-2 is on tile s1-2/, 'and the console says so');

  await assertPlays(t, screen, 's1-2', 'gate-east-2');

  const entry = watcher.locator('[data-role=activity] li[data-by="opA"][data-cause="tile.assign"]');
  await entry.waitFor({ timeout: 5_000 });
  t.match(await entry.textContent(), /opA .*s1-2 → Camera gate-east-2/, "another operator's console lists opA's change in its activity");
  t.match(await entry.getAttribute('class'), /\bother\b/, 'marked as somebody else’s change');
  const watched = await miniTile(watcher, 's1-2', (x) => x?.camera === 'gate-east-2' && x.status === 'live', 10_000);
  t.equal(watched?.status, 'live', "its miniature shows the tile's stream as live, as the gateway reports it");
  t.equal(await a.locator('[data-role=activity] li[data-by="opA"].mine').count(), 1, "in opA's own console the entry is marked as theirs");

  t.comment("a vehicle's channel is a camera too: found by plate, dragged onto a tile, then cleared");
  await a.click('[data-tab=vehicles]');
  await typeSearch(a, 'vehicle', '粤A123');
  const channel = '[data-role=vehicle-results] .result[data-camera="yard-1"]';
  t.match(await a.locator('[data-role=vehicle-results] li[data-vehicle="bus-1"]').textContent(), /粤A12345.*1 · front road/, 'the vehicle is listed with its channels');
  await a.dragAndDrop(channel, tileSelector('s1-3'));
  t.equal((await miniTile(a, 's1-3', (x) => x?.camera === 'yard-1'))?.camera, 'yard-1', "the channel's camera is on the tile");
  t.equal((await screenTile(screen, 's1-3', (x) => x.camera === 'yard-1', 5_000))?.camera, 'yard-1', 'and on the wall screen');
  await a.click(tileSelector('s1-3'));
  await a.click('[data-action=clear]');
  t.equal((await miniTile(a, 's1-3', (x) => x?.camera === ''))?.camera, '', 'Clear empties the selected tile');
  t.equal((await screenTile(screen, 's1-3', (x) => x.state === 'empty', 5_000))?.camera, '', 'on the wall screen too');
});

t.test('a tour started from the console rotates a tile of the wall every 5 s, and stops', async (t) => {
  const gw = await startPlayerGateway(t);
  await cameras(gw, ['tour-1', 'tour-2', 'tour-3']);
  await twoMonitorWall(gw, 'hall');
  for (const u of ['opA', 'opB']) await gw.userToken(u, ['operator'], ['root']);
  const browser = await launchBrowser(t, 'console-tour');
  const screen = await wallScreen(browser, gw, 'opB', 'hall');
  const a = await openConsole(browser, gw, 'console-a', 'opA', 'hall', 'en');

  t.same(await searchFor(a, 'tour'), ['tour-1', 'tour-2', 'tour-3'], 'the search finds the three tour cameras');
  await a.click(`${resultSelector('tour-1')} [data-action=tour-add]`);
  await a.click(`${resultSelector('tour-2')} [data-action=tour-add]`);
  await a.click(`${resultSelector('tour-2')} [data-action=tour-add]`);
  t.same(
    await a.locator('[data-role=tour-list] li[data-camera]').evaluateAll((els) => els.map((e) => e.getAttribute('data-camera'))),
    ['tour-1', 'tour-2'],
    'the tour list collects the cameras added from the search, each once',
  );

  await a.click(tileSelector('s1-1'));
  t.ok((await miniTile(a, 's1-1', (x) => !!x?.selected))?.selected, 'a click selects the tile');
  await a.fill('[data-role=tour-name]', 'Gate tour');
  await a.fill('[data-role=tour-dwell]', '3');
  await a.click('[data-action=tour-start]');
  t.match(await a.locator('.tour-form .field-error').textContent(), /At least 5 seconds/, 'a dwell under 5 s is refused with a clear message');

  await screen.evaluate(`(() => {
    window.__shown = [];
    const check = () => {
      const el = document.querySelector('.tile[data-tile="s1-1"]');
      const cam = el ? el.dataset.camera : '';
      const last = window.__shown[window.__shown.length - 1];
      if (cam && (!last || last.camera !== cam)) window.__shown.push({ camera: cam, at: Date.now() });
    };
    new MutationObserver(check).observe(document.body, { subtree: true, childList: true, attributes: true, attributeFilter: ['data-camera'] });
  })()`);
  await a.fill('[data-role=tour-dwell]', '5');
  await a.click('[data-action=tour-start]');
  await a.locator('[data-role=tours] li[data-tour]').waitFor({ timeout: 5_000 });
  t.match(await a.locator('[data-role=tours] li[data-tour]').textContent(), /Gate tour.*s1-1 · 2 cameras · 5 s · by opA/, 'the console lists the running tour');
  t.match((await miniTile(a, 's1-1', (x) => /↻ Gate tour/.test(x?.text ?? '')))?.text, /↻ Gate tour · 5 s/, 'the miniature marks the tile as touring');

  await assertPlays(t, screen, 's1-1', 'tour-1');
  const shown = await waitFor(() => screen.evaluate<Array<{ camera: string; at: number }>>('window.__shown'), (s) => s.length >= 2, 15_000, 50);
  t.same(
    shown.slice(0, 2).map((x) => x.camera),
    ['tour-1', 'tour-2'],
    'the wall screen shows the first camera of the tour, then the next',
  );
  const dwell = shown[1]!.at - shown[0]!.at;
  t.comment(`tour rotation after ${dwell} ms`);
  t.ok(dwell >= 4_000 && dwell <= 7_000, `the tile moves on after about 5 s (${dwell} ms)`);
  await assertPlays(t, screen, 's1-1', 'tour-2');

  await a.click('[data-role=tours] [data-action=tour-stop]');
  await a.locator('[data-role=tours] li[data-tour]').waitFor({ state: 'detached', timeout: 5_000 });
  t.match(await outcome(a), /Tour "Gate tour" stopped/, 'stopping it is confirmed');
  const wall = await wallState(gw, 'hall');
  t.same(wall.tours, {}, 'the gateway runs no tour any more');
  t.equal(wall.tiles['s1-1'].content.kind, 'camera', 'the tile keeps the camera it showed');
  const after = await miniTile(a, 's1-1', (x) => !/↻/.test(x?.text ?? ''));
  t.notMatch(after?.text, /↻/, 'the miniature no longer marks the tile as touring');
});

t.test('locks name their holder to others; presets bring a tile back; a plan shows a banner until reverted', async (t) => {
  const gw = await startPlayerGateway(t);
  await cameras(gw, ['lock-1', 'lock-2', 'lock-3']);
  await twoMonitorWall(gw, 'hall');
  for (const u of ['opA', 'opB']) await gw.userToken(u, ['operator'], ['root']);
  await gw.userToken('sup', ['supervisor'], ['root']);
  const browser = await launchBrowser(t, 'console-locks');
  const a = await openConsole(browser, gw, 'console-a', 'opA', 'hall', 'en');
  const b = await openConsole(browser, gw, 'console-b', 'opB', 'hall');

  await a.click(tileSelector('s1-1'));
  await a.click('[data-action=lock]');
  t.match((await miniTile(a, 's1-1', (x) => /opA/.test(x?.lock ?? '')))?.lock, /opA/, "opA's miniature shows the tile locked by opA");
  t.match((await miniTile(b, 's1-1', (x) => /opA/.test(x?.lock ?? '')))?.lock, /opA/, "opB's miniature shows who holds the lock");
  t.equal(await b.locator('[data-action=break-lock]').count(), 0, 'an operator is offered no "break lock"');

  await b.dragAndDrop(resultSelector('lock-1'), tileSelector('s1-1'));
  const refusal = await waitFor(() => outcome(b), (text) => text !== '', 5_000, 50);
  t.equal(refusal, '窗口 s1-1 已被 opA 锁定。', "opB's drop on the locked tile is refused, naming opA (opB's console speaks Chinese)");
  t.equal(await b.locator('[data-role=outcome]').getAttribute('data-kind'), 'error', 'as an error');
  t.equal((await wallState(gw, 'hall')).tiles['s1-1'].content.kind, 'empty', 'and the tile is unchanged');

  // Click-to-assign, as a keyboard or touch user would: pick the camera, then the tile.
  await a.click(resultSelector('lock-2'));
  await a.locator('[data-role=picked]').waitFor({ timeout: 2_000 });
  await a.click(tileSelector('s1-2'));
  t.equal((await miniTile(a, 's1-2', (x) => x?.camera === 'lock-2'))?.camera, 'lock-2', 'a picked camera goes on the tile clicked next');

  await a.click('[data-tab=presets]');
  await a.fill('[data-role=preset-name]', 'Morning');
  await a.click('[data-action=preset-save]');
  await b.click('[data-tab=presets]');
  await b.locator('[data-role=presets] li[data-preset]', { hasText: 'Morning' }).waitFor({ timeout: 5_000 });
  t.pass("the saved preset appears in opB's console too");

  await a.dragAndDrop(resultSelector('lock-3'), tileSelector('s1-2'));
  t.equal((await miniTile(a, 's1-2', (x) => x?.camera === 'lock-3'))?.camera, 'lock-3', 'the tile is changed');
  await a.click('[data-role=presets] li[data-preset] [data-action=preset-recall]');
  t.equal((await miniTile(a, 's1-2', (x) => x?.camera === 'lock-2'))?.camera, 'lock-2', 'recalling the preset brings the tile back');
  t.equal((await miniTile(b, 's1-2', (x) => x?.camera === 'lock-2'))?.camera, 'lock-2', "in opB's console as well");

  await a.click(tileSelector('s1-1'));
  await a.click('[data-action=unlock]');
  await miniTile(b, 's1-1', (x) => x?.lock === '');
  await b.dragAndDrop(resultSelector('lock-1'), tileSelector('s1-1'));
  t.equal((await miniTile(b, 's1-1', (x) => x?.camera === 'lock-1'))?.camera, 'lock-1', 'once unlocked, opB can put a camera on the tile');

  t.comment('emergency plans: a supervisor saves one, an operator activates and reverts it');
  const sup = await openConsole(browser, gw, 'console-sup', 'sup', 'hall');
  await sup.click('[data-tab=presets]');
  t.equal(await a.locator('[data-action=plan-save]').count(), 0, 'an operator may not save plans');
  await sup.fill('[data-role=plan-name]', 'Flood');
  await sup.fill('[data-role=plan-priority]', '80');
  await sup.click('[data-action=plan-save]');
  await a.locator('[data-role=plans] li[data-plan]', { hasText: 'Flood' }).waitFor({ timeout: 5_000 });
  t.equal(await a.locator('[data-role=plans] [data-action=plan-delete]').count(), 0, 'an operator sees the plan without a delete button');
  await b.dragAndDrop(resultSelector('lock-3'), tileSelector('s1-3'));
  await miniTile(a, 's1-3', (x) => x?.camera === 'lock-3');
  await a.click('[data-role=plans] [data-action=plan-activate]');
  await a.locator('[data-role=plan-banner]:not([hidden])').waitFor({ timeout: 5_000 });
  t.match(await a.locator('[data-role=plan-banner]').textContent(), /Emergency plan in force: Flood \(priority 80\), activated by opA/, 'the active plan is announced in a banner');
  t.equal((await miniTile(b, 's1-3', (x) => x?.camera === ''))?.camera, '', 'the plan replaced the wall (the tile changed after it was saved is empty again)');
  await b.locator('[data-role=plan-banner]:not([hidden])').waitFor({ timeout: 5_000 });
  await b.click('[data-action=plan-revert]');
  await a.locator('[data-role=plan-banner]').waitFor({ state: 'hidden', timeout: 5_000 });
  t.equal((await miniTile(a, 's1-3', (x) => x?.camera === 'lock-3'))?.camera, 'lock-3', 'reverting brings back the wall from before the plan, and the banner goes');

  await a.selectOption('[data-role=layout-target]', '2');
  await a.click('[data-layout="9"]');
  const monitor2 = (ts: Array<{ tile: string }>) => ts.filter((x) => x.tile.startsWith('s2-')).length;
  t.equal(monitor2(await waitFor(() => miniTiles(b), (ts) => monitor2(ts) === 9, 5_000, 50)), 9, 'a layout of 9 chosen for monitor 2 splits it into nine tiles, in every console');
  t.equal(monitor2(await miniTiles(a)), 9, 'including the one that chose it');
  t.equal(await a.locator('[data-layout="9"].current').count(), 1, 'which marks 9 as the layout in force');
  t.equal((await miniTile(a, 's1-3', () => true))?.camera, 'lock-3', 'monitor 1 keeps its tiles');
});

t.test('the pop-out plays one camera full-window with its stats, and leaves nothing behind when closed', async (t) => {
  const gw = await startPlayerGateway(t);
  await cameras(gw, ['pop-1']);
  await twoMonitorWall(gw, 'hall');
  await gw.userToken('opA', ['operator'], ['root']);
  const put = await gw.api('PUT', '/api/walls/hall/tiles/s2-1', { token: gw.adminToken, body: { baseVersion: 1, content: { kind: 'camera', cameraId: 'pop-1' } } });
  t.equal(put.status, 200, 'a camera is on tile s2-1');
  const browser = await launchBrowser(t, 'console-popout');
  const a = await openConsole(browser, gw, 'console-a', 'opA', 'hall', 'en');
  await waitFor(() => resultIds(a), (ids) => ids.includes('pop-1'), 5_000, 50);

  const [popout] = await Promise.all([a.waitForEvent('popup'), a.dblclick(resultSelector('pop-1'))]);
  await popout.waitForLoadState();
  t.match(popout.url(), /\/popout\.html\?camera=pop-1&profile=main$/, 'double-clicking a search result opens the pop-out for that camera');
  const stats = () =>
    popout.evaluate<Record<string, string>>(
      `Object.fromEntries(Array.from(document.querySelectorAll('[data-stat]')).map((el) => [el.dataset.stat, el.textContent]))`,
    );
  const shown = await waitFor(
    stats,
    (s) => /h264|avc1/i.test(s.codec ?? '') && s.resolution === '1280×720' && /^[1-9]\d* kbit\/s$/.test(s.bitrate ?? '') && /^\d+ ms$/.test(s.latency ?? ''),
    25_000,
    250,
  );
  t.comment(`pop-out stats: ${JSON.stringify(shown)}`);
  t.match(shown.codec, /h264|avc1/i, 'the stats name the codec');
  t.equal(shown.resolution, '1280×720', 'the resolution of the picture');
  t.match(shown.bitrate, /^[1-9]\d* kbit\/s$/, 'a bitrate above zero');
  t.match(shown.latency, /^\d+ ms$/, 'and a latency');
  t.match(shown.transport, /^(webrtc|flv|hls)$/, 'and the transport');
  const video = `(() => { const v = document.querySelector('video'); return { time: v.currentTime, frames: v.getVideoPlaybackQuality().totalVideoFrames, width: v.videoWidth }; })()`;
  const first = await popout.evaluate<{ time: number; frames: number; width: number }>(video);
  const later = await waitFor(() => popout.evaluate<{ time: number; frames: number }>(video), (v) => v.time > first.time + 1 && v.frames > first.frames + 10, 10_000, 200);
  t.ok(later.time > first.time + 1, `the video advances (${first.time.toFixed(2)} → ${later.time.toFixed(2)} s)`);
  const viewport = await popout.evaluate<{ w: number; h: number; vw: number; vh: number }>(
    `(() => { const r = document.querySelector('video').getBoundingClientRect(); return { w: r.width, h: r.height, vw: innerWidth, vh: innerHeight }; })()`,
  );
  t.ok(viewport.w === viewport.vw && viewport.h === viewport.vh, `the video fills the window (${viewport.w}×${viewport.h})`);
  const stamp = (await stats()).bitrate;
  const refreshed = await waitFor(stats, (s) => s.bitrate !== stamp, 5_000, 250);
  t.not(refreshed.bitrate, stamp, `the stats refresh by themselves (bitrate ${stamp} → ${refreshed.bitrate})`);

  await popout.close();
  t.equal(await waitFor(() => gw.webrtc.peerCount + gw.streams.list().length, (n) => n === 0, 10_000), 0, 'closed, the pop-out leaves no WebRTC peer and no pull on the gateway');

  const [fromTile] = await Promise.all([a.waitForEvent('popup'), a.dblclick(tileSelector('s2-1'))]);
  t.match(fromTile.url(), /\/popout\.html\?camera=pop-1&/, 'double-clicking a tile of the miniature pops out its camera');
  await fromTile.close();
});

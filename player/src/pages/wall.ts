/**
 * A wall screen: full screen, no chrome. `wall.html?wall=<id>&screen=<n>` shows monitor n of the wall
 * (spanned tiles show their part); without `screen` the whole wall fits the window. `transports=`
 * (e.g. `hls` for a screen whose network blocks UDP) narrows the players' WebRTC → WS-FLV → HLS order.
 */
import { popupOn } from '../../../gateway/src/control/model.js';
import { currentSession } from '../lib/api.js';
import { ControlConnection, WallFollower } from '../lib/control.js';
import { departmentForest, departmentNames } from '../lib/departments.js';
import { h } from '../lib/dom.js';
import { intersects, percentStyle, screenBox, tileBox } from '../lib/geometry.js';
import { addStrings, t } from '../lib/i18n.js';
import { onPageLeave, startPage } from '../lib/shell.js';
import { transportsParam } from '../lib/stream-player.js';
import { TileView } from '../lib/tile-view.js';
import '../styles/app.css';

addStrings({
  'wall.title': ['Wall screen', '大屏'],
  'wall.noWall': ['No wall given: open wall.html?wall=<id>&screen=<n>', '未指定大屏：请打开 wall.html?wall=<编号>&screen=<屏号>'],
  'wall.gone': ['Wall "{id}" does not exist or is not in your departments', '大屏“{id}”不存在或不在您的管辖范围内'],
  'wall.badScreen': ['Screen {screen} is not on this wall', '该大屏没有第 {screen} 块屏幕'],
});

/** A hidden page keeps its streams this long (a quick tab switch), then lets the gateway close them. */
const HIDDEN_GRACE_MS = 5_000;

async function main() {
  const { main } = await startPage({ title: 'wall.title', page: 'wall', chrome: false });
  const params = new URLSearchParams(location.search);
  const wallId = params.get('wall');
  const screenParam = params.get('screen');
  const screen = screenParam === null ? null : Number(screenParam);
  const transports = transportsParam(params);
  if (!wallId) return main.replaceChildren(h('p', { class: 'wall-message' }, t('wall.noWall')));

  const names = departmentNames(await departmentForest().catch(() => []));
  const surface = h('div', { class: 'wall-surface' });
  const status = h('div', { class: 'wall-connection' });
  main.replaceChildren(surface, status);

  const conn = new ControlConnection(() => currentSession()?.token ?? '');
  const follower = new WallFollower(conn, wallId);
  const views = new Map<string, TileView>();
  const viewOptions = { departmentName: (id: string) => names.get(id) ?? id, ...(transports ? { transports } : {}) };
  let hidden = false;

  conn.onState((s) => {
    status.textContent = s === 'open' ? '' : t('common.disconnected');
    status.classList.toggle('shown', s !== 'open');
  });

  follower.onChange(({ wall }) => {
    // A wall that was gone (deleted, or out of the user's scope) and is back shows again.
    if (!surface.isConnected) main.replaceChildren(surface, status);
    const frame = screenBox(wall, screen);
    if (!frame) return main.replaceChildren(h('p', { class: 'wall-message' }, t('wall.badScreen', { screen: String(screen) })));
    surface.style.aspectRatio = `${frame.w * wall.screens.width} / ${frame.h * wall.screens.height}`;
    const seen = new Set<string>();
    for (const tile of Object.values(wall.tiles)) {
      const box = tileBox(wall, tile);
      if (!box || !intersects(box, frame)) continue;
      seen.add(tile.id);
      let view = views.get(tile.id);
      if (!view) {
        view = new TileView(viewOptions);
        views.set(tile.id, view);
        surface.append(view.el);
        if (hidden) view.pause();
      }
      view.el.style.cssText = percentStyle(box, frame);
      const popup = tile.popup ? popupOn(wall.popups, tile.id) : null;
      view.update(tile, popup?.label ?? null);
      view.setStatus(follower.status.get(tile.id) ?? null);
    }
    // Tiles gone with a new layout take their players with them.
    for (const [id, view] of views) {
      if (seen.has(id)) continue;
      view.destroy();
      views.delete(id);
    }
  });
  follower.onStatus((ids) => {
    for (const id of ids) views.get(id)?.setStatus(follower.status.get(id) ?? null);
  });
  follower.onRemoved(() => {
    for (const view of views.values()) view.destroy();
    views.clear();
    main.replaceChildren(h('p', { class: 'wall-message' }, t('wall.gone', { id: wallId })));
  });

  let hideTimer: ReturnType<typeof setTimeout> | undefined;
  document.addEventListener('visibilitychange', () => {
    clearTimeout(hideTimer);
    if (document.visibilityState === 'hidden') {
      hideTimer = setTimeout(() => {
        hidden = true;
        for (const v of views.values()) v.pause();
      }, HIDDEN_GRACE_MS);
    } else if (hidden) {
      hidden = false;
      for (const v of views.values()) v.resume();
    }
  });
  onPageLeave(() => {
    for (const v of views.values()) v.destroy();
    conn.close();
  });
  conn.connect();
}

void main();

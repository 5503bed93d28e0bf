/**
 * The wall in miniature: its monitors and every tile at its place (spanned tiles included), each
 * with its camera and department, lock holder, tour, alarm pop-up and stream state. Tiles are drop
 * targets for cameras and are selected by click (ctrl/⌘ to add, shift for the rectangle between two
 * tiles). Nothing plays here: the console stays light beside the wall it drives. A live tile shows
 * its current picture instead (tile-pictures.ts), under its state badge.
 */
import { popupOn, type Tile, type WallView } from '../../../gateway/src/control/model.js';
import { can } from '../lib/api.js';
import type { WallChange } from '../lib/control.js';
import { h } from '../lib/dom.js';
import { statusReason } from '../lib/errors.js';
import { intersects, percentStyle, screenBox, tileBox, type Box } from '../lib/geometry.js';
import { addStrings, t } from '../lib/i18n.js';
import { openPopout } from '../lib/shell.js';
import { CAMERA_MIME, droppedCamera, type ConsoleContext } from './context.js';
import { TilePictures } from './tile-pictures.js';
import { assignCamera } from './tile-actions.js';

addStrings({
  'mini.empty': ['Empty', '空闲'],
  'mini.lockedBy': ['Locked by {user}', '{user} 已锁定'],
  'mini.status.live': ['Live', '正常播放'],
  'mini.status.starting': ['Starting', '正在连接'],
  'mini.status.retrying': ['Retrying: {reason}', '重试中：{reason}'],
  'mini.status.offline': ['Offline: {reason}', '离线：{reason}'],
  'mini.status.idle': ['Not played yet', '尚未播放'],
  'mini.monitor': ['Monitor {n}', '{n} 号屏'],
  'mini.hint': ['Drag a camera onto a tile, or pick one and click a tile. Double-click a tile to pop it out.', '将摄像机拖到窗口上，或先选中摄像机再点击窗口。双击窗口可弹出单独播放。'],
  'mini.noWall': ['Choose a wall.', '请选择大屏。'],
});

/** How long another operator's change stays highlighted. */
const FLASH_MS = 2_500;

interface TileParts {
  el: HTMLDivElement;
  dot: HTMLSpanElement;
  state: HTMLDivElement;
  picture: HTMLImageElement;
  id: HTMLSpanElement;
  lock: HTMLSpanElement;
  name: HTMLDivElement;
  dept: HTMLDivElement;
  tour: HTMLDivElement;
  popup: HTMLDivElement;
  flashTimer?: ReturnType<typeof setTimeout>;
}

export class WallMiniature {
  readonly el: HTMLElement;
  private readonly surface: HTMLDivElement;
  private readonly screens: HTMLDivElement;
  private readonly parts = new Map<string, TileParts>();
  private readonly pictures = new TilePictures();
  private screensKey = '';
  /** The tile a shift-click extends from. */
  private anchor: string | null = null;

  constructor(private readonly ctx: ConsoleContext) {
    this.screens = h('div', { class: 'mini-screens' });
    this.surface = h('div', { class: 'mini-wall', dataset: { role: 'miniature' } }, this.screens);
    this.el = h('div', { class: 'mini-frame' }, this.surface, h('p', { class: 'mini-placeholder muted' }, t('mini.noWall')));
    this.listen();
    ctx.wallChanged.on((c) => this.render(c));
    ctx.statusChanged.on((ids) => {
      const wall = ctx.wall();
      for (const id of ids) {
        const tile = wall?.tiles[id];
        const p = this.parts.get(id);
        if (tile && p) this.paintStatus(tile, p);
      }
    });
    ctx.selection.on((sel) => {
      for (const [id, p] of this.parts) {
        p.el.classList.toggle('selected', sel.has(id));
        p.el.setAttribute('aria-pressed', String(sel.has(id)));
      }
    });
    ctx.picked.on((camera) => this.el.classList.toggle('picking', !!camera));
    ctx.wallCleared.on(() => this.clear());
  }

  /** Briefly marks tiles another operator (or a tour, or an alarm) just changed. */
  flash(tileIds: Iterable<string>): void {
    for (const id of tileIds) {
      const p = this.parts.get(id);
      if (!p) continue;
      clearTimeout(p.flashTimer);
      p.el.classList.remove('flash');
      // Reading the layout restarts the animation on a tile changed twice in a row.
      void p.el.offsetWidth;
      p.el.classList.add('flash');
      p.flashTimer = setTimeout(() => p.el.classList.remove('flash'), FLASH_MS);
    }
  }

  private clear() {
    for (const p of this.parts.values()) clearTimeout(p.flashTimer);
    this.pictures.clear();
    this.parts.clear();
    this.surface.replaceChildren(this.screens);
    this.screens.replaceChildren();
    this.screensKey = '';
    this.el.classList.remove('has-wall');
  }

  private render({ wall, tiles, snapshot }: WallChange) {
    this.el.classList.add('has-wall');
    const frame = screenBox(wall, null)!;
    const { rows, cols, width, height } = wall.screens;
    const key = `${rows}x${cols}:${width}x${height}`;
    if (key !== this.screensKey) {
      this.screensKey = key;
      this.surface.style.setProperty('--ratio', String((cols * width) / (rows * height)));
      this.screens.replaceChildren(
        ...Array.from({ length: rows * cols }, (_, i) =>
          h('div', { class: 'mini-screen', style: percentStyle(screenBox(wall, i + 1)!, frame), title: t('mini.monitor', { n: i + 1 }) }, h('span', null, String(i + 1))),
        ),
      );
    }
    for (const id of snapshot ? Object.keys(wall.tiles) : tiles) {
      const tile = wall.tiles[id];
      if (!tile) continue;
      let p = this.parts.get(id);
      if (!p) {
        p = this.createTile(id);
        this.parts.set(id, p);
        this.surface.append(p.el);
      }
      const box = tileBox(wall, tile);
      if (box) p.el.style.cssText = percentStyle(box, frame);
      this.paint(wall, tile, p);
    }
    for (const [id, p] of this.parts) {
      if (wall.tiles[id]) continue;
      clearTimeout(p.flashTimer);
      this.pictures.remove(id);
      p.el.remove();
      this.parts.delete(id);
    }
    const sel = this.ctx.selection.value;
    const kept = [...sel].filter((id) => wall.tiles[id]);
    if (kept.length !== sel.size) this.ctx.selection.set(new Set(kept));
    else for (const id of sel) this.parts.get(id)?.el.classList.add('selected');
  }

  private createTile(id: string): TileParts {
    const dot = h('span', { class: 'status-dot' });
    const idEl = h('span', { class: 'mini-tile-id' }, id);
    const lock = h('span', { class: 'mini-tile-lock' });
    const name = h('div', { class: 'mini-tile-name' });
    const dept = h('div', { class: 'mini-tile-dept' });
    const tour = h('div', { class: 'mini-tile-tour' });
    const popup = h('div', { class: 'mini-tile-popup' });
    const state = h('div', { class: 'mini-tile-state', dataset: { role: 'tile-state' } });
    const picture = h('img', { class: 'mini-tile-picture', alt: '', hidden: true, draggable: false, dataset: { role: 'tile-picture' } });
    const el = h(
      'div',
      { class: 'mini-tile', tabindex: '0', role: 'button', 'aria-pressed': 'false', dataset: { tile: id } },
      picture,
      h('div', { class: 'mini-tile-head' }, dot, idEl, lock),
      name,
      dept,
      tour,
      popup,
      state,
    );
    return { el, dot, state, picture, id: idEl, lock, name, dept, tour, popup };
  }

  private paint(wall: WallView, tile: Tile, p: TileParts) {
    const s = tile.stream;
    p.el.dataset.camera = s?.cameraId ?? '';
    p.el.dataset.content = tile.content.kind;
    p.name.textContent = s ? s.name : t('mini.empty');
    p.dept.textContent = s ? this.ctx.departmentName(s.departmentId) : '';
    p.lock.textContent = tile.lock?.username ?? '';
    p.lock.title = tile.lock ? t('mini.lockedBy', { user: tile.lock.username }) : '';
    p.el.classList.toggle('locked', !!tile.lock);
    p.el.classList.toggle('locked-by-me', tile.lock?.userId === this.ctx.user.id);
    const tour = tile.content.kind === 'tour' ? wall.tours[tile.content.tourId] : undefined;
    p.tour.textContent = tour ? `↻ ${tour.name} · ${tour.dwellSec} s` : '';
    const popup = tile.popup ? popupOn(wall.popups, tile.id) : null;
    p.popup.textContent = popup ? `⚠ ${popup.label}` : '';
    p.el.classList.toggle('popup', !!popup);
    p.el.title = [tile.id, s?.name, tile.lock ? t('mini.lockedBy', { user: tile.lock.username }) : '', popup?.label].filter(Boolean).join(' · ');
    this.paintStatus(tile, p);
  }

  private paintStatus(tile: Tile, p: TileParts) {
    const status = this.ctx.statusOf(tile.id);
    const state = tile.stream ? status.state : 'empty';
    p.el.dataset.status = state;
    const label = tile.stream ? t(`mini.status.${status.state}`, { reason: statusReason(status) }) : '';
    p.dot.title = label;
    p.state.textContent = label;
    const live = tile.stream && status.state === 'live' ? { cameraId: tile.stream.cameraId, profile: tile.stream.profile } : null;
    this.pictures.set(tile.id, p.picture, p.el, live);
  }

  private listen() {
    const tileOf = (e: Event) => (e.target as Element | null)?.closest<HTMLElement>('.mini-tile') ?? null;
    const activate = (el: HTMLElement, e: MouseEvent | KeyboardEvent) => {
      const id = el.dataset.tile!;
      const picked = this.ctx.picked.value;
      if (picked && can('walls:drive')) {
        this.ctx.picked.set(null);
        void assignCamera(this.ctx, id, picked);
        return;
      }
      this.select(id, e.ctrlKey || e.metaKey, e.shiftKey);
    };
    this.surface.addEventListener('click', (e) => {
      const el = tileOf(e);
      if (el) activate(el, e);
    });
    this.surface.addEventListener('keydown', (e) => {
      const el = tileOf(e);
      if (!el || (e.key !== 'Enter' && e.key !== ' ')) return;
      e.preventDefault();
      activate(el, e);
    });
    this.surface.addEventListener('dblclick', (e) => {
      const cameraId = tileOf(e)?.dataset.camera;
      if (cameraId) openPopout(cameraId);
    });
    if (!can('walls:drive')) return;
    let over: HTMLElement | null = null;
    const setOver = (el: HTMLElement | null) => {
      if (over === el) return;
      over?.classList.remove('drop-target');
      over = el;
      over?.classList.add('drop-target');
    };
    const carriesCamera = (e: DragEvent) => !!e.dataTransfer && Array.from(e.dataTransfer.types).includes(CAMERA_MIME);
    for (const type of ['dragenter', 'dragover'] as const) {
      this.surface.addEventListener(type, (e) => {
        const el = tileOf(e);
        if (!el || !carriesCamera(e)) return setOver(null);
        // Accepting the drop is what preventDefault means for HTML drag and drop.
        e.preventDefault();
        e.dataTransfer!.dropEffect = 'copy';
        setOver(el);
      });
    }
    this.surface.addEventListener('dragleave', (e) => {
      if (!this.surface.contains(e.relatedTarget as Node | null)) setOver(null);
    });
    this.surface.addEventListener('drop', (e) => {
      const el = tileOf(e);
      setOver(null);
      const camera = droppedCamera(e);
      if (!el || !camera) return;
      e.preventDefault();
      void assignCamera(this.ctx, el.dataset.tile!, camera);
    });
  }

  private select(id: string, toggle: boolean, range: boolean) {
    const wall = this.ctx.wall();
    const current = new Set(this.ctx.selection.value);
    if (range && this.anchor && wall) {
      const a = wall.tiles[this.anchor];
      const b = wall.tiles[id];
      const boxA = a && tileBox(wall, a);
      const boxB = b && tileBox(wall, b);
      if (boxA && boxB) {
        const x = Math.min(boxA.x, boxB.x);
        const y = Math.min(boxA.y, boxB.y);
        const span: Box = { x, y, w: Math.max(boxA.x + boxA.w, boxB.x + boxB.w) - x, h: Math.max(boxA.y + boxA.h, boxB.y + boxB.h) - y };
        // Only tiles wholly inside the rectangle: a big spanned tile touching its edge is not meant.
        const eps = 1e-9;
        for (const tile of Object.values(wall.tiles)) {
          const box = tileBox(wall, tile);
          if (box && intersects(box, span) && box.x >= span.x - eps && box.y >= span.y - eps && box.x + box.w <= span.x + span.w + eps && box.y + box.h <= span.y + span.h + eps) current.add(tile.id);
        }
        this.ctx.selection.set(current);
        return;
      }
    }
    this.anchor = id;
    if (toggle) {
      if (current.has(id)) current.delete(id);
      else current.add(id);
      this.ctx.selection.set(current);
    } else {
      this.ctx.selection.set(new Set([id]));
    }
  }
}

/**
 * Which wall the console drives: `?wall=<id>` in the address, else the operator's last choice on this
 * machine, else the first wall they may see. Choosing another one puts it in the address, so a
 * bookmark or a reload comes back to it.
 */
import { listWalls, type WallListing } from '../lib/control.js';
import { h } from '../lib/dom.js';
import { addStrings, t } from '../lib/i18n.js';
import type { ConsoleContext } from './context.js';
import { explain } from './tile-actions.js';

addStrings({
  'picker.label': ['Wall', '大屏'],
  'picker.none': ['No wall in your departments', '您的管辖范围内没有大屏'],
  'picker.option': ['{name} ({screens} monitors)', '{name}（{screens} 块屏）'],
  'picker.missing': ['{id} (not available)', '{id}（不可用）'],
  'picker.failed': ['The walls could not be listed: {message}', '大屏列表加载失败：{message}'],
});

const STORAGE_KEY = 'wallgate.console.wall';

export class WallPicker {
  readonly el: HTMLElement;
  private readonly select: HTMLSelectElement;
  /** The wall asked for (address, last choice); `followed` is the one the console follows. */
  private current: string | null;
  private followed: string | null = null;

  constructor(
    private readonly ctx: ConsoleContext,
    private readonly onChoose: (wallId: string) => void,
  ) {
    this.current = new URLSearchParams(location.search).get('wall') || localStorage.getItem(STORAGE_KEY);
    this.select = h('select', { 'aria-label': t('picker.label'), dataset: { role: 'wall-picker' } });
    this.select.addEventListener('change', () => this.choose(this.select.value, true));
    this.el = h('label', { class: 'inline wall-picker' }, t('picker.label'), this.select);
    // Walls come and go with the operator's scope: the list is read again at every (re)connection.
    ctx.conn.onOpen(() => void this.load());
  }

  private async load() {
    let walls: WallListing[];
    try {
      walls = await listWalls(this.ctx.conn);
    } catch (e) {
      this.ctx.notify(t('picker.failed', { message: explain(e) }), 'error');
      return;
    }
    const options = walls.map((w) => h('option', { value: w.id }, t('picker.option', { name: w.name, screens: w.screens.rows * w.screens.cols })));
    if (this.current && !walls.some((w) => w.id === this.current)) options.unshift(h('option', { value: this.current }, t('picker.missing', { id: this.current })));
    if (options.length === 0) options.push(h('option', { value: '', disabled: true }, t('picker.none')));
    this.select.replaceChildren(...options);
    const first = this.current ?? walls[0]?.id ?? null;
    if (!first) return;
    this.select.value = first;
    // A reconnection keeps following the same wall (the follower subscribes again by itself).
    if (first !== this.followed) this.choose(first, false);
  }

  private choose(wallId: string, byUser: boolean) {
    if (!wallId || wallId === this.followed) return;
    this.current = wallId;
    this.followed = wallId;
    localStorage.setItem(STORAGE_KEY, wallId);
    if (byUser) {
      const url = new URL(location.href);
      url.searchParams.set('wall', wallId);
      history.replaceState(null, '', url);
    }
    this.onChoose(wallId);
  }
}

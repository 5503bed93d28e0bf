/**
 * Layouts: a named grid for one monitor, for each monitor alike, or across the whole wall. Tiles
 * whose id the new layout keeps keep their content; the gateway refuses a layout that would replace
 * a tile locked by someone else.
 */
import { namedLayout } from '../../../gateway/src/control/layouts.js';
import type { WallView } from '../../../gateway/src/control/model.js';
import { can } from '../lib/api.js';
import { h } from '../lib/dom.js';
import { addStrings, t } from '../lib/i18n.js';
import type { ConsoleContext } from './context.js';
import { explain } from './tile-actions.js';

addStrings({
  'layout.title': ['Layout', '布局'],
  'layout.target': ['Apply to', '应用于'],
  'layout.monitor': ['Monitor {n}', '{n} 号屏'],
  'layout.each': ['Each monitor', '每块屏'],
  'layout.wall': ['Whole wall', '整墙拼接'],
  'layout.name': ['{name} ({count} tiles)', '{name}（{count} 画面）'],
  'layout.done': ['Layout {name} on {target}.', '已将 {target} 设为 {name} 布局。'],
});

export const LAYOUTS = ['1', '4', '1+5', '1+7', '9', '1+12', '16', '25', '36', '64'] as const;

type Target = number | 'each' | 'wall';

export class LayoutPicker {
  readonly el: HTMLElement;
  private readonly target: HTMLSelectElement;
  private readonly buttons: HTMLButtonElement[];
  private monitors = 0;

  constructor(private readonly ctx: ConsoleContext) {
    this.target = h('select', { 'aria-label': t('layout.target'), dataset: { role: 'layout-target' } });
    this.buttons = LAYOUTS.map((name) => {
      const grid = namedLayout(name)!;
      return h(
        'button',
        {
          class: 'layout-button',
          title: t('layout.name', { name, count: grid.cells.length }),
          dataset: { layout: name },
          disabled: !can('walls:drive'),
          onclick: () => void this.apply(name),
        },
        layoutIcon(name),
        h('span', null, name),
      );
    });
    this.target.addEventListener('change', () => this.markCurrent());
    this.el = h(
      'section',
      { class: 'layout-picker' },
      h('label', { class: 'inline' }, t('layout.target'), this.target),
      h('div', { class: 'layout-buttons' }, this.buttons),
    );
    ctx.wallChanged.on(({ wall }) => this.sync(wall));
  }

  private sync(wall: WallView) {
    const count = wall.screens.rows * wall.screens.cols;
    if (count !== this.monitors) {
      this.monitors = count;
      const spansWall = wall.regions.length === 1 && wall.regions[0]!.id === 'wall';
      this.target.replaceChildren(
        ...Array.from({ length: count }, (_, i) => h('option', { value: String(i + 1) }, t('layout.monitor', { n: i + 1 }))),
        ...(count > 1 ? [h('option', { value: 'each' }, t('layout.each')), h('option', { value: 'wall' }, t('layout.wall'))] : []),
      );
      this.target.value = spansWall && count > 1 ? 'wall' : '1';
    }
    this.markCurrent();
  }

  private selectedTarget(): Target {
    const v = this.target.value;
    return v === 'each' || v === 'wall' ? v : Number(v);
  }

  /** The layout the chosen target has now, to show which button is in force. */
  private markCurrent() {
    const wall = this.ctx.wall();
    if (!wall) return;
    const target = this.selectedTarget();
    let current: string | null = null;
    if (target === 'wall') current = wall.regions.find((r) => r.id === 'wall')?.layout.name ?? null;
    else if (target === 'each') {
      const names = new Set(wall.regions.map((r) => (r.id === 'wall' ? '' : r.layout.name)));
      current = names.size === 1 ? [...names][0]! || null : null;
    } else current = wall.regions.find((r) => r.id === `s${target}`)?.layout.name ?? null;
    for (const b of this.buttons) b.classList.toggle('current', b.dataset.layout === current);
  }

  private async apply(name: string) {
    const wall = this.ctx.wall();
    if (!wall) return;
    const target = this.selectedTarget();
    try {
      await this.ctx.conn.request('layout.set', { wallId: wall.id, baseVersion: wall.version, target, layout: name });
      this.ctx.notify(t('layout.done', { name, target: this.target.selectedOptions[0]?.textContent ?? String(target) }), 'ok');
    } catch (e) {
      this.ctx.notify(explain(e), 'error');
    }
  }
}

/** The layout drawn as its cells, so an operator recognises 1+5 without counting. */
function layoutIcon(name: string): HTMLElement {
  const grid = namedLayout(name)!;
  return h(
    'span',
    { class: 'layout-icon', style: `grid-template-rows:repeat(${grid.rows},1fr);grid-template-columns:repeat(${grid.cols},1fr)`, 'aria-hidden': 'true' },
    grid.cells.map((c) => h('span', { style: `grid-area:${c.row + 1} / ${c.col + 1} / span ${c.rowSpan} / span ${c.colSpan}` })),
  );
}

/**
 * The department tree with camera counts (online of total, and offline), collapsible. Clicking a
 * department narrows the camera search to it and makes it the source of a department tour. Children
 * are built when a branch is first opened: a city has thousands of departments. Resting the pointer on
 * a department with online cameras shows pictures of a few of them.
 */
import { api } from '../lib/api.js';
import { departmentForest, type DepartmentNode } from '../lib/departments.js';
import { h } from '../lib/dom.js';
import { addStrings, formatNumber, t } from '../lib/i18n.js';
import type { Page } from '../lib/paged-query.js';
import { PREVIEW_CAMERAS, previewOnHover } from './camera-preview.js';
import type { CameraRef, ConsoleContext } from './context.js';

addStrings({
  'dept.title': ['Departments', '组织机构'],
  'dept.all': ['All departments', '全部机构'],
  'dept.counts': ['{online} online, {offline} offline, {total} cameras', '在线 {online}，离线 {offline}，共 {total} 路'],
  'dept.refresh': ['Refresh counts', '刷新统计'],
  'dept.failed': ['Departments could not be loaded: {message}', '组织机构加载失败：{message}'],
});

/** Counts move with camera health; a minute is fresh enough for a glance and cheap for the gateway. */
const REFRESH_MS = 60_000;

export class DepartmentTree {
  readonly el: HTMLElement;
  private readonly list: HTMLUListElement;
  private readonly allButton: HTMLButtonElement;
  private readonly expanded = new Set<string>();
  private readonly rows = new Map<string, HTMLElement>();
  private signature = '';

  constructor(
    private readonly ctx: ConsoleContext,
    initial: DepartmentNode[],
  ) {
    this.list = h('ul', { class: 'dept-tree', role: 'tree' });
    this.allButton = h('button', { class: 'dept-all link', onclick: () => ctx.department.set(null) }, t('dept.all'));
    const refresh = h('button', { class: 'link', title: t('dept.refresh'), 'aria-label': t('dept.refresh'), onclick: () => void this.reload() }, '⟳');
    this.el = h('section', { class: 'panel dept-panel' }, h('div', { class: 'panel-head' }, h('h2', null, t('dept.title')), this.allButton, refresh), this.list);
    // The first level open: a city operator starts from the districts.
    for (const root of initial) this.expanded.add(root.id);
    this.build(initial);
    ctx.department.on(() => this.markSelected());
    this.signature = JSON.stringify(initial);
    setInterval(() => void this.reload(true), REFRESH_MS);
  }

  /**
   * Asked by the operator (who hears of a failure) or every minute in the background (which stays
   * quiet, and leaves the tree alone unless a count or a department changed, keeping focus and clicks).
   */
  private async reload(background = false) {
    try {
      const forest = await departmentForest();
      const signature = JSON.stringify(forest);
      if (background && signature === this.signature) return;
      this.signature = signature;
      this.build(forest);
    } catch (e) {
      if (!background) this.ctx.notify(t('dept.failed', { message: (e as Error).message }), 'error');
    }
  }

  private build(forest: DepartmentNode[]) {
    this.rows.clear();
    this.list.replaceChildren(...forest.map((n) => this.node(n, 0)));
    const total = forest.reduce((a, n) => ({ online: a.online + n.counts.online, total: a.total + n.counts.total }), { online: 0, total: 0 });
    this.allButton.textContent = `${t('dept.all')} (${formatNumber(total.online)}/${formatNumber(total.total)})`;
    this.markSelected();
  }

  private node(n: DepartmentNode, depth: number): HTMLLIElement {
    const hasChildren = n.children.length > 0;
    const open = this.expanded.has(n.id);
    const children = h('ul', { role: 'group', hidden: !open });
    if (open) children.append(...n.children.map((c) => this.node(c, depth + 1)));
    const toggle = h(
      'button',
      {
        class: 'dept-toggle',
        'aria-expanded': String(open),
        'aria-label': n.name,
        disabled: !hasChildren,
        onclick: () => {
          const opening = children.hidden;
          children.hidden = !opening;
          toggle.setAttribute('aria-expanded', String(opening));
          toggle.textContent = opening ? '▾' : '▸';
          if (opening) {
            this.expanded.add(n.id);
            if (!children.firstChild) children.append(...n.children.map((c) => this.node(c, depth + 1)));
          } else {
            this.expanded.delete(n.id);
          }
        },
      },
      hasChildren ? (open ? '▾' : '▸') : '·',
    );
    const c = n.counts;
    const row = h(
      'div',
      { class: 'dept-row', style: `padding-left:${depth * 0.9}rem` },
      toggle,
      h('button', { class: 'dept-name', title: n.name, onclick: () => this.ctx.department.set(this.ctx.department.value?.id === n.id ? null : n) }, n.name),
      h(
        'span',
        { class: 'dept-counts', title: t('dept.counts', { online: formatNumber(c.online), offline: formatNumber(c.offline), total: formatNumber(c.total) }) },
        h('span', { class: 'online' }, formatNumber(c.online)),
        '/',
        formatNumber(c.total),
        c.offline > 0 ? h('span', { class: 'offline' }, ` ↓${formatNumber(c.offline)}`) : null,
      ),
    );
    if (c.online > 0) previewOnHover(row, (signal) => onlineCameras(n, signal));
    this.rows.set(n.id, row);
    return h('li', { role: 'treeitem', dataset: { dept: n.id } }, row, children);
  }

  private markSelected() {
    const id = this.ctx.department.value?.id ?? null;
    for (const [dept, row] of this.rows) row.classList.toggle('selected', dept === id);
    this.allButton.classList.toggle('selected', id === null);
  }
}

/** The first few online cameras of a department and its subdepartments, as the search lists them. */
async function onlineCameras(dept: DepartmentNode, signal: AbortSignal): Promise<CameraRef[]> {
  const params = new URLSearchParams({ departmentId: dept.id, health: 'online', limit: String(PREVIEW_CAMERAS) });
  const page = await api<Page<{ id: string; name: string; departmentName: string }>>('GET', `/api/sources?${params}`, { signal });
  return page.items.map((s) => ({ cameraId: s.id, name: s.name, departmentName: s.departmentName }));
}

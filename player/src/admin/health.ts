/**
 * Health overview: online, offline and unknown cameras per department, rolled up the tree, as a bar
 * per department and the totals; choosing a department lists its offline cameras and why.
 */
import { can } from '../lib/api.js';
import { departmentForest, type DepartmentNode } from '../lib/departments.js';
import { h } from '../lib/dom.js';
import { addStrings, formatNumber, formatTime, t } from '../lib/i18n.js';
import { errorText, FoldedTree, levelLabel, type Section } from './common.js';
import { SourceList } from './sources.js';

addStrings({
  'health.title': ['Health overview', '在线状态总览'],
  'health.total': ['Cameras', '摄像机总数'],
  'health.unknownCount': ['Not yet seen', '尚未检测'],
  'health.refresh': ['Refresh', '刷新'],
  'health.updated': ['Counted at {at}', '统计于 {at}'],
  'health.pick': ['Choose a department to list its offline cameras.', '选择部门以查看其离线摄像机。'],
  'health.offlineIn': ['Offline cameras in {name} (and below)', '{name}（含下级）的离线摄像机'],
  'health.rowCounts': ['{online} online · {offline} offline · {total} in all', '在线 {online} · 离线 {offline} · 共 {total}'],
  'health.col.department': ['Department', '部门'],
  'health.col.bar': ['Online / offline', '在线 / 离线'],
  'health.col.counts': ['Counts', '数量'],
});

const AUTO_REFRESH_MS = 30_000;

/** Share of `part` in `total`, as a CSS percentage. */
const pct = (part: number, total: number) => `${total ? ((part / total) * 100).toFixed(2) : 0}%`;

function bar(c: DepartmentNode['counts']): HTMLElement {
  const unknown = Math.max(0, c.total - c.online - c.offline);
  return h(
    'div',
    { class: 'health-bar', role: 'img', 'aria-label': t('health.rowCounts', { online: c.online, offline: c.offline, total: c.total }) },
    h('span', { class: 'seg online', style: `width:${pct(c.online, c.total)}` }),
    h('span', { class: 'seg offline', style: `width:${pct(c.offline, c.total)}` }),
    h('span', { class: 'seg unknown', style: `width:${pct(unknown, c.total)}` }),
  );
}

export const healthSection: Section = {
  id: 'health',
  label: 'health.title',
  allowed: () => can('departments:read') && can('sources:read'),
  mount(el) {
    const totals = h('div', { class: 'counts health-totals' });
    const stamp = h('span', { class: 'muted small' });
    const alert = h('div', { class: 'form-error', role: 'alert' });
    const rows = h('tbody');
    const detailTitle = h('h3', null, t('health.pick'));
    const offline = new SourceList();
    offline.el.hidden = true;
    const tree = new FoldedTree();
    let selected: string | null = null;
    let alive = true;
    let timer: ReturnType<typeof setTimeout> | undefined;

    const choose = (node: DepartmentNode) => {
      selected = node.id;
      for (const r of rows.querySelectorAll('tr')) r.classList.toggle('selected', r.dataset.id === node.id);
      detailTitle.textContent = t('health.offlineIn', { name: node.name });
      offline.el.hidden = false;
      offline.show({ departmentId: node.id, health: 'offline' });
    };

    const render = (forest: DepartmentNode[]) => {
      const sum = { total: 0, online: 0, offline: 0 };
      for (const root of forest) {
        sum.total += root.counts.total;
        sum.online += root.counts.online;
        sum.offline += root.counts.offline;
      }
      const count = (key: string, value: number, label: string) =>
        h('div', { class: `count count-${key}`, dataset: { count: key } }, h('span', { class: 'count-value' }, formatNumber(value)), h('span', { class: 'count-label' }, label));
      totals.replaceChildren(
        count('total', sum.total, t('health.total')),
        count('online', sum.online, t('common.online')),
        count('offline', sum.offline, t('common.offline')),
        count('unknown', Math.max(0, sum.total - sum.online - sum.offline), t('health.unknownCount')),
        h('div', { class: 'count-bar' }, bar(sum)),
      );
      const out: HTMLElement[] = [];
      for (const { node, depth, folded: isCollapsed } of tree.visible(forest)) {
        const c = node.counts;
        out.push(
          h(
            'tr',
            { dataset: { id: node.id }, class: node.id === selected ? 'selected' : '' },
            h(
              'td',
              { class: 'dept-cell', style: `--depth:${depth}` },
              node.children.length
                ? h(
                    'button',
                    {
                      type: 'button',
                      class: 'toggle',
                      'aria-expanded': String(!isCollapsed),
                      onclick: () => {
                        tree.toggle(node.id);
                        render(forest);
                      },
                    },
                    isCollapsed ? '▸' : '▾',
                  )
                : h('span', { class: 'toggle-space' }),
              h('button', { type: 'button', class: 'link dept-pick', onclick: () => choose(node) }, node.name),
              h('span', { class: 'pill level' }, levelLabel(node.level)),
            ),
            h('td', { class: 'bar-cell' }, bar(c)),
            h('td', { class: 'num dept-counts' }, t('health.rowCounts', { online: formatNumber(c.online), offline: formatNumber(c.offline), total: formatNumber(c.total) })),
          ),
        );
      }
      rows.replaceChildren(...out);
      if (!out.length) rows.replaceChildren(h('tr', null, h('td', { colspan: 3, class: 'muted' }, t('admin.noDepartments'))));
      stamp.textContent = t('health.updated', { at: formatTime(Date.now()) });
    };

    const refresh = async () => {
      clearTimeout(timer);
      try {
        // Always asked afresh: health changes by the minute, unlike the tree other sections share.
        const forest = await departmentForest();
        if (!alive) return;
        render(forest);
        alert.textContent = '';
      } catch (err) {
        if (alive) alert.textContent = errorText(err);
      }
      if (alive) timer = setTimeout(() => void refresh(), AUTO_REFRESH_MS);
    };

    el.append(
      h('div', { class: 'toolbar' }, totals, h('span', { class: 'spacer' }), stamp, h('button', { type: 'button', onclick: () => void refresh() }, t('health.refresh'))),
      alert,
      h(
        'div',
        { class: 'health-layout' },
        h(
          'div',
          { class: 'table-scroll' },
          h(
            'table',
            { class: 'data health-table' },
            h('thead', null, h('tr', null, ['department', 'bar', 'counts'].map((c) => h('th', { scope: 'col', class: c === 'counts' ? 'num' : undefined }, t(`health.col.${c}`))))),
            rows,
          ),
        ),
        h('section', { class: 'health-detail' }, detailTitle, offline.el),
      ),
    );
    void refresh();
    return () => {
      alive = false;
      clearTimeout(timer);
      offline.destroy();
    };
  },
};

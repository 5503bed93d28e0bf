/**
 * The department tree in the user's scope (national → province → city → county → township → site),
 * with camera counts rolled up, and create child, rename and delete for admins.
 */
import { api, can } from '../lib/api.js';
import type { DepartmentNode } from '../lib/departments.js';
import { h, toast } from '../lib/dom.js';
import { addStrings, formatNumber, t } from '../lib/i18n.js';
import { confirmDialog, errorText, field, flatten, FoldedTree, formDialog, LEVELS, levelLabel, type AdminContext, type Section } from './common.js';

addStrings({
  'departments.title': ['Departments', '组织机构'],
  'departments.addChild': ['Add child', '添加下级'],
  'departments.rename': ['Rename', '重命名'],
  'departments.counts': ['{total} cameras · {online} online · {offline} offline', '{total} 路 · 在线 {online} · 离线 {offline}'],
  'departments.ownCounts': ['Directly in this department: {total} ({online} online, {offline} offline)', '本部门直属：{total} 路（在线 {online}，离线 {offline}）'],
  'departments.newUnder': ['New department under {name}', '在“{name}”下新建部门'],
  'departments.editTitle': ['Rename {name}', '重命名“{name}”'],
  'departments.id': ['ID', '编号'],
  'departments.idHint': ['Letters, digits, _ . - ; it cannot be changed later.', '字母、数字及 _ . -，创建后不可修改。'],
  'departments.name': ['Name', '名称'],
  'departments.level': ['Level', '级别'],
  'departments.created': ['Department {name} created', '已创建部门“{name}”'],
  'departments.renamed': ['Department renamed to {name}', '部门已重命名为“{name}”'],
  'departments.deleted': ['Department {name} deleted', '已删除部门“{name}”'],
  'departments.confirmDelete': ['Delete department "{name}" ({id})? Only an empty department can be deleted.', '删除部门“{name}”（{id}）？只能删除没有下级和视频源的部门。'],
  'departments.expand': ['Expand', '展开'],
  'departments.collapse': ['Collapse', '收起'],
});

/** Levels a child of `parentLevel` may have: the same or lower (the gateway refuses a child above its parent). */
const childLevels = (parentLevel: string) => LEVELS.slice(Math.max(0, LEVELS.indexOf(parentLevel as (typeof LEVELS)[number])));
const nextLevel = (parentLevel: string) => {
  const i = LEVELS.indexOf(parentLevel as (typeof LEVELS)[number]);
  return LEVELS[Math.min(LEVELS.length - 1, i + 1)]!;
};

/** A dialog form for a department; resolves true when the gateway accepted it. */
async function departmentDialog(title: string, fields: HTMLElement[], submit: () => Promise<unknown>, formId: string): Promise<boolean> {
  const { form, done } = formDialog({ title, formId, fields, submit: async () => (await submit(), true) });
  form.querySelector<HTMLElement>('input')?.focus();
  return (await done) ?? false;
}

function levelSelect(levels: readonly string[], selected: string) {
  return h('select', { name: 'level' }, levels.map((l) => h('option', { value: l, selected: l === selected }, levelLabel(l))));
}

async function addChild(parent: DepartmentNode): Promise<string | null> {
  const id = h('input', { name: 'id', autocomplete: 'off', spellcheck: 'false' });
  const name = h('input', { name: 'name', autocomplete: 'off' });
  const level = levelSelect(childLevels(parent.level), nextLevel(parent.level));
  const formId = 'department-create';
  const ok = await departmentDialog(
    t('departments.newUnder', { name: parent.name }),
    [field(formId, 'id', t('departments.id'), id, t('departments.idHint')), field(formId, 'name', t('departments.name'), name), field(formId, 'level', t('departments.level'), level)],
    () => api('POST', '/api/departments', { body: { id: id.value.trim(), name: name.value.trim(), parentId: parent.id, level: level.value } }),
    formId,
  );
  return ok ? name.value.trim() : null;
}

async function rename(node: DepartmentNode, parentLevel: string | null): Promise<string | null> {
  const name = h('input', { name: 'name', value: node.name, autocomplete: 'off' });
  const level = levelSelect(parentLevel ? childLevels(parentLevel) : LEVELS, node.level);
  const formId = 'department-edit';
  const ok = await departmentDialog(
    t('departments.editTitle', { name: node.name }),
    [field(formId, 'name', t('departments.name'), name), field(formId, 'level', t('departments.level'), level)],
    () => {
      const changes: Record<string, string> = { name: name.value.trim() };
      if (level.value !== node.level) changes.level = level.value;
      return api('PATCH', `/api/departments/${encodeURIComponent(node.id)}`, { body: changes });
    },
    formId,
  );
  return ok ? name.value.trim() : null;
}

export const departmentsSection: Section = {
  id: 'departments',
  label: 'departments.title',
  allowed: () => can('departments:read'),
  mount(el, ctx: AdminContext) {
    // The counts shown here must be today's, not those of the tree another section fetched earlier.
    ctx.forestChanged();
    const writable = can('departments:write');
    const alert = h('div', { class: 'form-error', role: 'alert' });
    const tree = h('div', { class: 'dept-tree', role: 'tree', 'aria-label': t('departments.title') });
    /** Collapsed by the user, or by default below the county level so a large city opens readable. */
    const folding = new FoldedTree();
    let alive = true;

    const render = async () => {
      let forest: DepartmentNode[];
      try {
        forest = await ctx.forest();
      } catch (err) {
        alert.textContent = errorText(err);
        return;
      }
      if (!alive) return;
      const parentLevel = new Map(flatten(forest).map(({ node }) => [node.id, node.level]));
      const rows: HTMLElement[] = [];
      for (const { node, depth, folded: isCollapsed } of folding.visible(forest)) {
        const toggle = node.children.length
          ? h(
              'button',
              {
                type: 'button',
                class: 'toggle',
                'aria-label': isCollapsed ? t('departments.expand') : t('departments.collapse'),
                onclick: () => {
                  folding.toggle(node.id);
                  void render();
                },
              },
              isCollapsed ? '▸' : '▾',
            )
          : h('span', { class: 'toggle-space' });
        const actions = writable
          ? h(
              'span',
              { class: 'actions' },
              h(
                'button',
                {
                  type: 'button',
                  class: 'link',
                  onclick: async () => {
                    alert.textContent = '';
                    const created = await addChild(node);
                    if (created === null) return;
                    folding.collapsed.delete(node.id);
                    toast(t('departments.created', { name: created }), 'ok');
                    ctx.forestChanged();
                    void render();
                  },
                },
                t('departments.addChild'),
              ),
              h(
                'button',
                {
                  type: 'button',
                  class: 'link',
                  onclick: async () => {
                    alert.textContent = '';
                    const renamed = await rename(node, node.parentId ? (parentLevel.get(node.parentId) ?? null) : null);
                    if (renamed === null) return;
                    toast(t('departments.renamed', { name: renamed }), 'ok');
                    ctx.forestChanged();
                    void render();
                  },
                },
                t('departments.rename'),
              ),
              h(
                'button',
                {
                  type: 'button',
                  class: 'link danger',
                  onclick: async () => {
                    alert.textContent = '';
                    if (!(await confirmDialog(t('departments.confirmDelete', { name: node.name, id: node.id }), t('common.delete')))) return;
                    try {
                      await api('DELETE', `/api/departments/${encodeURIComponent(node.id)}`);
                      toast(t('departments.deleted', { name: node.name }), 'ok');
                      ctx.forestChanged();
                      void render();
                    } catch (err) {
                      alert.textContent = errorText(err);
                    }
                  },
                },
                t('common.delete'),
              ),
            )
          : null;
        const c = node.counts;
        rows.push(
          h(
            'div',
            {
              class: 'dept-row',
              role: 'treeitem',
              'aria-level': String(depth + 1),
              'aria-expanded': node.children.length ? String(!isCollapsed) : null,
              dataset: { id: node.id },
              style: `--depth:${depth}`,
            },
            toggle,
            h('span', { class: 'dept-name' }, node.name),
            h('span', { class: 'mono muted' }, node.id),
            h('span', { class: `pill level level-${node.level}` }, levelLabel(node.level)),
            h(
              'span',
              { class: 'dept-counts', title: t('departments.ownCounts', { total: node.ownCounts.total, online: node.ownCounts.online, offline: node.ownCounts.offline }) },
              t('departments.counts', { total: formatNumber(c.total), online: formatNumber(c.online), offline: formatNumber(c.offline) }),
            ),
            actions,
          ),
        );
      }
      tree.replaceChildren(...rows);
      if (!rows.length) tree.replaceChildren(h('p', { class: 'muted' }, t('admin.noDepartments')));
    };
    el.append(alert, tree);
    void render();
    return () => {
      alive = false;
    };
  },
};

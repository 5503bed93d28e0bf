/**
 * Users and roles: the users this admin may manage (those whose scopes lie inside the admin's own),
 * created and edited with roles, department scopes picked from the tree, and a password.
 */
import { api, can } from '../lib/api.js';
import { departmentNames, type DepartmentNode } from '../lib/departments.js';
import { h, toast } from '../lib/dom.js';
import { addStrings, formatTime, t } from '../lib/i18n.js';
import { type AdminContext, confirmDialog, errorText, field, flatten, formDialog, type Section, tableHead } from './common.js';

addStrings({
  'users.title': ['Users and roles', '用户与角色'],
  'users.new': ['New user', '新建用户'],
  'users.edit': ['Edit user {username}', '编辑用户 {username}'],
  'users.username': ['User name', '用户名'],
  'users.usernameHint': ['2-64 letters, digits, _ . @ - ; it cannot be changed later.', '2-64 位字母、数字及 _ . @ -，创建后不可修改。'],
  'users.displayName': ['Display name', '显示名称'],
  'users.password': ['Password', '密码'],
  'users.newPassword': ['New password', '新密码'],
  'users.passwordKeep': ['Leave blank to keep the current password. Saving signs the user out everywhere.', '留空则保持原密码。保存后该用户需重新登录。'],
  'users.roles': ['Roles', '角色'],
  'users.scopes': ['Departments (scope)', '管辖部门'],
  'users.scopesHint': ['The user sees these departments and everything below them.', '用户可见所选部门及其全部下级。'],
  'users.scopeFilter': ['Filter departments', '筛选部门'],
  'users.disabled': ['Disabled (cannot sign in)', '停用（不能登录）'],
  'users.col.username': ['User name', '用户名'],
  'users.col.displayName': ['Display name', '显示名称'],
  'users.col.roles': ['Roles', '角色'],
  'users.col.scopes': ['Departments', '管辖部门'],
  'users.col.state': ['State', '状态'],
  'users.col.updated': ['Changed', '修改时间'],
  'users.col.actions': ['Actions', '操作'],
  'users.active': ['Active', '正常'],
  'users.isDisabled': ['Disabled', '已停用'],
  'users.created': ['User {username} created', '已创建用户 {username}'],
  'users.saved': ['User {username} saved', '已保存用户 {username}'],
  'users.none': ['No users you may manage.', '没有您可管理的用户。'],
  'users.signOut': ['Sign out everywhere', '强制下线'],
  'users.confirmSignOut': [
    'Sign {username} out on every browser and wall screen? Pages they have open go back to the sign-in page.',
    '让 {username} 在所有浏览器和大屏上退出登录？其已打开的页面将回到登录页。',
  ],
  'users.signedOut': ['{username} is signed out everywhere', '{username} 已被强制下线'],
  'role.admin': ['Administrator', '管理员'],
  'role.supervisor': ['Supervisor', '值班长'],
  'role.operator': ['Operator', '操作员'],
  'role.regulator': ['Regulator', '监管员'],
  'role.auditor': ['Auditor', '审计员'],
  'role.feed': ['Vehicle feed (service account)', '车辆数据接入（服务账号）'],
});

/** The gateway's roles (store/types.ts ROLES). */
const ROLES = ['admin', 'supervisor', 'operator', 'regulator', 'auditor', 'feed'] as const;

interface UserView {
  id: string;
  username: string;
  displayName: string;
  roles: string[];
  scopes: string[];
  disabled: boolean;
  createdAt: string;
  updatedAt: string;
}

const sameSet = (a: string[], b: string[]) => a.length === b.length && a.every((x) => b.includes(x));

/** Checkboxes over the department tree, indented, with a filter for a large city. */
function scopePicker(forest: DepartmentNode[], selected: string[]) {
  const filter = h('input', { type: 'search', class: 'scope-filter', placeholder: t('users.scopeFilter'), 'aria-label': t('users.scopeFilter') });
  const items = flatten(forest).map(({ node, depth }) => {
    const box = h('input', { type: 'checkbox', name: 'scopes', value: node.id, checked: selected.includes(node.id) });
    return h('label', { class: 'check scope-item', style: `--depth:${depth}`, dataset: { name: `${node.name} ${node.id}`.toLowerCase() } }, box, h('span', null, node.name), h('span', { class: 'mono muted' }, node.id));
  });
  filter.addEventListener('input', () => {
    const q = filter.value.trim().toLowerCase();
    for (const item of items) item.hidden = !!q && !item.dataset.name!.includes(q);
  });
  const group = h('fieldset', { class: 'scope-picker', role: 'group' }, filter, h('div', { class: 'scope-list' }, items));
  const value = () => [...group.querySelectorAll<HTMLInputElement>('input[name=scopes]:checked')].map((b) => b.value);
  return { group, value };
}

function openUserForm(forest: DepartmentNode[], existing: UserView | null): Promise<UserView | null> {
  const formId = 'user-form';
  const username = h('input', { name: 'username', autocomplete: 'off', spellcheck: 'false', value: existing?.username ?? '', readOnly: !!existing });
  const displayName = h('input', { name: 'displayName', autocomplete: 'off', value: existing?.displayName ?? '' });
  const password = h('input', { name: 'password', type: 'password', autocomplete: 'new-password' });
  const roles = h(
    'fieldset',
    { class: 'role-picker', role: 'group' },
    ROLES.map((r) =>
      h('label', { class: 'check' }, h('input', { type: 'checkbox', name: 'roles', value: r, checked: existing?.roles.includes(r) ?? false }), h('span', null, t(`role.${r}`)), h('span', { class: 'mono muted' }, r)),
    ),
  );
  const scopes = scopePicker(forest, existing?.scopes ?? []);
  const disabled = h('input', { type: 'checkbox', name: 'disabled', checked: existing?.disabled ?? false });
  const disabledField = field(formId, 'disabled', t('users.disabled'), disabled);
  disabledField.classList.add('check');
  const scopeField = field(formId, 'scopes', t('users.scopes'), scopes.group, t('users.scopesHint'));
  scopeField.classList.add('wide');

  const chosenRoles = () => [...roles.querySelectorAll<HTMLInputElement>('input[name=roles]:checked')].map((b) => b.value);
  /** A create sends everything; an edit only what changed, so the audit log says what was changed. */
  const body = (): Record<string, unknown> => {
    if (!existing) {
      return { username: username.value.trim(), displayName: displayName.value.trim() || undefined, password: password.value, roles: chosenRoles(), scopes: scopes.value(), disabled: disabled.checked };
    }
    const b: Record<string, unknown> = {};
    if (displayName.value.trim() !== existing.displayName) b.displayName = displayName.value.trim();
    if (!sameSet(chosenRoles(), existing.roles)) b.roles = chosenRoles();
    if (!sameSet(scopes.value(), existing.scopes)) b.scopes = scopes.value();
    if (disabled.checked !== existing.disabled) b.disabled = disabled.checked;
    if (password.value) b.password = password.value;
    return b;
  };

  const { done } = formDialog<UserView | null>({
    title: existing ? t('users.edit', { username: existing.username }) : t('users.new'),
    formId,
    formClass: 'user-form',
    dialogClass: 'wide',
    fields: [
      field(formId, 'username', t('users.username'), username, existing ? undefined : t('users.usernameHint')),
      field(formId, 'displayName', t('users.displayName'), displayName),
      field(formId, 'password', existing ? t('users.newPassword') : t('users.password'), password, existing ? t('users.passwordKeep') : undefined),
      disabledField,
      field(formId, 'roles', t('users.roles'), roles),
      scopeField,
    ],
    async submit() {
      const b = body();
      // An edit that changes nothing sends nothing (and writes no audit entry).
      if (existing && !Object.keys(b).length) return null;
      const saved = existing
        ? await api<UserView>('PATCH', `/api/users/${encodeURIComponent(existing.id)}`, { body: b })
        : await api<UserView>('POST', '/api/users', { body: b });
      password.value = '';
      return saved;
    },
  });
  (existing ? displayName : username).focus();
  return done;
}

export const usersSection: Section = {
  id: 'users',
  label: 'users.title',
  allowed: () => can('users:read'),
  mount(el, ctx: AdminContext) {
    const writable = can('users:write');
    const alert = h('div', { class: 'form-error', role: 'alert' });
    const rows = h('tbody');
    let alive = true;

    const load = async () => {
      try {
        const [forest, users] = await Promise.all([ctx.forest(), api<{ items: UserView[] }>('GET', '/api/users')]);
        if (!alive) return;
        const names = departmentNames(forest);
        rows.replaceChildren(
          ...users.items.map((u) =>
            h(
              'tr',
              { dataset: { id: u.id, username: u.username } },
              h('td', { class: 'mono' }, u.username),
              h('td', null, u.displayName),
              h('td', null, u.roles.map((r) => h('span', { class: 'pill role', title: r }, t(`role.${r}`)))),
              h('td', null, u.scopes.map((s) => names.get(s) ?? s).join(', ')),
              h('td', null, u.disabled ? h('span', { class: 'pill bad' }, t('users.isDisabled')) : h('span', { class: 'pill ok' }, t('users.active'))),
              h('td', null, formatTime(u.updatedAt)),
              writable
                ? h(
                    'td',
                    { class: 'actions' },
                    h(
                      'button',
                      {
                        type: 'button',
                        class: 'link',
                        onclick: async () => {
                          const saved = await openUserForm(forest, u);
                          if (!saved) return;
                          toast(t('users.saved', { username: saved.username }), 'ok');
                          void load();
                        },
                      },
                      t('common.edit'),
                    ),
                    h(
                      'button',
                      {
                        type: 'button',
                        class: 'link',
                        dataset: { action: 'sign-out' },
                        onclick: async () => {
                          if (!(await confirmDialog(t('users.confirmSignOut', { username: u.username }), t('users.signOut')))) return;
                          try {
                            await api('POST', `/api/users/${encodeURIComponent(u.id)}/sessions/revoke`);
                            toast(t('users.signedOut', { username: u.username }), 'ok');
                          } catch (err) {
                            toast(errorText(err), 'error');
                          }
                        },
                      },
                      t('users.signOut'),
                    ),
                  )
                : null,
            ),
          ),
        );
        if (!users.items.length) rows.replaceChildren(h('tr', null, h('td', { colspan: 7, class: 'muted' }, t('users.none'))));
        alert.textContent = '';
      } catch (err) {
        alert.textContent = errorText(err);
      }
    };

    const create = writable
      ? h(
          'button',
          {
            type: 'button',
            class: 'primary',
            onclick: async () => {
              const saved = await openUserForm(await ctx.forest(), null);
              if (!saved) return;
              toast(t('users.created', { username: saved.username }), 'ok');
              void load();
            },
          },
          t('users.new'),
        )
      : null;
    el.append(
      h('div', { class: 'toolbar' }, h('span', { class: 'spacer' }), create),
      alert,
      h(
        'div',
        { class: 'table-scroll' },
        h(
          'table',
          { class: 'data users-table' },
          tableHead('users', ['username', 'displayName', 'roles', 'scopes', 'state', 'updated', ...(writable ? ['actions'] : [])]),
          rows,
        ),
      ),
    );
    void load();
    return () => {
      alive = false;
    };
  },
};

/**
 * GB/T 28181: the devices and platforms allowed to register (with their presence, what they report
 * about themselves, and queries to a live one), the admission rules, and the refused attempts an
 * admin may admit. Digest passwords are write-only: the forms set them, nothing shows them.
 */
import { api, can } from '../lib/api.js';
import { h, toast } from '../lib/dom.js';
import { addStrings, formatNumber, formatTime, t } from '../lib/i18n.js';
import { confirmDialog, departmentOptions, errorText, field, formDialog, modal, pagerStatus, tableHead, type AdminContext, type Section } from './common.js';

addStrings({
  'gb.title': ['GB/T 28181 devices', '国标设备'],
  'gb.devices': ['Devices and platforms', '设备与平台'],
  'gb.rules': ['Admission rules', '准入规则'],
  'gb.rulesIntro': ['An unknown id that starts with a rule\'s prefix may register with the rule\'s password; it is added to the rule\'s department.', '编号以规则前缀开头的未知设备可用规则的密码注册，并加入规则所属部门。'],
  'gb.refused': ['Refused registrations', '被拒绝的注册'],
  'gb.refusedIntro': ['Devices that tried to register and were refused. Admit one to add it as a device.', '尝试注册但被拒绝的设备。可将其准入，添加为设备。'],
  'gb.addDevice': ['Add device', '添加设备'],
  'gb.addRule': ['Add rule', '添加规则'],
  'gb.refresh': ['Refresh', '刷新'],
  'gb.col.id': ['ID', '编号'],
  'gb.col.name': ['Name', '名称'],
  'gb.col.department': ['Department', '所属部门'],
  'gb.col.online': ['State', '状态'],
  'gb.col.address': ['Transport / address', '传输 / 地址'],
  'gb.col.keepalive': ['Last keepalive', '最近心跳'],
  'gb.col.channels': ['Channels', '通道数'],
  'gb.col.info': ['Manufacturer / model / firmware', '厂商 / 型号 / 固件'],
  'gb.col.actions': ['Actions', '操作'],
  'gb.col.prefix': ['Id prefix', '编号前缀'],
  'gb.col.streamMode': ['Media transport', '媒体传输'],
  'gb.col.created': ['Created', '创建时间'],
  'gb.col.address2': ['From', '来源地址'],
  'gb.col.reason': ['Reason', '原因'],
  'gb.col.first': ['First', '首次'],
  'gb.col.last': ['Last', '最近'],
  'gb.col.count': ['Attempts', '次数'],
  'gb.disabled': ['Disabled', '已停用'],
  'gb.byRule': ['admitted by a rule', '按规则准入'],
  'gb.queryCatalog': ['Query catalog', '查询目录'],
  'gb.deviceInfo': ['Device info', '设备信息'],
  'gb.deviceStatus': ['Device status', '设备状态'],
  'gb.admit': ['Admit', '准入'],
  'gb.forget': ['Forget', '忽略'],
  'gb.noDevices': ['No GB/T 28181 device is registered in your departments.', '您的管辖范围内没有国标设备。'],
  'gb.noRules': ['No admission rules.', '没有准入规则。'],
  'gb.noRefused': ['No refused registrations.', '没有被拒绝的注册。'],
  'gb.reason.unknown': ['Unknown id', '未知编号'],
  'gb.reason.password': ['Wrong password', '密码错误'],
  'gb.reason.disabled': ['Device disabled', '设备已停用'],
  'gb.mode.udp': ['UDP', 'UDP'],
  'gb.mode.tcp-passive': ['TCP, device connects', 'TCP（设备连接网关）'],
  'gb.mode.tcp-active': ['TCP, gateway connects', 'TCP（网关连接设备）'],
  'gb.newDevice': ['New GB/T 28181 device', '新建国标设备'],
  'gb.editDevice': ['Edit device {id}', '编辑设备 {id}'],
  'gb.newRule': ['New admission rule', '新建准入规则'],
  'gb.f.id': ['Device id (20 digits)', '设备编号（20 位）'],
  'gb.f.name': ['Name', '名称'],
  'gb.f.department': ['Department', '所属部门'],
  'gb.f.pickDepartment': ['Choose a department…', '请选择部门…'],
  'gb.f.password': ['Registration password', '注册密码'],
  'gb.f.passwordHint': ['4-64 characters; the device uses it for digest authentication. Write-only: never shown.', '4-64 个字符，设备用于摘要认证。只写：永不显示。'],
  'gb.f.passwordKeep': ['Leave blank to keep the current password.', '留空则保持原密码。'],
  'gb.f.streamMode': ['Media transport', '媒体传输方式'],
  'gb.f.enabled': ['Enabled (may register)', '启用（允许注册）'],
  'gb.f.prefix': ['Id prefix (1-20 digits)', '编号前缀（1-20 位数字）'],
  'gb.deviceAdded': ['Device {id} added', '已添加设备 {id}'],
  'gb.deviceSaved': ['Device {id} saved', '已保存设备 {id}'],
  'gb.deviceDeleted': ['Device {id} deleted', '已删除设备 {id}'],
  'gb.ruleAdded': ['Rule for {prefix} added', '已添加前缀 {prefix} 的规则'],
  'gb.ruleDeleted': ['Rule for {prefix} deleted', '已删除前缀 {prefix} 的规则'],
  'gb.confirmDelete': ['Delete device {id} ({name})? It can no longer register; its channels stay in the registry.', '删除设备 {id}（{name}）？该设备将不能再注册，其通道仍保留在资源库中。'],
  'gb.confirmDeleteRule': ['Delete the admission rule for {prefix}? Devices it admitted stay.', '删除前缀 {prefix} 的准入规则？已准入的设备保留。'],
  'gb.catalogDone': ['Catalog of {id}: {channels} channels', '{id} 的目录：{channels} 个通道'],
  'gb.answerOf': ['{what} of {id}', '{id} 的{what}'],
  'gb.querying': ['Asking the device…', '正在询问设备…'],
});

const STREAM_MODES = ['udp', 'tcp-passive', 'tcp-active'] as const;

interface DeviceView {
  id: string;
  name: string;
  departmentId: string;
  departmentName: string;
  streamMode: string;
  origin: 'admin' | 'rule';
  enabled: boolean;
  hasPassword: boolean;
  online: boolean;
  transport: string | null;
  address: string | null;
  port: number | null;
  lastKeepaliveAt: string | null;
  manufacturer: string | null;
  model: string | null;
  firmware: string | null;
  channelCount: number;
}

interface RuleView {
  id: string;
  prefix: string;
  departmentId: string;
  departmentName: string;
  streamMode: string;
  createdAt: string;
}

interface RefusalView {
  deviceId: string;
  address: string;
  reason: string;
  firstAt: string;
  lastAt: string;
  count: number;
}

const input = (name: string, extra: Record<string, unknown> = {}) => h('input', { name, autocomplete: 'off', spellcheck: 'false', ...extra });
const modeSelect = (selected: string) => h('select', { name: 'streamMode' }, STREAM_MODES.map((m) => h('option', { value: m, selected: m === selected }, t(`gb.mode.${m}`))));

/** Add (existing null, perhaps prefilled with a refused id) or edit a device; resolves with the saved one. */
async function deviceForm(ctx: AdminContext, existing: DeviceView | null, prefill: { id?: string } = {}): Promise<DeviceView | null> {
  const forest = await ctx.forest();
  const formId = 'gb-device-form';
  const c = {
    id: input('id', { value: existing?.id ?? prefill.id ?? '', readOnly: !!existing, inputmode: 'numeric', maxLength: 20 }),
    name: input('name', { value: existing?.name ?? '', spellcheck: 'true' }),
    departmentId: h('select', { name: 'departmentId' }, departmentOptions(forest, existing?.departmentId ?? null, t('gb.f.pickDepartment'))),
    password: input('password', { type: 'password', autocomplete: 'new-password' }),
    streamMode: modeSelect(existing?.streamMode ?? 'udp'),
    enabled: h('input', { name: 'enabled', type: 'checkbox', checked: existing?.enabled ?? true }),
  };
  const enabledField = field(formId, 'enabled', t('gb.f.enabled'), c.enabled);
  enabledField.classList.add('check');
  const { done } = formDialog<DeviceView>({
    title: existing ? t('gb.editDevice', { id: existing.id }) : t('gb.newDevice'),
    formId,
    fields: [
      field(formId, 'id', t('gb.f.id'), c.id),
      field(formId, 'name', t('gb.f.name'), c.name),
      field(formId, 'departmentId', t('gb.f.department'), c.departmentId),
      field(formId, 'password', t('gb.f.password'), c.password, existing ? t('gb.f.passwordKeep') : t('gb.f.passwordHint')),
      field(formId, 'streamMode', t('gb.f.streamMode'), c.streamMode),
      enabledField,
    ],
    submit: () => {
      const body: Record<string, unknown> = { name: c.name.value.trim(), departmentId: c.departmentId.value, streamMode: c.streamMode.value, enabled: c.enabled.checked };
      if (c.password.value || !existing) body.password = c.password.value;
      if (existing) return api<DeviceView>('PATCH', `/api/gb28181/devices/${encodeURIComponent(existing.id)}`, { body });
      return api<DeviceView>('POST', '/api/gb28181/devices', { body: { id: c.id.value.trim(), ...body } });
    },
  });
  (existing || prefill.id ? c.name : c.id).focus();
  return done;
}

async function ruleForm(ctx: AdminContext): Promise<RuleView | null> {
  const forest = await ctx.forest();
  const formId = 'gb-rule-form';
  const c = {
    prefix: input('prefix', { inputmode: 'numeric', maxLength: 20 }),
    departmentId: h('select', { name: 'departmentId' }, departmentOptions(forest, null, t('gb.f.pickDepartment'))),
    password: input('password', { type: 'password', autocomplete: 'new-password' }),
    streamMode: modeSelect('udp'),
  };
  const { done } = formDialog<RuleView>({
    title: t('gb.newRule'),
    formId,
    fields: [
      field(formId, 'prefix', t('gb.f.prefix'), c.prefix),
      field(formId, 'departmentId', t('gb.f.department'), c.departmentId),
      field(formId, 'password', t('gb.f.password'), c.password, t('gb.f.passwordHint')),
      field(formId, 'streamMode', t('gb.f.streamMode'), c.streamMode),
    ],
    submit: () => api<RuleView>('POST', '/api/gb28181/rules', { body: { prefix: c.prefix.value.trim(), departmentId: c.departmentId.value, password: c.password.value, streamMode: c.streamMode.value } }),
  });
  c.prefix.focus();
  return done;
}

/** A device's answer (DeviceInfo, DeviceStatus) as a two-column table in a dialog. */
async function showAnswer(device: DeviceView, kind: 'info' | 'status') {
  const what = t(kind === 'info' ? 'gb.deviceInfo' : 'gb.deviceStatus');
  const body = h('div', { class: 'gb-answer' }, h('p', { class: 'muted' }, t('gb.querying')));
  const close = h('button', { type: 'button' }, t('common.close'));
  const dialog = modal(t('gb.answerOf', { what, id: device.id }), h('div', null, body, h('div', { class: 'dialog-actions' }, close)));
  close.addEventListener('click', () => dialog.close());
  try {
    const { answer } = await api<{ answer: Record<string, string> }>('GET', `/api/gb28181/devices/${encodeURIComponent(device.id)}/${kind}`);
    body.replaceChildren(
      h('table', { class: 'data' }, h('tbody', null, Object.entries(answer).map(([k, v]) => h('tr', null, h('th', { scope: 'row' }, k), h('td', { class: 'mono' }, v))))),
    );
  } catch (err) {
    body.replaceChildren(h('p', { class: 'form-error', role: 'alert' }, errorText(err)));
  }
}

export const gb28181Section: Section = {
  id: 'gb28181',
  label: 'gb.title',
  allowed: () => can('sources:read'),
  mount(el, ctx: AdminContext) {
    const writable = can('sources:write');
    const alert = h('div', { class: 'form-error', role: 'alert' });
    const deviceRows = h('tbody');
    const ruleRows = h('tbody');
    const refusedRows = h('tbody');
    const pager = h('div');
    let alive = true;
    let devices: DeviceView[] = [];
    let next: string | null = null;
    let loadingMore = false;

    const button = (label: string, action: string, onclick: () => unknown, cls = 'link') =>
      h('button', { type: 'button', class: cls, dataset: { action }, onclick: () => void onclick() }, label);

    const guarded = async (work: () => Promise<void>) => {
      try {
        await work();
      } catch (err) {
        toast(errorText(err), 'error');
      }
    };

    const deviceRow = (d: DeviceView) =>
      h(
        'tr',
        { dataset: { id: d.id } },
        h('td', { class: 'mono' }, d.id),
        h('td', null, h('div', { class: 'name' }, d.name), d.origin === 'rule' ? h('div', { class: 'muted small' }, t('gb.byRule')) : null),
        h('td', null, d.departmentName),
        h(
          'td',
          null,
          !d.enabled ? h('span', { class: 'pill muted' }, t('gb.disabled')) : d.online ? h('span', { class: 'pill ok' }, t('common.online')) : h('span', { class: 'pill bad' }, t('common.offline')),
        ),
        h('td', { class: 'mono' }, d.address ? `${(d.transport ?? '').toUpperCase()} ${d.address}${d.port ? `:${d.port}` : ''}` : '—'),
        h('td', null, d.lastKeepaliveAt ? formatTime(d.lastKeepaliveAt) : '—'),
        h('td', { class: 'num' }, formatNumber(d.channelCount)),
        h('td', null, [d.manufacturer, d.model, d.firmware].filter(Boolean).join(' / ') || '—'),
        h(
          'td',
          { class: 'actions' },
          writable
            ? button(t('gb.queryCatalog'), 'catalog', () =>
                guarded(async () => {
                  const { channels } = await api<{ channels: number }>('POST', `/api/gb28181/devices/${encodeURIComponent(d.id)}/catalog`);
                  toast(t('gb.catalogDone', { id: d.id, channels: formatNumber(channels) }), 'ok');
                  ctx.forestChanged();
                  await load();
                }),
              )
            : null,
          button(t('gb.deviceInfo'), 'info', () => showAnswer(d, 'info')),
          button(t('gb.deviceStatus'), 'status', () => showAnswer(d, 'status')),
          writable
            ? button(t('common.edit'), 'edit', async () => {
                const saved = await deviceForm(ctx, d);
                if (!saved) return;
                toast(t('gb.deviceSaved', { id: saved.id }), 'ok');
                await load();
              })
            : null,
          writable
            ? button(t('common.delete'), 'delete', async () => {
                if (!(await confirmDialog(t('gb.confirmDelete', { id: d.id, name: d.name }), t('common.delete')))) return;
                await guarded(async () => {
                  await api('DELETE', `/api/gb28181/devices/${encodeURIComponent(d.id)}`);
                  toast(t('gb.deviceDeleted', { id: d.id }), 'ok');
                  await load();
                });
              })
            : null,
        ),
      );

    const renderDevices = () => {
      deviceRows.replaceChildren(...(devices.length ? devices.map(deviceRow) : [h('tr', null, h('td', { colspan: 9, class: 'muted empty' }, t('gb.noDevices')))]));
      pager.replaceChildren(
        pagerStatus(devices.length, !!next, loadingMore, () =>
          void guarded(async () => {
            loadingMore = true;
            renderDevices();
            try {
              const page = await api<{ items: DeviceView[]; nextCursor: string | null }>('GET', `/api/gb28181/devices?limit=100&cursor=${encodeURIComponent(next!)}`);
              devices = devices.concat(page.items);
              next = page.nextCursor;
            } finally {
              loadingMore = false;
              renderDevices();
            }
          }),
        ),
      );
    };

    const renderRules = (rules: RuleView[]) =>
      ruleRows.replaceChildren(
        ...(rules.length
          ? rules.map((r) =>
              h(
                'tr',
                { dataset: { id: r.id, prefix: r.prefix } },
                h('td', { class: 'mono' }, r.prefix),
                h('td', null, r.departmentName),
                h('td', null, t(`gb.mode.${r.streamMode}`)),
                h('td', null, formatTime(r.createdAt)),
                writable
                  ? h(
                      'td',
                      { class: 'actions' },
                      button(t('common.delete'), 'delete-rule', async () => {
                        if (!(await confirmDialog(t('gb.confirmDeleteRule', { prefix: r.prefix }), t('common.delete')))) return;
                        await guarded(async () => {
                          await api('DELETE', `/api/gb28181/rules/${encodeURIComponent(r.id)}`);
                          toast(t('gb.ruleDeleted', { prefix: r.prefix }), 'ok');
                          await load();
                        });
                      }),
                    )
                  : null,
              ),
            )
          : [h('tr', null, h('td', { colspan: 5, class: 'muted empty' }, t('gb.noRules')))]),
      );

    const renderRefused = (refused: RefusalView[]) =>
      refusedRows.replaceChildren(
        ...(refused.length
          ? refused.map((r) =>
              h(
                'tr',
                { dataset: { device: r.deviceId } },
                h('td', { class: 'mono' }, r.deviceId),
                h('td', { class: 'mono' }, r.address),
                h('td', null, t(`gb.reason.${r.reason}`)),
                h('td', null, formatTime(r.firstAt)),
                h('td', null, formatTime(r.lastAt)),
                h('td', { class: 'num' }, formatNumber(r.count)),
                writable
                  ? h(
                      'td',
                      { class: 'actions' },
                      r.reason === 'unknown'
                        ? button(t('gb.admit'), 'admit', async () => {
                            const saved = await deviceForm(ctx, null, { id: r.deviceId });
                            if (!saved) return;
                            toast(t('gb.deviceAdded', { id: saved.id }), 'ok');
                            await load();
                          })
                        : null,
                      button(t('gb.forget'), 'forget', () =>
                        guarded(async () => {
                          await api('DELETE', `/api/gb28181/refused/${encodeURIComponent(r.deviceId)}`);
                          await load();
                        }),
                      ),
                    )
                  : null,
              ),
            )
          : [h('tr', null, h('td', { colspan: 7, class: 'muted empty' }, t('gb.noRefused')))]),
      );

    async function load() {
      try {
        const [page, rules, refused] = await Promise.all([
          api<{ items: DeviceView[]; nextCursor: string | null }>('GET', '/api/gb28181/devices?limit=100'),
          api<{ items: RuleView[] }>('GET', '/api/gb28181/rules'),
          api<{ items: RefusalView[] }>('GET', '/api/gb28181/refused'),
        ]);
        if (!alive) return;
        devices = page.items;
        next = page.nextCursor;
        renderDevices();
        renderRules(rules.items);
        renderRefused(refused.items);
        alert.textContent = '';
      } catch (err) {
        if (alive) alert.textContent = errorText(err);
      }
    }

    const addDevice = writable
      ? h(
          'button',
          {
            type: 'button',
            class: 'primary',
            dataset: { action: 'add-device' },
            onclick: async () => {
              const saved = await deviceForm(ctx, null);
              if (!saved) return;
              toast(t('gb.deviceAdded', { id: saved.id }), 'ok');
              await load();
            },
          },
          t('gb.addDevice'),
        )
      : null;
    const addRule = writable
      ? button(
          t('gb.addRule'),
          'add-rule',
          async () => {
            const saved = await ruleForm(ctx);
            if (!saved) return;
            toast(t('gb.ruleAdded', { prefix: saved.prefix }), 'ok');
            await load();
          },
          '',
        )
      : null;
    const table = (cls: string, keys: string[], rows: HTMLElement) => h('div', { class: 'table-scroll' }, h('table', { class: `data ${cls}` }, tableHead('gb', keys), rows));

    el.append(
      h('div', { class: 'toolbar' }, h('span', { class: 'spacer' }), button(t('gb.refresh'), 'refresh', load, ''), addDevice),
      alert,
      h('h2', null, t('gb.devices')),
      table('gb-devices', ['id', 'name', 'department', 'online', 'address', 'keepalive', 'channels', 'info', 'actions'], deviceRows),
      pager,
      h('h2', null, t('gb.refused')),
      h('p', { class: 'muted' }, t('gb.refusedIntro')),
      table('gb-refused', ['id', 'address2', 'reason', 'first', 'last', 'count', ...(writable ? ['actions'] : [])], refusedRows),
      h('h2', null, t('gb.rules')),
      h('p', { class: 'muted' }, t('gb.rulesIntro')),
      h('div', { class: 'toolbar' }, h('span', { class: 'spacer' }), addRule),
      table('gb-rules', ['prefix', 'department', 'streamMode', 'created', ...(writable ? ['actions'] : [])], ruleRows),
    );
    void load();
    return () => {
      alive = false;
    };
  },
};

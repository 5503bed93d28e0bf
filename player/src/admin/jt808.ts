/**
 * JT/T 808: the vehicles' terminals that registered (with their link now) and the refused ones. A
 * refused terminal can be registered as a vehicle from what it sent (plate, terminal id, SIM), with
 * its JT/T 1078 channels as cameras.
 */
import { PLATE_COLORS, PLATE_COLOR_CODES, VEHICLE_CATEGORIES } from '../../../gateway/src/vehicles/model.js';
import { ApiError, api, can } from '../lib/api.js';
import { h, toast } from '../lib/dom.js';
import { addStrings, formatNumber, formatTime, t } from '../lib/i18n.js';
import { categoryLabel } from '../regulator/labels.js';
import { confirmDialog, departmentOptions, errorText, field, formDialog, tableHead, type AdminContext, type Section } from './common.js';

addStrings({
  'jt.title': ['JT/T 808 terminals', '车载终端'],
  'jt.terminals': ['Terminals', '终端'],
  'jt.terminalsIntro': ['Terminals of your vehicles that registered, online ones first. A terminal is matched to its vehicle by the SIM number.', '已注册的本辖区车辆终端，在线的排在前面。终端按 SIM 卡号对应车辆。'],
  'jt.refused': ['Refused terminals', '被拒绝的终端'],
  'jt.refusedIntro': ['Terminals that tried to connect and were refused. Register one as a vehicle to let it in.', '尝试接入但被拒绝的终端。可将其登记为车辆后允许接入。'],
  'jt.refresh': ['Refresh', '刷新'],
  'jt.col.sim': ['SIM', 'SIM 卡号'],
  'jt.col.plate': ['Plate', '车牌'],
  'jt.col.department': ['Department', '所属部门'],
  'jt.col.state': ['State', '状态'],
  'jt.col.edition': ['Protocol', '协议版本'],
  'jt.col.address': ['Address', '地址'],
  'jt.col.terminal': ['Terminal id / maker / model', '终端编号 / 厂商 / 型号'],
  'jt.col.counters': ['Frames / positions / alarms / errors', '报文 / 位置 / 告警 / 错误'],
  'jt.col.reason': ['Reason', '原因'],
  'jt.col.first': ['First', '首次'],
  'jt.col.last': ['Last', '最近'],
  'jt.col.count': ['Attempts', '次数'],
  'jt.col.actions': ['Actions', '操作'],
  'jt.since': ['since {time}', '自 {time}'],
  'jt.never': ['never connected since the gateway started', '网关启动后未连接'],
  'jt.reason.unknown': ['SIM of no vehicle', '无对应车辆'],
  'jt.reason.auth': ['Wrong auth code', '鉴权码错误'],
  'jt.reason.terminal': ["Terminal id not the vehicle's", '终端编号与车辆不符'],
  'jt.reason.plate': ['Could not be auto-registered', '无法自动登记'],
  'jt.reason.registered': ['Another terminal holds this SIM\'s registration', '该 SIM 已由其他终端注册'],
  'jt.reason.unauthenticated': ['Sent data without authenticating', '未鉴权即上报数据'],
  'jt.reset': ['Reset registration', '重置注册'],
  'jt.resetConfirm': ['Reset the registration of SIM {sim}? Its terminal is disconnected and must register again.', '重置 SIM {sim} 的注册？其终端将断开并需重新注册。'],
  'jt.register': ['Register as vehicle', '登记为车辆'],
  'jt.forget': ['Forget', '忽略'],
  'jt.noTerminals': ['No terminal of your vehicles has registered.', '本辖区车辆的终端尚未注册。'],
  'jt.noRefused': ['No refused terminals.', '没有被拒绝的终端。'],
  'jt.newVehicle': ['Register SIM {sim} as a vehicle', '将 SIM {sim} 登记为车辆'],
  'jt.f.id': ['Vehicle id', '车辆编号'],
  'jt.f.plate': ['Plate', '车牌号'],
  'jt.f.plateColor': ['Plate colour', '车牌颜色'],
  'jt.f.category': ['Category', '车辆类别'],
  'jt.f.company': ['Operator', '运输企业'],
  'jt.f.department': ['Department', '所属部门'],
  'jt.f.pickDepartment': ['Choose a department…', '请选择部门…'],
  'jt.f.terminalId': ['Terminal id', '终端编号'],
  'jt.f.sim': ['SIM number', 'SIM 卡号'],
  'jt.f.channels': ['Video channels', '视频通道数'],
  'jt.f.channelsHint': ['JT/T 1078 channels 1..n registered as cameras of the vehicle (0 for none).', '登记为该车摄像机的 JT/T 1078 通道 1..n（0 表示不登记）。'],
  'jt.vehicleAdded': ['Vehicle {plate} registered; its terminal may connect now', '已登记车辆 {plate}，其终端现在可以接入'],
});

interface TerminalView {
  sim: string;
  vehicleId: string;
  plate: string;
  departmentName: string;
  online: boolean;
  since: string | null;
  edition: string;
  address: string | null;
  terminalId: string;
  manufacturer: string;
  model: string;
  counters: { frames: number; positions: number; alarms: number; errors: number };
}

interface RefusalView {
  sim: string;
  address: string;
  reason: string;
  plate: string;
  plateColor: number;
  terminalId: string;
  manufacturer: string;
  model: string;
  firstAt: string;
  lastAt: string;
  count: number;
}

const input = (name: string, extra: Record<string, unknown> = {}) => h('input', { name, autocomplete: 'off', spellcheck: 'false', ...extra });

/** The vehicle form, pre-filled from what a refused terminal sent; creates its channel cameras, then the vehicle. */
async function vehicleForm(ctx: AdminContext, r: RefusalView): Promise<{ plate: string } | null> {
  const forest = await ctx.forest();
  const formId = 'jt-vehicle-form';
  const color = PLATE_COLOR_CODES[r.plateColor];
  const c = {
    id: input('id', { value: `jt-${r.sim}`, maxLength: 64 }),
    plate: input('plate', { value: r.plate, maxLength: 16 }),
    plateColor: h('select', { name: 'plateColor' }, [h('option', { value: '' }, '—'), ...PLATE_COLORS.map((p) => h('option', { value: p, selected: p === color }, t(`plateColor.${p}`)))]),
    category: h('select', { name: 'category' }, VEHICLE_CATEGORIES.map((k) => h('option', { value: k }, categoryLabel(k)))),
    company: input('company', { spellcheck: 'true', maxLength: 100 }),
    departmentId: h('select', { name: 'departmentId' }, departmentOptions(forest, null, t('jt.f.pickDepartment'))),
    terminalId: input('terminalId', { value: r.terminalId.replace(/[^A-Za-z0-9]/g, ''), maxLength: 30 }),
    sim: input('sim', { value: r.sim.padStart(11, '0'), inputmode: 'numeric', maxLength: 20 }),
    channels: input('channels', { type: 'number', min: 0, max: 16, value: 4 }),
  };
  const { done } = formDialog<{ plate: string }>({
    title: t('jt.newVehicle', { sim: r.sim }),
    formId,
    fields: [
      field(formId, 'id', t('jt.f.id'), c.id),
      field(formId, 'plate', t('jt.f.plate'), c.plate),
      field(formId, 'plateColor', t('jt.f.plateColor'), c.plateColor),
      field(formId, 'category', t('jt.f.category'), c.category),
      field(formId, 'company', t('jt.f.company'), c.company),
      field(formId, 'departmentId', t('jt.f.department'), c.departmentId),
      field(formId, 'terminalId', t('jt.f.terminalId'), c.terminalId),
      field(formId, 'sim', t('jt.f.sim'), c.sim),
      field(formId, 'channels', t('jt.f.channels'), c.channels, t('jt.f.channelsHint')),
    ],
    submit: async () => {
      const id = c.id.value.trim();
      const departmentId = c.departmentId.value;
      const channels = [];
      for (let n = 1; n <= Math.min(16, Math.max(0, Number(c.channels.value) || 0)); n++) {
        const sourceId = `${id}-ch${n}`;
        const url = `jt1078://${id}/${n}`;
        try {
          await api('POST', '/api/sources', { body: { id: sourceId, name: `${c.plate.value.trim() || r.sim} ch${n}`, departmentId, url, subUrl: `${url}?stream=1` } });
        } catch (err) {
          // Created by an earlier try whose vehicle the gateway refused (a field to correct): the camera is the same.
          if (!(err instanceof ApiError && err.code === 'GW_ERR_CONFLICT')) throw err;
        }
        channels.push({ channel: n, name: `channel ${n}`, sourceId });
      }
      const body: Record<string, unknown> = { id, plate: c.plate.value, category: c.category.value, company: c.company.value, departmentId, terminalId: c.terminalId.value, sim: c.sim.value, channels };
      if (c.plateColor.value) body.plateColor = c.plateColor.value;
      const vehicle = await api<{ plate: string }>('POST', '/api/vehicles', { body });
      // Its refusals answered: the list shows what is still a question. (Gone already if the terminal retried meanwhile.)
      await api('DELETE', `/api/jt808/refused/${encodeURIComponent(r.sim)}`).catch(() => undefined);
      return vehicle;
    },
  });
  c.company.focus();
  return done;
}

export const jt808Section: Section = {
  id: 'jt808',
  label: 'jt.title',
  allowed: () => can('vehicles:read'),
  mount(el, ctx: AdminContext) {
    const writable = can('vehicles:write') && can('sources:write');
    const alert = h('div', { class: 'form-error', role: 'alert' });
    const terminalRows = h('tbody');
    const refusedRows = h('tbody');
    let alive = true;

    const button = (label: string, action: string, onclick: () => unknown, cls = 'link') =>
      h('button', { type: 'button', class: cls, dataset: { action }, onclick: () => void onclick() }, label);

    const terminalRow = (d: TerminalView) =>
      h(
        'tr',
        { dataset: { sim: d.sim, vehicle: d.vehicleId } },
        h('td', { class: 'mono' }, d.sim),
        h('td', null, d.plate),
        h('td', null, d.departmentName),
        h(
          'td',
          null,
          h('span', { class: `pill ${d.online ? 'ok' : 'bad'}` }, t(d.online ? 'common.online' : 'common.offline')),
          h('div', { class: 'muted small' }, d.since ? t('jt.since', { time: formatTime(d.since) }) : t('jt.never')),
        ),
        h('td', null, `JT/T 808-${d.edition}`),
        h('td', { class: 'mono' }, d.address ?? '—'),
        h('td', null, [d.terminalId, d.manufacturer, d.model].filter(Boolean).join(' / ') || '—'),
        h('td', { class: 'num' }, [d.counters.frames, d.counters.positions, d.counters.alarms, d.counters.errors].map((n) => formatNumber(n)).join(' / ')),
        writable
          ? h(
              'td',
              { class: 'actions' },
              button(t('jt.reset'), 'reset', async () => {
                if (!(await confirmDialog(t('jt.resetConfirm', { sim: d.sim }), t('jt.reset')))) return;
                try {
                  await api('DELETE', `/api/jt808/terminals/${encodeURIComponent(d.sim)}`);
                  await load();
                } catch (err) {
                  toast(errorText(err), 'error');
                }
              }),
            )
          : null,
      );

    const refusedRow = (r: RefusalView) =>
      h(
        'tr',
        { dataset: { sim: r.sim } },
        h('td', { class: 'mono' }, r.sim),
        h('td', { class: 'mono' }, r.address),
        h('td', null, t(`jt.reason.${r.reason}`)),
        h('td', null, r.plate || '—'),
        h('td', null, [r.terminalId, r.manufacturer, r.model].filter(Boolean).join(' / ') || '—'),
        h('td', null, formatTime(r.firstAt)),
        h('td', null, formatTime(r.lastAt)),
        h('td', { class: 'num' }, formatNumber(r.count)),
        writable
          ? h(
              'td',
              { class: 'actions' },
              r.reason === 'unknown' || r.reason === 'plate'
                ? button(t('jt.register'), 'register', async () => {
                    const saved = await vehicleForm(ctx, r);
                    if (!saved) return;
                    toast(t('jt.vehicleAdded', { plate: saved.plate }), 'ok');
                    await load();
                  })
                : null,
              button(t('jt.forget'), 'forget', async () => {
                if (!(await confirmDialog(`${t('jt.forget')} ${r.sim}?`, t('jt.forget')))) return;
                try {
                  await api('DELETE', `/api/jt808/refused/${encodeURIComponent(r.sim)}`);
                  await load();
                } catch (err) {
                  toast(errorText(err), 'error');
                }
              }),
            )
          : null,
      );

    async function load() {
      try {
        const [terminals, refused] = await Promise.all([api<{ items: TerminalView[] }>('GET', '/api/jt808/terminals'), api<{ items: RefusalView[] }>('GET', '/api/jt808/refused')]);
        if (!alive) return;
        terminalRows.replaceChildren(...(terminals.items.length ? terminals.items.map(terminalRow) : [h('tr', null, h('td', { colspan: writable ? 9 : 8, class: 'muted empty' }, t('jt.noTerminals')))]));
        refusedRows.replaceChildren(...(refused.items.length ? refused.items.map(refusedRow) : [h('tr', null, h('td', { colspan: writable ? 9 : 8, class: 'muted empty' }, t('jt.noRefused')))]));
        alert.textContent = '';
      } catch (err) {
        if (alive) alert.textContent = errorText(err);
      }
    }

    const table = (cls: string, keys: string[], rows: HTMLElement) => h('div', { class: 'table-scroll' }, h('table', { class: `data ${cls}` }, tableHead('jt', keys), rows));
    el.append(
      h('div', { class: 'toolbar' }, h('span', { class: 'spacer' }), button(t('jt.refresh'), 'refresh', load, '')),
      alert,
      h('h2', null, t('jt.refused')),
      h('p', { class: 'muted' }, t('jt.refusedIntro')),
      table('jt-refused', ['sim', 'address', 'reason', 'plate', 'terminal', 'first', 'last', 'count', ...(writable ? ['actions'] : [])], refusedRows),
      h('h2', null, t('jt.terminals')),
      h('p', { class: 'muted' }, t('jt.terminalsIntro')),
      table('jt-terminals', ['sim', 'plate', 'department', 'state', 'edition', 'address', 'terminal', 'counters', ...(writable ? ['actions'] : [])], terminalRows),
    );
    void load();
    return () => {
      alive = false;
    };
  },
};

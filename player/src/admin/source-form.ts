/**
 * Create or edit one source in a dialog. Every field of the registry is here; the gateway checks them
 * (registry/source-input.ts) and its issues come back to the field they name. The camera password is
 * write-only: the form shows whether one is stored, never what it is, and a blank keeps it.
 */
import { api, ApiError } from '../lib/api.js';
import { h } from '../lib/dom.js';
import type { StoredHealth } from '../lib/errors.js';
import { addStrings, formatTime, t } from '../lib/i18n.js';
import { departmentOptions, field, formDialog, LEVELS, levelLabel, type AdminContext } from './common.js';

addStrings({
  'source.new': ['New source', '新建视频源'],
  'source.edit': ['Edit source {id}', '编辑视频源 {id}'],
  'source.id': ['ID', '编号'],
  'source.idHint': ['Letters, digits, _ . : - (a 20-digit GB/T 28181 id fits). Blank: one is generated.', '字母、数字及 _ . : -（可填 20 位国标编码）。留空则自动生成。'],
  'source.name': ['Name', '名称'],
  'source.department': ['Department', '所属部门'],
  'source.pickDepartment': ['Choose a department…', '请选择部门…'],
  'source.level': ['Level', '级别'],
  'source.address': ['Address', '地址'],
  'source.url': ['Main stream URL', '主码流地址'],
  'source.subUrl': ['Sub-stream URL', '子码流地址'],
  'source.protocol': ['Protocol', '协议'],
  'source.protocolAuto': ['From the URL', '按地址自动识别'],
  'source.username': ['Camera user name', '设备用户名'],
  'source.usernameHint': ['Clearing it removes the stored credentials; a new user name needs its password.', '清空则删除已存的凭据；更换用户名须同时填写密码。'],
  'source.password': ['Camera password', '设备密码'],
  'source.passwordSet': ['A password is set.', '已设置密码。'],
  'source.passwordNotSet': ['No password is set.', '未设置密码。'],
  'source.passwordHint': ['Write-only: stored encrypted and never shown. Leave blank to keep it.', '只写：加密存储，永不显示。留空则保持不变。'],
  'source.codec': ['Codec', '编码'],
  'source.codecUnknown': ['Unknown', '未知'],
  'source.lat': ['Latitude', '纬度'],
  'source.lon': ['Longitude', '经度'],
  'source.tags': ['Tags', '标签'],
  'source.tagsHint': ['Separated by ";"', '以“;”分隔'],
  'source.enabled': ['Enabled', '启用'],
  'source.conflict': [
    'Someone else changed this source while you were editing it (it is now version {version}, saved {at}). The form now shows their version: make your change again and save.',
    '在您编辑期间，其他人修改了该视频源（当前版本 {version}，保存于 {at}）。表单已重新加载为最新内容，请重新修改后保存。',
  ],
  'source.gbLocked': ['A GB/T 28181 channel: its device and channel come from the catalog and cannot be changed here.', '国标通道：设备与通道来自目录，不能在此修改。'],
  'source.gone': ['This source no longer exists (someone else deleted it).', '该视频源已不存在（已被他人删除）。'],
});

/** A source as the gateway shows it (GET /api/sources/:id). */
export interface SourceView {
  id: string;
  name: string;
  departmentId: string;
  departmentName: string;
  level: string;
  address: string;
  url: string;
  subUrl: string | null;
  protocol: string;
  username: string | null;
  hasPassword: boolean;
  codec: string;
  lat: number | null;
  lon: number | null;
  tags: string[];
  enabled: boolean;
  health: StoredHealth & { state: string; since: string | null };
  version: number;
  createdAt: string;
  updatedAt: string;
}

export const PROTOCOLS = ['rtsp', 'rtsps', 'rtmp', 'rtmps', 'hls', 'http-flv', 'srt', 'rtmp-push', 'gb28181', 'jt1078'] as const;
const CODECS = ['h264', 'h265', 'unknown'] as const;

/**
 * The URL as the user typed it, without the masked credentials the gateway adds for display
 * (user:***@ or an SRT passphrase=***): those live in the username and password fields here.
 */
export function withoutCredentials(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/?#@]*@/i, '$1').replace(/[?&]passphrase=\*\*\*$/, '');
}

/** A number when the text is one; otherwise the text itself, so the gateway names the field that is wrong. */
function numberOrText(text: string): number | string | undefined {
  const s = text.trim();
  if (!s) return undefined;
  const n = Number(s);
  return Number.isFinite(n) ? n : s;
}

/** Resolves with the saved source, or null when the dialog is closed without saving. */
export async function openSourceForm(ctx: AdminContext, existing: SourceView | null): Promise<SourceView | null> {
  const forest = await ctx.forest();
  let current = existing;
  const formId = 'source-form';
  const input = (name: string, extra: Record<string, unknown> = {}) => h('input', { name, autocomplete: 'off', spellcheck: 'false', ...extra });
  const c = {
    id: input('id', { readOnly: !!existing }),
    name: input('name', { spellcheck: 'true' }),
    departmentId: h('select', { name: 'departmentId' }, departmentOptions(forest, existing?.departmentId ?? null, t('source.pickDepartment'))),
    level: h('select', { name: 'level' }, LEVELS.map((l) => h('option', { value: l }, levelLabel(l)))),
    address: input('address', { spellcheck: 'true' }),
    url: input('url', { inputmode: 'url', placeholder: 'rtsp://10.0.0.1:554/stream1' }),
    subUrl: input('subUrl', { inputmode: 'url' }),
    protocol: h('select', { name: 'protocol' }, h('option', { value: '' }, t('source.protocolAuto')), PROTOCOLS.map((p) => h('option', { value: p }, p))),
    username: input('username'),
    password: input('password', { type: 'password', autocomplete: 'new-password' }),
    codec: h('select', { name: 'codec' }, CODECS.map((x) => h('option', { value: x }, x === 'unknown' ? t('source.codecUnknown') : x.toUpperCase().replace('H', 'H.')))),
    lat: input('lat', { inputmode: 'decimal' }),
    lon: input('lon', { inputmode: 'decimal' }),
    tags: input('tags', { placeholder: 'gate; school' }),
    enabled: h('input', { name: 'enabled', type: 'checkbox' }),
  };
  const passwordState = h('span', { class: 'password-state' });
  // A GB channel is its device's: the protocol, its URLs and credentials are not the admin's to edit.
  const gbChannel = existing?.protocol === 'gb28181';
  if (gbChannel) {
    c.protocol.disabled = true;
    c.url.readOnly = true;
    c.subUrl.readOnly = true;
    c.username.disabled = true;
    c.password.disabled = true;
  }
  // A vehicle channel has no camera credentials: its terminal authenticates over JT/T 808.
  if (existing?.protocol === 'jt1078') {
    c.username.disabled = true;
    c.password.disabled = true;
  }

  const fill = (s: SourceView | null) => {
    c.id.value = s?.id ?? '';
    c.name.value = s?.name ?? '';
    c.departmentId.value = s?.departmentId ?? '';
    c.level.value = s?.level ?? 'site';
    c.address.value = s?.address ?? '';
    c.url.value = s ? withoutCredentials(s.url) : '';
    c.subUrl.value = s?.subUrl ? withoutCredentials(s.subUrl) : '';
    c.protocol.value = s?.protocol ?? '';
    c.username.value = s?.username ?? '';
    c.password.value = '';
    c.codec.value = s?.codec ?? 'unknown';
    c.lat.value = s?.lat === null || s?.lat === undefined ? '' : String(s.lat);
    c.lon.value = s?.lon === null || s?.lon === undefined ? '' : String(s.lon);
    c.tags.value = s?.tags.join('; ') ?? '';
    c.enabled.checked = s?.enabled ?? true;
    passwordState.textContent = s?.hasPassword ? t('source.passwordSet') : t('source.passwordNotSet');
    passwordState.classList.toggle('set', !!s?.hasPassword);
  };
  fill(existing);

  /** The request body: a create leaves blanks out; an edit is a replace (PUT), so it sends every field it keeps. */
  const body = (): Record<string, unknown> => {
    const b: Record<string, unknown> = {
      name: c.name.value,
      departmentId: c.departmentId.value,
      level: c.level.value,
      address: c.address.value,
      url: c.url.value.trim(),
      codec: c.codec.value,
      tags: c.tags.value
        .split(/[;；]/)
        .map((x) => x.trim())
        .filter(Boolean),
      enabled: c.enabled.checked,
    };
    if (!existing && c.id.value.trim()) b.id = c.id.value.trim();
    if (c.subUrl.value.trim()) b.subUrl = c.subUrl.value.trim();
    if (c.protocol.value) b.protocol = c.protocol.value;
    const lat = numberOrText(c.lat.value);
    const lon = numberOrText(c.lon.value);
    if (lat !== undefined) b.lat = lat;
    if (lon !== undefined) b.lon = lon;
    const username = c.username.value.trim();
    // An emptied user name removes the credentials; one never given is left alone (an SRT passphrase has none).
    if (username) b.username = username;
    else if (current?.username) b.username = '';
    if (c.password.value) b.password = c.password.value;
    return b;
  };

  const f = (name: keyof typeof c, label: string, hint?: HTMLElement | string, wide = false) => {
    const el = field(formId, name, t(label), c[name], hint);
    if (wide) el.classList.add('wide');
    return el;
  };
  const enabledField = field(formId, 'enabled', t('source.enabled'), c.enabled);
  enabledField.classList.add('check');
  const { done } = formDialog<SourceView>({
    title: existing ? t('source.edit', { id: existing.id }) : t('source.new'),
    formId,
    formClass: 'source-form',
    dialogClass: 'wide',
    fields: [
      f('id', 'source.id', existing ? undefined : t('source.idHint')),
      f('name', 'source.name'),
      f('departmentId', 'source.department'),
      f('level', 'source.level'),
      f('address', 'source.address', undefined, true),
      f('url', 'source.url', undefined, true),
      f('subUrl', 'source.subUrl', undefined, true),
      f('protocol', 'source.protocol', gbChannel ? t('source.gbLocked') : undefined),
      f('codec', 'source.codec'),
      f('username', 'source.username', existing ? t('source.usernameHint') : undefined),
      f('password', 'source.password', h('span', null, passwordState, ' ', t('source.passwordHint'))),
      f('lat', 'source.lat'),
      f('lon', 'source.lon'),
      f('tags', 'source.tags', t('source.tagsHint')),
      enabledField,
    ],
    submit: () =>
      current
        ? api<SourceView>('PUT', `/api/sources/${encodeURIComponent(current.id)}`, { body: body(), headers: { 'if-match': `"${current.version}"` } })
        : api<SourceView>('POST', '/api/sources', { body: body() }),
    onError(err, general) {
      if (err instanceof ApiError && err.status === 412 && err.body.current) {
        current = err.body.current as SourceView;
        fill(current);
        general.textContent = t('source.conflict', { version: current.version, at: formatTime(current.updatedAt) });
        return true;
      }
      if (err instanceof ApiError && err.status === 404 && current) {
        general.textContent = t('source.gone');
        return true;
      }
      return false;
    },
  });
  (existing ? c.name : c.id).focus();
  return done;
}

/**
 * The audit log, for auditors: newest first, a page at a time going back with `before`, filtered by
 * who (exact user name) and what (exact action). The gateway shows each auditor their departments only.
 */
import { api, can } from '../lib/api.js';
import { debounce, h } from '../lib/dom.js';
import { addStrings, formatTime, t } from '../lib/i18n.js';
import { errorText, isAbort, pagerStatus, type Section, tableHead } from './common.js';

addStrings({
  'audit.title': ['Audit log', '审计日志'],
  'audit.actor': ['User name', '操作人'],
  'audit.action': ['Action', '操作类型'],
  'audit.filterHint': ['Exact user name / action, e.g. source.create', '精确匹配用户名 / 操作类型，例如 source.create'],
  'audit.col.at': ['Time', '时间'],
  'audit.col.actor': ['User', '操作人'],
  'audit.col.ip': ['IP address', 'IP 地址'],
  'audit.col.action': ['Action', '操作'],
  'audit.col.target': ['Target', '对象'],
  'audit.col.outcome': ['Outcome', '结果'],
  'audit.col.detail': ['Detail', '详情'],
  'audit.outcome.ok': ['OK', '成功'],
  'audit.outcome.denied': ['Denied', '拒绝'],
  'audit.outcome.failed': ['Failed', '失败'],
  'audit.none': ['No entries match.', '没有符合条件的记录。'],
});

interface AuditEntry {
  seq: number;
  at: string;
  actor: string;
  actorIp: string;
  action: string;
  target: string;
  outcome: 'ok' | 'denied' | 'failed';
  detail: Record<string, unknown>;
}

/** Suggestions only: the filter takes any action the gateway records. */
const KNOWN_ACTIONS = [
  'auth.login',
  'auth.password',
  'user.create',
  'user.update',
  'user.password-reset',
  'user.bootstrap',
  'department.create',
  'department.update',
  'department.delete',
  'source.create',
  'source.update',
  'source.delete',
  'source.import',
  'source.publish-url',
  'stream.stop',
  'vehicle.create',
  'vehicle.update',
  'vehicle.delete',
  'vehicle.import',
  'wall.create',
  'wall.delete',
  'wall.rename',
  'wall.layout',
  'wall.assign',
  'wall.lock.break',
  'wall.plan.activate',
  'wall.plan.revert',
];
const PAGE_SIZE = 50;
const OUTCOME_CLASS = { ok: 'ok', denied: 'warn', failed: 'bad' } as const;

function detailText(detail: Record<string, unknown>): string {
  return Object.entries(detail)
    .map(([k, v]) => `${k}: ${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(' · ');
}

export const auditSection: Section = {
  id: 'audit',
  label: 'audit.title',
  allowed: () => can('audit:read'),
  mount(el) {
    const actor = h('input', { type: 'search', name: 'actor', autocomplete: 'off', spellcheck: 'false', maxlength: 64, 'aria-label': t('audit.actor'), placeholder: t('audit.actor') });
    const action = h('input', { type: 'search', name: 'action', autocomplete: 'off', spellcheck: 'false', maxlength: 64, list: 'audit-actions', 'aria-label': t('audit.action'), placeholder: t('audit.action') });
    const actions = h('datalist', { id: 'audit-actions' }, KNOWN_ACTIONS.map((a) => h('option', { value: a })));
    const rows = h('tbody');
    const status = h('div', { class: 'list-status' });
    let next: number | null = null;
    let shown = 0;
    let loading = false;
    let controller: AbortController | null = null;

    const renderStatus = (error: string | null) => {
      status.replaceChildren(
        ...[
          error ? h('p', { class: 'form-error', role: 'alert' }, error) : null,
          !loading && !error && shown === 0 ? h('p', { class: 'empty muted' }, t('audit.none')) : null,
          pagerStatus(shown, next !== null || loading, loading, () => void load(false)),
        ].filter((x): x is HTMLElement => !!x),
      );
    };

    const load = async (fresh: boolean) => {
      if (fresh) controller?.abort();
      else if (loading || next === null) return;
      const mine = fresh || !controller ? new AbortController() : controller;
      controller = mine;
      const params = new URLSearchParams({ limit: String(PAGE_SIZE) });
      if (actor.value.trim()) params.set('actor', actor.value.trim());
      if (action.value.trim()) params.set('action', action.value.trim());
      if (!fresh && next !== null) params.set('before', String(next));
      loading = true;
      renderStatus(null);
      let error: string | null = null;
      try {
        const page = await api<{ items: AuditEntry[]; next: number | null }>('GET', `/api/audit?${params}`, { signal: mine.signal });
        if (mine !== controller) return;
        if (fresh) {
          rows.replaceChildren();
          shown = 0;
        }
        rows.append(
          ...page.items.map((e) =>
            h(
              'tr',
              { dataset: { seq: String(e.seq), action: e.action } },
              h('td', { class: 'nowrap' }, formatTime(e.at)),
              h('td', { class: 'mono' }, e.actor),
              h('td', { class: 'mono' }, e.actorIp),
              h('td', { class: 'mono' }, e.action),
              h('td', { class: 'mono' }, e.target),
              h('td', null, h('span', { class: `pill ${OUTCOME_CLASS[e.outcome] ?? ''}` }, t(`audit.outcome.${e.outcome}`))),
              h('td', { class: 'detail' }, detailText(e.detail)),
            ),
          ),
        );
        shown += page.items.length;
        next = page.next;
      } catch (err) {
        if (isAbort(err) || mine !== controller) return;
        error = errorText(err);
      } finally {
        if (mine === controller) {
          loading = false;
          renderStatus(error);
        }
      }
    };

    const refresh = debounce(() => void load(true), 300);
    actor.addEventListener('input', refresh);
    action.addEventListener('input', refresh);
    el.append(
      h('div', { class: 'toolbar' }, actor, action, actions, h('span', { class: 'muted small' }, t('audit.filterHint'))),
      h(
        'div',
        { class: 'table-scroll' },
        h(
          'table',
          { class: 'data audit-table' },
          tableHead('audit', ['at', 'actor', 'ip', 'action', 'target', 'outcome', 'detail']),
          rows,
        ),
      ),
      status,
    );
    void load(true);
    return () => controller?.abort();
  },
};

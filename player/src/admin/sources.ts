/**
 * The camera registry: a paged list (70,000 rows exist, so only a page at a time, by cursor) with
 * as-you-type search and filters, and create, edit and delete for those allowed to write.
 */
import { api, ApiError, can } from '../lib/api.js';
import { debounce, h, toast, type Child } from '../lib/dom.js';
import { healthReason } from '../lib/errors.js';
import { addStrings, formatTime, t } from '../lib/i18n.js';
import { type AdminContext, confirmDialog, departmentOptions, download, errorText, isAbort, pagerStatus, type Section, tableHead } from './common.js';
import { openSourceForm, PROTOCOLS, type SourceView } from './source-form.js';

addStrings({
  'sources.title': ['Sources', '视频源'],
  'sources.search': ['Search name, ID or address', '搜索名称、编号或地址'],
  'sources.allDepartments': ['All departments', '全部部门'],
  'sources.allProtocols': ['All protocols', '全部协议'],
  'sources.allHealth': ['Any state', '全部状态'],
  'sources.export': ['Export CSV', '导出 CSV'],
  'sources.none': ['No sources match.', '没有符合条件的视频源。'],
  'sources.col.id': ['ID', '编号'],
  'sources.col.name': ['Name', '名称'],
  'sources.col.department': ['Department', '部门'],
  'sources.col.protocol': ['Protocol', '协议'],
  'sources.col.health': ['Health', '状态'],
  'sources.col.enabled': ['Enabled', '启用'],
  'sources.col.actions': ['Actions', '操作'],
  'sources.yes': ['Yes', '是'],
  'sources.no': ['No', '否'],
  'sources.since': ['since {at}', '自 {at}'],
  'sources.confirmDelete': ['Delete source "{name}" ({id})? Walls showing it lose the camera.', '删除视频源“{name}”（{id}）？正在显示它的大屏将失去该画面。'],
  'sources.deleted': ['Source {id} deleted', '已删除视频源 {id}'],
  'sources.created': ['Source {id} created', '已创建视频源 {id}'],
  'sources.changedElsewhere': ['Source {id} was changed by someone else; the list is reloaded, look again before deleting.', '视频源 {id} 已被他人修改，列表已刷新，请确认后再删除。'],
});

export const HEALTH = ['online', 'offline', 'unknown'] as const;

export interface SourceFilters {
  q?: string;
  departmentId?: string;
  protocol?: string;
  health?: string;
}

interface SourcePage {
  items: SourceView[];
  nextCursor: string | null;
}

const PAGE_SIZE = 100;

/** The health as a coloured state, with the error that made it so. */
export function healthCell(health: SourceView['health']): HTMLElement {
  const reason = healthReason(health);
  return h(
    'div',
    { class: 'health', title: health.since ? t('sources.since', { at: formatTime(health.since) }) : null },
    h('span', { class: `pill ${health.state}` }, t(`health.${health.state}`)),
    reason ? h('div', { class: 'health-error' }, reason) : null,
  );
}

/**
 * A list of sources, a page at a time. A new filter aborts the request still running for the old
 * one, so a quick typist never sees an older answer land after a newer one.
 */
export class SourceList {
  readonly el: HTMLElement;
  private readonly rows = h('tbody');
  private readonly status = h('div', { class: 'list-status' });
  private controller: AbortController | null = null;
  private filters: SourceFilters = {};
  private cursor: string | null = null;
  private shown = 0;
  private loading = false;
  private error: string | null = null;

  constructor(private readonly actions?: (source: SourceView, list: SourceList) => Child) {
    this.el = h(
      'div',
      { class: 'source-list' },
      h(
        'div',
        { class: 'table-scroll' },
        h(
          'table',
          { class: 'data sources-table' },
          tableHead('sources', ['id', 'name', 'department', 'protocol', 'health', 'enabled', ...(actions ? ['actions'] : [])]),
          this.rows,
        ),
      ),
      this.status,
    );
  }

  show(filters: SourceFilters): void {
    this.filters = filters;
    void this.load(true);
  }

  reload(): void {
    void this.load(true);
  }

  destroy(): void {
    this.controller?.abort();
  }

  /** Puts a saved source in place of its row, or at the top when it is new. */
  upsert(source: SourceView): void {
    const row = this.renderRow(source);
    const old = this.rows.querySelector(`tr[data-id="${CSS.escape(source.id)}"]`);
    if (old) old.replaceWith(row);
    else {
      this.rows.prepend(row);
      this.shown++;
      this.renderStatus();
    }
  }

  remove(id: string): void {
    const old = this.rows.querySelector(`tr[data-id="${CSS.escape(id)}"]`);
    if (!old) return;
    old.remove();
    this.shown--;
    this.renderStatus();
  }

  private async load(fresh: boolean): Promise<void> {
    if (fresh) this.controller?.abort();
    else if (this.loading || !this.cursor) return;
    const controller = fresh || !this.controller ? new AbortController() : this.controller;
    this.controller = controller;
    const params = new URLSearchParams({ limit: String(PAGE_SIZE) });
    for (const [k, v] of Object.entries(this.filters)) if (v) params.set(k, v);
    if (!fresh && this.cursor) params.set('cursor', this.cursor);
    this.loading = true;
    this.renderStatus();
    try {
      const page = await api<SourcePage>('GET', `/api/sources?${params}`, { signal: controller.signal });
      if (controller !== this.controller) return;
      // The old rows stay until the new answer is here: typing does not blank the table on every key.
      if (fresh) {
        this.rows.replaceChildren();
        this.shown = 0;
        // What the rows answer, so a reader (or a test) can tell a settled search from one still typed.
        this.el.dataset.q = this.filters.q ?? '';
      }
      this.rows.append(...page.items.map((s) => this.renderRow(s)));
      this.shown += page.items.length;
      this.cursor = page.nextCursor;
      this.error = null;
    } catch (err) {
      if (isAbort(err) || controller !== this.controller) return;
      this.error = errorText(err);
      if (fresh) {
        // The rows and cursor of the previous filters must not pass for (or page on into) the new ones.
        this.rows.replaceChildren();
        this.shown = 0;
        this.cursor = null;
      }
    } finally {
      if (controller === this.controller) {
        this.loading = false;
        this.renderStatus();
      }
    }
  }

  private renderRow(s: SourceView): HTMLTableRowElement {
    return h(
      'tr',
      { dataset: { id: s.id } },
      h('td', { class: 'mono' }, s.id),
      h('td', { class: 'name' }, s.name),
      h('td', null, s.departmentName),
      h('td', null, s.protocol),
      h('td', null, healthCell(s.health)),
      h('td', null, s.enabled ? t('sources.yes') : h('span', { class: 'pill' }, t('sources.no'))),
      this.actions ? h('td', { class: 'actions' }, this.actions(s, this)) : null,
    );
  }

  private renderStatus(): void {
    const parts: HTMLElement[] = [];
    if (this.error) parts.push(h('p', { class: 'form-error', role: 'alert' }, this.error));
    if (!this.loading && !this.error && this.shown === 0) parts.push(h('p', { class: 'empty muted' }, t('sources.none')));
    parts.push(pagerStatus(this.shown, !!this.cursor || this.loading, this.loading, () => void this.load(false)));
    this.status.replaceChildren(...parts);
    this.el.setAttribute('aria-busy', String(this.loading));
  }
}

async function deleteSource(source: SourceView, list: SourceList): Promise<void> {
  if (!(await confirmDialog(t('sources.confirmDelete', { name: source.name, id: source.id }), t('common.delete')))) return;
  try {
    await api('DELETE', `/api/sources/${encodeURIComponent(source.id)}`, { headers: { 'if-match': `"${source.version}"` } });
    list.remove(source.id);
    toast(t('sources.deleted', { id: source.id }), 'ok');
  } catch (err) {
    if (err instanceof ApiError && err.status === 412) {
      toast(t('sources.changedElsewhere', { id: source.id }), 'error');
      list.reload();
    } else toast(errorText(err), 'error');
  }
}

async function editSource(ctx: AdminContext, source: SourceView, list: SourceList): Promise<void> {
  try {
    // The row may be minutes old: edit what the gateway holds now, so a save rarely meets a 412.
    const fresh = await api<SourceView>('GET', `/api/sources/${encodeURIComponent(source.id)}`);
    const saved = await openSourceForm(ctx, fresh);
    if (saved) {
      list.upsert(saved);
      ctx.forestChanged();
    }
  } catch (err) {
    toast(errorText(err), 'error');
    if (err instanceof ApiError && err.status === 404) list.remove(source.id);
  }
}

export const sourcesSection: Section = {
  id: 'sources',
  label: 'sources.title',
  allowed: () => can('sources:read'),
  mount(el, ctx) {
    const writable = can('sources:write');
    const list = new SourceList(
      writable
        ? (s, l) => [
            h('button', { type: 'button', class: 'link', onclick: () => void editSource(ctx, s, l) }, t('common.edit')),
            h('button', { type: 'button', class: 'link danger', onclick: () => void deleteSource(s, l) }, t('common.delete')),
          ]
        : undefined,
    );
    const q = h('input', { type: 'search', name: 'q', placeholder: t('sources.search'), 'aria-label': t('sources.search'), autocomplete: 'off' });
    const department = h('select', { name: 'departmentId', 'aria-label': t('sources.col.department') }, h('option', { value: '' }, t('sources.allDepartments')));
    const protocol = h(
      'select',
      { name: 'protocol', 'aria-label': t('sources.col.protocol') },
      h('option', { value: '' }, t('sources.allProtocols')),
      PROTOCOLS.map((p) => h('option', { value: p }, p)),
    );
    const health = h(
      'select',
      { name: 'health', 'aria-label': t('sources.col.health') },
      h('option', { value: '' }, t('sources.allHealth')),
      HEALTH.map((x) => h('option', { value: x }, t(`health.${x}`))),
    );
    const filters = (): SourceFilters => ({
      // The gateway takes up to 100 characters; a longer paste still searches its start.
      q: q.value.trim().slice(0, 100),
      departmentId: department.value,
      protocol: protocol.value,
      health: health.value,
    });
    const refresh = () => list.show(filters());
    q.addEventListener('input', debounce(refresh, 250));
    for (const s of [department, protocol, health]) s.addEventListener('change', refresh);

    const create = writable
      ? h(
          'button',
          {
            type: 'button',
            class: 'primary',
            onclick: async () => {
              const saved = await openSourceForm(ctx, null);
              if (!saved) return;
              list.upsert(saved);
              ctx.forestChanged();
              toast(t('sources.created', { id: saved.id }), 'ok');
            },
          },
          t('source.new'),
        )
      : null;
    const exportButton = can('sources:export')
      ? h(
          'button',
          {
            type: 'button',
            onclick: async (e: Event) => {
              const button = e.currentTarget as HTMLButtonElement;
              button.disabled = true;
              try {
                // The export takes the list's filters: what is exported is what the admin is looking at.
                const params = new URLSearchParams({ format: 'csv' });
                for (const [k, v] of Object.entries(filters())) if (v) params.set(k, v);
                // The token is not a cookie, so a plain link would be refused: fetch, then hand over the file.
                download('sources.csv', 'text/csv', await api<string>('GET', `/api/sources/export?${params}`, { headers: { accept: 'text/csv' } }));
              } catch (err) {
                toast(errorText(err), 'error');
              } finally {
                button.disabled = false;
              }
            },
          },
          t('sources.export'),
        )
      : null;

    el.append(h('div', { class: 'toolbar' }, q, department, protocol, health, h('span', { class: 'spacer' }), exportButton, create), list.el);
    void ctx
      .forest()
      .then((forest) => department.append(...departmentOptions(forest, null)))
      .catch((err: unknown) => toast(errorText(err), 'error'));
    refresh();
    return () => list.destroy();
  },
};

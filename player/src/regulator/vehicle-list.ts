/**
 * The vehicle list: filters and a search the gateway applies, pages of 100 read on demand (a fleet
 * of thousands never loads at once), and rows kept live by the position feed and the alarm list.
 */
import { VEHICLE_CATEGORIES } from '../../../gateway/src/vehicles/model.js';
import { api, ApiError } from '../lib/api.js';
import { debounce, h, replace } from '../lib/dom.js';
import { addStrings, formatNumber, t } from '../lib/i18n.js';
import { categoryLabel, categoryShortLabel, fullTime, plateBadge, shortTime, speedLabel } from './labels.js';
import { CATEGORY_COLOURS } from './map.js';
import type { VehicleDirectory, VehiclePage, VehicleView } from './vehicles.js';

addStrings({
  'list.search': ['Plate or company', '车牌或企业'],
  'list.category': ['Category', '类别'],
  'list.company': ['Company (full name)', '企业（全称）'],
  'list.status': ['Status', '状态'],
  'list.alarm': ['Alarms', '告警'],
  'list.withAlarms': ['With open alarms', '有未结束告警'],
  'list.withoutAlarms': ['Without open alarms', '无告警'],
  'list.plate': ['Plate', '车牌'],
  'list.speed': ['Speed', '速度'],
  'list.lastReport': ['Last report', '最近上报'],
  'list.openAlarms': ['Alarms', '告警'],
  'list.shown': ['{n} shown', '已显示 {n} 辆'],
  'list.moreExist': ['{n} shown, more to load', '已显示 {n} 辆，还有更多'],
  'list.noMatch': ['No vehicle matches these filters', '没有符合条件的车辆'],
  'list.failed': ['The list could not be read: {message}', '车辆列表读取失败：{message}'],
  'list.noPosition': ['—', '—'],
});

const PAGE_SIZE = 100;
/** Long enough to wait for the next keystroke, short enough to feel immediate. */
const TYPING_PAUSE_MS = 250;

export interface VehicleListOptions {
  directory: VehicleDirectory;
  /** Open alarms of a vehicle as the alarm list holds them; null until it holds them all. */
  alarmCount(vehicleId: string): number | null;
  onSelect(vehicleId: string): void;
}

interface Row {
  tr: HTMLTableRowElement;
  vehicle: VehicleView;
}

export class VehicleList {
  readonly el: HTMLElement;
  private readonly search: HTMLInputElement;
  private readonly category: HTMLSelectElement;
  private readonly company: HTMLInputElement;
  private readonly companies: HTMLDataListElement;
  private readonly status: HTMLSelectElement;
  private readonly alarm: HTMLSelectElement;
  private readonly body: HTMLTableSectionElement;
  private readonly summary: HTMLSpanElement;
  private readonly error: HTMLParagraphElement;
  private readonly more: HTMLButtonElement;
  private readonly rows = new Map<string, Row>();
  private readonly knownCompanies = new Set<string>();
  private cursor: string | null = null;
  private loading: AbortController | null = null;
  private selected: string | null = null;

  constructor(private readonly o: VehicleListOptions) {
    const reload = () => void this.load(true);
    const typed = debounce(reload, TYPING_PAUSE_MS);
    const option = (value: string, label: string) => h('option', { value }, label);
    this.search = h('input', { type: 'search', name: 'q', maxlength: 100, placeholder: t('list.search'), 'aria-label': t('list.search'), oninput: typed });
    this.category = h('select', { name: 'category', onchange: reload }, option('', t('common.all')), VEHICLE_CATEGORIES.map((c) => option(c, categoryLabel(c))));
    this.companies = h('datalist', { id: 'reg-companies' });
    this.company = h('input', { name: 'company', maxlength: 100, list: 'reg-companies', oninput: typed });
    this.status = h('select', { name: 'status', onchange: reload }, option('', t('common.all')), option('online', t('common.online')), option('offline', t('common.offline')));
    this.alarm = h('select', { name: 'alarm', onchange: reload }, option('', t('common.all')), option('open', t('list.withAlarms')), option('none', t('list.withoutAlarms')));
    this.body = h('tbody');
    this.summary = h('span', { class: 'list-summary muted' });
    this.error = h('p', { class: 'form-error', role: 'alert' });
    this.more = h('button', { type: 'button', class: 'load-more', hidden: true, onclick: () => void this.load(false) }, t('common.more'));
    const th = (key: string, cls = '') => h('th', { class: cls, scope: 'col' }, t(key));
    this.el = h(
      'section',
      { class: 'reg-vehicles', 'aria-label': t('reg.vehicles') },
      h('header', { class: 'panel-head' }, h('h2', null, t('reg.vehicles')), this.summary),
      h(
        'div',
        { class: 'vehicle-filters' },
        h('label', { class: 'wide' }, t('common.search'), this.search),
        h('label', null, t('list.category'), this.category),
        h('label', null, t('list.status'), this.status),
        h('label', null, t('list.alarm'), this.alarm),
        h('label', { class: 'wide' }, t('list.company'), this.company, this.companies),
      ),
      this.error,
      h(
        'div',
        { class: 'vehicle-table' },
        h(
          'table',
          null,
          h('thead', null, h('tr', null, th('list.plate'), th('list.category'), th('list.company'), th('list.status'), th('list.speed', 'num'), th('list.lastReport'), th('list.openAlarms', 'num'))),
          this.body,
        ),
        this.more,
      ),
    );
  }

  destroy(): void {
    this.loading?.abort();
    this.rows.clear();
  }

  /** The first page for the filters as they are now (`reset`), or the next page. */
  async load(reset: boolean): Promise<void> {
    // A next page waits for nothing; a new first page replaces whatever was on its way.
    if (!reset && (!this.cursor || this.loading)) return;
    this.loading?.abort();
    const controller = new AbortController();
    this.loading = controller;
    const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
    const q = this.search.value.trim();
    const company = this.company.value.trim();
    if (q) query.set('q', q);
    if (company) query.set('company', company);
    for (const select of [this.category, this.status, this.alarm]) if (select.value) query.set(select.name, select.value);
    if (!reset && this.cursor) query.set('cursor', this.cursor);
    this.more.disabled = true;
    try {
      const page = await api<VehiclePage>('GET', `/api/vehicles?${query}`, { signal: controller.signal });
      if (this.loading !== controller) return;
      this.error.textContent = '';
      if (reset) {
        this.body.replaceChildren();
        this.rows.clear();
      }
      for (const v of page.items) this.add(v);
      this.cursor = page.nextCursor;
      this.showSummary();
    } catch (err) {
      if ((err as Error).name === 'AbortError') return;
      this.error.textContent = t('list.failed', { message: err instanceof ApiError && err.issues.length ? err.issues.map((i) => `${i.field}: ${i.message}`).join('; ') : (err as Error).message });
    } finally {
      if (this.loading === controller) {
        this.loading = null;
        this.more.disabled = false;
      }
    }
  }

  /** Shows again the rows of these vehicles (their position, status or alarms changed). */
  refresh(vehicleIds: Iterable<string>): void {
    for (const id of vehicleIds) {
      const row = this.rows.get(id);
      if (row) this.render(row);
    }
  }

  refreshAll(): void {
    for (const row of this.rows.values()) this.render(row);
  }

  select(vehicleId: string | null): void {
    if (this.selected) this.rows.get(this.selected)?.tr.classList.remove('selected');
    this.selected = vehicleId;
    const row = vehicleId ? this.rows.get(vehicleId) : undefined;
    if (!row) return;
    row.tr.classList.add('selected');
    row.tr.scrollIntoView({ block: 'nearest' });
  }

  private add(v: VehicleView) {
    this.o.directory.remember(v);
    if (!this.knownCompanies.has(v.company)) {
      this.knownCompanies.add(v.company);
      this.companies.append(h('option', { value: v.company }));
    }
    const existing = this.rows.get(v.id);
    if (existing) {
      existing.vehicle = v;
      this.render(existing);
      return;
    }
    const tr = h('tr', {
      tabindex: 0,
      dataset: { vehicle: v.id },
      class: v.id === this.selected ? 'selected' : '',
      onclick: () => this.o.onSelect(v.id),
      onkeydown: (e: KeyboardEvent) => {
        if (e.key === 'Enter') this.o.onSelect(v.id);
      },
    });
    const row = { tr, vehicle: v };
    this.rows.set(v.id, row);
    this.render(row);
    this.body.append(tr);
  }

  private render(row: Row) {
    // The directory holds the latest state (the feed writes there); the row's copy is the fallback.
    const v = this.o.directory.peek(row.vehicle.id) ?? row.vehicle;
    const p = v.live.position;
    const alarms = this.o.alarmCount(v.id) ?? v.live.openAlarms;
    const reported = p?.at ?? v.live.lastReportAt;
    row.tr.dataset.status = v.live.status;
    row.tr.classList.toggle('offline', v.live.status === 'offline');
    row.tr.classList.toggle('alarmed', alarms > 0);
    replace(
      row.tr,
      h('td', { class: 'plate-cell' }, plateBadge(v.plate, v.plateColor)),
      h('td', { class: 'category-cell', title: categoryLabel(v.category) }, h('span', { class: 'dot', style: `background:${CATEGORY_COLOURS[v.category]}` }), categoryShortLabel(v.category)),
      h('td', { class: 'company-cell', title: v.company }, v.company),
      h('td', { class: 'status-cell' }, h('span', { class: `pill ${v.live.status}` }, t(v.live.status === 'online' ? 'common.online' : 'common.offline'))),
      h('td', { class: 'num speed-cell' }, p ? speedLabel(p.speed) : t('list.noPosition')),
      h('td', { class: 'time-cell', title: reported ? fullTime(reported) : '' }, shortTime(reported)),
      h('td', { class: 'num alarms-cell' }, alarms > 0 ? h('span', { class: 'pill bad' }, formatNumber(alarms)) : h('span', { class: 'muted' }, '0')),
    );
  }

  private showSummary() {
    const n = formatNumber(this.rows.size);
    this.summary.textContent = this.cursor ? t('list.moreExist', { n }) : t('list.shown', { n });
    this.more.hidden = !this.cursor;
    if (this.rows.size === 0) this.body.append(h('tr', { class: 'empty' }, h('td', { colspan: 7, class: 'muted' }, t('list.noMatch'))));
  }
}

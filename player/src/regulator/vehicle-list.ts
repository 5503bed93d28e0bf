/**
 * The vehicle list: filters and a search the gateway applies, pages of 100 read on demand (a fleet
 * of thousands never loads at once), and rows kept live by the position feed and the alarm list.
 */
import { VEHICLE_CATEGORIES } from '../../../gateway/src/vehicles/model.js';
import { api } from '../lib/api.js';
import { h, replace } from '../lib/dom.js';
import { addStrings, formatNumber, t } from '../lib/i18n.js';
import { driveSearch, PagedQuery } from '../lib/paged-query.js';
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

/** The filters as they were when a search started: its next pages are asked for with them. */
interface Filters {
  q: string;
  company: string;
  category: string;
  status: string;
  alarm: string;
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
  private readonly query: PagedQuery<VehicleView, Filters>;
  private hasMore = false;
  private selected: string | null = null;

  constructor(private readonly o: VehicleListOptions) {
    const option = (value: string, label: string) => h('option', { value }, label);
    this.search = h('input', { type: 'search', name: 'q', maxlength: 100, placeholder: t('list.search'), 'aria-label': t('list.search') });
    this.category = h('select', { name: 'category' }, option('', t('common.all')), VEHICLE_CATEGORIES.map((c) => option(c, categoryLabel(c))));
    this.companies = h('datalist', { id: 'reg-companies' });
    this.company = h('input', { name: 'company', maxlength: 100, list: 'reg-companies' });
    this.status = h('select', { name: 'status' }, option('', t('common.all')), option('online', t('common.online')), option('offline', t('common.offline')));
    this.alarm = h('select', { name: 'alarm' }, option('', t('common.all')), option('open', t('list.withAlarms')), option('none', t('list.withoutAlarms')));
    this.body = h('tbody');
    this.summary = h('span', { class: 'list-summary muted' });
    this.error = h('p', { class: 'form-error', role: 'alert' });
    this.more = h('button', { type: 'button', class: 'load-more', hidden: true }, t('common.more'));
    this.query = new PagedQuery<VehicleView, Filters>(
      () => ({
        q: this.search.value.trim(),
        company: this.company.value.trim(),
        category: this.category.value,
        status: this.status.value,
        alarm: this.alarm.value,
      }),
      (filters, cursor, signal) => {
        const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
        for (const [key, value] of Object.entries(filters)) if (value) query.set(key, value);
        if (cursor) query.set('cursor', cursor);
        return api<VehiclePage>('GET', `/api/vehicles?${query}`, { signal });
      },
      (items, append, more) => this.showPage(items, append, more),
      (state, message) => {
        this.more.disabled = state === 'loading';
        if (state === 'failed') this.error.textContent = t('list.failed', { message: message ?? '' });
      },
    );
    driveSearch(this.query, { typed: [this.search, this.company], picked: [this.category, this.status, this.alarm], more: this.more, pauseMs: TYPING_PAUSE_MS });
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
    this.query.stop();
    this.rows.clear();
  }

  /** The first page for the filters as they are now. */
  start(): void {
    this.query.start();
  }

  /** Takes off the rows of vehicles the user no longer sees. */
  forget(vehicleIds: Iterable<string>): void {
    let removed = false;
    for (const id of vehicleIds) {
      const row = this.rows.get(id);
      if (!row) continue;
      row.tr.remove();
      this.rows.delete(id);
      removed = true;
    }
    if (removed) this.showSummary();
  }

  private showPage(items: VehicleView[], append: boolean, more: boolean) {
    this.error.textContent = '';
    if (!append) {
      this.body.replaceChildren();
      this.rows.clear();
    }
    this.body.querySelector('tr.empty')?.remove();
    for (const v of items) this.add(v);
    this.hasMore = more;
    this.showSummary();
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

  private add(fromRest: VehicleView) {
    const v = this.o.directory.remember(fromRest);
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
    this.summary.textContent = this.hasMore ? t('list.moreExist', { n }) : t('list.shown', { n });
    this.more.hidden = !this.hasMore;
    if (this.rows.size === 0 && !this.body.querySelector('tr.empty')) this.body.append(h('tr', { class: 'empty' }, h('td', { colspan: 7, class: 'muted' }, t('list.noMatch'))));
  }
}

/**
 * Finding a camera: as-you-type search over the sources (or a vehicle's channels), 50 at a time.
 * Each keystroke pause (200 ms) aborts the request before it, so a fast typist never waits for
 * answers to what they typed on the way; nothing beyond the page asked for is loaded, which keeps it
 * fast over 70,000 cameras. A result is dragged onto a tile, or picked and then a tile clicked; resting
 * the pointer on an online camera shows its picture.
 */
import { api, can } from '../lib/api.js';
import type { DepartmentNode } from '../lib/departments.js';
import { h, tabBar } from '../lib/dom.js';
import { healthReason, type StoredHealth } from '../lib/errors.js';
import { addStrings, formatNumber, t } from '../lib/i18n.js';
import { driveSearch, PagedQuery, type Page, type QueryState } from '../lib/paged-query.js';
import { openPopout } from '../lib/shell.js';
import { previewOnHover } from './camera-preview.js';
import { draggableCamera, type CameraRef, type ConsoleContext } from './context.js';

addStrings({
  'search.cameras': ['Cameras', '摄像机'],
  'search.vehicles': ['Vehicles', '车辆'],
  'search.placeholder': ['Name, ID or address', '名称、编号或地址'],
  'search.vehiclePlaceholder': ['Plate or company', '车牌或企业'],
  'search.in': ['In {dept}', '范围：{dept}'],
  'search.healthReason': ['{health}: {reason}', '{health}：{reason}'],
  'search.clearDept': ['Search all departments', '搜索全部机构'],
  'search.searching': ['Searching…', '搜索中…'],
  'search.none': ['No cameras match “{q}”.', '没有与“{q}”匹配的摄像机。'],
  'search.noneAtAll': ['No cameras here.', '此处没有摄像机。'],
  'search.count': ['{n} cameras', '共 {n} 路摄像机'],
  'search.countOne': ['1 camera', '共 1 路摄像机'],
  'search.countOf': ['{n} of {total} cameras shown', '已显示 {n} / {total} 路摄像机'],
  'search.countMore': ['First {n} shown; more below', '已显示前 {n} 条，可加载更多'],
  'search.vehicleCount': ['{n} vehicles', '共 {n} 辆车'],
  'search.vehicleCountOne': ['1 vehicle', '共 1 辆车'],
  'search.vehicleMore': ['First {n} vehicles shown; more below', '已显示前 {n} 辆，可加载更多'],
  'search.vehicleNone': ['No vehicles match “{q}”.', '没有与“{q}”匹配的车辆。'],
  'search.vehicleNoneAtAll': ['No vehicles.', '暂无车辆。'],
  'search.noChannels': ['No camera channels', '无视频通道'],
  'search.failed': ['Search failed: {message}', '搜索失败：{message}'],
  'search.addTour': ['Add to the tour list', '加入轮巡列表'],
  'search.popout': ['Open in its own window', '弹出单独播放'],
  'search.pick': ['Pick, then click a tile', '选中后点击窗口上墙'],
  'vehicle.online': ['online', '在线'],
  'vehicle.offline': ['offline', '离线'],
});

const PAGE_SIZE = 50;
const TYPING_PAUSE_MS = 200;

interface SourceItem {
  id: string;
  name: string;
  departmentId: string;
  departmentName: string;
  address: string;
  health: StoredHealth & { state: string };
}

interface VehicleItem {
  id: string;
  plate: string;
  company: string;
  category: string;
  departmentName: string;
  channels: Array<{ channel: number; name: string; sourceId: string }>;
  live?: { status: string };
}

/** What a search's list and count line say while it runs or when it failed. */
function searchState(list: HTMLElement, count: HTMLElement) {
  return (state: QueryState, message?: string) => {
    list.setAttribute('aria-busy', String(state === 'loading'));
    if (state === 'loading') count.textContent = t('search.searching');
    if (state === 'failed') count.textContent = t('search.failed', { message: message ?? '' });
  };
}

export class CameraSearch {
  readonly el: HTMLElement;

  constructor(private readonly ctx: ConsoleContext) {
    const cameras = this.cameraTab();
    const vehicles = this.vehicleTab();
    const tabs = tabBar(
      [
        { key: 'cameras', label: t('search.cameras'), panel: cameras },
        { key: 'vehicles', label: t('search.vehicles'), panel: vehicles },
      ],
      (panel) => panel.querySelector('input')?.focus(),
    );
    this.el = h('section', { class: 'panel search-panel' }, tabs, cameras, vehicles);
    ctx.picked.on((picked) => {
      for (const row of this.el.querySelectorAll<HTMLElement>('.result')) row.classList.toggle('picked', row.dataset.camera === picked?.cameraId);
    });
  }

  private cameraTab(): HTMLElement {
    const input = h('input', { type: 'search', placeholder: t('search.placeholder'), 'aria-label': t('search.placeholder'), maxlength: '100', dataset: { role: 'camera-search' } });
    const scope = h('div', { class: 'search-scope' });
    const count = h('div', { class: 'search-count muted', role: 'status', dataset: { role: 'search-count' } });
    const list = h('ul', { class: 'results', dataset: { role: 'camera-results' } });
    const more = h('button', { class: 'more', hidden: true }, t('common.more'));
    const query = new PagedQuery<SourceItem, { q: string; dept: DepartmentNode | null }>(
      () => ({ q: input.value.trim(), dept: this.ctx.department.value }),
      ({ q, dept }, cursor, signal) => {
        const params = new URLSearchParams({ limit: String(PAGE_SIZE) });
        if (q) params.set('q', q);
        if (dept) params.set('departmentId', dept.id);
        if (cursor) params.set('cursor', cursor);
        return api<Page<SourceItem>>('GET', `/api/sources?${params}`, { signal });
      },
      (items, append, hasMore, { q, dept }) => {
        const rows = items.map((s) => this.resultRow({ cameraId: s.id, name: s.name, departmentName: s.departmentName }, s.health.state, healthReason(s.health), [s.departmentName, s.id].join(' · ')));
        if (append) list.append(...rows);
        else list.replaceChildren(...rows);
        // What the list answers, for whoever must know the results are those of the text typed (tests, screen readers).
        list.dataset.query = q;
        more.hidden = !hasMore;
        const n = query.shown;
        if (n === 0) count.textContent = q ? t('search.none', { q }) : t('search.noneAtAll');
        else if (!q && dept) count.textContent = t('search.countOf', { n: formatNumber(n), total: formatNumber(dept.counts.total) });
        else count.textContent = hasMore ? t('search.countMore', { n: formatNumber(n) }) : t(n === 1 ? 'search.countOne' : 'search.count', { n: formatNumber(n) });
      },
      searchState(list, count),
    );
    driveSearch(query, { typed: [input], more, pauseMs: TYPING_PAUSE_MS });
    this.ctx.department.on((dept) => {
      scope.replaceChildren(
        ...(dept ? [h('span', null, t('search.in', { dept: dept.name })), h('button', { class: 'link', title: t('search.clearDept'), 'aria-label': t('search.clearDept'), onclick: () => this.ctx.department.set(null) }, '×')] : []),
      );
      query.start();
    });
    query.start();
    return h('div', { class: 'tab-panel', role: 'tabpanel', dataset: { panel: 'cameras' } }, input, scope, count, list, more);
  }

  private vehicleTab(): HTMLElement {
    const input = h('input', { type: 'search', placeholder: t('search.vehiclePlaceholder'), 'aria-label': t('search.vehiclePlaceholder'), maxlength: '100', dataset: { role: 'vehicle-search' } });
    const count = h('div', { class: 'search-count muted', role: 'status', dataset: { role: 'vehicle-count' } });
    const list = h('ul', { class: 'results vehicles', dataset: { role: 'vehicle-results' } });
    const more = h('button', { class: 'more', hidden: true }, t('common.more'));
    let started = false;
    const query = new PagedQuery<VehicleItem, string>(
      () => input.value.trim(),
      (q, cursor, signal) => {
        const params = new URLSearchParams({ limit: String(PAGE_SIZE) });
        if (q) params.set('q', q);
        if (cursor) params.set('cursor', cursor);
        return api<Page<VehicleItem>>('GET', `/api/vehicles?${params}`, { signal });
      },
      (items, append, hasMore, q) => {
        const rows = items.map((v) => this.vehicleRow(v));
        if (append) list.append(...rows);
        else list.replaceChildren(...rows);
        list.dataset.query = q;
        more.hidden = !hasMore;
        const n = query.shown;
        if (n === 0) count.textContent = q ? t('search.vehicleNone', { q }) : t('search.vehicleNoneAtAll');
        else count.textContent = hasMore ? t('search.vehicleMore', { n: formatNumber(n) }) : t(n === 1 ? 'search.vehicleCountOne' : 'search.vehicleCount', { n: formatNumber(n) });
      },
      searchState(list, count),
    );
    driveSearch(query, { typed: [input], more, pauseMs: TYPING_PAUSE_MS });
    const panel = h('div', { class: 'tab-panel', role: 'tabpanel', dataset: { panel: 'vehicles' } }, input, count, list, more);
    // Vehicles are asked for only once someone opens the tab.
    new MutationObserver(() => {
      if (!panel.hidden && !started) {
        started = true;
        query.start();
      }
    }).observe(panel, { attributes: true, attributeFilter: ['hidden'] });
    return panel;
  }

  private vehicleRow(v: VehicleItem): HTMLLIElement {
    const status = v.live?.status ?? 'offline';
    const channels = v.channels.length
      ? v.channels.map((c) =>
          this.resultRow({ cameraId: c.sourceId, name: `${v.plate} · ${c.channel} ${c.name}`, departmentName: v.departmentName }, status, null, `${c.channel} · ${c.name}`, true),
        )
      : [h('li', { class: 'muted channel-none' }, t('search.noChannels'))];
    return h(
      'li',
      { class: 'vehicle', dataset: { vehicle: v.id } },
      h('div', { class: 'vehicle-head' }, h('span', { class: `status-dot ${status}`, title: t(`vehicle.${status}`) }), h('strong', null, v.plate), h('span', { class: 'muted' }, v.company)),
      h('ul', { class: 'channels' }, channels),
    );
  }

  /** A camera in a list: drag it to a tile, click to pick it, double-click to pop it out. */
  private resultRow(camera: CameraRef, health: string, reason: string | null, detail: string, channel = false): HTMLLIElement {
    const drive = can('walls:drive');
    const addToTour = h(
      'button',
      {
        class: 'icon',
        title: t('search.addTour'),
        'aria-label': t('search.addTour'),
        dataset: { action: 'tour-add' },
        onclick: (e: Event) => {
          e.stopPropagation();
          const list = this.ctx.tourList.value;
          if (!list.some((c) => c.cameraId === camera.cameraId)) this.ctx.tourList.set([...list, camera]);
        },
      },
      '+',
    );
    const popout = h(
      'button',
      {
        class: 'icon',
        title: t('search.popout'),
        'aria-label': t('search.popout'),
        onclick: (e: Event) => {
          e.stopPropagation();
          openPopout(camera.cameraId);
        },
      },
      '↗',
    );
    const row = h(
      'li',
      { class: `result${channel ? ' channel' : ''}`, tabindex: '0', title: drive ? `${camera.name} — ${t('search.pick')}` : camera.name, dataset: { camera: camera.cameraId } },
      h('span', { class: `status-dot ${health}`, title: reason ? t('search.healthReason', { health: t(`health.${health}`), reason }) : t(`health.${health}`) }),
      h('span', { class: 'result-text' }, h('span', { class: 'result-name' }, channel ? detail : camera.name), channel ? null : h('span', { class: 'result-detail muted' }, detail)),
      drive ? addToTour : null,
      popout,
    );
    if (health === 'online') previewOnHover(row, () => Promise.resolve([camera]));
    row.addEventListener('dblclick', () => {
      this.ctx.picked.set(null);
      openPopout(camera.cameraId);
    });
    // Someone who may not drive the wall can still find a camera and watch it, but not place it.
    if (!drive) return row;
    draggableCamera(row, camera);
    const pick = () => this.ctx.picked.set(this.ctx.picked.value?.cameraId === camera.cameraId ? null : camera);
    row.addEventListener('click', pick);
    row.addEventListener('keydown', (e) => {
      if (e.target !== row || (e.key !== 'Enter' && e.key !== ' ')) return;
      e.preventDefault();
      pick();
    });
    if (this.ctx.picked.value?.cameraId === camera.cameraId) row.classList.add('picked');
    return row;
  }
}

/**
 * Tours (轮巡): the selected tiles rotate through the cameras of the tour list, or of a department,
 * every dwellSec. The running tours of the wall are listed with who started them, and stopped here
 * (the tiles keep the camera they show).
 */
import type { Tour } from '../../../gateway/src/control/model.js';
import { can } from '../lib/api.js';
import { h } from '../lib/dom.js';
import { addStrings, t } from '../lib/i18n.js';
import type { ConsoleContext } from './context.js';
import { explain, fieldsAtFault } from './tile-actions.js';

addStrings({
  'tour.title': ['Tours', '轮巡'],
  'tour.list': ['Tour list ({n})', '轮巡列表（{n}）'],
  'tour.listEmpty': ['Add cameras with + in the search results.', '在搜索结果中点击 + 添加摄像机。'],
  'tour.clearList': ['Empty the list', '清空列表'],
  'tour.remove': ['Remove', '移除'],
  'tour.fromList': ['Cameras of the tour list', '轮巡列表中的摄像机'],
  'tour.fromDept': ['Cameras of {dept}', '{dept} 的摄像机'],
  'tour.fromDeptNone': ['Cameras of a department (choose one in the tree)', '某机构的摄像机（请在机构树中选择）'],
  'tour.name': ['Name', '名称'],
  'tour.defaultName': ['Tour {time}', '轮巡 {time}'],
  'tour.dwell': ['Seconds per camera', '每路停留秒数'],
  'tour.start': ['Start on selected tiles ({n})', '在所选窗口启动（{n}）'],
  'tour.needTiles': ['Select the tiles the tour should run on first.', '请先选择要轮巡的窗口。'],
  'tour.needCameras': ['The tour list is empty: add cameras, or choose a department.', '轮巡列表为空：请添加摄像机或选择机构。'],
  'tour.badDwell': ['At least {min} seconds, in whole seconds.', '至少 {min} 秒，须为整数。'],
  'tour.started': ['Tour "{name}" runs on {tiles}.', '轮巡“{name}”已在 {tiles} 启动。'],
  'tour.running': ['Running tours', '运行中的轮巡'],
  'tour.noneRunning': ['No tour is running.', '当前没有轮巡。'],
  'tour.summary': ['{tiles} · {count} cameras · {dwell} s · by {by}', '{tiles} · {count} 路 · {dwell} 秒 · {by} 启动'],
  'tour.stop': ['Stop', '停止'],
  'tour.select': ['Select its tiles', '选中其窗口'],
  'tour.stopped': ['Tour "{name}" stopped; its tiles keep their cameras.', '轮巡“{name}”已停止，窗口保留当前画面。'],
});

const MIN_DWELL_SEC = 5;
const DEFAULT_DWELL_SEC = 10;

export class TourPanel {
  readonly el: HTMLElement;
  private readonly running: HTMLUListElement;
  private shown: string | null = null;

  constructor(private readonly ctx: ConsoleContext) {
    const drive = can('walls:drive');
    this.running = h('ul', { class: 'tour-running', dataset: { role: 'tours' } });
    const runningSection = h('div', null, h('h3', null, t('tour.running')), this.running);
    // The tab above already says "Tours".
    this.el = h('section', { class: 'panel tour-panel', 'aria-label': t('tour.title') }, drive ? this.startForm() : null, runningSection);
    ctx.wallChanged.on(() => this.renderRunning());
    ctx.wallCleared.on(() => this.renderRunning());
  }

  private startForm(): HTMLElement {
    const ctx = this.ctx;
    const listHead = h('h3');
    const list = h('ul', { class: 'tour-list', dataset: { role: 'tour-list' } });
    const clearList = h('button', { class: 'link', onclick: () => ctx.tourList.set([]) }, t('tour.clearList'));
    const fromList = h('input', { type: 'radio', name: 'tour-source', value: 'list', checked: true });
    const fromDept = h('input', { type: 'radio', name: 'tour-source', value: 'dept', disabled: true });
    const deptLabel = h('span', null, t('tour.fromDeptNone'));
    const name = h('input', { maxlength: '100', placeholder: t('tour.defaultName', { time: '' }).trim(), dataset: { role: 'tour-name' } });
    const dwell = h('input', { type: 'number', min: String(MIN_DWELL_SEC), max: '86400', step: '1', value: String(DEFAULT_DWELL_SEC), dataset: { role: 'tour-dwell' } });
    const dwellError = h('div', { class: 'field-error' });
    const formError = h('div', { class: 'form-error', role: 'alert' });
    const start = h('button', { class: 'primary', dataset: { action: 'tour-start' } });

    const renderList = () => {
      const cams = ctx.tourList.value;
      listHead.textContent = t('tour.list', { n: cams.length });
      list.replaceChildren(
        ...(cams.length
          ? cams.map((c) =>
              h(
                'li',
                { dataset: { camera: c.cameraId } },
                h('span', { class: 'result-name' }, c.name),
                h('button', { class: 'icon', title: t('tour.remove'), 'aria-label': t('tour.remove'), onclick: () => ctx.tourList.set(ctx.tourList.value.filter((x) => x.cameraId !== c.cameraId)) }, '×'),
              ),
            )
          : [h('li', { class: 'muted' }, t('tour.listEmpty'))]),
      );
      clearList.hidden = cams.length === 0;
    };
    const renderStart = () => {
      start.textContent = t('tour.start', { n: ctx.selection.value.size });
    };
    ctx.tourList.on(renderList);
    ctx.selection.on(renderStart);
    ctx.department.on((dept) => {
      fromDept.disabled = !dept;
      deptLabel.textContent = dept ? t('tour.fromDept', { dept: dept.name }) : t('tour.fromDeptNone');
      if (!dept) fromList.checked = true;
    });
    renderList();
    renderStart();

    start.addEventListener('click', async () => {
      formError.textContent = '';
      dwellError.textContent = '';
      dwell.removeAttribute('aria-invalid');
      const wall = ctx.wall();
      if (!wall) return;
      const tileIds = [...ctx.selection.value];
      const dwellSec = Number(dwell.value);
      const useDept = fromDept.checked && ctx.department.value;
      const cameras = ctx.tourList.value.map((c) => c.cameraId);
      if (!Number.isInteger(dwellSec) || dwellSec < MIN_DWELL_SEC) {
        dwellError.textContent = t('tour.badDwell', { min: MIN_DWELL_SEC });
        dwell.setAttribute('aria-invalid', 'true');
        return;
      }
      if (tileIds.length === 0) return void (formError.textContent = t('tour.needTiles'));
      if (!useDept && cameras.length === 0) return void (formError.textContent = t('tour.needCameras'));
      const tourName = name.value.trim() || t('tour.defaultName', { time: new Date().toTimeString().slice(0, 5) });
      start.disabled = true;
      try {
        await ctx.conn.request('tour.start', {
          wallId: wall.id,
          baseVersion: wall.version,
          name: tourName,
          tileIds,
          dwellSec,
          ...(useDept ? { departmentId: useDept.id } : { cameras }),
        });
        ctx.notify(t('tour.started', { name: tourName, tiles: tileIds.join(', ') }), 'ok');
        name.value = '';
      } catch (e) {
        const fields = fieldsAtFault(e);
        const dwellIssue = fields.get('dwellSec');
        if (dwellIssue) {
          dwellError.textContent = dwellIssue;
          dwell.setAttribute('aria-invalid', 'true');
        }
        formError.textContent = explain(e, tileIds[0]);
      } finally {
        start.disabled = false;
      }
    });

    return h(
      'div',
      { class: 'tour-form' },
      listHead,
      list,
      clearList,
      h('fieldset', { class: 'tour-source' }, h('label', { class: 'inline' }, fromList, t('tour.fromList')), h('label', { class: 'inline' }, fromDept, deptLabel)),
      h('div', { class: 'form-row' }, h('label', null, t('tour.name'), name), h('label', null, t('tour.dwell'), dwell, dwellError)),
      formError,
      start,
    );
  }

  private renderRunning() {
    const wall = this.ctx.wall();
    const tours = wall ? Object.values(wall.tours) : [];
    // Rotations change a tour every few seconds; rebuilding its row each time would swallow a click on Stop.
    const shown = JSON.stringify(tours.map((x) => [x.id, x.name, x.tileIds, x.cameraCount, x.dwellSec, x.createdBy]));
    if (shown === this.shown) return;
    this.shown = shown;
    this.running.replaceChildren(...(tours.length ? tours.map((tour) => this.tourRow(tour)) : [h('li', { class: 'muted' }, t('tour.noneRunning'))]));
  }

  private tourRow(tour: Tour): HTMLLIElement {
    const stop = h('button', { dataset: { action: 'tour-stop' } }, t('tour.stop'));
    stop.addEventListener('click', async () => {
      const wall = this.ctx.wall();
      if (!wall) return;
      stop.disabled = true;
      try {
        await this.ctx.conn.request('tour.stop', { wallId: wall.id, tourId: tour.id });
        this.ctx.notify(t('tour.stopped', { name: tour.name }), 'ok');
      } catch (e) {
        stop.disabled = false;
        this.ctx.notify(explain(e, tour.tileIds[0]), 'error');
      }
    });
    return h(
      'li',
      { dataset: { tour: tour.id } },
      h('div', null, h('strong', null, `↻ ${tour.name}`)),
      h('div', { class: 'muted' }, t('tour.summary', { tiles: tour.tileIds.join(', '), count: tour.cameraCount, dwell: tour.dwellSec, by: tour.createdBy })),
      h('div', { class: 'row-actions' }, h('button', { class: 'link', onclick: () => this.ctx.selection.set(new Set(tour.tileIds)) }, t('tour.select')), can('walls:drive') ? stop : null),
    );
  }
}

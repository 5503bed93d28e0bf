/**
 * What can be done with the selected tiles (clear, lock, unlock, break another's lock, pop out), and
 * the camera picked for click-to-assign. Buttons the user's role does not allow are not shown.
 */
import { can } from '../lib/api.js';
import { h } from '../lib/dom.js';
import { addStrings, t } from '../lib/i18n.js';
import { openPopout } from '../lib/shell.js';
import type { ConsoleContext } from './context.js';
import { clearTiles, dismissPopups, lockTiles } from './tile-actions.js';

addStrings({
  'sel.none': ['No tile selected: click a tile (ctrl/⌘ adds, shift selects a rectangle).', '未选择窗口：点击窗口选择（Ctrl/⌘ 多选，Shift 框选）。'],
  'sel.some': ['{n} selected: {tiles}', '已选 {n} 个：{tiles}'],
  'sel.clear': ['Clear', '清空'],
  'sel.lock': ['Lock', '锁定'],
  'sel.unlock': ['Unlock', '解锁'],
  'sel.break': ['Break lock', '强制解锁'],
  'sel.popout': ['Pop out', '弹出'],
  'sel.deselect': ['Deselect', '取消选择'],
  'sel.dismiss': ['Dismiss alarm pop-up', '关闭告警弹窗'],
  'pick.armed': ['{camera} picked: click a tile to put it there (Esc cancels).', '已选中 {camera}：点击窗口即可上墙（Esc 取消）。'],
  'pick.cancel': ['Cancel', '取消'],
});

export class SelectionBar {
  readonly el: HTMLElement;

  constructor(private readonly ctx: ConsoleContext) {
    const drive = can('walls:drive');
    const label = h('span', { class: 'sel-label', dataset: { role: 'selection' } });
    const ids = () => [...ctx.selection.value];
    const mine = (id: string) => ctx.wall()?.tiles[id]?.lock?.userId === ctx.user.id;
    const others = (id: string) => {
      const lock = ctx.wall()?.tiles[id]?.lock;
      return !!lock && lock.userId !== ctx.user.id;
    };
    const clear = h('button', { dataset: { action: 'clear' }, onclick: () => void clearTiles(ctx, ids()) }, t('sel.clear'));
    const lock = h('button', { dataset: { action: 'lock' }, onclick: () => void lockTiles(ctx, 'lock', ids()) }, t('sel.lock'));
    const unlock = h('button', { dataset: { action: 'unlock' }, onclick: () => void lockTiles(ctx, 'unlock', ids().filter(mine)) }, t('sel.unlock'));
    const breakLock = h('button', { class: 'danger', dataset: { action: 'break-lock' }, onclick: () => void lockTiles(ctx, 'lock.break', ids().filter(others)) }, t('sel.break'));
    const popout = h(
      'button',
      {
        dataset: { action: 'popout' },
        onclick: () => {
          for (const id of ids()) {
            const cameraId = ctx.wall()?.tiles[id]?.stream?.cameraId;
            if (cameraId) openPopout(cameraId);
          }
        },
      },
      t('sel.popout'),
    );
    const popupsOf = (tileIds: string[]) => [...new Set(tileIds.map((id) => ctx.wall()?.tiles[id]?.popup).filter((p): p is string => !!p))];
    const dismiss = h('button', { dataset: { action: 'popup-dismiss' }, onclick: () => void dismissPopups(ctx, popupsOf(ids())) }, t('sel.dismiss'));
    const deselect = h('button', { class: 'link', onclick: () => ctx.selection.set(new Set()) }, t('sel.deselect'));
    const actions = h('span', { class: 'sel-actions' }, drive ? [clear, lock, unlock] : null, can('walls:break-lock') ? breakLock : null, popout, drive ? dismiss : null, deselect);

    const pickedText = h('span');
    const picked = h('div', { class: 'picked-bar', hidden: true, dataset: { role: 'picked' } }, pickedText, h('button', { class: 'link', onclick: () => ctx.picked.set(null) }, t('pick.cancel')));

    this.el = h('div', { class: 'selection-bar' }, h('div', { class: 'sel-row' }, label, actions), picked);

    const refresh = () => {
      const sel = ids();
      label.textContent = sel.length ? t('sel.some', { n: sel.length, tiles: sel.length > 6 ? `${sel.slice(0, 6).join(', ')}…` : sel.join(', ') }) : t('sel.none');
      const wall = ctx.wall();
      const none = sel.length === 0 || !wall;
      clear.disabled = none;
      lock.disabled = none;
      unlock.disabled = none || !sel.some(mine);
      breakLock.disabled = none || !sel.some(others);
      popout.disabled = none || !sel.some((id) => !!wall?.tiles[id]?.stream);
      dismiss.hidden = popupsOf(sel).length === 0;
      deselect.hidden = sel.length === 0;
    };
    ctx.selection.on(refresh);
    ctx.wallChanged.on(refresh);
    ctx.wallCleared.on(refresh);
    refresh();

    ctx.picked.on((camera) => {
      picked.hidden = !camera;
      pickedText.textContent = camera ? t('pick.armed', { camera: camera.name }) : '';
    });
    document.addEventListener('keydown', (e) => {
      if (e.key === 'Escape' && ctx.picked.value) ctx.picked.set(null);
    });
  }
}

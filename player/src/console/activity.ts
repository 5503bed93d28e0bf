/**
 * What happened on the wall, newest first: who (an operator, a tour, an alarm), what, on which tiles,
 * when. Other people's changes are marked, since they are the ones an operator did not see coming.
 * Tour rotations are hidden unless asked for: a few tours would bury everything else.
 */
import type { WallDelta, WallView } from '../../../gateway/src/control/model.js';
import type { WallChange } from '../lib/control.js';
import { h } from '../lib/dom.js';
import { addStrings, formatTime, t } from '../lib/i18n.js';
import type { ConsoleContext } from './context.js';

addStrings({
  'activity.title': ['Activity', '操作动态'],
  'activity.none': ['Changes to the wall appear here as they happen.', '大屏的变更将实时显示在这里。'],
  'activity.rotations': ['Show tour rotations', '显示轮巡切换'],
  'cause.tile.assign': ['put a camera on', '上墙'],
  'cause.tile.clear': ['cleared', '清空'],
  'cause.layout.set': ['changed the layout', '切换布局'],
  'cause.lock': ['locked', '锁定'],
  'cause.unlock': ['unlocked', '解锁'],
  'cause.lock.break': ['broke the lock on', '强制解锁'],
  'cause.tour.start': ['started a tour on', '启动轮巡'],
  'cause.tour.stop': ['stopped a tour on', '停止轮巡'],
  'cause.tour.rotate': ['rotated', '轮巡切换'],
  'cause.tour.resume': ['resumed a tour on', '恢复轮巡'],
  'cause.preset.recall': ['recalled a preset', '调用预置'],
  'cause.plan.activate': ['activated a plan', '启动预案'],
  'cause.plan.revert': ['reverted the plan', '撤销预案'],
  'cause.popup.show': ['alarm pop-up on', '告警弹窗'],
  'cause.popup.clear': ['alarm pop-up ended on', '告警弹窗结束'],
  'cause.popup.dismiss': ['dismissed the pop-up on', '关闭告警弹窗'],
  'cause.wall.rename': ['renamed the wall', '重命名大屏'],
});

const MAX_ENTRIES = 200;
/** Rotations are kept apart from the rest, so a few tours do not push people's changes out of the list. */
const MAX_ROTATIONS = 40;
const ROTATIONS = new Set(['tour.rotate', 'tour.resume']);

/** The tiles a delta touched; every tile for a new layout. */
export function tilesOf(d: WallDelta, wall: WallView): string[] {
  if (d.regions) return Object.keys(wall.tiles);
  const ids = new Set<string>();
  for (const c of d.changes ?? []) ids.add(c.id);
  for (const tile of d.tiles ?? []) ids.add(tile.id);
  for (const p of d.popups ?? []) for (const id of Object.keys(p.tiles)) ids.add(id);
  return [...ids];
}

export const isRotation = (d: WallDelta) => ROTATIONS.has(d.cause);

export class ActivityList {
  readonly el: HTMLElement;
  private readonly list: HTMLOListElement;
  private readonly showRotations: HTMLInputElement;

  constructor(private readonly ctx: ConsoleContext) {
    this.list = h('ol', { class: 'activity', dataset: { role: 'activity' } });
    this.showRotations = h('input', { type: 'checkbox' });
    this.showRotations.addEventListener('change', () => this.list.classList.toggle('with-rotations', this.showRotations.checked));
    this.el = h(
      'section',
      { class: 'panel activity-panel' },
      h('div', { class: 'panel-head' }, h('h2', null, t('activity.title')), h('label', { class: 'inline small' }, this.showRotations, t('activity.rotations'))),
      h('p', { class: 'muted activity-empty' }, t('activity.none')),
      this.list,
    );
    ctx.wallChanged.on((c) => this.add(c));
    ctx.wallCleared.on(() => this.list.replaceChildren());
  }

  private add({ wall, deltas }: WallChange) {
    for (const d of deltas) this.list.prepend(this.entry(d, wall));
    const rotations = this.list.querySelectorAll('li.rotation');
    for (let i = MAX_ROTATIONS; i < rotations.length; i++) rotations[i]!.remove();
    while (this.list.childElementCount > MAX_ENTRIES + MAX_ROTATIONS) this.list.lastElementChild?.remove();
  }

  private entry(d: WallDelta, wall: WallView): HTMLLIElement {
    const tiles = tilesOf(d, wall);
    const cleared = d.cause === 'tile.assign' && (d.changes ?? d.tiles ?? []).some((c) => c.content.kind === 'empty');
    const cause = cleared ? 'tile.clear' : d.cause;
    const label = t(`cause.${cause}`);
    const mine = d.by === this.ctx.user.username;
    const what: string[] = [];
    // A new layout, a recalled preset or a plan redraws every tile: listing them all would say nothing.
    if (!d.regions) {
      // Where the change put a camera, name it as the delta has it: "s1-2 → 东门 3".
      const named = d.cause === 'tile.assign' || ROTATIONS.has(d.cause) || d.cause.startsWith('popup.');
      const streams = new Map((d.changes ?? d.tiles ?? []).map((c) => [c.id, c.stream?.name]));
      for (const id of tiles) {
        const shows = named ? streams.get(id) : undefined;
        what.push(shows ? `${id} → ${shows}` : id);
      }
    }
    if (d.plan) what.push(d.plan.name);
    const time = new Date(d.at);
    return h(
      'li',
      {
        class: `${mine ? 'mine' : 'other'}${isRotation(d) ? ' rotation' : ''}`,
        title: formatTime(d.at),
        dataset: { by: d.by, cause: d.cause, tiles: tiles.join(' '), version: String(d.version) },
      },
      h('time', { datetime: time.toISOString() }, time.toTimeString().slice(0, 8)),
      ' ',
      h('strong', { class: 'who' }, d.by),
      ' ',
      h('span', { class: 'what' }, label),
      what.length ? [' ', h('span', { class: 'tiles' }, what.join(', '))] : null,
    );
  }
}

/**
 * The operator console (上墙控制): a wall in miniature, cameras found by department or search and
 * dragged onto its tiles, layouts, tours, presets and emergency plans, locks, and what everyone else
 * is doing to the same wall as it happens. `console.html?wall=<id>` opens a given wall.
 */
import type { TileStatus } from '../../../gateway/src/control/model.js';
import { can, currentSession } from '../lib/api.js';
import { ControlConnection, WallFollower } from '../lib/control.js';
import { departmentForest, departmentNames, type DepartmentNode } from '../lib/departments.js';
import { h, tabBar } from '../lib/dom.js';
import { addStrings, t } from '../lib/i18n.js';
import { onPageLeave, refuse, startPage } from '../lib/shell.js';
import { ActivityList, isRotation, tilesOf } from '../console/activity.js';
import { CameraSearch } from '../console/camera-search.js';
import { outcomeLine, Signal, Store, type CameraRef, type ConsoleContext, type Presets } from '../console/context.js';
import { DepartmentTree } from '../console/dept-tree.js';
import { LayoutPicker } from '../console/layouts.js';
import { PresetPanel } from '../console/presets.js';
import { PtzPanel } from '../console/ptz-panel.js';
import { SelectionBar } from '../console/selection-bar.js';
import { TourPanel } from '../console/tours.js';
import { WallMiniature } from '../console/wall-miniature.js';
import { WallPicker } from '../console/wall-picker.js';
import '../styles/app.css';
import '../styles/console.css';

addStrings({
  'console.title': ['Wall console', '上墙控制'],
  'console.refused': ['Your role may not see the video walls.', '您的角色无权查看大屏。'],
  'console.viewOnly': ['View only: your role may not change the wall.', '只读：您的角色无权操作大屏。'],
  'console.connected': ['Connected', '已连接'],
  'console.connecting': ['Connecting…', '正在连接…'],
  'console.gone': ['Wall "{id}" does not exist or is no longer in your departments.', '大屏“{id}”不存在或已不在您的管辖范围内。'],
  'console.tabTours': ['Tours', '轮巡'],
  'console.tabPresets': ['Presets & plans', '预置与预案'],
});

const IDLE: TileStatus = { state: 'idle', reason: null, code: null, params: null, retryInMs: null };

async function main() {
  const { session, main } = await startPage({ title: 'console.title', page: 'console' });
  if (!can('walls:read')) return refuse(main, t('console.refused'));
  const forest = await departmentForest().catch((): DepartmentNode[] => []);
  const names = departmentNames(forest);
  const conn = new ControlConnection(() => currentSession()?.token ?? '');
  const outcome = outcomeLine();
  let follower: WallFollower | null = null;

  const ctx: ConsoleContext = {
    conn,
    user: session.user,
    departmentName: (id) => names.get(id) ?? id,
    wall: () => follower?.wall ?? null,
    wallChanged: new Signal(),
    statusChanged: new Signal(),
    presetsChanged: new Signal<Presets>(),
    wallCleared: new Signal<void>(),
    statusOf: (tileId) => follower?.status.get(tileId) ?? IDLE,
    selection: new Store<ReadonlySet<string>>(new Set()),
    picked: new Store<CameraRef | null>(null),
    tourList: new Store<readonly CameraRef[]>([]),
    department: new Store<DepartmentNode | null>(null),
    notify: (message, kind = 'info') => outcome.show(message, kind),
  };

  const miniature = new WallMiniature(ctx);
  const presets = new PresetPanel(ctx);
  const connection = h('span', { class: 'connection-pill', dataset: { role: 'connection', state: 'connecting' } }, t('console.connecting'));
  const disconnected = h('div', { class: 'console-disconnected', hidden: true, role: 'alert', dataset: { role: 'disconnected' } }, t('common.disconnected'));
  const gone = h('div', { class: 'console-gone', hidden: true, role: 'alert' });

  const follow = (wallId: string) => {
    follower?.stop();
    ctx.selection.set(new Set());
    ctx.wallCleared.emit();
    gone.hidden = true;
    const f = new WallFollower(conn, wallId);
    follower = f;
    f.onChange((change) => {
      if (follower !== f) return;
      document.title = `${change.wall.name} · ${t('console.title')} · wallgate`;
      ctx.wallChanged.emit(change);
      // Someone else's change is what an operator did not see coming: it lights up on the miniature.
      for (const d of change.deltas) if (d.by !== session.user.username && !isRotation(d)) miniature.flash(tilesOf(d, change.wall));
      if (change.snapshot) void loadPresets(f);
    });
    f.onStatus((ids) => {
      if (follower === f) ctx.statusChanged.emit(ids);
    });
    f.onRemoved(() => {
      if (follower !== f) return;
      ctx.wallCleared.emit();
      gone.textContent = t('console.gone', { id: wallId });
      gone.hidden = false;
    });
  };

  /** The follower asks for the presets after it has told us about the snapshot: ask too, to show them at once. */
  const loadPresets = async (f: WallFollower) => {
    try {
      const { presets: list } = await conn.request<{ presets: Presets }>('presets.list', { wallId: f.wallId });
      if (follower !== f) return;
      f.presets = list;
      ctx.presetsChanged.emit(list);
    } catch {
      // The follower's own request, or the next snapshot, fills them in.
    }
  };
  // Registered before any follower exists, so it may run before the follower's own listener: it uses the payload.
  conn.on('wall.presets', (p) => {
    const { wallId, presets: list } = p as { wallId: string; presets: Presets };
    if (follower?.wallId === wallId) ctx.presetsChanged.emit(list);
  });

  let wasOpen = false;
  conn.onState((state) => {
    connection.dataset.state = state;
    connection.textContent = state === 'open' ? t('console.connected') : t('console.connecting');
    // Before the first connection nothing was lost: the pill says "connecting", the banner waits.
    wasOpen ||= state === 'open';
    disconnected.hidden = state === 'open' || !wasOpen;
  });

  const picker = new WallPicker(ctx, follow);
  const layouts = new LayoutPicker(ctx);
  const selectionBar = new SelectionBar(ctx);
  const ptz = new PtzPanel(ctx);
  const search = new CameraSearch(ctx);
  const tree = new DepartmentTree(ctx, forest);
  const tours = new TourPanel(ctx);
  const activity = new ActivityList(ctx);

  const rightTabs = tabBar([
    { key: 'tours', label: t('console.tabTours'), panel: tours.el },
    { key: 'presets', label: t('console.tabPresets'), panel: presets.el },
  ]);

  main.classList.add('console');
  main.replaceChildren(
    h('aside', { class: 'console-left' }, tree.el, search.el),
    h(
      'section',
      { class: 'console-centre' },
      h('div', { class: 'console-toolbar' }, picker.el, connection, can('walls:drive') ? layouts.el : h('span', { class: 'muted' }, t('console.viewOnly'))),
      disconnected,
      presets.banner,
      gone,
      selectionBar.el,
      ptz.el,
      outcome.el,
      miniature.el,
      h('p', { class: 'console-hint muted' }, t('mini.hint')),
    ),
    h('aside', { class: 'console-right' }, rightTabs, tours.el, presets.el, activity.el),
  );

  onPageLeave(() => {
    follower?.stop();
    conn.close();
  });
  conn.connect();
}

void main();

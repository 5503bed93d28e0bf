/**
 * Where "put on wall" sends a vehicle's channels: a wall (remembered between visits) and the tile
 * the channels start from. The chosen wall is followed live, so the tiles on offer and the version
 * a change is based on are the wall as it is now.
 */
import type { Tile, WallView } from '../../../gateway/src/control/model.js';
import type { VehicleChannel } from '../../../gateway/src/vehicles/model.js';
import { ControlError, listWalls, LiveSubscription, WallFollower, type ControlConnection, type WallListing } from '../lib/control.js';
import { h, toast } from '../lib/dom.js';
import { errorText } from '../lib/errors.js';
import { addStrings, t } from '../lib/i18n.js';
import { channelsInOrder } from './vehicles.js';

addStrings({
  'wallTarget.wall': ['Wall', '大屏'],
  'wallTarget.fromTile': ['From tile', '起始窗口'],
  'wallTarget.choose': ['— choose a wall —', '— 请选择大屏 —'],
  'wallTarget.noWalls': ['No wall in your departments', '您的管辖范围内没有大屏'],
  'wallTarget.wallsFailed': ['The walls could not be listed: {message}', '大屏列表加载失败：{message}'],
  'wallTarget.emptyTile': ['empty', '空'],
  'wallTarget.popupTile': ['alarm pop-up', '告警弹窗'],
  'wallTarget.lockedTile': ['locked by {user}', '已被 {user} 锁定'],
  'wallTarget.put': ['Put on wall', '上墙'],
  'wallTarget.putting': ['Putting on wall…', '正在上墙…'],
  'wallTarget.needDrive': [
    'Putting cameras on a wall needs the walls:drive permission (operators and supervisors have it)',
    '上墙需要 walls:drive 权限（值班员和主管具有该权限）',
  ],
  'wallTarget.chooseFirst': ['Choose a wall first (at the top of the page)', '请先在页面上方选择大屏'],
  'wallTarget.wallGone': ['Wall "{id}" no longer exists or is not in your departments', '大屏“{id}”已不存在或不在您的管辖范围内'],
  'wallTarget.noChannels': ['{plate} has no camera channels', '{plate} 没有视频通道'],
  'wallTarget.done': ['{plate}: {count} channel(s) on {wall}, tiles {tiles}', '{plate}：{count} 路视频已上墙（{wall}，窗口 {tiles}）'],
  'wallTarget.skipped': ['Tiles passed over: {tiles}', '已跳过窗口：{tiles}'],
  'wallTarget.notAllFit': ['{count} channel(s) did not fit: the wall has no more free tiles after {tile}', '还有 {count} 路放不下：{tile} 之后没有更多可用窗口'],
  'wallTarget.failed': ['{plate}: tile {tile} refused channel {channel}: {message}', '{plate}：窗口 {tile} 未能显示通道 {channel}：{message}'],
});

const WALL_KEY = 'wallgate.regulator.wall';

/** Tiles in reading order: monitor by monitor as the wall lists its regions, then each region's tile numbers. */
export function tilesInOrder(wall: WallView): Tile[] {
  const regionIndex = new Map(wall.regions.map((r, i) => [r.id, i]));
  const number = (id: string) => Number(id.slice(id.lastIndexOf('-') + 1));
  return Object.values(wall.tiles).sort((a, b) => (regionIndex.get(a.region) ?? 0) - (regionIndex.get(b.region) ?? 0) || number(a.id) - number(b.id));
}

/** Why a tile cannot take a camera from this user now, or null when it can. */
export function tileBar(tile: Tile, userId: string): string | null {
  if (tile.popup) return t('wallTarget.popupTile');
  if (tile.lock && tile.lock.userId !== userId) return t('wallTarget.lockedTile', { user: tile.lock.username });
  return null;
}

const lastTile = (wall: WallView) => {
  const order = tilesInOrder(wall);
  return order[order.length - 1]?.id ?? '';
};

export interface TilePlan {
  /** The tiles the channels go onto, in channel order. */
  targets: Tile[];
  /** Tiles passed over on the way, with why. */
  skipped: Array<{ tile: Tile; why: string }>;
  /** Channels left over for want of tiles. */
  left: number;
}

/**
 * Consecutive tiles from `startTileId` for `count` channels. Tiles under an alarm pop-up or locked by
 * someone else would only be refused: they are passed over, and the channels go on the next ones.
 */
export function planTiles(wall: WallView, startTileId: string, count: number, userId: string): TilePlan {
  const order = tilesInOrder(wall);
  const start = Math.max(0, order.findIndex((tile) => tile.id === startTileId));
  const plan: TilePlan = { targets: [], skipped: [], left: 0 };
  for (const tile of order.slice(start)) {
    if (plan.targets.length === count) break;
    const why = tileBar(tile, userId);
    if (why) plan.skipped.push({ tile, why });
    else plan.targets.push(tile);
  }
  plan.left = count - plan.targets.length;
  return plan;
}

export interface WallUser {
  id: string;
  username: string;
}

export class WallTarget {
  readonly el: HTMLElement;
  /** Null when this user may put cameras on walls; else why not, to show beside every disabled button. */
  readonly refusal: string | null;
  private readonly wallSelect: HTMLSelectElement;
  private readonly tileSelect: HTMLSelectElement;
  private readonly note: HTMLSpanElement;
  private walls: WallListing[] = [];
  private follower: WallFollower | null = null;
  private readonly listing: LiveSubscription | null;
  /** Wall versions of this page's own changes: a conflict with one of them overwrites nobody's work. */
  private readonly ownVersions = new Set<number>();

  constructor(
    private readonly conn: ControlConnection,
    canDrive: boolean,
    private readonly user: WallUser,
  ) {
    this.refusal = canDrive ? null : t('wallTarget.needDrive');
    this.wallSelect = h('select', { name: 'wall', disabled: !canDrive, onchange: () => this.choose(this.wallSelect.value) });
    this.tileSelect = h('select', { name: 'start-tile', disabled: !canDrive });
    this.note = h('span', { class: 'wall-target-note' }, this.refusal ?? '');
    this.el = h(
      'div',
      { class: 'wall-target' },
      h('label', null, t('wallTarget.wall'), this.wallSelect),
      h('label', null, t('wallTarget.fromTile'), this.tileSelect),
      this.note,
    );
    // A user who may not drive walls keeps the reason in view, not an empty picker.
    this.listing = canDrive
      ? new LiveSubscription(conn, () => this.loadWalls(), (err) => (this.note.textContent = t('wallTarget.wallsFailed', { message: errorText(err) })))
      : null;
  }

  destroy(): void {
    this.listing?.stop();
    this.follower?.stop();
    this.follower = null;
  }

  /** A "put on wall" button for a vehicle; disabled, with the reason as its tooltip, for a user who may not. */
  button(plate: string, channels: () => Promise<VehicleChannel[]>): HTMLButtonElement {
    const button: HTMLButtonElement = h(
      'button',
      {
        type: 'button',
        class: 'put-on-wall primary',
        disabled: this.refusal !== null,
        title: this.refusal ?? undefined,
        onclick: async (e: Event) => {
          e.stopPropagation();
          button.disabled = true;
          button.textContent = t('wallTarget.putting');
          try {
            await this.put(plate, await channels());
          } catch (err) {
            toast(errorText(err), 'error');
          } finally {
            button.disabled = false;
            button.textContent = t('wallTarget.put');
          }
        },
      },
      t('wallTarget.put'),
    );
    return button;
  }

  /** The channels, in channel order, onto consecutive free tiles from the chosen one. */
  async put(plate: string, channels: VehicleChannel[]): Promise<void> {
    if (this.refusal) throw new Error(this.refusal);
    const wallId = this.wallSelect.value;
    const follower = this.follower;
    if (!wallId || !follower) throw new Error(t('wallTarget.chooseFirst'));
    if (channels.length === 0) throw new Error(t('wallTarget.noChannels', { plate }));
    // Before anything else: without the connection the wall cannot be read, which is not its absence.
    if (this.conn.state !== 'open') throw new ControlError('DISCONNECTED', 'not connected to the gateway', {});
    if (!follower.wall) await follower.subscribe();
    const wall = follower.wall as WallView | null;
    if (!wall) {
      if (this.conn.state !== 'open') throw new ControlError('DISCONNECTED', 'not connected to the gateway', {});
      throw new Error(t('wallTarget.wallGone', { id: wallId }));
    }
    const ordered = channelsInOrder(channels);
    const plan = planTiles(wall, this.tileSelect.value, ordered.length, this.user.id);
    if (plan.skipped.length > 0) toast(t('wallTarget.skipped', { tiles: plan.skipped.map((s) => `${s.tile.id} (${s.why})`).join(', ') }));
    const placed: string[] = [];
    const failures: string[] = [];
    let conflicted = false;
    for (const [i, tile] of plan.targets.entries()) {
      const channel = ordered[i]!;
      try {
        await this.assign(wallId, tile.id, channel.sourceId, follower.wall?.version ?? wall.version);
        placed.push(tile.id);
      } catch (err) {
        conflicted ||= err instanceof ControlError && err.code === 'GW_ERR_VERSION_CONFLICT';
        failures.push(t('wallTarget.failed', { plate, tile: tile.id, channel: `${channel.channel} ${channel.name}`, message: errorText(err, { tileId: tile.id }) }));
        if (err instanceof ControlError && err.code === 'DISCONNECTED') break;
      }
    }
    // The picker shows the wall as it is now, with whatever the other operator put there.
    if (conflicted) void follower.subscribe();
    if (placed.length > 0) toast(t('wallTarget.done', { plate, count: placed.length, wall: wall.name, tiles: placed.join(', ') }), 'ok');
    if (failures.length > 0) toast(failures.join(' '), 'error');
    if (plan.left > 0) toast(t('wallTarget.notAllFit', { count: plan.left, tile: lastTile(wall) }), 'error');
  }

  /**
   * One tile. The base is the wall as this page has seen it: a tile someone changed since is theirs,
   * and is left alone. Only a tile that is empty now, or whose change was this page's own, is tried
   * again on the wall as it is.
   */
  private async assign(wallId: string, tileId: string, cameraId: string, baseVersion: number): Promise<void> {
    const send = async (v: number) => {
      const { version } = await this.conn.request<{ version: number }, 'tile.assign'>('tile.assign', { wallId, baseVersion: v, tileId, content: { kind: 'camera', cameraId } });
      this.ownVersions.add(version);
    };
    try {
      await send(baseVersion);
    } catch (err) {
      if (!(err instanceof ControlError) || err.code !== 'GW_ERR_VERSION_CONFLICT') throw err;
      const current = err.body.current as WallView | undefined;
      const tile = current?.tiles[tileId];
      const free = tile && tile.content.kind === 'empty' && !tileBar(tile, this.user.id);
      if (!current || !tile || !(free || this.ownVersions.has(tile.v))) throw err;
      await send(current.version);
    }
  }

  private async loadWalls() {
    this.walls = await listWalls(this.conn);
    const remembered = localStorage.getItem(WALL_KEY);
    const current = this.wallSelect.value || remembered;
    const chosen = this.walls.find((w) => w.id === current)?.id ?? (this.walls.length === 1 ? this.walls[0]!.id : '');
    this.wallSelect.replaceChildren(
      h('option', { value: '' }, t('wallTarget.choose')),
      ...this.walls.map((w) => h('option', { value: w.id }, w.name)),
    );
    this.wallSelect.value = chosen;
    this.note.textContent = this.walls.length === 0 ? t('wallTarget.noWalls') : '';
    if (chosen !== (this.follower?.wallId ?? '')) this.choose(chosen);
  }

  private choose(wallId: string) {
    this.follower?.stop();
    this.follower = null;
    this.ownVersions.clear();
    this.tileSelect.replaceChildren();
    if (!wallId) return localStorage.removeItem(WALL_KEY);
    localStorage.setItem(WALL_KEY, wallId);
    const follower = new WallFollower(this.conn, wallId);
    this.follower = follower;
    follower.onChange(({ wall }) => this.showTiles(wall));
    follower.onRemoved(() => {
      this.note.textContent = t('wallTarget.wallGone', { id: wallId });
      this.tileSelect.replaceChildren();
    });
  }

  private showTiles(wall: WallView) {
    const chosen = this.tileSelect.value;
    const tiles = tilesInOrder(wall);
    this.tileSelect.replaceChildren(
      ...tiles.map((tile) => {
        const what = tile.popup ? t('wallTarget.popupTile') : (tile.stream?.name ?? t('wallTarget.emptyTile'));
        const bar = tile.popup ? null : tileBar(tile, this.user.id);
        return h('option', { value: tile.id }, `${tile.id} · ${what}${bar ? ` · ${bar}` : ''}`);
      }),
    );
    this.tileSelect.value = tiles.some((tile) => tile.id === chosen) ? chosen : (tiles[0]?.id ?? '');
    this.note.textContent = '';
  }
}

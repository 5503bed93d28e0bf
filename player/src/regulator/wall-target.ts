/**
 * Where "put on wall" sends a vehicle's channels: a wall (remembered between visits) and the tile
 * the channels start from. The chosen wall is followed live, so the tiles on offer and the version
 * a change is based on are the wall as it is now.
 */
import type { Tile, WallView } from '../../../gateway/src/control/model.js';
import type { VehicleChannel } from '../../../gateway/src/vehicles/model.js';
import { ApiError } from '../lib/api.js';
import { ControlError, WallFollower, type ControlConnection } from '../lib/control.js';
import { h, toast } from '../lib/dom.js';
import { addStrings, t } from '../lib/i18n.js';
import { channelsInOrder } from './vehicles.js';

addStrings({
  'wallTarget.wall': ['Wall', '大屏'],
  'wallTarget.fromTile': ['From tile', '起始窗口'],
  'wallTarget.choose': ['— choose a wall —', '— 请选择大屏 —'],
  'wallTarget.noWalls': ['No wall in your departments', '您的管辖范围内没有大屏'],
  'wallTarget.emptyTile': ['empty', '空'],
  'wallTarget.popupTile': ['alarm pop-up', '告警弹窗'],
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
  'wallTarget.notAllFit': ['{count} channel(s) did not fit: the wall has no more tiles after {tile}', '还有 {count} 路放不下：{tile} 之后没有更多窗口'],
  'wallTarget.failed': ['{plate}: tile {tile} refused channel {channel}: {message}', '{plate}：窗口 {tile} 未能显示通道 {channel}：{message}'],
});

const WALL_KEY = 'wallgate.regulator.wall';

interface WallSummary {
  id: string;
  name: string;
  version: number;
}

/** Tiles in reading order: monitor by monitor as the wall lists its regions, then each region's tile numbers. */
export function tilesInOrder(wall: WallView): Tile[] {
  const regionIndex = new Map(wall.regions.map((r, i) => [r.id, i]));
  const number = (id: string) => Number(id.slice(id.lastIndexOf('-') + 1));
  return Object.values(wall.tiles).sort((a, b) => (regionIndex.get(a.region) ?? 0) - (regionIndex.get(b.region) ?? 0) || number(a.id) - number(b.id));
}

const messageOf = (err: unknown) => (err instanceof ControlError || err instanceof ApiError || err instanceof Error ? err.message : String(err));

export class WallTarget {
  readonly el: HTMLElement;
  /** Null when this user may put cameras on walls; else why not, to show beside every disabled button. */
  readonly refusal: string | null;
  private readonly wallSelect: HTMLSelectElement;
  private readonly tileSelect: HTMLSelectElement;
  private readonly note: HTMLSpanElement;
  private walls: WallSummary[] = [];
  private follower: WallFollower | null = null;
  private readonly offOpen: () => void;

  constructor(
    private readonly conn: ControlConnection,
    canDrive: boolean,
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
    this.offOpen = canDrive ? conn.onOpen(() => void this.loadWalls()) : () => {};
  }

  destroy(): void {
    this.offOpen();
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
            toast(messageOf(err), 'error');
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

  /** The channels, in channel order, onto consecutive tiles from the chosen one. */
  async put(plate: string, channels: VehicleChannel[]): Promise<void> {
    if (this.refusal) throw new Error(this.refusal);
    const wallId = this.wallSelect.value;
    const follower = this.follower;
    if (!wallId || !follower) throw new Error(t('wallTarget.chooseFirst'));
    if (channels.length === 0) throw new Error(t('wallTarget.noChannels', { plate }));
    if (!follower.wall) await follower.subscribe();
    const wall = follower.wall as WallView | null;
    if (!wall) throw new Error(t('wallTarget.wallGone', { id: wallId }));
    const order = tilesInOrder(wall);
    const start = Math.max(0, order.findIndex((tile) => tile.id === this.tileSelect.value));
    const ordered = channelsInOrder(channels);
    const targets = order.slice(start, start + ordered.length);
    let version = wall.version;
    const placed: string[] = [];
    for (const [i, tile] of targets.entries()) {
      const channel = ordered[i]!;
      try {
        version = await this.assign(wallId, tile.id, channel.sourceId, version);
        placed.push(tile.id);
      } catch (err) {
        toast(t('wallTarget.failed', { plate, tile: tile.id, channel: `${channel.channel} ${channel.name}`, message: messageOf(err) }), 'error');
      }
    }
    if (placed.length > 0) {
      const tiles = placed.length === 1 ? placed[0]! : `${placed[0]} … ${placed[placed.length - 1]}`;
      toast(t('wallTarget.done', { plate, count: placed.length, wall: wall.name, tiles }), 'ok');
    }
    const left = ordered.length - targets.length;
    if (left > 0) toast(t('wallTarget.notAllFit', { count: left, tile: order[order.length - 1]?.id ?? '' }), 'error');
  }

  /** One tile; a conflict means the tile changed since the version held: re-read it and try once more. */
  private async assign(wallId: string, tileId: string, cameraId: string, baseVersion: number): Promise<number> {
    const send = (v: number) =>
      this.conn.request<{ version: number }, 'tile.assign'>('tile.assign', { wallId, baseVersion: v, tileId, content: { kind: 'camera', cameraId } });
    try {
      return (await send(Math.max(baseVersion, this.follower?.wall?.version ?? 0))).version;
    } catch (err) {
      if (!(err instanceof ControlError) || err.code !== 'GW_ERR_VERSION_CONFLICT') throw err;
      const current = (err.body.current as WallView | undefined)?.version ?? this.follower?.wall?.version ?? baseVersion;
      return (await send(current)).version;
    }
  }

  private async loadWalls() {
    try {
      const { walls } = await this.conn.request<{ walls: WallSummary[] }, 'walls.list'>('walls.list', {});
      this.walls = walls.sort((a, b) => a.name.localeCompare(b.name));
    } catch (err) {
      this.note.textContent = messageOf(err);
      return;
    }
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
        return h('option', { value: tile.id }, `${tile.id} · ${what}`);
      }),
    );
    this.tileSelect.value = tiles.some((tile) => tile.id === chosen) ? chosen : (tiles[0]?.id ?? '');
    this.note.textContent = '';
  }
}

/**
 * One tile on a screen: its player, the camera's name and department, and what state it is in. The
 * state is the player's own (it knows best whether pixels move), with the gateway's reason for a
 * camera that is retrying or offline; a camera the user may not see says so and plays nothing.
 */
import type { Tile, TileStatus } from '../../../gateway/src/control/model.js';
import { h } from './dom.js';
import { statusReason } from './errors.js';
import { addStrings, t } from './i18n.js';
import { secondsUntil, stateText, StreamPlayer, type Transport } from './stream-player.js';

export interface TileViewOptions {
  transports?: readonly Transport[];
  departmentName(id: string): string;
}

export class TileView {
  readonly el: HTMLDivElement;
  private readonly label: HTMLDivElement;
  private readonly badge: HTMLDivElement;
  private readonly banner: HTMLDivElement;
  private player: StreamPlayer | null = null;
  private tile: Tile | null = null;
  private serverStatus: TileStatus | null = null;
  private serverStatusAt = 0;
  private countdown: ReturnType<typeof setInterval> | undefined;
  private paused = false;

  constructor(private readonly opts: TileViewOptions) {
    this.label = h('div', { class: 'tile-label' });
    this.badge = h('div', { class: 'tile-badge' });
    this.banner = h('div', { class: 'tile-banner' });
    this.el = h('div', { class: 'tile', dataset: { state: 'empty' } }, this.label, this.badge, this.banner);
  }

  /** The key of what a tile plays: a new one means a new player. */
  private static streamKey(tile: Tile | null) {
    return tile?.stream ? `${tile.stream.cameraId}/${tile.stream.profile}` : '';
  }

  update(tile: Tile, popupLabel: string | null): void {
    const changed = TileView.streamKey(tile) !== TileView.streamKey(this.tile);
    this.tile = tile;
    this.el.dataset.tile = tile.id;
    this.el.dataset.camera = tile.stream?.cameraId ?? '';
    this.el.dataset.profile = tile.stream?.profile ?? '';
    this.el.classList.toggle('locked', !!tile.lock);
    this.el.classList.toggle('popup', !!tile.popup);
    this.banner.textContent = popupLabel ?? '';
    const s = tile.stream;
    this.label.replaceChildren(
      ...(s ? [h('span', { class: 'name' }, s.name), h('span', { class: 'dept' }, this.opts.departmentName(s.departmentId))] : []),
    );
    if (changed) {
      this.serverStatus = null;
      this.player?.destroy();
      this.player = null;
      if (s) {
        this.player = new StreamPlayer({
          cameraId: s.cameraId,
          profile: s.profile,
          ...(this.opts.transports ? { transports: this.opts.transports } : {}),
          onState: () => this.render(),
        });
        this.el.prepend(this.player.video);
        if (!this.paused) this.player.start();
      }
    }
    this.render();
  }

  /** The gateway's view of the camera: a camera back online is tried again at once. */
  setStatus(status: TileStatus | null): void {
    const before = this.serverStatus;
    const same = before?.state === status?.state && before?.reason === status?.reason && before?.retryInMs === status?.retryInMs;
    // Unchanged news (every wall change passes the tiles' status along) must not restart a countdown.
    if (same && (before !== null) === (status !== null)) return;
    this.serverStatus = status;
    this.serverStatusAt = Date.now();
    const p = this.player;
    if (p && status?.state === 'live' && before?.state !== 'live' && (p.state.kind === 'retrying' || p.state.kind === 'offline') && !this.paused) p.start();
    this.render();
  }

  pause(): void {
    this.paused = true;
    this.player?.pause();
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    this.player?.start();
  }

  get stats() {
    return this.player?.stats() ?? null;
  }

  destroy(): void {
    clearInterval(this.countdown);
    this.player?.destroy();
    this.player = null;
    this.el.remove();
  }

  private render() {
    clearInterval(this.countdown);
    const state = this.player?.state ?? null;
    const server = this.serverStatus;
    // The gateway knows first that a camera dropped; a player whose picture froze learns it only later.
    const serverDown = server?.state === 'retrying' || server?.state === 'offline' ? server : null;
    const kind = !this.tile?.stream ? 'empty' : state?.kind === 'live' && serverDown ? serverDown.state : (state?.kind ?? 'starting');
    this.el.dataset.state = kind;
    this.el.dataset.transport = state?.kind === 'live' ? state.transport : '';
    const text = (): string => {
      if (!state) return '';
      const reason = serverDown ? statusReason(serverDown) : null;
      if (state.kind === 'starting' && serverDown) return t('tile.waitingCamera', { reason: reason! });
      if (state.kind === 'live' && serverDown?.state === 'offline') return t('player.offline', { reason: reason! });
      if (state.kind === 'live' && serverDown) {
        return t('player.retrying', { seconds: secondsUntil(this.serverStatusAt + (serverDown.retryInMs ?? 0)), reason: reason! });
      }
      return stateText(state, reason);
    };
    this.badge.textContent = text();
    if (kind === 'retrying') this.countdown = setInterval(() => (this.badge.textContent = text()), 1_000);
  }
}

addStrings({
  'tile.waitingCamera': ['Waiting for the camera: {reason}', '等待摄像机恢复：{reason}'],
});

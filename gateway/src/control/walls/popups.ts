import type { EventEmitter } from 'node:events';
import { GatewayError, ValidationError, notFound, type FieldIssue, reasoned } from '../../errors.js';
import type { Store } from '../../store/types.js';
import { popupOn, type Popup, type PopupCamera, type Tile, type WallView } from '../model.js';
import type { WallCommits } from './commits.js';
import type { WallTiles } from './tiles.js';
import { SYSTEM, touch, type ControlActor, type MessageHandlers, type Prewarmer, type WallEntry, type WallEvents, type WallLog } from './state.js';

/** An alarm pop-up to show: its cameras fill the given tiles in order. */
export interface PopupRequest {
  id: string;
  wallId: string;
  label: string;
  priority: number;
  alarmId: string;
  vehicleId: string;
  tileIds: string[];
  cameraIds: string[];
  /** How long the pre-warmed streams are held for the wall's players to join. */
  prewarmHoldMs: number;
}

/**
 * Alarm pop-ups: an alarm's cameras over a few reserved tiles, by priority, given back when the
 * alarm closes or an operator dismisses it. The tiles keep their own content underneath.
 */
export class WallPopups {
  constructor(
    private readonly commits: WallCommits,
    private readonly tiles: WallTiles,
    private readonly store: Store,
    private readonly prewarmer: Prewarmer,
    private readonly events: EventEmitter<WallEvents>,
    private readonly log: WallLog,
    private readonly clock: () => number,
  ) {}

  readonly handlers: MessageHandlers = {
    'popup.dismiss': async (actor, p, ref) => {
      const entry = this.commits.entryFor(actor, p.wallId);
      if (!Object.hasOwn(entry.doc.popups, p.popupId)) throw notFound(`popupId: pop-up "${p.popupId}" on wall ${p.wallId}`);
      const result = await this.endPopup(entry, p.popupId, actor, 'popup.dismiss', ref);
      this.events.emit('popupEnded', p.popupId);
      return result;
    },
  };

  /** Checks a linkage rule's target when the rule is saved: the wall in the actor's scope, every tile on it. */
  checkPopupTarget(actor: ControlActor, wallId: string, tileIds: string[]) {
    const entry = this.commits.walls.get(wallId);
    if (!entry || !this.commits.visible(actor, entry.doc)) throw new ValidationError([{ field: 'wallId', message: `no wall "${wallId}" in your scope` }]);
    const issues: FieldIssue[] = [];
    tileIds.forEach((id, i) => {
      if (!entry.doc.tiles[id]) issues.push({ field: `tileIds[${i}]`, message: `wall ${wallId} has no tile ${id}` });
    });
    if (issues.length) throw new ValidationError(issues);
  }

  /** Every pop-up in force, for reconciling with the alarms after a restart. */
  popups(): { wallId: string; popup: Popup }[] {
    return [...this.commits.walls.values()].flatMap((e) => Object.values(e.doc.popups).map((popup) => ({ wallId: e.doc.id, popup })));
  }

  /**
   * Puts an alarm's cameras on reserved tiles, over what they show, and pre-warms the streams at once
   * so the video is there when the screens switch. Tiles the wall no longer has are skipped.
   */
  async showPopup(r: PopupRequest): Promise<{ version: number; tiles: string[] } | null> {
    const entry = this.commits.walls.get(r.wallId);
    if (!entry) {
      this.log.warn({ wall: r.wallId, popup: r.id }, 'alarm pop-up for a wall that does not exist');
      return null;
    }
    const cameras: PopupCamera[] = [];
    for (const id of r.cameraIds) {
      const s = await this.store.sources.get(id);
      if (s?.enabled) cameras.push({ cameraId: s.id, name: s.name, departmentId: s.departmentId, hasSub: s.subUrl !== null });
    }
    const tiles: Record<string, PopupCamera> = {};
    const tileIds = r.tileIds.filter((id) => entry.doc.tiles[id]);
    tileIds.slice(0, cameras.length).forEach((id, i) => (tiles[id] = cameras[i]!));
    if (Object.keys(tiles).length === 0) {
      this.log.warn({ wall: r.wallId, popup: r.id }, 'alarm pop-up has no camera or no tile to show on');
      return null;
    }
    for (const [tileId, cam] of Object.entries(tiles)) {
      this.prewarmer.prewarm(cam.cameraId, this.tiles.profileFor(entry.doc.tiles[tileId]!, cam.hasSub, 'auto'), r.prewarmHoldMs);
    }
    const popup: Popup = { id: r.id, label: r.label, priority: r.priority, tiles, alarmId: r.alarmId, vehicleId: r.vehicleId, at: this.clock() };
    const actor = { ...SYSTEM, username: 'alarm' };
    let shown: string[] = [];
    const audit = () => ({ action: 'wall.popup.show', detail: { popup: r.id, alarm: r.alarmId, label: r.label, priority: r.priority, shown } });
    const result = await this.commits.commit(entry, actor, 'popup.show', null, audit, (doc, version, at) => {
      popup.at = at;
      doc.popups[popup.id] = popup;
      const changed = this.repaintPopupTiles(doc, Object.keys(tiles), version, at, actor.username);
      shown = changed.filter((t) => t.popup === popup.id).map((t) => t.id);
      return { tiles: changed, popups: [popup] };
    });
    return { ...result, tiles: shown };
  }

  /** Ends a pop-up wherever it is; the tiles show their own content again. False when no wall has it. */
  async clearPopup(id: string): Promise<boolean> {
    const entry = [...this.commits.walls.values()].find((e) => Object.hasOwn(e.doc.popups, id));
    if (!entry) return false;
    await this.endPopup(entry, id, { ...SYSTEM, username: 'alarm' }, 'popup.clear', null);
    return true;
  }

  private endPopup(entry: WallEntry, id: string, actor: ControlActor, cause: string, ref: string | null) {
    return this.commits.commit(entry, actor, cause, ref, { action: 'wall.popup.end', detail: { popup: id } }, (doc, version, at) => {
      const popup = doc.popups[id];
      if (!popup) throw reasoned('GW_ERR_CONFLICT', 'popupEnded', { popup: id }, `pop-up ${id} has already ended`);
      delete doc.popups[id];
      return { tiles: this.repaintPopupTiles(doc, Object.keys(popup.tiles), version, at, actor.username), removedPopups: [id] };
    });
  }

  /** Works out which pop-up each tile shows now; returns the tiles whose picture changed. */
  private repaintPopupTiles(doc: WallView, tileIds: string[], version: number, at: number, by: string): Tile[] {
    const changed: Tile[] = [];
    for (const id of tileIds) {
      const t = doc.tiles[id];
      if (!t) continue;
      const popup = popupOn(doc.popups, id)?.id ?? null;
      if (popup === t.popup) continue;
      t.popup = popup;
      t.stream = this.tiles.streamOf(doc, t);
      touch(t, version, at, by);
      changed.push(t);
    }
    return changed;
  }
}

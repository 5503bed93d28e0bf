import { EventEmitter } from 'node:events';
import { GatewayError, ValidationError, reasoned } from '../errors.js';
import type { Registry } from '../registry/service.js';
import { StoreConflict, type Store } from '../store/types.js';
import { screenRegion } from './layouts.js';
import type { Popup, WallView } from './model.js';
import { validatePayload, type MessageType, type Payload } from './protocol.js';
import type { PeerBus, PeerLeader } from '../lib/peers.js';
import { WallCluster } from './walls/cluster.js';
import { WallCommits } from './walls/commits.js';
import { WallPopups, type PopupRequest } from './walls/popups.js';
import { WallPresets, type PresetView } from './walls/presets.js';
import {
  conflict,
  parseWall,
  requirePermission,
  shortId,
  type ControlActor,
  type ControlConfig,
  type MessageHandler,
  type MessageHandlers,
  type Prewarmer,
  type WallEntry,
  type WallEvents,
  type WallLog,
} from './walls/state.js';
import { WallTiles } from './walls/tiles.js';
import { WallTours } from './walls/tours.js';

export { PERMISSION, requirePermission, type ControlActor, type ControlConfig, type Prewarmer } from './walls/state.js';
export type { PopupRequest } from './walls/popups.js';
export type { PresetView } from './walls/presets.js';

/**
 * Video walls: layouts, tile assignments, locks, tours, presets and emergency plans, and alarm
 * pop-ups. Every change is checked (permission, department scope, version, locks), written with its
 * audit entry in one transaction, and only then acknowledged and emitted as a delta with the wall's
 * next version. The sections live in walls/; this class owns the walls themselves and sends each
 * message to the section that registered it.
 */
export class WallService extends EventEmitter<WallEvents> {
  private readonly commits: WallCommits;
  private readonly tiles: WallTiles;
  private readonly tours: WallTours;
  private readonly presets: WallPresets;
  private readonly popupSection: WallPopups;
  private readonly handlers: MessageHandlers;
  private closing: Promise<void> | null = null;
  private cluster: WallCluster | null = null;
  /** How many screens follow a wall; the WebSocket server sets it. A tour nobody watches is not pre-warmed. */
  watchers: (wallId: string) => number = () => 0;

  constructor(
    private readonly store: Store,
    private readonly registry: Registry,
    config: ControlConfig,
    prewarmer: Prewarmer,
    private readonly log: WallLog,
    private readonly clock: () => number = Date.now,
  ) {
    super();
    this.commits = new WallCommits(store, registry, this, clock);
    this.tiles = new WallTiles(this.commits, registry, config, {
      tourCamera: (tour, step, tileId) => this.tours.tourCamera(tour, step, tileId),
      pruneTours: (doc, version, at, by, after) => this.tours.pruneTours(doc, version, at, by, after),
    });
    this.tours = new WallTours(this.commits, this.tiles, store, registry, config, prewarmer, (wallId) => this.watchers(wallId), log, clock);
    this.presets = new WallPresets(this.commits, this.tiles, this.tours, store, this, clock);
    this.popupSection = new WallPopups(this.commits, this.tiles, store, prewarmer, this, log, clock);
    this.handlers = composeHandlers([this.wallHandlers, this.tiles.handlers, this.tours.handlers, this.presets.handlers, this.popupSection.handlers]);
  }

  /**
   * Cluster mode: changes go to and come from the other nodes over the bus, and tours rotate only
   * while this node leads. Called before init(), so no tour timer starts on a node that does not lead.
   */
  joinCluster(bus: PeerBus, leader: PeerLeader): void {
    this.cluster = new WallCluster(this.commits, this.tours, this.presets, this.store, this, this.log, bus, leader);
  }

  /** Cluster mode: reloads every wall from the store (what the bus does after Redis came back). */
  resync(): Promise<void> {
    if (!this.cluster) throw new Error('not in a cluster');
    return this.cluster.resync();
  }

  /** Loads every wall and resumes its running tours where the clock says they should be. */
  async init(): Promise<void> {
    for (const row of await this.store.walls.all()) {
      this.commits.walls.set(row.id, { ...parseWall(row.doc, row.tiles), json: row.doc, tileJson: row.tiles, queue: Promise.resolve() });
    }
    await this.presets.init();
    for (const entry of this.commits.walls.values()) {
      for (const tour of Object.values(entry.doc.tours)) {
        await this.tours.resumeTour(entry, tour).catch((e: Error) => this.log.error({ wall: entry.doc.id, tour: tour.id, err: e.message }, 'tour did not resume'));
      }
    }
  }

  /**
   * Stops taking changes (they are refused with GW_ERR_UNAVAILABLE) and tours, then resolves once
   * every change already accepted is written: the store may close after it.
   */
  close(): Promise<void> {
    return (this.closing ??= (() => {
      const drained = this.commits.drain();
      this.tours.close();
      return drained;
    })());
  }

  // ---- reading -------------------------------------------------------------------------------

  list(actor: ControlActor) {
    const ranges = this.registry.departments.rangesFor(actor.scopes);
    return [...this.commits.walls.values()]
      .filter((e) => this.commits.visible(actor, e.doc, ranges))
      .map(({ doc }) => ({
        id: doc.id,
        name: doc.name,
        departmentId: doc.departmentId,
        screens: doc.screens,
        tiles: Object.keys(doc.tiles).length,
        plan: doc.plan,
        version: doc.version,
      }));
  }

  /** The live wall document: serialise it at once, it changes with the next delta. */
  snapshot(actor: ControlActor, wallId: string): WallView {
    return this.commits.entryFor(actor, wallId).doc;
  }

  /** A wall without a scope check, for fan-out to subscriptions that were checked when made. */
  peek(wallId: string): WallView | undefined {
    return this.commits.walls.get(wallId)?.doc;
  }

  presetsOf(actor: ControlActor, wallId: string): PresetView[] {
    return this.presets.presetsOf(actor, wallId);
  }

  presetRows(wallId: string): PresetView[] {
    return this.presets.presetRows(wallId);
  }

  // ---- the one entry point -------------------------------------------------------------------

  /** Validates and runs one message or REST call; resolves with its acknowledgement payload. */
  async execute(actor: ControlActor, type: MessageType, raw: unknown, ref: string | null = null): Promise<unknown> {
    requirePermission(actor, type);
    return this.commits.accept(async () => {
      const handler = this.handlers[type] as MessageHandler<MessageType> | undefined;
      // subscribe and unsubscribe are answered by the WebSocket server, which follows the wall for the client.
      if (!handler) throw new GatewayError('GW_ERR_BAD_MESSAGE', `${type} is a WebSocket message; over REST, GET /api/walls/<id>`);
      return handler(actor, validatePayload(type, raw), ref);
    });
  }

  // ---- the walls themselves ------------------------------------------------------------------

  private readonly wallHandlers: MessageHandlers = {
    'walls.list': (actor) => ({ walls: this.list(actor) }),
    'wall.create': (actor, p) => this.createWall(actor, p),
    'wall.delete': (actor, p) => this.deleteWall(actor, p),
    'wall.rename': (actor, p, ref) => {
      const entry = this.commits.entryFor(actor, p.wallId);
      return this.commits.commit(entry, actor, 'wall.rename', ref, { action: 'wall.rename', detail: { name: p.name } }, (doc) => {
        if (p.baseVersion < doc.version) throw conflict(entry, 'the wall changed since your version');
        doc.name = p.name;
        return { name: p.name };
      });
    },
  };

  private async createWall(actor: ControlActor, p: Payload<'wall.create'>) {
    const dep = this.registry.departments.get(p.departmentId);
    if (!dep || !this.registry.departments.within(p.departmentId, this.registry.departments.rangesFor(actor.scopes))) {
      throw new ValidationError([{ field: 'departmentId', message: `no department "${p.departmentId}" in your scope` }]);
    }
    const layout = this.tiles.parseLayout(p.layout ?? '1', 'layout');
    const screens = p.screens;
    const regions = Array.from({ length: screens.rows * screens.cols }, (_, i) => screenRegion(screens, i + 1, layout));
    const at = this.clock();
    const doc: WallView = {
      id: p.id ?? shortId('wall'),
      name: p.name,
      departmentId: p.departmentId,
      screens,
      regions,
      tiles: {},
      tours: {},
      plan: null,
      popups: {},
      version: 1,
      updatedAt: at,
      updatedBy: actor.username,
    };
    if (this.commits.walls.has(doc.id)) throw reasoned('GW_ERR_CONFLICT', 'taken', { id: doc.id }, `wall "${doc.id}" exists`);
    this.tiles.buildTiles(doc, regions, {}, 1, at, actor.username);
    const entry: WallEntry = { doc, planSaved: null, json: '', tileJson: this.commits.tileRows(Object.values(doc.tiles)), queue: Promise.resolve() };
    entry.json = this.commits.serialise(entry);
    try {
      await this.store.walls.create({ id: doc.id, departmentId: doc.departmentId, deptPath: dep.path, version: 1, doc: entry.json }, entry.tileJson, this.commits.audit(actor, doc, 'wall.create', { name: doc.name }));
    } catch (err) {
      if (err instanceof StoreConflict) throw reasoned('GW_ERR_CONFLICT', 'taken', { id: doc.id }, `wall "${doc.id}" exists`);
      throw err;
    }
    this.commits.walls.set(doc.id, entry);
    this.emit('created', doc.id);
    return { wall: doc };
  }

  private async deleteWall(actor: ControlActor, p: Payload<'wall.delete'>) {
    const entry = this.commits.entryFor(actor, p.wallId);
    const run = async () => {
      await this.store.walls.delete(p.wallId, this.commits.audit(actor, entry.doc, 'wall.delete', { name: entry.doc.name }));
      this.commits.walls.delete(p.wallId);
      for (const tourId of Object.keys(entry.doc.tours)) this.tours.unschedule(tourId);
      this.tours.dropUnusedTourCameras();
      this.presets.forgetWall(p.wallId);
      this.emit('removed', p.wallId);
      return { deleted: p.wallId };
    };
    return this.commits.enqueue(entry, run);
  }

  // ---- alarm pop-ups, for the linkage app.ts wires -------------------------------------------

  checkPopupTarget(actor: ControlActor, wallId: string, tileIds: string[]) {
    this.popupSection.checkPopupTarget(actor, wallId, tileIds);
  }

  popups(): { wallId: string; popup: Popup }[] {
    return this.popupSection.popups();
  }

  showPopup(r: PopupRequest): Promise<{ version: number; tiles: string[] } | null> {
    return this.commits.accept(() => this.popupSection.showPopup(r));
  }

  clearPopup(id: string): Promise<boolean> {
    return this.commits.accept(() => this.popupSection.clearPopup(id));
  }
}

/** One table of every section's handlers; a message type registered twice is a mistake caught at start. */
function composeHandlers(tables: MessageHandlers[]): MessageHandlers {
  const all: MessageHandlers = {};
  for (const table of tables) {
    for (const type of Object.keys(table) as MessageType[]) {
      if (Object.hasOwn(all, type)) throw new Error(`message type ${type} has two handlers`);
      (all as Record<string, unknown>)[type] = table[type];
    }
  }
  return all;
}

import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { allows, type Permission } from '../auth/roles.js';
import type { Config } from '../config/schema.js';
import { GatewayError, ValidationError, notFound, type FieldIssue } from '../errors.js';
import type { Actor, Registry } from '../registry/service.js';
import { StoreConflict, type AuditEntry, type PresetRow, type Role, type Store, type TileRows } from '../store/types.js';
import { customLayout, namedLayout, screenRegion, tilePixels, wallRegion, LAYOUT_NAMES } from './layouts.js';
import {
  TILE_GEOMETRY,
  popupOn,
  type LayoutGrid,
  type PlanState,
  type Popup,
  type PopupCamera,
  type Region,
  type Tile,
  type TileChange,
  type TileContent,
  type TileLock,
  type Tour,
  type TourCamera,
  type WallDelta,
  type WallView,
} from './model.js';
import { validatePayload, type MessageType, type Payload } from './protocol.js';

export type ControlConfig = Config['control'];

/** Who is acting: a signed-in user (their roles decide what they may do) or the gateway itself. */
export interface ControlActor extends Actor {
  roles: Role[];
}

/** The state a preset or plan keeps, and a plan's revert restores. */
interface SavedState {
  regions: Region[];
  contents: Record<string, TileContent>;
  locks: Record<string, TileLock>;
  tours: Tour[];
}

export interface PresetView {
  id: string;
  wallId: string;
  kind: 'preset' | 'plan';
  name: string;
  priority: number;
  createdBy: string;
  createdAt: number;
}

interface WallEntry {
  doc: WallView;
  /** The state an active plan replaced, restored on revert. */
  planSaved: SavedState | null;
  /** What was last written (the wall without tiles, and each tile), to restore the in-memory wall if a change fails half-way. */
  json: string;
  tileJson: TileRows;
  /** Changes to one wall run one at a time, each written before the next starts. */
  queue: Promise<unknown>;
}

interface AuditSpec {
  action: string;
  detail: Record<string, unknown>;
}

/** What a change returns: the tiles it touched in full; `commit` decides what of them goes out. */
type DeltaParts = Omit<WallDelta, 'wallId' | 'version' | 'at' | 'by' | 'cause' | 'ref' | 'changes'>;

/** A wall as stored: its document, and its tiles (one JSON each) put back in layout order. */
function parseWall(json: string, tiles: TileRows): { doc: WallView; planSaved: SavedState | null } {
  const saved = JSON.parse(json) as { wall: WallView; planSaved: SavedState | null };
  // Walls stored before alarm pop-ups existed have none.
  saved.wall.popups ??= {};
  for (const region of saved.wall.regions) {
    region.layout.cells.forEach((_, i) => {
      const tile = tiles.get(`${region.id}-${i + 1}`);
      if (!tile) return;
      const parsed = JSON.parse(tile) as Tile;
      parsed.popup ??= null;
      saved.wall.tiles[`${region.id}-${i + 1}`] = parsed;
    });
  }
  return { doc: saved.wall, planSaved: saved.planSaved };
}

function withoutGeometry(t: Tile): TileChange {
  const change: Partial<Tile> = { ...t };
  for (const key of TILE_GEOMETRY) delete change[key];
  return change as TileChange;
}

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

/** Starts a camera's stream ahead of a tour rotation and holds it for a while. */
export interface Prewarmer {
  prewarm(cameraId: string, profile: 'main' | 'sub', holdMs: number): void;
}

export const PERMISSION: Record<MessageType, Permission> = {
  'walls.list': 'walls:read',
  subscribe: 'walls:read',
  unsubscribe: 'walls:read',
  'presets.list': 'walls:read',
  'wall.create': 'walls:manage',
  'wall.delete': 'walls:manage',
  'wall.rename': 'walls:manage',
  'plan.save': 'walls:manage',
  'plan.delete': 'walls:manage',
  'popup.dismiss': 'walls:drive',
  'layout.set': 'walls:drive',
  'tile.assign': 'walls:drive',
  lock: 'walls:drive',
  unlock: 'walls:drive',
  'lock.break': 'walls:break-lock',
  'tour.start': 'walls:drive',
  'tour.stop': 'walls:drive',
  'preset.save': 'walls:drive',
  'preset.recall': 'walls:drive',
  'preset.delete': 'walls:drive',
  'plan.activate': 'walls:drive',
  'plan.revert': 'walls:drive',
};

const MAX_TILES_PER_WALL = 1024;
const SYSTEM: ControlActor = { id: 'system', username: 'system', ip: '-', scopes: [], roles: [] };
const shortId = (prefix: string) => `${prefix}-${randomBytes(5).toString('hex')}`;

export function requirePermission(actor: ControlActor, type: MessageType) {
  const permission = PERMISSION[type];
  if (!allows(actor.roles, permission)) throw new GatewayError('GW_ERR_FORBIDDEN', `your roles do not allow ${permission}`);
}

/**
 * Video walls: layouts, tile assignments, locks, tours, presets and emergency plans. Every change is
 * checked (permission, department scope, version, locks), written with its audit entry in one
 * transaction, and only then acknowledged and emitted as a delta with the wall's next version.
 */
export class WallService extends EventEmitter<{
  delta: [delta: WallDelta, json: string];
  removed: [string];
  presets: [string];
  /** An operator dismissed an alarm pop-up (its id). */
  popupEnded: [string];
}> {
  private readonly walls = new Map<string, WallEntry>();
  private readonly presets = new Map<string, PresetRow>();
  private readonly tourCameras = new Map<string, TourCamera[]>();
  private readonly tourTimers = new Map<string, NodeJS.Timeout[]>();
  private closed = false;
  /** How many screens follow a wall; the WebSocket server sets it. A tour nobody watches is not pre-warmed. */
  watchers: (wallId: string) => number = () => 0;

  constructor(
    private readonly store: Store,
    private readonly registry: Registry,
    private readonly config: ControlConfig,
    private readonly prewarmer: Prewarmer,
    private readonly log: { warn(o: object, m: string): void; error(o: object, m: string): void },
    private readonly clock: () => number = Date.now,
  ) {
    super();
  }

  /** Loads every wall and resumes its running tours where the clock says they should be. */
  async init(): Promise<void> {
    for (const row of await this.store.walls.all()) {
      this.walls.set(row.id, { ...parseWall(row.doc, row.tiles), json: row.doc, tileJson: row.tiles, queue: Promise.resolve() });
    }
    for (const p of await this.store.walls.presets()) this.presets.set(p.id, p);
    for (const entry of this.walls.values()) {
      for (const tour of Object.values(entry.doc.tours)) {
        await this.resumeTour(entry, tour).catch((e: Error) => this.log.error({ wall: entry.doc.id, tour: tour.id, err: e.message }, 'tour did not resume'));
      }
    }
  }

  close() {
    this.closed = true;
    for (const timers of this.tourTimers.values()) timers.forEach(clearTimeout);
    this.tourTimers.clear();
  }

  // ---- reading -------------------------------------------------------------------------------

  private deptPath(departmentId: string): string {
    return this.registry.departments.get(departmentId)?.path ?? `/${departmentId}/`;
  }

  private visible(actor: ControlActor, wall: WallView, ranges = this.registry.departments.rangesFor(actor.scopes)): boolean {
    return this.registry.departments.within(wall.departmentId, ranges);
  }

  /** The wall if the actor's departments include it; 404 alike for a missing one, so existence does not leak. */
  private entryFor(actor: ControlActor, wallId: string): WallEntry {
    const entry = this.walls.get(wallId);
    if (!entry || !this.visible(actor, entry.doc)) throw notFound(`wall "${wallId}"`);
    return entry;
  }

  list(actor: ControlActor) {
    const ranges = this.registry.departments.rangesFor(actor.scopes);
    return [...this.walls.values()]
      .filter((e) => this.visible(actor, e.doc, ranges))
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
    return this.entryFor(actor, wallId).doc;
  }

  /** A wall without a scope check, for fan-out to subscriptions that were checked when made. */
  peek(wallId: string): WallView | undefined {
    return this.walls.get(wallId)?.doc;
  }

  presetsOf(actor: ControlActor, wallId: string): PresetView[] {
    this.entryFor(actor, wallId);
    return this.presetRows(wallId);
  }

  presetRows(wallId: string): PresetView[] {
    return [...this.presets.values()]
      .filter((p) => p.wallId === wallId)
      .map((p) => ({ id: p.id, wallId: p.wallId, kind: p.kind, name: p.name, priority: p.priority, createdBy: p.createdBy, createdAt: p.createdAt }));
  }

  // ---- the one entry point -------------------------------------------------------------------

  /** Validates and runs one message or REST call; resolves with its acknowledgement payload. */
  async execute(actor: ControlActor, type: MessageType, raw: unknown, ref: string | null = null): Promise<unknown> {
    requirePermission(actor, type);
    if (this.closed) throw new GatewayError('GW_ERR_UNAVAILABLE', 'the gateway is shutting down');
    switch (type) {
      case 'walls.list':
        validatePayload(type, raw);
        return { walls: this.list(actor) };
      case 'presets.list': {
        const p = validatePayload(type, raw);
        return { presets: this.presetsOf(actor, p.wallId) };
      }
      case 'wall.create':
        return this.createWall(actor, validatePayload(type, raw));
      case 'wall.delete':
        return this.deleteWall(actor, validatePayload(type, raw));
      case 'wall.rename': {
        const p = validatePayload(type, raw);
        const entry = this.entryFor(actor, p.wallId);
        return this.commit(entry, actor, type, ref, { action: 'wall.rename', detail: { name: p.name } }, (doc) => {
          if (p.baseVersion < doc.version) throw this.conflict(entry, 'the wall changed since your version');
          doc.name = p.name;
          return { name: p.name };
        });
      }
      case 'layout.set':
        return this.setLayout(actor, validatePayload(type, raw), ref);
      case 'tile.assign':
        return this.assign(actor, validatePayload(type, raw), ref);
      case 'lock':
      case 'unlock':
      case 'lock.break':
        return this.locking(actor, type, validatePayload(type, raw), ref);
      case 'tour.start':
        return this.startTour(actor, validatePayload(type, raw), ref);
      case 'tour.stop':
        return this.stopTour(actor, validatePayload(type, raw), ref);
      case 'preset.save':
        return this.savePreset(actor, 'preset', validatePayload(type, raw), 0);
      case 'plan.save': {
        const p = validatePayload(type, raw);
        return this.savePreset(actor, 'plan', p, p.priority);
      }
      case 'preset.delete': {
        const p = validatePayload(type, raw);
        return this.deletePreset(actor, 'preset', p.wallId, p.presetId);
      }
      case 'plan.delete': {
        const p = validatePayload(type, raw);
        return this.deletePreset(actor, 'plan', p.wallId, p.planId);
      }
      case 'preset.recall':
        return this.recall(actor, validatePayload(type, raw), ref);
      case 'plan.activate':
        return this.activatePlan(actor, validatePayload(type, raw), ref);
      case 'plan.revert':
        return this.revertPlan(actor, validatePayload(type, raw), ref);
      case 'popup.dismiss': {
        const p = validatePayload(type, raw);
        const entry = this.entryFor(actor, p.wallId);
        if (!Object.hasOwn(entry.doc.popups, p.popupId)) throw notFound(`popupId: pop-up "${p.popupId}" on wall ${p.wallId}`);
        const result = await this.endPopup(entry, p.popupId, actor, type, ref);
        this.emit('popupEnded', p.popupId);
        return result;
      }
      case 'subscribe':
      case 'unsubscribe':
        throw new GatewayError('GW_ERR_BAD_MESSAGE', `${type} is a WebSocket message; over REST, GET /api/walls/<id>`);
    }
  }

  // ---- committing ----------------------------------------------------------------------------

  private audit(actor: ControlActor, wall: WallView, action: string, detail: Record<string, unknown>): Omit<AuditEntry, 'seq'> {
    return { at: this.clock(), actor: actor.username, actorIp: actor.ip, action, target: wall.id, outcome: 'ok', detail, scopePath: this.deptPath(wall.departmentId) };
  }

  /** The wall without its tiles, which are stored one row each. */
  private serialise(entry: WallEntry) {
    return JSON.stringify({ wall: { ...entry.doc, tiles: {} }, planSaved: entry.planSaved });
  }

  private tileRows(tiles: Iterable<Tile>): TileRows {
    return new Map([...tiles].map((t) => [t.id, JSON.stringify(t)]));
  }

  /**
   * Runs `mutate` on the wall in its queue, writes the result durably with the audit entry, and
   * emits the delta. A throw anywhere, including from the store, leaves the wall as it was.
   */
  private commit(
    entry: WallEntry,
    actor: ControlActor,
    cause: string,
    ref: string | null,
    /** What the audit log records; a function is called after `mutate`, for details only it finds out. */
    audit: AuditSpec | (() => AuditSpec | null) | null,
    /** Changes the wall; what must happen only once the change is written (timers, caches) goes in `after`. */
    mutate: (doc: WallView, version: number, at: number, after: (() => void)[]) => DeltaParts,
  ): Promise<{ version: number }> {
    const run = async () => {
      if (this.walls.get(entry.doc.id) !== entry) throw notFound(`wall "${entry.doc.id}"`);
      const doc = entry.doc;
      const version = doc.version + 1;
      const at = this.clock();
      let parts: DeltaParts;
      let json: string;
      let tiles: TileRows;
      const after: (() => void)[] = [];
      try {
        parts = mutate(doc, version, at, after);
        doc.version = version;
        doc.updatedAt = at;
        doc.updatedBy = actor.username;
        json = this.serialise(entry);
        // A new layout replaces every tile; otherwise the delta names each tile that changed.
        tiles = this.tileRows(parts.regions ? Object.values(doc.tiles) : (parts.tiles ?? []));
        const spec = typeof audit === 'function' ? audit() : audit;
        await this.store.walls.save(
          { id: doc.id, departmentId: doc.departmentId, deptPath: this.deptPath(doc.departmentId), version, doc: json },
          { rows: tiles, replace: !!parts.regions },
          spec ? this.audit(actor, doc, spec.action, spec.detail) : null,
        );
      } catch (err) {
        this.restore(entry);
        throw err;
      }
      entry.json = json;
      if (parts.regions) entry.tileJson = tiles;
      else for (const [id, t] of tiles) entry.tileJson.set(id, t);
      for (const effect of after) effect();
      const { tiles: changed, ...rest } = parts;
      const delta: WallDelta = {
        wallId: doc.id,
        version,
        at,
        by: actor.username,
        cause,
        ref,
        ...rest,
        // A tile keeps its place and size until the layout changes: a change sends only the rest, a quarter less to every screen.
        ...(parts.regions ? { tiles: changed } : changed?.length ? { changes: changed.map(withoutGeometry) } : {}),
      };
      // Serialised now: the tiles and tours in it are the live ones, which later changes alter.
      this.emit('delta', delta, JSON.stringify(delta));
      return { version };
    };
    return this.enqueue(entry, run);
  }

  /** Runs `work` after the wall's earlier changes, whether they succeeded or not. */
  private enqueue<T>(entry: WallEntry, work: () => Promise<T>): Promise<T> {
    const result = entry.queue.then(work, work);
    entry.queue = result.catch(() => undefined);
    return result;
  }

  /** Puts the in-memory wall back to what was last written. */
  private restore(entry: WallEntry) {
    Object.assign(entry, parseWall(entry.json, entry.tileJson));
  }

  private conflict(entry: WallEntry, why: string) {
    return new GatewayError('GW_ERR_VERSION_CONFLICT', `${why}; here is the wall at version ${entry.doc.version}`, { current: structuredClone(entry.doc) });
  }

  private checkBase(entry: WallEntry, baseVersion: number, tiles: Iterable<Tile>) {
    if (baseVersion > entry.doc.version) {
      throw new ValidationError([{ field: 'baseVersion', message: `is ahead of the wall, which is at version ${entry.doc.version}` }]);
    }
    for (const t of tiles) if (t.v > baseVersion) throw this.conflict(entry, `tile ${t.id} changed at version ${t.v}, after your version ${baseVersion}`);
  }

  /**
   * A tile under an alarm pop-up is not given other content: the operator would see nothing change,
   * and the alarm's video would be hidden later. Layouts, locks, presets and plans still apply.
   */
  private checkPopups(tiles: Iterable<Tile>) {
    for (const t of tiles) {
      if (t.popup) {
        throw new GatewayError('GW_ERR_LOCKED', `tile ${t.id} shows alarm pop-up ${t.popup}; dismiss it (popup.dismiss) or wait for the alarm to close`, {
          lock: { tileId: t.id, popup: t.popup },
        });
      }
    }
  }

  private checkLocks(actor: ControlActor, tiles: Iterable<Tile>) {
    for (const t of tiles) {
      if (t.lock && t.lock.userId !== actor.id) {
        throw new GatewayError('GW_ERR_LOCKED', `tile ${t.id} is locked by ${t.lock.username}`, { lock: { tileId: t.id, ...t.lock } });
      }
    }
  }

  private tile(entry: WallEntry, tileId: string, field: string): Tile {
    const t = entry.doc.tiles[tileId];
    if (!t) throw new ValidationError([{ field, message: `the wall has no tile ${tileId}` }]);
    return t;
  }

  private touch(t: Tile, version: number, at: number, by: string) {
    t.v = version;
    t.at = at;
    t.by = by;
  }

  // ---- walls ---------------------------------------------------------------------------------

  private parseLayout(input: Payload<'layout.set'>['layout'], field: string): LayoutGrid {
    const issues: FieldIssue[] = [];
    const grid = typeof input === 'string' ? namedLayout(input) : customLayout(input, field, issues);
    if (typeof input === 'string' && !grid) issues.push({ field, message: `expected one of ${LAYOUT_NAMES.join(', ')} or {rows, cols, cells}` });
    if (!grid) throw new ValidationError(issues);
    return grid;
  }

  private async createWall(actor: ControlActor, p: Payload<'wall.create'>) {
    const dep = this.registry.departments.get(p.departmentId);
    if (!dep || !this.registry.departments.within(p.departmentId, this.registry.departments.rangesFor(actor.scopes))) {
      throw new ValidationError([{ field: 'departmentId', message: `no department "${p.departmentId}" in your scope` }]);
    }
    const layout = this.parseLayout(p.layout ?? '1', 'layout');
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
    if (this.walls.has(doc.id)) throw new GatewayError('GW_ERR_CONFLICT', `wall "${doc.id}" exists`);
    this.buildTiles(doc, regions, {}, 1, at, actor.username);
    const entry: WallEntry = { doc, planSaved: null, json: '', tileJson: this.tileRows(Object.values(doc.tiles)), queue: Promise.resolve() };
    entry.json = this.serialise(entry);
    try {
      await this.store.walls.create({ id: doc.id, departmentId: doc.departmentId, deptPath: dep.path, version: 1, doc: entry.json }, entry.tileJson, this.audit(actor, doc, 'wall.create', { name: doc.name }));
    } catch (err) {
      if (err instanceof StoreConflict) throw new GatewayError('GW_ERR_CONFLICT', `wall "${doc.id}" exists`);
      throw err;
    }
    this.walls.set(doc.id, entry);
    return { wall: doc };
  }

  private async deleteWall(actor: ControlActor, p: Payload<'wall.delete'>) {
    const entry = this.entryFor(actor, p.wallId);
    const run = async () => {
      await this.store.walls.delete(p.wallId, this.audit(actor, entry.doc, 'wall.delete', { name: entry.doc.name }));
      this.walls.delete(p.wallId);
      for (const tourId of Object.keys(entry.doc.tours)) this.unschedule(tourId);
      this.dropUnusedTourCameras();
      for (const [id, preset] of this.presets) if (preset.wallId === p.wallId) this.presets.delete(id);
      this.emit('removed', p.wallId);
      return { deleted: p.wallId };
    };
    return this.enqueue(entry, run);
  }

  /**
   * Rebuilds the tiles of `regions` on `doc`. A tile keeps its content and lock when the new layout
   * has a tile of the same id; `contents`/`locks` override that (a recalled preset, a reverted plan).
   */
  private buildTiles(
    doc: WallView,
    regions: Region[],
    previous: Record<string, Tile>,
    version: number,
    at: number,
    by: string,
    contents?: Record<string, TileContent>,
    locks?: Record<string, TileLock>,
  ) {
    const total = regions.reduce((n, r) => n + r.layout.cells.length, 0);
    if (total > MAX_TILES_PER_WALL) throw new ValidationError([{ field: 'layout', message: `the wall would have ${total} tiles, over ${MAX_TILES_PER_WALL}` }]);
    const tiles: Record<string, Tile> = {};
    for (const region of regions) {
      region.layout.cells.forEach((c, i) => {
        const id = `${region.id}-${i + 1}`;
        const old = previous[id];
        const size = tilePixels(doc.screens, region, c);
        const content = contents ? (contents[id] ?? { kind: 'empty' }) : (old?.content ?? { kind: 'empty' });
        const lock = locks ? (locks[id] ?? null) : (old?.lock ?? null);
        tiles[id] = { id, region: region.id, ...c, ...size, content, stream: null, lock, popup: popupOn(doc.popups, id)?.id ?? null, v: version, by, at };
      });
    }
    doc.regions = regions;
    doc.tiles = tiles;
    for (const t of Object.values(tiles)) t.stream = this.streamOf(doc, t);
  }

  private profileFor(t: Tile, hasSub: boolean, asked: 'auto' | 'main' | 'sub'): 'main' | 'sub' {
    if (!hasSub) return 'main';
    if (asked !== 'auto') return asked;
    return t.width < this.config.subStreamBelowWidth ? 'sub' : 'main';
  }

  private streamOf(doc: WallView, t: Tile): Tile['stream'] {
    const shown = t.popup ? doc.popups[t.popup]?.tiles[t.id] : undefined;
    if (shown) return { cameraId: shown.cameraId, profile: this.profileFor(t, shown.hasSub, 'auto'), name: shown.name, departmentId: shown.departmentId };
    const c = t.content;
    if (c.kind === 'camera') return { cameraId: c.cameraId, profile: this.profileFor(t, c.hasSub, c.profile), name: c.name, departmentId: c.departmentId };
    if (c.kind === 'tour') {
      const tour = doc.tours[c.tourId];
      const cam = tour ? this.tourCamera(tour, tour.step, t.id) : null;
      return cam ? { cameraId: cam.cameraId, profile: this.profileFor(t, cam.hasSub, 'auto'), name: cam.name, departmentId: cam.departmentId } : null;
    }
    return null;
  }

  private async setLayout(actor: ControlActor, p: Payload<'layout.set'>, ref: string | null) {
    const entry = this.entryFor(actor, p.wallId);
    const layout = this.parseLayout(p.layout, 'layout');
    return this.commit(entry, actor, 'layout.set', ref, { action: 'wall.layout', detail: { target: p.target, layout: layout.name } }, (doc, version, at, after) => {
      const screens = doc.screens;
      const count = screens.rows * screens.cols;
      let regions: Region[];
      if (p.target === 'wall') regions = [wallRegion(screens, layout)];
      else if (p.target === 'each') regions = Array.from({ length: count }, (_, i) => screenRegion(screens, i + 1, layout));
      else {
        if (p.target > count) throw new ValidationError([{ field: 'target', message: `the wall has monitors 1 to ${count}` }]);
        const perScreen = doc.regions.length === 1 && doc.regions[0]!.id === 'wall' && count > 1
          ? Array.from({ length: count }, (_, i) => screenRegion(screens, i + 1, namedLayout('1')!))
          : doc.regions;
        regions = perScreen.map((r) => (r.id === `s${p.target}` ? screenRegion(screens, p.target as number, layout) : r));
      }
      const kept = new Set(regions.filter((r) => doc.regions.includes(r)).map((r) => r.id));
      const replaced = Object.values(doc.tiles).filter((t) => !kept.has(t.region));
      this.checkBase(entry, p.baseVersion, replaced);
      this.checkLocks(actor, replaced);
      const previous = doc.tiles;
      const unchanged = Object.values(previous).filter((t) => kept.has(t.region));
      this.buildTiles(doc, regions, previous, version, at, actor.username);
      // Tiles of regions left alone keep their own versions, so a change to them based on an older wall still applies.
      for (const t of unchanged) doc.tiles[t.id] = t;
      const { tours, removedTours } = this.pruneTours(doc, version, at, actor.username, after);
      return { regions, tiles: Object.values(doc.tiles), ...(tours.length ? { tours } : {}), ...(removedTours.length ? { removedTours } : {}) };
    });
  }

  /**
   * Drops tiles that no longer show a tour from it; a tour left without tiles ends. A tour's cameras
   * are spread over its tiles in order, so its remaining tiles are given their new cameras now.
   */
  private pruneTours(doc: WallView, version: number, at: number, by: string, after: (() => void)[]): { tours: Tour[]; removedTours: string[]; tiles: Tile[] } {
    const tours: Tour[] = [];
    const removedTours: string[] = [];
    const tiles: Tile[] = [];
    for (const tour of Object.values(doc.tours)) {
      const shows = (id: string) => {
        const c = doc.tiles[id]?.content;
        return c?.kind === 'tour' && c.tourId === tour.id;
      };
      const tileIds = tour.tileIds.filter(shows);
      if (tileIds.length === tour.tileIds.length) continue;
      if (tileIds.length === 0) {
        delete doc.tours[tour.id];
        removedTours.push(tour.id);
        after.push(() => this.forgetTour(tour.id));
      } else {
        tour.tileIds = tileIds;
        tour.v = version;
        tours.push(tour);
        for (const id of tileIds) {
          const t = doc.tiles[id]!;
          t.stream = this.streamOf(doc, t);
          this.touch(t, version, at, by);
          tiles.push(t);
        }
      }
    }
    return { tours, removedTours, tiles };
  }

  /** A tour's timers and cameras, once its end is written. */
  private forgetTour(tourId: string) {
    this.unschedule(tourId);
    this.tourCameras.delete(tourId);
  }

  /** Cameras resolved for tours that no wall runs (a recalled preset's originals, a failed change's). */
  private dropUnusedTourCameras() {
    const used = new Set<string>();
    for (const e of this.walls.values()) for (const id of Object.keys(e.doc.tours)) used.add(id);
    for (const id of this.tourCameras.keys()) if (!used.has(id)) this.tourCameras.delete(id);
  }

  // ---- tiles and locks -----------------------------------------------------------------------

  private async assign(actor: ControlActor, p: Payload<'tile.assign'>, ref: string | null) {
    const entry = this.entryFor(actor, p.wallId);
    let content: TileContent = { kind: 'empty' };
    if (p.content.kind === 'camera') {
      // Scope first: a camera outside the user's departments is refused like a missing one.
      const source = await this.registry.getSource(actor, p.content.cameraId).catch((err: GatewayError) => {
        throw err.code === 'GW_ERR_NOT_FOUND' ? new ValidationError([{ field: 'content.cameraId', message: `no camera "${p.content.kind === 'camera' ? p.content.cameraId : ''}" in your scope` }]) : err;
      });
      content = { kind: 'camera', cameraId: source.id, profile: p.content.profile ?? 'auto', name: source.name, departmentId: source.departmentId, hasSub: source.subUrl !== null };
    }
    return this.commit(entry, actor, 'tile.assign', ref, { action: 'wall.assign', detail: { tile: p.tileId, camera: content.kind === 'camera' ? content.cameraId : null } }, (doc, version, at, after) => {
      const t = this.tile(entry, p.tileId, 'tileId');
      this.checkBase(entry, p.baseVersion, [t]);
      this.checkLocks(actor, [t]);
      this.checkPopups([t]);
      t.content = content;
      t.stream = this.streamOf(doc, t);
      this.touch(t, version, at, actor.username);
      const { tours, removedTours, tiles } = this.pruneTours(doc, version, at, actor.username, after);
      return { tiles: [t, ...tiles], ...(tours.length ? { tours } : {}), ...(removedTours.length ? { removedTours } : {}) };
    });
  }

  private async locking(actor: ControlActor, type: 'lock' | 'unlock' | 'lock.break', p: Payload<'lock'>, ref: string | null) {
    const entry = this.entryFor(actor, p.wallId);
    let broken: { tile: string; holder: string }[] = [];
    const audit = () => ({ action: type === 'lock.break' ? 'wall.lock.break' : `wall.${type}`, detail: { tiles: p.tileIds, ...(type === 'lock.break' ? { broken } : {}) } });
    const result = await this.commit(entry, actor, type, ref, audit, (_doc, version, at) => {
      const tiles = p.tileIds.map((id, i) => this.tile(entry, id, `tileIds[${i}]`));
      // Every tile is checked before any changes, so a refusal leaves all of them as they were.
      if (type !== 'lock.break') this.checkLocks(actor, tiles);
      broken = tiles.filter((t) => t.lock && t.lock.userId !== actor.id).map((t) => ({ tile: t.id, holder: t.lock!.username }));
      for (const t of tiles) {
        t.lock = type === 'lock' ? { userId: actor.id, username: actor.username, at } : null;
        this.touch(t, version, at, actor.username);
      }
      return { tiles };
    });
    return { ...result, broken };
  }

  // ---- tours ---------------------------------------------------------------------------------

  /** The camera tile `tileId` shows at `step`: each step fills the tour's tiles in order with the next cameras. */
  private tourCamera(tour: Tour, step: number, tileId: string): TourCamera | null {
    const cams = this.tourCameras.get(tour.id);
    const j = tour.tileIds.indexOf(tileId);
    if (!cams || cams.length === 0 || j < 0) return null;
    return cams[(step * tour.tileIds.length + j) % cams.length]!;
  }

  private async resolveTourCameras(actor: ControlActor, source: Tour['source']): Promise<TourCamera[]> {
    const max = this.config.tours.maxCameras;
    const of = (r: { id: string; name: string; departmentId: string; subUrl: string | null }): TourCamera => ({
      cameraId: r.id,
      name: r.name,
      departmentId: r.departmentId,
      hasSub: r.subUrl !== null,
    });
    if ('cameras' in source) {
      const cams: TourCamera[] = [];
      for (const [i, id] of source.cameras.entries()) {
        // On resume the list was scope-checked when the tour started; a camera deleted since is skipped.
        const r =
          actor === SYSTEM
            ? await this.store.sources.get(id)
            : await this.registry.getSource(actor, id).catch((err: GatewayError) => {
                if (err.code !== 'GW_ERR_NOT_FOUND') throw err;
                throw new ValidationError([{ field: `cameras[${i}]`, message: `no camera "${id}" in your scope` }]);
              });
        if (r?.enabled) cams.push(of(r));
      }
      return cams.slice(0, max);
    }
    const page = await this.registry.listSources(actor === SYSTEM ? { ...SYSTEM, scopes: [source.departmentId] } : actor, {
      departmentId: source.departmentId,
      ...(source.tag ? { tag: source.tag } : {}),
      enabled: true,
      limit: max,
    });
    return page.items.map(of);
  }

  private async startTour(actor: ControlActor, p: Payload<'tour.start'>, ref: string | null) {
    const entry = this.entryFor(actor, p.wallId);
    const { minDwellSec, maxDwellSec } = this.config.tours;
    const issues: FieldIssue[] = [];
    if (p.dwellSec < minDwellSec || p.dwellSec > maxDwellSec) issues.push({ field: 'dwellSec', message: `expected ${minDwellSec} to ${maxDwellSec} seconds` });
    if (!p.cameras === !p.departmentId) issues.push({ field: 'cameras', message: 'give either cameras or departmentId' });
    if (p.tag && !p.departmentId) issues.push({ field: 'tag', message: 'a tag narrows a departmentId query' });
    if (issues.length) throw new ValidationError(issues);
    if (p.departmentId && !this.registry.departments.within(p.departmentId, this.registry.departments.rangesFor(actor.scopes))) {
      throw new ValidationError([{ field: 'departmentId', message: `no department "${p.departmentId}" in your scope` }]);
    }
    const source: Tour['source'] = p.cameras ? { cameras: p.cameras } : { departmentId: p.departmentId!, tag: p.tag ?? null };
    const cams = await this.resolveTourCameras(actor, source);
    if (cams.length === 0) throw new ValidationError([{ field: p.cameras ? 'cameras' : 'departmentId', message: 'no enabled cameras to rotate through' }]);
    const tourId = shortId('tour');
    const result = await this.commit(entry, actor, 'tour.start', ref, { action: 'wall.tour.start', detail: { tour: tourId, name: p.name, tiles: p.tileIds, cameras: cams.length } }, (doc, version, at, after) => {
      const tiles = p.tileIds.map((id, i) => this.tile(entry, id, `tileIds[${i}]`));
      this.checkBase(entry, p.baseVersion, tiles);
      this.checkLocks(actor, tiles);
      this.checkPopups(tiles);
      this.tourCameras.set(tourId, cams);
      const tour: Tour = {
        id: tourId,
        name: p.name,
        tileIds: p.tileIds,
        source,
        dwellSec: p.dwellSec,
        step: 0,
        stepStartedAt: at,
        cameraCount: cams.length,
        createdBy: actor.username,
        v: version,
      };
      doc.tours[tourId] = tour;
      for (const t of tiles) {
        t.content = { kind: 'tour', tourId };
        this.touch(t, version, at, actor.username);
      }
      // Tiles taken from another tour leave it.
      const pruned = this.pruneTours(doc, version, at, actor.username, after);
      for (const t of tiles) t.stream = this.streamOf(doc, t);
      after.push(() => this.schedule(entry, tour));
      return { tiles: [...tiles, ...pruned.tiles], tours: [tour, ...pruned.tours], ...(pruned.removedTours.length ? { removedTours: pruned.removedTours } : {}) };
    }).catch((err) => {
      this.tourCameras.delete(tourId);
      throw err;
    });
    return { ...result, tourId };
  }

  private async stopTour(actor: ControlActor, p: Payload<'tour.stop'>, ref: string | null) {
    const entry = this.entryFor(actor, p.wallId);
    return this.commit(entry, actor, 'tour.stop', ref, { action: 'wall.tour.stop', detail: { tour: p.tourId } }, (doc, version, at, after) => {
      const tour = Object.hasOwn(doc.tours, p.tourId) ? doc.tours[p.tourId] : undefined;
      if (!tour) throw new ValidationError([{ field: 'tourId', message: `the wall has no tour ${p.tourId}` }]);
      const tiles = tour.tileIds.map((id) => doc.tiles[id]!).filter(Boolean);
      this.checkLocks(actor, tiles);
      // The tiles keep the camera they show, as plain assignments: stopping freezes the tour.
      for (const t of tiles) {
        const cam = this.tourCamera(tour, tour.step, t.id);
        t.content = cam ? { kind: 'camera', cameraId: cam.cameraId, profile: 'auto', name: cam.name, departmentId: cam.departmentId, hasSub: cam.hasSub } : { kind: 'empty' };
        t.stream = this.streamOf(doc, t);
        this.touch(t, version, at, actor.username);
      }
      delete doc.tours[p.tourId];
      after.push(() => this.forgetTour(p.tourId));
      return { tiles, removedTours: [p.tourId] };
    });
  }

  private unschedule(tourId: string) {
    for (const t of this.tourTimers.get(tourId) ?? []) clearTimeout(t);
    this.tourTimers.delete(tourId);
  }

  /** Arms the tour's next rotation, and the pre-warm of the streams it will show. */
  private schedule(entry: WallEntry, tour: Tour) {
    this.unschedule(tour.id);
    if (this.closed) return;
    const dwellMs = tour.dwellSec * 1000;
    const dueIn = Math.max(0, tour.stepStartedAt + dwellMs - this.clock());
    const timers = [setTimeout(() => this.rotate(entry, tour.id), dueIn)];
    const { prewarmMs, prewarmHoldMs } = this.config.tours;
    if (prewarmMs > 0) {
      timers.push(
        setTimeout(() => {
          const live = entry.doc.tours[tour.id];
          if (!live || this.watchers(entry.doc.id) === 0) return;
          const seen = new Set<string>();
          for (const tileId of live.tileIds) {
            const t = entry.doc.tiles[tileId];
            const cam = this.tourCamera(live, live.step + 1, tileId);
            if (!t || !cam || seen.has(cam.cameraId)) continue;
            seen.add(cam.cameraId);
            this.prewarmer.prewarm(cam.cameraId, this.profileFor(t, cam.hasSub, 'auto'), Math.min(dueIn, prewarmMs) + prewarmHoldMs);
          }
        }, Math.max(0, dueIn - prewarmMs)),
      );
    }
    for (const t of timers) t.unref();
    this.tourTimers.set(tour.id, timers);
  }

  private rotate(entry: WallEntry, tourId: string, steps = 1, cause = 'tour.rotate') {
    this.commit(entry, { ...SYSTEM, username: 'tour' }, cause, null, null, (doc, version, at, after) => {
      const tour = doc.tours[tourId];
      if (!tour) throw notFound(`tour ${tourId}`);
      after.push(() => this.schedule(entry, tour));
      const dwellMs = tour.dwellSec * 1000;
      // A late timer (a busy loop, a restart) keeps the schedule instead of drifting.
      const behind = Math.max(0, at - (tour.stepStartedAt + dwellMs * steps));
      tour.step += steps + Math.floor(behind / dwellMs);
      tour.stepStartedAt = at - (behind % dwellMs);
      tour.v = version;
      const tiles = tour.tileIds.map((id) => doc.tiles[id]!).filter(Boolean);
      for (const t of tiles) {
        t.stream = this.streamOf(doc, t);
        t.v = version;
        t.at = at;
        t.by = 'tour';
      }
      return { tiles, tours: [tour] };
    }).then(
      () => undefined,
      (err: Error) => {
        if (!(err instanceof GatewayError && err.code === 'GW_ERR_NOT_FOUND')) this.log.error({ wall: entry.doc.id, tour: tourId, err: err.message }, 'tour rotation failed');
        // Try again at the next dwell rather than stopping the tour on a transient store error.
        const tour = entry.doc.tours[tourId];
        if (tour && !this.closed && this.walls.get(entry.doc.id) === entry) {
          const retry = setTimeout(() => this.rotate(entry, tourId), tour.dwellSec * 1000);
          retry.unref();
          this.tourTimers.set(tourId, [retry]);
        }
      },
    );
  }

  private async resumeTour(entry: WallEntry, tour: Tour) {
    this.tourCameras.set(tour.id, await this.resolveTourCameras(SYSTEM, tour.source));
    const dwellMs = tour.dwellSec * 1000;
    if (this.clock() - tour.stepStartedAt >= dwellMs) this.rotate(entry, tour.id, 0, 'tour.resume');
    else this.schedule(entry, tour);
  }

  // ---- presets and plans ---------------------------------------------------------------------

  private capture(doc: WallView): SavedState {
    const contents: Record<string, TileContent> = {};
    const locks: Record<string, TileLock> = {};
    for (const t of Object.values(doc.tiles)) {
      if (t.content.kind !== 'empty') contents[t.id] = t.content;
      if (t.lock) locks[t.id] = t.lock;
    }
    return structuredClone({ regions: doc.regions, contents, locks, tours: Object.values(doc.tours) });
  }

  private async savePreset(actor: ControlActor, kind: 'preset' | 'plan', p: { wallId: string; name: string }, priority: number) {
    const entry = this.entryFor(actor, p.wallId);
    const row: PresetRow = {
      id: shortId(kind),
      wallId: p.wallId,
      kind,
      name: p.name,
      priority,
      state: JSON.stringify(this.capture(entry.doc)),
      createdBy: actor.username,
      createdAt: this.clock(),
    };
    try {
      await this.store.walls.createPreset(row, this.audit(actor, entry.doc, `wall.${kind}.save`, { id: row.id, name: row.name, priority }));
    } catch (err) {
      if (err instanceof StoreConflict) throw new GatewayError('GW_ERR_CONFLICT', err.message);
      throw err;
    }
    this.presets.set(row.id, row);
    this.emit('presets', p.wallId);
    return { id: row.id, kind, name: row.name, priority };
  }

  private presetOf(wallId: string, kind: 'preset' | 'plan', id: string, field: string): PresetRow {
    const row = this.presets.get(id);
    if (!row || row.wallId !== wallId || row.kind !== kind) throw new ValidationError([{ field, message: `the wall has no ${kind} ${id}` }]);
    return row;
  }

  private async deletePreset(actor: ControlActor, kind: 'preset' | 'plan', wallId: string, id: string) {
    const entry = this.entryFor(actor, wallId);
    const row = this.presetOf(wallId, kind, id, kind === 'plan' ? 'planId' : 'presetId');
    if (kind === 'plan' && entry.doc.plan?.planId === id) throw new GatewayError('GW_ERR_CONFLICT', 'this plan is active; revert it first');
    await this.store.walls.deletePreset(id, this.audit(actor, entry.doc, `wall.${kind}.delete`, { id, name: row.name }));
    this.presets.delete(id);
    this.emit('presets', wallId);
    return { deleted: id };
  }

  /** Replaces the wall's layout, contents and tours with a saved state; returns the delta. */
  private applyState(
    entry: WallEntry,
    state: SavedState,
    version: number,
    at: number,
    by: string,
    locks: 'keep-own' | 'clear' | 'restore',
    cameras: Map<string, TourCamera[]>,
    after: (() => void)[],
  ): DeltaParts {
    const doc = entry.doc;
    const removedTours = Object.keys(doc.tours);
    for (const id of removedTours) after.push(() => this.unschedule(id));
    const previous = doc.tiles;
    const keptLocks: Record<string, TileLock> = {};
    if (locks === 'keep-own') for (const t of Object.values(previous)) if (t.lock) keptLocks[t.id] = t.lock;
    const saved = structuredClone(state);
    doc.tours = {};
    // A recalled tour starts from its first step with fresh ids, so an old delta cannot be confused with it.
    const renamed = new Map<string, string>();
    for (const tour of saved.tours) {
      const id = shortId('tour');
      renamed.set(tour.id, id);
      doc.tours[id] = { ...tour, id, step: 0, stepStartedAt: at, v: version };
      const cams = cameras.get(tour.id);
      if (cams) this.tourCameras.set(id, cams);
    }
    for (const [tileId, c] of Object.entries(saved.contents)) {
      if (c.kind === 'tour') saved.contents[tileId] = renamed.has(c.tourId) ? { kind: 'tour', tourId: renamed.get(c.tourId)! } : { kind: 'empty' };
    }
    this.buildTiles(doc, saved.regions, previous, version, at, by, saved.contents, locks === 'restore' ? saved.locks : locks === 'keep-own' ? keptLocks : {});
    after.push(() => {
      this.dropUnusedTourCameras();
      for (const tour of Object.values(doc.tours)) this.schedule(entry, tour);
    });
    return { regions: doc.regions, tiles: Object.values(doc.tiles), tours: Object.values(doc.tours), removedTours };
  }

  /** Cameras of a saved state's tours, resolved before the change so the state shows video at once. */
  private async prepareTours(state: SavedState): Promise<Map<string, TourCamera[]>> {
    const prepared = new Map<string, TourCamera[]>();
    for (const tour of state.tours) prepared.set(tour.id, this.tourCameras.get(tour.id) ?? (await this.resolveTourCameras(SYSTEM, tour.source)));
    return prepared;
  }

  /** The wall and one of its presets or plans, with the cameras its tours will show. */
  private async loadSaved(actor: ControlActor, wallId: string, kind: 'preset' | 'plan', id: string) {
    const entry = this.entryFor(actor, wallId);
    const row = this.presetOf(wallId, kind, id, kind === 'plan' ? 'planId' : 'presetId');
    const state = JSON.parse(row.state) as SavedState;
    return { entry, row, state, cameras: await this.prepareTours(state) };
  }

  private async recall(actor: ControlActor, p: Payload<'preset.recall'>, ref: string | null) {
    const { entry, row, state, cameras } = await this.loadSaved(actor, p.wallId, 'preset', p.presetId);
    const result = await this.commit(entry, actor, 'preset.recall', ref, { action: 'wall.preset.recall', detail: { id: row.id, name: row.name } }, (doc, version, at, after) => {
      const tiles = Object.values(doc.tiles);
      this.checkBase(entry, p.baseVersion, tiles);
      this.checkLocks(actor, tiles);
      return this.applyState(entry, state, version, at, actor.username, 'keep-own', cameras, after);
    }).finally(() => this.dropUnusedTourCameras());
    return result;
  }

  private async activatePlan(actor: ControlActor, p: Payload<'plan.activate'>, ref: string | null) {
    const { entry, row, state, cameras } = await this.loadSaved(actor, p.wallId, 'plan', p.planId);
    let brokenLocks: string[] = [];
    const audit = () => ({ action: 'wall.plan.activate', detail: { id: row.id, name: row.name, priority: row.priority, brokenLocks } });
    const result = await this.commit(entry, actor, 'plan.activate', ref, audit, (doc, version, at, after) => {
      const active = doc.plan;
      if (active && active.priority >= row.priority) {
        throw new GatewayError('GW_ERR_CONFLICT', `plan "${active.name}" of priority ${active.priority} is active; a plan must have a higher priority to pre-empt it`);
      }
      // A plan pre-empting another keeps the state from before the first, which is what revert restores.
      if (!active) entry.planSaved = this.capture(doc);
      brokenLocks = Object.values(doc.tiles).filter((t) => t.lock).map((t) => `${t.id}:${t.lock!.username}`);
      const parts = this.applyState(entry, state, version, at, actor.username, 'clear', cameras, after);
      const plan: PlanState = { planId: row.id, name: row.name, priority: row.priority, activatedBy: actor.username, at };
      doc.plan = plan;
      return { ...parts, plan };
    }).finally(() => this.dropUnusedTourCameras());
    return result;
  }

  private async revertPlan(actor: ControlActor, p: Payload<'plan.revert'>, ref: string | null) {
    const entry = this.entryFor(actor, p.wallId);
    const cameras = entry.planSaved ? await this.prepareTours(entry.planSaved) : new Map<string, TourCamera[]>();
    let reverted: PlanState | null = null;
    const audit = () => ({ action: 'wall.plan.revert', detail: { id: reverted!.planId, name: reverted!.name } });
    const result = await this.commit(entry, actor, 'plan.revert', ref, audit, (doc, version, at, after) => {
      if (!doc.plan || !entry.planSaved) throw new GatewayError('GW_ERR_CONFLICT', 'no emergency plan is active on this wall');
      reverted = doc.plan;
      const parts = this.applyState(entry, entry.planSaved, version, at, actor.username, 'restore', cameras, after);
      entry.planSaved = null;
      doc.plan = null;
      return { ...parts, plan: null };
    }).finally(() => this.dropUnusedTourCameras());
    return result;
  }

  // ---- alarm pop-ups -------------------------------------------------------------------------

  /** Checks a linkage rule's target when the rule is saved: the wall in the actor's scope, every tile on it. */
  checkPopupTarget(actor: ControlActor, wallId: string, tileIds: string[]) {
    const entry = this.walls.get(wallId);
    if (!entry || !this.visible(actor, entry.doc)) throw new ValidationError([{ field: 'wallId', message: `no wall "${wallId}" in your scope` }]);
    const issues: FieldIssue[] = [];
    tileIds.forEach((id, i) => {
      if (!entry.doc.tiles[id]) issues.push({ field: `tileIds[${i}]`, message: `wall ${wallId} has no tile ${id}` });
    });
    if (issues.length) throw new ValidationError(issues);
  }

  /** Every pop-up in force, for reconciling with the alarms after a restart. */
  popups(): { wallId: string; popup: Popup }[] {
    return [...this.walls.values()].flatMap((e) => Object.values(e.doc.popups).map((popup) => ({ wallId: e.doc.id, popup })));
  }

  /**
   * Puts an alarm's cameras on reserved tiles, over what they show, and pre-warms the streams at once
   * so the video is there when the screens switch. Tiles the wall no longer has are skipped.
   */
  async showPopup(r: PopupRequest): Promise<{ version: number; tiles: string[] } | null> {
    const entry = this.walls.get(r.wallId);
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
      this.prewarmer.prewarm(cam.cameraId, this.profileFor(entry.doc.tiles[tileId]!, cam.hasSub, 'auto'), r.prewarmHoldMs);
    }
    const popup: Popup = { id: r.id, label: r.label, priority: r.priority, tiles, alarmId: r.alarmId, vehicleId: r.vehicleId, at: this.clock() };
    const actor = { ...SYSTEM, username: 'alarm' };
    let shown: string[] = [];
    const audit = () => ({ action: 'wall.popup.show', detail: { popup: r.id, alarm: r.alarmId, label: r.label, priority: r.priority, shown } });
    const result = await this.commit(entry, actor, 'popup.show', null, audit, (doc, version, at) => {
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
    const entry = [...this.walls.values()].find((e) => Object.hasOwn(e.doc.popups, id));
    if (!entry) return false;
    await this.endPopup(entry, id, { ...SYSTEM, username: 'alarm' }, 'popup.clear', null);
    return true;
  }

  private endPopup(entry: WallEntry, id: string, actor: ControlActor, cause: string, ref: string | null) {
    return this.commit(entry, actor, cause, ref, { action: 'wall.popup.end', detail: { popup: id } }, (doc, version, at) => {
      const popup = doc.popups[id];
      if (!popup) throw new GatewayError('GW_ERR_CONFLICT', `pop-up ${id} has already ended`);
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
      t.stream = this.streamOf(doc, t);
      this.touch(t, version, at, by);
      changed.push(t);
    }
    return changed;
  }
}

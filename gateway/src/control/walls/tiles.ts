import { GatewayError, ValidationError, type FieldIssue } from '../../errors.js';
import type { Registry } from '../../registry/service.js';
import { customLayout, namedLayout, screenRegion, tilePixels, wallRegion, LAYOUT_NAMES } from '../layouts.js';
import { popupOn, type LayoutGrid, type Region, type Tile, type TileContent, type TileLock, type Tour, type TourCamera, type WallView } from '../model.js';
import type { Payload } from '../protocol.js';
import type { WallCommits } from './commits.js';
import { checkBase, checkLocks, checkPopups, tileOf, touch, type ControlActor, type ControlConfig, type MessageHandlers } from './state.js';

const MAX_TILES_PER_WALL = 1024;

/** What tiles need of the tours section: which camera a tour shows where, and dropping tiles that left a tour. */
export interface TourLinks {
  tourCamera(tour: Tour, step: number, tileId: string): TourCamera | null;
  pruneTours(doc: WallView, version: number, at: number, by: string, after: (() => void)[]): { tours: Tour[]; removedTours: string[]; tiles: Tile[] };
}

/**
 * Tiles and locks: layouts and the tiles they make, what each tile plays (camera, tour or pop-up,
 * and which profile), assignments, and operators' locks.
 */
export class WallTiles {
  constructor(
    private readonly commits: WallCommits,
    private readonly registry: Registry,
    private readonly config: ControlConfig,
    private readonly tours: TourLinks,
  ) {}

  readonly handlers: MessageHandlers = {
    'layout.set': (actor, p, ref) => this.setLayout(actor, p, ref),
    'tile.assign': (actor, p, ref) => this.assign(actor, p, ref),
    lock: (actor, p, ref) => this.locking(actor, 'lock', p, ref),
    unlock: (actor, p, ref) => this.locking(actor, 'unlock', p, ref),
    'lock.break': (actor, p, ref) => this.locking(actor, 'lock.break', p, ref),
  };

  parseLayout(input: Payload<'layout.set'>['layout'], field: string): LayoutGrid {
    const issues: FieldIssue[] = [];
    const grid = typeof input === 'string' ? namedLayout(input) : customLayout(input, field, issues);
    if (typeof input === 'string' && !grid) issues.push({ field, message: `expected one of ${LAYOUT_NAMES.join(', ')} or {rows, cols, cells}` });
    if (!grid) throw new ValidationError(issues);
    return grid;
  }

  /**
   * Rebuilds the tiles of `regions` on `doc`. A tile keeps its content and lock when the new layout
   * has a tile of the same id; `contents`/`locks` override that (a recalled preset, a reverted plan).
   */
  buildTiles(
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

  profileFor(t: Tile, hasSub: boolean, asked: 'auto' | 'main' | 'sub'): 'main' | 'sub' {
    if (!hasSub) return 'main';
    if (asked !== 'auto') return asked;
    return t.width < this.config.subStreamBelowWidth ? 'sub' : 'main';
  }

  /** What the tile plays: an alarm pop-up over it, else its camera or its tour's current camera. */
  streamOf(doc: WallView, t: Tile): Tile['stream'] {
    const shown = t.popup ? doc.popups[t.popup]?.tiles[t.id] : undefined;
    if (shown) return { cameraId: shown.cameraId, profile: this.profileFor(t, shown.hasSub, 'auto'), name: shown.name, departmentId: shown.departmentId };
    const c = t.content;
    if (c.kind === 'camera') return { cameraId: c.cameraId, profile: this.profileFor(t, c.hasSub, c.profile), name: c.name, departmentId: c.departmentId };
    if (c.kind === 'tour') {
      const tour = doc.tours[c.tourId];
      const cam = tour ? this.tours.tourCamera(tour, tour.step, t.id) : null;
      return cam ? { cameraId: cam.cameraId, profile: this.profileFor(t, cam.hasSub, 'auto'), name: cam.name, departmentId: cam.departmentId } : null;
    }
    return null;
  }

  private async setLayout(actor: ControlActor, p: Payload<'layout.set'>, ref: string | null) {
    const entry = this.commits.entryFor(actor, p.wallId);
    const layout = this.parseLayout(p.layout, 'layout');
    return this.commits.commit(entry, actor, 'layout.set', ref, { action: 'wall.layout', detail: { target: p.target, layout: layout.name } }, (doc, version, at, after) => {
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
      checkBase(entry, p.baseVersion, replaced);
      checkLocks(actor, replaced);
      const previous = doc.tiles;
      const unchanged = Object.values(previous).filter((t) => kept.has(t.region));
      this.buildTiles(doc, regions, previous, version, at, actor.username);
      // Tiles of regions left alone keep their own versions, so a change to them based on an older wall still applies.
      for (const t of unchanged) doc.tiles[t.id] = t;
      const { tours, removedTours } = this.tours.pruneTours(doc, version, at, actor.username, after);
      return { regions, tiles: Object.values(doc.tiles), ...(tours.length ? { tours } : {}), ...(removedTours.length ? { removedTours } : {}) };
    });
  }

  private async assign(actor: ControlActor, p: Payload<'tile.assign'>, ref: string | null) {
    const entry = this.commits.entryFor(actor, p.wallId);
    let content: TileContent = { kind: 'empty' };
    if (p.content.kind === 'camera') {
      // Scope first: a camera outside the user's departments is refused like a missing one.
      const source = await this.registry.getSource(actor, p.content.cameraId).catch((err: GatewayError) => {
        throw err.code === 'GW_ERR_NOT_FOUND' ? new ValidationError([{ field: 'content.cameraId', message: `no camera "${p.content.kind === 'camera' ? p.content.cameraId : ''}" in your scope` }]) : err;
      });
      content = { kind: 'camera', cameraId: source.id, profile: p.content.profile ?? 'auto', name: source.name, departmentId: source.departmentId, hasSub: source.subUrl !== null };
    }
    return this.commits.commit(entry, actor, 'tile.assign', ref, { action: 'wall.assign', detail: { tile: p.tileId, camera: content.kind === 'camera' ? content.cameraId : null } }, (doc, version, at, after) => {
      const t = tileOf(entry, p.tileId, 'tileId');
      checkBase(entry, p.baseVersion, [t]);
      checkLocks(actor, [t]);
      checkPopups([t]);
      t.content = content;
      t.stream = this.streamOf(doc, t);
      touch(t, version, at, actor.username);
      const { tours, removedTours, tiles } = this.tours.pruneTours(doc, version, at, actor.username, after);
      return { tiles: [t, ...tiles], ...(tours.length ? { tours } : {}), ...(removedTours.length ? { removedTours } : {}) };
    });
  }

  private async locking(actor: ControlActor, type: 'lock' | 'unlock' | 'lock.break', p: Payload<'lock'>, ref: string | null) {
    const entry = this.commits.entryFor(actor, p.wallId);
    let broken: { tile: string; holder: string }[] = [];
    const audit = () => ({ action: type === 'lock.break' ? 'wall.lock.break' : `wall.${type}`, detail: { tiles: p.tileIds, ...(type === 'lock.break' ? { broken } : {}) } });
    const result = await this.commits.commit(entry, actor, type, ref, audit, (_doc, version, at) => {
      const tiles = p.tileIds.map((id, i) => tileOf(entry, id, `tileIds[${i}]`));
      // Every tile is checked before any changes, so a refusal leaves all of them as they were.
      if (type !== 'lock.break') checkLocks(actor, tiles);
      broken = tiles.filter((t) => t.lock && t.lock.userId !== actor.id).map((t) => ({ tile: t.id, holder: t.lock!.username }));
      for (const t of tiles) {
        t.lock = type === 'lock' ? { userId: actor.id, username: actor.username, at } : null;
        touch(t, version, at, actor.username);
      }
      return { tiles };
    });
    return { ...result, broken };
  }
}

import { GatewayError, ValidationError, notFound, type FieldIssue } from '../../errors.js';
import type { Registry } from '../../registry/service.js';
import type { Store } from '../../store/types.js';
import type { Tile, Tour, TourCamera, WallView } from '../model.js';
import type { Payload } from '../protocol.js';
import type { WallCommits } from './commits.js';
import type { WallTiles } from './tiles.js';
import {
  SYSTEM,
  checkBase,
  checkLocks,
  checkPopups,
  shortId,
  tileOf,
  touch,
  type ControlActor,
  type ControlConfig,
  type MessageHandlers,
  type Prewarmer,
  type WallEntry,
  type WallLog,
} from './state.js';

/**
 * Tours: the cameras each rotates through, its timers, and the pre-warming of the next step's
 * streams. A rotation is a change like any other, committed by `tour`.
 */
export class WallTours {
  private readonly tourCameras = new Map<string, TourCamera[]>();
  private readonly tourTimers = new Map<string, NodeJS.Timeout[]>();
  /**
   * Whether this node runs tour rotations now. In a cluster only the leader does, and it is asked
   * again each time a timer fires: a leader paused past its lease must not rotate when it wakes.
   */
  runsTimers: () => boolean = () => true;

  constructor(
    private readonly commits: WallCommits,
    private readonly tiles: WallTiles,
    private readonly store: Store,
    private readonly registry: Registry,
    private readonly config: ControlConfig,
    private readonly prewarmer: Prewarmer,
    /** How many screens follow a wall: a tour nobody watches is not pre-warmed. */
    private readonly watchers: (wallId: string) => number,
    private readonly log: WallLog,
    private readonly clock: () => number,
  ) {}

  readonly handlers: MessageHandlers = {
    'tour.start': (actor, p, ref) => this.startTour(actor, p, ref),
    'tour.stop': (actor, p, ref) => this.stopTour(actor, p, ref),
  };

  close() {
    this.stopTimers();
  }

  /** Stops every rotation (closing, or no longer the cluster's leader); the tours' cameras stay known. */
  stopTimers() {
    for (const timers of this.tourTimers.values()) timers.forEach(clearTimeout);
    this.tourTimers.clear();
  }

  /** The camera tile `tileId` shows at `step`: each step fills the tour's tiles in order with the next cameras. */
  tourCamera(tour: Tour, step: number, tileId: string): TourCamera | null {
    const cams = this.tourCameras.get(tour.id);
    const j = tour.tileIds.indexOf(tileId);
    if (!cams || cams.length === 0 || j < 0) return null;
    return cams[(step * tour.tileIds.length + j) % cams.length]!;
  }

  /** Cameras resolved ahead for a tour about to exist (a recalled preset's, a plan's). */
  adoptCameras(tourId: string, cameras: TourCamera[]) {
    this.tourCameras.set(tourId, cameras);
  }

  knownCameras(tourId: string): TourCamera[] | undefined {
    return this.tourCameras.get(tourId);
  }

  async resolveTourCameras(actor: ControlActor, source: Tour['source']): Promise<TourCamera[]> {
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

  /**
   * Drops tiles that no longer show a tour from it; a tour left without tiles ends. A tour's cameras
   * are spread over its tiles in order, so its remaining tiles are given their new cameras now.
   */
  pruneTours(doc: WallView, version: number, at: number, by: string, after: (() => void)[]): { tours: Tour[]; removedTours: string[]; tiles: Tile[] } {
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
          t.stream = this.tiles.streamOf(doc, t);
          touch(t, version, at, by);
          tiles.push(t);
        }
      }
    }
    return { tours, removedTours, tiles };
  }

  /** A tour's timers and cameras, once its end is written. */
  forgetTour(tourId: string) {
    this.unschedule(tourId);
    this.tourCameras.delete(tourId);
  }

  /** Cameras resolved for tours that no wall runs (a recalled preset's originals, a failed change's, one ended on another node), and their timers. */
  dropUnusedTourCameras() {
    const used = new Set<string>();
    for (const e of this.commits.walls.values()) for (const id of Object.keys(e.doc.tours)) used.add(id);
    for (const id of this.tourCameras.keys()) if (!used.has(id)) this.tourCameras.delete(id);
    for (const id of this.tourTimers.keys()) if (!used.has(id)) this.unschedule(id);
  }

  private async startTour(actor: ControlActor, p: Payload<'tour.start'>, ref: string | null) {
    const entry = this.commits.entryFor(actor, p.wallId);
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
    const result = await this.commits.commit(entry, actor, 'tour.start', ref, { action: 'wall.tour.start', detail: { tour: tourId, name: p.name, tiles: p.tileIds, cameras: cams.length } }, (doc, version, at, after) => {
      const tiles = p.tileIds.map((id, i) => tileOf(entry, id, `tileIds[${i}]`));
      checkBase(entry, p.baseVersion, tiles);
      checkLocks(actor, tiles);
      checkPopups(tiles);
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
        touch(t, version, at, actor.username);
      }
      // Tiles taken from another tour leave it.
      const pruned = this.pruneTours(doc, version, at, actor.username, after);
      for (const t of tiles) t.stream = this.tiles.streamOf(doc, t);
      after.push(() => this.schedule(entry, tour));
      return { tiles: [...tiles, ...pruned.tiles], tours: [tour, ...pruned.tours], ...(pruned.removedTours.length ? { removedTours: pruned.removedTours } : {}) };
    }).catch((err) => {
      this.tourCameras.delete(tourId);
      throw err;
    });
    return { ...result, tourId };
  }

  private async stopTour(actor: ControlActor, p: Payload<'tour.stop'>, ref: string | null) {
    const entry = this.commits.entryFor(actor, p.wallId);
    return this.commits.commit(entry, actor, 'tour.stop', ref, { action: 'wall.tour.stop', detail: { tour: p.tourId } }, (doc, version, at, after) => {
      const tour = Object.hasOwn(doc.tours, p.tourId) ? doc.tours[p.tourId] : undefined;
      if (!tour) throw new ValidationError([{ field: 'tourId', message: `the wall has no tour ${p.tourId}` }]);
      const tiles = tour.tileIds.map((id) => doc.tiles[id]!).filter(Boolean);
      checkLocks(actor, tiles);
      // The tiles keep the camera they show, as plain assignments: stopping freezes the tour.
      for (const t of tiles) {
        const cam = this.tourCamera(tour, tour.step, t.id);
        t.content = cam ? { kind: 'camera', cameraId: cam.cameraId, profile: 'auto', name: cam.name, departmentId: cam.departmentId, hasSub: cam.hasSub } : { kind: 'empty' };
        t.stream = this.tiles.streamOf(doc, t);
        touch(t, version, at, actor.username);
      }
      delete doc.tours[p.tourId];
      after.push(() => this.forgetTour(p.tourId));
      return { tiles, removedTours: [p.tourId] };
    });
  }

  unschedule(tourId: string) {
    for (const t of this.tourTimers.get(tourId) ?? []) clearTimeout(t);
    this.tourTimers.delete(tourId);
  }

  /** Arms the tour's next rotation, and the pre-warm of the streams it will show. */
  schedule(entry: WallEntry, tour: Tour) {
    this.unschedule(tour.id);
    if (this.commits.isClosed || !this.runsTimers()) return;
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
            this.prewarmer.prewarm(cam.cameraId, this.tiles.profileFor(t, cam.hasSub, 'auto'), Math.min(dueIn, prewarmMs) + prewarmHoldMs);
          }
        }, Math.max(0, dueIn - prewarmMs)),
      );
    }
    for (const t of timers) t.unref();
    this.tourTimers.set(tour.id, timers);
  }

  private rotate(entry: WallEntry, tourId: string, steps = 1, cause = 'tour.rotate') {
    if (!this.runsTimers()) {
      this.unschedule(tourId);
      return;
    }
    this.commits.commit(entry, { ...SYSTEM, username: 'tour' }, cause, null, null, (doc, version, at, after) => {
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
        t.stream = this.tiles.streamOf(doc, t);
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
        if (tour && !this.commits.isClosed && this.runsTimers() && this.commits.walls.get(entry.doc.id) === entry) {
          const retry = setTimeout(() => this.rotate(entry, tourId), tour.dwellSec * 1000);
          retry.unref();
          this.tourTimers.set(tourId, [retry]);
        }
      },
    );
  }

  /** Loads a running tour's cameras and rotates it to where the clock says it should be. */
  async resumeTour(entry: WallEntry, tour: Tour) {
    this.tourCameras.set(tour.id, await this.resolveTourCameras(SYSTEM, tour.source));
    const dwellMs = tour.dwellSec * 1000;
    if (this.clock() - tour.stepStartedAt >= dwellMs) this.rotate(entry, tour.id, 0, 'tour.resume');
    else this.schedule(entry, tour);
  }
}

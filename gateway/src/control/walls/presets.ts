import type { EventEmitter } from 'node:events';
import { GatewayError, ValidationError, reasoned } from '../../errors.js';
import { StoreConflict, type PresetRow, type Store } from '../../store/types.js';
import type { PlanState, TileContent, TileLock, TourCamera, WallView } from '../model.js';
import type { Payload } from '../protocol.js';
import type { WallCommits } from './commits.js';
import type { WallTiles } from './tiles.js';
import type { WallTours } from './tours.js';
import { SYSTEM, checkBase, checkLocks, shortId, type ControlActor, type DeltaParts, type MessageHandlers, type SavedState, type WallEntry, type WallEvents } from './state.js';

export interface PresetView {
  id: string;
  wallId: string;
  kind: 'preset' | 'plan';
  name: string;
  priority: number;
  createdBy: string;
  createdAt: number;
}

/**
 * Presets and emergency plans: a saved layout with its contents, locks and tours. A preset is
 * recalled over the wall; a plan replaces it by priority, breaking locks, and its revert restores it.
 */
export class WallPresets {
  private readonly presets = new Map<string, PresetRow>();

  constructor(
    private readonly commits: WallCommits,
    private readonly tiles: WallTiles,
    private readonly tours: WallTours,
    private readonly store: Store,
    private readonly events: EventEmitter<WallEvents>,
    private readonly clock: () => number,
  ) {}

  readonly handlers: MessageHandlers = {
    'presets.list': (actor, p) => ({ presets: this.presetsOf(actor, p.wallId) }),
    'preset.save': (actor, p) => this.savePreset(actor, 'preset', p, 0),
    'plan.save': (actor, p) => this.savePreset(actor, 'plan', p, p.priority),
    'preset.delete': (actor, p) => this.deletePreset(actor, 'preset', p.wallId, p.presetId),
    'plan.delete': (actor, p) => this.deletePreset(actor, 'plan', p.wallId, p.planId),
    'preset.recall': (actor, p, ref) => this.recall(actor, p, ref),
    'plan.activate': (actor, p, ref) => this.activatePlan(actor, p, ref),
    'plan.revert': (actor, p, ref) => this.revertPlan(actor, p, ref),
  };

  async init() {
    for (const p of await this.store.walls.presets()) this.presets.set(p.id, p);
  }

  /** Takes the presets and plans another node changed: all of them, or one wall's. */
  replace(rows: PresetRow[], wallId?: string) {
    for (const [id, preset] of this.presets) if (wallId === undefined || preset.wallId === wallId) this.presets.delete(id);
    for (const row of rows) if (wallId === undefined || row.wallId === wallId) this.presets.set(row.id, row);
  }

  /** A deleted wall's presets and plans went with it in the store. */
  forgetWall(wallId: string) {
    for (const [id, preset] of this.presets) if (preset.wallId === wallId) this.presets.delete(id);
  }

  presetsOf(actor: ControlActor, wallId: string): PresetView[] {
    this.commits.entryFor(actor, wallId);
    return this.presetRows(wallId);
  }

  presetRows(wallId: string): PresetView[] {
    return [...this.presets.values()]
      .filter((p) => p.wallId === wallId)
      .map((p) => ({ id: p.id, wallId: p.wallId, kind: p.kind, name: p.name, priority: p.priority, createdBy: p.createdBy, createdAt: p.createdAt }));
  }

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
    const entry = this.commits.entryFor(actor, p.wallId);
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
      await this.store.walls.createPreset(row, this.commits.audit(actor, entry.doc, `wall.${kind}.save`, { id: row.id, name: row.name, priority }));
    } catch (err) {
      if (err instanceof StoreConflict) throw reasoned('GW_ERR_CONFLICT', 'nameTaken', { name: row.name }, err.message);
      throw err;
    }
    this.presets.set(row.id, row);
    this.events.emit('presets', p.wallId);
    return { id: row.id, kind, name: row.name, priority };
  }

  private presetOf(wallId: string, kind: 'preset' | 'plan', id: string, field: string): PresetRow {
    const row = this.presets.get(id);
    if (!row || row.wallId !== wallId || row.kind !== kind) throw new ValidationError([{ field, message: `the wall has no ${kind} ${id}` }]);
    return row;
  }

  private async deletePreset(actor: ControlActor, kind: 'preset' | 'plan', wallId: string, id: string) {
    const entry = this.commits.entryFor(actor, wallId);
    const row = this.presetOf(wallId, kind, id, kind === 'plan' ? 'planId' : 'presetId');
    if (kind === 'plan' && entry.doc.plan?.planId === id) throw reasoned('GW_ERR_CONFLICT', 'planInUse', {}, 'this plan is active; revert it first');
    await this.store.walls.deletePreset(id, this.commits.audit(actor, entry.doc, `wall.${kind}.delete`, { id, name: row.name }));
    this.presets.delete(id);
    this.events.emit('presets', wallId);
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
    for (const id of removedTours) after.push(() => this.tours.unschedule(id));
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
      if (cams) this.tours.adoptCameras(id, cams);
    }
    for (const [tileId, c] of Object.entries(saved.contents)) {
      if (c.kind === 'tour') saved.contents[tileId] = renamed.has(c.tourId) ? { kind: 'tour', tourId: renamed.get(c.tourId)! } : { kind: 'empty' };
    }
    this.tiles.buildTiles(doc, saved.regions, previous, version, at, by, saved.contents, locks === 'restore' ? saved.locks : locks === 'keep-own' ? keptLocks : {});
    after.push(() => {
      this.tours.dropUnusedTourCameras();
      for (const tour of Object.values(doc.tours)) this.tours.schedule(entry, tour);
    });
    return { regions: doc.regions, tiles: Object.values(doc.tiles), tours: Object.values(doc.tours), removedTours };
  }

  /** Cameras of a saved state's tours, resolved before the change so the state shows video at once. */
  private async prepareTours(state: SavedState): Promise<Map<string, TourCamera[]>> {
    const prepared = new Map<string, TourCamera[]>();
    for (const tour of state.tours) prepared.set(tour.id, this.tours.knownCameras(tour.id) ?? (await this.tours.resolveTourCameras(SYSTEM, tour.source)));
    return prepared;
  }

  /** The wall and one of its presets or plans, with the cameras its tours will show. */
  private async loadSaved(actor: ControlActor, wallId: string, kind: 'preset' | 'plan', id: string) {
    const entry = this.commits.entryFor(actor, wallId);
    const row = this.presetOf(wallId, kind, id, kind === 'plan' ? 'planId' : 'presetId');
    const state = JSON.parse(row.state) as SavedState;
    return { entry, row, state, cameras: await this.prepareTours(state) };
  }

  private async recall(actor: ControlActor, p: Payload<'preset.recall'>, ref: string | null) {
    const { entry, row, state, cameras } = await this.loadSaved(actor, p.wallId, 'preset', p.presetId);
    const result = await this.commits.commit(entry, actor, 'preset.recall', ref, { action: 'wall.preset.recall', detail: { id: row.id, name: row.name } }, (doc, version, at, after) => {
      const tiles = Object.values(doc.tiles);
      checkBase(entry, p.baseVersion, tiles);
      checkLocks(actor, tiles);
      return this.applyState(entry, state, version, at, actor.username, 'keep-own', cameras, after);
    }).finally(() => this.tours.dropUnusedTourCameras());
    return result;
  }

  private async activatePlan(actor: ControlActor, p: Payload<'plan.activate'>, ref: string | null) {
    const { entry, row, state, cameras } = await this.loadSaved(actor, p.wallId, 'plan', p.planId);
    let brokenLocks: string[] = [];
    const audit = () => ({ action: 'wall.plan.activate', detail: { id: row.id, name: row.name, priority: row.priority, brokenLocks } });
    const result = await this.commits.commit(entry, actor, 'plan.activate', ref, audit, (doc, version, at, after) => {
      const active = doc.plan;
      if (active && active.priority >= row.priority) {
        throw reasoned('GW_ERR_CONFLICT', 'planActive', { plan: active.name, priority: active.priority }, `plan "${active.name}" of priority ${active.priority} is active; a plan must have a higher priority to pre-empt it`);
      }
      // A plan pre-empting another keeps the state from before the first, which is what revert restores.
      if (!active) entry.planSaved = this.capture(doc);
      brokenLocks = Object.values(doc.tiles).filter((t) => t.lock).map((t) => `${t.id}:${t.lock!.username}`);
      const parts = this.applyState(entry, state, version, at, actor.username, 'clear', cameras, after);
      const plan: PlanState = { planId: row.id, name: row.name, priority: row.priority, activatedBy: actor.username, at };
      doc.plan = plan;
      return { ...parts, plan };
    }).finally(() => this.tours.dropUnusedTourCameras());
    return result;
  }

  private async revertPlan(actor: ControlActor, p: Payload<'plan.revert'>, ref: string | null) {
    const entry = this.commits.entryFor(actor, p.wallId);
    const cameras = entry.planSaved ? await this.prepareTours(entry.planSaved) : new Map<string, TourCamera[]>();
    let reverted: PlanState | null = null;
    const audit = () => ({ action: 'wall.plan.revert', detail: { id: reverted!.planId, name: reverted!.name } });
    const result = await this.commits.commit(entry, actor, 'plan.revert', ref, audit, (doc, version, at, after) => {
      if (!doc.plan || !entry.planSaved) throw reasoned('GW_ERR_CONFLICT', 'noPlan', {}, 'no emergency plan is active on this wall');
      reverted = doc.plan;
      const parts = this.applyState(entry, entry.planSaved, version, at, actor.username, 'restore', cameras, after);
      entry.planSaved = null;
      doc.plan = null;
      return { ...parts, plan: null };
    }).finally(() => this.tours.dropUnusedTourCameras());
    return result;
  }
}

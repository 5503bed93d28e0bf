import type { EventEmitter } from 'node:events';
import { notFound } from '../../errors.js';
import { AcceptedWork } from '../../lib/accepted-work.js';
import type { Registry } from '../../registry/service.js';
import { StoreConflict, type AuditEntry, type Store, type TileRows } from '../../store/types.js';
import type { Tile, WallDelta, WallView } from '../model.js';
import { conflict, parseWall, withoutGeometry, type AuditSpec, type ControlActor, type DeltaParts, type Mutation, type WallEntry, type WallEvents } from './state.js';

/**
 * A change tried on the wall as this node knew it, then on the wall reloaded after each conflict. Every
 * conflict means another node's change was written, so the cluster makes progress; this bounds how long
 * one change may lose to a burst on other nodes before its sender hears so.
 */
const MAX_ATTEMPTS = 6;

/**
 * The commit queue: the walls in memory, and the one way a wall changes. A change runs in its wall's
 * queue, is written with its audit entry in one transaction, and only then is acknowledged and emitted.
 * Closing refuses new work and waits until every change already accepted is written.
 */
export class WallCommits {
  readonly walls = new Map<string, WallEntry>();
  private readonly work = new AcceptedWork();
  /**
   * Cluster mode: reloads a wall another node changed (the store refused our version as taken);
   * false when the wall is gone. Without it a conflict is an error, as on one node nothing else writes.
   */
  reloadOnConflict: ((entry: WallEntry) => Promise<boolean>) | null = null;

  constructor(
    private readonly store: Store,
    private readonly registry: Registry,
    private readonly events: EventEmitter<WallEvents>,
    private readonly clock: () => number,
  ) {}

  get isClosed(): boolean {
    return this.work.isClosed;
  }

  /** Runs one command unless the service is closing; close() waits for it to settle. */
  accept<T>(work: () => Promise<T>): Promise<T> {
    return this.work.accept(work);
  }

  /** Refuses new work, then resolves once every accepted command and queued change is written. */
  async drain(): Promise<void> {
    await this.work.drain();
    // Changes not started by a command (tour rotations already due) are in the queues only.
    await Promise.all([...this.walls.values()].map((e) => e.queue));
  }

  deptPath(departmentId: string): string {
    return this.registry.departments.get(departmentId)?.path ?? `/${departmentId}/`;
  }

  visible(actor: ControlActor, wall: WallView, ranges = this.registry.departments.rangesFor(actor.scopes)): boolean {
    return this.registry.departments.within(wall.departmentId, ranges);
  }

  /** The wall if the actor's departments include it; 404 alike for a missing one, so existence does not leak. */
  entryFor(actor: ControlActor, wallId: string): WallEntry {
    const entry = this.walls.get(wallId);
    if (!entry || !this.visible(actor, entry.doc)) throw notFound(`wall "${wallId}"`);
    return entry;
  }

  audit(actor: ControlActor, wall: WallView, action: string, detail: Record<string, unknown>): Omit<AuditEntry, 'seq'> {
    return { at: this.clock(), actor: actor.username, actorIp: actor.ip, action, target: wall.id, outcome: 'ok', detail, scopePath: this.deptPath(wall.departmentId) };
  }

  /** The wall without its tiles, which are stored one row each. */
  serialise(entry: WallEntry) {
    return JSON.stringify({ wall: { ...entry.doc, tiles: {} }, planSaved: entry.planSaved });
  }

  tileRows(tiles: Iterable<Tile>): TileRows {
    return new Map([...tiles].map((t) => [t.id, JSON.stringify(t)]));
  }

  /**
   * Runs `mutate` on the wall in its queue, writes the result durably with the audit entry, and
   * emits the delta. A throw anywhere, including from the store, leaves the wall as it was.
   */
  commit(
    entry: WallEntry,
    actor: ControlActor,
    cause: string,
    ref: string | null,
    /** What the audit log records; a function is called after `mutate`, for details only it finds out. */
    audit: AuditSpec | (() => AuditSpec | null) | null,
    mutate: Mutation,
  ): Promise<{ version: number }> {
    const run = async () => {
      for (let attempt = 1; ; attempt++) {
        try {
          return await this.attempt(entry, actor, cause, ref, audit, mutate);
        } catch (err) {
          // Another node wrote this version first: run the change again on the wall as it is now.
          if (!(err instanceof StoreConflict) || !this.reloadOnConflict) throw err;
          if (attempt >= MAX_ATTEMPTS) throw conflict(entry, `other nodes changed the wall ${MAX_ATTEMPTS} times while this change was tried`);
          if (!(await this.reloadOnConflict(entry))) throw notFound(`wall "${entry.doc.id}"`);
        }
      }
    };
    return this.enqueue(entry, run);
  }

  private async attempt(
    entry: WallEntry,
    actor: ControlActor,
    cause: string,
    ref: string | null,
    audit: AuditSpec | (() => AuditSpec | null) | null,
    mutate: Mutation,
  ): Promise<{ version: number }> {
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
    this.events.emit('delta', delta, JSON.stringify(delta));
    return { version };
  }

  /** Runs `work` after the wall's earlier changes, whether they succeeded or not. */
  enqueue<T>(entry: WallEntry, work: () => Promise<T>): Promise<T> {
    const result = entry.queue.then(work, work);
    entry.queue = result.catch(() => undefined);
    return result;
  }

  /** Puts the in-memory wall back to what was last written. */
  restore(entry: WallEntry) {
    Object.assign(entry, parseWall(entry.json, entry.tileJson));
  }
}

import type { EventEmitter } from 'node:events';
import { share, type PeerBus, type PeerLeader } from '../../lib/peers.js';
import type { Store, TileRows, WallRow } from '../../store/types.js';
import { applyDelta, type Tour, type WallDelta } from '../model.js';
import type { WallCommits } from './commits.js';
import type { WallPresets } from './presets.js';
import { SYSTEM, parseWall, type WallEntry, type WallEvents, type WallLog } from './state.js';
import type { WallTours } from './tours.js';


const TOPIC = {
  delta: 'walls.delta',
  /** A change too large for the bus: the others reload the wall. */
  stale: 'walls.stale',
  created: 'walls.created',
  removed: 'walls.removed',
  presets: 'walls.presets',
} as const;

/** Room for the bus's envelope around a delta's JSON. */
const ENVELOPE_BYTES = 1_024;

type StoredWall = WallRow & { tiles: TileRows };

/**
 * The walls across the nodes of a cluster. The database hands out versions (a save of version N fails
 * when another node wrote N first, and the change runs again on the reloaded wall); every change this
 * node commits is published, and a change another node published is applied here when it is exactly
 * the next version and emitted to this node's screens as it is, so every screen sees the same deltas.
 * Duplicates are dropped; a gap, or anything applyDelta cannot follow, reloads the wall from the store
 * and gives the screens a snapshot ('reset'). After a lost subscription ('resync': Redis restarted)
 * every wall is reloaded the same way, so nothing acknowledged (written to the database) is lost.
 * Tours rotate on the leader only; every node knows every tour's cameras, for the changes it commits.
 */
export class WallCluster {
  /** Set while emitting what came from another node, so it is not published back. */
  private fromPeer = false;
  private readonly adopting = new Set<string>();

  constructor(
    private readonly commits: WallCommits,
    private readonly tours: WallTours,
    private readonly presets: WallPresets,
    private readonly store: Store,
    private readonly events: EventEmitter<WallEvents>,
    private readonly log: WallLog,
    private readonly bus: PeerBus,
    private readonly leader: PeerLeader,
  ) {
    commits.reloadOnConflict = (entry) => this.reload(entry);
    tours.runsTimers = () => leader.isLeader;
    events.on('delta', (d, json) => {
      if (Buffer.byteLength(json) + ENVELOPE_BYTES > bus.maxMessageBytes) this.share(TOPIC.stale, { wallId: d.wallId, version: d.version });
      else this.share(TOPIC.delta, d);
    });
    events.on('created', (wallId) => this.share(TOPIC.created, { wallId }));
    events.on('removed', (wallId) => this.share(TOPIC.removed, { wallId }));
    events.on('presets', (wallId) => this.share(TOPIC.presets, { wallId }));
    bus.subscribe(TOPIC.delta, (m) => this.fromNode('delta', m, () => this.onDelta(m as WallDelta)));
    bus.subscribe(TOPIC.stale, (m) => this.fromNode('stale', m, () => this.onStale(m as { wallId: string; version: number })));
    bus.subscribe(TOPIC.created, (m) => this.fromNode('created', m, () => this.adopt((m as { wallId: string }).wallId)));
    bus.subscribe(TOPIC.removed, (m) => this.fromNode('removed', m, () => this.onRemoved((m as { wallId: string }).wallId)));
    bus.subscribe(TOPIC.presets, (m) => this.fromNode('presets', m, () => this.onPresets((m as { wallId: string }).wallId)));
    bus.on('resync', () => void this.resync().catch((err: Error) => this.log.error({ err: err.message }, 'walls: resync from the store failed')));
    leader.on('change', (leading) => {
      if (leading) this.lead();
      else this.tours.stopTimers();
    });
  }

  /** Every wall again from the store, its screens given a snapshot where it moved on. */
  async resync(): Promise<void> {
    const rows = await this.store.walls.all();
    const ids = new Set(rows.map((r) => r.id));
    await Promise.all([
      ...rows.map((row) => {
        const entry = this.commits.walls.get(row.id);
        if (!entry) return this.add(row);
        return this.commits.enqueue(entry, async () => {
          if (this.commits.walls.get(row.id) === entry && row.version > entry.doc.version) await this.take(entry, row, null);
        });
      }),
      ...[...this.commits.walls.values()].filter((e) => !ids.has(e.doc.id)).map((entry) => this.commits.enqueue(entry, async () => this.drop(entry))),
    ]);
    const presets = await this.store.walls.presets();
    this.presets.replace(presets);
    this.asPeer(() => {
      for (const wallId of this.commits.walls.keys()) this.events.emit('presets', wallId);
    });
  }

  private share(topic: string, message: unknown) {
    if (!this.fromPeer) share(this.bus, topic, message, this.log);
  }

  private asPeer(emit: () => void) {
    this.fromPeer = true;
    try {
      emit();
    } finally {
      this.fromPeer = false;
    }
  }

  /** Runs a message's work if it names a wall; another node's message is trusted but still checked for shape. */
  private fromNode(what: string, m: unknown, work: () => Promise<void>) {
    const wallId = (m as { wallId?: unknown } | null)?.wallId;
    if (typeof wallId !== 'string' || (what === 'delta' && typeof (m as { version?: unknown }).version !== 'number')) {
      this.log.warn({ what }, 'walls: malformed message from another node dropped');
      return;
    }
    work().catch((err: Error) => this.log.error({ wall: wallId, what, err: err.message }, 'walls: change from another node not applied'));
  }

  private async onDelta(d: WallDelta): Promise<void> {
    const entry = this.commits.walls.get(d.wallId);
    // A wall created elsewhere whose news has not come yet: its row has this change already.
    if (!entry) return this.adopt(d.wallId);
    await this.commits.enqueue(entry, async () => {
      if (this.commits.walls.get(d.wallId) !== entry || d.version <= entry.doc.version) return;
      // A plan's delta does not carry the state its revert restores: that comes from the store.
      if (d.version === entry.doc.version + 1 && d.plan === undefined && applyDelta(entry.doc, d)) {
        entry.json = this.commits.serialise(entry);
        if (d.regions) entry.tileJson = this.commits.tileRows(Object.values(entry.doc.tiles));
        else for (const c of d.changes ?? []) entry.tileJson.set(c.id, JSON.stringify(entry.doc.tiles[c.id]));
        this.asPeer(() => this.events.emit('delta', d, JSON.stringify(d)));
        for (const id of d.removedTours ?? []) this.tours.forgetTour(id);
        await this.followTours(entry, d.tours ?? []);
        return;
      }
      await this.reload(entry, d);
    });
  }

  private async onStale({ wallId, version }: { wallId: string; version: number }): Promise<void> {
    const entry = this.commits.walls.get(wallId);
    if (!entry) return this.adopt(wallId);
    await this.commits.enqueue(entry, async () => {
      if (this.commits.walls.get(wallId) === entry && version > entry.doc.version) await this.reload(entry);
    });
  }

  private async onRemoved(wallId: string): Promise<void> {
    const entry = this.commits.walls.get(wallId);
    if (entry) await this.commits.enqueue(entry, async () => this.drop(entry));
  }

  private async onPresets(wallId: string): Promise<void> {
    this.presets.replace(await this.store.walls.presets(), wallId);
    this.asPeer(() => this.events.emit('presets', wallId));
  }

  /**
   * The wall as stored now (run in its queue). `d`, the delta that showed this node was behind, goes to
   * the screens as it is when it brought the wall exactly one version on; anything else is a snapshot.
   * False when the wall is gone.
   */
  private async reload(entry: WallEntry, d?: WallDelta): Promise<boolean> {
    const row = await this.store.walls.get(entry.doc.id);
    if (!row) {
      this.drop(entry);
      return false;
    }
    if (row.version > entry.doc.version) await this.take(entry, row, d ?? null);
    return true;
  }

  private async take(entry: WallEntry, row: StoredWall, d: WallDelta | null) {
    const before = entry.doc.version;
    Object.assign(entry, parseWall(row.doc, row.tiles), { json: row.doc, tileJson: row.tiles });
    if (d && d.version === row.version && before === row.version - 1) this.asPeer(() => this.events.emit('delta', d, JSON.stringify(d)));
    else this.events.emit('reset', row.id);
    this.tours.dropUnusedTourCameras();
    await this.followTours(entry, Object.values(entry.doc.tours));
  }

  /** A wall this node has not seen (created on another node), from the store. */
  private async adopt(wallId: string): Promise<void> {
    if (this.commits.walls.has(wallId) || this.adopting.has(wallId)) return;
    this.adopting.add(wallId);
    try {
      const row = await this.store.walls.get(wallId);
      if (row) await this.add(row);
    } finally {
      this.adopting.delete(wallId);
    }
  }

  private async add(row: StoredWall) {
    if (this.commits.walls.has(row.id)) return;
    const entry: WallEntry = { ...parseWall(row.doc, row.tiles), json: row.doc, tileJson: row.tiles, queue: Promise.resolve() };
    this.commits.walls.set(row.id, entry);
    this.asPeer(() => this.events.emit('created', row.id));
    await this.commits.enqueue(entry, () => this.followTours(entry, Object.values(entry.doc.tours)));
  }

  private drop(entry: WallEntry) {
    const wallId = entry.doc.id;
    if (this.commits.walls.get(wallId) !== entry) return;
    this.commits.walls.delete(wallId);
    this.tours.dropUnusedTourCameras();
    this.presets.forgetWall(wallId);
    this.asPeer(() => this.events.emit('removed', wallId));
  }

  /** Tours another node started or changed: their cameras resolved here too, and rotated here if this node leads. */
  private async followTours(entry: WallEntry, tours: Tour[]) {
    for (const { id } of tours) {
      const tour = entry.doc.tours[id];
      if (!tour) continue;
      if (!this.tours.knownCameras(id)) this.tours.adoptCameras(id, await this.tours.resolveTourCameras(SYSTEM, tour.source));
      if (this.leader.isLeader && entry.doc.tours[id] === tour) this.tours.schedule(entry, tour);
    }
  }

  /** This node leads now: every running tour goes on from where the clock says it should be. */
  private lead() {
    for (const entry of this.commits.walls.values()) {
      for (const tour of Object.values(entry.doc.tours)) {
        this.tours.resumeTour(entry, tour).catch((err: Error) => this.log.error({ wall: entry.doc.id, tour: tour.id, err: err.message }, 'tour did not resume'));
      }
    }
  }
}

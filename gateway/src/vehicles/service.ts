import { EventEmitter } from 'node:events';
import type { ImportInput, ImportMode } from '../registry/service.js';
import type { Snapshotter } from '../snapshots/types.js';
import type { AlarmSnapshotInfo, PathRange, Store } from '../store/types.js';
import { Alarms } from './alarms.js';
import {
  VehicleContext,
  type AlarmsOutcome,
  type LinkageTarget,
  type PositionsOutcome,
  type SourceDirectory,
  type VehicleActor,
  type VehicleEntry,
  type VehicleEvents,
  type VehicleFilters,
  type VehicleImportReport,
  type VehicleLog,
  type VehicleView,
  type VehiclesConfig,
} from './context.js';
import { AlarmEvidence } from './evidence.js';
import { Geofences } from './geofences.js';
import { Linkage } from './linkage.js';
import type { Alarm, Geofence, LinkageRule, Position, Severity } from './model.js';
import type { PeerBus, PeerLeader } from '../lib/peers.js';
import { VehicleCluster, type VehicleCache } from './cluster.js';
import { Positions } from './positions.js';
import { VehicleRegistry } from './registry.js';

export type {
  AlarmsOutcome,
  ImportIssue,
  LinkageTarget,
  PositionsOutcome,
  SourceDirectory,
  VehicleActor,
  VehicleEntry,
  VehicleFilters,
  VehicleImportReport,
  VehicleView,
  VehiclesConfig,
} from './context.js';

/**
 * The monitored vehicles: their registry (registry.ts), live positions and status (positions.ts),
 * geofences (geofences.ts), alarms with their debounce (alarms.ts), and the linkage rules that put
 * an alarm's cameras on a wall (linkage.ts). This class wires the sections, starts and stops them,
 * and is what the routes and the hub call: each command is refused once close() has begun.
 */
export class VehicleService extends EventEmitter<VehicleEvents> {
  private readonly ctx: VehicleContext;
  private readonly registry: VehicleRegistry;
  private readonly geofences: Geofences;
  private readonly linkage: Linkage;
  private readonly alarms: Alarms;
  private readonly positions: Positions;
  private sweepTimer: NodeJS.Timeout | null = null;
  private pruneTimer: NodeJS.Timeout | null = null;
  private closing: Promise<void> | null = null;
  private cluster: VehicleCluster | null = null;

  /**
   * `snapshotter` takes each alarm's picture when it opens (evidence.ts); without one alarms keep none.
   */
  constructor(
    store: Store,
    sources: SourceDirectory,
    linkage: LinkageTarget,
    config: VehiclesConfig,
    log: VehicleLog,
    clock: () => number = Date.now,
    snapshotter: Snapshotter | null = null,
  ) {
    super();
    this.ctx = new VehicleContext(store, sources, config, this, log, clock);
    this.registry = new VehicleRegistry(this.ctx, {
      changed: async (entry) => {
        this.geofences.recomputeFences(entry);
        await this.alarms.rehome(entry);
      },
      deleted: (actor, entry) => this.alarms.closeOfVehicle(actor, entry.vehicle.id),
    });
    this.geofences = new Geofences(this.ctx, this.registry);
    this.linkage = new Linkage(this.ctx, linkage, this.geofences, { all: () => this.alarms.all(), isOpen: (o) => this.alarms.isOpen(o) });
    const evidence = new AlarmEvidence(this.ctx, snapshotter, { openById: (id) => this.alarms.openById(id) });
    this.alarms = new Alarms(this.ctx, this.registry, this.linkage, evidence);
    this.positions = new Positions(this.ctx, this.registry, this.geofences, this.alarms);
  }

  /** Cluster mode: positions, alarms and edits reach the other nodes, and the cluster-wide jobs run on the leader only. */
  joinCluster(bus: PeerBus, leader: PeerLeader): void {
    this.cluster = new VehicleCluster(this.ctx, this.registry, this.geofences, this.linkage, this.alarms, bus, leader);
  }

  /** Jobs that must run once in the cluster (pruning, closing cleared alarms): here unless another node leads. */
  private get runsClusterJobs(): boolean {
    return this.cluster?.leader.isLeader ?? true;
  }

  /** Tells the other nodes to reload a cache once its change here is written. */
  private async edited<T>(cache: VehicleCache, work: () => Promise<T>): Promise<T> {
    const result = await this.ctx.accept(work);
    this.cluster?.changed(cache);
    return result;
  }

  async init(): Promise<void> {
    await this.registry.load();
    await this.geofences.load();
    await this.linkage.load();
    for (const entry of this.registry.entries()) this.geofences.recomputeFences(entry);
    await this.alarms.load();
    const sweepMs = Math.min(5_000, (this.ctx.config.offlineAfterSec * 1000) / 4);
    this.sweepTimer = setInterval(() => this.sweep(), sweepMs);
    this.sweepTimer.unref();
    this.pruneTimer = setInterval(() => {
      if (this.runsClusterJobs) void this.positions.prune();
    }, 10 * 60_000);
    this.pruneTimer.unref();
  }

  /**
   * Stops the timers and refuses new commands (GW_ERR_UNAVAILABLE), then resolves once every
   * command already accepted and every alarm write is done: the store may close after it.
   */
  close(): Promise<void> {
    return (this.closing ??= (() => {
      if (this.sweepTimer) clearInterval(this.sweepTimer);
      if (this.pruneTimer) clearInterval(this.pruneTimer);
      this.alarms.close();
      return this.ctx.drain().finally(() => this.cluster?.close());
    })());
  }

  /** Vehicles go offline after vehicles.offlineAfterSec of silence; handled alarms that cleared close. */
  private sweep() {
    const now = this.ctx.clock();
    this.positions.markOffline(now);
    if (this.runsClusterJobs) this.alarms.closeCleared(now);
  }

  // ---- registry ------------------------------------------------------------------------------

  get size(): number {
    return this.registry.size;
  }

  view(entry: VehicleEntry): VehicleView {
    return this.registry.view(entry);
  }

  entry(actor: VehicleActor, id: string): VehicleEntry {
    return this.registry.entry(actor, id);
  }

  entries(): Iterable<VehicleEntry> {
    return this.registry.entries();
  }

  /** The vehicle whose terminal has this SIM (leading zeros ignored), without a scope check: a JT/T 808 terminal finding its vehicle. */
  bySim(sim: string): VehicleEntry | undefined {
    return this.registry.bySim(sim);
  }

  /** Without a scope check (the terminal services). */
  get(id: string): VehicleEntry | undefined {
    return this.registry.get(id);
  }

  /** Its terminal spoke (a heartbeat): the vehicle is online, with nothing written. */
  heard(id: string): void {
    const entry = this.registry.get(id);
    if (entry && !this.ctx.isClosed) {
      this.registry.heard(entry, this.ctx.clock());
      this.cluster?.heard(entry);
    }
  }

  list(actor: VehicleActor, f: VehicleFilters): { items: VehicleEntry[]; nextCursor: string | null } {
    return this.registry.list(actor, f);
  }

  create(actor: VehicleActor, raw: Record<string, unknown>): Promise<VehicleEntry> {
    return this.edited('vehicles', () => this.registry.create(actor, raw));
  }

  update(actor: VehicleActor, id: string, raw: Record<string, unknown>, version: number, merge: boolean): Promise<VehicleEntry> {
    return this.edited('vehicles', () => this.registry.update(actor, id, raw, version, merge));
  }

  delete(actor: VehicleActor, id: string, version: number | undefined): Promise<void> {
    return this.edited('vehicles', () => this.registry.delete(actor, id, version));
  }

  importVehicles(actor: VehicleActor, input: AsyncIterable<ImportInput>, mode: ImportMode, maxRows: number): Promise<VehicleImportReport> {
    return this.edited('vehicles', () => this.registry.importVehicles(actor, input, mode, maxRows));
  }

  // ---- positions and geofences ---------------------------------------------------------------

  reportPositions(actor: VehicleActor, items: unknown[]): Promise<PositionsOutcome> {
    return this.ctx.accept(() => this.positions.reportPositions(actor, items));
  }

  track(actor: VehicleActor, id: string, from: number | undefined, to: number | undefined): Promise<Position[]> {
    return this.positions.track(actor, id, from, to);
  }

  geofenceList(actor: VehicleActor): Geofence[] {
    return this.geofences.geofenceList(actor);
  }

  putGeofence(actor: VehicleActor, id: string | null, raw: unknown, version: number | null): Promise<Geofence> {
    return this.edited('geofences', () => this.geofences.putGeofence(actor, id, raw, version));
  }

  deleteGeofence(actor: VehicleActor, id: string): Promise<void> {
    return this.edited('geofences', () => this.geofences.deleteGeofence(actor, id));
  }

  // ---- linkage rules -------------------------------------------------------------------------

  ruleList(actor: VehicleActor): LinkageRule[] {
    return this.linkage.ruleList(actor);
  }

  putLinkageRule(actor: VehicleActor, id: string | null, raw: unknown, version: number | null): Promise<LinkageRule> {
    return this.edited('rules', () => this.linkage.putLinkageRule(actor, id, raw, version));
  }

  deleteLinkageRule(actor: VehicleActor, id: string): Promise<void> {
    return this.edited('rules', () => this.linkage.deleteLinkageRule(actor, id));
  }

  /** An operator took a pop-up off a wall: the alarm stays open, without it. */
  popupDismissed(popupId: string) {
    this.linkage.popupDismissed(popupId);
  }

  /** Is this pop-up one an open alarm still shows? (Startup reconciles the walls with it.) */
  hasPopup(popupId: string): boolean {
    return this.linkage.hasPopup(popupId);
  }

  // ---- alarms --------------------------------------------------------------------------------

  reportAlarms(actor: VehicleActor, items: unknown[]): Promise<AlarmsOutcome> {
    return this.ctx.accept(() => this.alarms.reportAlarms(actor, items));
  }

  acknowledge(actor: VehicleActor, id: string, note: string | undefined): Promise<Alarm> {
    return this.ctx.accept(() => this.alarms.acknowledge(actor, id, note));
  }

  closeAlarmById(actor: VehicleActor, id: string, note: string | undefined): Promise<Alarm> {
    return this.ctx.accept(() => this.alarms.closeAlarmById(actor, id, note));
  }

  openAlarms(actor: VehicleActor, minSeverity: Severity = 'info'): Alarm[] {
    return this.alarms.openAlarms(actor, minSeverity);
  }

  getAlarm(actor: VehicleActor, id: string): Promise<Alarm> {
    return this.alarms.getAlarm(actor, id);
  }

  /** The alarm's picture with its JPEG; GW_ERR_NOT_FOUND for an alarm the actor cannot see or one without a picture. */
  alarmSnapshot(actor: VehicleActor, id: string): Promise<AlarmSnapshotInfo & { jpeg: Buffer }> {
    return this.alarms.snapshot(actor, id);
  }

  listAlarms(
    actor: VehicleActor,
    q: { state?: Alarm['state'][]; vehicleId?: string; type?: string; since?: number; cursor?: string; limit: number },
  ): Promise<{ items: Alarm[]; nextCursor: string | null }> {
    return this.alarms.listAlarms(actor, q);
  }

  // ---- scope, for subscribers ----------------------------------------------------------------

  /** May this actor see this department? */
  sees(departmentId: string, ranges: PathRange[]): boolean {
    return this.ctx.tree.within(departmentId, ranges);
  }

  rangesOf(actor: VehicleActor): PathRange[] {
    return this.ctx.ranges(actor);
  }
}

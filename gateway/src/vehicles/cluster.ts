import { share, type PeerBus, type PeerLeader } from '../lib/peers.js';
import type { Alarms } from './alarms.js';
import type { AlarmChange, VehicleContext, VehicleEntry } from './context.js';
import type { Geofences } from './geofences.js';
import type { Linkage } from './linkage.js';
import type { Alarm, Position } from './model.js';
import type { VehicleRegistry } from './registry.js';

const TOPIC = {
  positions: 'vehicles.positions',
  alarm: 'vehicles.alarm',
  changed: 'vehicles.changed',
} as const;

/** A cache another node changed: this node reloads it from the store. */
export type VehicleCache = 'vehicles' | 'geofences' | 'rules';

/** One vehicle's news in a batch: when it was last heard, and its live position if that moved. */
interface VehicleNews {
  id: string;
  heardAt: number | null;
  position: Position | null;
}

/** A position item is about 150 bytes of JSON: this keeps a batch well under the bus's limit. */
const MAX_BATCH = 2_000;

/**
 * Vehicles across the nodes of a cluster. A report is written and checked (geofences, alarms) on the
 * node that received it; what its regulators see then goes to the others: the live positions of a
 * turn in one message (every report that landed in the same turn of the event loop), each alarm as
 * it was written, and a note that vehicles, geofences or linkage rules changed, on which the others
 * reload that cache from the store. An alarm's pop-up is a wall change, made once on the node that
 * got the alarm and shared by the walls. Pruning and the auto-close of cleared alarms run on the
 * leader only.
 */
export class VehicleCluster {
  private fromPeer = false;
  private readonly pending = new Map<string, VehicleNews>();
  private flushing: NodeJS.Immediate | null = null;

  constructor(
    private readonly ctx: VehicleContext,
    private readonly registry: VehicleRegistry,
    private readonly geofences: Geofences,
    private readonly linkage: Linkage,
    private readonly alarms: Alarms,
    private readonly bus: PeerBus,
    readonly leader: PeerLeader,
  ) {
    ctx.events.on('position', (entry) => this.queue(entry, true));
    ctx.events.on('alarm', (alarm, change) => {
      if (!this.fromPeer) share(bus, TOPIC.alarm, { alarm, change }, ctx.log);
    });
    bus.subscribe(TOPIC.positions, (m) => this.onPositions(m));
    bus.subscribe(TOPIC.alarm, (m) => this.onAlarm(m));
    bus.subscribe(TOPIC.changed, (m) => void this.onChanged(m));
    bus.on('resync', () => void this.resync());
  }

  /** Its terminal spoke without a position: the others keep it online too. */
  heard(entry: VehicleEntry) {
    this.queue(entry, false);
  }

  /** Vehicles, geofences or rules were changed here. */
  changed(cache: VehicleCache) {
    share(this.bus, TOPIC.changed, { cache }, this.ctx.log);
  }

  close() {
    if (this.flushing) clearImmediate(this.flushing);
    this.flush();
  }

  private queue(entry: VehicleEntry, moved: boolean) {
    if (this.fromPeer) return;
    const id = entry.vehicle.id;
    const before = this.pending.get(id);
    this.pending.set(id, { id, heardAt: entry.live.lastReportAt, position: moved ? { ...entry.live.position! } : (before?.position ?? null) });
    this.flushing ??= setImmediate(() => this.flush());
  }

  private flush() {
    this.flushing = null;
    const items = [...this.pending.values()];
    this.pending.clear();
    for (let i = 0; i < items.length; i += MAX_BATCH) share(this.bus, TOPIC.positions, { items: items.slice(i, i + MAX_BATCH) }, this.ctx.log);
  }

  private onPositions(m: unknown) {
    const items = (m as { items?: unknown } | null)?.items;
    if (!Array.isArray(items)) return this.ctx.log.warn({ topic: TOPIC.positions }, 'vehicles: malformed message from another node dropped');
    this.asPeer(() => {
      for (const item of items as VehicleNews[]) {
        const entry = typeof item?.id === 'string' ? this.registry.get(item.id) : undefined;
        if (!entry) continue;
        if (typeof item.heardAt === 'number' && item.heardAt > (entry.live.lastReportAt ?? 0)) this.registry.heard(entry, item.heardAt);
        const p = item.position;
        if (!p || typeof p.at !== 'number' || (entry.live.position && p.at <= entry.live.position.at)) continue;
        entry.live.position = { lat: p.lat, lon: p.lon, speed: p.speed, heading: p.heading, at: p.at };
        entry.live.moving = p.speed > this.ctx.config.movingAboveKmh;
        // Which fences it is in, for the next report this node gets; the crossing's alarm was raised where the report landed.
        this.geofences.recomputeFences(entry);
        this.ctx.events.emit('position', entry);
      }
    });
  }

  private onAlarm(m: unknown) {
    const { alarm, change } = (m ?? {}) as { alarm?: Alarm; change?: AlarmChange };
    if (typeof alarm?.id !== 'string' || !['raised', 'updated', 'acknowledged', 'closed'].includes(change as string)) {
      return this.ctx.log.warn({ topic: TOPIC.alarm }, 'vehicles: malformed message from another node dropped');
    }
    this.asPeer(() => this.alarms.adopt(alarm, change!));
  }

  private async onChanged(m: unknown) {
    const cache = (m as { cache?: unknown } | null)?.cache;
    try {
      if (cache === 'vehicles') await this.reloadVehicles();
      else if (cache === 'geofences') await this.geofences.reload();
      else if (cache === 'rules') await this.linkage.reload();
      else this.ctx.log.warn({ topic: TOPIC.changed }, 'vehicles: malformed message from another node dropped');
    } catch (err) {
      this.ctx.log.error({ cache, err: (err as Error).message }, 'vehicles: reload after another node changed them failed');
    }
  }

  private async reloadVehicles() {
    const gone = await this.registry.reload();
    for (const entry of this.registry.entries()) this.geofences.recomputeFences(entry);
    this.asPeer(() => {
      for (const entry of gone) this.ctx.events.emit('removed', entry);
    });
  }

  /** Redis came back: whatever was missed meanwhile comes from the store. */
  private async resync() {
    try {
      await this.reloadVehicles();
      await this.geofences.reload();
      await this.linkage.reload();
      const changes = await this.alarms.changesSince();
      this.asPeer(() => {
        for (const [alarm, change] of changes) this.alarms.adopt(alarm, change);
      });
    } catch (err) {
      this.ctx.log.error({ err: (err as Error).message }, 'vehicles: resync from the store failed');
    }
  }

  private asPeer(work: () => void) {
    this.fromPeer = true;
    try {
      work();
    } finally {
      this.fromPeer = false;
    }
  }
}

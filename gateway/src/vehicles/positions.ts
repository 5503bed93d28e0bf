import { ValidationError } from '../errors.js';
import type { PositionRow } from '../store/types.js';
import type { Alarms } from './alarms.js';
import type { Geofences } from './geofences.js';
import { POSITIONS_REPORT, positionItem, positionsReport } from './input.js';
import type { Position } from './model.js';
import type { VehicleRegistry } from './registry.js';
import type { PositionsOutcome, VehicleActor, VehicleContext, VehicleEntry, VehicleMessages } from './context.js';

/** The position messages of the control WebSocket: a feed's batches. */
export function positionMessages(positions: Pick<Positions, 'reportPositions'>): VehicleMessages {
  return {
    'positions.report': { permission: 'vehicles:feed', payload: POSITIONS_REPORT, handle: (actor, payload) => positions.reportPositions(actor, positionsReport.parse(payload).positions) },
  };
}

/**
 * Positions: each report goes into the track; the live position moves only for a newer, fresh one,
 * and a geofence it crosses raises its alarm. Vehicles silent for vehicles.offlineAfterSec go offline.
 */
export class Positions {
  constructor(
    private readonly ctx: VehicleContext,
    private readonly registry: VehicleRegistry,
    private readonly geofences: Geofences,
    private readonly alarms: Alarms,
  ) {}

  /**
   * Ingests a batch of positions: each goes into the track; the vehicle's live position moves only
   * for a report newer than the current one and not stale, so a terminal replaying what it stored
   * while out of coverage fills in its track without jumping the vehicle back on the map.
   */
  async reportPositions(actor: VehicleActor, items: unknown[]): Promise<PositionsOutcome> {
    const now = this.ctx.clock();
    const ranges = this.ctx.ranges(actor);
    const out: PositionsOutcome = { accepted: 0, outOfOrder: 0, stale: 0, rejected: [] };
    const rows: PositionRow[] = [];
    const fixes: { entry: VehicleEntry; row: PositionRow }[] = [];
    items.forEach((item, index) => {
      const issues = positionItem.issues(item);
      if (issues.length) return void out.rejected.push({ index, ...issues[0]! });
      const p = item as ReturnType<typeof positionItem.parse>;
      const entry = this.registry.byRef(actor, p, ranges);
      if (typeof entry === 'string') return void out.rejected.push({ index, field: p.vehicleId ? 'vehicleId' : 'plate', message: entry });
      const at = this.ctx.reportTime(p.at, now);
      if (typeof at === 'string') return void out.rejected.push({ index, field: 'at', message: at });
      const row = { vehicleId: entry.vehicle.id, at, lat: p.lat, lon: p.lon, speed: p.speed, heading: p.heading % 360 };
      rows.push(row);
      fixes.push({ entry, row });
    });
    // Written before anything is shown, so the map never holds a position the track lost.
    await this.ctx.store.vehicles.appendPositions(rows);
    out.accepted = rows.length;
    const alarmWrites: Promise<unknown>[] = [];
    // In report order, each fix against the one before it: a batch that enters and leaves a fence raises its alarm.
    for (const { entry, row } of fixes) {
      this.registry.heard(entry, now);
      const last = entry.live.position;
      if (last && row.at <= last.at) {
        out.outOfOrder++;
        continue;
      }
      if (now - row.at > this.ctx.config.staleAfterSec * 1000) {
        out.stale++;
        continue;
      }
      entry.live.position = { lat: row.lat, lon: row.lon, speed: row.speed, heading: row.heading, at: row.at };
      entry.live.moving = row.speed > this.ctx.config.movingAboveKmh;
      this.ctx.events.emit('position', entry);
      this.crossings(entry, now, alarmWrites);
    }
    await Promise.all(alarmWrites);
    return out;
  }

  private crossings(entry: VehicleEntry, now: number, writes: Promise<unknown>[]) {
    if (this.geofences.size === 0) return;
    const p = entry.live.position!;
    for (const g of this.geofences.fencesFor(entry)) {
      const inside = g.shape.contains(p.lon, p.lat);
      const was = entry.fences.has(g.fence.id);
      if (inside === was) continue;
      if (inside) entry.fences.add(g.fence.id);
      else entry.fences.delete(g.fence.id);
      const crossing = inside ? 'enter' : 'leave';
      for (const rule of g.fence.rules) {
        if (rule.forbid !== crossing || (rule.categories.length && !rule.categories.includes(entry.vehicle.category))) continue;
        const raised = this.alarms.raise(entry, { type: inside ? 'geofence-enter' : 'geofence-leave', severity: rule.severity, at: p.at, position: p, geofence: { id: g.fence.id, name: g.fence.name }, detail: '' }, now);
        writes.push(raised.write);
      }
    }
  }

  async track(actor: VehicleActor, id: string, from: number | undefined, to: number | undefined): Promise<Position[]> {
    const entry = this.registry.entry(actor, id);
    const now = this.ctx.clock();
    const start = from ?? now - this.ctx.config.trackWindowSec * 1000;
    const end = to ?? now + this.ctx.config.maxFutureSec * 1000;
    if (start > end) throw new ValidationError([{ field: 'from', message: 'must not be after to' }]);
    const points = await this.ctx.store.vehicles.track(entry.vehicle.id, start, end, this.ctx.config.trackMaxPoints);
    return points.map(({ lat, lon, speed, heading, at }) => ({ lat, lon, speed, heading, at }));
  }

  /** Vehicles go offline after vehicles.offlineAfterSec of silence. */
  markOffline(now: number) {
    const offlineBefore = now - this.ctx.config.offlineAfterSec * 1000;
    for (const entry of this.registry.entries()) {
      if (entry.live.status === 'online' && (entry.live.lastReportAt ?? 0) < offlineBefore) {
        entry.live.status = 'offline';
        entry.live.moving = false;
        this.ctx.events.emit('status', entry);
      }
    }
  }

  async prune() {
    try {
      const removed = await this.ctx.store.vehicles.prunePositions(this.ctx.clock() - this.ctx.config.trackWindowSec * 1000);
      if (removed) this.ctx.log.info({ removed }, 'old track points pruned');
    } catch (err) {
      this.ctx.log.error({ err: (err as Error).message }, 'track pruning failed');
    }
  }
}

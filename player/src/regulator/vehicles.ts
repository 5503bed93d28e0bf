/** Vehicles as the REST API returns them, fetched once per page and kept fresh by the position feed. */
import type { PositionUpdate, Vehicle, VehicleChannel, VehicleLive } from '../../../gateway/src/vehicles/model.js';
import { api } from '../lib/api.js';

export interface VehicleView extends Vehicle {
  departmentName: string;
  live: VehicleLive;
}

export interface VehiclePage {
  items: VehicleView[];
  nextCursor: string | null;
}

/**
 * Whether `a` is a later state of a vehicle than `b`: by its position's time, then by its last
 * report. A tie is not later: the state already held stays.
 */
export function isLater(a: VehicleLive, b: VehicleLive): boolean {
  const pa = a.position?.at ?? -Infinity;
  const pb = b.position?.at ?? -Infinity;
  if (pa !== pb) return pa > pb;
  return (a.lastReportAt ?? -Infinity) > (b.lastReportAt ?? -Infinity);
}

/**
 * The vehicles this page has read, by id. Alarm rows need a vehicle's channels, and several rows
 * name the same vehicle: one request each, shared.
 */
export class VehicleDirectory {
  private readonly known = new Map<string, VehicleView>();
  private readonly inFlight = new Map<string, Promise<VehicleView>>();

  /**
   * Keeps a vehicle as REST returned it. Its live state may be older than the feed's (the answer was
   * on its way while batches came in): the later of the two is kept.
   */
  remember(v: VehicleView): VehicleView {
    const held = this.known.get(v.id);
    const kept = held && !isLater(v.live, held.live) ? { ...v, live: held.live } : v;
    this.known.set(v.id, kept);
    return kept;
  }

  /** A vehicle the gateway no longer shows this user (deleted, or out of their departments). */
  forget(id: string): void {
    this.known.delete(id);
  }

  peek(id: string): VehicleView | undefined {
    return this.known.get(id);
  }

  /** The vehicle, from what is known or from the gateway (`fresh` always asks it). */
  get(id: string, fresh = false): Promise<VehicleView> {
    const have = this.known.get(id);
    if (have && !fresh) return Promise.resolve(have);
    let pending = this.inFlight.get(id);
    if (!pending) {
      pending = api<VehicleView>('GET', `/api/vehicles/${encodeURIComponent(id)}`).then(
        (v) => {
          this.inFlight.delete(id);
          return this.remember(v);
        },
        (err: unknown) => {
          this.inFlight.delete(id);
          throw err;
        },
      );
      this.inFlight.set(id, pending);
    }
    return pending;
  }

  /** Folds a live position into a known vehicle, so every panel reads the same state. */
  applyPosition(u: PositionUpdate): VehicleView | undefined {
    const v = this.known.get(u.id);
    if (!v) return undefined;
    const { lat, lon, speed, heading, at } = u;
    // A batch carries the latest state; an older one can only come from a reload racing the feed.
    if (v.live.position && v.live.position.at > at) return v;
    const lastReportAt = Math.max(v.live.lastReportAt ?? at, at);
    v.live = { ...v.live, position: { lat, lon, speed, heading, at }, status: u.status, moving: u.moving, lastReportAt };
    return v;
  }
}

/** Channels in the terminal's order, which is the order they go onto tiles. */
export const channelsInOrder = (channels: VehicleChannel[]) => [...channels].sort((a, b) => a.channel - b.channel);

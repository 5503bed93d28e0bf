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
 * The vehicles this page has read, by id. Alarm rows need a vehicle's channels, and several rows
 * name the same vehicle: one request each, shared.
 */
export class VehicleDirectory {
  private readonly known = new Map<string, VehicleView>();
  private readonly inFlight = new Map<string, Promise<VehicleView>>();

  remember(v: VehicleView): void {
    this.known.set(v.id, v);
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
          this.known.set(id, v);
          return v;
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
    v.live = { ...v.live, position: { lat, lon, speed, heading, at }, status: u.status, moving: u.moving };
    return v;
  }
}

/** Channels in the terminal's order, which is the order they go onto tiles. */
export const channelsInOrder = (channels: VehicleChannel[]) => [...channels].sort((a, b) => a.channel - b.channel);

/** The one-camera player page in its own window; one window per camera, so a second click brings it back. */
export function popOut(sourceId: string): void {
  const url = `/popout.html?camera=${encodeURIComponent(sourceId)}`;
  window.open(url, `wallgate-popout-${sourceId}`, 'popup=yes,width=960,height=600');
}

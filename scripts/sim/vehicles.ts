import { prng } from '../../gateway/src/registry/city.js';
import type { AlarmType, PositionReport, Severity, VehicleCategory } from '../../gateway/src/vehicles/model.js';

/**
 * Simulated vehicles driving loops in and around a city: coaches on longer intercity loops, tourist
 * buses between sights, dangerous-goods trucks between depots and the chemical park; some parked at
 * any time. Deterministic for a seed. It produces the reports a vehicle platform's feed would send.
 */

export interface SimFleetVehicle {
  id: string;
  plate: string;
  category: VehicleCategory;
}

export type { PositionReport } from '../../gateway/src/vehicles/model.js';

export interface AlarmReport {
  vehicleId: string;
  type: AlarmType;
  severity: Severity;
  state: 'raised' | 'cleared';
  at: number;
  lat: number;
  lon: number;
}

interface Moving {
  v: SimFleetVehicle;
  route: [lon: number, lat: number][];
  leg: number;
  /** Fraction of the current leg done. */
  along: number;
  speedKmh: number;
  parkedUntil: number;
  lon: number;
  lat: number;
  heading: number;
  /** Alarm conditions still on, and when they clear. */
  active: Map<AlarmType, number>;
  /** Flapping conditions that come back, and when. */
  returning: Map<AlarmType, number>;
}

const KM_PER_DEG_LAT = 111.32;
const ALARMS: Record<VehicleCategory, AlarmType[]> = {
  passenger: ['overspeed', 'fatigue-driving', 'distracted-driving', 'collision-warning', 'lane-departure', 'emergency-button', 'video-loss'],
  tourist: ['overspeed', 'fatigue-driving', 'distracted-driving', 'collision-warning', 'lane-departure', 'video-loss'],
  'dangerous-goods': ['overspeed', 'fatigue-driving', 'collision-warning', 'tank-pressure', 'tank-temperature', 'leak', 'emergency-button'],
};
const SEVERITY: Partial<Record<AlarmType, Severity>> = {
  'collision-warning': 'high',
  leak: 'critical',
  'emergency-button': 'critical',
  'tank-pressure': 'high',
  'lane-departure': 'low',
  'video-loss': 'low',
};

export class VehicleSimulator {
  private readonly moving: Moving[];
  private readonly rnd: () => number;
  private last: number | null = null;

  constructor(
    fleet: SimFleetVehicle[],
    private readonly centre: { lat: number; lon: number },
    seed = 1,
  ) {
    this.rnd = prng(seed);
    this.moving = fleet.map((v) => this.place(v));
  }

  get size() {
    return this.moving.length;
  }

  private place(v: SimFleetVehicle): Moving {
    const r = this.rnd;
    // Coaches range furthest (intercity); trucks run between the edge of town and the chemical park.
    const radius = v.category === 'passenger' ? 0.45 : v.category === 'tourist' ? 0.2 : 0.3;
    const points = 4 + Math.floor(r() * 5);
    const route: [number, number][] = [];
    for (let i = 0; i < points; i++) {
      const angle = (i / points) * 2 * Math.PI + r() * 0.8;
      const dist = radius * (0.2 + r() * 0.8);
      route.push([this.centre.lon + Math.cos(angle) * dist, this.centre.lat + Math.sin(angle) * dist * 0.8]);
    }
    const [lon, lat] = route[0]!;
    return { v, route, leg: 0, along: r(), speedKmh: 35 + r() * 50, parkedUntil: r() < 0.1 ? Number.MAX_SAFE_INTEGER : 0, lon, lat, heading: 0, active: new Map(), returning: new Map() };
  }

  /** Every vehicle's position at `now`, advanced along its route since the last call. */
  positions(now: number): PositionReport[] {
    const dtH = this.last === null ? 0 : (now - this.last) / 3_600_000;
    this.last = now;
    return this.moving.map((m) => {
      const parked = m.parkedUntil > now;
      if (!parked) this.advance(m, m.speedKmh * dtH);
      return { vehicleId: m.v.id, lat: round(m.lat), lon: round(m.lon), speed: parked ? 0 : Math.round(m.speedKmh * 10) / 10, heading: Math.round(m.heading) % 360, at: now };
    });
  }

  private advance(m: Moving, km: number) {
    while (km > 0) {
      const [ax, ay] = m.route[m.leg]!;
      const [bx, by] = m.route[(m.leg + 1) % m.route.length]!;
      const dx = (bx - ax) * KM_PER_DEG_LAT * Math.cos((ay * Math.PI) / 180);
      const dy = (by - ay) * KM_PER_DEG_LAT;
      const legKm = Math.max(0.001, Math.hypot(dx, dy));
      const left = legKm * (1 - m.along);
      const step = Math.min(km, left);
      m.along += step / legKm;
      km -= step;
      m.heading = ((Math.atan2(dx, dy) * 180) / Math.PI + 360) % 360;
      if (m.along >= 1 - 1e-9) {
        m.leg = (m.leg + 1) % m.route.length;
        m.along = 0;
      }
      const [cx, cy] = m.route[m.leg]!;
      const [nx, ny] = m.route[(m.leg + 1) % m.route.length]!;
      m.lon = cx + (nx - cx) * m.along;
      m.lat = cy + (ny - cy) * m.along;
    }
  }

  /**
   * Alarms at `perMinute` across the fleet (a Poisson process), each clearing 10 to 60 s later; one
   * in five flaps (clears and comes back within seconds), as real sensors do.
   */
  alarms(now: number, elapsedMs: number, perMinute: number): AlarmReport[] {
    const out: AlarmReport[] = [];
    for (const m of this.moving) {
      for (const [type, clearAt] of m.active) {
        if (clearAt > now) continue;
        m.active.delete(type);
        out.push(this.report(m, type, 'cleared', now));
        if (this.rnd() < 0.2) m.returning.set(type, now + 2_000 + this.rnd() * 5_000);
      }
      for (const [type, backAt] of m.returning) {
        if (backAt > now) continue;
        m.returning.delete(type);
        m.active.set(type, now + 5_000 + this.rnd() * 10_000);
        out.push(this.report(m, type, 'raised', now));
      }
    }
    let expected = (perMinute * elapsedMs) / 60_000;
    while (expected > 0 && this.moving.length) {
      if (this.rnd() >= Math.min(1, expected)) break;
      expected -= 1;
      const m = this.moving[Math.floor(this.rnd() * this.moving.length)]!;
      const kinds = ALARMS[m.v.category];
      const type = kinds[Math.floor(this.rnd() * kinds.length)]!;
      if (m.active.has(type) || m.returning.has(type)) continue;
      m.active.set(type, now + 10_000 + this.rnd() * 50_000);
      out.push(this.report(m, type, 'raised', now));
    }
    return out;
  }

  /** One alarm now on a given vehicle (the benchmark's probe). */
  alarmOn(vehicleId: string, type: AlarmType, severity: Severity, now: number): AlarmReport {
    const m = this.moving.find((x) => x.v.id === vehicleId);
    if (!m) throw new Error(`no simulated vehicle ${vehicleId}`);
    return { ...this.report(m, type, 'raised', now), severity };
  }

  private report(m: Moving, type: AlarmType, state: 'raised' | 'cleared', now: number): AlarmReport {
    return { vehicleId: m.v.id, type, severity: SEVERITY[type] ?? 'medium', state, at: now, lat: round(m.lat), lon: round(m.lon) };
  }
}

const round = (deg: number) => Math.round(deg * 1e6) / 1e6;

/** Splits reports into batches a control message can carry (control.maxMessageBytes is 64 KiB by default). */
export function batches<T>(items: T[], size = 400): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

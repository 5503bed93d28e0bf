/**
 * The JT/T 808 terminals' reports into the vehicles module, through the same calls the REST and
 * WebSocket feed use (so validation, debounce, geofences, linkage and subscriptions are the same):
 * positions in batches (one store write per jt808.positionFlushMs), alarms on their edges.
 */
import type { JtEdition } from './protocol/frame.js';
import type { ActiveSafetyAlarm, Location } from './protocol/location.js';
import type { AlarmsOutcome, PositionsOutcome, VehicleActor } from '../vehicles/context.js';
import { SYSTEM } from '../vehicles/context.js';
import type { AlarmType, PositionReport, Severity } from '../vehicles/model.js';

/** What the feed needs of the vehicle service. */
export interface JtFeedTarget {
  reportPositions(actor: VehicleActor, items: unknown[]): Promise<PositionsOutcome>;
  reportAlarms(actor: VehicleActor, items: unknown[]): Promise<AlarmsOutcome>;
  heard(vehicleId: string): void;
}

export interface JtFeedOptions {
  vehicles: JtFeedTarget;
  /** jt808.positionFlushMs */
  flushMs: number;
  log: { warn(o: object, m: string): void };
  clock?: () => number;
}

/** The alarm bits of 0x0200 (jt808.md §3.6.1) that are conditions a regulator handles; the pre-warnings and platform-side area bits are not. */
const ALARM_BITS: readonly { bit: number; type: AlarmType; severity: Severity; only2019?: true }[] = [
  { bit: 0, type: 'emergency-button', severity: 'critical' },
  { bit: 1, type: 'overspeed', severity: 'medium' },
  { bit: 2, type: 'fatigue-driving', severity: 'medium' },
  { bit: 3, type: 'dangerous-driving', severity: 'medium' },
  { bit: 8, type: 'power-failure', severity: 'medium' },
  { bit: 16, type: 'tyre-pressure', severity: 'medium', only2019: true },
  { bit: 17, type: 'blind-spot', severity: 'medium', only2019: true },
  { bit: 29, type: 'collision-warning', severity: 'high' },
  { bit: 30, type: 'rollover', severity: 'high' },
];
const BITS_MASK = ALARM_BITS.reduce((m, b) => m | (1 << b.bit), 0) >>> 0;

/** 0x14 video alarm bits (jt1078.md §5); bit 5 (abnormal driving) is read with 0x18. */
const VIDEO_BITS: readonly { bit: number; type: AlarmType; severity: Severity }[] = [
  { bit: 0, type: 'video-loss', severity: 'low' },
  { bit: 1, type: 'video-occluded', severity: 'low' },
  { bit: 2, type: 'storage-fault', severity: 'low' },
];
/** 0x18 abnormal-driving type bits. */
const ABNORMAL_BITS: readonly { bit: number; type: AlarmType }[] = [
  { bit: 0, type: 'fatigue-driving' },
  { bit: 1, type: 'phone-use' },
  { bit: 2, type: 'smoking' },
];

/** ADAS (0x64) types; 0x10/0x11 are snapshot events, not alarms. Yue adds 0x12 and 0x13. */
const ADAS_TYPES: Record<number, AlarmType> = {
  0x01: 'collision-warning',
  0x02: 'lane-departure',
  0x03: 'following-too-close',
  0x04: 'pedestrian-collision',
  0x05: 'frequent-lane-change',
  0x06: 'road-sign-violation',
  0x07: 'obstacle',
};
const ADAS_YUE: Record<number, AlarmType> = { ...ADAS_TYPES, 0x12: 'illegal-lane-change', 0x13: 'pedestrian-collision' };
/** DSM (0x65) types: Su's 06–0F are custom; Yue gives some of them meanings. */
const DSM_SU: Record<number, AlarmType> = { 0x01: 'fatigue-driving', 0x02: 'phone-use', 0x03: 'smoking', 0x04: 'distracted-driving', 0x05: 'driver-abnormal' };
const DSM_YUE: Record<number, AlarmType> = {
  ...DSM_SU,
  0x06: 'camera-blocked',
  0x08: 'fatigue-driving',
  0x0a: 'seatbelt',
  0x0b: 'camera-blocked',
  0x0c: 'hands-off-wheel',
  0x0d: 'phone-use',
};

const FLAG_END = 2;
/** Tyre alarm bits of 0x66, without bit 0 (a periodic report, not an alarm). */
const TYRE_ALARM_BITS = 0xfe;

const levelSeverity = (level: number): Severity => (level >= 2 ? 'high' : 'medium');
const hex = (n: number) => `0x${n.toString(16).padStart(2, '0')}`;

/** What a vehicle's terminal last reported as held, and the active-safety alarms started and not yet ended. */
interface EdgeState {
  held: Map<AlarmType, Severity>;
  started: Set<AlarmType>;
  /** The alarm id of the last start of each item (0x64..0x67): a terminal repeating an unanswered report raises nothing new. */
  lastStart: [number, number, number, number];
}

interface AlarmItem {
  vehicleId: string;
  type: AlarmType;
  severity?: Severity;
  state?: 'cleared';
  at: number;
  lat?: number;
  lon?: number;
  detail?: string;
}

const NO_HELD: ReadonlyMap<AlarmType, Severity> = new Map();

/**
 * Turns decoded 0x0200 reports into the vehicles module's positions and alarms. A held condition
 * (an alarm bit, a 0x14 video alarm) is raised when it appears and cleared when it goes; an
 * active-safety item (ADAS, DSM, BSD, TPMS) is raised on its start (flag 1, or 0 for one without
 * an end) and cleared on its end (flag 2). Alarms go out at once; positions wait for the batch.
 */
export class JtFeed {
  private positions: PositionReport[] = [];
  private alarms: AlarmItem[] = [];
  private readonly edges = new Map<string, EdgeState>();
  private positionTimer: NodeJS.Timeout | null = null;
  private alarmFlush: NodeJS.Immediate | null = null;
  private readonly writes = new Set<Promise<unknown>>();
  private closed = false;
  private readonly clock: () => number;
  readonly stats = { positions: 0, alarms: 0, rejected: 0, failed: 0 };

  constructor(private readonly opts: JtFeedOptions) {
    this.clock = opts.clock ?? Date.now;
  }

  /** A heartbeat or any other message: the vehicle is heard, nothing is written. */
  heard(vehicleId: string): void {
    this.opts.vehicles.heard(vehicleId);
  }

  /** One report of 0x0200 or of a 0x0704 batch, in the order the terminal sent them; the number of alarm changes it made. */
  location(vehicleId: string, l: Location, edition: JtEdition): number {
    if (this.closed) return 0;
    this.opts.vehicles.heard(vehicleId);
    const at = l.time > 0 ? l.time : this.clock();
    // No fix yet: 0,0 is in the Gulf of Guinea, not where the vehicle is.
    const fixed = l.lat !== 0 || l.lon !== 0;
    if (fixed && l.time > 0) {
      this.positions.push({ vehicleId, lat: l.lat, lon: l.lon, speed: l.speedKmh, heading: l.heading % 360, at });
      this.positionTimer ??= setTimeout(() => this.flushPositions(), this.opts.flushMs);
    }
    const before = this.alarms.length;
    this.alarmEdges(vehicleId, l, edition, at, fixed);
    return this.alarms.length - before;
  }

  private alarmEdges(vehicleId: string, l: Location, edition: JtEdition, at: number, fixed: boolean) {
    const x = l.extras;
    const state = this.edges.get(vehicleId);
    const quiet = (l.alarm & BITS_MASK) === 0 && !x.videoAlarm && !x.abnormalDriving?.types && !x.adas && !x.dsm && !x.bsd && !x.tpms;
    // Most reports carry no alarm from a vehicle that had none: nothing to compare or allocate.
    if (quiet && (!state || (state.held.size === 0 && state.started.size === 0))) return;
    const s = state ?? this.stateOf(vehicleId);
    const where = fixed ? { lat: l.lat, lon: l.lon } : {};
    const raise = (type: AlarmType, severity: Severity, detail: string) => this.queueAlarm({ vehicleId, type, severity, at, ...where, detail });
    const clear = (type: AlarmType) => this.queueAlarm({ vehicleId, type, state: 'cleared', at });

    const held = quiet ? NO_HELD : this.heldOf(l, edition);
    for (const [type, severity] of held) if (!s.held.has(type) && !s.started.has(type)) raise(type, severity, `JT/T 808 ${type}`);
    for (const type of s.held.keys()) if (!held.has(type) && !s.started.has(type)) clear(type);
    s.held = held === NO_HELD ? new Map() : (held as Map<AlarmType, Severity>);

    if (x.adas) this.safety(s, 0, x.adas.alarmId, x.adas.flag, (x.adas.identifier.form === 'yue' ? ADAS_YUE : ADAS_TYPES)[x.adas.type], levelSeverity(x.adas.level), () => safetyDetail('ADAS', x.adas!), raise, clear);
    if (x.dsm) this.safety(s, 1, x.dsm.alarmId, x.dsm.flag, (x.dsm.identifier.form === 'yue' ? DSM_YUE : DSM_SU)[x.dsm.type], levelSeverity(x.dsm.level), () => safetyDetail('DSM', x.dsm!), raise, clear);
    if (x.bsd) this.safety(s, 2, x.bsd.alarmId, x.bsd.flag, x.bsd.type >= 1 && x.bsd.type <= 3 ? 'blind-spot' : undefined, 'medium', () => `BSD type ${hex(x.bsd!.type)}`, raise, clear);
    if (x.tpms) {
      const alarming = x.tpms.tyres.filter((t) => t.types & TYRE_ALARM_BITS);
      const detail = () => `TPMS ${alarming.map((t) => `tyre ${t.position}: ${t.pressureKpa} kPa, ${t.temperatureC} °C`).join('; ')}`;
      this.safety(s, 3, x.tpms.alarmId, x.tpms.flag, alarming.length || x.tpms.flag === FLAG_END ? 'tyre-pressure' : undefined, 'medium', detail, raise, clear);
    }
  }

  private safety(
    s: EdgeState,
    item: 0 | 1 | 2 | 3,
    alarmId: number,
    flag: number,
    type: AlarmType | undefined,
    severity: Severity,
    detail: () => string,
    raise: (type: AlarmType, severity: Severity, detail: string) => void,
    clear: (type: AlarmType) => void,
  ) {
    if (!type) return;
    if (flag === FLAG_END) {
      s.started.delete(type);
      if (!s.held.has(type)) clear(type);
      return;
    }
    if (s.lastStart[item] === alarmId) return;
    s.lastStart[item] = alarmId;
    // Flag 0: an alarm without an end (a one-off event); it is raised and left for the regulator to close.
    if (flag === 1) s.started.add(type);
    raise(type, severity, detail());
  }

  private stateOf(vehicleId: string): EdgeState {
    const s: EdgeState = { held: new Map(), started: new Set(), lastStart: [-1, -1, -1, -1] };
    this.edges.set(vehicleId, s);
    return s;
  }

  private heldOf(l: Location, edition: JtEdition): Map<AlarmType, Severity> {
    const held = new Map<AlarmType, Severity>();
    for (const b of ALARM_BITS) if (l.alarm & (1 << b.bit) && (!b.only2019 || edition === '2019')) held.set(b.type, b.severity);
    const video = l.extras.videoAlarm ?? 0;
    for (const b of VIDEO_BITS) if (video & (1 << b.bit)) held.set(b.type, b.severity);
    const abnormal = l.extras.abnormalDriving?.types ?? 0;
    for (const b of ABNORMAL_BITS) if (abnormal & (1 << b.bit)) held.set(b.type, 'medium');
    if (video & (1 << 5) && !(abnormal & 0b111)) held.set('driver-abnormal', 'medium');
    return held;
  }

  private queueAlarm(item: AlarmItem) {
    this.alarms.push(item);
    // An alarm is what a regulator waits for: sent on the next turn, with whatever else this read brought.
    this.alarmFlush ??= setImmediate(() => this.flushAlarms());
  }

  private flushAlarms() {
    this.alarmFlush = null;
    if (this.alarms.length === 0) return;
    const items = this.alarms;
    this.alarms = [];
    this.stats.alarms += items.length;
    this.track(this.opts.vehicles.reportAlarms(SYSTEM, items), items.length, 'alarms');
  }

  private flushPositions() {
    this.positionTimer = null;
    if (this.positions.length === 0) return;
    const items = this.positions;
    this.positions = [];
    this.stats.positions += items.length;
    this.track(this.opts.vehicles.reportPositions(SYSTEM, items), items.length, 'positions');
  }

  private track(p: Promise<PositionsOutcome | AlarmsOutcome>, n: number, what: string) {
    const w = p.then(
      (out) => {
        if (out.rejected.length) {
          this.stats.rejected += out.rejected.length;
          this.opts.log.warn({ rejected: out.rejected.length, first: out.rejected[0] }, `JT/T 808 ${what} refused by the vehicles module`);
        }
      },
      (err: Error) => {
        this.stats.failed += n;
        this.opts.log.warn({ err: err.message, items: n }, `JT/T 808 ${what} not taken`);
      },
    );
    this.writes.add(w);
    void w.finally(() => this.writes.delete(w));
  }

  /** Sends what is queued now (tests, and close). */
  async flush(): Promise<void> {
    if (this.positionTimer) clearTimeout(this.positionTimer);
    if (this.alarmFlush) clearImmediate(this.alarmFlush);
    this.flushPositions();
    this.flushAlarms();
    await Promise.all([...this.writes]);
  }

  /** Sends what is queued and waits for it; later reports are dropped. Before the vehicle service closes. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.flush();
  }
}

function safetyDetail(kind: 'ADAS' | 'DSM', a: ActiveSafetyAlarm): string {
  const parts = [`${kind} type ${hex(a.type)} level ${a.level}`, `${a.speedKmh} km/h`];
  if (a.frontSpeedKmh) parts.push(`vehicle ahead ${a.frontSpeedKmh} km/h`);
  if (a.distance) parts.push(`${(a.distance / 10).toFixed(1)} s ahead`);
  if (a.fatigueLevel) parts.push(`fatigue level ${a.fatigueLevel}`);
  return parts.join(', ');
}

import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { Config } from '../config/schema.js';
import { GatewayError, ValidationError, notFound, type FieldIssue } from '../errors.js';
import type { DepartmentTree } from '../registry/departments.js';
import type { Actor, ImportInput, ImportMode } from '../registry/service.js';
import { StoreConflict, type AlarmRow, type AuditEntry, type PathRange, type PositionRow, type Role, type RuleRow, type Store, type VehicleRow } from '../store/types.js';
import { CompiledShape, inBbox, type Bbox } from './geo.js';
import {
  alarmItem,
  geofenceInput,
  linkageInput,
  positionItem,
  timeOf,
  validateVehicleInput,
  type AlarmReportItem,
  type GeofenceInput,
  type LinkageInput,
  type VehicleDraft,
} from './input.js';
import {
  SEVERITIES,
  type Alarm,
  type AlarmLinkage,
  type AlarmType,
  type Geofence,
  type LinkageRule,
  type Position,
  type Severity,
  type Vehicle,
  type VehicleCategory,
  type VehicleLive,
} from './model.js';
import { normalisePlate } from './plate.js';

export type VehiclesConfig = Config['vehicles'];

/** Who is acting; the control plane's actor and the HTTP principal both fit. */
export interface VehicleActor extends Actor {
  roles: Role[];
}

/** What the registry offers the vehicles module: departments, and channel sources checked against the actor's scope. */
export interface SourceDirectory {
  readonly departments: DepartmentTree;
  /** Throws GW_ERR_NOT_FOUND for a source that is missing or outside the actor's scope. */
  getSource(actor: Actor, id: string): Promise<{ id: string }>;
}

/** The control plane as linkage sees it; app.ts wires the wall service behind it. */
export interface LinkageTarget {
  show(request: {
    id: string;
    wallId: string;
    label: string;
    priority: number;
    alarmId: string;
    vehicleId: string;
    tileIds: string[];
    cameraIds: string[];
    prewarmHoldMs: number;
  }): Promise<{ tiles: string[] } | null>;
  clear(popupId: string): Promise<boolean>;
  /** Throws when the wall is not the actor's or lacks a tile. */
  checkTarget(actor: VehicleActor, wallId: string, tileIds: string[]): void;
}

export interface VehicleEntry {
  vehicle: Vehicle;
  live: VehicleLive;
  /** Geofences the vehicle is inside, by the last position. */
  fences: Set<string>;
}

export interface VehicleView extends Vehicle {
  departmentName: string;
  live: VehicleLive;
}

export interface VehicleFilters {
  departmentId?: string;
  category?: VehicleCategory;
  company?: string;
  status?: 'online' | 'offline';
  moving?: boolean;
  alarm?: 'open' | 'none';
  q?: string;
  bbox?: Bbox;
  cursor?: string;
  limit: number;
}

export interface ImportIssue extends FieldIssue {
  line: number;
  id?: string;
}

export interface VehicleImportReport {
  mode: ImportMode;
  applied: boolean;
  rows: number;
  created: number;
  updated: number;
  rejected: number;
  errors: ImportIssue[];
}

/** What a batch of positions did; every refused item is named by its index. */
export interface PositionsOutcome {
  accepted: number;
  /** Older than the vehicle's current position: kept in the track only. */
  outOfOrder: number;
  /** Older than vehicles.staleAfterSec when they arrived: kept in the track only. */
  stale: number;
  rejected: { index: number; field: string; message: string }[];
}

export interface AlarmsOutcome {
  raised: string[];
  /** Repeats folded into an open alarm of the same vehicle and type. */
  repeated: string[];
  cleared: string[];
  rejected: { index: number; field: string; message: string }[];
}

type Change = 'raised' | 'updated' | 'acknowledged' | 'closed';

interface OpenAlarm {
  alarm: Alarm;
  /** Set while a closure is being written, so a second one is refused rather than audited twice. */
  closing: boolean;
  /** Pop-ups being put up; closing waits for them so none is left behind. */
  linking: Promise<unknown>;
  timers: NodeJS.Timeout[];
}

const severityRank = (s: Severity) => SEVERITIES.indexOf(s);
const maxSeverity = (a: Severity, b: Severity) => (severityRank(a) >= severityRank(b) ? a : b);
const shortId = (prefix: string) => `${prefix}-${randomBytes(6).toString('hex')}`;
const SYSTEM: VehicleActor = { id: 'system', username: 'system', ip: '-', scopes: [], roles: [] };

const ALARM_LABELS: Record<AlarmType, string> = {
  overspeed: '超速 overspeed',
  'fatigue-driving': '疲劳驾驶 fatigue',
  'distracted-driving': '分神驾驶 distracted',
  'collision-warning': '碰撞预警 collision warning',
  'lane-departure': '车道偏离 lane departure',
  'tank-pressure': '罐体压力 tank pressure',
  'tank-temperature': '罐体温度 tank temperature',
  leak: '泄漏 leak',
  'emergency-button': '紧急报警 emergency button',
  'geofence-enter': '驶入禁区 geofence entered',
  'geofence-leave': '驶离区域 geofence left',
  'video-loss': '视频丢失 video loss',
};

function encodeCursor(plate: string): string {
  return Buffer.from(plate).toString('base64url');
}

/**
 * The monitored vehicles: their registry (in SQLite, held in memory: a fleet is thousands, not
 * millions), live positions and status, alarms with their debounce, geofences, and the linkage
 * rules that put an alarm's cameras on a wall.
 */
export class VehicleService extends EventEmitter<{
  position: [VehicleEntry];
  status: [VehicleEntry];
  alarm: [Alarm, Change];
  removed: [VehicleEntry];
}> {
  private readonly byId = new Map<string, VehicleEntry>();
  private readonly byPlate = new Map<string, VehicleEntry>();
  /** Sorted by plate, for paging; rebuilt on registry changes. */
  private sorted: VehicleEntry[] = [];
  private readonly open = new Map<string, OpenAlarm>();
  /** vehicle|type|geofence → the open alarm it folds into. */
  private readonly openByKey = new Map<string, OpenAlarm>();
  private geofences = new Map<string, { fence: Geofence; shape: CompiledShape }>();
  private rules = new Map<string, LinkageRule>();
  private sweepTimer: NodeJS.Timeout | null = null;
  private pruneTimer: NodeJS.Timeout | null = null;

  constructor(
    private readonly store: Store,
    private readonly sources: SourceDirectory,
    private readonly linkage: LinkageTarget,
    private readonly config: VehiclesConfig,
    private readonly log: { warn(o: object, m: string): void; error(o: object, m: string): void; info(o: object, m: string): void },
    private readonly clock: () => number = Date.now,
  ) {
    super();
  }

  private get tree() {
    return this.sources.departments;
  }

  async init(): Promise<void> {
    for (const row of await this.store.vehicles.all()) this.index(JSON.parse(row.doc) as Vehicle);
    this.resort();
    const now = this.clock();
    for (const p of await this.store.vehicles.latestPositions()) {
      const entry = this.byId.get(p.vehicleId);
      if (!entry) continue;
      // Offline until it reports again, so not known to be moving either.
      entry.live.position = { lat: p.lat, lon: p.lon, speed: p.speed, heading: p.heading, at: p.at };
    }
    for (const r of await this.store.rules.all('geofence')) this.setGeofence(JSON.parse(r.doc) as Geofence);
    for (const r of await this.store.rules.all('linkage')) this.rules.set(r.id, JSON.parse(r.doc) as LinkageRule);
    for (const entry of this.byId.values()) this.recomputeFences(entry);
    for (const row of await this.store.alarms.open()) {
      const alarm = JSON.parse(row.doc) as Alarm;
      const o: OpenAlarm = { alarm, closing: false, linking: Promise.resolve(), timers: [] };
      this.open.set(alarm.id, o);
      this.openByKey.set(this.alarmKey(alarm), o);
      const entry = this.byId.get(alarm.vehicleId);
      if (entry) entry.live.openAlarms++;
      for (const l of alarm.linkages) if (l.endedAt === null && l.until !== null) this.armHold(o, l, l.until - now);
    }
    // Alarms of a vehicle deleted by a run that stopped half-way close now.
    for (const o of [...this.open.values()]) {
      if (!this.byId.has(o.alarm.vehicleId)) await this.closeAlarm(o, SYSTEM, 'handled', 'vehicle deleted', this.audit(SYSTEM, 'alarm.close', o.alarm.id, o.alarm.departmentId, { reason: 'vehicle deleted' }));
    }
    const sweepMs = Math.min(5_000, (this.config.offlineAfterSec * 1000) / 4);
    this.sweepTimer = setInterval(() => this.sweep(), sweepMs);
    this.sweepTimer.unref();
    this.pruneTimer = setInterval(() => void this.prune(), 10 * 60_000);
    this.pruneTimer.unref();
  }

  close() {
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    if (this.pruneTimer) clearInterval(this.pruneTimer);
    for (const o of this.open.values()) o.timers.forEach(clearTimeout);
  }

  /** Is this pop-up one an open alarm still shows? (Startup reconciles the walls with it.) */
  hasPopup(popupId: string): boolean {
    for (const o of this.open.values()) if (o.alarm.linkages.some((l) => l.popupId === popupId && l.endedAt === null)) return true;
    return false;
  }

  // ---- scope ---------------------------------------------------------------------------------

  private ranges(actor: VehicleActor): PathRange[] {
    return this.tree.rangesFor(actor.scopes);
  }

  private visible(actor: VehicleActor, departmentId: string, ranges = this.ranges(actor)): boolean {
    return actor === SYSTEM || this.tree.within(departmentId, ranges);
  }

  private audit(actor: VehicleActor, action: string, target: string, departmentId: string | null, detail: Record<string, unknown>): Omit<AuditEntry, 'seq'> {
    const path = departmentId ? (this.tree.get(departmentId)?.path ?? null) : this.tree.commonPath(actor.scopes);
    return { at: this.clock(), actor: actor.username, actorIp: actor.ip, action, target, outcome: 'ok', detail, scopePath: path };
  }

  // ---- registry ------------------------------------------------------------------------------

  private index(vehicle: Vehicle) {
    const previous = this.byId.get(vehicle.id);
    if (previous) {
      this.byPlate.delete(previous.vehicle.plate);
      previous.vehicle = vehicle;
      this.byPlate.set(vehicle.plate, previous);
      return previous;
    }
    const entry: VehicleEntry = { vehicle, live: { position: null, status: 'offline', moving: false, lastReportAt: null, openAlarms: 0 }, fences: new Set() };
    this.byId.set(vehicle.id, entry);
    this.byPlate.set(vehicle.plate, entry);
    return entry;
  }

  private resort() {
    this.sorted = [...this.byId.values()].sort((a, b) => (a.vehicle.plate < b.vehicle.plate ? -1 : a.vehicle.plate > b.vehicle.plate ? 1 : 0));
  }

  view(entry: VehicleEntry): VehicleView {
    return { ...entry.vehicle, departmentName: this.tree.get(entry.vehicle.departmentId)?.name ?? entry.vehicle.departmentId, live: { ...entry.live } };
  }

  entry(actor: VehicleActor, id: string): VehicleEntry {
    const entry = this.byId.get(id);
    if (!entry || !this.visible(actor, entry.vehicle.departmentId)) throw notFound(`vehicle "${id}"`);
    return entry;
  }

  get size(): number {
    return this.byId.size;
  }

  list(actor: VehicleActor, f: VehicleFilters): { items: VehicleEntry[]; nextCursor: string | null } {
    let ranges = this.ranges(actor);
    if (f.departmentId) {
      if (!this.tree.get(f.departmentId) || !this.tree.within(f.departmentId, ranges)) throw notFound(`departmentId: department "${f.departmentId}"`);
      ranges = this.tree.narrow(ranges, f.departmentId);
    }
    let after = '';
    if (f.cursor) {
      after = Buffer.from(f.cursor, 'base64url').toString('utf8');
      if (!after) throw new GatewayError('GW_ERR_BAD_CURSOR', 'cursor: not a cursor this API returned');
    }
    const q = f.q ? normalisePlate(f.q) : '';
    const text = f.q?.trim().toLowerCase() ?? '';
    // Binary search to the cursor; plates are unique, so the order is total.
    let lo = 0;
    let hi = this.sorted.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.sorted[mid]!.vehicle.plate <= after) lo = mid + 1;
      else hi = mid;
    }
    const items: VehicleEntry[] = [];
    for (let i = after ? lo : 0; i < this.sorted.length; i++) {
      const e = this.sorted[i]!;
      const v = e.vehicle;
      if (f.category && v.category !== f.category) continue;
      if (f.company && v.company !== f.company) continue;
      if (f.status && e.live.status !== f.status) continue;
      if (f.moving !== undefined && e.live.moving !== f.moving) continue;
      if (f.alarm === 'open' && e.live.openAlarms === 0) continue;
      if (f.alarm === 'none' && e.live.openAlarms > 0) continue;
      if (text && !v.plate.includes(q) && !v.company.toLowerCase().includes(text) && !v.terminalId.toLowerCase().includes(text)) continue;
      if (f.bbox && !(e.live.position && inBbox(f.bbox, e.live.position.lon, e.live.position.lat))) continue;
      if (!this.tree.within(v.departmentId, ranges)) continue;
      if (items.length === f.limit) return { items, nextCursor: encodeCursor(items[items.length - 1]!.vehicle.plate) };
      items.push(e);
    }
    return { items, nextCursor: null };
  }

  /** Checks the draft's department and channel sources against the actor's scope. */
  private async checkDraft(actor: VehicleActor, draft: VehicleDraft, issues: FieldIssue[], ranges = this.ranges(actor)) {
    if (!this.tree.get(draft.departmentId) || !this.tree.within(draft.departmentId, ranges)) {
      issues.push({ field: 'departmentId', message: `unknown department "${draft.departmentId}"` });
    }
    for (const [i, c] of draft.channels.entries()) {
      try {
        await this.sources.getSource(actor, c.sourceId);
      } catch (err) {
        if ((err as GatewayError).code !== 'GW_ERR_NOT_FOUND') throw err;
        issues.push({ field: `channels[${i}].sourceId`, message: `no camera source "${c.sourceId}" in your scope` });
      }
    }
  }

  private toVehicle(draft: VehicleDraft, id: string, version: number, createdAt: number, now: number): Vehicle {
    const { id: _ignored, ...fields } = draft;
    return { id, ...fields, version, createdAt, updatedAt: now };
  }

  private row(v: Vehicle): VehicleRow {
    return { id: v.id, plate: v.plate, departmentId: v.departmentId, deptPath: this.tree.get(v.departmentId)!.path, version: v.version, doc: JSON.stringify(v), sourceIds: v.channels.map((c) => c.sourceId) };
  }

  private writeRefusal(result: Exclude<Awaited<ReturnType<Store['vehicles']['put']>>, 'ok'>, v: Vehicle): never {
    if (result === 'not-found') throw notFound(`vehicle "${v.id}"`);
    if (result === 'version-conflict') throw new GatewayError('GW_ERR_VERSION_CONFLICT', `vehicle "${v.id}" was changed by someone else`);
    if (result.conflict === 'id') throw new GatewayError('GW_ERR_CONFLICT', `id: vehicle "${v.id}" exists`);
    if (result.conflict === 'plate') throw new GatewayError('GW_ERR_CONFLICT', `plate: ${v.plate} is registered to another vehicle`);
    const i = v.channels.findIndex((c) => c.sourceId === result.value);
    throw new GatewayError('GW_ERR_CONFLICT', `channels[${i}].sourceId: source "${result.value}" is another vehicle's channel`);
  }

  async create(actor: VehicleActor, raw: Record<string, unknown>): Promise<VehicleEntry> {
    const checked = validateVehicleInput(raw, { requireId: false });
    if (checked.issues) throw new ValidationError(checked.issues);
    const issues: FieldIssue[] = [];
    await this.checkDraft(actor, checked.draft, issues);
    if (issues.length) throw new ValidationError(issues);
    const now = this.clock();
    const v = this.toVehicle(checked.draft, checked.draft.id ?? shortId('veh'), 1, now, now);
    const result = await this.store.vehicles.put(this.row(v), null, this.audit(actor, 'vehicle.create', v.id, v.departmentId, { plate: v.plate, category: v.category }));
    if (result !== 'ok') this.writeRefusal(result, v);
    const entry = this.index(v);
    this.resort();
    return entry;
  }

  async update(actor: VehicleActor, id: string, raw: Record<string, unknown>, version: number, merge: boolean): Promise<VehicleEntry> {
    const entry = this.entry(actor, id);
    if ('id' in raw && raw.id !== id) throw new ValidationError([{ field: 'id', message: 'cannot be changed' }]);
    const current = entry.vehicle;
    const base: Record<string, unknown> = merge
      ? {
          plate: current.plate,
          plateColor: current.plateColor,
          category: current.category,
          ...(current.cargo ? { hazardClass: current.cargo.hazardClass, unNumber: current.cargo.unNumber ?? undefined, cargo: current.cargo.description || undefined } : {}),
          company: current.company,
          departmentId: current.departmentId,
          terminalId: current.terminalId,
          sim: current.sim,
          channels: current.channels,
          tags: current.tags,
        }
      : {};
    // A patch to another category drops the cargo it no longer carries unless the patch gives it.
    if (merge && raw.category !== undefined && raw.category !== 'dangerous-goods') for (const k of ['hazardClass', 'unNumber', 'cargo']) if (!(k in raw)) delete base[k];
    const { id: _ignored, ...rest } = raw;
    const checked = validateVehicleInput({ ...base, ...rest }, { requireId: false });
    if (checked.issues) throw new ValidationError(checked.issues);
    const issues: FieldIssue[] = [];
    await this.checkDraft(actor, checked.draft, issues);
    if (issues.length) throw new ValidationError(issues);
    if (version !== current.version) throw new GatewayError('GW_ERR_VERSION_CONFLICT', `vehicle "${id}" was changed by someone else (now version ${current.version})`);
    const v = this.toVehicle(checked.draft, id, version + 1, current.createdAt, this.clock());
    const result = await this.store.vehicles.put(this.row(v), version, this.audit(actor, 'vehicle.update', id, v.departmentId, { fromVersion: version, fields: Object.keys(raw) }));
    if (result !== 'ok') this.writeRefusal(result, v);
    this.index(v);
    this.resort();
    this.recomputeFences(entry);
    await this.rehomeAlarms(entry);
    return entry;
  }

  /**
   * A vehicle moved to another department (or re-plated) takes its open alarms along, so they are
   * seen and handled by the department that now has it and no longer by the one it left.
   */
  private async rehomeAlarms(entry: VehicleEntry) {
    const v = entry.vehicle;
    const writes: Promise<unknown>[] = [];
    for (const o of this.open.values()) {
      const a = o.alarm;
      if (a.vehicleId !== v.id || (a.departmentId === v.departmentId && a.plate === v.plate && a.category === v.category)) continue;
      Object.assign(a, { departmentId: v.departmentId, plate: v.plate, category: v.category });
      writes.push(this.persist(a));
      this.emit('alarm', a, 'updated');
    }
    await Promise.all(writes);
  }

  async delete(actor: VehicleActor, id: string, version: number | undefined): Promise<void> {
    const entry = this.entry(actor, id);
    const result = await this.store.vehicles.delete(id, version, this.audit(actor, 'vehicle.delete', id, entry.vehicle.departmentId, { plate: entry.vehicle.plate }));
    if (result === 'version-conflict') throw new GatewayError('GW_ERR_VERSION_CONFLICT', `vehicle "${id}" was changed by someone else`);
    if (result === 'not-found') throw notFound(`vehicle "${id}"`);
    // Gone from memory at once, so no report lands on it while its alarms close.
    this.byId.delete(id);
    this.byPlate.delete(entry.vehicle.plate);
    this.resort();
    this.emit('removed', entry);
    // Its open alarms close with it: nobody could handle them any more. (A stop half-way is finished at the next start.)
    for (const o of [...this.open.values()]) {
      if (o.alarm.vehicleId === id) await this.closeAlarm(o, actor, 'handled', 'vehicle deleted', this.audit(actor, 'alarm.close', o.alarm.id, o.alarm.departmentId, { reason: 'vehicle deleted' }));
    }
  }

  async importVehicles(actor: VehicleActor, input: AsyncIterable<ImportInput>, mode: ImportMode, maxRows: number): Promise<VehicleImportReport> {
    const errors: ImportIssue[] = [];
    const accepted: { line: number; row: VehicleRow; expectedVersion: number | null; vehicle: Vehicle }[] = [];
    const ids = new Map<string, number>();
    const plates = new Map<string, number>();
    const sourcesSeen = new Map<string, number>();
    const ranges = this.ranges(actor);
    const now = this.clock();
    let rows = 0;
    for await (const row of input) {
      if (++rows > maxRows) throw new GatewayError('GW_ERR_PAYLOAD_TOO_LARGE', `import: more than ${maxRows} rows (vehicles.importMaxRows); split the file`);
      if ('error' in row) {
        errors.push({ line: row.line, field: '(row)', message: row.error });
        continue;
      }
      const rawId = typeof row.value.id === 'string' ? row.value.id : undefined;
      const checked = validateVehicleInput(row.value, { requireId: true });
      const issues: FieldIssue[] = checked.issues ? [...checked.issues] : [];
      if (checked.draft) {
        const d = checked.draft;
        const dupe = (seen: Map<string, number>, key: string, field: string, what: string) => {
          const first = seen.get(key);
          if (first !== undefined) issues.push({ field, message: `${what} also given at line ${first}` });
          else seen.set(key, row.line);
        };
        dupe(ids, d.id!, 'id', 'the same id is');
        dupe(plates, d.plate, 'plate', `${d.plate} is`);
        d.channels.forEach((c, i) => dupe(sourcesSeen, c.sourceId, `channels[${i}].sourceId`, `source "${c.sourceId}" is`));
        await this.checkDraft(actor, d, issues, ranges);
        const existing = this.byId.get(d.id!);
        if (existing && !this.tree.within(existing.vehicle.departmentId, ranges)) issues.push({ field: 'id', message: 'is already registered' });
        if (issues.length === 0) {
          const v = this.toVehicle(d, d.id!, (existing?.vehicle.version ?? 0) + 1, existing?.vehicle.createdAt ?? now, now);
          accepted.push({ line: row.line, row: this.row(v), expectedVersion: existing ? existing.vehicle.version : null, vehicle: v });
        }
      }
      for (const i of issues) errors.push({ line: row.line, id: rawId, ...i });
    }
    const report: VehicleImportReport = { mode, applied: false, rows, created: 0, updated: 0, rejected: 0, errors };
    if (!(mode === 'all-or-nothing' && errors.length)) {
      const outcome = await this.store.vehicles.importRows(
        accepted,
        mode === 'all-or-nothing',
        this.audit(actor, 'vehicle.import', `${rows} rows`, null, { mode, rows: accepted.length }),
      );
      for (const r of outcome.refused) errors.push({ line: r.line, id: accepted.find((a) => a.line === r.line)?.vehicle.id, field: r.field, message: r.message });
      report.applied = outcome.applied;
      if (outcome.applied) {
        const refusedLines = new Set(outcome.refused.map((r) => r.line));
        for (const a of accepted) {
          if (refusedLines.has(a.line)) continue;
          if (a.expectedVersion === null) report.created++;
          else report.updated++;
          const entry = this.index(a.vehicle);
          this.recomputeFences(entry);
          await this.rehomeAlarms(entry);
        }
        this.resort();
      }
    }
    errors.sort((a, b) => a.line - b.line);
    report.rejected = new Set(errors.map((e) => e.line)).size;
    return report;
  }

  // ---- positions -----------------------------------------------------------------------------

  private byRef(actor: VehicleActor, ref: { vehicleId?: string; plate?: string }, ranges: PathRange[]): VehicleEntry | string {
    if (!ref.vehicleId === !ref.plate) return 'give vehicleId or plate';
    const entry = ref.vehicleId ? this.byId.get(ref.vehicleId) : this.byPlate.get(normalisePlate(ref.plate!));
    if (!entry || !this.visible(actor, entry.vehicle.departmentId, ranges)) return `no vehicle ${ref.vehicleId ?? ref.plate} in your scope`;
    return entry;
  }

  /** The report time, or why it cannot be used. */
  private reportTime(at: number | string, now: number): number | string {
    const t = timeOf(at);
    if (!Number.isFinite(t)) return 'not a time';
    if (t > now + this.config.maxFutureSec * 1000) return `is ${Math.round((t - now) / 1000)} s ahead of the gateway clock (vehicles.maxFutureSec)`;
    return t;
  }

  /**
   * Ingests a batch of positions: each goes into the track; the vehicle's live position moves only
   * for a report newer than the current one and not stale, so a terminal replaying what it stored
   * while out of coverage fills in its track without jumping the vehicle back on the map.
   */
  async reportPositions(actor: VehicleActor, items: unknown[]): Promise<PositionsOutcome> {
    const now = this.clock();
    const ranges = this.ranges(actor);
    const out: PositionsOutcome = { accepted: 0, outOfOrder: 0, stale: 0, rejected: [] };
    const rows: PositionRow[] = [];
    const fixes: { entry: VehicleEntry; row: PositionRow }[] = [];
    items.forEach((item, index) => {
      const issues = positionItem.issues(item);
      if (issues.length) return void out.rejected.push({ index, ...issues[0]! });
      const p = item as ReturnType<typeof positionItem.parse>;
      const entry = this.byRef(actor, p, ranges);
      if (typeof entry === 'string') return void out.rejected.push({ index, field: p.vehicleId ? 'vehicleId' : 'plate', message: entry });
      const at = this.reportTime(p.at, now);
      if (typeof at === 'string') return void out.rejected.push({ index, field: 'at', message: at });
      const row = { vehicleId: entry.vehicle.id, at, lat: p.lat, lon: p.lon, speed: p.speed, heading: p.heading % 360 };
      rows.push(row);
      fixes.push({ entry, row });
    });
    // Written before anything is shown, so the map never holds a position the track lost.
    await this.store.vehicles.appendPositions(rows);
    out.accepted = rows.length;
    const alarmWrites: Promise<unknown>[] = [];
    // In report order, each fix against the one before it: a batch that enters and leaves a fence raises its alarm.
    for (const { entry, row } of fixes) {
      this.heard(entry, now);
      const last = entry.live.position;
      if (last && row.at <= last.at) {
        out.outOfOrder++;
        continue;
      }
      if (now - row.at > this.config.staleAfterSec * 1000) {
        out.stale++;
        continue;
      }
      entry.live.position = { lat: row.lat, lon: row.lon, speed: row.speed, heading: row.heading, at: row.at };
      entry.live.moving = row.speed > this.config.movingAboveKmh;
      this.emit('position', entry);
      this.crossings(entry, now, alarmWrites);
    }
    await Promise.all(alarmWrites);
    return out;
  }

  /** A report arrived: the vehicle is online. */
  private heard(entry: VehicleEntry, now: number) {
    entry.live.lastReportAt = now;
    if (entry.live.status === 'offline') {
      entry.live.status = 'online';
      this.emit('status', entry);
    }
  }

  async track(actor: VehicleActor, id: string, from: number | undefined, to: number | undefined): Promise<Position[]> {
    const entry = this.entry(actor, id);
    const now = this.clock();
    const start = from ?? now - this.config.trackWindowSec * 1000;
    const end = to ?? now + this.config.maxFutureSec * 1000;
    if (start > end) throw new ValidationError([{ field: 'from', message: 'must not be after to' }]);
    const points = await this.store.vehicles.track(entry.vehicle.id, start, end, this.config.trackMaxPoints);
    return points.map(({ lat, lon, speed, heading, at }) => ({ lat, lon, speed, heading, at }));
  }

  /** Vehicles go offline after vehicles.offlineAfterSec of silence; handled alarms that cleared close. */
  private sweep() {
    const now = this.clock();
    const offlineBefore = now - this.config.offlineAfterSec * 1000;
    for (const entry of this.byId.values()) {
      if (entry.live.status === 'online' && (entry.live.lastReportAt ?? 0) < offlineBefore) {
        entry.live.status = 'offline';
        entry.live.moving = false;
        this.emit('status', entry);
      }
    }
    const closeAfter = this.config.clearedCloseAfterSec * 1000;
    if (closeAfter > 0) {
      for (const o of [...this.open.values()]) {
        const a = o.alarm;
        if (!o.closing && !a.active && a.clearedAt !== null && now - a.clearedAt >= closeAfter) {
          void this.closeAlarm(o, SYSTEM, 'cleared', null, this.audit(SYSTEM, 'alarm.close', a.id, a.departmentId, { reason: 'cleared', plate: a.plate, type: a.type })).catch((err: Error) => this.log.error({ alarm: a.id, err: err.message }, 'alarm auto-close failed'));
        }
      }
    }
  }

  private async prune() {
    try {
      const removed = await this.store.vehicles.prunePositions(this.clock() - this.config.trackWindowSec * 1000);
      if (removed) this.log.info({ removed }, 'old track points pruned');
    } catch (err) {
      this.log.error({ err: (err as Error).message }, 'track pruning failed');
    }
  }

  // ---- geofences -----------------------------------------------------------------------------

  private setGeofence(fence: Geofence) {
    this.geofences.set(fence.id, { fence, shape: new CompiledShape(fence.shape) });
  }

  /** Fences that apply to a vehicle: enabled, and over its department (paths read now: departments move). */
  private fencesFor(entry: VehicleEntry) {
    const path = this.tree.get(entry.vehicle.departmentId)?.path ?? '';
    return [...this.geofences.values()].filter((g) => g.fence.enabled && path.startsWith(this.tree.get(g.fence.departmentId)?.path ?? '\u0000'));
  }

  /** Where the vehicle is now, without raising anything (a new fence, a restart, a moved vehicle). */
  private recomputeFences(entry: VehicleEntry) {
    entry.fences.clear();
    const p = entry.live.position;
    if (!p) return;
    for (const g of this.fencesFor(entry)) if (g.shape.contains(p.lon, p.lat)) entry.fences.add(g.fence.id);
  }

  private crossings(entry: VehicleEntry, now: number, writes: Promise<unknown>[]) {
    if (this.geofences.size === 0) return;
    const p = entry.live.position!;
    for (const g of this.fencesFor(entry)) {
      const inside = g.shape.contains(p.lon, p.lat);
      const was = entry.fences.has(g.fence.id);
      if (inside === was) continue;
      if (inside) entry.fences.add(g.fence.id);
      else entry.fences.delete(g.fence.id);
      const crossing = inside ? 'enter' : 'leave';
      for (const rule of g.fence.rules) {
        if (rule.forbid !== crossing || (rule.categories.length && !rule.categories.includes(entry.vehicle.category))) continue;
        const raised = this.raise(entry, { type: inside ? 'geofence-enter' : 'geofence-leave', severity: rule.severity, at: p.at, position: p, geofence: { id: g.fence.id, name: g.fence.name }, detail: '' }, now);
        writes.push(raised.write);
      }
    }
  }

  geofenceList(actor: VehicleActor): Geofence[] {
    const ranges = this.ranges(actor);
    return [...this.geofences.values()].filter((g) => this.tree.within(g.fence.departmentId, ranges)).map((g) => g.fence);
  }

  async putGeofence(actor: VehicleActor, id: string | null, raw: unknown, version: number | null): Promise<Geofence> {
    const input: GeofenceInput = geofenceInput.parse(raw);
    const fence: Geofence = {
      id: id ?? input.id ?? shortId('fence'),
      name: input.name,
      departmentId: input.departmentId,
      shape: input.shape as Geofence['shape'],
      rules: input.rules,
      enabled: input.enabled ?? true,
      version: (version ?? 0) + 1,
    };
    if (id !== null) {
      const current = this.geofences.get(id);
      if (!current || !this.visible(actor, current.fence.departmentId)) throw notFound(`geofence "${id}"`);
    }
    await this.putRule('geofence', actor, fence, version);
    this.setGeofence(fence);
    for (const entry of this.byId.values()) this.recomputeFences(entry);
    return fence;
  }

  async deleteGeofence(actor: VehicleActor, id: string): Promise<void> {
    const current = this.geofences.get(id);
    if (!current || !this.visible(actor, current.fence.departmentId)) throw notFound(`geofence "${id}"`);
    await this.store.rules.delete('geofence', id, this.audit(actor, 'geofence.delete', id, current.fence.departmentId, { name: current.fence.name }));
    this.geofences.delete(id);
    for (const entry of this.byId.values()) entry.fences.delete(id);
  }

  private async putRule(kind: RuleRow['kind'], actor: VehicleActor, doc: { id: string; name: string; departmentId: string; version: number }, version: number | null) {
    const dep = this.tree.get(doc.departmentId);
    if (!dep || !this.tree.within(dep.id, this.ranges(actor))) throw new ValidationError([{ field: 'departmentId', message: `unknown department "${doc.departmentId}"` }]);
    const row: RuleRow = { id: doc.id, kind, departmentId: dep.id, deptPath: dep.path, version: doc.version, doc: JSON.stringify(doc) };
    let result;
    try {
      result = await this.store.rules.put(row, version, this.audit(actor, version === null ? `${kind}.create` : `${kind}.update`, doc.id, dep.id, { name: doc.name }));
    } catch (err) {
      if (err instanceof StoreConflict) throw new GatewayError('GW_ERR_CONFLICT', `id: ${kind} "${doc.id}" exists`);
      throw err;
    }
    if (result === 'not-found') throw notFound(`${kind} "${doc.id}"`);
    if (result === 'version-conflict') throw new GatewayError('GW_ERR_VERSION_CONFLICT', `${kind} "${doc.id}" was changed by someone else`);
  }

  // ---- linkage rules -------------------------------------------------------------------------

  ruleList(actor: VehicleActor): LinkageRule[] {
    const ranges = this.ranges(actor);
    return [...this.rules.values()].filter((r) => this.tree.within(r.departmentId, ranges));
  }

  async putLinkageRule(actor: VehicleActor, id: string | null, raw: unknown, version: number | null): Promise<LinkageRule> {
    const input: LinkageInput = linkageInput.parse(raw);
    if (id !== null) {
      const current = this.rules.get(id);
      if (!current || !this.visible(actor, current.departmentId)) throw notFound(`linkage rule "${id}"`);
    }
    this.linkage.checkTarget(actor, input.wallId, input.tileIds);
    const issues: FieldIssue[] = [];
    (input.match.geofenceIds ?? []).forEach((g, i) => {
      const fence = this.geofences.get(g)?.fence;
      if (!fence || !this.visible(actor, fence.departmentId)) issues.push({ field: `match.geofenceIds[${i}]`, message: `no geofence "${g}" in your scope` });
    });
    if (issues.length) throw new ValidationError(issues);
    const rule: LinkageRule = {
      id: id ?? input.id ?? shortId('link'),
      name: input.name,
      departmentId: input.departmentId,
      match: { categories: input.match.categories ?? [], types: input.match.types ?? [], minSeverity: input.match.minSeverity ?? 'info', geofenceIds: input.match.geofenceIds ?? [] },
      wallId: input.wallId,
      tileIds: input.tileIds,
      channels: input.channels ?? [],
      priority: input.priority,
      holdSec: input.holdSec ?? 0,
      enabled: input.enabled ?? true,
      version: (version ?? 0) + 1,
    };
    await this.putRule('linkage', actor, rule, version);
    this.rules.set(rule.id, rule);
    return rule;
  }

  async deleteLinkageRule(actor: VehicleActor, id: string): Promise<void> {
    const current = this.rules.get(id);
    if (!current || !this.visible(actor, current.departmentId)) throw notFound(`linkage rule "${id}"`);
    await this.store.rules.delete('linkage', id, this.audit(actor, 'linkage.delete', id, current.departmentId, { name: current.name }));
    this.rules.delete(id);
  }

  // ---- alarms --------------------------------------------------------------------------------

  private alarmKey(a: { vehicleId: string; type: string; geofence: { id: string } | null }) {
    return `${a.vehicleId}|${a.type}|${a.geofence?.id ?? ''}`;
  }

  private alarmRow(a: Alarm): AlarmRow {
    const path = this.tree.get(a.departmentId)?.path ?? `/${a.departmentId}/`;
    return { id: a.id, vehicleId: a.vehicleId, deptPath: path, type: a.type, state: a.state, raisedAt: a.raisedAt, updatedAt: this.clock(), doc: JSON.stringify(a) };
  }

  private persist(a: Alarm, audit: Omit<AuditEntry, 'seq'> | null = null) {
    return this.store.alarms.save(this.alarmRow(a), audit).catch((err: Error) => {
      this.log.error({ alarm: a.id, err: err.message }, 'alarm not saved');
      throw err;
    });
  }

  async reportAlarms(actor: VehicleActor, items: unknown[]): Promise<AlarmsOutcome> {
    const now = this.clock();
    const ranges = this.ranges(actor);
    const out: AlarmsOutcome = { raised: [], repeated: [], cleared: [], rejected: [] };
    const writes: Promise<unknown>[] = [];
    items.forEach((item, index) => {
      const issues = alarmItem.issues(item);
      if (issues.length) return void out.rejected.push({ index, ...issues[0]! });
      const r = item as AlarmReportItem;
      const entry = this.byRef(actor, r, ranges);
      if (typeof entry === 'string') return void out.rejected.push({ index, field: r.vehicleId ? 'vehicleId' : 'plate', message: entry });
      const at = this.reportTime(r.at, now);
      if (typeof at === 'string') return void out.rejected.push({ index, field: 'at', message: at });
      if ((r.lat === undefined) !== (r.lon === undefined)) return void out.rejected.push({ index, field: r.lat === undefined ? 'lat' : 'lon', message: 'give lat and lon together' });
      this.heard(entry, now);
      const position: Position | null = r.lat !== undefined ? { lat: r.lat, lon: r.lon!, speed: 0, heading: 0, at } : entry.live.position;
      if (r.state === 'cleared') {
        const o = this.openByKey.get(this.alarmKey({ vehicleId: entry.vehicle.id, type: r.type, geofence: null }));
        if (o && o.alarm.active) {
          o.alarm.active = false;
          o.alarm.clearedAt = at;
          writes.push(this.persist(o.alarm));
          this.emit('alarm', o.alarm, 'updated');
          out.cleared.push(o.alarm.id);
        }
        return;
      }
      const { alarm, repeated, write } = this.raise(entry, { type: r.type, severity: r.severity ?? 'medium', at, position, geofence: null, detail: r.detail ?? '' }, now);
      writes.push(write);
      (repeated ? out.repeated : out.raised).push(alarm.id);
    });
    await Promise.all(writes);
    return out;
  }

  /**
   * Raises an alarm, or folds it into the open one of the same vehicle and type (and fence): a
   * flapping condition or a terminal repeating itself makes one alarm and one pop-up, not many.
   */
  private raise(
    entry: VehicleEntry,
    r: { type: AlarmType; severity: Severity; at: number; position: Position | null; geofence: Alarm['geofence']; detail: string },
    now: number,
  ): { alarm: Alarm; repeated: boolean; write: Promise<unknown> } {
    const key = this.alarmKey({ vehicleId: entry.vehicle.id, type: r.type, geofence: r.geofence });
    const open = this.openByKey.get(key);
    if (open) {
      const a = open.alarm;
      a.occurrences++;
      a.lastReportAt = Math.max(a.lastReportAt, r.at);
      a.active = true;
      a.clearedAt = null;
      const severity = maxSeverity(a.severity, r.severity);
      const upgraded = severity !== a.severity || (a.late && now - r.at <= this.config.lateAlarmAfterSec * 1000);
      a.severity = severity;
      if (now - r.at <= this.config.lateAlarmAfterSec * 1000) a.late = false;
      if (r.position) a.position = r.position;
      // A catching-up terminal's late report, then the live one; or a warning that turns critical: rules it now matches act.
      if (upgraded && !a.late) this.link(open, entry);
      this.emit('alarm', a, 'updated');
      return { alarm: a, repeated: true, write: this.persist(a) };
    }
    const v = entry.vehicle;
    const alarm: Alarm = {
      id: shortId('alm'),
      vehicleId: v.id,
      plate: v.plate,
      category: v.category,
      departmentId: v.departmentId,
      type: r.type,
      severity: r.severity,
      state: 'raised',
      raisedAt: r.at,
      lastReportAt: r.at,
      occurrences: 1,
      active: true,
      clearedAt: null,
      position: r.position,
      geofence: r.geofence,
      late: now - r.at > this.config.lateAlarmAfterSec * 1000,
      detail: r.detail,
      acknowledgedBy: null,
      acknowledgedAt: null,
      closedBy: null,
      closedAt: null,
      closeReason: null,
      note: null,
      linkages: [],
    };
    const o: OpenAlarm = { alarm, closing: false, linking: Promise.resolve(), timers: [] };
    this.open.set(alarm.id, o);
    this.openByKey.set(key, o);
    entry.live.openAlarms++;
    // Linkage starts before the alarm is written: the wall, not the disk, is what a person is waiting for.
    if (!alarm.late) this.link(o, entry);
    this.emit('alarm', alarm, 'raised');
    return { alarm, repeated: false, write: this.persist(alarm) };
  }

  private matches(rule: LinkageRule, alarm: Alarm): boolean {
    const m = rule.match;
    if (!rule.enabled || !this.tree.within(alarm.departmentId, this.tree.rangesFor([rule.departmentId]))) return false;
    if (m.categories.length && !m.categories.includes(alarm.category)) return false;
    if (m.types.length && !m.types.includes(alarm.type)) return false;
    if (severityRank(alarm.severity) < severityRank(m.minSeverity)) return false;
    if (m.geofenceIds.length && !(alarm.geofence && m.geofenceIds.includes(alarm.geofence.id))) return false;
    return true;
  }

  /** Puts the vehicle's channels on the wall of every matching rule; the streams are pre-warmed there. */
  private link(o: OpenAlarm, entry: VehicleEntry) {
    const alarm = o.alarm;
    const now = this.clock();
    const shows: Promise<unknown>[] = [];
    for (const rule of this.rules.values()) {
      if (!this.matches(rule, alarm) || alarm.linkages.some((l) => l.ruleId === rule.id)) continue;
      const channels = rule.channels.length
        ? rule.channels.map((n) => entry.vehicle.channels.find((c) => c.channel === n)).filter((c) => c !== undefined)
        : entry.vehicle.channels;
      if (channels.length === 0) continue;
      const linkage: AlarmLinkage = { ruleId: rule.id, wallId: rule.wallId, popupId: shortId('pop'), until: rule.holdSec ? now + rule.holdSec * 1000 : null, endedAt: null };
      alarm.linkages.push(linkage);
      const shown = this.linkage
        .show({
          id: linkage.popupId,
          wallId: rule.wallId,
          label: `${alarm.plate} ${ALARM_LABELS[alarm.type]}`,
          priority: rule.priority,
          alarmId: alarm.id,
          vehicleId: alarm.vehicleId,
          tileIds: rule.tileIds,
          cameraIds: channels.map((c) => c.sourceId),
          prewarmHoldMs: this.config.linkageHoldMs,
        })
        .then(
          (result) => {
            if (!result) linkage.endedAt = this.clock();
            else if (linkage.until !== null) this.armHold(o, linkage, linkage.until - this.clock());
          },
          (err: Error) => {
            linkage.endedAt = this.clock();
            this.log.error({ alarm: alarm.id, rule: rule.id, err: err.message }, 'alarm linkage failed');
          },
        );
      shows.push(shown);
    }
    if (shows.length) {
      o.linking = Promise.all([o.linking, ...shows]).then(() => {
        if (this.open.get(alarm.id) !== o) return;
        this.emit('alarm', alarm, 'updated');
        return this.persist(alarm).catch(() => undefined);
      });
    }
  }

  /** A rule's holdSec: the pop-up comes off while the alarm stays open. */
  private armHold(o: OpenAlarm, linkage: AlarmLinkage, inMs: number) {
    const timer = setTimeout(() => {
      if (this.open.get(o.alarm.id) !== o || linkage.endedAt !== null) return;
      void this.endLinkage(linkage).then(() => {
        this.emit('alarm', o.alarm, 'updated');
        return this.persist(o.alarm).catch(() => undefined);
      });
    }, Math.max(0, inMs));
    timer.unref();
    o.timers.push(timer);
  }

  private async endLinkage(linkage: AlarmLinkage) {
    linkage.endedAt = this.clock();
    try {
      await this.linkage.clear(linkage.popupId);
    } catch (err) {
      this.log.error({ popup: linkage.popupId, err: (err as Error).message }, 'alarm pop-up did not come off the wall');
    }
  }

  /** An operator took a pop-up off a wall: the alarm stays open, without it. */
  popupDismissed(popupId: string) {
    for (const o of this.open.values()) {
      const l = o.alarm.linkages.find((x) => x.popupId === popupId && x.endedAt === null);
      if (!l) continue;
      l.endedAt = this.clock();
      this.emit('alarm', o.alarm, 'updated');
      void this.persist(o.alarm).catch(() => undefined);
    }
  }

  private async openAlarm(actor: VehicleActor, id: string): Promise<OpenAlarm> {
    const o = this.open.get(id);
    if (o && this.visible(actor, o.alarm.departmentId)) return o;
    // A closed alarm the actor may see is a conflict, not a missing one.
    const closed = o ? null : await this.getAlarm(actor, id);
    throw closed ? new GatewayError('GW_ERR_CONFLICT', `alarm ${id} is closed (by ${closed.closedBy})`) : notFound(`alarm "${id}"`);
  }

  async acknowledge(actor: VehicleActor, id: string, note: string | undefined): Promise<Alarm> {
    const o = await this.openAlarm(actor, id);
    const a = o.alarm;
    if (o.closing) throw new GatewayError('GW_ERR_CONFLICT', `alarm ${id} is being closed`);
    if (a.state === 'acknowledged') throw new GatewayError('GW_ERR_CONFLICT', `alarm ${id} was acknowledged by ${a.acknowledgedBy}`);
    const before = { ...a };
    // Changed before the write, so a second acknowledgement meanwhile is refused; put back if the write fails.
    Object.assign(a, { state: 'acknowledged', acknowledgedBy: actor.username, acknowledgedAt: this.clock(), note: note ?? a.note });
    try {
      await this.persist(a, this.audit(actor, 'alarm.acknowledge', id, a.departmentId, { plate: a.plate, type: a.type, note: note ?? null }));
    } catch (err) {
      Object.assign(a, before);
      throw err;
    }
    this.emit('alarm', a, 'acknowledged');
    return a;
  }

  async closeAlarmById(actor: VehicleActor, id: string, note: string | undefined): Promise<Alarm> {
    const o = await this.openAlarm(actor, id);
    return this.closeAlarm(o, actor, 'handled', note ?? null, this.audit(actor, 'alarm.close', id, o.alarm.departmentId, { plate: o.alarm.plate, type: o.alarm.type, note: note ?? null }));
  }

  private async closeAlarm(o: OpenAlarm, actor: VehicleActor, reason: 'handled' | 'cleared', note: string | null, audit: Omit<AuditEntry, 'seq'> | null): Promise<Alarm> {
    const a = o.alarm;
    if (o.closing) throw new GatewayError('GW_ERR_CONFLICT', `alarm ${a.id} is being closed`);
    o.closing = true;
    const next: Alarm = { ...a, state: 'closed', closedBy: actor.username, closedAt: this.clock(), closeReason: reason, note: note ?? a.note };
    try {
      await this.persist(next, audit);
    } finally {
      o.closing = false;
    }
    if (this.open.get(a.id) !== o) return a;
    Object.assign(a, next);
    this.open.delete(a.id);
    this.openByKey.delete(this.alarmKey(a));
    o.timers.forEach(clearTimeout);
    const entry = this.byId.get(a.vehicleId);
    if (entry) entry.live.openAlarms = Math.max(0, entry.live.openAlarms - 1);
    this.emit('alarm', a, 'closed');
    // The pop-ups come off once they are up, so none is left behind by a close that overtook them.
    await o.linking;
    const ending = a.linkages.filter((l) => l.endedAt === null);
    await Promise.all(ending.map((l) => this.endLinkage(l)));
    if (ending.length) await this.persist(a).catch(() => undefined);
    return a;
  }

  openAlarms(actor: VehicleActor, minSeverity: Severity = 'info'): Alarm[] {
    const ranges = this.ranges(actor);
    return [...this.open.values()].map((o) => o.alarm).filter((a) => severityRank(a.severity) >= severityRank(minSeverity) && this.tree.within(a.departmentId, ranges));
  }

  async getAlarm(actor: VehicleActor, id: string): Promise<Alarm> {
    const live = this.open.get(id)?.alarm;
    const a = live ?? JSON.parse((await this.store.alarms.get(id))?.doc ?? 'null');
    if (!a || !this.visible(actor, a.departmentId)) throw notFound(`alarm "${id}"`);
    return a;
  }

  async listAlarms(
    actor: VehicleActor,
    q: { state?: Alarm['state'][]; vehicleId?: string; type?: string; since?: number; cursor?: string; limit: number },
  ): Promise<{ items: Alarm[]; nextCursor: string | null }> {
    let before: { raisedAt: number; id: string } | undefined;
    if (q.cursor) {
      const [at, id] = Buffer.from(q.cursor, 'base64url').toString('utf8').split('|');
      if (!id || !Number.isSafeInteger(Number(at))) throw new GatewayError('GW_ERR_BAD_CURSOR', 'cursor: not a cursor this API returned');
      before = { raisedAt: Number(at), id };
    }
    const rows = await this.store.alarms.list({ ranges: this.ranges(actor), states: q.state, vehicleId: q.vehicleId, type: q.type, since: q.since, before, limit: q.limit + 1 });
    const items = rows.slice(0, q.limit).map((r) => this.open.get(r.id)?.alarm ?? (JSON.parse(r.doc) as Alarm));
    const last = items[items.length - 1];
    return { items, nextCursor: rows.length > q.limit && last ? Buffer.from(`${last.raisedAt}|${last.id}`).toString('base64url') : null };
  }

  /** For subscribers: may this actor see this department? */
  sees(departmentId: string, ranges: PathRange[]): boolean {
    return this.tree.within(departmentId, ranges);
  }

  rangesOf(actor: VehicleActor): PathRange[] {
    return this.ranges(actor);
  }

  entries(): Iterable<VehicleEntry> {
    return this.byId.values();
  }
}

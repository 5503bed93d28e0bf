import type { TSchema } from '@sinclair/typebox';
import { randomBytes } from 'node:crypto';
import type { EventEmitter } from 'node:events';
import type { Permission } from '../auth/roles.js';
import type { Config } from '../config/schema.js';
import { GatewayError, ValidationError, notFound, type FieldIssue, reasoned } from '../errors.js';
import { AcceptedWork } from '../lib/accepted-work.js';
import type { DepartmentTree } from '../registry/departments.js';
import type { Actor, ImportMode } from '../registry/service.js';
import { StoreConflict, type AlarmRow, type AuditEntry, type PathRange, type Role, type RuleRow, type Store } from '../store/types.js';
import type { Bbox } from './geo.js';
import { timeOf } from './input.js';
import { SEVERITIES, type Alarm, type Severity, type Vehicle, type VehicleCategory, type VehicleLive } from './model.js';

/**
 * What the vehicle service's sections share: the actor and its scope, the audit entry, alarm
 * writes, and the bookkeeping that lets close() wait for every write it accepted.
 */

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

export type AlarmChange = 'raised' | 'updated' | 'acknowledged' | 'closed';

export interface OpenAlarm {
  alarm: Alarm;
  /** Set while a closure is being written, so a second one is refused rather than audited twice. */
  closing: boolean;
  /** Pop-ups being put up; closing waits for them so none is left behind. */
  linking: Promise<unknown>;
  timers: NodeJS.Timeout[];
  /** Its picture was asked for (once, when it opened or, reported late, when it first came live). */
  pictured: boolean;
}

export interface VehicleEvents {
  position: [VehicleEntry];
  status: [VehicleEntry];
  alarm: [Alarm, AlarmChange];
  removed: [VehicleEntry];
}

export interface VehicleLog {
  warn(o: object, m: string): void;
  error(o: object, m: string): void;
  info(o: object, m: string): void;
}

/** A message on the control WebSocket that a section answers (the hub adds its subscriptions). */
export interface VehicleMessage {
  permission: Permission;
  /** The payload's schema: the one handle checks it with, and the one the protocol's description shows. */
  payload: TSchema;
  handle(actor: VehicleActor, payload: unknown): unknown;
}
export type VehicleMessages = Record<string, VehicleMessage>;

export const severityRank = (s: Severity) => SEVERITIES.indexOf(s);
export const maxSeverity = (a: Severity, b: Severity) => (severityRank(a) >= severityRank(b) ? a : b);
export const shortId = (prefix: string) => `${prefix}-${randomBytes(6).toString('hex')}`;
export const SYSTEM: VehicleActor = { id: 'system', username: 'system', ip: '-', scopes: [], roles: [] };

export class VehicleContext {
  /** Commands and writes under way: what close() waits for before the store may close. */
  private readonly work = new AcceptedWork();
  /**
   * Each alarm's last write not yet settled. An alarm is written again while its previous write may
   * still be on its way (raised, then linked, acknowledged or closed); on PostgreSQL two writes go out
   * on different connections and could commit in either order, so the next waits for the one before.
   */
  private readonly alarmWrites = new Map<string, Promise<void>>();

  constructor(
    readonly store: Store,
    private readonly sources: SourceDirectory,
    readonly config: VehiclesConfig,
    readonly events: EventEmitter<VehicleEvents>,
    readonly log: VehicleLog,
    readonly clock: () => number,
  ) {}

  get tree(): DepartmentTree {
    return this.sources.departments;
  }

  getSource(actor: VehicleActor, id: string) {
    return this.sources.getSource(actor, id);
  }

  get isClosed(): boolean {
    return this.work.isClosed;
  }

  /** Runs one command unless the service is closing; close() waits for it to settle. */
  accept<T>(work: () => Promise<T>): Promise<T> {
    return this.work.accept(work);
  }

  /** A write nobody awaits (a pop-up's outcome, an automatic close): close() still waits for it. */
  track<T>(p: Promise<T>): Promise<T> {
    return this.work.track(p);
  }

  /** Refuses new commands, then resolves once every accepted command and every write is done. */
  drain(): Promise<void> {
    return this.work.drain();
  }

  ranges(actor: VehicleActor): PathRange[] {
    return this.tree.rangesFor(actor.scopes);
  }

  visible(actor: VehicleActor, departmentId: string, ranges = this.ranges(actor)): boolean {
    return actor === SYSTEM || this.tree.within(departmentId, ranges);
  }

  audit(actor: VehicleActor, action: string, target: string, departmentId: string | null, detail: Record<string, unknown>): Omit<AuditEntry, 'seq'> {
    const path = departmentId ? (this.tree.get(departmentId)?.path ?? null) : this.tree.commonPath(actor.scopes);
    return { at: this.clock(), actor: actor.username, actorIp: actor.ip, action, target, outcome: 'ok', detail, scopePath: path };
  }

  /** The report time, or why it cannot be used. */
  reportTime(at: number | string, now: number): number | string {
    const t = timeOf(at);
    if (!Number.isFinite(t)) return 'not a time';
    if (t > now + this.config.maxFutureSec * 1000) return `is ${Math.round((t - now) / 1000)} s ahead of the gateway clock (vehicles.maxFutureSec)`;
    return t;
  }

  private alarmRow(a: Alarm): AlarmRow {
    const path = this.tree.get(a.departmentId)?.path ?? `/${a.departmentId}/`;
    return { id: a.id, vehicleId: a.vehicleId, deptPath: path, type: a.type, state: a.state, raisedAt: a.raisedAt, updatedAt: this.clock(), doc: JSON.stringify(a) };
  }

  persist(a: Alarm, audit: Omit<AuditEntry, 'seq'> | null = null) {
    // The alarm as it is now, not as it will be when the write before this one is done.
    const row = this.alarmRow(a);
    const before = this.alarmWrites.get(a.id);
    const write = (before ? before.then(() => this.store.alarms.save(row, audit)) : this.store.alarms.save(row, audit)).catch((err: Error) => {
      this.log.error({ alarm: a.id, err: err.message }, 'alarm not saved');
      throw err;
    });
    const settled = write.then(
      () => undefined,
      () => undefined,
    );
    this.alarmWrites.set(a.id, settled);
    void settled.then(() => {
      if (this.alarmWrites.get(a.id) === settled) this.alarmWrites.delete(a.id);
    });
    return this.track(write);
  }

  /** Resolves when the writes of the alarm asked for so far have settled (what refers to its row waits for it). */
  alarmWritten(id: string): Promise<void> {
    return this.alarmWrites.get(id) ?? Promise.resolve();
  }

  /** Writes a geofence or linkage rule with its audit entry; `version` null creates. */
  async putRule(kind: RuleRow['kind'], actor: VehicleActor, doc: { id: string; name: string; departmentId: string; version: number }, version: number | null) {
    const dep = this.tree.get(doc.departmentId);
    if (!dep || !this.tree.within(dep.id, this.ranges(actor))) throw new ValidationError([{ field: 'departmentId', message: `unknown department "${doc.departmentId}"` }]);
    const row: RuleRow = { id: doc.id, kind, departmentId: dep.id, deptPath: dep.path, version: doc.version, doc: JSON.stringify(doc) };
    let result;
    try {
      result = await this.store.rules.put(row, version, this.audit(actor, version === null ? `${kind}.create` : `${kind}.update`, doc.id, dep.id, { name: doc.name }));
    } catch (err) {
      if (err instanceof StoreConflict) throw reasoned('GW_ERR_CONFLICT', 'taken', { id: doc.id }, `id: ${kind} "${doc.id}" exists`);
      throw err;
    }
    if (result === 'not-found') throw notFound(`${kind} "${doc.id}"`);
    if (result === 'version-conflict') throw new GatewayError('GW_ERR_VERSION_CONFLICT', `${kind} "${doc.id}" was changed by someone else`);
  }
}

import { GatewayError, ValidationError, notFound, reasoned } from '../errors.js';
import type { AlarmRow, AuditEntry } from '../store/types.js';
import { ALARM_ACTION, ALARMS_REPORT, alarmAction, alarmItem, alarmsReport, type AlarmReportItem } from './input.js';
import type { AlarmEvidence } from './evidence.js';
import type { Linkage } from './linkage.js';
import type { Alarm, AlarmSnapshotError, AlarmType, Position, Severity } from './model.js';
import type { VehicleRegistry } from './registry.js';
import {
  SYSTEM,
  maxSeverity,
  severityRank,
  shortId,
  type AlarmChange,
  type AlarmsOutcome,
  type OpenAlarm,
  type VehicleActor,
  type VehicleContext,
  type VehicleEntry,
  type VehicleMessages,
} from './context.js';

/** How far an alarm has been handled: a state never goes back (the store refuses a write that would take it back). */
const ALARM_STATE_RANK: Record<Alarm['state'], number> = { raised: 0, acknowledged: 1, closed: 2 };

/** The alarm commands the control WebSocket sends; the service offers them with the same signatures. */
export type AlarmCommands = Pick<Alarms, 'acknowledge' | 'closeAlarmById' | 'reportAlarms'>;

/** The alarm messages of the control WebSocket: a feed's reports, and regulators acknowledging and closing. */
export function alarmMessages(alarms: AlarmCommands): VehicleMessages {
  const act = (kind: 'ack' | 'close') => (actor: VehicleActor, payload: unknown) => {
    const p = alarmAction.parse(payload);
    if (!p.alarmId) throw new ValidationError([{ field: 'alarmId', message: 'is required' }]);
    const done = kind === 'ack' ? alarms.acknowledge(actor, p.alarmId, p.note) : alarms.closeAlarmById(actor, p.alarmId, p.note);
    return done.then((alarm) => ({ alarm }));
  };
  return {
    'alarm.ack': { permission: 'alarms:handle', payload: ALARM_ACTION, handle: act('ack') },
    'alarm.close': { permission: 'alarms:handle', payload: ALARM_ACTION, handle: act('close') },
    'alarms.report': { permission: 'vehicles:feed', payload: ALARMS_REPORT, handle: (actor, payload) => alarms.reportAlarms(actor, alarmsReport.parse(payload).alarms) },
  };
}

/**
 * Alarms: a terminal's reports and geofence crossings raise them; a repeat of an open one folds into
 * it (the debounce); regulators acknowledge and close them; a matching linkage rule puts the
 * vehicle's cameras on a wall while one is open.
 */
export class Alarms {
  private readonly open = new Map<string, OpenAlarm>();
  /** vehicle|type|geofence → the open alarm it folds into. */
  private readonly openByKey = new Map<string, OpenAlarm>();

  constructor(
    private readonly ctx: VehicleContext,
    private readonly registry: VehicleRegistry,
    private readonly linkage: Linkage,
    private readonly evidence: AlarmEvidence,
  ) {}

  /** The open alarms as stored, their pop-up holds re-armed; those of a vehicle deleted by a run that stopped half-way close now. */
  async load() {
    const now = this.ctx.clock();
    for (const row of await this.ctx.store.alarms.open()) {
      const alarm = this.fromRow(row);
      // A picture still being taken when the gateway stopped is not taken now, long after the alarm opened.
      const o: OpenAlarm = { alarm, closing: false, linking: Promise.resolve(), timers: [], pictured: true };
      this.open.set(alarm.id, o);
      this.openByKey.set(this.alarmKey(alarm), o);
      const entry = this.registry.get(alarm.vehicleId);
      if (entry) entry.live.openAlarms++;
      for (const l of alarm.linkages) if (l.endedAt === null && l.until !== null) this.linkage.armHold(o, l, l.until - now);
    }
    for (const o of [...this.open.values()]) {
      if (!this.registry.has(o.alarm.vehicleId)) await this.closeAlarm(o, SYSTEM, 'handled', 'vehicle deleted', this.ctx.audit(SYSTEM, 'alarm.close', o.alarm.id, o.alarm.departmentId, { reason: 'vehicle deleted' }));
    }
  }

  /**
   * An alarm another node raised or changed, as it wrote it: this node shows it, and lets its
   * regulators acknowledge or close it. Its debounce, pop-ups and picture stay with the node that
   * raised it; closing it here ends its pop-ups through the walls, which every node shares.
   */
  adopt(alarm: Alarm, change: AlarmChange) {
    const o = this.open.get(alarm.id);
    if (change === 'closed') {
      if (!o) return;
      Object.assign(o.alarm, alarm);
      this.open.delete(alarm.id);
      if (this.openByKey.get(this.alarmKey(alarm)) === o) this.openByKey.delete(this.alarmKey(alarm));
      o.timers.forEach(clearTimeout);
      const entry = this.registry.get(alarm.vehicleId);
      if (entry) entry.live.openAlarms = Math.max(0, entry.live.openAlarms - 1);
    } else if (o) {
      // Each node publishes over its own connection, so a repeat node A wrote before node B's acknowledgement can arrive after it: it brings the new count, not the old state.
      const handled = ALARM_STATE_RANK[o.alarm.state] > ALARM_STATE_RANK[alarm.state];
      const { state, acknowledgedBy, acknowledgedAt, note } = o.alarm;
      Object.assign(o.alarm, alarm, handled ? { state, acknowledgedBy, acknowledgedAt, note } : {});
    } else if (change === 'raised') {
      const adopted: OpenAlarm = { alarm, closing: false, linking: Promise.resolve(), timers: [], pictured: true };
      this.open.set(alarm.id, adopted);
      this.openByKey.set(this.alarmKey(alarm), adopted);
      const entry = this.registry.get(alarm.vehicleId);
      if (entry) entry.live.openAlarms++;
    } else {
      // A change to an alarm not open here was overtaken by its close (sent by another node, over another connection): it stays closed.
      return;
    }
    this.ctx.events.emit('alarm', o?.alarm ?? alarm, change);
  }

  /** What changed in the store since this node last heard (after Redis came back), for adopt(): alarms closed meanwhile, and every open one as stored. */
  async changesSince(): Promise<Array<[Alarm, AlarmChange]>> {
    const stored = new Map((await this.ctx.store.alarms.open()).map((row) => [row.id, this.fromRow(row)]));
    const changes: Array<[Alarm, AlarmChange]> = [];
    for (const o of [...this.open.values()]) {
      if (stored.has(o.alarm.id) || o.closing) continue;
      const row = await this.ctx.store.alarms.get(o.alarm.id);
      if (row) changes.push([this.fromRow(row), 'closed']);
    }
    for (const alarm of stored.values()) changes.push([alarm, this.open.has(alarm.id) ? 'updated' : 'raised']);
    return changes;
  }

  /** Stops the pop-up holds; the alarms stay open in the store. */
  close() {
    for (const o of this.open.values()) o.timers.forEach(clearTimeout);
    this.evidence.close();
  }

  /** The open alarm of this id, for evidence to show its picture on. */
  openById(id: string): Alarm | undefined {
    return this.open.get(id)?.alarm;
  }

  /** A stored alarm with its picture as the store has it now (the document does not keep it). */
  private fromRow(row: AlarmRow): Alarm {
    const alarm = JSON.parse(row.doc) as Alarm;
    const e = row.evidence;
    return Object.assign(alarm, { snapshot: e?.snapshot ?? null, snapshotError: e?.snapshotError ? (JSON.parse(e.snapshotError) as AlarmSnapshotError) : null });
  }

  /**
   * Asks once for the alarm's picture: from the camera its linkage put on a wall first, else the
   * vehicle's first channel. A late report shows the past, which a picture taken now would not.
   */
  private picture(o: OpenAlarm, entry: VehicleEntry, linked: string[]) {
    if (o.pictured || o.alarm.late) return;
    o.pictured = true;
    const first = [...entry.vehicle.channels].sort((a, b) => a.channel - b.channel)[0];
    const cameraId = linked[0] ?? first?.sourceId;
    if (cameraId) this.evidence.request(o.alarm, cameraId);
  }

  all(): Iterable<OpenAlarm> {
    return this.open.values();
  }

  isOpen(o: OpenAlarm): boolean {
    return this.open.get(o.alarm.id) === o;
  }

  private alarmKey(a: { vehicleId: string; type: string; geofence: { id: string } | null }) {
    return `${a.vehicleId}|${a.type}|${a.geofence?.id ?? ''}`;
  }

  async reportAlarms(actor: VehicleActor, items: unknown[]): Promise<AlarmsOutcome> {
    const now = this.ctx.clock();
    const ranges = this.ctx.ranges(actor);
    const out: AlarmsOutcome = { raised: [], repeated: [], cleared: [], rejected: [] };
    const writes: Promise<unknown>[] = [];
    items.forEach((item, index) => {
      const issues = alarmItem.issues(item);
      if (issues.length) return void out.rejected.push({ index, ...issues[0]! });
      const r = item as AlarmReportItem;
      const entry = this.registry.byRef(actor, r, ranges);
      if (typeof entry === 'string') return void out.rejected.push({ index, field: r.vehicleId ? 'vehicleId' : 'plate', message: entry });
      const at = this.ctx.reportTime(r.at, now);
      if (typeof at === 'string') return void out.rejected.push({ index, field: 'at', message: at });
      if ((r.lat === undefined) !== (r.lon === undefined)) return void out.rejected.push({ index, field: r.lat === undefined ? 'lat' : 'lon', message: 'give lat and lon together' });
      this.registry.heard(entry, now);
      const position: Position | null = r.lat !== undefined ? { lat: r.lat, lon: r.lon!, speed: 0, heading: 0, at } : entry.live.position;
      if (r.state === 'cleared') {
        const o = this.openByKey.get(this.alarmKey({ vehicleId: entry.vehicle.id, type: r.type, geofence: null }));
        if (o && o.alarm.active) {
          o.alarm.active = false;
          o.alarm.clearedAt = at;
          writes.push(this.ctx.persist(o.alarm));
          this.ctx.events.emit('alarm', o.alarm, 'updated');
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
  raise(
    entry: VehicleEntry,
    r: { type: AlarmType; severity: Severity; at: number; position: Position | null; geofence: Alarm['geofence']; detail: string },
    now: number,
  ): { alarm: Alarm; repeated: boolean; write: Promise<unknown> } {
    const lateAfterMs = this.ctx.config.lateAlarmAfterSec * 1000;
    const key = this.alarmKey({ vehicleId: entry.vehicle.id, type: r.type, geofence: r.geofence });
    const open = this.openByKey.get(key);
    if (open) {
      const a = open.alarm;
      a.occurrences++;
      a.lastReportAt = Math.max(a.lastReportAt, r.at);
      a.active = true;
      a.clearedAt = null;
      const severity = maxSeverity(a.severity, r.severity);
      const upgraded = severity !== a.severity || (a.late && now - r.at <= lateAfterMs);
      a.severity = severity;
      if (now - r.at <= lateAfterMs) a.late = false;
      if (r.position) a.position = r.position;
      // A catching-up terminal's late report, then the live one; or a warning that turns critical: rules it now matches act.
      if (upgraded && !a.late) this.picture(open, entry, this.linkage.link(open, entry));
      this.ctx.events.emit('alarm', a, 'updated');
      return { alarm: a, repeated: true, write: this.ctx.persist(a) };
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
      late: now - r.at > lateAfterMs,
      detail: r.detail,
      acknowledgedBy: null,
      acknowledgedAt: null,
      closedBy: null,
      closedAt: null,
      closeReason: null,
      note: null,
      linkages: [],
      snapshot: null,
      snapshotError: null,
    };
    const o: OpenAlarm = { alarm, closing: false, linking: Promise.resolve(), timers: [], pictured: false };
    this.open.set(alarm.id, o);
    this.openByKey.set(key, o);
    entry.live.openAlarms++;
    // Linkage starts before the alarm is written: the wall, not the disk, is what a person is waiting for.
    // The picture after both: it waits for the camera, and the alarm waits for nothing.
    if (!alarm.late) this.picture(o, entry, this.linkage.link(o, entry));
    this.ctx.events.emit('alarm', alarm, 'raised');
    return { alarm, repeated: false, write: this.ctx.persist(alarm) };
  }

  /**
   * A vehicle moved to another department (or re-plated) takes its open alarms along, so they are
   * seen and handled by the department that now has it and no longer by the one it left.
   */
  async rehome(entry: VehicleEntry) {
    const v = entry.vehicle;
    const writes: Promise<unknown>[] = [];
    for (const o of this.open.values()) {
      const a = o.alarm;
      if (a.vehicleId !== v.id || (a.departmentId === v.departmentId && a.plate === v.plate && a.category === v.category)) continue;
      Object.assign(a, { departmentId: v.departmentId, plate: v.plate, category: v.category });
      writes.push(this.ctx.persist(a));
      this.ctx.events.emit('alarm', a, 'updated');
    }
    await Promise.all(writes);
  }

  /** A deleted vehicle's open alarms close with it: nobody could handle them any more. (A stop half-way is finished at the next start.) */
  async closeOfVehicle(actor: VehicleActor, vehicleId: string) {
    for (const o of [...this.open.values()]) {
      if (o.alarm.vehicleId === vehicleId) await this.closeAlarm(o, actor, 'handled', 'vehicle deleted', this.ctx.audit(actor, 'alarm.close', o.alarm.id, o.alarm.departmentId, { reason: 'vehicle deleted' }));
    }
  }

  /** Handled alarms whose condition cleared vehicles.clearedCloseAfterSec ago close by themselves. */
  closeCleared(now: number) {
    const closeAfter = this.ctx.config.clearedCloseAfterSec * 1000;
    if (closeAfter <= 0) return;
    for (const o of [...this.open.values()]) {
      const a = o.alarm;
      if (!o.closing && !a.active && a.clearedAt !== null && now - a.clearedAt >= closeAfter) {
        const closing = this.closeAlarm(o, SYSTEM, 'cleared', null, this.ctx.audit(SYSTEM, 'alarm.close', a.id, a.departmentId, { reason: 'cleared', plate: a.plate, type: a.type }));
        void this.ctx.track(closing.catch((err: Error) => this.ctx.log.error({ alarm: a.id, err: err.message }, 'alarm auto-close failed')));
      }
    }
  }

  private async openAlarm(actor: VehicleActor, id: string): Promise<OpenAlarm> {
    const o = this.open.get(id);
    if (o && this.ctx.visible(actor, o.alarm.departmentId)) return o;
    // A closed alarm the actor may see is a conflict, not a missing one.
    const closed = o ? null : await this.getAlarm(actor, id);
    throw closed ? reasoned('GW_ERR_CONFLICT', 'alarmClosed', { alarm: id, by: closed.closedBy ?? '' }, `alarm ${id} is closed (by ${closed.closedBy})`) : notFound(`alarm "${id}"`);
  }

  async acknowledge(actor: VehicleActor, id: string, note: string | undefined): Promise<Alarm> {
    const o = await this.openAlarm(actor, id);
    const a = o.alarm;
    if (o.closing) throw reasoned('GW_ERR_CONFLICT', 'alarmClosing', { alarm: id }, `alarm ${id} is being closed`);
    if (a.state === 'acknowledged') throw reasoned('GW_ERR_CONFLICT', 'alarmAcknowledged', { alarm: id, by: a.acknowledgedBy ?? '' }, `alarm ${id} was acknowledged by ${a.acknowledgedBy}`);
    const before = { ...a };
    // Changed before the write, so a second acknowledgement meanwhile is refused; put back if the write fails.
    Object.assign(a, { state: 'acknowledged', acknowledgedBy: actor.username, acknowledgedAt: this.ctx.clock(), note: note ?? a.note });
    let saved: boolean;
    try {
      saved = await this.ctx.persist(a, this.ctx.audit(actor, 'alarm.acknowledge', id, a.departmentId, { plate: a.plate, type: a.type, note: note ?? null }));
    } catch (err) {
      Object.assign(a, before);
      throw err;
    }
    if (!saved) {
      // Another node closed it and this one has not heard yet: the store keeps it closed.
      Object.assign(a, before);
      const row = await this.ctx.store.alarms.get(id);
      const by = row ? (this.fromRow(row).closedBy ?? '') : '';
      throw reasoned('GW_ERR_CONFLICT', 'alarmClosed', { alarm: id, by }, `alarm ${id} is closed (by ${by})`);
    }
    this.ctx.events.emit('alarm', a, 'acknowledged');
    return a;
  }

  async closeAlarmById(actor: VehicleActor, id: string, note: string | undefined): Promise<Alarm> {
    const o = await this.openAlarm(actor, id);
    return this.closeAlarm(o, actor, 'handled', note ?? null, this.ctx.audit(actor, 'alarm.close', id, o.alarm.departmentId, { plate: o.alarm.plate, type: o.alarm.type, note: note ?? null }));
  }

  private async closeAlarm(o: OpenAlarm, actor: VehicleActor, reason: 'handled' | 'cleared', note: string | null, audit: Omit<AuditEntry, 'seq'> | null): Promise<Alarm> {
    const a = o.alarm;
    if (o.closing) throw reasoned('GW_ERR_CONFLICT', 'alarmClosing', { alarm: a.id }, `alarm ${a.id} is being closed`);
    o.closing = true;
    const next: Alarm = { ...a, state: 'closed', closedBy: actor.username, closedAt: this.ctx.clock(), closeReason: reason, note: note ?? a.note };
    try {
      await this.ctx.persist(next, audit);
    } finally {
      o.closing = false;
    }
    if (this.open.get(a.id) !== o) return a;
    Object.assign(a, next);
    this.open.delete(a.id);
    this.openByKey.delete(this.alarmKey(a));
    o.timers.forEach(clearTimeout);
    const entry = this.registry.get(a.vehicleId);
    if (entry) entry.live.openAlarms = Math.max(0, entry.live.openAlarms - 1);
    this.ctx.events.emit('alarm', a, 'closed');
    // The pop-ups come off once they are up, so none is left behind by a close that overtook them.
    await o.linking;
    const ending = a.linkages.filter((l) => l.endedAt === null);
    await Promise.all(ending.map((l) => this.linkage.endLinkage(l)));
    if (ending.length) await this.ctx.persist(a).catch(() => undefined);
    return a;
  }

  openAlarms(actor: VehicleActor, minSeverity: Severity = 'info'): Alarm[] {
    const ranges = this.ctx.ranges(actor);
    return [...this.open.values()].map((o) => o.alarm).filter((a) => severityRank(a.severity) >= severityRank(minSeverity) && this.ctx.tree.within(a.departmentId, ranges));
  }

  async getAlarm(actor: VehicleActor, id: string): Promise<Alarm> {
    const live = this.open.get(id)?.alarm;
    const row = live ? null : await this.ctx.store.alarms.get(id);
    const a = live ?? (row ? this.fromRow(row) : null);
    if (!a || !this.ctx.visible(actor, a.departmentId)) throw notFound(`alarm "${id}"`);
    return a;
  }

  async snapshot(actor: VehicleActor, id: string) {
    await this.getAlarm(actor, id);
    const shot = await this.ctx.store.alarms.snapshot(id);
    if (!shot) throw notFound(`picture of alarm "${id}"`);
    return shot;
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
    const rows = await this.ctx.store.alarms.list({ ranges: this.ctx.ranges(actor), states: q.state, vehicleId: q.vehicleId, type: q.type, since: q.since, before, limit: q.limit + 1 });
    const items = rows.slice(0, q.limit).map((r) => this.open.get(r.id)?.alarm ?? this.fromRow(r));
    const last = items[items.length - 1];
    return { items, nextCursor: rows.length > q.limit && last ? Buffer.from(`${last.raisedAt}|${last.id}`).toString('base64url') : null };
  }
}

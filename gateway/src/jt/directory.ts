import { notFound } from '../errors.js';
import type { Actor, Registry } from '../registry/service.js';
import type { AuditEntry, JtRefusal, JtTerminalInfo, JtTerminalRecord, Store } from '../store/types.js';
import type { VehicleEntry } from '../vehicles/context.js';

/** A terminal's link as the JT/T 808 service holds it now (service.ts). */
export interface JtLiveLink {
  online: boolean;
  /** Online: when it authenticated; offline: when its link was lost (null if not since the gateway started). */
  since: number | null;
  edition: '2013' | '2019';
  /** address:port of its connection. */
  address: string | null;
  counters: { frames: number; positions: number; alarms: number; errors: number };
}

/** What the directory asks of the running service; without one (jt808.enabled off) every terminal shows offline. */
export interface JtLiveState {
  link(vehicleId: string): JtLiveLink | null;
  /** The vehicle's registration was reset: its link ends, so the terminal registers again. */
  forget(vehicleId: string): void;
}

export interface JtTerminalView {
  sim: string;
  vehicleId: string;
  plate: string;
  departmentId: string;
  departmentName: string;
  online: boolean;
  since: string | null;
  edition: JtTerminalRecord['edition'];
  address: string | null;
  terminalId: string;
  manufacturer: string;
  model: string;
  registeredAt: string;
  lastSeenAt: string | null;
  counters: JtLiveLink['counters'];
}

export interface JtRefusalView extends JtTerminalInfo {
  sim: string;
  address: string;
  reason: JtRefusal['reason'];
  firstAt: string;
  lastAt: string;
  count: number;
}

/** What the directory needs of the vehicle service. */
export interface JtVehicleLookup {
  bySim(sim: string): VehicleEntry | undefined;
  get(id: string): VehicleEntry | undefined;
}

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());
const NO_COUNTERS = Object.freeze({ frames: 0, positions: 0, alarms: 0, errors: 0 });
/** What the network may put in the refused list and the terminal list: printable, bounded. */
export const printable = (s: string, max: number) => s.replace(/[\p{Cc}\p{Cf}\p{Co}\p{Cn}\u2028\u2029]/gu, '?').trim().slice(0, max);

/**
 * JT/T 808 terminals as the admins see them: those that registered (with their link now, when the
 * service runs) and the refused ones, scoped by their vehicle's department like GB devices. A refusal
 * of a SIM no vehicle has is shown only to admins whose scope is the whole system.
 */
export class JtDirectory {
  private readonly clock: () => number;
  live: JtLiveState | null = null;

  constructor(
    private readonly opts: { store: Store; registry: Registry; vehicles: JtVehicleLookup; refusedListSize: number; clock?: () => number },
  ) {
    this.clock = opts.clock ?? Date.now;
  }

  /** Counts a refused attempt with what the terminal sent; the row carries the department of the vehicle the SIM belongs to. */
  async recordRefusal(r: { sim: string; address: string; reason: JtRefusal['reason'] } & Partial<JtTerminalInfo>): Promise<void> {
    const entry = this.opts.vehicles.bySim(r.sim);
    const deptPath = entry ? (this.opts.registry.departments.get(entry.vehicle.departmentId)?.path ?? null) : null;
    await this.opts.store.jt.recordRefusal(
      {
        sim: printable(r.sim, 20) || '?',
        address: printable(r.address, 64),
        reason: r.reason,
        deptPath,
        plate: printable(r.plate ?? '', 32),
        plateColor: r.plateColor ?? 0,
        terminalId: printable(r.terminalId ?? '', 30),
        manufacturer: printable(r.manufacturer ?? '', 30),
        model: printable(r.model ?? '', 30),
        at: this.clock(),
      },
      this.opts.refusedListSize,
    );
  }

  async terminals(actor: Actor): Promise<JtTerminalView[]> {
    const ranges = this.opts.registry.scope(actor);
    const deps = this.opts.registry.departments;
    const out: JtTerminalView[] = [];
    for (const r of await this.opts.store.jt.terminals()) {
      const entry = this.opts.vehicles.get(r.vehicleId);
      if (!entry || !deps.within(entry.vehicle.departmentId, ranges)) continue;
      const link = this.live?.link(r.vehicleId) ?? null;
      const v = entry.vehicle;
      out.push({
        sim: r.sim,
        vehicleId: v.id,
        plate: v.plate,
        departmentId: v.departmentId,
        departmentName: deps.get(v.departmentId)?.name ?? v.departmentId,
        online: link?.online ?? false,
        since: iso(link ? link.since : r.seenAt),
        edition: r.edition,
        address: link?.address ?? r.address,
        terminalId: r.terminalId,
        manufacturer: r.manufacturer,
        model: r.model,
        registeredAt: iso(r.registeredAt)!,
        lastSeenAt: iso(r.seenAt),
        counters: link?.counters ?? NO_COUNTERS,
      });
    }
    // Online first, then by plate: what an admin looks for is who is connected.
    return out.sort((a, b) => Number(b.online) - Number(a.online) || (a.plate < b.plate ? -1 : a.plate > b.plate ? 1 : 0));
  }

  refusalView(r: JtRefusal): JtRefusalView {
    return {
      sim: r.sim,
      address: r.address,
      reason: r.reason,
      plate: r.plate,
      plateColor: r.plateColor,
      terminalId: r.terminalId,
      manufacturer: r.manufacturer,
      model: r.model,
      firstAt: iso(r.firstAt)!,
      lastAt: iso(r.lastAt)!,
      count: r.count,
    };
  }

  async refusals(actor: Actor, limit: number): Promise<JtRefusal[]> {
    return this.opts.store.jt.refusals({ ranges: this.opts.registry.scope(actor), includeUnscoped: this.wholeSystem(actor), limit });
  }

  /** Forgets the SIM's refused attempts the actor can see; rows of other departments (the SIM moved, or another address) stay. */
  async forgetRefusals(actor: Actor, sim: string): Promise<void> {
    const scope = { ranges: this.opts.registry.scope(actor), includeUnscoped: this.wholeSystem(actor) };
    const visible = (await this.opts.store.jt.refusals({ ...scope, limit: this.opts.refusedListSize })).filter((r) => r.sim === sim);
    if (!visible.length) throw notFound(`refused terminal "${sim}"`);
    const audit: Omit<AuditEntry, 'seq'> = { at: this.clock(), actor: actor.username, actorIp: actor.ip, action: 'jt.refusal.delete', target: sim, outcome: 'ok', detail: { rows: visible.length }, scopePath: visible[0]!.deptPath };
    await this.opts.store.jt.deleteRefusals(sim, scope, audit);
  }

  /**
   * Resets a terminal's registration: its auth code is forgotten and its link ends, so the next
   * 0x0100 of its SIM gets a new code. For a vehicle without a terminal id this is how an admin lets
   * another terminal (a replaced unit) register while a code exists (else 0x8100 result 3).
   */
  async forgetTerminal(actor: Actor, sim: string): Promise<void> {
    const record = await this.opts.store.jt.getTerminal(sim);
    const entry = record ? this.opts.vehicles.get(record.vehicleId) : undefined;
    if (!record || !entry || !this.opts.registry.departments.within(entry.vehicle.departmentId, this.opts.registry.scope(actor))) throw notFound(`terminal "${sim}"`);
    const deptPath = this.opts.registry.departments.get(entry.vehicle.departmentId)?.path ?? null;
    const audit: Omit<AuditEntry, 'seq'> = { at: this.clock(), actor: actor.username, actorIp: actor.ip, action: 'jt.terminal.reset', target: sim, outcome: 'ok', detail: { vehicleId: record.vehicleId }, scopePath: deptPath };
    await this.opts.store.jt.deleteTerminal(sim, record.vehicleId, audit);
    this.live?.forget(record.vehicleId);
  }

  /** A scope that holds a root department sees what belongs to no department (refusals of unknown SIMs). */
  private wholeSystem(actor: Actor): boolean {
    return this.opts.registry.scope(actor).some(([from]) => from.split('/').length === 3);
  }
}

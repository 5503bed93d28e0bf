import { GatewayError, ValidationError, notFound, type FieldIssue, reasoned, issue } from '../errors.js';
import type { ImportInput, ImportMode } from '../registry/service.js';
import type { PathRange, Store, VehicleRow } from '../store/types.js';
import { inBbox } from './geo.js';
import { validateVehicleInput, type VehicleDraft } from './input.js';
import type { Vehicle } from './model.js';
import { normalisePlate } from './plate.js';
import { shortId, type ImportIssue, type VehicleActor, type VehicleContext, type VehicleEntry, type VehicleFilters, type VehicleImportReport, type VehicleView } from './context.js';

/** What a registry change sets off in the other sections: fences and open alarms follow the vehicle. */
export interface RegistryFollowers {
  /** The vehicle was changed or moved: its fences are recomputed and its open alarms follow it. */
  changed(entry: VehicleEntry): Promise<void>;
  /** The vehicle is gone: its open alarms close with it. */
  deleted(actor: VehicleActor, entry: VehicleEntry): Promise<void>;
}

/** A SIM as JT/T 808 terminals are matched by it: the digits without their leading zeros. */
export const stripSim = (sim: string) => sim.replace(/^0+/, '');

function encodeCursor(plate: string): string {
  return Buffer.from(plate).toString('base64url');
}

/**
 * The vehicle registry, in SQLite and held in memory (a fleet is thousands, not millions): sorted
 * by plate for paging and filtering, indexed by id and plate for reports, each with its live state.
 */
export class VehicleRegistry {
  private readonly byId = new Map<string, VehicleEntry>();
  private readonly byPlate = new Map<string, VehicleEntry>();
  /** By SIM with its leading zeros stripped, as JT/T 808 terminals are matched (a 2019 terminal pads to 20 digits). */
  private readonly bySimIndex = new Map<string, VehicleEntry>();
  /** Sorted by plate, for paging; rebuilt on registry changes. */
  private sorted: VehicleEntry[] = [];

  constructor(
    private readonly ctx: VehicleContext,
    private readonly followers: RegistryFollowers,
  ) {}

  private get tree() {
    return this.ctx.tree;
  }

  /** The registry and each vehicle's last stored position (offline until it reports again, so not known to be moving either). */
  async load() {
    for (const row of await this.ctx.store.vehicles.all()) this.index(JSON.parse(row.doc) as Vehicle);
    this.resort();
    for (const p of await this.ctx.store.vehicles.latestPositions()) {
      const entry = this.byId.get(p.vehicleId);
      if (!entry) continue;
      entry.live.position = { lat: p.lat, lon: p.lon, speed: p.speed, heading: p.heading, at: p.at };
    }
  }

  /**
   * The registry again from the store (another node changed it): entries keep their live state, and a
   * vehicle no longer stored leaves. Returns those that left.
   */
  async reload(): Promise<VehicleEntry[]> {
    const kept = new Set<string>();
    for (const row of await this.ctx.store.vehicles.all()) {
      const vehicle = JSON.parse(row.doc) as Vehicle;
      kept.add(vehicle.id);
      this.index(vehicle);
    }
    const gone = [...this.byId.values()].filter((e) => !kept.has(e.vehicle.id));
    for (const entry of gone) {
      this.byId.delete(entry.vehicle.id);
      this.byPlate.delete(entry.vehicle.plate);
      this.unindexSim(entry);
    }
    this.resort();
    return gone;
  }

  private index(vehicle: Vehicle) {
    const previous = this.byId.get(vehicle.id);
    if (previous) {
      this.byPlate.delete(previous.vehicle.plate);
      this.unindexSim(previous);
      previous.vehicle = vehicle;
      this.byPlate.set(vehicle.plate, previous);
      this.indexSim(previous);
      return previous;
    }
    const entry: VehicleEntry = { vehicle, live: { position: null, status: 'offline', moving: false, lastReportAt: null, openAlarms: 0 }, fences: new Set() };
    this.byId.set(vehicle.id, entry);
    this.byPlate.set(vehicle.plate, entry);
    this.indexSim(entry);
    return entry;
  }

  private indexSim(entry: VehicleEntry) {
    const sim = stripSim(entry.vehicle.sim);
    if (sim) this.bySimIndex.set(sim, entry);
  }

  private unindexSim(entry: VehicleEntry) {
    const sim = stripSim(entry.vehicle.sim);
    if (sim && this.bySimIndex.get(sim) === entry) this.bySimIndex.delete(sim);
  }

  /** The vehicle whose terminal has this SIM (leading zeros stripped on both sides), without a scope check. */
  bySim(sim: string): VehicleEntry | undefined {
    return this.bySimIndex.get(stripSim(sim));
  }

  private resort() {
    this.sorted = [...this.byId.values()].sort((a, b) => (a.vehicle.plate < b.vehicle.plate ? -1 : a.vehicle.plate > b.vehicle.plate ? 1 : 0));
  }

  view(entry: VehicleEntry): VehicleView {
    return { ...entry.vehicle, departmentName: this.tree.get(entry.vehicle.departmentId)?.name ?? entry.vehicle.departmentId, live: { ...entry.live } };
  }

  entry(actor: VehicleActor, id: string): VehicleEntry {
    const entry = this.byId.get(id);
    if (!entry || !this.ctx.visible(actor, entry.vehicle.departmentId)) throw notFound(`vehicle "${id}"`);
    return entry;
  }

  /** A vehicle by id, without a scope check. */
  get(id: string): VehicleEntry | undefined {
    return this.byId.get(id);
  }

  has(id: string): boolean {
    return this.byId.has(id);
  }

  get size(): number {
    return this.byId.size;
  }

  entries(): Iterable<VehicleEntry> {
    return this.byId.values();
  }

  /** The vehicle a report names by id or plate, or why it cannot be used. */
  byRef(actor: VehicleActor, ref: { vehicleId?: string; plate?: string }, ranges: PathRange[]): VehicleEntry | string {
    if (!ref.vehicleId === !ref.plate) return 'give vehicleId or plate';
    const entry = ref.vehicleId ? this.byId.get(ref.vehicleId) : this.byPlate.get(normalisePlate(ref.plate!));
    if (!entry || !this.ctx.visible(actor, entry.vehicle.departmentId, ranges)) return `no vehicle ${ref.vehicleId ?? ref.plate} in your scope`;
    return entry;
  }

  /** A report arrived: the vehicle is online. */
  heard(entry: VehicleEntry, now: number) {
    entry.live.lastReportAt = now;
    if (entry.live.status === 'offline') {
      entry.live.status = 'online';
      this.ctx.events.emit('status', entry);
    }
  }

  list(actor: VehicleActor, f: VehicleFilters): { items: VehicleEntry[]; nextCursor: string | null } {
    let ranges = this.ctx.ranges(actor);
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
  private async checkDraft(actor: VehicleActor, draft: VehicleDraft, issues: FieldIssue[], ranges = this.ctx.ranges(actor)) {
    if (!this.tree.get(draft.departmentId) || !this.tree.within(draft.departmentId, ranges)) {
      issues.push(issue('departmentId', 'unknownDepartment', { department: draft.departmentId }, `unknown department "${draft.departmentId}"`));
    }
    for (const [i, c] of draft.channels.entries()) {
      try {
        await this.ctx.getSource(actor, c.sourceId);
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
    return { id: v.id, plate: v.plate, departmentId: v.departmentId, deptPath: this.tree.get(v.departmentId)!.path, version: v.version, doc: JSON.stringify(v), sourceIds: v.channels.map((c) => c.sourceId), sim: stripSim(v.sim) };
  }

  private writeRefusal(result: Exclude<Awaited<ReturnType<Store['vehicles']['put']>>, 'ok'>, v: Vehicle): never {
    if (result === 'not-found') throw notFound(`vehicle "${v.id}"`);
    if (result === 'version-conflict') throw new GatewayError('GW_ERR_VERSION_CONFLICT', `vehicle "${v.id}" was changed by someone else`);
    if (result.conflict === 'id') throw reasoned('GW_ERR_CONFLICT', 'taken', { id: v.id }, `id: vehicle "${v.id}" exists`);
    if (result.conflict === 'plate') throw reasoned('GW_ERR_CONFLICT', 'plateTaken', { plate: v.plate }, `plate: ${v.plate} is registered to another vehicle`);
    // A terminal is matched by its SIM: a second vehicle with it would take the first one's positions, alarms and video.
    if (result.conflict === 'sim') throw reasoned('GW_ERR_CONFLICT', 'simTaken', { sim: v.sim }, `sim: ${v.sim} is the SIM of another vehicle`);
    const i = v.channels.findIndex((c) => c.sourceId === result.value);
    throw reasoned('GW_ERR_CONFLICT', 'vehicleChannel', { camera: String(result.value) }, `channels[${i}].sourceId: source "${result.value}" is another vehicle's channel`);
  }

  async create(actor: VehicleActor, raw: Record<string, unknown>): Promise<VehicleEntry> {
    const checked = validateVehicleInput(raw, { requireId: false });
    if (checked.issues) throw new ValidationError(checked.issues);
    const issues: FieldIssue[] = [];
    await this.checkDraft(actor, checked.draft, issues);
    if (issues.length) throw new ValidationError(issues);
    const now = this.ctx.clock();
    const v = this.toVehicle(checked.draft, checked.draft.id ?? shortId('veh'), 1, now, now);
    const result = await this.ctx.store.vehicles.put(this.row(v), null, this.ctx.audit(actor, 'vehicle.create', v.id, v.departmentId, { plate: v.plate, category: v.category }));
    if (result !== 'ok') this.writeRefusal(result, v);
    const entry = this.index(v);
    this.resort();
    return entry;
  }

  async update(actor: VehicleActor, id: string, raw: Record<string, unknown>, version: number, merge: boolean): Promise<VehicleEntry> {
    const entry = this.entry(actor, id);
    if ('id' in raw && raw.id !== id) throw new ValidationError([issue('id', 'unchangeable', {}, 'cannot be changed')]);
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
    const v = this.toVehicle(checked.draft, id, version + 1, current.createdAt, this.ctx.clock());
    const result = await this.ctx.store.vehicles.put(this.row(v), version, this.ctx.audit(actor, 'vehicle.update', id, v.departmentId, { fromVersion: version, fields: Object.keys(raw) }));
    if (result !== 'ok') this.writeRefusal(result, v);
    this.index(v);
    this.resort();
    await this.followers.changed(entry);
    return entry;
  }

  async delete(actor: VehicleActor, id: string, version: number | undefined): Promise<void> {
    const entry = this.entry(actor, id);
    const result = await this.ctx.store.vehicles.delete(id, version, this.ctx.audit(actor, 'vehicle.delete', id, entry.vehicle.departmentId, { plate: entry.vehicle.plate }));
    if (result === 'version-conflict') throw new GatewayError('GW_ERR_VERSION_CONFLICT', `vehicle "${id}" was changed by someone else`);
    if (result === 'not-found') throw notFound(`vehicle "${id}"`);
    // Gone from memory at once, so no report lands on it while its alarms close.
    this.byId.delete(id);
    this.byPlate.delete(entry.vehicle.plate);
    this.unindexSim(entry);
    this.resort();
    this.ctx.events.emit('removed', entry);
    await this.followers.deleted(actor, entry);
  }

  async importVehicles(actor: VehicleActor, input: AsyncIterable<ImportInput>, mode: ImportMode, maxRows: number): Promise<VehicleImportReport> {
    const errors: ImportIssue[] = [];
    const accepted: { line: number; row: VehicleRow; expectedVersion: number | null; vehicle: Vehicle }[] = [];
    const ids = new Map<string, number>();
    const plates = new Map<string, number>();
    const sourcesSeen = new Map<string, number>();
    const sims = new Map<string, number>();
    const ranges = this.ctx.ranges(actor);
    const now = this.ctx.clock();
    let rows = 0;
    for await (const row of input) {
      if (++rows > maxRows) throw reasoned('GW_ERR_PAYLOAD_TOO_LARGE', 'importRows', { limit: maxRows }, `import: more than ${maxRows} rows (vehicles.importMaxRows); split the file`);
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
          if (first !== undefined) issues.push(issue(field, 'duplicate', { line: first }, `${what} also given at line ${first}`));
          else seen.set(key, row.line);
        };
        dupe(ids, d.id!, 'id', 'the same id is');
        dupe(plates, d.plate, 'plate', `${d.plate} is`);
        if (stripSim(d.sim)) dupe(sims, stripSim(d.sim), 'sim', `SIM ${d.sim} is`);
        d.channels.forEach((c, i) => dupe(sourcesSeen, c.sourceId, `channels[${i}].sourceId`, `source "${c.sourceId}" is`));
        await this.checkDraft(actor, d, issues, ranges);
        const existing = this.byId.get(d.id!);
        if (existing && !this.tree.within(existing.vehicle.departmentId, ranges)) issues.push(issue('id', 'taken', {}, 'is already registered'));
        if (issues.length === 0) {
          const v = this.toVehicle(d, d.id!, (existing?.vehicle.version ?? 0) + 1, existing?.vehicle.createdAt ?? now, now);
          accepted.push({ line: row.line, row: this.row(v), expectedVersion: existing ? existing.vehicle.version : null, vehicle: v });
        }
      }
      for (const i of issues) errors.push({ line: row.line, id: rawId, ...i });
    }
    const report: VehicleImportReport = { mode, applied: false, rows, created: 0, updated: 0, rejected: 0, errors };
    if (!(mode === 'all-or-nothing' && errors.length)) {
      const outcome = await this.ctx.store.vehicles.importRows(
        accepted,
        mode === 'all-or-nothing',
        this.ctx.audit(actor, 'vehicle.import', `${rows} rows`, null, { mode, rows: accepted.length }),
      );
      for (const r of outcome.refused) errors.push({ line: r.line, id: accepted.find((a) => a.line === r.line)?.vehicle.id, field: r.field, message: r.message });
      report.applied = outcome.applied;
      if (outcome.applied) {
        const refusedLines = new Set(outcome.refused.map((r) => r.line));
        for (const a of accepted) {
          if (refusedLines.has(a.line)) continue;
          if (a.expectedVersion === null) report.created++;
          else report.updated++;
          await this.followers.changed(this.index(a.vehicle));
        }
        this.resort();
      }
    }
    errors.sort((a, b) => a.line - b.line);
    report.rejected = new Set(errors.map((e) => e.line)).size;
    return report;
  }
}

import { notFound } from '../errors.js';
import { CompiledShape } from './geo.js';
import { geofenceInput, type GeofenceInput } from './input.js';
import type { Geofence } from './model.js';
import type { VehicleRegistry } from './registry.js';
import { shortId, type VehicleActor, type VehicleContext, type VehicleEntry } from './context.js';

/** Geofences: each applies to the vehicles of its department's subtree; which each vehicle is inside. */
export class Geofences {
  private readonly geofences = new Map<string, { fence: Geofence; shape: CompiledShape }>();

  constructor(
    private readonly ctx: VehicleContext,
    private readonly registry: VehicleRegistry,
  ) {}

  async load() {
    for (const r of await this.ctx.store.rules.all('geofence')) this.setGeofence(JSON.parse(r.doc) as Geofence);
  }

  /** Every geofence again from the store (another node changed them), and which each vehicle is in. */
  async reload() {
    const rows = await this.ctx.store.rules.all('geofence');
    this.geofences.clear();
    for (const r of rows) this.setGeofence(JSON.parse(r.doc) as Geofence);
    for (const entry of this.registry.entries()) this.recomputeFences(entry);
  }

  get size(): number {
    return this.geofences.size;
  }

  /** A geofence by id, without a scope check. */
  fence(id: string): Geofence | undefined {
    return this.geofences.get(id)?.fence;
  }

  private setGeofence(fence: Geofence) {
    this.geofences.set(fence.id, { fence, shape: new CompiledShape(fence.shape) });
  }

  /** Fences that apply to a vehicle: enabled, and over its department (paths read now: departments move). */
  fencesFor(entry: VehicleEntry) {
    const tree = this.ctx.tree;
    const path = tree.get(entry.vehicle.departmentId)?.path ?? '';
    return [...this.geofences.values()].filter((g) => g.fence.enabled && path.startsWith(tree.get(g.fence.departmentId)?.path ?? '\u0000'));
  }

  /** Where the vehicle is now, without raising anything (a new fence, a restart, a moved vehicle). */
  recomputeFences(entry: VehicleEntry) {
    entry.fences.clear();
    const p = entry.live.position;
    if (!p) return;
    for (const g of this.fencesFor(entry)) if (g.shape.contains(p.lon, p.lat)) entry.fences.add(g.fence.id);
  }

  geofenceList(actor: VehicleActor): Geofence[] {
    const ranges = this.ctx.ranges(actor);
    return [...this.geofences.values()].filter((g) => this.ctx.tree.within(g.fence.departmentId, ranges)).map((g) => g.fence);
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
      if (!current || !this.ctx.visible(actor, current.fence.departmentId)) throw notFound(`geofence "${id}"`);
    }
    await this.ctx.putRule('geofence', actor, fence, version);
    this.setGeofence(fence);
    for (const entry of this.registry.entries()) this.recomputeFences(entry);
    return fence;
  }

  async deleteGeofence(actor: VehicleActor, id: string): Promise<void> {
    const current = this.geofences.get(id);
    if (!current || !this.ctx.visible(actor, current.fence.departmentId)) throw notFound(`geofence "${id}"`);
    await this.ctx.store.rules.delete('geofence', id, this.ctx.audit(actor, 'geofence.delete', id, current.fence.departmentId, { name: current.fence.name }));
    this.geofences.delete(id);
    for (const entry of this.registry.entries()) entry.fences.delete(id);
  }
}

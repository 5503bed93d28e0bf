import { randomUUID } from 'node:crypto';
import { isIP } from 'node:net';
import { GatewayError, ValidationError, notFound, type ErrorParams, type FieldIssue, reasoned, issue } from '../errors.js';
import type { NetworkPolicy } from '../lib/cidr.js';
import {
  LEVELS,
  StoreConflict,
  type DepartmentCounts,
  type DepartmentRecord,
  type Health,
  type HealthFailure,
  type ImportRow,
  type Level,
  type PathRange,
  type Protocol,
  type SealedCredential,
  type SourceCursor,
  type SourceQuery,
  type SourceRecord,
  type SourceWrite,
  type Store,
} from '../store/types.js';
import type { CredentialSealer } from './credentials.js';
import { DepartmentTree, type DepartmentNode } from './departments.js';
import { storedInput, validateSourceInput, type SourceDraft } from './source-input.js';
import { allowedAddresses, checkHost, displayUrl, type Resolver } from './url-policy.js';

/** Who is asking. The auth module's principal satisfies this; the registry needs no more of it. */
export interface Actor {
  id: string;
  username: string;
  ip: string;
  scopes: string[];
}

export interface SourceView {
  id: string;
  name: string;
  departmentId: string;
  departmentName: string;
  level: Level;
  address: string;
  url: string;
  subUrl: string | null;
  protocol: Protocol;
  username: string | null;
  hasPassword: boolean;
  codec: SourceRecord['codec'];
  lat: number | null;
  lon: number | null;
  tags: string[];
  enabled: boolean;
  /** error is the English message; code and params word it in a page's language (null for rows stored before they were kept). */
  health: { state: Health; error: string | null; code: string | null; params: ErrorParams | null; since: string | null };
  version: number;
  createdAt: string;
  updatedAt: string;
}

export interface ListFilters {
  departmentId?: string;
  level?: Level;
  protocol?: Protocol;
  tag?: string;
  health?: Health;
  enabled?: boolean;
  q?: string;
  bbox?: SourceQuery['bbox'];
  cursor?: string;
  limit: number;
}

export interface ImportIssue extends FieldIssue {
  line: number;
  id?: string;
}

export interface ImportReport {
  mode: ImportMode;
  applied: boolean;
  rows: number;
  created: number;
  updated: number;
  unchanged: number;
  rejected: number;
  errors: ImportIssue[];
}

export type ImportMode = 'all-or-nothing' | 'keep-valid';

/** The stored credential's visible facts; null when the source has none or does not exist. */
type StoredCredential = { username: string | null; hasPassword: boolean } | null;

/** One parsed input row, or the reason it could not be parsed (bad JSON, bad CSV quoting). */
export type ImportInput = { line: number; value: Record<string, unknown> } | { line: number; error: string };

/**
 * Timestamps as ISO text. Rows imported together share their times, and formatting a date costs a
 * noticeable part of a 100-row page, so recent results are remembered.
 */
const isoMemo = new Map<number, string>();
function iso(ms: number | null): string | null {
  if (ms === null) return null;
  let text = isoMemo.get(ms);
  if (text === undefined) {
    if (isoMemo.size >= 4096) isoMemo.clear();
    isoMemo.set(ms, (text = new Date(ms).toISOString()));
  }
  return text;
}

function encodeCursor(cursor: SourceCursor): string {
  return Buffer.from(JSON.stringify(cursor)).toString('base64url');
}

function decodeCursor(cursor: string, text: boolean): SourceCursor {
  try {
    const v: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    if (v && typeof v === 'object') {
      const c = v as Record<string, unknown>;
      if (text && Number.isSafeInteger(c.seq)) return { seq: c.seq as number };
      if (!text && typeof c.path === 'string' && typeof c.id === 'string') return { path: c.path, id: c.id };
    }
  } catch {
    /* reported below */
  }
  throw new GatewayError('GW_ERR_BAD_CURSOR', 'cursor: not a cursor this API returned for this query');
}

export class Registry {
  private tree = new DepartmentTree([]);
  private counts: Promise<Map<string, DepartmentCounts>> | null = null;

  constructor(
    private readonly store: Store,
    private readonly sealer: CredentialSealer,
    private readonly networks: NetworkPolicy,
    private readonly resolve: Resolver,
    private readonly clock: () => number = Date.now,
  ) {}

  async init(): Promise<void> {
    await this.reloadTree();
  }

  private async reloadTree() {
    this.tree = new DepartmentTree(await this.store.departments.all());
  }

  private async treeChanged() {
    await this.reloadTree();
    this.onDepartmentsChanged?.();
  }

  /** Cluster mode: told after this node changed the department tree, so app.ts tells the other nodes. */
  onDepartmentsChanged: (() => void) | null = null;
  /** Cluster mode: other nodes add sources and write their health too, so the counts are read again after this long. */
  countsMaxAgeMs = Infinity;
  private countsAt = 0;

  /** The department tree again from the store: another node changed it. */
  async reloadDepartments(): Promise<void> {
    await this.reloadTree();
    this.changed();
  }

  /** Forget cached counts after a change to sources or their health. */
  private changed() {
    this.counts = null;
  }

  get departments(): DepartmentTree {
    return this.tree;
  }

  scope(actor: Actor): PathRange[] {
    return this.tree.rangesFor(actor.scopes);
  }

  private audit(
    actor: Actor,
    action: string,
    target: string,
    scopePath: string | null,
    detail: Record<string, unknown> = {},
    outcome: 'ok' | 'denied' | 'failed' = 'ok',
  ) {
    return this.store.audit.append({ at: this.clock(), actor: actor.username, actorIp: actor.ip, action, target, outcome, detail, scopePath });
  }

  // ---- departments -------------------------------------------------------------------------

  async departmentForest(actor: Actor): Promise<DepartmentNode[]> {
    if (this.counts && this.clock() - this.countsAt > this.countsMaxAgeMs) this.counts = null;
    if (!this.counts) {
      this.counts = this.store.sources.countsByDepartment();
      this.countsAt = this.clock();
    }
    return this.tree.forest(this.scope(actor), await this.counts);
  }

  /** A department the actor may see, or 404 (also for one that exists outside their scope). */
  private visibleDepartment(actor: Actor, id: string, field = 'departmentId'): DepartmentRecord {
    const dep = this.tree.get(id);
    if (!dep || !this.tree.within(id, this.scope(actor))) {
      throw new GatewayError('GW_ERR_NOT_FOUND', `${field}: department "${id}" not found`);
    }
    return dep;
  }

  async createDepartment(actor: Actor, input: { id: string; name: string; parentId: string; level: Level }) {
    const parent = this.visibleDepartment(actor, input.parentId, 'parentId');
    this.checkLevel(parent.level, input.level);
    try {
      const dep = await this.store.departments.create(
        { id: input.id, name: input.name, parentId: parent.id, level: input.level, path: `${parent.path}${input.id}/` },
        this.clock(),
      );
      await this.treeChanged();
      await this.audit(actor, 'department.create', dep.id, dep.path, { name: dep.name, parentId: dep.parentId, level: dep.level });
      return dep;
    } catch (err) {
      if (err instanceof StoreConflict) throw reasoned('GW_ERR_CONFLICT', 'taken', { id: String(input.id) }, `id: department "${input.id}" already exists`);
      throw err;
    }
  }

  private checkLevel(parentLevel: Level, level: Level) {
    if (LEVELS.indexOf(level) < LEVELS.indexOf(parentLevel)) {
      throw new ValidationError([{ field: 'level', message: `must not be above its parent's level (${parentLevel})` }]);
    }
  }

  async updateDepartment(actor: Actor, id: string, changes: { name?: string; parentId?: string; level?: Level }) {
    const dep = this.visibleDepartment(actor, id, 'id');
    const scope = this.scope(actor);
    if (scope.some(([from]) => from === dep.path) && changes.parentId && changes.parentId !== dep.parentId) {
      throw reasoned('GW_ERR_FORBIDDEN', 'scopeTop', {}, 'parentId: a department at the top of your scope cannot be moved by you');
    }
    let path: string | undefined;
    const parentId = changes.parentId ?? dep.parentId;
    if (changes.parentId && changes.parentId !== dep.parentId) {
      const parent = this.visibleDepartment(actor, changes.parentId, 'parentId');
      if (parent.path.startsWith(dep.path)) throw new ValidationError([{ field: 'parentId', message: 'cannot move a department below itself' }]);
      path = `${parent.path}${dep.id}/`;
    }
    const parentLevel = parentId ? this.tree.get(parentId)?.level : undefined;
    if (parentLevel) this.checkLevel(parentLevel, changes.level ?? dep.level);
    const updated = await this.store.departments.update(id, { ...changes, ...(path ? { path } : {}) }, this.clock());
    await this.treeChanged();
    this.changed();
    await this.audit(actor, 'department.update', id, updated.path, { ...changes });
    return updated;
  }

  async deleteDepartment(actor: Actor, id: string) {
    const dep = this.visibleDepartment(actor, id, 'id');
    if (this.scope(actor).some(([from]) => from === dep.path)) {
      throw reasoned('GW_ERR_FORBIDDEN', 'scopeTop', {}, 'id: the top of your own scope cannot be deleted by you');
    }
    // A scope naming a deleted department would grant access again if the id were ever reused.
    if ((await this.store.users.list()).some((u) => u.scopes.includes(id))) {
      throw reasoned('GW_ERR_CONFLICT', 'departmentInUse', { department: id }, `department "${id}" is still in users' scopes; change them first`);
    }
    if (!(await this.store.departments.delete(id))) {
      throw reasoned('GW_ERR_CONFLICT', 'departmentInUse', { department: id }, `department "${id}" still has departments, sources, walls, vehicles, vehicle rules, GB devices or admission rules below it`);
    }
    await this.treeChanged();
    await this.audit(actor, 'department.delete', id, dep.path);
  }

  // ---- sources -----------------------------------------------------------------------------

  view(r: SourceRecord): SourceView {
    return {
      id: r.id,
      name: r.name,
      departmentId: r.departmentId,
      departmentName: this.tree.get(r.departmentId)?.name ?? r.departmentId,
      level: r.level,
      address: r.address,
      url: displayUrl(r.url, r.username, r.hasPassword),
      subUrl: r.subUrl === null ? null : displayUrl(r.subUrl, r.username, r.hasPassword),
      protocol: r.protocol,
      username: r.username,
      hasPassword: r.hasPassword,
      codec: r.codec,
      lat: r.lat,
      lon: r.lon,
      tags: r.tags,
      enabled: r.enabled,
      health: { state: r.health, error: r.healthError, code: r.healthCode, params: r.healthParams, since: iso(r.healthSince) },
      version: r.version,
      createdAt: iso(r.createdAt)!,
      updatedAt: iso(r.updatedAt)!,
    };
  }

  /** The source if the actor may see it; 404 alike for missing and out-of-scope, so existence does not leak. */
  async getSource(actor: Actor, id: string): Promise<SourceRecord> {
    const r = await this.store.sources.get(id);
    if (!r || !this.tree.within(r.departmentId, this.scope(actor))) throw notFound(`source "${id}"`);
    return r;
  }

  async listSources(actor: Actor, f: ListFilters): Promise<{ items: SourceRecord[]; nextCursor: string | null }> {
    let ranges = this.scope(actor);
    if (f.departmentId) {
      this.visibleDepartment(actor, f.departmentId);
      ranges = this.tree.narrow(ranges, f.departmentId);
    }
    const q = f.q?.trim() || undefined;
    const page = await this.store.sources.list({
      ranges,
      level: f.level,
      protocol: f.protocol,
      tag: f.tag,
      health: f.health,
      enabled: f.enabled,
      text: q,
      bbox: f.bbox,
      after: f.cursor ? decodeCursor(f.cursor, !!q) : undefined,
      limit: f.limit,
    });
    return { items: page.items, nextCursor: page.next ? encodeCursor(page.next) : null };
  }

  /** Every source matching the filters, page by page, for export. */
  async *iterateSources(actor: Actor, f: Omit<ListFilters, 'cursor' | 'limit'>, pageSize = 1000): AsyncGenerator<SourceRecord> {
    let cursor: string | undefined;
    do {
      const page = await this.listSources(actor, { ...f, cursor, limit: pageSize });
      yield* page.items;
      cursor = page.nextCursor ?? undefined;
    } while (cursor);
  }

  /**
   * What the given credentials mean against the stored ones. Passwords are write-only and cannot be
   * read back, so a user name given alone (an export re-imported, a masked URL saved back) keeps the
   * stored password when the name is unchanged; a new name without a password would silently drop it,
   * so that is refused. A password given alone keeps the stored user name.
   */
  private async credentialChange(
    given: SourceDraft['credential'],
    id: string,
    current: StoredCredential | undefined,
    seals?: Map<string, SealedCredential>,
  ): Promise<{ change: SourceWrite['credential'] } | { refusal: string }> {
    if (given === 'keep') return { change: 'keep' };
    if (given.password === undefined || given.username === undefined) {
      if (current === undefined) {
        const r = await this.store.sources.get(id);
        current = r ? { username: r.username, hasPassword: r.hasPassword } : null;
      }
    }
    const username = given.username ?? current?.username ?? '';
    let password: string | null;
    if (given.password !== undefined) password = given.password;
    else if (current && current.username === username) return { change: 'keep' };
    else if (current?.hasPassword) return { refusal: 'required when the user name changes: stored passwords cannot be carried over' };
    else password = null;
    const key = `${username}\u0000${password ?? '\u0000'}`;
    let sealed = seals?.get(key);
    if (!sealed) {
      sealed = this.sealer.seal(username, password);
      seals?.set(key, sealed);
    }
    return { change: sealed };
  }

  /** Checks department scope and networks, seals credentials: a draft becomes a store write. */
  private async toWrite(
    actor: Actor,
    draft: SourceDraft,
    id: string,
    memo?: { seals: Map<string, SealedCredential>; hosts: Map<string, string | null | Promise<string | null>>; vehicles?: Promise<Map<string, string>> },
    current?: StoredCredential,
  ): Promise<{ write?: SourceWrite; issues?: FieldIssue[] }> {
    const issues: FieldIssue[] = [];
    const dep = this.tree.get(draft.departmentId);
    if (!dep || !this.tree.within(dep.id, this.scope(actor))) {
      issues.push(issue('departmentId', 'unknownDepartment', { department: draft.departmentId }, `unknown department "${draft.departmentId}"`));
    }
    if (draft.protocol === 'gb28181') {
      const problem = await this.gbDeviceProblem(actor, draft.url.host, memo?.hosts);
      if (problem) issues.push(problem);
    }
    if (draft.protocol === 'jt1078') {
      if (memo) memo.vehicles ??= this.vehicleDepartments();
      const problem = await this.jtVehicleProblem(actor, draft.url.host, await (memo?.vehicles ?? this.vehicleDepartments()));
      if (problem) issues.push(problem);
    }
    for (const [field, u] of [['url', draft.url], ['subUrl', draft.subUrl]] as const) {
      // The gateway never connects to a push source's host, nor to a GB device's or a vehicle terminal's: the camera comes to it.
      if (!u || draft.protocol === 'rtmp-push' || draft.protocol === 'gb28181' || draft.protocol === 'jt1078') continue;
      // Main and sub-stream share a host, and an import repeats hosts: each is checked once per call.
      let verdict = memo?.hosts.get(u.host);
      if (verdict === undefined) {
        verdict = isIP(u.host) ? this.networks.check(u.host) : checkHost(u.host, this.networks, this.resolve);
        memo?.hosts.set(u.host, verdict);
      }
      const why = typeof verdict === 'string' || verdict === null ? verdict : await verdict;
      if (why) issues.push({ field, message: why });
    }
    if (issues.length || !dep) return { issues };

    const credential = await this.credentialChange(draft.credential, id, current, memo?.seals);
    if ('refusal' in credential) return { issues: [{ field: 'password', message: credential.refusal }] };
    return {
      write: {
        id,
        name: draft.name,
        departmentId: dep.id,
        deptPath: dep.path,
        level: draft.level,
        address: draft.address,
        url: draft.url.url,
        subUrl: draft.subUrl?.url ?? null,
        protocol: draft.protocol,
        codec: draft.codec,
        lat: draft.lat,
        lon: draft.lon,
        tags: draft.tags,
        enabled: draft.enabled,
        credential: credential.change,
      },
    };
  }

  /**
   * A vehicle channel names its vehicle. The vehicle may not exist yet (its channels' sources are
   * registered first, then the vehicle naming them), but one that exists must be in the actor's
   * departments: else an admin of one county could watch another county's vehicle through a source of their own.
   */
  private jtVehicleProblem(actor: Actor, vehicleId: string, vehicleDepartments: Map<string, string>): FieldIssue | null {
    const departmentId = vehicleDepartments.get(vehicleId);
    if (departmentId === undefined || this.tree.within(departmentId, this.scope(actor))) return null;
    return issue('url', 'url', {}, `vehicle ${vehicleId} is not in your departments`);
  }

  /** Each vehicle's department, once per registration call (an import of a fleet's channels reads them once). */
  private async vehicleDepartments(): Promise<Map<string, string>> {
    return new Map((await this.store.vehicles.all()).map((r) => [r.id, r.departmentId]));
  }

  /**
   * A GB channel names the device it comes through, which must be one registered here and in the
   * actor's departments (the same answer for one that exists elsewhere, so existence does not leak).
   */
  private async gbDeviceProblem(actor: Actor, deviceId: string, memo?: Map<string, string | null | Promise<string | null>>): Promise<FieldIssue | null> {
    const key = `gb28181:${deviceId}`;
    let known = memo?.get(key);
    if (known === undefined) {
      const device = await this.store.gb.getDevice(deviceId);
      known = device && this.tree.within(device.departmentId, this.scope(actor)) ? device.id : null;
      memo?.set(key, known);
    }
    if (await known) return null;
    return issue('url', 'url', {}, `GB/T 28181 device ${deviceId} is not registered here; add the device first (its channels then come with its catalog)`);
  }

  private async validWrite(actor: Actor, raw: Record<string, unknown>, id: string | undefined, current: StoredCredential): Promise<SourceWrite> {
    const result = validateSourceInput(raw, { requireId: false });
    if (result.issues) throw new ValidationError(result.issues);
    const { write, issues } = await this.toWrite(actor, result.draft, id ?? result.draft.id ?? randomUUID(), undefined, current);
    if (!write) throw new ValidationError(issues!);
    return write;
  }

  async createSource(actor: Actor, raw: Record<string, unknown>): Promise<SourceRecord> {
    const write = await this.validWrite(actor, raw, undefined, null);
    if (write.credential === 'keep') write.credential = null;
    try {
      const record = await this.store.sources.create(write, this.clock());
      this.changed();
      await this.audit(actor, 'source.create', record.id, record.deptPath, { departmentId: record.departmentId, credential: !!record.username });
      return record;
    } catch (err) {
      // The same words whether the holder is in the caller's departments or not (ids are global, as GB/T 28181 ids are).
      if (err instanceof StoreConflict) throw reasoned('GW_ERR_CONFLICT', 'taken', { id: write.id }, `id: "${write.id}" is already registered`);
      throw err;
    }
  }


  /** Replace (PUT) or merge (PATCH) under optimistic concurrency: the caller's version must be current. */
  async updateSource(actor: Actor, id: string, raw: Record<string, unknown>, version: number, merge: boolean): Promise<SourceRecord> {
    const current = await this.getSource(actor, id);
    if ('id' in raw && raw.id !== id) throw new ValidationError([{ field: 'id', message: 'cannot be changed; create a new source instead' }]);
    const { id: _ignored, ...rest } = raw;
    const input = merge ? { ...storedInput(current), ...rest } : rest;
    // Passwords are write-only, so a replace that leaves them out keeps them; an empty user name removes them.
    const clearCredential = raw.username === null || raw.username === '';
    if (clearCredential) {
      delete input.username;
      delete input.password;
    }
    const write = await this.validWrite(actor, input, id, { username: current.username, hasPassword: current.hasPassword });
    if (clearCredential) write.credential = null;
    const result = await this.store.sources.update(id, write, version, this.clock());
    if (result.status === 'version-conflict') {
      throw new GatewayError('GW_ERR_VERSION_CONFLICT', `source "${id}" was changed by someone else (now version ${result.current.version})`, {
        current: this.view(result.current),
      });
    }
    if (result.status === 'not-found') throw notFound(`source "${id}"`);
    this.changed();
    await this.audit(actor, 'source.update', id, result.record.deptPath, {
      fromVersion: version,
      fields: Object.keys(raw).filter((k) => k !== 'password'),
      credentialChanged: write.credential !== 'keep',
    });
    return result.record;
  }

  async deleteSource(actor: Actor, id: string, version: number | undefined): Promise<void> {
    const current = await this.getSource(actor, id);
    const status = await this.store.sources.delete(id, version);
    if (status === 'version-conflict') throw new GatewayError('GW_ERR_VERSION_CONFLICT', `source "${id}" was changed by someone else`);
    if (status === 'not-found') throw notFound(`source "${id}"`);
    // The vehicle may be another department's: the conflict is named, the vehicle is not.
    if (typeof status === 'object') throw reasoned('GW_ERR_CONFLICT', 'vehicleChannel', { camera: id }, `source "${id}" is a vehicle's camera channel; take it off the vehicle first`);
    this.changed();
    await this.audit(actor, 'source.delete', id, current.deptPath);
  }

  /**
   * Written by the stream engine; emits nothing here (the engine owns the event). In cluster mode the
   * pull's lease token comes along as the fence: false when a write with a higher one came first
   * (this node's pull is stale), and nothing changed.
   */
  async setHealth(id: string, health: Health, failure: HealthFailure | null, fence?: number): Promise<boolean> {
    const written = await this.store.sources.setHealth(id, health, failure, this.clock(), fence);
    if (written) this.changed();
    return written;
  }

  /** Many cameras' health at once, in one write (a GB device's catalog, or all its channels when it goes offline). */
  async setHealthMany(changes: { id: string; health: Health; failure: HealthFailure | null }[]) {
    if (!changes.length) return;
    await this.store.sources.setHealthMany(changes, this.clock());
    this.changed();
  }

  async sealedCredential(id: string) {
    return this.store.sources.sealedCredential(id);
  }

  /** A camera's stored record, without its credential and without a scope check (for views that show only names). */
  async record(id: string): Promise<SourceRecord | null> {
    return this.store.sources.get(id);
  }

  /**
   * What the stream engine needs to pull a camera, with its credential opened. No scope check: the
   * caller checked the viewer's scope when it issued the stream token.
   */
  async pullTarget(id: string): Promise<{ record: SourceRecord; credential: { username: string; password: string | null } | null } | null> {
    const record = await this.record(id);
    if (!record) return null;
    const sealed = record.username !== null ? await this.store.sources.sealedCredential(id) : null;
    const credential = sealed
      ? { username: sealed.username, password: sealed.sealedPassword ? this.sealer.open(sealed.sealedPassword, sealed.fingerprint) : null }
      : null;
    return { record, credential };
  }

  /**
   * The addresses a camera host resolves to now, if the network policy allows every one. Checked
   * again at connect time because DNS can change after registration (rebinding to a denied address).
   */
  async connectAddresses(host: string): Promise<{ addresses: string[] } | { refused: string }> {
    const verdict = await allowedAddresses(host, this.networks, this.resolve);
    return 'unresolved' in verdict ? { refused: `host name does not resolve (${verdict.unresolved})` } : verdict;
  }

  async importSources(actor: Actor, input: AsyncIterable<ImportInput>, mode: ImportMode, maxRows: number): Promise<ImportReport> {
    const errors: ImportIssue[] = [];
    const accepted: ImportRow[] = [];
    const firstLine = new Map<string, number>();
    const memo: { seals: Map<string, SealedCredential>; hosts: Map<string, string | null | Promise<string | null>>; vehicles?: Promise<Map<string, string>> } = { seals: new Map(), hosts: new Map() };
    let rows = 0;
    for await (const row of input) {
      if (++rows > maxRows) {
        throw reasoned('GW_ERR_PAYLOAD_TOO_LARGE', 'importRows', { limit: maxRows }, `import: more than ${maxRows} rows (registry.importMaxRows); split the file`);
      }
      if ('error' in row) {
        errors.push({ line: row.line, field: '(row)', message: row.error });
        continue;
      }
      const id = typeof row.value.id === 'string' ? row.value.id : undefined;
      const result = validateSourceInput(row.value, { requireId: true });
      if (result.issues) {
        for (const i of result.issues) errors.push({ line: row.line, id, ...i });
        continue;
      }
      const draftId = result.draft.id!;
      const seen = firstLine.get(draftId);
      if (seen !== undefined) {
        errors.push({ line: row.line, id, ...issue('id', 'duplicate', { line: seen }, `duplicate id; first given at line ${seen}`) });
        continue;
      }
      firstLine.set(draftId, row.line);
      const { write, issues } = await this.toWrite(actor, result.draft, draftId, memo);
      if (!write) {
        for (const i of issues!) errors.push({ line: row.line, id, ...i });
        continue;
      }
      accepted.push({ line: row.line, write });
    }

    const allOrNothing = mode === 'all-or-nothing';
    const report: ImportReport = { mode, applied: false, rows, created: 0, updated: 0, unchanged: 0, rejected: 0, errors };
    if (!(allOrNothing && errors.length)) {
      const outcome = await this.store.sources.importRows(accepted, this.scope(actor), allOrNothing, this.clock());
      for (const r of outcome.refused) {
        errors.push({ line: r.line, id: r.id, ...issue('id', 'taken', {}, 'is already registered') });
      }
      Object.assign(report, { applied: outcome.applied, created: outcome.created, updated: outcome.updated, unchanged: outcome.unchanged });
      if (outcome.created + outcome.updated) this.changed();
    }
    errors.sort((a, b) => a.line - b.line);
    report.rejected = new Set(errors.map((e) => e.line)).size;
    await this.audit(
      actor,
      'source.import',
      `${rows} rows`,
      this.tree.commonPath(actor.scopes),
      { mode, applied: report.applied, created: report.created, updated: report.updated, unchanged: report.unchanged, rejected: report.rejected },
      report.applied ? 'ok' : 'failed',
    );
    return report;
  }
}

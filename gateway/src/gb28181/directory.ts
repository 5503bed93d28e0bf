import { printableText } from './xml.js';
import { randomUUID } from 'node:crypto';
import { Type, type Static } from '@sinclair/typebox';
import { GatewayError, ValidationError, issue, notFound, reasoned, type FieldIssue } from '../errors.js';
import { literals, schemaCheck } from '../lib/schema-check.js';
import type { CredentialSealer } from '../registry/credentials.js';
import type { Actor, Registry } from '../registry/service.js';
import {
  GB_STREAM_MODES,
  StoreConflict,
  type AuditEntry,
  type GbAdmissionRule,
  type GbDeviceChanges,
  type GbDeviceInfo,
  type GbDeviceRecord,
  type GbPresence,
  type GbRefusal,
  type Store,
} from '../store/types.js';

/** A GB/T 28181 id: 20 decimal digits (centre 8, industry 2, type 3, network 1, serial 6). */
export const GB_ID = /^[0-9]{20}$/;
export const GB_ID_PATTERN = GB_ID.source;

const PASSWORD = { minLength: 4, maxLength: 64 };
const name = Type.String({ minLength: 1, maxLength: 100, pattern: '^[^\\u0000-\\u001f\\u007f]+$' });
const password = Type.String({ ...PASSWORD, pattern: '^[\\u0020-\\u007e]+$', description: 'the digest password; write-only, never returned' });
const streamMode = literals(GB_STREAM_MODES);
const departmentId = Type.String({ minLength: 1, maxLength: 64 });

export const GB_DEVICE_CREATE = Type.Object(
  {
    id: Type.String({ pattern: GB_ID_PATTERN, description: "the device's 20-digit id" }),
    name,
    departmentId,
    password,
    streamMode: Type.Optional({ ...streamMode, description: 'how the device sends live media: UDP, or TCP with the gateway listening (passive) or dialling (active); udp by default' }),
    enabled: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);
export const GB_DEVICE_PATCH = Type.Object(
  {
    name: Type.Optional(name),
    departmentId: Type.Optional(departmentId),
    password: Type.Optional(password),
    streamMode: Type.Optional(streamMode),
    enabled: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);
export const GB_RULE_CREATE = Type.Object(
  {
    prefix: Type.String({ pattern: '^[0-9]{1,20}$', description: 'ids starting with these digits may register; the longest matching prefix wins' }),
    departmentId,
    password,
    streamMode: Type.Optional(streamMode),
  },
  { additionalProperties: false },
);
export type GbDeviceCreate = Static<typeof GB_DEVICE_CREATE>;
export type GbDevicePatch = Static<typeof GB_DEVICE_PATCH>;
export type GbRuleCreate = Static<typeof GB_RULE_CREATE>;

const checkCreate = schemaCheck(GB_DEVICE_CREATE);
const checkPatch = schemaCheck(GB_DEVICE_PATCH);
const checkRule = schemaCheck(GB_RULE_CREATE);

/** A device as the API shows it: presence and info, never its password. */
export interface GbDeviceView {
  id: string;
  name: string;
  departmentId: string;
  departmentName: string;
  streamMode: GbDeviceRecord['streamMode'];
  origin: GbDeviceRecord['origin'];
  ruleId: string | null;
  enabled: boolean;
  hasPassword: boolean;
  online: boolean;
  transport: GbDeviceRecord['transport'];
  address: string | null;
  port: number | null;
  registeredAt: string | null;
  expiresAt: string | null;
  lastKeepaliveAt: string | null;
  manufacturer: string | null;
  model: string | null;
  firmware: string | null;
  channelCount: number;
  catalogAt: string | null;
  createdAt: string;
  updatedAt: string;
}

export interface GbRuleView {
  id: string;
  prefix: string;
  departmentId: string;
  departmentName: string;
  streamMode: GbAdmissionRule['streamMode'];
  createdAt: string;
}

export interface GbRefusalView {
  deviceId: string;
  address: string;
  reason: GbRefusal['reason'];
  firstAt: string;
  lastAt: string;
  count: number;
}

export interface GbDirectoryLog {
  info(o: object, m: string): void;
  warn(o: object, m: string): void;
}

export interface GbDirectoryOptions {
  store: Store;
  sealer: CredentialSealer;
  /** The department tree and scopes; the catalog import goes through it too. */
  registry: Registry;
  /** gb28181.refusedListSize */
  refusedListSize: number;
  log?: GbDirectoryLog;
  clock?: () => number;
}

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());
const deviceOwner = (id: string) => `gb-device:${id}`;
const ruleOwner = (id: string) => `gb-rule:${id}`;
/** What the network may put in the refused list: printable, bounded (an id or address is shown to admins as it came). */
const printable = (s: string, max: number) => s.replace(/[^\x21-\x7e]/g, '?').slice(0, max);

/** The system's own entries in the audit log (a device a rule admitted). */
const SYSTEM = { username: 'system', ip: '-' };

type AuditWrite = Omit<AuditEntry, 'seq'>;
type Cursor = { path: string; id: string };

function encodeCursor(c: Cursor) {
  return Buffer.from(JSON.stringify(c)).toString('base64url');
}
function decodeCursor(text: string): Cursor {
  try {
    const v = JSON.parse(Buffer.from(text, 'base64url').toString('utf8')) as Record<string, unknown>;
    if (typeof v.path === 'string' && typeof v.id === 'string') return { path: v.path, id: v.id };
  } catch {
    /* reported below */
  }
  throw new GatewayError('GW_ERR_BAD_CURSOR', 'cursor: not a cursor this API returned');
}

/**
 * Who may register over GB/T 28181 and what is known of them: the devices an admin added (or a rule
 * admitted), the admission rules, and the refused attempts. Passwords are sealed with the registry's
 * key, opened only for the registrar's digest check, and never returned, logged or put in an error.
 */
export class GbDirectory {
  private readonly store: Store;
  private readonly sealer: CredentialSealer;
  private readonly registry: Registry;
  private readonly clock: () => number;
  private rulesCache: Promise<GbAdmissionRule[]> | null = null;

  constructor(private readonly opts: GbDirectoryOptions) {
    this.store = opts.store;
    this.sealer = opts.sealer;
    this.registry = opts.registry;
    this.clock = opts.clock ?? Date.now;
  }

  // ---- the registrar's side (no actor: the SIP service) ----------------------------------------

  /**
   * Who may register as this id, and with which password: a known, enabled device, else the
   * longest-prefix admission rule, which proposes a device in its department (`proposed`). A proposed
   * device is only written by `admit`, once its digest has passed, so guessing ids under a rule's
   * prefix fills no table. null means refuse ('unknown', or 'disabled': see device()).
   */
  async admission(deviceId: string): Promise<{ device: GbDeviceRecord; password: string; proposed?: boolean } | null> {
    if (!GB_ID.test(deviceId)) return null;
    const known = await this.store.gb.getDevice(deviceId);
    if (known) return this.opened(known);
    const rule = (await this.rules()).filter((r) => deviceId.startsWith(r.prefix)).sort((a, b) => b.prefix.length - a.prefix.length)[0];
    if (!rule) return null;
    const dep = this.registry.departments.get(rule.departmentId);
    if (!dep) return null;
    const password = this.sealer.openSecret(ruleOwner(rule.id), rule.sealedPassword);
    const device: GbDeviceRecord = {
      ...blankGbDevice(deviceId, this.clock()),
      name: deviceId,
      departmentId: dep.id,
      deptPath: dep.path,
      sealedPassword: this.sealer.sealSecret(deviceOwner(deviceId), password),
      streamMode: rule.streamMode,
      origin: 'rule',
      ruleId: rule.id,
    };
    return { device, password, proposed: true };
  }

  /** Writes a device an admission rule proposed, after it proved the rule's password; audited as the system. */
  async admit(device: GbDeviceRecord): Promise<GbDeviceRecord> {
    try {
      await this.store.gb.createDevice(device, this.auditWrite(SYSTEM, 'gb.device.admit', device.id, device.deptPath, { ruleId: device.ruleId, departmentId: device.departmentId }));
    } catch (err) {
      // Two REGISTERs of a new device at once: the first created it.
      if (!(err instanceof StoreConflict)) throw err;
      return (await this.store.gb.getDevice(device.id)) ?? device;
    }
    this.opts.log?.info({ device: device.id, rule: device.ruleId, department: device.departmentId }, 'GB device admitted by an admission rule');
    return device;
  }

  private opened(device: GbDeviceRecord): { device: GbDeviceRecord; password: string } | null {
    if (!device.enabled || !device.sealedPassword) return null;
    return { device, password: this.sealer.openSecret(deviceOwner(device.id), device.sealedPassword) };
  }

  /** A device by id, without scope (the SIP service): tells a disabled device from an unknown one. */
  device(deviceId: string): Promise<GbDeviceRecord | null> {
    return this.store.gb.getDevice(deviceId);
  }

  async recordRefusal(deviceId: string, address: string, reason: GbRefusal['reason']): Promise<void> {
    const id = printable(deviceId, 64) || '?';
    const known = GB_ID.test(id) ? await this.store.gb.getDevice(id) : null;
    await this.store.gb.recordRefusal({ deviceId: id, address: printable(address, 64), reason, deptPath: known?.deptPath ?? null, at: this.clock() }, this.opts.refusedListSize);
  }

  async setPresence(deviceId: string, presence: GbPresence): Promise<void> {
    await this.store.gb.setPresence(deviceId, presence, this.clock());
  }

  /** DeviceInfo's answer; its DeviceName names a device a rule created (still named by its id). */
  async setInfo(deviceId: string, info: GbDeviceInfo & { name?: string }): Promise<void> {
    const clean = (v: string | null | undefined) => (v ? printableText(v, 100) : null);
    await this.store.gb.setInfo(deviceId, { manufacturer: clean(info.manufacturer), model: clean(info.model), firmware: clean(info.firmware), ...(info.name ? { name: printableText(info.name, 100) } : {}) }, this.clock());
  }

  /** After a catalog import: how many channels the device has now. */
  async setCatalog(deviceId: string, channelCount: number): Promise<void> {
    await this.store.gb.setCatalog(deviceId, channelCount, this.clock());
  }

  // ---- the admins' side (REST) -------------------------------------------------------------------

  view(d: GbDeviceRecord): GbDeviceView {
    return {
      id: d.id,
      name: d.name,
      departmentId: d.departmentId,
      departmentName: this.registry.departments.get(d.departmentId)?.name ?? d.departmentId,
      streamMode: d.streamMode,
      origin: d.origin,
      ruleId: d.ruleId,
      enabled: d.enabled,
      hasPassword: d.sealedPassword !== null,
      online: d.online,
      transport: d.transport,
      address: d.address,
      port: d.port,
      registeredAt: iso(d.registeredAt),
      expiresAt: iso(d.expiresAt),
      lastKeepaliveAt: iso(d.lastKeepaliveAt),
      manufacturer: d.manufacturer,
      model: d.model,
      firmware: d.firmware,
      channelCount: d.channelCount,
      catalogAt: iso(d.catalogAt),
      createdAt: iso(d.createdAt)!,
      updatedAt: iso(d.updatedAt)!,
    };
  }

  ruleView(r: GbAdmissionRule): GbRuleView {
    return { id: r.id, prefix: r.prefix, departmentId: r.departmentId, departmentName: this.registry.departments.get(r.departmentId)?.name ?? r.departmentId, streamMode: r.streamMode, createdAt: iso(r.createdAt)! };
  }

  refusalView(r: GbRefusal): GbRefusalView {
    return { deviceId: r.deviceId, address: r.address, reason: r.reason, firstAt: iso(r.firstAt)!, lastAt: iso(r.lastAt)!, count: r.count };
  }

  /** The device if the actor may see it; 404 alike for a missing one and one outside their departments. */
  async get(actor: Actor, id: string): Promise<GbDeviceRecord> {
    const d = GB_ID.test(id) ? await this.store.gb.getDevice(id) : null;
    if (!d || !this.registry.departments.within(d.departmentId, this.registry.scope(actor))) throw notFound(`GB device "${id}"`);
    return d;
  }

  async list(actor: Actor, q: { departmentId?: string; cursor?: string; limit: number }): Promise<{ items: GbDeviceRecord[]; nextCursor: string | null }> {
    let ranges = this.registry.scope(actor);
    if (q.departmentId) {
      this.visibleDepartment(actor, q.departmentId, 'departmentId');
      ranges = this.registry.departments.narrow(ranges, q.departmentId);
    }
    const rows = await this.store.gb.listDevices({ ranges, after: q.cursor ? decodeCursor(q.cursor) : undefined, limit: q.limit + 1 });
    const items = rows.slice(0, q.limit);
    const last = items[items.length - 1];
    return { items, nextCursor: rows.length > q.limit && last ? encodeCursor({ path: last.deptPath, id: last.id }) : null };
  }

  async create(actor: Actor, raw: unknown): Promise<GbDeviceRecord> {
    const input = checkCreate.parse(raw);
    const dep = this.departmentFor(actor, input.departmentId);
    const now = this.clock();
    const device: GbDeviceRecord = {
      ...blankGbDevice(input.id, now),
      name: input.name.trim(),
      departmentId: dep.id,
      deptPath: dep.path,
      sealedPassword: this.sealer.sealSecret(deviceOwner(input.id), input.password),
      streamMode: input.streamMode ?? 'udp',
      enabled: input.enabled ?? true,
    };
    try {
      await this.store.gb.createDevice(device, this.auditWrite(actor, 'gb.device.create', device.id, dep.path, { name: device.name, departmentId: dep.id, streamMode: device.streamMode }));
    } catch (err) {
      if (err instanceof StoreConflict) throw reasoned('GW_ERR_CONFLICT', 'taken', { id: device.id }, `id: GB device "${device.id}" already exists`);
      throw err;
    }
    return device;
  }

  async update(actor: Actor, id: string, raw: unknown): Promise<GbDeviceRecord> {
    const input = checkPatch.parse(raw);
    const current = await this.get(actor, id);
    const changes: GbDeviceChanges = {};
    if (input.name !== undefined) changes.name = input.name.trim();
    if (input.departmentId !== undefined && input.departmentId !== current.departmentId) {
      const dep = this.departmentFor(actor, input.departmentId);
      changes.departmentId = dep.id;
      changes.deptPath = dep.path;
    }
    if (input.password !== undefined) changes.sealedPassword = this.sealer.sealSecret(deviceOwner(id), input.password);
    if (input.streamMode !== undefined) changes.streamMode = input.streamMode;
    if (input.enabled !== undefined) changes.enabled = input.enabled;
    const fields = Object.keys(input).filter((k) => k !== 'password');
    const audit = this.auditWrite(actor, 'gb.device.update', id, changes.deptPath ?? current.deptPath, { fields, passwordChanged: input.password !== undefined });
    const updated = await this.store.gb.updateDevice(id, changes, this.clock(), audit);
    if (!updated) throw notFound(`GB device "${id}"`);
    // Disabled, or a new password: the registration it holds was granted on the old terms.
    if (changes.enabled === false || changes.sealedPassword) this.onRevoked?.(id);
    return updated;
  }

  /** Its channels stay in the registry (an admin removes them as sources); the device can no longer register. */
  async delete(actor: Actor, id: string): Promise<void> {
    const current = await this.get(actor, id);
    if (!(await this.store.gb.deleteDevice(id, this.auditWrite(actor, 'gb.device.delete', id, current.deptPath, {})))) throw notFound(`GB device "${id}"`);
    this.onRevoked?.(id);
  }

  /** Told when a device loses its right to the registration it holds (deleted, disabled, new password): the SIP service drops it. */
  onRevoked: ((deviceId: string) => void) | null = null;

  async listRules(actor: Actor): Promise<GbAdmissionRule[]> {
    const scope = this.registry.scope(actor);
    return (await this.rules()).filter((r) => this.registry.departments.within(r.departmentId, scope));
  }

  async createRule(actor: Actor, raw: unknown): Promise<GbAdmissionRule> {
    const input = checkRule.parse(raw);
    const dep = this.departmentFor(actor, input.departmentId);
    const id = randomUUID();
    const rule: GbAdmissionRule = {
      id,
      prefix: input.prefix,
      departmentId: dep.id,
      deptPath: dep.path,
      sealedPassword: this.sealer.sealSecret(ruleOwner(id), input.password),
      streamMode: input.streamMode ?? 'udp',
      createdAt: this.clock(),
    };
    try {
      await this.store.gb.createRule(rule, this.auditWrite(actor, 'gb.rule.create', id, dep.path, { prefix: rule.prefix, departmentId: dep.id, streamMode: rule.streamMode }));
    } catch (err) {
      if (err instanceof StoreConflict) throw new ValidationError([issue('prefix', 'taken', {}, `an admission rule for prefix ${rule.prefix} already exists`)]);
      throw err;
    } finally {
      this.rulesCache = null;
    }
    return rule;
  }

  async deleteRule(actor: Actor, id: string): Promise<void> {
    const rule = (await this.listRules(actor)).find((r) => r.id === id);
    if (!rule) throw notFound(`admission rule "${id}"`);
    try {
      if (!(await this.store.gb.deleteRule(id, this.auditWrite(actor, 'gb.rule.delete', id, rule.deptPath, { prefix: rule.prefix })))) throw notFound(`admission rule "${id}"`);
    } finally {
      this.rulesCache = null;
    }
  }

  /** Refused attempts of devices in the actor's departments; unknown ids only for those whose scope is the whole system. */
  async refusals(actor: Actor, limit: number): Promise<GbRefusal[]> {
    const ranges = this.registry.scope(actor);
    return this.store.gb.refusals({ ranges, includeUnscoped: this.wholeSystem(actor), limit });
  }

  /** Forgets the device's refused attempts the actor can see; rows of other departments stay. */
  async forgetRefusals(actor: Actor, deviceId: string): Promise<void> {
    const scope = { ranges: this.registry.scope(actor), includeUnscoped: this.wholeSystem(actor) };
    const visible = (await this.store.gb.refusals({ ...scope, limit: this.opts.refusedListSize })).filter((r) => r.deviceId === deviceId);
    if (!visible.length) throw notFound(`refused device "${deviceId}"`);
    await this.store.gb.deleteRefusals(deviceId, scope, this.auditWrite(actor, 'gb.refusal.delete', deviceId, visible[0]!.deptPath, { rows: visible.length }));
  }

  // ---- helpers ---------------------------------------------------------------------------------

  private rules(): Promise<GbAdmissionRule[]> {
    const loading = (this.rulesCache ??= this.store.gb.rules());
    loading.catch(() => (this.rulesCache = null));
    return loading;
  }

  /** A scope that holds a root department sees what belongs to no department (refusals of unknown ids). */
  private wholeSystem(actor: Actor): boolean {
    return this.registry.scope(actor).some(([from]) => from.split('/').length === 3);
  }

  private visibleDepartment(actor: Actor, id: string, field: string) {
    const dep = this.registry.departments.get(id);
    if (!dep || !this.registry.departments.within(id, this.registry.scope(actor))) throw new GatewayError('GW_ERR_NOT_FOUND', `${field}: department "${id}" not found`);
    return dep;
  }

  /** The department a device or rule goes to: it must exist and be in the actor's scope, else the field is refused. */
  private departmentFor(actor: Actor, id: string) {
    const dep = this.registry.departments.get(id);
    if (!dep || !this.registry.departments.within(id, this.registry.scope(actor))) {
      const problem: FieldIssue = issue('departmentId', 'unknownDepartment', { department: id }, `unknown department "${id}"`);
      throw new ValidationError([problem]);
    }
    return dep;
  }

  private auditWrite(actor: { username: string; ip: string }, action: string, target: string, scopePath: string | null, detail: Record<string, unknown>): AuditWrite {
    return { at: this.clock(), actor: actor.username, actorIp: actor.ip, action, target, outcome: 'ok', detail, scopePath };
  }
}

/** A device record with nothing known yet: no department, offline, never registered. */
export function blankGbDevice(id: string, now: number): GbDeviceRecord {
  return {
    id,
    name: id,
    departmentId: '',
    deptPath: '',
    sealedPassword: null,
    streamMode: 'udp',
    origin: 'admin',
    ruleId: null,
    enabled: true,
    online: false,
    transport: null,
    address: null,
    port: null,
    registeredAt: null,
    expiresAt: null,
    lastKeepaliveAt: null,
    manufacturer: null,
    model: null,
    firmware: null,
    channelCount: 0,
    catalogAt: null,
    createdAt: now,
    updatedAt: now,
  };
}

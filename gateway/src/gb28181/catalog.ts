import { GatewayError, type ErrorParams } from '../errors.js';
import type { Registry, Actor, ImportInput } from '../registry/service.js';
import { storedInput } from '../registry/source-input.js';
import { gbUrl, parseGbUrl } from '../registry/url-policy.js';
import { LEVELS, type DepartmentRecord, type Health, type HealthFailure, type SourceRecord, type Store } from '../store/types.js';
import type { GbDirectory } from './directory.js';
import { items, printableText, text1, type Manscdp } from './xml.js';

/**
 * A device's catalog (GB/T 28181 §9.5, App. M) into the registry: business groups (215), virtual
 * organisations (216) and civil codes become departments under the device's department, channels
 * become sources with protocol gb28181, so scopes, versions, search and health work as for any
 * camera. Answers arrive over several MESSAGEs sharing an SN; they are gathered until SumNum items
 * are in (or catalog.timeoutMs passes: then what came is applied and nothing is removed).
 */

/** Tag of a channel its device no longer lists: disabled, not deleted (a wall may show it). */
export const REMOVED_TAG = 'gb:removed';
export const GB_TAG = 'gb28181';

export interface CatalogCounts {
  deviceId: string;
  sn: number | null;
  /** What the device announced (SumNum) and how many items came. */
  sumNum: number | null;
  received: number;
  /** Every announced item came: vanished channels were marked removed. */
  complete: boolean;
  /** The device's channels in the registry after the import (removed ones not counted). */
  channels: number;
  created: number;
  /** Channels whose fields changed (removals are counted in `removed` only). */
  updated: number;
  unchanged: number;
  removed: number;
  departments: { created: number; updated: number };
  skipped: {
    /** Channel ids registered from another device or by hand: not taken over. */
    foreign: number;
    /** Items without a usable id, or rows the registry refused. */
    invalid: number;
    /** Items past catalog.maxChannels. */
    overLimit: number;
  };
  ms: number;
}

export interface CatalogLog {
  info(o: object, m: string): void;
  warn(o: object, m: string): void;
}

export interface CatalogImporterOptions {
  store: Store;
  registry: Registry;
  directory: GbDirectory;
  /** gb28181.catalog.timeoutMs */
  timeoutMs: number;
  /** gb28181.catalog.maxChannels */
  maxChannels: number;
  log?: CatalogLog;
  clock?: () => number;
}

type Item = Record<string, unknown>;

interface Pending {
  deviceId: string;
  sn: number | null;
  items: Map<string, Item>;
  sumNum: number | null;
  received: number;
  overLimit: number;
  /** Items without a DeviceID: counted toward SumNum, never imported. */
  unnamed: number;
  timer: NodeJS.Timeout;
  waiters: { resolve(c: CatalogCounts): void; reject(e: unknown): void }[];
  promise: Promise<CatalogCounts>;
}

/** Unsolicited answers gathered at once per device (a device may push its catalog without a query). */
const MAX_PENDING_PER_DEVICE = 4;
const MAX_PARENT_HOPS = 16;
const MAX_TAGS = 20;

/** The type field of a 20-digit id (digits 11-13, GB/T 28181 App. E). */
const typeOf = (id: string) => (id.length === 20 ? id.slice(10, 13) : '');
const GROUP_TYPES = new Set(['215', '216']);
const CHANNEL_TYPES = new Set(['131', '132']);
/** Types that are never a channel, whatever Parental says: platforms, SIP and media servers, groups. */
const NOT_CHANNEL = new Set(['200', '201', '202', '215', '216']);
/** An administrative region: 2, 4, 6 or 8 digits of a civil code. */
const isCivilCode = (id: string) => /^(?:[0-9]{2}){1,4}$/.test(id);

const clean = (v: unknown, max: number): string => {
  const s = text1(v);
  return s ? printableText(s, max) : '';
};

function coordinate(v: unknown, limit: number): number | null {
  const s = text1(v);
  if (!s || !/^-?[0-9]+(\.[0-9]+)?$/.test(s.trim())) return null;
  const n = Number(s);
  return Number.isFinite(n) && Math.abs(n) <= limit ? n : null;
}

function offline(deviceId: string): HealthFailure {
  const params: ErrorParams = { reason: 'deviceOffline', device: deviceId };
  return { code: 'GW_ERR_CAMERA_UNREACHABLE', message: `GB/T 28181 device ${deviceId} reports the channel off (catalog Status OFF)`, params };
}

export class CatalogImporter {
  private readonly pending = new Map<string, Pending>();
  /** One sync at a time per device, in arrival order: a NOTIFY does not interleave with a catalog. */
  private readonly chains = new Map<string, Promise<unknown>>();
  private readonly clock: () => number;
  private closed = false;

  constructor(private readonly opts: CatalogImporterOptions) {
    this.clock = opts.clock ?? Date.now;
  }

  /** Expect the answer to Query Catalog `sn`; resolves once it is applied (whole, or what came by the timeout). */
  begin(deviceId: string, sn: number): Promise<CatalogCounts> {
    if (this.closed) return Promise.reject(new GatewayError('GW_ERR_UNAVAILABLE', 'the gateway is shutting down'));
    return (this.pending.get(this.key(deviceId, sn)) ?? this.open(deviceId, sn)).promise;
  }

  /**
   * One Response/Catalog message. Items gather by SN; an answer nobody asked for is gathered too (a
   * device pushing its catalog), within a few at once per device. False when it was ignored.
   */
  accept(deviceId: string, parsed: Manscdp): boolean {
    if (this.closed) return false;
    let p = this.pending.get(this.key(deviceId, parsed.sn));
    if (!p) {
      if ([...this.pending.values()].filter((x) => x.deviceId === deviceId).length >= MAX_PENDING_PER_DEVICE) return false;
      p = this.open(deviceId, parsed.sn);
    }
    const sum = text1(parsed.body.SumNum);
    if (p.sumNum === null && sum !== null && /^[0-9]{1,9}$/.test(sum.trim())) p.sumNum = Number(sum);
    const list = items(parsed.body.DeviceList);
    p.received += list.length;
    for (const item of list) {
      const id = text1(item.DeviceID)?.trim();
      if (!id) {
        p.unnamed++;
        continue;
      }
      if (!p.items.has(id) && p.items.size >= this.opts.maxChannels) {
        p.overLimit++;
        continue;
      }
      p.items.set(id, item);
    }
    // Distinct items, not messages' items: a platform that repeats items must not look complete before the rest arrived.
    if (p.sumNum !== null && p.items.size + p.overLimit + p.unnamed >= p.sumNum) this.finish(p, true);
    return true;
  }

  /** Catalog changes a device notifies (SUBSCRIBE/NOTIFY, App. N): each item carries its Event (ADD, UPDATE, DEL, ON, OFF…). */
  applyNotify(deviceId: string, notified: Item[]): Promise<CatalogCounts> {
    if (this.closed) return Promise.reject(new GatewayError('GW_ERR_UNAVAILABLE', 'the gateway is shutting down'));
    const upserts = new Map<string, Item>();
    const removals: string[] = [];
    const status = new Map<string, 'ON' | 'OFF'>();
    for (const item of notified.slice(0, this.opts.maxChannels)) {
      const id = text1(item.DeviceID)?.trim();
      if (!id) continue;
      const event = (text1(item.Event) ?? '').trim().toUpperCase();
      if (event === 'DEL') removals.push(id);
      else if (event === 'ON' || event === 'OFF') status.set(id, event);
      else if (event === 'ADD' || event === 'UPDATE') upserts.set(id, item);
    }
    return this.serial(deviceId, () => this.sync(deviceId, null, upserts, { removeVanished: false, removals, status, received: notified.length, sumNum: null, overLimit: 0 }));
  }

  /** The ids of a device's channels in the registry (removed ones too), for its health when it goes offline. */
  async channelIds(deviceId: string): Promise<string[]> {
    const device = await this.opts.directory.device(deviceId);
    if (!device) return [];
    return [...(await this.existingChannels(this.actorFor(device.departmentId, device.address), deviceId)).keys()];
  }

  close(): void {
    this.closed = true;
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      for (const w of p.waiters) w.reject(new GatewayError('GW_ERR_UNAVAILABLE', 'the gateway is shutting down'));
    }
    this.pending.clear();
  }

  // ---- gathering ---------------------------------------------------------------------------------

  private key(deviceId: string, sn: number | null) {
    return `${deviceId}/${sn ?? '-'}`;
  }

  private open(deviceId: string, sn: number | null): Pending {
    const waiters: Pending['waiters'] = [];
    const promise = new Promise<CatalogCounts>((resolve, reject) => waiters.push({ resolve, reject }));
    // Nobody may be waiting (an unsolicited answer): its failure is logged in finish, not left unhandled.
    promise.catch(() => undefined);
    const p: Pending = { deviceId, sn, items: new Map(), sumNum: null, received: 0, overLimit: 0, unnamed: 0, waiters, promise, timer: setTimeout(() => this.finish(p, false), this.opts.timeoutMs) };
    this.pending.set(this.key(deviceId, sn), p);
    return p;
  }

  private finish(p: Pending, complete: boolean) {
    if (this.pending.get(this.key(p.deviceId, p.sn)) !== p) return;
    this.pending.delete(this.key(p.deviceId, p.sn));
    clearTimeout(p.timer);
    if (!complete) this.opts.log?.warn({ device: p.deviceId, sn: p.sn, sumNum: p.sumNum, received: p.received }, 'GB catalog incomplete at catalog.timeoutMs: applying what came, removing nothing');
    // Items past maxChannels mean the list is cut short: nothing can be called vanished.
    const whole = complete && p.overLimit === 0;
    this.serial(p.deviceId, () =>
      this.sync(p.deviceId, p.sn, p.items, { removeVanished: whole, removals: [], status: null, received: p.received, sumNum: p.sumNum, overLimit: p.overLimit }),
    ).then(
      (counts) => p.waiters.forEach((w) => w.resolve({ ...counts, complete })),
      (err: unknown) => {
        this.opts.log?.warn({ device: p.deviceId, sn: p.sn, err }, 'GB catalog import failed');
        p.waiters.forEach((w) => w.reject(err));
      },
    );
  }

  private serial<T>(deviceId: string, work: () => Promise<T>): Promise<T> {
    const before = this.chains.get(deviceId) ?? Promise.resolve();
    const next = before.then(work, work);
    const tail = next.catch(() => undefined);
    this.chains.set(deviceId, tail);
    void tail.then(() => {
      if (this.chains.get(deviceId) === tail) this.chains.delete(deviceId);
    });
    return next;
  }

  // ---- applying ----------------------------------------------------------------------------------

  /** The importer acts in the device's department as the system (its audit entries say gb28181). */
  private actorFor(departmentId: string, address: string | null): Actor {
    return { id: 'system', username: 'gb28181', ip: address ?? '-', scopes: [departmentId] };
  }

  private async existingChannels(actor: Actor, deviceId: string): Promise<Map<string, SourceRecord>> {
    const mine = new Map<string, SourceRecord>();
    for await (const r of this.opts.registry.iterateSources(actor, { protocol: 'gb28181' })) {
      if (parseGbUrl(r.url)?.deviceId === deviceId) mine.set(r.id, r);
    }
    return mine;
  }

  private async sync(
    deviceId: string,
    sn: number | null,
    all: Map<string, Item>,
    mode: { removeVanished: boolean; removals: string[]; status: Map<string, 'ON' | 'OFF'> | null; received: number; sumNum: number | null; overLimit: number },
  ): Promise<CatalogCounts> {
    const started = this.clock();
    const counts: CatalogCounts = {
      deviceId,
      sn,
      sumNum: mode.sumNum,
      received: mode.received,
      complete: mode.removeVanished,
      channels: 0,
      created: 0,
      updated: 0,
      unchanged: 0,
      removed: 0,
      departments: { created: 0, updated: 0 },
      skipped: { foreign: 0, invalid: 0, overLimit: mode.overLimit },
      ms: 0,
    };
    const device = await this.opts.directory.device(deviceId);
    if (!device) {
      this.opts.log?.warn({ device: deviceId }, 'GB catalog of a device that is no longer registered here: ignored');
      return counts;
    }
    const actor = this.actorFor(device.departmentId, device.address);

    // Directory items, channels, and the other nodes (NVRs, the platform itself) a channel may hang under.
    const groups = new Map<string, Item>();
    const channels = new Map<string, Item>();
    const nodes = new Map<string, Item>();
    for (const [id, item] of all) {
      if (isCivilCode(id) || GROUP_TYPES.has(typeOf(id))) groups.set(id, item);
      else if (!/^[0-9]{20}$/.test(id)) counts.skipped.invalid++;
      else if (CHANNEL_TYPES.has(typeOf(id)) || (clean(item.Parental, 2) === '0' && !NOT_CHANNEL.has(typeOf(id)))) channels.set(id, item);
      else nodes.set(id, item);
    }

    const departmentOf = await this.syncDepartments(actor, device.departmentId, device.id, groups, counts);
    const parentDepartment = (item: Item): string => {
      let current: Item | undefined = item;
      for (let hop = 0; current && hop < MAX_PARENT_HOPS; hop++) {
        const parents = parentIds(current);
        const group = parents.find((id) => departmentOf.has(id));
        if (group) return departmentOf.get(group)!;
        current = parents.map((id) => nodes.get(id)).find((n) => n !== undefined);
      }
      return device.departmentId;
    };

    const existing = await this.existingChannels(actor, deviceId);
    const rows: ImportInput[] = [];
    const accepted = new Set<string>();
    let line = 0;
    for (const [id, item] of channels) {
      const before = existing.get(id);
      if (!before) {
        const holder = await this.opts.store.sources.get(id);
        if (holder) {
          counts.skipped.foreign++;
          continue;
        }
      }
      const lon = coordinate(item.Longitude, 180);
      const lat = coordinate(item.Latitude, 90);
      const located = lat !== null && lon !== null && !(lat === 0 && lon === 0);
      const manufacturer = clean(item.Manufacturer, 32).replace(/[|,;]/g, ' ').trim();
      const tags = [...new Set([...(before?.tags ?? []).filter((t) => t !== REMOVED_TAG), GB_TAG, ...(manufacturer ? [manufacturer] : [])])].slice(0, MAX_TAGS);
      const sub = hasSubStream(item);
      rows.push({
        line: ++line,
        value: {
          id,
          name: clean(item.Name, 200) || id,
          departmentId: parentDepartment(item),
          level: before?.level ?? 'site',
          address: clean(item.Address, 300),
          url: gbUrl(deviceId, id),
          subUrl: sub ? gbUrl(deviceId, id, true) : null,
          protocol: 'gb28181',
          codec: before?.codec ?? 'unknown',
          lat: located ? lat : null,
          lon: located ? lon : null,
          tags,
          // A channel an admin disabled stays disabled; one that was removed and is back is enabled again.
          enabled: before && !before.tags.includes(REMOVED_TAG) ? before.enabled : true,
        },
      });
      accepted.add(id);
    }
    const vanished = mode.removeVanished ? [...existing.keys()].filter((id) => !channels.has(id)) : mode.removals.filter((id) => existing.has(id));
    for (const id of vanished) {
      const r = existing.get(id)!;
      if (r.tags.includes(REMOVED_TAG) && !r.enabled) continue;
      rows.push({ line: ++line, value: { id: r.id, ...storedInput(r), enabled: false, tags: [...r.tags.filter((t) => t !== REMOVED_TAG).slice(0, MAX_TAGS - 1), REMOVED_TAG] } });
      counts.removed++;
    }
    if (counts.skipped.foreign) this.opts.log?.warn({ device: deviceId, foreign: counts.skipped.foreign }, 'GB catalog: channel ids already registered from another device or by hand were not taken over');

    const refused = new Set<string>();
    if (rows.length) {
      const report = await this.opts.registry.importSources(actor, toAsync(rows), 'keep-valid', rows.length);
      // A removal is a row update too; it is counted once, as removed.
      Object.assign(counts, { created: report.created, updated: Math.max(0, report.updated - counts.removed), unchanged: report.unchanged });
      for (const e of report.errors) if (e.id) refused.add(e.id);
      counts.skipped.invalid += refused.size;
      if (report.errors.length) this.opts.log?.warn({ device: deviceId, refused: refused.size, first: report.errors.slice(0, 3) }, 'GB catalog: rows the registry refused');
    }

    // Status ON/OFF is the device's word on each channel: written only where it changes the stored health.
    const statuses = mode.status ?? new Map([...channels].map(([id, item]) => [id, (text1(item.Status) ?? '').trim().toUpperCase()] as const));
    const healthChanges: { id: string; health: Health; failure: HealthFailure | null }[] = [];
    for (const [id, status] of statuses) {
      if ((status !== 'ON' && status !== 'OFF') || refused.has(id) || (!accepted.has(id) && !existing.has(id))) continue;
      const health = status === 'ON' ? 'online' : 'offline';
      if (existing.get(id)?.health === health) continue;
      healthChanges.push({ id, health, failure: health === 'online' ? null : offline(deviceId) });
    }
    await this.opts.registry.setHealthMany(healthChanges);

    const present = new Set([...existing.keys()].filter((id) => !existing.get(id)!.tags.includes(REMOVED_TAG)));
    for (const id of accepted) if (!refused.has(id)) present.add(id);
    for (const id of vanished) present.delete(id);
    counts.channels = present.size;
    await this.opts.directory.setCatalog(deviceId, counts.channels);
    counts.ms = this.clock() - started;
    this.opts.log?.info({ ...counts, device: deviceId }, 'GB catalog applied');
    return counts;
  }

  /**
   * Departments for the directory items, parents first: `gb-<id>` under the department of the item's
   * parent (or the device's), one level below it. A group id already used outside the device's
   * department (another platform's group of the same id) gets `gb-<device>-<id>` instead.
   */
  private async syncDepartments(actor: Actor, baseId: string, deviceId: string, groups: Map<string, Item>, counts: CatalogCounts): Promise<Map<string, string>> {
    const registry = this.opts.registry;
    const resolved = new Map<string, string>();
    const visiting = new Set<string>();
    const resolve = async (id: string): Promise<string> => {
      const done = resolved.get(id);
      if (done) return done;
      visiting.add(id);
      const item = groups.get(id)!;
      const parentItem = parentIds(item, id).find((p) => groups.has(p) && !visiting.has(p));
      const parent = registry.departments.get(parentItem ? await resolve(parentItem) : baseId)!;
      const base = registry.departments.get(baseId)!;
      let depId = `gb-${id}`;
      let current: DepartmentRecord | undefined = registry.departments.get(depId);
      if (current && !current.path.startsWith(base.path)) {
        depId = `gb-${deviceId}-${id}`;
        current = registry.departments.get(depId);
      }
      const name = clean(item.Name, 100) || id;
      const level = LEVELS[Math.min(LEVELS.indexOf(parent.level) + 1, LEVELS.length - 1)]!;
      try {
        if (!current) {
          await registry.createDepartment(actor, { id: depId, name, parentId: parent.id, level });
          counts.departments.created++;
        } else if (current.name !== name || current.parentId !== parent.id) {
          const levelFits = LEVELS.indexOf(current.level) >= LEVELS.indexOf(parent.level);
          await registry.updateDepartment(actor, depId, { name, parentId: parent.id, ...(levelFits ? {} : { level }) });
          counts.departments.updated++;
        }
      } catch (err) {
        // One group the registry will not take (an id taken meanwhile, a move it refuses): its channels go to the parent.
        this.opts.log?.warn({ device: deviceId, group: id, err: (err as Error).message }, 'GB catalog: a directory item did not become a department');
        counts.skipped.invalid++;
        depId = parent.id;
      }
      visiting.delete(id);
      resolved.set(id, depId);
      return depId;
    };
    for (const id of groups.keys()) await resolve(id);
    return resolved;
  }
}

/** The items an item hangs under, nearest first: ParentID (a "/"-path in 2022), its business group, its civil code (or a shorter code's). */
function parentIds(item: Item, self = text1(item.DeviceID) ?? ''): string[] {
  const out: string[] = [];
  const path = (text1(item.ParentID) ?? '').split('/').map((s) => s.trim()).filter(Boolean);
  out.push(...path.reverse());
  const group = text1(item.BusinessGroupID)?.trim();
  if (group) out.push(group);
  if (isCivilCode(self)) {
    for (let n = self.length - 2; n >= 2; n -= 2) out.push(self.slice(0, n));
  } else {
    const civil = text1(item.CivilCode)?.trim();
    if (civil) out.push(civil);
  }
  return out.filter((id) => id !== self);
}

/** Whether the channel offers a sub-stream (GB/T 28181-2022 Info/StreamNumberList lists 1). */
function hasSubStream(item: Item): boolean {
  const info = item.Info;
  if (!info || typeof info !== 'object') return false;
  const list = text1((info as Item).StreamNumberList);
  return !!list && list.split(/[/,\s]+/).includes('1');
}


async function* toAsync<T>(rows: T[]): AsyncGenerator<T> {
  yield* rows;
}

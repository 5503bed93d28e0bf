import { performance } from 'node:perf_hooks';
import type { Redis } from 'ioredis';
import type { Config } from '../config/schema.js';
import { GatewayError, reasoned } from '../errors.js';

export interface CameraLease {
  cameraId: string;
  nodeId: string;
  /** The fencing token: max(counter + 1, Redis TIME in µs) per camera, so a later lease always carries a higher one, even after Redis restarted empty. */
  token: number;
  since: number;
}

/** What the ownership needs of its node (the ClusterNode; tests pass a bare one). */
export interface OwnershipNode {
  readonly id: string;
  readonly prefix: string;
  readonly redis: Redis;
  readonly heartbeatMs: number;
}

interface OwnershipLog {
  warn(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
}

export interface OwnershipOptions {
  leaseMs: number;
  limits: Pick<Config['streams']['limits'], 'departmentPulls'>;
  log: OwnershipLog;
}

/**
 * A lease this node holds, with when it lapses at the latest as this node sees it. Its times are on the
 * monotonic clock (performance.now()): a wall clock that NTP steps back would stretch validUntil, and
 * the node would go on pulling after Redis let the lease go.
 */
interface Held extends CameraLease {
  departments: string[];
  /** The send time of the last renewal that succeeded + leaseMs: past it, Redis may have let the lease go. */
  validUntil: number;
  /** When this node last asked for it: a pull gets a heartbeat to start before its lease counts as unused. */
  askedAt: number;
}

/**
 * The next fencing token of a camera, in a Lua script: max(counter + 1, Redis TIME in microseconds),
 * stored back in the counter (KEYS[2]). The clock keeps tokens growing across a Redis that restarted
 * empty (a plain INCR would start again at 1, below the health fence the database holds); the counter
 * keeps them growing within one microsecond or if the clock steps back. A microsecond count
 * (~1.8e15) is exact in Lua's doubles and a JS number (< 2^53); '%.0f' keeps it out of tostring's
 * 14-digit exponent form.
 */
const NEXT_TOKEN = `
local function next_token(fence_key, t)
  local micros = tonumber(t[1]) * 1000000 + tonumber(t[2])
  local token = (tonumber(redis.call('GET', fence_key)) or 0) + 1
  if micros > token then token = micros end
  token = string.format('%.0f', token)
  redis.call('SET', fence_key, token)
  return token
end
`;

/**
 * Takes a camera's lease when no node holds it, within the cluster-wide department caps, in one step.
 * KEYS: the lease, the fence counter, then one sorted set per capped department the camera is in
 * (members: camera ids; scores: when their lease lapses). ARGV: node id, lease ms, camera id, then
 * each department's cap. Returns {1, value} when the lease is this node's (new or already held),
 * {0, value} when another node holds it, {-1, index} when the index-th department is at its cap.
 */
const ACQUIRE = `${NEXT_TOKEN}
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(ARGV[2])
local current = redis.call('GET', KEYS[1])
if current then
  if string.sub(current, 1, #ARGV[1] + 1) ~= ARGV[1] .. '|' then return {0, current} end
  redis.call('PEXPIRE', KEYS[1], lease)
  for i = 3, #KEYS do redis.call('ZADD', KEYS[i], now + lease, ARGV[3]) end
  return {1, current}
end
for i = 3, #KEYS do
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now)
  if not redis.call('ZSCORE', KEYS[i], ARGV[3]) and redis.call('ZCARD', KEYS[i]) >= tonumber(ARGV[i + 1]) then
    return {-1, tostring(i - 2)}
  end
end
local token = next_token(KEYS[2], t)
local value = ARGV[1] .. '|' .. token .. '|' .. now
redis.call('SET', KEYS[1], value, 'PX', lease)
for i = 3, #KEYS do redis.call('ZADD', KEYS[i], now + lease, ARGV[3]) end
return {1, value}
`;

/**
 * Renews every lease this node holds in one round trip. ARGV: prefix, lease ms, then per lease: its
 * camera id, its value (node|token|since) and its departments (newline-separated). A lease renews while
 * it still holds exactly that value (answer 1). A lease Redis no longer has at all (it restarted empty,
 * or lost it in a failover) is taken again at once under a new, higher token, keeping its since
 * (answer: the new value); the caller sends only leases its own clock still counts as valid, so no
 * other node can have been promised the camera meanwhile. Held by another node: 0.
 */
const RENEW = `${NEXT_TOKEN}
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local prefix = ARGV[1]
local lease = tonumber(ARGV[2])
local out = {}
for i = 3, #ARGV, 3 do
  local camera = ARGV[i]
  local key = prefix .. 'cam:' .. camera
  local current = redis.call('GET', key)
  local answer = 0
  if current == ARGV[i + 1] then
    redis.call('PEXPIRE', key, lease)
    answer = 1
  elseif not current then
    local node, since = string.match(ARGV[i + 1], '^(.*)|%d+|(%d+)$')
    answer = node .. '|' .. next_token(prefix .. 'fence:' .. camera, t) .. '|' .. since
    redis.call('SET', key, answer, 'PX', lease, 'NX')
  end
  if answer ~= 0 then
    for dept in string.gmatch(ARGV[i + 2], '[^\\n]+') do redis.call('ZADD', prefix .. 'dept:' .. dept, now + lease, camera) end
  end
  out[#out + 1] = answer
end
return out
`;

/** A lease and its remaining ms, read in one step (two reads could straddle its expiry). */
const OWNER_WITH_TTL = `
local value = redis.call('GET', KEYS[1])
if not value then return nil end
return {value, redis.call('PTTL', KEYS[1])}
`;

/** Compare-and-delete: the lease goes only while it is still the one this node took. */
const RELEASE = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
for i = 2, #KEYS do redis.call('ZREM', KEYS[i], ARGV[2]) end
return 1
`;

/**
 * Which node pulls which camera. A pull needs the camera's lease in Redis (<prefix>cam:<id>, expiring
 * after cluster.leaseMs unless renewed); the lease carries a fencing token from <prefix>fence:<id>
 * that only grows, and every health write of the pull carries it, so the database refuses a stale
 * node's late write. A lease that fails to renew, or that this node cannot be sure of any more (it was
 * paused past its lease), stops that camera's pull at once through onLost.
 */
export class CameraOwnership {
  private readonly mine = new Map<string, Held>();
  /**
   * The token this node held each camera under once the lease went, for its stopped pull's late writes;
   * forgotten a lease period after the pull ended (forgetAt, monotonic), so the map does not grow by
   * every camera the node ever pulled.
   */
  private readonly lastTokens = new Map<string, { token: number; forgetAt: number }>();
  /** Fires at the earliest validUntil: a lease lapses on time even while a renewal hangs on Redis. */
  private expiryTimer: NodeJS.Timeout | null = null;
  /** Cameras whose acquisition is in flight: two viewers at once make one round trip. */
  private readonly acquiring = new Map<string, Promise<CameraLease>>();
  /** Stops the camera's pull on this node: its lease is gone or may be. Bound by app.ts. */
  onLost: (cameraId: string, reason: string) => void = () => undefined;
  /** Whether this node still pulls the camera: a lease held without a pull (its start was refused) is let go. */
  inUse: (cameraId: string) => boolean = () => true;

  constructor(
    private readonly node: OwnershipNode,
    private readonly opts: OwnershipOptions,
  ) {}

  private key(cameraId: string) {
    return `${this.node.prefix}cam:${cameraId}`;
  }

  /** The lease on a camera, whichever node holds it; null when none does. */
  async owner(cameraId: string): Promise<CameraLease | null> {
    const value = await this.node.redis.get(this.key(cameraId));
    return value === null ? null : parseLease(cameraId, value);
  }

  /**
   * The lease on a camera with the ms Redis keeps it unless its holder renews it; null when none.
   * The TTL is Redis's own count, so a node that waits for another's lease to lapse needs no clock of that node.
   */
  async ownerWithTtl(cameraId: string): Promise<{ lease: CameraLease; ttlMs: number } | null> {
    const answer = (await this.node.redis.eval(OWNER_WITH_TTL, 1, this.key(cameraId))) as [string, number] | null;
    const lease = answer && parseLease(cameraId, answer[0]);
    return lease ? { lease, ttlMs: Math.max(0, answer![1]) } : null;
  }

  /** Every live lease in the cluster (SCAN), for the cluster view. */
  async leases(): Promise<CameraLease[]> {
    const prefix = `${this.node.prefix}cam:`;
    const out: CameraLease[] = [];
    let cursor = '0';
    do {
      const [next, keys] = await this.node.redis.scan(cursor, 'MATCH', `${escapeGlob(prefix)}*`, 'COUNT', 1000);
      cursor = next;
      if (!keys.length) continue;
      const values = await this.node.redis.mget(...keys);
      keys.forEach((k, i) => {
        const lease = values[i] ? parseLease(k.slice(prefix.length), values[i]!) : null;
        if (lease) out.push(lease);
      });
    } while (cursor !== '0');
    return out.sort((a, b) => (a.cameraId < b.cameraId ? -1 : a.cameraId > b.cameraId ? 1 : 0));
  }

  /** This node's leases. */
  held(): CameraLease[] {
    return [...this.mine.values()].map(({ cameraId, nodeId, token, since }) => ({ cameraId, nodeId, token, since }));
  }

  /** The fencing token this node holds the camera under, or null (then it must not write as its puller). */
  fence(cameraId: string): number | null {
    const held = this.mine.get(cameraId);
    return held && performance.now() < held.validUntil ? held.token : null;
  }

  /**
   * The token a health write of this node's pull of the camera carries: the lease's, or, once the lease
   * is lost, the last one it held, which the store refuses as soon as a newer owner has written.
   * Undefined for a camera this node never held.
   */
  writeFence(cameraId: string): number | undefined {
    return this.mine.get(cameraId)?.token ?? this.lastTokens.get(cameraId)?.token;
  }

  /** The capped departments a camera counts against, from its department path (/root/city/traffic/). */
  departmentsOf(deptPath: string): { id: string; cap: number }[] {
    return Object.entries(this.opts.limits.departmentPulls)
      .filter(([id]) => deptPath.includes(`/${id}/`))
      .map(([id, cap]) => ({ id, cap }));
  }

  /**
   * Takes the camera's lease for this node, or confirms it already holds it. Throws OwnedElsewhere
   * (with the owner's lease) when another node holds it, and GW_ERR_CAPACITY when one
   * of its departments pulls its cluster-wide maximum.
   */
  acquire(cameraId: string, deptPath: string): Promise<CameraLease> {
    let pending = this.acquiring.get(cameraId);
    if (!pending) {
      pending = this.acquireOnce(cameraId, deptPath).finally(() => this.acquiring.delete(cameraId));
      this.acquiring.set(cameraId, pending);
    }
    return pending;
  }

  private async acquireOnce(cameraId: string, deptPath: string): Promise<CameraLease> {
    const departments = this.departmentsOf(deptPath);
    const sentAt = performance.now();
    const [status, detail] = (await this.node.redis.eval(
      ACQUIRE,
      2 + departments.length,
      this.key(cameraId),
      `${this.node.prefix}fence:${cameraId}`,
      ...departments.map((d) => `${this.node.prefix}dept:${d.id}`),
      this.node.id,
      String(this.opts.leaseMs),
      cameraId,
      ...departments.map((d) => String(d.cap)),
    )) as [number, string];
    if (status === -1) {
      const { id, cap } = departments[Number(detail) - 1]!;
      throw reasoned('GW_ERR_CAPACITY', 'departmentPulls', { department: id, limit: cap }, `department "${id}" is pulling its maximum of ${cap} cameras across the cluster (streams.limits.departmentPulls)`);
    }
    const lease = parseLease(cameraId, detail);
    if (!lease) throw new Error(`unreadable lease of camera ${cameraId}: ${detail}`);
    if (status === 0) {
      throw new OwnedElsewhere(lease);
    }
    this.mine.set(cameraId, { ...lease, departments: departments.map((d) => d.id), validUntil: sentAt + this.opts.leaseMs, askedAt: sentAt });
    this.lastTokens.delete(cameraId);
    this.armExpiry();
    return lease;
  }

  /**
   * Renews every lease in one round trip (the node's heartbeat). A lease another node holds now, or one
   * not renewed in time, stops its camera's pull; one without a pull any more is let go. A lease Redis
   * lost (a restart that came back empty) while this node's own count of it still runs is taken again
   * under a new token, and the pull goes on: a Redis restart must not take the wall dark.
   */
  async renew(): Promise<void> {
    this.dropExpired();
    this.forgetOldTokens();
    const startedBy = performance.now() - this.node.heartbeatMs;
    for (const held of [...this.mine.values()]) {
      if (held.askedAt < startedBy && !this.acquiring.has(held.cameraId) && !this.inUse(held.cameraId)) await this.release(held.cameraId).catch(() => undefined);
    }
    // Again just before sending: the script re-takes a lost lease only for a node still sure of it.
    this.dropExpired();
    const leases = [...this.mine.values()];
    if (!leases.length) return;
    const sentAt = performance.now();
    const args = leases.flatMap((l) => [l.cameraId, leaseValue(l), l.departments.join('\n')]);
    const answers = (await this.node.redis.eval(RENEW, 0, this.node.prefix, String(this.opts.leaseMs), ...args)) as (number | string)[];
    leases.forEach((l, i) => {
      if (this.mine.get(l.cameraId) !== l) return;
      const answer = answers[i];
      const retaken = typeof answer === 'string' ? parseLease(l.cameraId, answer) : null;
      if (retaken) {
        this.opts.log.info({ camera: l.cameraId, token: retaken.token, was: l.token }, 'camera lease missing from Redis (restarted?): taken again, pull kept');
        l.token = retaken.token;
      }
      if (answer === 1 || retaken) l.validUntil = sentAt + this.opts.leaseMs;
      else this.lose(l.cameraId, 'its lease was taken over or lapsed');
    });
    this.armExpiry();
  }

  /**
   * The heartbeat timer fired lateMs after it was due. Any lease not known to be valid any more is
   * treated as lost before anything else runs: another node may be pulling the camera now.
   */
  noticeLateness(lateMs: number): void {
    if (lateMs > this.node.heartbeatMs) this.opts.log.warn({ lateMs }, 'this node was paused; checking its camera leases');
    this.dropExpired();
  }

  private dropExpired() {
    const now = performance.now();
    for (const held of [...this.mine.values()]) if (now >= held.validUntil) this.lose(held.cameraId, 'its lease was not renewed in time (this node was paused or Redis unreachable)');
  }

  /** (Re)sets the one timer to the earliest validUntil among the held leases; none when nothing is held. */
  private armExpiry() {
    if (this.expiryTimer) clearTimeout(this.expiryTimer);
    this.expiryTimer = null;
    let earliest = Infinity;
    for (const held of this.mine.values()) earliest = Math.min(earliest, held.validUntil);
    if (earliest === Infinity) return;
    this.expiryTimer = setTimeout(() => {
      this.expiryTimer = null;
      this.dropExpired();
      this.armExpiry();
    }, Math.max(1, Math.ceil(earliest - performance.now())));
    this.expiryTimer.unref();
  }

  /** Keeps the token of a lease that went for the late writes of its pull, until a lease period after that pull ends. */
  private keepToken(held: Held) {
    this.lastTokens.set(held.cameraId, { token: held.token, forgetAt: performance.now() + this.opts.leaseMs });
  }

  private forgetOldTokens() {
    const now = performance.now();
    for (const [cameraId, kept] of this.lastTokens) if (now >= kept.forgetAt) this.lastTokens.delete(cameraId);
  }

  private lose(cameraId: string, why: string) {
    const held = this.mine.get(cameraId);
    if (!held) return;
    this.mine.delete(cameraId);
    this.keepToken(held);
    this.armExpiry();
    this.opts.log.warn({ camera: cameraId, why }, 'camera lease lost: stopping its pull');
    this.onLost(cameraId, `this node no longer owns the camera: ${why}`);
  }

  /** Lets the camera go (its pull ended): compare-and-delete, so another node's newer lease stays. */
  async release(cameraId: string): Promise<void> {
    const held = this.mine.get(cameraId);
    const kept = this.lastTokens.get(cameraId);
    // A lost lease's pull has ended only now: its token is kept a lease period from here.
    if (kept) kept.forgetAt = performance.now() + this.opts.leaseMs;
    if (!held) return;
    this.mine.delete(cameraId);
    this.keepToken(held);
    this.armExpiry();
    await this.node.redis.eval(RELEASE, 1 + held.departments.length, this.key(cameraId), ...held.departments.map((d) => `${this.node.prefix}dept:${d}`), leaseValue(held), cameraId);
  }

  /** Lets every lease go (the node leaves the cluster). */
  async releaseAll(): Promise<void> {
    await Promise.all([...this.mine.keys()].map((id) => this.release(id)));
  }
}

/** Another node pulls the camera: the viewer belongs there (viewer routing catches it and redirects). */
export class OwnedElsewhere extends GatewayError {
  constructor(readonly lease: CameraLease) {
    super('GW_ERR_CONFLICT', `camera "${lease.cameraId}" is pulled by node ${lease.nodeId}`);
  }
}

function leaseValue(l: CameraLease): string {
  return `${l.nodeId}|${l.token}|${l.since}`;
}

function parseLease(cameraId: string, value: string): CameraLease | null {
  const m = /^(.*)\|(\d+)\|(\d+)$/.exec(value);
  return m ? { cameraId, nodeId: m[1]!, token: Number(m[2]), since: Number(m[3]) } : null;
}

/** SCAN's MATCH is a glob: a prefix's own *, ?, [ and \ are taken literally. */
function escapeGlob(s: string): string {
  return s.replace(/[*?[\]\\]/g, '\\$&');
}

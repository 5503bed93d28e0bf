import { EventEmitter } from 'node:events';
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';

export interface ClusterLeaderOptions {
  /** A command connection (ClusterNode.redis): the leader never subscribes. */
  redis: Redis;
  prefix: string;
  /** A function when the id is known only later (the node joins once it listens). */
  nodeId: string | (() => string);
  leaseMs: number;
  /** How often the lease is claimed or renewed; at most a third of leaseMs. */
  heartbeatMs: number;
  log: { info(obj: object, msg: string): void; warn(obj: object, msg: string): void };
  /** Monotonic milliseconds (tests of a pause inject one). */
  now?: () => number;
}

/**
 * Renews the lease if it is ours (its value ends with our incarnation, ARGV[3]: the node id before it
 * may have been learnt since), takes it if nobody holds it (a Redis restart emptied it while we led:
 * no step down and up again), else leaves it. 1 = ours now, 0 = someone else's.
 */
const CLAIM = `
local v = redis.call('GET', KEYS[1])
if v == false or string.sub(v, -string.len(ARGV[3])) == ARGV[3] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0`;

const RELEASE = `
local v = redis.call('GET', KEYS[1])
if v and string.sub(v, -string.len(ARGV[1])) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

/**
 * One node at a time runs the cluster's timers (tours, pruning). The leader holds a Redis key with a
 * lease; it counts its lease from when it sent the claim (Redis starts later, so ours ends first) and
 * on its own monotonic clock, so a leader that was paused past its lease (SIGSTOP, a long GC) finds
 * isLeader false the moment it wakes, before any of its timers acts, and steps down even if Redis is
 * unreachable. Work that must run on one node checks isLeader each time it acts, not only on 'change'.
 */
export class ClusterLeader extends EventEmitter<{ change: [boolean] }> {
  private readonly key: string;
  /** Unique per incarnation: a restarted node with the same id is another holder. */
  private readonly incarnation = randomBytes(6).toString('hex');
  private readonly now: () => number;
  private validUntil = 0;
  private leading = false;
  private timer: NodeJS.Timeout | null = null;
  private ticking: Promise<void> = Promise.resolve();
  private closed = false;

  constructor(private readonly opts: ClusterLeaderOptions) {
    super();
    this.key = `${opts.prefix}leader`;
    this.now = opts.now ?? (() => performance.now());
  }

  /** Claims at once, then every heartbeatMs. Returns when the first claim has been answered. */
  async start(): Promise<void> {
    await this.tick();
  }

  private get holder(): string {
    return `${this.nodeId}:${this.incarnation}`;
  }

  private get nodeId(): string {
    return typeof this.opts.nodeId === 'string' ? this.opts.nodeId : this.opts.nodeId();
  }

  get isLeader(): boolean {
    if (this.leading && this.now() >= this.validUntil) this.stepDown('lease lapsed before it was renewed');
    return this.leading;
  }

  /** The node id in the lease, or null when nobody leads (for the cluster view). */
  async current(): Promise<string | null> {
    const v = await this.opts.redis.get(this.key);
    return v === null ? null : v.slice(0, v.lastIndexOf(':'));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.ticking;
    const wasLeading = this.leading;
    this.stepDown('closing');
    if (wasLeading) {
      try {
        // Let the next node take over now instead of after the lease.
        await this.opts.redis.eval(RELEASE, 1, this.key, `:${this.incarnation}`);
      } catch (err) {
        this.opts.log.warn({ err: (err as Error).message }, 'cluster leader: release failed; the lease lapses by itself');
      }
    }
  }

  private tick(): Promise<void> {
    this.ticking = this.claim().finally(() => {
      if (!this.closed) this.timer = setTimeout(() => void this.tick(), this.opts.heartbeatMs);
    });
    return this.ticking;
  }

  private async claim(): Promise<void> {
    // A tick that runs after a pause first notices the lapse, so 'change' false comes before a claim.
    void this.isLeader;
    const sentAt = this.now();
    let ours: boolean;
    try {
      ours = (await this.opts.redis.eval(CLAIM, 1, this.key, this.holder, String(this.opts.leaseMs), `:${this.incarnation}`)) === 1;
    } catch (err) {
      // Keep leading until our own count of the lease runs out; the getter steps down then.
      if (this.leading) this.opts.log.warn({ err: (err as Error).message }, 'cluster leader: renewal failed');
      return;
    }
    if (this.closed) return;
    if (!ours) {
      this.stepDown('another node holds the lease');
      return;
    }
    this.validUntil = sentAt + this.opts.leaseMs;
    if (this.now() >= this.validUntil) {
      // The answer took longer than the lease: it may already be someone else's.
      this.stepDown('the renewal came back after the lease');
      return;
    }
    if (!this.leading) {
      this.leading = true;
      this.opts.log.info({ node: this.nodeId }, 'cluster leader: this node leads');
      this.emit('change', true);
    }
  }

  private stepDown(why: string): void {
    if (!this.leading) return;
    this.leading = false;
    this.validUntil = 0;
    this.opts.log.info({ node: this.nodeId, why }, 'cluster leader: this node no longer leads');
    this.emit('change', false);
  }
}

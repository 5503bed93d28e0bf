import { EventEmitter } from 'node:events';
import { hostname } from 'node:os';
import { performance } from 'node:perf_hooks';
import type { Redis } from 'ioredis';
import type { Config } from '../config/schema.js';
import { GatewayError } from '../errors.js';
import { LinkLocality } from './links.js';
import { CameraOwnership } from './ownership.js';
import { connectRedis, openRedis, type RedisLog } from './redis.js';

export interface NodeLoad {
  sessions: number;
  viewers: number;
  bytesOutPerSec: number;
  /** This process's CPU time over the last heartbeat, in percent of one core. */
  cpuPct: number;
}

export interface NodeInfo {
  id: string;
  /** cluster.advertiseUrl: where viewers and the other nodes reach this node. */
  url: string;
  startedAt: number;
  heartbeatAt: number;
  load: NodeLoad;
}

/** What the node reports as its load; the StreamManager is built after the node, so it is bound later. */
export interface LoadSource {
  sessions: number;
  viewers: number;
  /** Bytes sent to viewers since the start (a counter: the node turns it into a rate). */
  bytesOut: number;
}

type NodeLog = RedisLog & { error(obj: object, msg: string): void };

/**
 * One heartbeat: writes this node's info (expiring after three heartbeats, so a node that died drops
 * out of every list by itself), keeps the index of node ids, and returns every live node's info in
 * the same round trip; ids whose info expired are taken out of the index.
 */
const HEARTBEAT = `
local prefix = ARGV[1]
local index = prefix .. 'nodes'
if ARGV[2] ~= '' then
  redis.call('SET', prefix .. 'node:' .. ARGV[2], ARGV[3], 'PX', ARGV[4])
  redis.call('SADD', index, ARGV[2])
end
local ids = redis.call('SMEMBERS', index)
local out = {}
for _, id in ipairs(ids) do
  local info = redis.call('GET', prefix .. 'node:' .. id)
  if info then out[#out + 1] = info else redis.call('SREM', index, id) end
end
return out
`;

/** A node's heartbeat key is removed only while it is still this node's own (a restarted node of the same id may have written it). */
const LEAVE = `
local info = redis.call('GET', KEYS[1])
if info and string.find(info, ARGV[1], 1, true) then redis.call('DEL', KEYS[1]) end
redis.call('SREM', KEYS[2], ARGV[2])
return 1
`;

/**
 * This gateway as one node of a cluster: it announces itself (id, advertised URL, load) in Redis every
 * cluster.heartbeatMs, keeps the list of live nodes fresh from the same round trip, and renews its
 * camera leases on the same beat. Built before the stream engine; it joins (its first heartbeat) once
 * the HTTP server listens, because with server.port 0 its default id and URL name the port only then.
 */
export class ClusterNode extends EventEmitter<{ nodes: [NodeInfo[]] }> {
  readonly redis: Redis;
  readonly prefix: string;
  readonly ownership: CameraOwnership;
  /** Which node holds each GB device's registration and each vehicle's JT/T 808 link. */
  readonly links: LinkLocality;
  private idValue = '';
  private urlValue = '';
  private readonly startedAt = Date.now();
  private live: NodeInfo[] = [];
  private timer: NodeJS.Timeout | null = null;
  private loadSource: () => LoadSource = () => ({ sessions: 0, viewers: 0, bytesOut: 0 });
  private last = { at: Date.now(), bytesOut: 0, cpu: process.cpuUsage() };
  private load: NodeLoad = { sessions: 0, viewers: 0, bytesOutPerSec: 0, cpuPct: 0 };
  private beating: Promise<void> | null = null;
  private closed = false;
  /** A unique mark of this run in its heartbeat, so leaving never deletes a newer run's key of the same id. */
  private readonly runMark = `"startedAt":${this.startedAt},"run":"${Math.random().toString(36).slice(2)}"`;

  private log: NodeLog;

  private constructor(
    private readonly config: Config['cluster'],
    limits: Config['streams']['limits'],
    log: NodeLog,
  ) {
    super();
    this.log = log;
    // Through the node's current logger: the gateway's logger exists only after the node is opened.
    const current: NodeLog = { info: (o, m) => this.log.info(o, m), warn: (o, m) => this.log.warn(o, m), error: (o, m) => this.log.error(o, m) };
    this.redis = openRedis(config.redisUrl, current, 'wallgate-node');
    this.prefix = config.keyPrefix;
    this.ownership = new CameraOwnership(this, { leaseMs: config.leaseMs, limits, log: current });
    this.links = new LinkLocality(this, config.leaseMs);
  }

  /** Connects to Redis (failing the start, with the address, when it does not answer). */
  static async open(config: Config, log: NodeLog): Promise<ClusterNode> {
    const node = new ClusterNode(config.cluster, config.streams.limits, log);
    try {
      await connectRedis(node.redis, config.cluster.redisUrl);
    } catch (err) {
      node.redis.disconnect();
      throw err;
    }
    return node;
  }

  /** Where the node logs from now on (the gateway's logger, once it exists). */
  setLog(log: NodeLog): void {
    this.log = log;
  }

  /** This node's id: cluster.nodeId, or <hostname>-<port> once it listens. */
  get id(): string {
    return this.idValue;
  }

  /** cluster.advertiseUrl, or http://127.0.0.1:<port> once it listens. */
  get url(): string {
    return this.urlValue;
  }

  get started(): boolean {
    return this.idValue !== '';
  }

  get heartbeatMs(): number {
    return this.config.heartbeatMs;
  }

  get leaseMs(): number {
    return this.config.leaseMs;
  }

  /** Binds what the load is read from (the stream engine, built after the node). */
  measure(source: () => LoadSource): void {
    this.loadSource = source;
  }

  /**
   * Joins the cluster: resolves the id and URL for the port the HTTP server got, writes the first
   * heartbeat and starts the beat. Called once the server listens; a second call does nothing.
   */
  async start(port: number): Promise<void> {
    if (this.started || this.closed) return;
    this.idValue = this.config.nodeId || `${hostname()}-${port}`;
    this.urlValue = this.config.advertiseUrl || `http://127.0.0.1:${port}`;
    this.log.info({ node: this.idValue, url: this.urlValue }, 'joining the cluster');
    await this.beat();
    this.schedule();
  }

  /** Live nodes (a heartbeat within 3 × cluster.heartbeatMs), this one included, sorted by id. */
  nodes(): NodeInfo[] {
    return this.live;
  }

  /** This node's own info as last announced. */
  self(): NodeInfo {
    return { id: this.idValue, url: this.urlValue, startedAt: this.startedAt, heartbeatAt: this.last.at, load: this.load };
  }

  /** Throws GW_ERR_UNAVAILABLE until the node has joined (the HTTP server is not listening yet). */
  requireStarted(): void {
    if (!this.started) throw new GatewayError('GW_ERR_UNAVAILABLE', 'this node has not joined the cluster yet');
  }

  private schedule() {
    if (this.closed) return;
    // Monotonic: a wall clock stepped back by NTP would hide a pause.
    const due = performance.now() + this.config.heartbeatMs;
    this.timer = setTimeout(() => {
      // A timer that fires far later than due means this process was paused (SIGSTOP, a stalled VM):
      // the ownership stops its pulls before anything else runs, since other nodes may hold them now.
      this.ownership.noticeLateness(performance.now() - due);
      this.beating = this.beat().finally(() => {
        this.beating = null;
        this.schedule();
      });
    }, this.config.heartbeatMs);
  }

  private async beat(): Promise<void> {
    this.measureLoad();
    const info = JSON.stringify(this.self()).replace(/}$/, `,${this.runMark}}`);
    try {
      const [infos] = await Promise.all([
        this.redis.eval(HEARTBEAT, 0, this.prefix, this.idValue, info, String(this.config.heartbeatMs * 3)) as Promise<string[]>,
        this.ownership.renew(),
        this.links.renew(),
      ]);
      this.live = infos.map(parseInfo).filter((n): n is NodeInfo => n !== null).sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
      this.emit('nodes', this.live);
    } catch (err) {
      // Redis away: openRedis logs the outage once; the leases lapse by themselves and the ownership fences.
      this.log.warn({ err: (err as Error).message }, 'cluster heartbeat failed');
    }
  }

  private measureLoad() {
    const now = Date.now();
    const src = this.loadSource();
    const cpu = process.cpuUsage();
    const elapsedMs = Math.max(1, now - this.last.at);
    const cpuUs = cpu.user - this.last.cpu.user + (cpu.system - this.last.cpu.system);
    this.load = {
      sessions: src.sessions,
      viewers: src.viewers,
      bytesOutPerSec: Math.max(0, Math.round(((src.bytesOut - this.last.bytesOut) * 1000) / elapsedMs)),
      cpuPct: Math.round((cpuUs / 1000 / elapsedMs) * 1000) / 10,
    };
    this.last = { at: now, bytesOut: src.bytesOut, cpu };
  }

  /**
   * Leaves the cluster: stops the beat, releases every lease this node holds and deletes its heartbeat,
   * so the other nodes place its cameras at once instead of after a lease. Idempotent.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    await this.beating;
    try {
      await Promise.all([this.ownership.releaseAll(), this.links.forgetAll()]);
      if (this.started) await this.redis.eval(LEAVE, 2, `${this.prefix}node:${this.idValue}`, `${this.prefix}nodes`, this.runMark, this.idValue);
    } catch (err) {
      // Redis away: the heartbeat and the leases expire by themselves.
      this.log.warn({ err: (err as Error).message }, 'could not leave the cluster cleanly');
    } finally {
      this.redis.disconnect();
    }
  }
}

function parseInfo(text: string): NodeInfo | null {
  try {
    const o = JSON.parse(text) as NodeInfo;
    return { id: o.id, url: o.url, startedAt: o.startedAt, heartbeatAt: o.heartbeatAt, load: o.load };
  } catch {
    return null;
  }
}

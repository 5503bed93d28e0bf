import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { Redis } from 'ioredis';
import { connectRedis, openRedis, type RedisLog } from './redis.js';

export interface ClusterBusOptions {
  redisUrl: string;
  /** cluster.keyPrefix: every channel is `<prefix>bus:<topic>`. */
  prefix: string;
  /** Carried as each message's sender; a function when the id is known only later (the node joins once it listens). */
  nodeId: string | (() => string);
  log: RedisLog & { error(obj: object, msg: string): void };
  /** The largest message published or parsed (its JSON, in bytes). */
  maxMessageBytes?: number;
  /** How soon a node whose publish failed asks the others to resync again, until that goes through (default 1 s). */
  resyncRetryMs?: number;
}

export const DEFAULT_MAX_BUS_MESSAGE_BYTES = 1024 * 1024;
const DEFAULT_RESYNC_RETRY_MS = 1_000;

type Handler = (message: unknown, from: string) => void;

/** A node that failed to publish while Redis was away asks every node to reload on this topic. */
const RESYNC_TOPIC = '_resync';

/**
 * The nodes' message bus over Redis pub/sub. Pub/sub delivers at most once, so a message is lost only
 * when a connection is: the subscriber reconnecting means this node may have missed messages, and it
 * emits 'resync' (once it is subscribed again) so its listeners reload from the store, which holds
 * everything acknowledged. A publish that failed while Redis was away is covered the same way: when
 * Redis is back the node asks every node to resync, since the others may have missed that message
 * without losing their own subscription; and so is one that timed out while the connection stayed up,
 * which no reconnect follows: the node asks again every resyncRetryMs until the ask goes through.
 */
export class ClusterBus extends EventEmitter<{ resync: [] }> {
  readonly maxMessageBytes: number;
  private readonly handlers = new Map<string, Handler[]>();
  private readonly channelPrefix: string;
  private subscriptionLost = false;
  private subscribing: Promise<unknown> = Promise.resolve();
  private publishFailed = false;
  private resyncRetry: NodeJS.Timeout | null = null;
  private closed = false;
  /** Tells this bus's own messages from the others' even before the node has its id, and across a restart under one id. */
  private readonly instance = randomBytes(8).toString('hex');

  private constructor(
    private readonly opts: ClusterBusOptions,
    private readonly pub: Redis,
    private readonly sub: Redis,
  ) {
    super();
    this.maxMessageBytes = opts.maxMessageBytes ?? DEFAULT_MAX_BUS_MESSAGE_BYTES;
    this.channelPrefix = `${opts.prefix}bus:`;
    this.sub.on('messageBuffer', (channel: Buffer, payload: Buffer) => this.receive(channel.toString(), payload));
    this.sub.on('close', () => {
      if (!this.closed) this.subscriptionLost = true;
    });
    this.sub.on('ready', () => void this.resubscribe());
    this.pub.on('ready', () => void this.announceMissedPublishes());
    this.handlers.set(RESYNC_TOPIC, [() => this.emit('resync')]);
  }

  static async open(opts: ClusterBusOptions): Promise<ClusterBus> {
    const name = typeof opts.nodeId === 'string' ? opts.nodeId : 'node';
    const pub = openRedis(opts.redisUrl, opts.log, `${name}-bus-pub`);
    const sub = openRedis(opts.redisUrl, opts.log, `${name}-bus-sub`);
    try {
      await connectRedis(pub, opts.redisUrl);
      await connectRedis(sub, opts.redisUrl);
    } catch (err) {
      pub.disconnect();
      sub.disconnect();
      throw err;
    }
    const bus = new ClusterBus(opts, pub, sub);
    try {
      await bus.sub.subscribe(bus.channelPrefix + RESYNC_TOPIC);
    } catch (err) {
      await bus.close();
      throw err;
    }
    return bus;
  }

  get nodeId(): string {
    return typeof this.opts.nodeId === 'string' ? this.opts.nodeId : this.opts.nodeId();
  }

  /**
   * Sends a message to every other node. Fails when Redis is unreachable (nothing is queued: a late
   * delta is worse than a resync) or the message is larger than maxMessageBytes.
   */
  async publish(topic: string, message: unknown): Promise<void> {
    if (this.closed) throw new Error('the cluster bus is closed');
    const payload = JSON.stringify({ from: this.nodeId, via: this.instance, message });
    const size = Buffer.byteLength(payload);
    if (size > this.maxMessageBytes) {
      throw new Error(`cluster bus message on ${topic} is ${size} bytes, more than the ${this.maxMessageBytes} a node accepts`);
    }
    try {
      await this.pub.publish(this.channelPrefix + topic, payload);
    } catch (err) {
      this.missedPublish();
      throw err;
    }
  }

  /** Messages on this topic from the other nodes (never this node's own). A handler's throw is logged. */
  subscribe(topic: string, handler: Handler): void {
    const list = this.handlers.get(topic);
    if (list) {
      list.push(handler);
      return;
    }
    this.handlers.set(topic, [handler]);
    if (this.sub.status === 'ready') {
      const done = this.sub.subscribe(this.channelPrefix + topic).catch((err: Error) => {
        // The connection dropped meanwhile; resubscribe() covers this topic when it is back.
        this.opts.log.warn({ topic, err: err.message }, 'cluster bus: subscribe failed; retried when Redis is back');
      });
      this.subscribing = Promise.all([this.subscribing, done]);
    }
  }

  /** Resolves when Redis has confirmed every subscribe() so far (a node starts serving after it). */
  async subscribed(): Promise<void> {
    await this.subscribing;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.resyncRetry) clearTimeout(this.resyncRetry);
    this.handlers.clear();
    await Promise.all([quit(this.pub), quit(this.sub)]);
  }

  private receive(channel: string, payload: Buffer): void {
    if (this.closed || !channel.startsWith(this.channelPrefix)) return;
    const topic = channel.slice(this.channelPrefix.length);
    if (payload.length > this.maxMessageBytes) {
      this.opts.log.warn({ topic, bytes: payload.length }, 'cluster bus: message over the size limit dropped');
      return;
    }
    let envelope: unknown;
    try {
      envelope = JSON.parse(payload.toString('utf8'));
    } catch {
      this.opts.log.warn({ topic }, 'cluster bus: message that is not JSON dropped');
      return;
    }
    if (typeof envelope !== 'object' || envelope === null || typeof (envelope as { from?: unknown }).from !== 'string') {
      this.opts.log.warn({ topic }, 'cluster bus: message without a sender dropped');
      return;
    }
    const { from, via, message } = envelope as { from: string; via?: unknown; message: unknown };
    if (via === this.instance) return;
    for (const handler of this.handlers.get(topic) ?? []) {
      try {
        handler(message, from);
      } catch (err) {
        this.opts.log.error({ topic, from, err: (err as Error).message }, 'cluster bus: handler failed');
      }
    }
  }

  /** After a reconnect: subscribed again (ioredis also does, but this waits for Redis's answer), then resync. */
  private async resubscribe(): Promise<void> {
    if (!this.subscriptionLost || this.closed) return;
    const channels = [...this.handlers.keys()].map((t) => this.channelPrefix + t);
    try {
      await this.sub.subscribe(...channels);
    } catch (err) {
      // Lost again; the next 'ready' tries again, still marked lost.
      this.opts.log.warn({ err: (err as Error).message }, 'cluster bus: resubscribe failed');
      return;
    }
    this.subscriptionLost = false;
    if (!this.closed) this.emit('resync');
  }

  /** The others may have missed a message: they are asked to resync on the publisher's next 'ready' or after resyncRetryMs, whichever comes first. */
  private missedPublish(): void {
    this.publishFailed = true;
    if (this.resyncRetry || this.closed) return;
    this.resyncRetry = setTimeout(() => {
      this.resyncRetry = null;
      void this.announceMissedPublishes();
    }, this.opts.resyncRetryMs ?? DEFAULT_RESYNC_RETRY_MS);
    this.resyncRetry.unref();
  }

  private async announceMissedPublishes(): Promise<void> {
    if (!this.publishFailed || this.closed) return;
    this.publishFailed = false;
    try {
      await this.publish(RESYNC_TOPIC, null);
    } catch {
      // publish() marked it failed again and set the timer: it is asked again.
    }
  }
}

async function quit(redis: Redis): Promise<void> {
  if (redis.status === 'ready') {
    try {
      await redis.quit();
      return;
    } catch {
      // fall through: the connection is going anyway
    }
  }
  redis.disconnect();
}

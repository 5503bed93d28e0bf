import type { Redis } from 'ioredis';

export type LinkKind = 'gb' | 'jt';

/** Deletes a link's record only while it is still this node's (the device may have moved to another node since). */
const FORGET = `
for i = 1, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[1] then redis.call('DEL', KEYS[i]) end
end
return 1
`;

/**
 * Which node holds each GB/T 28181 device's registration and each vehicle's JT/T 808 link: their
 * channels' media can only be pulled there (the device sends its RTP to, and the terminal is commanded
 * through, that node). Each beat the node writes `<prefix>link:gb:<device>` / `<prefix>link:jt:<vehicle>`
 * = its id for every link it holds (expiring after cluster.leaseMs, so a dead node's records go by
 * themselves) and deletes the records of links that ended since the last beat.
 */
export class LinkLocality {
  /** The links this node holds now, read at each beat; bound by app.ts to the GB and JT services. */
  readonly sources: Partial<Record<LinkKind, () => string[]>> = {};
  private published = new Set<string>();

  constructor(
    private readonly node: { readonly id: string; readonly prefix: string; readonly redis: Redis },
    private readonly leaseMs: number,
  ) {}

  private key(kind: LinkKind, id: string) {
    return `${this.node.prefix}link:${kind}:${id}`;
  }

  /** The node holding the link, or null when none does. */
  nodeFor(kind: LinkKind, id: string): Promise<string | null> {
    return this.node.redis.get(this.key(kind, id));
  }

  /** Publishes this node's links and forgets the ones that ended (one round trip each). */
  async renew(): Promise<void> {
    const now = new Set<string>();
    for (const kind of ['gb', 'jt'] as const) for (const id of this.sources[kind]?.() ?? []) now.add(this.key(kind, id));
    const ended = [...this.published].filter((k) => !now.has(k));
    if (now.size) {
      const pipeline = this.node.redis.pipeline();
      for (const k of now) pipeline.set(k, this.node.id, 'PX', this.leaseMs);
      const results = await pipeline.exec();
      const failed = results?.find(([err]) => err);
      if (failed) throw failed[0]!;
    }
    if (ended.length) await this.node.redis.eval(FORGET, ended.length, ...ended, this.node.id);
    this.published = now;
  }

  /** Deletes every record this node published (it leaves the cluster). */
  async forgetAll(): Promise<void> {
    const mine = [...this.published];
    this.published = new Set();
    if (mine.length) await this.node.redis.eval(FORGET, mine.length, ...mine, this.node.id);
  }
}

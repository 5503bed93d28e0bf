/**
 * What a module needs of the cluster to stay in step with the other nodes: the bus
 * (gateway/src/cluster/bus.ts ClusterBus) and the leader (cluster/leader.ts ClusterLeader). Declared
 * here so the walls and the vehicles take them from app.ts without importing the cluster's code.
 */
export interface PeerBus {
  readonly maxMessageBytes: number;
  publish(topic: string, message: unknown): Promise<void>;
  /** Messages on the topic from the other nodes only. */
  subscribe(topic: string, handler: (message: unknown, from: string) => void): void;
  /** The subscription was lost and is back (a Redis restart): reload from the store. */
  on(event: 'resync', listener: () => void): unknown;
}

export interface PeerLeader {
  /** Read it each time before acting: a leader paused past its lease finds it false when it wakes. */
  readonly isLeader: boolean;
  on(event: 'change', listener: (leading: boolean) => void): unknown;
}

/**
 * Publishes and logs a failure instead of throwing: the bus makes every node resync once Redis is back,
 * so a lost message costs a reload, not a wrong picture.
 */
export function share(bus: PeerBus, topic: string, message: unknown, log: { warn(o: object, m: string): void }): void {
  bus.publish(topic, message).catch((err: Error) => log.warn({ topic, err: err.message }, 'cluster: not published to the other nodes'));
}

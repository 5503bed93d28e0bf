/**
 * Gateways in cluster mode in this process: one PostgreSQL database and one Redis key prefix for the
 * test, shared keys, short leases. Each listens on a loopback port (a node joins once it listens).
 */
import { randomBytes } from 'node:crypto';
import type { Test } from 'tap';
import type { Config } from '../../gateway/src/config/schema.js';
import { freshDatabase, redisPrefix, sharedRedisUrl } from './cluster.js';
import type { DeepPartial } from './gateway.js';
import { startStreamingGateway, waitFor, type StreamingGateway } from './streams.js';

export const CLUSTER_TIMINGS = { leaseMs: 1_500, heartbeatMs: 300 };

export interface TestCluster {
  nodes: StreamingGateway[];
  prefix: string;
  pgUrl: string;
  /** The config every node shares (also for a spawned node: see clusterEnv). */
  config: DeepPartial<Config>;
}

export async function clusterConfig(t: Test, over: DeepPartial<Config['cluster']> = {}): Promise<{ config: DeepPartial<Config>; prefix: string; pgUrl: string }> {
  const prefix = redisPrefix();
  const pgUrl = await freshDatabase(t);
  const config: DeepPartial<Config> = {
    store: { engine: 'postgres', postgres: { url: pgUrl } },
    cluster: { enabled: true, redisUrl: sharedRedisUrl(), keyPrefix: prefix, ...CLUSTER_TIMINGS, ...over },
    secrets: { tokenKey: randomBytes(32).toString('base64'), credentialKey: randomBytes(32).toString('base64') },
  };
  return { config, prefix, pgUrl };
}

/** n gateways of one cluster, started one after the other (the first creates the store and its admin), once each lists them all. */
export async function startCluster(
  t: Test,
  n: number,
  opts: { streams?: DeepPartial<Config['streams']>; config?: DeepPartial<Config>; cluster?: DeepPartial<Config['cluster']> } = {},
): Promise<TestCluster> {
  const { config, prefix, pgUrl } = await clusterConfig(t, opts.cluster);
  const merged = { ...opts.config, ...config } as Omit<DeepPartial<Config>, 'streams'>;
  const first = await startStreamingGateway(t, opts.streams, {}, merged);
  const nodes = [first];
  for (let i = 1; i < n; i++) nodes.push(await startStreamingGateway(t, opts.streams, {}, merged, { adminToken: first.adminToken }));
  await joined(nodes);
  return { nodes, prefix, pgUrl, config };
}

/** Waits until every node lists every node. */
export async function joined(nodes: StreamingGateway[]): Promise<void> {
  for (const gw of nodes) {
    await waitFor(
      () => gw.cluster!.nodes().length,
      (count) => count === nodes.length,
      5_000,
      20,
      `node ${gw.cluster!.id} to list all ${nodes.length} nodes`,
    );
  }
}

/** The WALLGATE_* environment of a spawned node of the same cluster (the keys of clusterConfig). */
export function clusterEnv(config: DeepPartial<Config>, extra: Record<string, string> = {}): Record<string, string> {
  const c = config.cluster!;
  return {
    WALLGATE_STORE_ENGINE: 'postgres',
    WALLGATE_STORE_POSTGRES_URL: config.store!.postgres!.url!,
    WALLGATE_CLUSTER_ENABLED: 'true',
    WALLGATE_CLUSTER_REDIS_URL: c.redisUrl!,
    WALLGATE_CLUSTER_KEY_PREFIX: c.keyPrefix!,
    WALLGATE_CLUSTER_LEASE_MS: String(c.leaseMs),
    WALLGATE_CLUSTER_HEARTBEAT_MS: String(c.heartbeatMs),
    WALLGATE_SECRETS_TOKEN_KEY: config.secrets!.tokenKey!,
    WALLGATE_SECRETS_CREDENTIAL_KEY: config.secrets!.credentialKey!,
    ...extra,
  };
}

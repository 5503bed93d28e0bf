import { Redis } from 'ioredis';

export interface RedisLog {
  warn(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
}

/**
 * A Redis connection for the cluster. It reconnects forever (a Redis restart must not end a node),
 * but a command does not wait in a queue while Redis is away: it fails at once, so a lease renewal
 * or a publish knows it did not happen instead of landing seconds late. Errors are logged once per
 * outage, not once per retry; the password in the URL is never logged.
 */
export function openRedis(url: string, log: RedisLog, name: string): Redis {
  const redis = new Redis(url, {
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: 2_000,
    commandTimeout: 2_000,
    retryStrategy: (attempt) => Math.min(50 * attempt, 500),
    connectionName: name,
  });
  let down = false;
  redis.on('error', (err: Error) => {
    if (down) return;
    down = true;
    log.warn({ redis: name, err: err.message }, 'Redis unreachable; retrying');
  });
  redis.on('ready', () => {
    if (!down) return;
    down = false;
    log.info({ redis: name }, 'Redis reachable again');
  });
  return redis;
}

/** Connects, failing with the address (never the password) when Redis does not answer. */
export async function connectRedis(redis: Redis, url: string): Promise<void> {
  try {
    await redis.connect();
  } catch (err) {
    const u = new URL(url);
    throw new Error(`cannot reach Redis at ${u.hostname}:${u.port || 6379} (cluster.redisUrl): ${(err as Error).message}`);
  }
}

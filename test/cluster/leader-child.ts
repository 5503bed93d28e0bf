/**
 * A ClusterLeader in a process of its own, so a test can pause it (SIGSTOP) past its lease. Every
 * 50 ms it "acts" only while it leads, as a tour timer does (and says it is idle otherwise); it prints one
 * JSON line per event.
 * argv: redisUrl prefix nodeId leaseMs heartbeatMs
 */
import { Redis } from 'ioredis';
import { ClusterLeader } from '../../gateway/src/cluster/leader.js';

const [redisUrl, prefix, nodeId, leaseMs, heartbeatMs] = process.argv.slice(2) as [string, string, string, string, string];
const say = (o: object) => process.stdout.write(`${JSON.stringify({ ...o, at: Date.now() })}\n`);
const redis = new Redis(redisUrl, { enableOfflineQueue: false, maxRetriesPerRequest: 1 });
redis.on('error', () => undefined);
await new Promise((r) => redis.once('ready', r));
const log = { info: () => undefined, warn: () => undefined };
const leader = new ClusterLeader({ redis, prefix, nodeId, leaseMs: Number(leaseMs), heartbeatMs: Number(heartbeatMs), log });
leader.on('change', (leading) => say({ change: leading }));
await leader.start();
setInterval(() => {
  say(leader.isLeader ? { act: true } : { idle: true });
}, 50);
say({ started: true });

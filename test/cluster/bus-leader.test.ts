import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { Redis } from 'ioredis';
import t, { type Test } from 'tap';
import { ClusterBus } from '../../gateway/src/cluster/bus.js';
import { ClusterLeader } from '../../gateway/src/cluster/leader.js';
import { needsCluster, ownRedis, redisPrefix, sharedRedisUrl, type OwnRedis } from '../helpers/cluster.js';
import { waitFor } from '../helpers/streams.js';

const root = new URL('../../', import.meta.url).pathname;

function recordingLog() {
  const lines: string[] = [];
  const at = (level: string) => (o: object, m: string) => void lines.push(`${level} ${m} ${JSON.stringify(o)}`);
  return { lines, info: at('info'), warn: at('warn'), error: at('error') };
}

/** One redis-server of this file's own for the subtests that kill, restart or pause it (one after another, each leaving it up), started once. */
let own: Promise<OwnRedis> | null = null;
const fileRedis = () => (own ??= ownRedis(t));

async function openBus(t: Test, redisUrl: string, prefix: string, nodeId: string, opts: { maxMessageBytes?: number; resyncRetryMs?: number } = {}) {
  const log = recordingLog();
  const bus = await ClusterBus.open({ redisUrl, prefix, nodeId, log, ...opts });
  t.teardown(() => bus.close());
  return Object.assign(bus, { log });
}

async function commandConnection(t: Test, url: string): Promise<Redis> {
  const redis = new Redis(url, { enableOfflineQueue: false, maxRetriesPerRequest: 1, retryStrategy: () => 50 });
  redis.on('error', () => undefined);
  await once(redis, 'ready');
  t.teardown(() => redis.disconnect());
  return redis;
}

t.test('the bus carries JSON between nodes, in order, never back to its sender, and parses nothing oversized', needsCluster(), async (t) => {
  const prefix = redisPrefix();
  const a = await openBus(t, sharedRedisUrl(), prefix, 'node-a', { maxMessageBytes: 4_096 });
  const b = await openBus(t, sharedRedisUrl(), prefix, 'node-b', { maxMessageBytes: 4_096 });
  const other = await openBus(t, sharedRedisUrl(), redisPrefix(), 'node-c', { maxMessageBytes: 4_096 });
  const got: Record<string, Array<[unknown, string]>> = { a: [], b: [], c: [] };
  a.subscribe('walls', (m, from) => got.a!.push([m, from]));
  b.subscribe('walls', (m, from) => got.b!.push([m, from]));
  b.subscribe('walls', () => {
    throw new Error('a broken handler');
  });
  other.subscribe('walls', (m, from) => got.c!.push([m, from]));
  await Promise.all([a.subscribed(), b.subscribed(), other.subscribed()]);

  for (let v = 1; v <= 50; v++) await a.publish('walls', { wallId: 'w1', version: v });
  await b.publish('walls', { from: 'b' });
  await waitFor(() => got.b!.length, (n) => n === 50, 3_000, 10, 'node b to get 50 messages');
  await waitFor(() => got.a!.length, (n) => n === 1, 3_000, 10, 'node a to get node b\'s message');
  t.same(got.b!.map(([m]) => (m as { version: number }).version), Array.from({ length: 50 }, (_, i) => i + 1), 'in the order they were published');
  t.ok(got.b!.every(([, from]) => from === 'node-a'), 'each with its sender');
  t.same(got.a, [[{ from: 'b' }, 'node-b']], 'a node never hears itself, only the others');
  t.same(got.c, [], 'a cluster with another key prefix hears nothing');
  t.match(b.log.lines.join('\n'), /error cluster bus: handler failed .*a broken handler/, 'a handler that throws is logged; the others still ran');

  await t.rejects(a.publish('walls', { pad: 'x'.repeat(5_000) }), /more than the 4096 a node accepts/, 'a node refuses to send what no node would parse');
  const raw = await commandConnection(t, sharedRedisUrl());
  await raw.publish(`${prefix}bus:walls`, JSON.stringify({ from: 'evil', message: 'x'.repeat(5_000) }));
  await raw.publish(`${prefix}bus:walls`, '{not json');
  await raw.publish(`${prefix}bus:walls`, JSON.stringify({ message: 'no sender' }));
  await a.publish('walls', { after: true });
  await waitFor(() => got.b!.length, (n) => n === 51, 3_000, 10, 'the message after the bad ones');
  t.same(got.b!.at(-1), [{ after: true }, 'node-a'], 'oversized, malformed and anonymous messages are dropped; the bus goes on');
  const log = b.log.lines.join('\n');
  t.match(log, /over the size limit dropped .*"bytes":50\d\d/);
  t.match(log, /not JSON dropped/);
  t.match(log, /without a sender dropped/);
});

t.test('a Redis restart: publishing fails while it is down, and every node resyncs once it is subscribed again', needsCluster(), async (t) => {
  const redis = await fileRedis();
  const prefix = redisPrefix();
  const a = await openBus(t, redis.url, prefix, 'node-a');
  const b = await openBus(t, redis.url, prefix, 'node-b');
  const got: unknown[] = [];
  b.subscribe('walls', (m) => got.push(m));
  await b.subscribed();
  const resyncs = { a: 0, b: 0 };
  a.on('resync', () => resyncs.a++);
  b.on('resync', () => resyncs.b++);

  await redis.kill();
  await waitFor(() => a.publish('walls', { lost: true }).then(() => 'sent', (err: Error) => err.message), (v) => v !== 'sent', 3_000, 50, 'a publish to fail while Redis is down');
  t.equal(resyncs.a + resyncs.b, 0, 'no resync while Redis is away');
  await redis.restart();
  await waitFor(() => resyncs, (r) => r.a >= 1 && r.b >= 1, 8_000, 20, 'both nodes to resync after the restart');
  // After 'resync' the subscription is in place again: what is published now arrives.
  await a.publish('walls', { after: 'restart' });
  await waitFor(() => got, (g) => g.length === 1, 3_000, 10, 'the first message after the restart');
  t.same(got, [{ after: 'restart' }], 'the message published while Redis was down is not delivered late; a later one is');
});

t.test('a publish that timed out on a connection that stayed up makes every node resync once Redis answers again', needsCluster(), async (t) => {
  const redis = await fileRedis();
  const prefix = redisPrefix();
  const a = await openBus(t, redis.url, prefix, 'node-a', { resyncRetryMs: 200 });
  const b = await openBus(t, redis.url, prefix, 'node-b');
  b.subscribe('walls', () => undefined);
  await b.subscribed();
  let resyncs = 0;
  b.on('resync', () => resyncs++);
  const control = await commandConnection(t, redis.url);
  // Redis holds every PUBLISH past the publisher's 2 s command timeout; no connection drops.
  await control.call('CLIENT', 'PAUSE', '2300', 'WRITE');
  await t.rejects(a.publish('walls', { missed: true }), /timed out/i, 'the publish times out');
  t.equal(resyncs, 0, 'no resync while Redis holds the publishes');
  await waitFor(() => resyncs, (n) => n >= 1, 3_000, 10, "node b to resync on node a's ask once the pause is over");
  t.equal(a.log.lines.filter((l) => l.includes('unreachable')).length, 0, "node a's connection never dropped: nothing but the retry asked for the resync");
});

async function startLeader(t: Test, redis: Redis, prefix: string, nodeId: string, leaseMs = 1_000, heartbeatMs = 250) {
  const changes: boolean[] = [];
  const leader = new ClusterLeader({ redis, prefix, nodeId, leaseMs, heartbeatMs, log: recordingLog() });
  leader.on('change', (v) => changes.push(v));
  t.teardown(() => leader.close());
  await leader.start();
  return Object.assign(leader, { changes });
}

t.test('one node leads; when it closes another takes over within a heartbeat; a Redis restart does not flap it', needsCluster(), async (t) => {
  const own = await fileRedis();
  const redis = await commandConnection(t, own.url);
  const prefix = redisPrefix();
  // The lease is long enough for Redis to come back within it on a busy machine: the claim under test is about a restart inside the lease.
  const leaseMs = 4_000;
  const a = await startLeader(t, redis, prefix, 'node-a', leaseMs);
  const b = await startLeader(t, redis, prefix, 'node-b', leaseMs);
  t.equal(a.isLeader, true, 'the first to claim leads');
  t.equal(b.isLeader, false);
  t.same(a.changes, [true]);
  t.equal(await a.current(), 'node-a');
  // Two renewals: the lease's time to live goes back up each time (node b's claims leave a held key alone).
  let renewals = 0;
  let lastTtl = Infinity;
  await waitFor(
    async () => {
      const ttl = await redis.pttl(`${prefix}leader`);
      if (ttl > lastTtl) renewals++;
      lastTtl = ttl;
      return renewals;
    },
    (n) => n >= 2,
    3_000,
    20,
    "two renewals of node a's lease",
  );
  t.same([a.isLeader, b.isLeader, a.changes, b.changes], [true, false, [true], []], 'the leader renews its lease');

  const downAt = performance.now();
  await own.kill();
  await own.restart();
  await waitFor(() => redis.status, (s) => s === 'ready', 5_000, 20, 'the command connection to come back');
  await waitFor(() => a.current(), (v) => v !== null, 3_000, 50, 'the lease to be held again');
  const downMs = Math.round(performance.now() - downAt);
  t.ok(downMs < leaseMs, `Redis was back, and the key held again, within the lease (${downMs} ms)`);
  t.equal(await a.current(), 'node-a', 'after a restart within its lease the leader takes its emptied key back');
  t.same(a.changes, [true], 'without stepping down and up');

  const closedAt = performance.now();
  await a.close();
  t.same(a.changes, [true, false], 'closing steps down');
  await waitFor(() => b.isLeader, (v) => v, 2_000, 10, 'node b to lead');
  const tookMs = Math.round(performance.now() - closedAt);
  t.ok(tookMs < leaseMs / 2, `within a few heartbeats (${tookMs} ms), not after the ${leaseMs} ms lease`);
  t.same(b.changes, [true]);
});

t.test('a leader paused past its lease steps down when it wakes, before it acts', needsCluster(), async (t) => {
  const redisUrl = sharedRedisUrl();
  const redis = await commandConnection(t, redisUrl);
  const prefix = redisPrefix();
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/cluster/leader-child.ts', redisUrl, prefix, 'paused', '1000', '250'], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  const events: Array<{ change?: boolean; act?: boolean; idle?: boolean; started?: boolean; at: number }> = [];
  let buf = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => {
    buf += d;
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      events.push(JSON.parse(buf.slice(0, nl)));
      buf = buf.slice(nl + 1);
    }
  });
  await waitFor(() => events.filter((e) => e.act).length, (n) => n >= 3, 15_000, 20, 'the child to lead and act');
  const b = await startLeader(t, redis, prefix, 'node-b');
  t.equal(b.isLeader, false, 'the child leads');

  child.kill('SIGSTOP');
  const stoppedAt = Date.now();
  await waitFor(() => b.isLeader, (v) => v, 3_000, 10, 'node b to lead once the paused lease lapsed');
  const before = events.length;
  child.kill('SIGCONT');
  // Its 50 ms timer says each time whether it acts; more than a heartbeat of them after waking gave its leader a claim to make.
  await waitFor(() => events.slice(before).filter((e) => e.idle).length, (n) => n >= 7, 3_000, 10, "the child's timer to fire seven times after it woke");
  const after = events.slice(before);
  t.ok(Date.now() - stoppedAt > 1_000, 'it was paused longer than its lease');
  t.same(after[0], { change: false, at: after[0]!.at }, 'the first thing it does on waking is step down');
  t.notOk(after.some((e) => e.act), 'and it never acts again while node b leads');
  t.equal(b.isLeader, true);
  t.equal(await b.current(), 'node-b');
});

import { performance } from 'node:perf_hooks';
import t, { type Test } from 'tap';
import { Redis } from 'ioredis';
import { CameraOwnership, OwnedElsewhere, type OwnershipNode } from '../../gateway/src/cluster/ownership.js';
import { GatewayError } from '../../gateway/src/errors.js';
import { needsCluster, redisPrefix, sharedRedisUrl } from '../helpers/cluster.js';
import { waitFor } from '../helpers/streams.js';

const LEASE_MS = 1_000;
const quiet = { info: () => undefined, warn: () => undefined };

/** A node's ownership on its own Redis connection, as two gateways would have. */
function member(t: Test, id: string, prefix: string, departmentPulls: Record<string, number> = {}) {
  const redis = new Redis(sharedRedisUrl());
  t.teardown(() => redis.disconnect());
  const node: OwnershipNode = { id, prefix, redis, heartbeatMs: 300 };
  const ownership = new CameraOwnership(node, { leaseMs: LEASE_MS, limits: { departmentPulls }, log: quiet });
  const lost: string[] = [];
  ownership.onLost = (cameraId) => lost.push(cameraId);
  return { ownership, lost, redis };
}

const settle = <T>(p: Promise<T>) => p.then((v) => ({ ok: true as const, v }), (e: unknown) => ({ ok: false as const, e }));

t.test('two nodes asked for the same camera at the same instant: one lease, every time', needsCluster(), async (t) => {
  const prefix = redisPrefix();
  const a = member(t, 'node-a', prefix);
  const b = member(t, 'node-b', prefix);
  const tokens: number[] = [];
  for (let i = 0; i < 200; i++) {
    const camera = `cam${i % 20}`;
    const [ra, rb] = await Promise.all([settle(a.ownership.acquire(camera, '/root/')), settle(b.ownership.acquire(camera, '/root/'))]);
    const winners = [ra, rb].filter((r) => r.ok);
    t.equal(winners.length, 1, `round ${i}: exactly one node wins camera ${camera}`);
    const loser = [ra, rb].find((r) => !r.ok)!;
    t.ok(!loser.ok && loser.e instanceof OwnedElsewhere, 'the other is told who holds it');
    const lease = winners[0]!.ok ? winners[0]!.v : null;
    t.same(await a.ownership.owner(camera), lease, 'Redis names the winner as the owner');
    if (!loser.ok && loser.e instanceof OwnedElsewhere) t.same(loser.e.lease, lease, 'the loser names the same lease');
    tokens.push(lease!.token);
    const winner = ra.ok ? a : b;
    await winner.ownership.release(camera);
    t.equal(await a.ownership.owner(camera), null, 'released: no owner');
  }
  // Each camera saw 10 rounds; its fencing token grew every time.
  for (let c = 0; c < 20; c++) {
    const seq = tokens.filter((_, i) => i % 20 === c);
    t.same(seq, [...seq].sort((x, y) => x - y), `camera ${c}'s tokens only grow`);
    t.equal(new Set(seq).size, seq.length, `camera ${c}'s tokens are never reused`);
  }
});

t.test('a held lease renews; a lease taken over stops the pull, and an old holder cannot release the new lease', needsCluster(), async (t) => {
  const prefix = redisPrefix();
  const a = member(t, 'node-a', prefix);
  const b = member(t, 'node-b', prefix);
  const first = await a.ownership.acquire('cam1', '/root/');
  t.same(await a.ownership.acquire('cam1', '/root/'), first, 'asking again for a held camera keeps the same lease');
  t.equal(a.ownership.fence('cam1'), first.token, 'health writes carry the lease token');
  // Renewals every half lease (the heartbeat) keep the lease past twice its duration.
  const takenAt = performance.now();
  await waitFor(
    async () => {
      await a.ownership.renew();
      t.same(await b.ownership.owner('cam1'), first, 'still held after a renewal');
      return performance.now() - takenAt;
    },
    (ms) => ms > 2 * LEASE_MS,
    4 * LEASE_MS,
    LEASE_MS / 2,
    'renewals to carry the lease of cam1 past twice its duration',
  );
  t.same(a.lost, []);

  // Redis loses the lease (as after a Redis restart) and another node takes the camera.
  await a.redis.del(`${prefix}cam:cam1`);
  const second = await b.ownership.acquire('cam1', '/root/');
  t.ok(second.token > first.token, 'the new lease has a higher fencing token');
  await a.ownership.renew();
  t.same(a.lost, ['cam1'], 'the renewal that fails stops the camera on the old holder');
  t.equal(a.ownership.fence('cam1'), null, 'and it no longer writes as the camera puller');
  await a.ownership.release('cam1');
  t.same(await b.ownership.owner('cam1'), second, 'the old holder did not delete the new lease');
});

t.test('a node paused past its lease stops its pulls before it renews anything', needsCluster(), async (t) => {
  const prefix = redisPrefix();
  const a = member(t, 'node-a', prefix);
  const b = member(t, 'node-b', prefix);
  await a.ownership.acquire('cam1', '/root/');
  await a.ownership.acquire('cam2', '/root/');
  // No renewal for longer than the lease: Redis lets it go and another node takes one camera.
  const taken = await waitFor(() => settle(b.ownership.acquire('cam1', '/root/')), (r) => r.ok, 3_000, 50, 'the lease of cam1 to lapse and node b to take it');
  t.ok(taken.ok);
  a.ownership.noticeLateness(LEASE_MS + 200);
  t.same(a.lost.sort(), ['cam1', 'cam2'], 'every lease not renewed in time is dropped, the one nobody took too');
  t.same(a.ownership.held(), []);
  await a.ownership.renew();
  t.same(a.lost.sort(), ['cam1', 'cam2'], 'nothing more to lose');
});

t.test('department caps count every node\'s leases', needsCluster(), async (t) => {
  const prefix = redisPrefix();
  const caps = { traffic: 2, city: 3 };
  const a = member(t, 'node-a', prefix, caps);
  const b = member(t, 'node-b', prefix, caps);
  await a.ownership.acquire('t1', '/root/city/traffic/');
  await b.ownership.acquire('t2', '/root/city/traffic/');
  const refused = await settle(a.ownership.acquire('t3', '/root/city/traffic/'));
  t.ok(!refused.ok && refused.e instanceof GatewayError && refused.e.code === 'GW_ERR_CAPACITY', 'a third traffic camera is refused across the cluster');
  t.match(!refused.ok && (refused.e as GatewayError).params, { department: 'traffic', limit: 2 }, 'naming the department and its cap');
  t.equal(await a.ownership.owner('t3'), null, 'and no lease was taken');
  t.ok((await settle(a.ownership.acquire('t1', '/root/city/traffic/'))).ok, 'a camera already held is not refused by its own cap');
  await b.ownership.acquire('c1', '/root/city/');
  const city = await settle(b.ownership.acquire('c2', '/root/city/'));
  t.match(!city.ok && (city.e as GatewayError).params, { department: 'city', limit: 3 }, 'the enclosing department counts its subtree');
  t.ok((await settle(a.ownership.acquire('x1', '/root/other/'))).ok, 'an uncapped department is not limited');

  await b.ownership.release('t2');
  t.ok((await settle(a.ownership.acquire('t3', '/root/city/traffic/'))).ok, 'a released camera frees its slot at once');
  // A node that dies without releasing frees its slots once its leases lapse.
  const dead = member(t, 'node-dead', prefix, { solo: 1 });
  await dead.ownership.acquire('s1', '/root/solo/');
  const solo = member(t, 'node-c', prefix, { solo: 1 });
  t.notOk((await settle(solo.ownership.acquire('s2', '/root/solo/'))).ok, 'the dead node still holds the slot');
  await waitFor(() => settle(solo.ownership.acquire('s2', '/root/solo/')), (r) => r.ok, 3_000, 50, 'the dead node\'s slot to free once its lease lapsed');
  t.pass('its slot frees once its lease lapses');
});

t.test('renewal releases a lease whose pull never started', needsCluster(), async (t) => {
  const prefix = redisPrefix();
  const a = member(t, 'node-a', prefix);
  a.ownership.inUse = () => false;
  const askedAt = performance.now();
  await a.ownership.acquire('cam1', '/root/');
  await a.ownership.renew();
  t.ok(await a.ownership.owner('cam1'), 'kept while just taken: the pull may still be starting');
  await waitFor(
    async () => {
      await a.ownership.renew();
      return a.ownership.owner('cam1');
    },
    (lease) => lease === null,
    3 * LEASE_MS,
    50,
    'a renewal to let the unused lease of cam1 go',
  );
  t.ok(performance.now() - askedAt >= 300, 'let go once it has had a heartbeat (300 ms) to start');
  t.same(a.lost, [], 'not a loss: nothing was pulling');
});

t.test('a lease nobody renews lapses on time, with no heartbeat to notice it, even when the wall clock steps back', needsCluster(), async (t) => {
  const prefix = redisPrefix();
  const a = member(t, 'node-a', prefix);
  const lease = await a.ownership.acquire('cam1', '/root/');
  const takenAt = performance.now();
  // NTP steps the wall clock back a minute: the lease must still lapse a lease period after it was taken.
  const wallClock = Date.now;
  Date.now = () => wallClock() - 60_000;
  try {
    await waitFor(() => a.lost, (lost) => lost.length > 0, 3 * LEASE_MS, 20, 'node a to drop the lease of cam1 by itself');
  } finally {
    Date.now = wallClock;
  }
  const lapsedAfter = performance.now() - takenAt;
  t.same(a.lost, ['cam1'], 'the pull is stopped without a renewal or a late heartbeat');
  t.ok(lapsedAfter >= LEASE_MS - 50 && lapsedAfter < 2 * LEASE_MS, `a lease period after it was taken, not the minute the wall clock went back (${Math.round(lapsedAfter)} ms)`);
  t.equal(a.ownership.fence('cam1'), null, 'and the node no longer writes as its puller');
  t.equal(a.ownership.writeFence('cam1'), lease.token, 'its stopped pull\'s late writes still carry the old token');
});

t.test('the token kept for a pull\'s late writes is forgotten a lease period after the pull ended', needsCluster(), async (t) => {
  const prefix = redisPrefix();
  const a = member(t, 'node-a', prefix);
  const lease = await a.ownership.acquire('cam1', '/root/');
  await a.ownership.release('cam1');
  const releasedAt = performance.now();
  t.equal(a.ownership.writeFence('cam1'), lease.token, 'just released: late writes are fenced with its token');
  await a.ownership.renew();
  t.equal(a.ownership.writeFence('cam1'), lease.token, 'kept through a heartbeat inside the lease period');
  await waitFor(
    async () => {
      await a.ownership.renew();
      return a.ownership.writeFence('cam1');
    },
    (token) => token === undefined,
    3 * LEASE_MS,
    50,
    'a heartbeat to forget the token of cam1',
  );
  t.ok(performance.now() - releasedAt >= LEASE_MS, 'forgotten only after a lease period');
});

import t from 'tap';
import { performance } from 'node:perf_hooks';
import { WebSocket } from 'ws';
import { needsCluster } from '../helpers/cluster.js';
import { CLUSTER_TIMINGS, startCluster } from '../helpers/cluster-gateways.js';
import { closedPort, type StreamingGateway } from '../helpers/streams.js';

/**
 * A node killed with kill -9 leaves its leases in Redis until they lapse (cluster.leaseMs), and its
 * heartbeat for up to three beats. Its cameras' viewers come back at once (the players retry at once
 * after a drop); the node they reach must serve them as soon as the lease lapses, not refuse them
 * and leave them to their retry backoff. The dead node is stood in for by its keys: a lease under its
 * name, with or without a heartbeat that names a port nobody listens on.
 */

/** Resolves with ms from the start to the first FLV video tag; rejects with the refusal or close. */
function firstVideo(url: string): Promise<number> {
  const started = performance.now();
  const ws = new WebSocket(url);
  ws.on('error', () => undefined);
  let buf = Buffer.alloc(0);
  return new Promise<number>((resolve, reject) => {
    ws.on('message', (data: Buffer) => {
      buf = Buffer.concat([buf, data]);
      let at = 13;
      while (buf.length >= at + 13) {
        if (buf[at] === 9 && buf[at + 12] === 1) return resolve(performance.now() - started);
        at += 15 + buf.readUIntBE(at + 1, 3);
      }
    });
    ws.on('unexpected-response', (_req, res) => reject(new Error(`refused: ${res.statusCode} ${res.statusMessage}`)));
    ws.on('close', () => reject(new Error('closed before a picture')));
  }).finally(() => ws.terminate());
}

t.test('a dead node\'s cameras play again as soon as its leases lapse', needsCluster(), async (t) => {
  const { nodes, prefix } = await startCluster(t, 1);
  const gw = nodes[0] as StreamingGateway;
  const redis = gw.cluster!.redis;
  const { leaseMs, heartbeatMs } = CLUSTER_TIMINGS;
  /** The lease a node that just died left behind: its last renewal was now. */
  const deadLease = (camera: string, node: string) => redis.set(`${prefix}cam:${camera}`, `${node}|${Date.now() * 1000}|${Date.now()}`, 'PX', leaseMs);

  await t.test('its heartbeat gone: the viewer waits for the lease to lapse and plays here, no refusal', async (t) => {
    await gw.addCamera('gone-1', { clip: 'h264-360p-1s' });
    const urls = await gw.view('gone-1');
    await deadLease('gone-1', 'node-dead');
    const asked = performance.now();
    const ms = await firstVideo(urls.wsFlv);
    t.ok(performance.now() - asked >= leaseMs - 200, 'it played only once the dead node\'s lease could have lapsed');
    t.ok(ms < leaseMs + 5_000, `and soon after (${Math.round(ms)} ms)`);
    t.equal((await gw.cluster!.ownership.owner('gone-1'))?.nodeId, gw.cluster!.id, 'this node holds the camera now');

  });

  /** A node's last beat, as it wrote it (it expires after three beats), until this node lists it. */
  const listedNode = async (id: string, url: string) => {
    const now = Date.now();
    const info = { id, url, startedAt: now - 60_000, heartbeatAt: now, load: { sessions: 0, viewers: 0, bytesOutPerSec: 0, cpuPct: 0 } };
    await redis.set(`${prefix}node:${id}`, JSON.stringify(info), 'PX', heartbeatMs * 3);
    await redis.sadd(`${prefix}nodes`, id);
    const deadline = Date.now() + 5 * heartbeatMs;
    while (!gw.cluster!.nodes().some((n) => n.id === id)) {
      if (Date.now() > deadline) throw new Error(`the node never listed ${id}'s last heartbeat`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };

  await t.test('still listed but not listening: the refused connection sends the viewer round again until it plays here', async (t) => {
    await gw.addCamera('gone-3', { clip: 'h264-360p-1s' });
    const urls = await gw.view('gone-3');
    await deadLease('gone-3', 'node-dead');
    await listedNode('node-dead', `http://127.0.0.1:${await closedPort()}`);
    const ms = await firstVideo(urls.wsFlv);
    t.ok(ms < leaseMs + 5_000, `the viewer plays (${Math.round(ms)} ms) instead of getting 502 from the dead node`);
    t.equal((await gw.cluster!.ownership.owner('gone-3'))?.nodeId, gw.cluster!.id, 'this node holds the camera now');
  });

  await t.test('the view answer waits while the lease names a node that refuses connections, so the player\'s first-frame deadline starts once the camera can move', async (t) => {
    await gw.addCamera('gone-4', { clip: 'h264-360p-1s' });
    const died = performance.now();
    await deadLease('gone-4', 'node-killed');
    // Killed a moment ago: its heartbeat is still listed, its port refuses.
    await listedNode('node-killed', `http://127.0.0.1:${await closedPort()}`);
    let asked = performance.now();
    const urls = await gw.view('gone-4');
    const answered = performance.now() - died;
    t.ok(answered >= leaseMs - 50, `the answer came once the lease lapsed, ${Math.round(answered)} ms after the node died`);
    t.ok(performance.now() - asked < leaseMs + heartbeatMs + 1_000, 'and no later than the wait allows');
    const ms = await firstVideo(urls.wsFlv);
    t.ok(ms < 5_000, `the picture came ${Math.round(ms)} ms after the answer, with no wait of its own`);
    t.equal((await gw.cluster!.ownership.owner('gone-4'))?.nodeId, gw.cluster!.id, 'this node holds the camera now');

    // A listed owner that accepts connections is alive: its viewers are answered at once.
    await gw.addCamera('alive-1', { clip: 'h264-360p-1s' });
    await deadLease('alive-1', 'node-alive');
    await listedNode('node-alive', gw.baseUrl);
    asked = performance.now();
    await gw.view('alive-1');
    t.ok(performance.now() - asked < leaseMs - 200, `the view of a live owner's camera is not held (${Math.round(performance.now() - asked)} ms)`);
  });
});

import { setTimeout as sleep } from 'node:timers/promises';
import t from 'tap';
import { ControlClient } from '../../../scripts/sim/control-client.js';
import { RawWebSocket } from '../../../scripts/sim/raw-websocket.js';
import { SCREENS_2X2, serverMessageCheck, startControlGateway } from '../../helpers/control.js';
import { waitFor } from '../../helpers/streams.js';

t.test('the upgrade needs a valid token, a permitted role and an allowed origin', async (t) => {
  const gw = await startControlGateway(t, { control: { allowedOrigins: ['https://console.example'] } });
  const origin = new URL(gw.wsUrl.replace('ws', 'http')).origin;
  const refused = async (token: string | null, o = {}) => ControlClient.connect(gw.wsUrl, token, o).then(() => null, (err: { status: number; body: string }) => err);
  t.match(await refused(null), { status: 401, body: /GW_ERR_UNAUTHENTICATED/ });
  t.match(await refused('eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.x'), { status: 401 });
  t.match(await refused(gw.adminToken, { origin: 'https://evil.example' }), { status: 403, body: /origin https:\/\/evil.example is not allowed/ });
  t.match(await refused(await gw.userToken('aud', ['auditor'], ['root'])), { status: 403, body: /walls:read/ }, 'an auditor has no business on the control plane');
  t.match(gw.logs.join(''), /"code":"GW_ERR_FORBIDDEN".*"origin":"https:\/\/evil.example".*control connection refused/, 'refusals are logged with their reason');
  t.notMatch(gw.logs.join(''), new RegExp(gw.adminToken), 'and never with the token');
  const same = await gw.client(gw.adminToken, { origin });
  t.equal((await same.request('walls.list')).type, 'ack', 'the gateway\'s own origin is allowed');
  const listed = await gw.client(gw.adminToken, { origin: 'https://console.example', viaSubprotocol: true });
  t.equal(listed.ws.protocol, 'wallgate.v1', 'a browser-style client gets the protocol it offered');
  t.equal((await listed.request('walls.list')).type, 'ack');
});

t.test('malformed, oversized and unknown messages get errors; the connection and the server survive', async (t) => {
  const gw = await startControlGateway(t, { control: { maxMessageBytes: 2_048, rate: { perSecond: 30, burst: 30 } } });
  const wallId = await gw.createWall({ name: 'Wall', departmentId: 'countyA', screens: SCREENS_2X2 });
  const c = await gw.client(gw.adminToken);
  const errorAfter = async (send: () => void) => {
    const from = c.messages.length;
    send();
    return c.next((m) => m.type === 'error', 2_000, from);
  };
  t.match(await errorAfter(() => c.sendRaw('{not json')), { code: 'GW_ERR_BAD_MESSAGE', id: null, message: 'not valid JSON' });
  t.match(await errorAfter(() => c.sendRaw('[1,2]')), { code: 'GW_ERR_BAD_MESSAGE', message: /expected an object/ });
  t.match(await errorAfter(() => c.sendRaw(Buffer.from([1, 2, 3]), true)), { code: 'GW_ERR_BAD_MESSAGE', message: /text frames/ });
  t.match(await errorAfter(() => c.sendRaw(JSON.stringify({ type: 'walls.list', id: { x: 1 } }))), { code: 'GW_ERR_BAD_MESSAGE', message: /^id:/ });
  t.match(await c.request('wall.explode', {}, 'u1'), { type: 'error', id: 'u1', code: 'GW_ERR_BAD_MESSAGE', message: 'type: unknown message type "wall.explode"' });
  const invalid = await c.request('tile.assign', { wallId, baseVersion: -1, tileId: 'screen one', content: { kind: 'camera' }, extra: 1 }, 'v1');
  t.match(invalid, { type: 'error', id: 'v1', code: 'GW_ERR_VALIDATION' });
  t.same(invalid.issues.map((i: { field: string }) => i.field).sort(), ['baseVersion', 'content', 'extra', 'tileId'], JSON.stringify(invalid.issues));
  t.match(await c.request('subscribe', {}), { code: 'GW_ERR_VALIDATION', issues: [{ field: 'wallId' }] });
  const big = JSON.stringify({ type: 'walls.list', id: 'big', payload: {}, pad: 'x'.repeat(3_000) });
  t.match(await errorAfter(() => c.sendRaw(big)), { code: 'GW_ERR_PAYLOAD_TOO_LARGE', message: /at most 2048 bytes/ });
  t.equal((await c.request('walls.list')).type, 'ack', 'the connection still works after every bad message');

  // Over the rate: the excess is answered and dropped, the rest served, the connection kept. Malformed
  // messages sent at the end of the same burst count too: they are refused for the rate, not parsed.
  await sleep(1_100);
  const from = c.messages.length;
  const pending = Array.from({ length: 45 }, () => c.request('walls.list'));
  for (let i = 0; i < 5; i++) c.sendRaw('{not json');
  const replies = await Promise.all(pending);
  const limited = replies.filter((r) => r.code === 'GW_ERR_RATE_LIMITED').length;
  t.ok(limited >= 5 && limited <= 15, `${limited} of 45 were over a burst of 30`);
  await waitFor(() => c.messages.slice(from).filter((m) => m.type === 'error' && m.id === null).length, (n) => n === 5, 2_000);
  const anonymous = c.messages.slice(from).filter((m) => m.type === 'error' && m.id === null);
  t.same(anonymous.map((m) => m.code), Array(5).fill('GW_ERR_RATE_LIMITED'), 'malformed messages count against the rate too');
  await sleep(500);
  t.equal((await c.request('walls.list')).type, 'ack', 'the bucket refills');

  // Far over the limit the socket is closed before the message is buffered (1009); the server carries on.
  const huge = await gw.client(gw.adminToken);
  huge.sendRaw('x'.repeat(2_048 * 4 + 1));
  await waitFor(() => huge.closed, (v) => v !== null, 3_000);
  t.equal(huge.closed!.code, 1009);
  t.equal((await c.request('walls.list')).type, 'ack', 'other connections are unaffected');
  t.equal((await (await gw.client(gw.adminToken)).request('walls.list')).type, 'ack', 'and new ones are accepted');
  t.equal((await gw.api('GET', '/healthz')).status, 200);
});

t.test('a dead client is dropped by the heartbeat; a revoked token ends the connection', async (t) => {
  const gw = await startControlGateway(t, { control: { heartbeatMs: 200 } });
  const opToken = await gw.userToken('op', ['operator'], ['countyA']);
  const alive = await gw.client(gw.adminToken);
  const op = await gw.client(opToken);
  const dead = await gw.client(gw.adminToken, { autoPong: false });
  t.equal(gw.control.connections, 3);
  const since = Date.now();
  await waitFor(() => dead.closed, (v) => v !== null, 2_000, 20);
  const ms = Date.now() - since;
  t.ok(ms <= 3 * 200 + 200, `dropped after ${ms} ms, within two heartbeats of the last pong`);
  await waitFor(() => gw.control.connections, (n) => n === 2, 1_000);
  t.equal(alive.closed, null, 'a client that answers pings stays');
  t.match(gw.logs.join(''), /missed its heartbeat/);

  const users = await gw.api('GET', '/api/users', { token: gw.adminToken });
  const id = users.json.items.find((u: { username: string }) => u.username === 'op').id;
  t.equal((await gw.api('PATCH', `/api/users/${id}`, { token: gw.adminToken, body: { disabled: true } })).status, 200);
  await waitFor(() => op.closed, (v) => v !== null, 2_000, 20);
  t.same(op.closed, { code: 4001, reason: 'account disabled or removed' });
  t.equal(alive.closed, null);
});

/** Reads a paused raw client until a text frame matches `until`, then pauses it again; resolves with the frames read. */
function readFrames(ws: RawWebSocket, until: (m: { type: string; payload: any }) => boolean, timeoutMs: number) {
  const seen: { type: string; payload: any }[] = [];
  return new Promise<typeof seen>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no matching frame in ${timeoutMs} ms (${seen.map((m) => m.type).join(',')})`)), timeoutMs);
    ws.onFrame = (_opcode, payload) => {
      const m = JSON.parse(payload.toString());
      seen.push(m);
      if (!until(m)) return;
      clearTimeout(timer);
      ws.pause();
      resolve(seen);
    };
    ws.resume();
  });
}

t.test('a slow client gets a fresh snapshot once it drains, or is dropped; it never holds the others back', async (t) => {
  const gw = await startControlGateway(t, { control: { slowClientBytes: 65_536, slowClientTimeoutMs: 3_000, rate: { perSecond: 1_000, burst: 1_000 } } });
  const wallId = await gw.createWall({ name: 'Big wall', departmentId: 'countyA', screens: SCREENS_2X2, layout: '64' });
  const op = await gw.client(gw.adminToken);
  const screen = await gw.client(gw.adminToken);
  await op.subscribe(wallId);
  await screen.subscribe(wallId);
  // A client written by hand over TCP, so the test decides when it reads.
  const slow = await RawWebSocket.connect(gw.wsUrl, { authorization: `Bearer ${gw.adminToken}` });
  t.teardown(() => slow.socket.destroy());
  const slowEnd = new Promise<string>((resolve) => {
    slow.socket.once('error', (err) => resolve(`closed (${err.message})`));
    slow.socket.once('close', () => resolve('closed'));
  });
  slow.sendText(JSON.stringify({ type: 'subscribe', id: 's', payload: { wallId } }));
  await readFrames(slow, (m) => m.type === 'ack', 2_000);

  // Whole-wall layout changes: each delta carries all 256 tiles (~100 kB), so the slow reader's buffers fill fast.
  const lags: number[] = [];
  const churn = async (n: number) => {
    for (let i = 0; i < n; i++) {
      const sent = performance.now();
      const r = await op.request('layout.set', { wallId, baseVersion: op.walls.get(wallId)!.version, target: 'each', layout: i % 2 ? '64' : '36' });
      if (r.type !== 'ack') throw new Error(JSON.stringify(r));
      // The other screen keeps up with every change while the slow one lags.
      await screen.untilVersion(wallId, r.payload.version, 2_000);
      lags.push(performance.now() - sent);
      await op.untilVersion(wallId, r.payload.version);
    }
  };
  const started = Date.now();
  await waitFor(async () => (await churn(10), gw.logs.join('')), (l) => /control client is slow/.test(l), 30_000, 0);
  t.pass(`the slow client fell behind after ${Date.now() - started} ms of changes`);

  // It drains and gets one fresh snapshot instead of the backlog.
  const target = op.walls.get(wallId)!.version;
  const frames = await readFrames(slow, (m) => m.type === 'wall.snapshot', 10_000);
  const snapshot = frames.find((m) => m.type === 'wall.snapshot')!;
  t.ok(snapshot.payload.wall.version >= target, `the snapshot is current (version ${snapshot.payload.wall.version})`);
  const check = await serverMessageCheck(gw);
  t.same(frames.map((m) => check.problem(m)).filter(Boolean), [], 'the snapshot and the frames before it fit the published schemas of their types');
  const deltasSeen = frames.filter((m) => m.type === 'wall.deltas').flatMap((m) => m.payload.deltas.map((d: { version: number }) => d.version));
  t.ok(deltasSeen.length < target - 1, `it got ${deltasSeen.length} queued deltas, not all ${target - 1}`);

  // Now it stops reading for good: held back again, then cut off once it has been behind for
  // slowClientTimeoutMs (its queue, one frame past the threshold, is far below the 4× that cuts at once).
  const logLines = () => gw.logs.map((l) => JSON.parse(l) as { time: number; msg: string; queued?: number });
  const slowEpisodes = () => logLines().filter((l) => l.msg.startsWith('control client is slow'));
  const behindAgain = (await waitFor(async () => (await churn(10), slowEpisodes()), (e) => e.length >= 2, 30_000, 0, 'the slow client to fall behind a second time'))[1]!;
  const cut = (await waitFor(() => logLines().filter((l) => l.msg === 'control client too slow: disconnected'), (l) => l.length >= 1, 10_000, 50, 'the slow client to be disconnected'))[0]!;
  t.ok(cut.queued! <= 4 * 65_536, `${cut.queued} bytes were queued for it: under the 4× limit, so the timeout cut it`);
  // Log times are whole milliseconds, the gateway's clock is finer: one of rounding.
  t.ok(cut.time - behindAgain.time >= 3_000 - 1, `it was cut off ${cut.time - behindAgain.time} ms after it fell behind, not before slowClientTimeoutMs (3000 ms)`);
  t.equal(await waitFor(() => gw.control.connections, (n) => n === 2, 3_000), 2, 'the gateway let its connection go');
  // What it reads now is what was in flight before the cut: no snapshot (it never drained), then the end of the stream.
  const tail: string[] = [];
  slow.onFrame = (_opcode, payload) => tail.push(JSON.parse(payload.toString()).type);
  slow.resume();
  const ended = await Promise.race([slowEnd, sleep(5_000).then(() => 'still open after 5 s')]);
  t.match(ended, /^closed/, `the slow client's socket was closed by the gateway: ${ended}`);
  t.notOk(tail.includes('wall.snapshot'), `no fresh snapshot for a client that never drained (it read ${tail.length} frames in flight)`);
  t.same([op.closed, screen.closed], [null, null], 'the clients that keep up stay connected');
  await op.request('walls.list');
  t.equal(slowEpisodes().length, 2, 'and are never held back themselves');

  // The other screen saw every version, in order, and holds what a fresh snapshot shows.
  lags.sort((a, b) => a - b);
  t.pass(`the other screen had each change ${Math.round(lags[lags.length >> 1]!)} ms (median), ${Math.round(lags[lags.length - 1]!)} ms (worst) after it was sent`);
  t.same(screen.gaps, []);
  await screen.untilVersion(wallId, op.walls.get(wallId)!.version);
  const fresh = await gw.api('GET', `/api/walls/${wallId}`, { token: gw.adminToken });
  t.same(screen.walls.get(wallId), fresh.json.wall);
});

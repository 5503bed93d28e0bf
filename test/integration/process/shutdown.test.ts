import { randomBytes } from 'node:crypto';
import { request } from 'node:http';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import t, { type Test } from 'tap';
import { instanceIdFor } from '../../../gateway/src/streams/manager.js';
import { markedProcesses } from '../../../gateway/src/streams/process/sweep.js';
import { tempDir } from '../../helpers/gateway.js';
import { adminLogin, ffmpegChildren, gatewayApi, liveSession, noProcessLeft, query, spawnGateway, startGatewayChild } from '../../helpers/process.js';


async function login(baseUrl: string, password: string): Promise<string> {
  const res = await fetch(`${baseUrl}/api/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'admin', password }) });
  return ((await res.json()) as { token: string }).token;
}

t.test('SIGTERM: stop accepting, finish the in-flight import, close the store, exit 0 within 10 s', async (t) => {
  const dataDir = tempDir(t);
  const gw = await spawnGateway(t, dataDir);
  t.ok(gw.adminPassword, 'a first start prints the admin password once');
  const token = await login(gw.baseUrl, gw.adminPassword!);

  // An import whose body is still arriving when the signal comes.
  const rows = (from: number, to: number) =>
    Array.from({ length: to - from }, (_, i) => JSON.stringify({ id: `s${from + i}`, name: `Cam ${from + i}`, departmentId: 'root', url: `rtsp://10.0.0.${(i % 250) + 1}/a` })).join('\n') + '\n';
  const url = new URL('/api/sources/import?mode=all-or-nothing', gw.baseUrl);
  const response = new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = request(url, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/x-ndjson' } }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode!, body }));
    });
    req.on('error', reject);
    req.write(rows(0, 500));
    setTimeout(() => {
      const signalledAt = Date.now();
      gw.child.kill('SIGTERM');
      setTimeout(() => {
        req.end(rows(500, 1000));
        void gw.exited.then(() => t.ok(Date.now() - signalledAt < 10_000, `exited within 10 s (${Date.now() - signalledAt} ms)`));
      }, 500);
    }, 300);
  });
  const done = await response;
  t.equal(done.status, 200, done.body);
  t.equal(JSON.parse(done.body).created, 1000, 'the in-flight request completed');
  const exit = await gw.exited;
  t.same(exit, { code: 0, signal: null }, 'exit code 0');
  t.match(gw.stdout.join(''), /shutting down/);

  // Nothing acknowledged was lost, and no second password is printed for an existing store.
  const again = await spawnGateway(t, dataDir);
  t.equal(again.adminPassword, null);
  const list = await fetch(`${again.baseUrl}/api/sources?limit=1&q=s999`, { headers: { authorization: `Bearer ${token}` } });
  t.equal(((await list.json()) as { items: { id: string }[] }).items[0]?.id, 's999', 'the token and the rows survive the restart');
  again.child.kill('SIGINT');
  t.same(await again.exited, { code: 0, signal: null }, 'SIGINT stops it cleanly too');
});

t.test('a bad configuration stops the start with the key named and a non-zero exit', async (t) => {
  const dataDir = tempDir(t);
  await t.rejects(spawnGateway(t, dataDir, { WALLGATE_SERVER_PORT: 'abc' }), /server\.port: expected integer, got "abc"/);
});

t.test('SIGTERM during the start: it stops where it is, exits 0, and the next start finds what was done', async (t) => {
  const dataDir = tempDir(t);
  // A demo city big enough that seeding it is still going when the signal comes.
  const sources = 5_000;
  const { child, stdout, stderr, exited } = startGatewayChild(t, dataDir, { WALLGATE_DEMO_ENABLED: 'true', WALLGATE_DEMO_SOURCES: String(sources) });
  // The admin account is announced as soon as it is created, before the demo city is seeded.
  const password = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no admin password within 60 s: ${stderr.join('')}`)), 60_000);
    child.stderr!.on('data', () => {
      const m = /with password (\S+)/.exec(stderr.join(''));
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
  });
  const signalledAt = Date.now();
  child.kill('SIGTERM');
  const exit = await exited;
  t.same(exit, { code: 0, signal: null }, `exit code 0 after ${Date.now() - signalledAt} ms`);
  t.match(stderr.join(''), /SIGTERM during the start: shutting down/);
  t.notMatch(stdout.join(''), /wallgate listening/, 'it never started listening');
  t.same(await markedProcesses(await instanceIdFor(dataDir)), [], 'no process left');
  t.equal(query<string>(dataDir, 'PRAGMA integrity_check'), 'ok', 'the database is intact');
  const seeded = query<number>(dataDir, 'SELECT count(*) FROM sources');
  t.ok(seeded === 0 || seeded === sources, `the demo city is there whole or not at all (${seeded} sources)`);

  // The account whose password was shown is the one the next start has.
  const again = await spawnGateway(t, dataDir);
  t.equal(again.adminPassword, null, 'no second admin is created');
  const login = await fetch(`${again.baseUrl}/api/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'admin', password }) });
  t.equal(login.status, 200, 'the password printed during the stopped start signs in');
  again.child.kill('SIGTERM');
  t.same(await again.exited, { code: 0, signal: null });
});


/**
 * A WebSocket upgrade whose client stops reading as soon as it has the 101: it never reads a frame,
 * so never answers a close either. Resolves once the handshake is done.
 */
async function stalledUpgrade(t: Test, baseUrl: string, path: string, headers = ''): Promise<Socket> {
  const { hostname, port } = new URL(baseUrl);
  const socket = connect(Number(port), hostname);
  socket.on('error', () => {});
  t.teardown(() => void socket.destroy());
  const key = randomBytes(16).toString('base64');
  socket.write(`GET ${path} HTTP/1.1\r\nHost: ${hostname}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n${headers}\r\n`);
  await new Promise<void>((resolve, reject) => {
    let head = '';
    const timer = setTimeout(() => reject(new Error(`no handshake for ${path}: ${JSON.stringify(head)}`)), 15_000);
    const onData = (d: Buffer) => {
      head += d.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      clearTimeout(timer);
      socket.off('data', onData);
      socket.pause();
      if (head.startsWith('HTTP/1.1 101')) resolve();
      else reject(new Error(`upgrade refused: ${head.split('\r\n')[0]}`));
    };
    socket.on('data', onData);
  });
  return socket;
}

t.test('SIGTERM with WS-FLV viewers and a control client that do not read, and an upgrade waiting for a camera: exit 0 within seconds, no ffmpeg left', async (t) => {
  const dataDir = tempDir(t);
  const gw = await spawnGateway(t, dataDir);
  const token = await adminLogin(gw.baseUrl, gw.adminPassword!);
  await liveSession(t, gw, token, 'live-1');

  // A "camera" that accepts the connection and never says a word: its start is pending until the start timeout.
  const held = new Set<Socket>();
  const silent = createServer((s) => {
    held.add(s);
    s.on('error', () => {});
  });
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    for (const s of held) s.destroy();
    silent.close();
  });
  const silentPort = (silent.address() as AddressInfo).port;
  const created = await gatewayApi(gw.baseUrl, token, 'POST', '/api/sources', { id: 'silent-1', name: 'Silent', departmentId: 'root', url: `rtsp://127.0.0.1:${silentPort}/a`, codec: 'h264' });
  t.equal(created.status, 201, 'the silent camera is registered');

  const live = await gatewayApi(gw.baseUrl, token, 'POST', '/api/streams/live-1/view');
  const stalled = await gatewayApi(gw.baseUrl, token, 'POST', '/api/streams/silent-1/view');
  await stalledUpgrade(t, gw.baseUrl, live.json.wsFlv);
  await stalledUpgrade(t, gw.baseUrl, live.json.wsFlv);
  await stalledUpgrade(t, gw.baseUrl, stalled.json.wsFlv);
  // A control client that does not read either.
  await stalledUpgrade(t, gw.baseUrl, '/api/control', `Authorization: Bearer ${token}\r\n`);
  // Both cameras' ffmpeg, the silent one's included, so the check afterwards covers them.
  const deadline = Date.now() + 15_000;
  let children = await ffmpegChildren(gw.child.pid!);
  while ((children.length < 2 || held.size === 0) && Date.now() < deadline) {
    await sleep(100);
    children = await ffmpegChildren(gw.child.pid!);
  }
  t.equal(children.length, 2, 'an ffmpeg for each camera');
  t.equal(held.size > 0, true, "the silent camera's ffmpeg has connected");
  // The live camera's video fills the stalled viewers' socket buffers.
  await sleep(1_000);

  const signalledAt = Date.now();
  gw.child.kill('SIGTERM');
  const exit = await gw.exited;
  const tookMs = Date.now() - signalledAt;
  t.same(exit, { code: 0, signal: null }, exit.code === 0 ? 'exit code 0' : `exit code 0, not: ${gw.stderr.join('').slice(-500)}`);
  t.ok(tookMs < 5_000, `exited within 5 s of the signal, not held by viewers that do not read (${tookMs} ms)`);
  await noProcessLeft(t, dataDir, children);
});

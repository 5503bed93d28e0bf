import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { connect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import t, { type Test } from 'tap';
import { RTCPeerConnection, useH264 } from 'werift';
import { ensureClip } from '../../../scripts/sim/clips.js';
import { CameraSimulator } from '../../../scripts/sim/rtsp-server.js';
import { tempDir } from '../../helpers/gateway.js';
import { spawnGateway, type GatewayProcess } from '../../helpers/process.js';
import { waitFor } from '../../helpers/streams.js';

/**
 * A client that resets its connection at any point of a pending request must not crash the gateway
 * (Node takes its own error listener off an upgrading socket) nor leave a reader behind. The gateway
 * runs as a child process, so a crash is an exit code here rather than an exception in the test.
 */

t.setTimeout(300_000);

const RUNS = 20;

/** Where the client resets: as soon as its request is written, after some ms of the gateway's waiting, or once the answer's first bytes arrive. */
type ResetPoint = { after: 'written' } | { after: 'ms'; ms: number } | { after: 'answer' };
const WHILE_PENDING: ResetPoint[] = [{ after: 'written' }, { after: 'ms', ms: 1 }, { after: 'ms', ms: 10 }, { after: 'ms', ms: 50 }, { after: 'ms', ms: 200 }];
const ANSWERED: ResetPoint[] = [{ after: 'written' }, { after: 'ms', ms: 1 }, { after: 'ms', ms: 10 }, { after: 'answer' }];
const pointAt = (points: ResetPoint[], run: number) => points[run % points.length]!;

const CLOSE_AFTER_MS = 1_000;
const HLS_VIEWER_TIMEOUT_MS = 1_000;

interface Harness {
  gw: GatewayProcess;
  port: number;
  token: string;
  sim: CameraSimulator;
  /** Registers a simulated camera; `stalled` ones accept the connection and never answer, so their session stays starting. */
  addCamera(id: string, stalled: boolean): Promise<void>;
  view(id: string): Promise<{ token: string; flv: string; hls: string; whep: string }>;
  api(path: string, init?: RequestInit): Promise<Response>;
}

async function harness(t: Test, env: Record<string, string> = {}): Promise<Harness> {
  const sim = await CameraSimulator.start();
  t.teardown(() => sim.close());
  const gw = await spawnGateway(t, tempDir(t), {
    WALLGATE_STREAMS_CLOSE_AFTER_MS: String(CLOSE_AFTER_MS),
    // A stalled camera stays starting for the whole test: any reader let go was let go because its client left.
    WALLGATE_STREAMS_START_TIMEOUT_MS: '60000',
    WALLGATE_STREAMS_IO_TIMEOUT_MS: '60000',
    WALLGATE_STREAMS_HLS_VIEWER_TIMEOUT_MS: String(HLS_VIEWER_TIMEOUT_MS),
    ...env,
  });
  const base = gw.baseUrl;
  const login = await fetch(`${base}/api/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username: 'admin', password: gw.adminPassword }),
  });
  const token = ((await login.json()) as { token: string }).token;
  const api = (path: string, init: RequestInit = {}) =>
    fetch(base + path, { ...init, headers: { authorization: `Bearer ${token}`, ...(init.body ? { 'content-type': 'application/json' } : {}) } });
  const addCamera = async (id: string, stalled: boolean) => {
    await ensureClip('h264-360p-1s');
    sim.addCamera(id, { clip: 'h264-360p-1s' });
    if (stalled) sim.setFault(id, { kind: 'stall' });
    const res = await api('/api/sources', { method: 'POST', body: JSON.stringify({ id, name: id, departmentId: 'root', url: sim.url(id, true), codec: 'h264' }) });
    if (res.status !== 201) throw new Error(`register ${id}: ${await res.text()}`);
  };
  const view = async (id: string) => {
    const res = await api(`/api/streams/${id}/view`, { method: 'POST' });
    if (res.status !== 200) throw new Error(`view ${id}: ${await res.text()}`);
    return (await res.json()) as { token: string; flv: string; hls: string; whep: string };
  };
  return { gw, port: Number(new URL(base).port), token, sim, addCamera, view, api };
}

/** Sends a request on a fresh connection and resets it (RST) at the given point; resolves to what arrived before. */
async function sendThenReset(port: number, request: string | Buffer, point: ResetPoint): Promise<string> {
  const socket = connect(port, '127.0.0.1');
  socket.on('error', () => {});
  await once(socket, 'connect');
  let received = '';
  // Not events.once: that rejects on the 'error' a reset by the gateway (or its death) brings.
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  // An answer, or the gateway closing the connection (or dying) without one.
  const answered = new Promise<void>((resolve) => {
    socket.on('data', (d: Buffer) => {
      received += d.toString('latin1');
      resolve();
    });
    socket.once('end', resolve);
    void closed.then(resolve);
  });
  await new Promise<void>((resolve) => socket.write(request, () => resolve()));
  if (point.after === 'ms') await sleep(point.ms);
  if (point.after === 'answer') await answered;
  if (!socket.destroyed) socket.resetAndDestroy();
  await closed;
  return received;
}

function upgradeRequest(path: string, headers: Record<string, string> = {}): string {
  const extra = Object.entries(headers)
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('');
  return (
    `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n${extra}\r\n`
  );
}

/** Still running and still answering requests, some time after the last reset. */
async function assertServing(t: Test, h: Harness, what: string) {
  for (let i = 0; i < 2; i++) {
    await sleep(200);
    const res = await fetch(`${h.gw.baseUrl}/healthz`).catch((e: Error) => e);
    if (res instanceof Error || res.status !== 200) {
      t.fail(`the gateway stopped answering after ${what}: exit ${JSON.stringify(await Promise.race([h.gw.exited, sleep(1000)]))}; ${h.gw.stderr.join('').slice(-2000)}`);
      return;
    }
  }
  t.equal(h.gw.child.exitCode, null, `the gateway is still running after ${what}`);
}

async function sessions(h: Harness): Promise<{ cameraId: string; state: string; readers: Record<string, number> }[]> {
  const res = await h.api('/api/streams');
  return ((await res.json()) as { items: { cameraId: string; state: string; readers: Record<string, number> }[] }).items;
}

const readersOf = async (h: Harness, cameraId: string) =>
  (await sessions(h)).filter((s) => s.cameraId === cameraId).reduce((n, s) => n + Object.values(s.readers).reduce((a, b) => a + b, 0), 0);

/** Every reader of the camera let go while it still starts (not at the start timeout), then the session closes after its linger. */
async function assertReleased(t: Test, h: Harness, cameraId: string, within = 3_000) {
  const readers = await waitFor(() => readersOf(h, cameraId), (n) => n === 0, within, 100, `no reader of ${cameraId}`);
  t.equal(readers, 0, `${cameraId}: no reader is left`);
  const left = await waitFor(async () => (await sessions(h)).filter((s) => s.cameraId === cameraId).length, (n) => n === 0, CLOSE_AFTER_MS + 3_000, 100, `no session of ${cameraId}`);
  t.equal(left, 0, `${cameraId}: its session closes after closeAfterMs`);
}

/**
 * One request held until the gateway holds a reader for it, then reset: proves the resets above can
 * find a reader waiting (the release checked after them is the fix at work, not a reset too early).
 */
async function resetOnceHeld(t: Test, h: Harness, cameraId: string, request: string | Buffer) {
  const socket = connect(h.port, '127.0.0.1');
  socket.on('error', () => undefined);
  await once(socket, 'connect');
  socket.write(request);
  const held = await waitFor(() => readersOf(h, cameraId), (n) => n >= 1, 10_000, 20, `a reader of ${cameraId} held for the pending request`);
  t.ok(held >= 1, `${cameraId}: the gateway held a reader for the pending request`);
  socket.resetAndDestroy();
}

/** `runs` resets in a row, cycling through the points; stops at the first run that finds the gateway gone. */
async function repeat(h: Harness, port: number, runs: number, request: () => string | Buffer, points: ResetPoint[]): Promise<string[]> {
  const answers: string[] = [];
  for (let run = 0; run < runs; run++) {
    const answer = await sendThenReset(port, request(), pointAt(points, run)).catch(async (e: Error) => {
      const exit = await Promise.race([h.gw.exited, sleep(1_000).then(() => null)]);
      throw new Error(`run ${run + 1} of ${runs}: ${e.message}; the gateway ${exit ? `exited with ${JSON.stringify(exit)}` : 'is still running'}: ${h.gw.stderr.join('').slice(-1500)}`);
    });
    answers.push(answer);
  }
  return answers;
}

const statusOf = (answer: string) => /^HTTP\/1\.1 (\d{3})/.exec(answer)?.[1] ?? null;

t.test('control WebSocket: resets with no token, a bad token and a good one', async (t) => {
  // Fewer connections allowed than runs: a connection not let go after its reset would lock the last ones out.
  const h = await harness(t, { WALLGATE_CONTROL_MAX_CONNECTIONS: '5' });
  const none = await repeat(h, h.port, RUNS, () => upgradeRequest('/api/control', { 'Sec-WebSocket-Protocol': 'wallgate.v1' }), ANSWERED);
  t.ok(none.some((a) => statusOf(a) === '401'), 'the refusal is sent to clients still there');
  await assertServing(t, h, `${RUNS} resets of a control upgrade without a token`);

  const bad = await repeat(h, h.port, RUNS, () => upgradeRequest('/api/control', { authorization: 'Bearer aaaa.bbbb.cccc' }), ANSWERED);
  t.ok(bad.some((a) => statusOf(a) === '401'), 'a bad token is refused');
  await assertServing(t, h, `${RUNS} resets of a control upgrade with a bad token`);

  const good = await repeat(h, h.port, RUNS, () => upgradeRequest('/api/control', { authorization: `Bearer ${h.token}`, 'Sec-WebSocket-Protocol': 'wallgate.v1' }), ANSWERED);
  t.ok(good.some((a) => statusOf(a) === '101'), 'a good token is upgraded');
  await assertServing(t, h, `${RUNS} resets of a control upgrade with a good token`);

  const last = await waitFor(
    () => sendThenReset(h.port, upgradeRequest('/api/control', { authorization: `Bearer ${h.token}`, 'Sec-WebSocket-Protocol': 'wallgate.v1' }), { after: 'answer' }),
    (a) => statusOf(a) === '101',
    3_000,
    100,
    'a control connection to be accepted',
  );
  t.equal(statusOf(last), '101', 'the reset connections were let go: a new one fits under control.maxConnections');
});

t.test('WS-FLV: resets while the camera starts, once it is live, and with a bad token', async (t) => {
  const h = await harness(t);
  await h.addCamera('starting', true);
  await h.addCamera('live', false);

  const starting = await h.view('starting');
  await resetOnceHeld(t, h, 'starting', upgradeRequest(starting.flv));
  // The handshake is answered before the camera is live (a browser opens one WebSocket to a host at a
  // time): the later resets hit a WebSocket waiting for its camera.
  const pending = await repeat(h, h.port, RUNS, () => upgradeRequest(starting.flv), [...WHILE_PENDING, { after: 'answer' }]);
  t.same(pending.filter((a) => a !== '' && statusOf(a) !== '101'), [], 'nothing but the upgrade was answered: the camera was still starting');
  t.ok(pending.some((a) => statusOf(a) === '101'), 'the upgrade is answered while the camera starts');
  await assertServing(t, h, `${RUNS} resets of a WS-FLV upgrade waiting for a starting camera`);
  await assertReleased(t, h, 'starting');

  const live = await h.view('live');
  const answered = await repeat(h, h.port, RUNS, () => upgradeRequest(live.flv), [...WHILE_PENDING, { after: 'answer' }]);
  t.ok(answered.some((a) => statusOf(a) === '101'), 'the live camera is upgraded');
  await assertServing(t, h, `${RUNS} resets of a WS-FLV upgrade of a live camera`);
  await assertReleased(t, h, 'live');

  const bad = await repeat(h, h.port, RUNS, () => upgradeRequest('/streams/live/main/aaaa.bbbb.cccc/live.flv'), ANSWERED);
  t.ok(bad.some((a) => statusOf(a) === '401'), 'a bad token is refused');
  await assertServing(t, h, `${RUNS} resets of a WS-FLV upgrade with a bad token`);
});

t.test('HTTP-FLV: resets while the camera starts and once it is live', async (t) => {
  const h = await harness(t);
  await h.addCamera('starting', true);
  await h.addCamera('live', false);
  const get = (path: string) => `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`;

  const starting = await h.view('starting');
  await resetOnceHeld(t, h, 'starting', get(starting.flv));
  await repeat(h, h.port, RUNS, () => get(starting.flv), WHILE_PENDING);
  await assertServing(t, h, `${RUNS} resets of an HTTP-FLV request waiting for a starting camera`);
  await assertReleased(t, h, 'starting');

  const live = await h.view('live');
  const answered = await repeat(h, h.port, RUNS, () => get(live.flv), [...WHILE_PENDING, { after: 'answer' }]);
  t.ok(answered.some((a) => statusOf(a) === '200'), 'the live camera is served');
  await assertServing(t, h, `${RUNS} resets of an HTTP-FLV request of a live camera`);
  await assertReleased(t, h, 'live');
});

t.test('WHEP: resets while the offer waits for the first frame', async (t) => {
  const h = await harness(t);
  await h.addCamera('starting', true);
  const pc = new RTCPeerConnection({ iceUseIpv6: false, codecs: { video: [useH264()] } });
  t.teardown(() => pc.close());
  pc.addTransceiver('video', { direction: 'recvonly' });
  await pc.setLocalDescription(await pc.createOffer());
  if (pc.iceGatheringState !== 'complete') await pc.iceGatheringStateChange.watch((s) => s === 'complete');
  const offer = Buffer.from(pc.localDescription!.sdp);

  const starting = await h.view('starting');
  const post = () =>
    Buffer.concat([
      Buffer.from(
        `POST ${starting.whep} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${starting.token}\r\n` +
          `Content-Type: application/sdp\r\nContent-Length: ${offer.length}\r\n\r\n`,
      ),
      offer,
    ]);
  await resetOnceHeld(t, h, 'starting', post());
  // The offer must be read and the peer made before a reset can find it waiting: give every run a moment past the body.
  const answers = await repeat(h, h.port, RUNS, post, [...WHILE_PENDING.filter((p) => p.after === 'ms'), { after: 'ms', ms: 500 }]);
  t.same(answers.filter(Boolean), [], 'nothing was answered: the camera was still starting');
  await assertServing(t, h, `${RUNS} resets of a WHEP offer waiting for a starting camera`);
  await assertReleased(t, h, 'starting');
  const metrics = await (await fetch(`${h.gw.baseUrl}/metrics`)).text();
  t.match(metrics, /^wallgate_webrtc_peers 0$/m, 'no WebRTC peer is left');
});

t.test('HLS: resets of a playlist request while the camera starts', async (t) => {
  const h = await harness(t);
  await h.addCamera('starting', true);
  const starting = await h.view('starting');
  await resetOnceHeld(t, h, 'starting', `GET ${starting.hls} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
  await repeat(h, h.port, RUNS, () => `GET ${starting.hls} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`, WHILE_PENDING);
  await assertServing(t, h, `${RUNS} resets of an HLS request waiting for a starting camera`);
  // An HLS viewing spans requests: it ends when its player stops asking, not when one request goes.
  await assertReleased(t, h, 'starting', HLS_VIEWER_TIMEOUT_MS + 3_000);
});

t.test('RTMP ingest: resets in the middle of the handshake', async (t) => {
  const h = await harness(t);
  const res = await h.api('/api/sources', {
    method: 'POST',
    body: JSON.stringify({ id: 'drone', name: 'Drone', departmentId: 'root', protocol: 'rtmp-push', url: 'rtmp://gateway.example/push/drone' }),
  });
  t.equal(res.status, 201, 'a push camera is registered');
  const issued = (await (await h.api('/api/sources/drone/publish-url', { method: 'POST' })).json()) as { url: string };
  const rtmpPort = Number(new URL(issued.url).port);
  // C0 and C1: version 3 and a 1536-byte handshake block; the server answers with S0, S1 and S2.
  const c0c1 = () => Buffer.concat([Buffer.from([3]), randomBytes(1536)]);
  const answers = await repeat(h, rtmpPort, RUNS, c0c1, ANSWERED);
  t.ok(answers.some((a) => a.length > 0), 'the ingest answered some handshakes before the reset');
  await assertServing(t, h, `${RUNS} resets of RTMP handshakes`);
});

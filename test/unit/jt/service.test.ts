import { EventEmitter } from 'node:events';
import { connect } from 'node:net';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { defaultConfig } from '../../../gateway/src/config/load.js';
import { JtDirectory } from '../../../gateway/src/jt/directory.js';
import { JtFeed } from '../../../gateway/src/jt/feed.js';
import { JtCommandError } from '../../../gateway/src/jt/link.js';
import { encodeFrame, FrameSplitter, type JtMessage } from '../../../gateway/src/jt/protocol/frame.js';
import { encodeLocation } from '../../../gateway/src/jt/protocol/location.js';
import { JT_MSG, decodeGeneralResponse, encodeAuthentication } from '../../../gateway/src/jt/protocol/messages.js';
import { JtService } from '../../../gateway/src/jt/service.js';
import type { Registry } from '../../../gateway/src/registry/service.js';
import { SqliteStore } from '../../../gateway/src/store/sqlite/index.js';
import type { VehicleEntry, VehicleEvents } from '../../../gateway/src/vehicles/context.js';
import { tempDir } from '../../helpers/gateway.js';
import { waitFor } from '../../helpers/streams.js';

const SIM = '13800000001';

/** The service alone over a real socket, its clock the test's: one vehicle whose terminal registered before. */
async function service(t: Test, overrides: Partial<ReturnType<typeof defaultConfig>['jt808']> = {}) {
  const store = SqliteStore.open(join(tempDir(t), 'jt.db'));
  t.teardown(() => store.close());
  await store.jt.putTerminal({ sim: SIM, vehicleId: 'v1', authCode: 'c0de', edition: '2013', phone: `0${SIM}`, plate: '粤A12345', plateColor: 2, terminalId: 'T1', manufacturer: '', model: '', registeredAt: 1, seenAt: 1, address: null });
  const entry = { vehicle: { id: 'v1', sim: SIM, departmentId: 'root' } } as unknown as VehicleEntry;
  const vehicles = Object.assign(new EventEmitter<VehicleEvents>(), { bySim: (sim: string) => (sim.replace(/^0+/, '') === SIM ? entry : undefined), get: (id: string) => (id === 'v1' ? entry : undefined) });
  const heard: string[] = [];
  const feed = new JtFeed({ vehicles: { reportPositions: async () => ({ accepted: 0, outOfOrder: 0, stale: 0, rejected: [] }), reportAlarms: async () => ({ raised: [], repeated: [], cleared: [], rejected: [] }), heard: (id) => void heard.push(id) }, flushMs: 50, log: { warn: () => undefined } });
  let skew = 0;
  const clock = () => Date.now() + skew;
  const config = { ...defaultConfig().jt808, host: '127.0.0.1', port: 0, authTimeoutSec: 1, heartbeatTimeoutSec: 10, commandTimeoutMs: 5_000, ...overrides };
  const log = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };
  const directory = new JtDirectory({ store, registry: {} as Registry, vehicles, refusedListSize: 10 });
  const jt = new JtService({ config, store, vehicles, feed, directory, log, clock });
  t.teardown(() => jt.close());
  const port = await jt.start();
  return { jt, port, heard, feed, advance: (ms: number) => void (skew += ms) };
}

/** An authenticated terminal; its frames from the gateway, and whether the gateway closed it. */
async function terminal(port: number) {
  const socket = connect(port, '127.0.0.1');
  socket.on('error', () => undefined);
  const received: JtMessage[] = [];
  const state = { closed: false };
  const splitter = new FrameSplitter({ maxFrameBytes: 4096, onMessage: (m) => received.push(m), onError: () => undefined });
  socket.on('data', (d) => splitter.push(d));
  socket.on('close', () => (state.closed = true));
  await new Promise((r) => socket.once('connect', r));
  const send = (msgId: number, body: Buffer, serial: number) => socket.write(encodeFrame({ msgId, edition: '2013', phone: SIM, serial }, body));
  send(JT_MSG.AUTH, encodeAuthentication({ authCode: 'c0de', imei: null, softwareVersion: null }, '2013'), 0);
  await waitFor(() => received.map((m) => decodeGeneralResponse(m.body)), (r) => r.some((x) => x.msgId === JT_MSG.AUTH), 2_000, 10, 'the answer to 0x0102');
  return { socket, received, state, send };
}

t.test('a terminal silent past jt808.heartbeatTimeoutSec is disconnected and its vehicle goes offline; heartbeats keep it', async (t) => {
  const { jt, port, heard, advance } = await service(t);
  const changes: boolean[] = [];
  jt.onLinkChange('v1', (up) => changes.push(up));
  const c = await terminal(port);
  t.same(changes, [true]);
  advance(8_000);
  c.send(JT_MSG.HEARTBEAT, Buffer.alloc(0), 1);
  await waitFor(() => heard.length, (n) => n >= 2, 2_000, 10, 'the heartbeat heard');
  advance(8_000);
  await new Promise((r) => setTimeout(r, 600));
  t.notOk(c.state.closed, '16 s after authenticating but 8 s after its heartbeat: kept');
  advance(3_000);
  await waitFor(() => c.state.closed, (closed) => closed, 2_000, 10, 'the silent terminal disconnected');
  t.same(changes, [true, false]);
  t.match(jt.terminal('v1'), { online: false, offlineSince: Number });
  t.equal(jt.connectionCount, 0);
});

t.test('a command waiting for its answer is rejected as offline when the link goes', async (t) => {
  const { jt, port } = await service(t);
  const c = await terminal(port);
  const pending = jt.command('v1', JT_MSG.LIVE_CONTROL, Buffer.from([1, 0, 0, 0]));
  await waitFor(() => c.received.some((m) => m.header.msgId === JT_MSG.LIVE_CONTROL), (ok) => ok, 2_000, 10, 'the command sent');
  c.socket.destroy();
  const err = await pending.then(() => null, (e: unknown) => e);
  t.ok(err instanceof JtCommandError && err.kind === 'offline', `rejected offline: ${(err as Error)?.message}`);
});

t.test('connections are capped globally and per address; one past a cap is closed at once and counted', async (t) => {
  const { jt, port } = await service(t, { maxConnections: 3, maxConnectionsPerIp: 2 });
  const open = async (from: string) => {
    const socket = connect({ port, host: '127.0.0.1', localAddress: from });
    socket.on('error', () => undefined);
    t.teardown(() => socket.destroy());
    const closed = new Promise<boolean>((resolve) => {
      socket.once('close', () => resolve(true));
      setTimeout(() => resolve(false), 400).unref();
    });
    await new Promise((r) => socket.once('connect', r));
    return { socket, closed };
  };
  const a1 = await open('127.0.0.1');
  const a2 = await open('127.0.0.1');
  const a3 = await open('127.0.0.1');
  t.ok(await a3.closed, 'a third from one address: closed');
  const b1 = await open('127.0.0.2');
  t.notOk(await b1.closed, 'another address: kept');
  const b2 = await open('127.0.0.2');
  t.ok(await b2.closed, 'a fourth in all: closed');
  t.notOk(await a1.closed);
  t.notOk(await a2.closed);
  t.equal(jt.connectionCount, 3);
  t.equal(jt.connectionsRefused, 2);
  a1.socket.destroy();
  await waitFor(() => jt.connectionCount, (n) => n === 2, 2_000, 10, 'the closed one forgotten');
  t.notOk(await (await open('127.0.0.1')).closed, 'its address may connect again');
});

t.test('a message that fails while others wait behind a registration or authentication is reported, and the rest are still taken', async (t) => {
  const { jt, port, feed } = await service(t);
  feed.location = () => {
    throw new Error('a bug in the feed');
  };
  const socket = connect(port, '127.0.0.1');
  socket.on('error', () => undefined);
  t.teardown(() => socket.destroy());
  const received: JtMessage[] = [];
  const splitter = new FrameSplitter({ maxFrameBytes: 4096, onMessage: (m) => received.push(m), onError: () => undefined });
  socket.on('data', (d) => splitter.push(d));
  await new Promise((r) => socket.once('connect', r));
  const frame = (msgId: number, body: Buffer, serial: number) => encodeFrame({ msgId, edition: '2013', phone: SIM, serial }, body);
  // One write: the position and the heartbeat queue behind the authentication.
  socket.write(
    Buffer.concat([
      frame(JT_MSG.AUTH, encodeAuthentication({ authCode: 'c0de', imei: null, softwareVersion: null }, '2013'), 0),
      frame(JT_MSG.LOCATION, encodeLocation({ alarm: 0, status: 2, lat: 31.2, lon: 121.4, altitude: 0, speedKmh: 0, heading: 0, time: 1_700_000_000_000 }), 1),
      frame(JT_MSG.HEARTBEAT, Buffer.alloc(0), 2),
    ]),
  );
  const answers = await waitFor(() => received.map((m) => decodeGeneralResponse(m.body)), (r) => r.some((x) => x.msgId === JT_MSG.HEARTBEAT), 2_000, 10, 'the heartbeat behind the failed message answered');
  t.same(answers.find((x) => x.msgId === JT_MSG.HEARTBEAT), { serial: 2, msgId: JT_MSG.HEARTBEAT, result: 0 });
  t.equal(jt.parseErrors.internal, 1, 'the failure counted');
  t.equal(jt.terminalsOnline, 1, 'the terminal served on');
});

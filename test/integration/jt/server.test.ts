import { connect, type Socket } from 'node:net';
import t, { type Test } from 'tap';
import type { Config } from '../../../gateway/src/config/schema.js';
import { JtCommandError } from '../../../gateway/src/jt/link.js';
import { FrameSplitter, encodeFrame, type JtEdition, type JtMessage } from '../../../gateway/src/jt/protocol/frame.js';
import { encodeLocation, encodeLocationBatch, type ActiveSafetyAlarm, type Location } from '../../../gateway/src/jt/protocol/location.js';
import {
  JT_MSG,
  decodeGeneralResponse,
  decodeQueryTimeReply,
  decodeRegistrationReply,
  encodeAuthentication,
  encodeGeneralResponse,
  encodeRegistration,
} from '../../../gateway/src/jt/protocol/messages.js';
import { waitFor } from '../../helpers/streams.js';
import { smallTree, startGateway, type DeepPartial, type TestGateway } from '../../helpers/gateway.js';
import { vehicleBody } from '../../helpers/vehicles.js';

/**
 * A bare JT/T 808 terminal over a real socket, built on the protocol's own encoders: it sends what
 * a test tells it and keeps every frame the gateway sends back, in order.
 */
class Terminal {
  readonly received: JtMessage[] = [];
  private serial = 0;
  private readonly waiters = new Set<() => void>();
  closed = false;

  private constructor(
    readonly socket: Socket,
    readonly phone: string,
    readonly edition: JtEdition,
  ) {
    const splitter = new FrameSplitter({ maxFrameBytes: 4096, onMessage: (m) => this.received.push(m), onError: () => undefined });
    socket.on('data', (chunk) => {
      splitter.push(chunk);
      this.wake();
    });
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
  }

  static async open(port: number, sim: string, edition: JtEdition): Promise<Terminal> {
    const socket = connect(port, '127.0.0.1');
    socket.on('error', () => undefined);
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    return new Terminal(socket, sim.padStart(edition === '2019' ? 20 : 12, '0'), edition);
  }

  private wake() {
    for (const w of [...this.waiters]) w();
  }

  /** Sends a message; returns its serial. */
  send(msgId: number, body: Buffer, raw?: (frame: Buffer) => Buffer): number {
    const serial = this.serial++;
    const frame = encodeFrame({ msgId, edition: this.edition, phone: this.phone, serial }, body);
    this.socket.write(raw ? raw(frame) : frame);
    return serial;
  }

  /** The next frame from the gateway with this id (past `from`), or a rejection naming what was waited for. */
  async next(msgId: number, from = 0, ms = 3_000): Promise<JtMessage> {
    const found = () => this.received.slice(from).find((m) => m.header.msgId === msgId);
    let timer: NodeJS.Timeout | undefined;
    let waker: (() => void) | undefined;
    try {
      return await new Promise<JtMessage>((resolve, reject) => {
        waker = () => {
          const m = found();
          if (m) resolve(m);
          else if (this.closed) reject(new Error(`connection closed before 0x${msgId.toString(16)}`));
        };
        this.waiters.add(waker);
        timer = setTimeout(() => reject(new Error(`no 0x${msgId.toString(16)} within ${ms} ms`)), ms);
        waker();
      });
    } finally {
      clearTimeout(timer);
      if (waker) this.waiters.delete(waker);
    }
  }

  /** Sends and waits for the gateway's 0x8001 to it. */
  async ask(msgId: number, body: Buffer): Promise<{ result: number }> {
    const from = this.received.length;
    const serial = this.send(msgId, body);
    for (;;) {
      const m = await this.next(JT_MSG.PLATFORM_RESPONSE, from);
      const r = decodeGeneralResponse(m.body);
      if (r.serial === serial && r.msgId === msgId) return r;
      this.received.splice(this.received.indexOf(m), 1);
    }
  }

  async register(plate: string, terminalId = 'T0001'): Promise<{ result: number; authCode: string | null }> {
    const from = this.received.length;
    this.send(JT_MSG.REGISTER, registration(plate, terminalId, this.edition));
    return decodeRegistrationReply((await this.next(JT_MSG.REGISTER_REPLY, from)).body);
  }

  authenticate(code: string) {
    return this.ask(JT_MSG.AUTH, encodeAuthentication({ authCode: code, imei: '123456789012345', softwareVersion: '1.0' }, this.edition));
  }

  async closedWithin(ms: number): Promise<boolean> {
    await waitFor(async () => this.closed, (c) => c, ms, 20, 'the gateway closing the connection');
    return true;
  }

  close() {
    this.socket.destroy();
  }
}

const registration = (plate: string, terminalId: string, edition: JtEdition) =>
  encodeRegistration({ province: 44, city: 100, manufacturer: 'ACME', model: 'X1-808', terminalId, plateColor: 2, plate }, edition);

const T_BASE = Date.now() - 60_000;
const position = (i: number, extra: Partial<Omit<Location, 'extras'>> = {}) => ({ alarm: 0, status: 2, lat: 31.2 + i / 1000, lon: 121.4 + i / 1000, altitude: 5, speedKmh: 42, heading: 90, time: Math.floor((T_BASE + i * 1000) / 1000) * 1000, ...extra });

function safetyAlarm(type: number, flag: number, alarmId: number, level = 2): ActiveSafetyAlarm {
  return { alarmId, flag, type, level, speedKmh: 60, altitude: 5, lat: 31.2, lon: 121.4, time: position(5).time, vehicleStatus: 1, identifier: { form: 'su', terminalId: 'T0001', time: position(5).time, sequence: 1, attachments: 0 } };
}

interface Fixture {
  gw: TestGateway;
  port: number;
  terminals: Terminal[];
}

async function jtGateway(t: Test, jt808: DeepPartial<Config['jt808']> = {}): Promise<Fixture> {
  const gw = await startGateway(t, { jt808: { positionFlushMs: 50, authTimeoutSec: 1, commandTimeoutMs: 500, ...jt808 } });
  await smallTree(gw);
  const f: Fixture = { gw, port: gw.jt808!.port!, terminals: [] };
  t.teardown(() => f.terminals.forEach((c) => c.close()));
  return f;
}

async function terminal(f: Fixture, sim: string, edition: JtEdition = '2013') {
  const c = await Terminal.open(f.port, sim, edition);
  f.terminals.push(c);
  return c;
}

async function addVehicle(f: Fixture, id: string, plate: string, sim: string, departmentId = 'countyA', terminalId: string | null = 't0001') {
  const res = await f.gw.api('POST', '/api/vehicles', { token: f.gw.adminToken, body: vehicleBody(id, plate, departmentId, { sim, terminalId: terminalId ?? undefined }, 0) });
  if (res.status !== 201) throw new Error(`vehicle ${id}: ${res.body}`);
}

const vehicle = async (f: Fixture, id: string) => (await f.gw.api('GET', `/api/vehicles/${id}`, { token: f.gw.adminToken })).json;
const alarms = async (f: Fixture, vehicleId: string) => (await f.gw.api('GET', `/api/alarms?vehicleId=${vehicleId}&limit=50`, { token: f.gw.adminToken })).json.items as any[];

/** Registered and authenticated: the terminal's code. */
async function online(c: Terminal, plate: string): Promise<string> {
  const reg = await c.register(plate);
  if (reg.result !== 0 || !reg.authCode) throw new Error(`registration answered ${reg.result}`);
  const auth = await c.authenticate(reg.authCode);
  if (auth.result !== 0) throw new Error(`authentication answered ${auth.result}`);
  return reg.authCode;
}

t.test('JT/T 808 server', async (t) => {
  const f = await jtGateway(t);
  await addVehicle(f, 'v13', '粤A13013', '013800000013');
  await addVehicle(f, 'v19', '粤A19019', '13800000019');
  await addVehicle(f, 'vb', '粤B00001', '13800000099', 'countyB');
  const jt = f.gw.jt808!;

  await t.test('a 2013 terminal registers, authenticates, heartbeats and reports positions; its vehicle comes online and moves', async (t) => {
    const c = await terminal(f, '13800000013');
    const reg = await c.register('粤A13013');
    t.equal(reg.result, 0);
    t.match(reg.authCode, /^[0-9a-f]{16}$/);
    const replies = c.received.length;
    t.equal((await c.authenticate(reg.authCode!)).result, 0);
    t.equal(c.received[replies]!.header.edition, '2013', 'answered in its edition');
    t.equal(c.received[replies]!.header.phone, '013800000013', 'to its phone number as it sent it');
    t.equal((await c.ask(JT_MSG.HEARTBEAT, Buffer.alloc(0))).result, 0);
    t.equal((await c.ask(JT_MSG.LOCATION, encodeLocation(position(1)))).result, 0);
    const v = await waitFor(() => vehicle(f, 'v13'), (v) => v.live.position !== null, 3_000, 20, 'the position on the vehicle');
    t.match(v.live, { status: 'online', position: { lat: 31.201, lon: 121.401, speed: 42, heading: 90, at: position(1).time } });
    t.match(jt.terminal('v13'), { vehicleId: 'v13', sim: '13800000013', edition: '2013', online: true, offlineSince: null, localAddress: '127.0.0.1' });
    t.equal(jt.vehicleBySim('0013800000013'), 'v13', 'leading zeros ignored');
    t.equal(jt.vehicleBySim('13800000077'), null);
  });

  await t.test('a 2019 terminal is answered in 2019 headers, and a 0x0704 batch fills the track', async (t) => {
    const c = await terminal(f, '13800000019', '2019');
    await online(c, '粤A19019');
    t.ok(c.received.every((m) => m.header.edition === '2019' && m.header.phone === '00000000013800000019'), 'every reply in the 2019 header');
    const items = [2, 3, 4].map((i) => encodeLocation(position(i)));
    t.equal((await c.ask(JT_MSG.LOCATION_BATCH, encodeLocationBatch({ blindArea: true, items }))).result, 0);
    const track = await waitFor(
      async () => (await f.gw.api('GET', `/api/vehicles/v19/track?from=${T_BASE}`, { token: f.gw.adminToken })).json,
      (tr) => tr.points?.length === 3,
      3_000,
      20,
      'three track points',
    );
    t.same(track.points.map((p: any) => p.at), [2, 3, 4].map((i) => position(i).time));
    t.match(jt.terminal('v19'), { edition: '2019', online: true });
  });

  await t.test("subpackages are answered piece by piece and handled whole; 0x0004 gets the time; a message we do not take is answered 'not supported'", async (t) => {
    const c = f.terminals[1]!;
    const body = encodeLocationBatch({ blindArea: true, items: [10, 11, 12, 13].map((i) => encodeLocation(position(i))) });
    const half = Math.ceil(body.length / 2);
    const from = c.received.length;
    const serials = [body.subarray(0, half), body.subarray(half)].map((piece, i) =>
      c.send(JT_MSG.LOCATION_BATCH, Buffer.alloc(0), () => encodeFrame({ msgId: JT_MSG.LOCATION_BATCH, edition: '2019', phone: c.phone, serial: 100 + i, packet: { total: 2, index: i + 1 } }, piece)),
    );
    t.equal(serials.length, 2);
    const answers = await waitFor(() => c.received.slice(from).filter((m) => m.header.msgId === JT_MSG.PLATFORM_RESPONSE).map((m) => decodeGeneralResponse(m.body)), (a) => a.length >= 2, 3_000, 20, 'both pieces answered');
    t.same(answers, [100, 101].map((serial) => ({ serial, msgId: JT_MSG.LOCATION_BATCH, result: 0 })), 'each piece answered, the whole not again');
    await waitFor(
      async () => (await f.gw.api('GET', `/api/vehicles/v19/track?from=${T_BASE}`, { token: f.gw.adminToken })).json,
      (tr) => tr.points?.length === 7,
      3_000,
      20,
      'the four reports of the reassembled batch in the track',
    );
    const before = c.received.length;
    c.send(JT_MSG.QUERY_TIME, Buffer.alloc(0));
    const time = decodeQueryTimeReply((await c.next(JT_MSG.QUERY_TIME_REPLY, before)).body);
    t.ok(Math.abs(time - Date.now()) < 5_000, 'the server time (to the second)');
    t.equal((await c.ask(0x0900, Buffer.from([1, 2, 3]))).result, 3, 'a pass-through upload we do not take');
  });

  await t.test('alarm bits and ADAS/DSM items raise and clear alarms of their own types', async (t) => {
    const c = f.terminals[0]!;
    await c.ask(JT_MSG.LOCATION, encodeLocation(position(5, { alarm: 1 })));
    // The SOS bit stays set in every report while it lasts.
    await c.ask(JT_MSG.LOCATION, encodeLocation({ ...position(6, { alarm: 1 }), extras: { adas: safetyAlarm(0x01, 1, 11) } }));
    await c.ask(JT_MSG.LOCATION, encodeLocation({ ...position(7, { alarm: 1 }), extras: { dsm: { ...safetyAlarm(0x02, 1, 12, 1), identifier: { form: 'su', terminalId: 'T0001', time: position(7).time, sequence: 2, attachments: 0 } } } }));
    const raised = await waitFor(() => alarms(f, 'v13'), (a) => a.length === 3, 3_000, 20, 'three alarms');
    const byType = Object.fromEntries(raised.map((a) => [a.type, a]));
    t.match(byType['emergency-button'], { severity: 'critical', active: true, position: { lat: 31.205 } });
    t.match(byType['collision-warning'], { severity: 'high', active: true, detail: /ADAS type 0x01 level 2/ });
    t.match(byType['phone-use'], { severity: 'medium', active: true });
    // SOS goes, the collision warning ends; the phone call goes on.
    await c.ask(JT_MSG.LOCATION, encodeLocation({ ...position(8), extras: { adas: safetyAlarm(0x01, 2, 11) } }));
    const after = await waitFor(() => alarms(f, 'v13'), (a) => a.filter((x) => !x.active).length === 2, 3_000, 20, 'two cleared');
    t.same(after.filter((x) => x.active).map((x) => x.type), ['phone-use']);
  });

  await t.test('commands wait for the answer of their serial; a refusal, silence and a lost link reject', async (t) => {
    const c = f.terminals[0]!;
    const from = c.received.length;
    const done = jt.command('v13', JT_MSG.LIVE_CONTROL, Buffer.from([1, 0, 0, 0]));
    const cmd = await c.next(JT_MSG.LIVE_CONTROL, from);
    t.equal(cmd.header.edition, '2013');
    // Another serial's answer does not settle it.
    c.send(JT_MSG.TERMINAL_RESPONSE, encodeGeneralResponse({ serial: (cmd.header.serial + 1) & 0xffff, msgId: JT_MSG.LIVE_CONTROL, result: 0 }));
    c.send(JT_MSG.TERMINAL_RESPONSE, encodeGeneralResponse({ serial: cmd.header.serial, msgId: JT_MSG.LIVE_CONTROL, result: 0 }));
    await t.resolves(done);

    const from2 = c.received.length;
    const refused = jt.command('v13', JT_MSG.LIVE_CONTROL, Buffer.from([1, 0, 0, 0]));
    const cmd2 = await c.next(JT_MSG.LIVE_CONTROL, from2);
    c.send(JT_MSG.TERMINAL_RESPONSE, encodeGeneralResponse({ serial: cmd2.header.serial, msgId: JT_MSG.LIVE_CONTROL, result: 3 }));
    const err = await refused.then(() => null, (e: unknown) => e);
    t.ok(err instanceof JtCommandError && err.kind === 'result' && err.result === 3, 'result 3 rejects with it');

    const started = Date.now();
    const silent = await jt.command('v13', JT_MSG.LIVE_CONTROL, Buffer.from([1, 0, 0, 0])).then(() => null, (e: unknown) => e);
    t.ok(silent instanceof JtCommandError && silent.kind === 'timeout', 'no answer: timeout');
    t.ok(Date.now() - started >= 450, 'after jt808.commandTimeoutMs');
    const offline = await jt.command('vb', JT_MSG.LIVE_CONTROL, Buffer.from([1, 0, 0, 0])).then(() => null, (e: unknown) => e);
    t.ok(offline instanceof JtCommandError && offline.kind === 'offline', 'a vehicle whose terminal is not connected: offline');
  });

  await t.test('a new connection of the same terminal replaces the old one without the link going down; its watchers are told it is a new link', async (t) => {
    const changes: [boolean, boolean | undefined][] = [];
    const stop = jt.onLinkChange('v19', (up, replaced) => changes.push([up, replaced]));
    const old = f.terminals[1]!;
    // A command the old connection never answers (its link died) is not lost with it.
    const before = old.received.length;
    const pending = jt.command('v19', JT_MSG.LIVE_CONTROL, Buffer.from([1, 0, 0, 0])).then(
      () => null,
      (e: JtCommandError) => ({ kind: e.kind, message: e.message, onlineThen: jt.terminal('v19')!.online }),
    );
    await old.next(JT_MSG.LIVE_CONTROL, before);
    const c = await terminal(f, '13800000019', '2019');
    const code = (await f.gw.store.jt.getTerminal('13800000019'))!.authCode;
    t.equal((await c.authenticate(code)).result, 0, 'a reconnecting terminal sends only its auth code');
    t.ok(await old.closedWithin(2_000), 'the old connection is closed');
    t.same(changes, [[true, true]], 'the vehicle stayed online throughout, its watchers told the link is a new one');
    t.match(await pending, { kind: 'offline', message: /replaced by a new connection/, onlineThen: true }, 'a command pending on the old link is rejected while the vehicle is online on the new one (its caller asks again, not "offline since now")');
    t.equal(jt.terminalsOnline, 2);
    c.close();
    await waitFor(async () => jt.terminal('v19')!.online, (o) => !o, 2_000, 20, 'v19 offline');
    t.same(changes, [[true, true], [false, false]]);
    t.match(jt.terminal('v19'), { online: false, offlineSince: Number });
    stop();
  });

  await t.test('an unknown terminal is refused (0x8100 result 4) and listed with what it sent; registering its vehicle lets it in', async (t) => {
    const c = await terminal(f, '13900000001');
    const reg = await c.register('粤C77777');
    t.equal(reg.result, 4);
    t.ok(await c.closedWithin(2_000), 'its connection is closed');
    const c2 = await terminal(f, '13900000001');
    t.equal((await c2.authenticate('guess')).result, 1, 'an unknown SIM cannot authenticate either');
    t.ok(await c2.closedWithin(2_000));
    const listed = await f.gw.api('GET', '/api/jt808/refused', { token: f.gw.adminToken });
    t.match(listed.json.items, [{ sim: '13900000001', address: '127.0.0.1', reason: 'unknown', plate: '粤C77777', plateColor: 2, terminalId: 'T0001', manufacturer: 'ACME', model: 'X1-808', count: 2 }]);
    const county = await f.gw.userToken('county-admin', ['admin'], ['countyA']);
    t.same((await f.gw.api('GET', '/api/jt808/refused', { token: county })).json.items, [], "an unknown SIM is shown only to whole-system admins");

    await addVehicle(f, 'vc', '粤C77777', '13900000001');
    const c3 = await terminal(f, '13900000001');
    await online(c3, '粤C77777');
    t.same((await f.gw.api('GET', '/api/jt808/refused', { token: f.gw.adminToken })).json.items, [], 'its refusals are forgotten once it registered');
    const terminals = (await f.gw.api('GET', '/api/jt808/terminals', { token: county })).json.items;
    t.same(terminals.map((x: any) => [x.vehicleId, x.online]).sort(), [['v13', true], ['v19', false], ['vc', true]], "the county admin sees its vehicles' terminals");
    t.match(terminals.find((x: any) => x.vehicleId === 'v13'), { sim: '13800000013', plate: '粤A13013', departmentName: 'County A', edition: '2013', address: /^127\.0\.0\.1:\d+$/, counters: { frames: Number, positions: 5, alarms: 5, errors: 0 } });
  });

  await t.test("a wrong auth code, or a registration with another terminal id than the vehicle's, is refused and listed for the vehicle's department", async (t) => {
    const c = await terminal(f, '13800000099');
    t.equal((await c.authenticate('0000000000000000')).result, 1);
    t.ok(await c.closedWithin(2_000));
    const countyB = await f.gw.userToken('countyb-admin', ['admin'], ['countyB']);
    t.match((await f.gw.api('GET', '/api/jt808/refused', { token: countyB })).json.items, [{ sim: '13800000099', reason: 'auth' }]);
    const impostor = await terminal(f, '13800000099');
    t.equal((await impostor.register('粤B00001', 'T9999')).result, 1, 'knowing the SIM is not enough to register (result 1: the vehicle is registered to another terminal)');
    t.ok(await impostor.closedWithin(2_000));
    t.match((await f.gw.api('GET', '/api/jt808/refused', { token: countyB })).json.items, [{ sim: '13800000099', reason: 'terminal', terminalId: 'T9999' }], 'one row per SIM and address, with its latest reason');
    t.equal(await f.gw.store.jt.getTerminal('13800000099'), null, 'no auth code was issued');
  });

  await t.test('malformed input is counted, a message before authentication answered with result 1, a silent connection closed; the server goes on', async (t) => {
    const c = await terminal(f, '13800000055');
    t.equal((await c.ask(JT_MSG.LOCATION, encodeLocation(position(1)))).result, 1, 'a position before authentication');
    const before = c.received.length;
    c.send(JT_MSG.LOCATION_BATCH, Buffer.alloc(0), () => encodeFrame({ msgId: JT_MSG.LOCATION_BATCH, edition: '2013', phone: c.phone, serial: 7, packet: { total: 3, index: 1 } }, Buffer.alloc(100)));
    t.same(decodeGeneralResponse((await c.next(JT_MSG.PLATFORM_RESPONSE, before)).body), { serial: 7, msgId: JT_MSG.LOCATION_BATCH, result: 1 }, 'a piece of one too, and it is not kept');
    const corrupt = (f2: Buffer) => {
      const b = Buffer.from(f2);
      b[b.length - 2] = b[b.length - 2]! ^ 0x5a;
      return b;
    };
    c.send(JT_MSG.HEARTBEAT, Buffer.alloc(0), corrupt);
    c.socket.write(Buffer.from('7e02007d0500000000000000000000007e', 'hex'));
    c.socket.write(Buffer.concat([Buffer.from([0x7e]), Buffer.alloc(8_000, 0x41), Buffer.from([0x7e])]));
    c.socket.write(Buffer.alloc(50_000, 0x30));
    await waitFor(async () => ({ ...jt.parseErrors }), (e) => (e.checksum ?? 0) >= 1 && (e.escape ?? 0) >= 1 && (e.oversize ?? 0) >= 1, 2_000, 20, 'the errors counted');
    t.ok(await c.closedWithin(3_000), 'closed for not authenticating within jt808.authTimeoutSec');
    const metrics = (await f.gw.api('GET', '/metrics')).body;
    t.match(metrics, /wallgate_jt808_parse_errors_total\{kind="checksum"\} [1-9]/);
    t.match(metrics, /wallgate_jt808_terminals_online 2/);
    t.match(metrics, /wallgate_jt808_frames_total [1-9]/);
    t.match(metrics, /wallgate_jt808_refusals_total\{reason="unknown"\} 2/);
    t.match(metrics, /wallgate_jt808_refusals_total\{reason="terminal"\} 1/);
    t.match(metrics, /wallgate_jt808_connections_refused_total 0/);
    const ok = f.terminals[0]!;
    t.equal((await ok.ask(JT_MSG.HEARTBEAT, Buffer.alloc(0))).result, 0, 'the other terminals are served on');
  });

  await t.test('unregistration forgets the auth code', async (t) => {
    const c = f.terminals.find((x) => x.phone === '013900000001' && !x.closed)!;
    t.equal((await c.ask(JT_MSG.UNREGISTER, Buffer.alloc(0))).result, 0);
    t.ok(await c.closedWithin(2_000));
    t.equal(await f.gw.store.jt.getTerminal('13900000001'), null);
  });

  await t.test("deleting a vehicle ends its terminal's link and forgets its auth code", async (t) => {
    await addVehicle(f, 'vd', '粤A44444', '13800000044');
    const c = await terminal(f, '13800000044');
    await online(c, '粤A44444');
    const del = await f.gw.api('DELETE', '/api/vehicles/vd', { token: f.gw.adminToken });
    t.equal(del.status, 204);
    t.ok(await c.closedWithin(2_000));
    await waitFor(() => f.gw.store.jt.getTerminal('13800000044'), (r) => r === null, 2_000, 20, 'the auth code forgotten');
    t.equal(jt.terminal('vd'), null);
  });

  await t.test("a SIM is one vehicle's (leading zeros ignored): another vehicle cannot take it by create, update or import", async (t) => {
    const taken = await f.gw.api('POST', '/api/vehicles', { token: f.gw.adminToken, body: vehicleBody('vx', '粤A55555', 'countyA', { sim: '0013800000099' }, 0) });
    t.match(taken, { status: 409, json: { code: 'GW_ERR_CONFLICT', message: /^sim: /, params: { reason: 'simTaken', sim: '0013800000099' } } }, "county B's SIM refused to a county A vehicle");
    const v13 = await f.gw.api('GET', '/api/vehicles/v13', { token: f.gw.adminToken });
    const moved = await f.gw.api('PATCH', '/api/vehicles/v13', { token: f.gw.adminToken, headers: { 'if-match': String(v13.headers.etag) }, body: { sim: '13800000099' } });
    t.match(moved, { status: 409, json: { params: { reason: 'simTaken' } } }, 'nor by an update');
    const imported = await f.gw.api('POST', '/api/vehicles/import?mode=keep-valid', {
      token: f.gw.adminToken,
      headers: { 'content-type': 'application/x-ndjson' },
      payload: [{ ...vehicleBody('vy', '粤A55556', 'countyA', { sim: '13800000099' }, 0) }, { ...vehicleBody('vz', '粤A55557', 'countyA', { sim: '13811111111' }, 0) }, { ...vehicleBody('vw', '粤A55558', 'countyA', { sim: '013811111111' }, 0) }]
        .map((x) => JSON.stringify(x))
        .join('\n'),
    });
    t.match(imported.json, { created: 1, errors: [{ line: 1, field: 'sim' }, { line: 3, field: 'sim', message: /also given at line 2/ }] }, 'nor by an import, against the registry or the file');
    t.equal(jt.vehicleBySim('13800000099'), 'vb', 'the SIM still finds its vehicle');
  });

  await t.test('an auth code issued for another vehicle does not authenticate', async (t) => {
    // Left by a vehicle that had the SIM before (its record was not forgotten): it names that vehicle, not the one with the SIM now.
    await f.gw.store.jt.putTerminal({ sim: '13800000099', vehicleId: 'v13', authCode: 'feedfacefeedface', edition: '2013', phone: '013800000099', plate: '', plateColor: 0, terminalId: '', manufacturer: '', model: '', registeredAt: 1, seenAt: null, address: null });
    const c = await terminal(f, '13800000099');
    t.equal((await c.authenticate('feedfacefeedface')).result, 1);
    t.ok(await c.closedWithin(2_000));
    t.equal(jt.terminal('vb')!.online, false);
    await f.gw.store.jt.deleteTerminal('13800000099', 'v13');
  });

  await t.test("deleting a vehicle forgets only its own auth code, not that of the vehicle its SIM moved to", async (t) => {
    await addVehicle(f, 've1', '粤A66661', '13800000061');
    const c1 = await terminal(f, '13800000061');
    await online(c1, '粤A66661');
    c1.close();
    await waitFor(async () => jt.terminal('ve1')!.online, (o) => !o, 2_000, 20, 've1 offline');
    const ve1 = await f.gw.api('GET', '/api/vehicles/ve1', { token: f.gw.adminToken });
    t.equal((await f.gw.api('PATCH', '/api/vehicles/ve1', { token: f.gw.adminToken, headers: { 'if-match': String(ve1.headers.etag) }, body: { sim: '13800000062' } })).status, 200);
    await addVehicle(f, 've2', '粤A66662', '13800000061');
    const c2 = await terminal(f, '13800000061');
    const code = await online(c2, '粤A66662');
    t.equal((await f.gw.api('DELETE', '/api/vehicles/ve1', { token: f.gw.adminToken })).status, 204);
    await new Promise((r) => setTimeout(r, 100));
    t.match(await f.gw.store.jt.getTerminal('13800000061'), { vehicleId: 've2', authCode: code }, "ve2's code stays");
    t.ok(jt.terminal('ve2')!.online);
  });

  await t.test('a vehicle without a terminal id: while a code exists another registration gets result 3, until an admin resets it', async (t) => {
    await addVehicle(f, 'vn', '粤A77771', '13800000071', 'countyA', null);
    const first = await terminal(f, '13800000071');
    const code = await online(first, '粤A77771');
    const second = await terminal(f, '13800000071');
    t.same(await second.register('粤A77771', 'T4242'), { serial: 0, result: 3, authCode: null }, 'terminal already registered');
    t.equal((await second.authenticate('0123456789abcdef')).result, 1, 'and without the code it gets nowhere');
    t.ok(await second.closedWithin(2_000));
    t.ok(jt.terminal('vn')!.online, 'the first keeps its link');
    const restarted = await terminal(f, '13800000071');
    t.equal((await restarted.register('粤A77771', 'T0001')).result, 3, 'the holder registering again on a restart gets 3 too');
    t.equal((await restarted.authenticate(code)).result, 0, 'and authenticates with its code on the same connection');
    t.ok(await first.closedWithin(2_000), 'replacing its old link');
    t.match((await f.gw.api('GET', '/api/jt808/refused', { token: f.gw.adminToken })).json.items, [{ sim: '13800000071', reason: 'registered', count: 3 }], 'each attempt listed (one row per SIM and address, its latest reason)');
    const county = await f.gw.userToken('county-reset', ['admin'], ['countyB']);
    t.equal((await f.gw.api('DELETE', '/api/jt808/terminals/13800000071', { token: county })).status, 404, "another county's admin cannot reset it");
    t.equal((await f.gw.api('DELETE', '/api/jt808/terminals/13800000071', { token: f.gw.adminToken })).status, 204);
    t.ok(await restarted.closedWithin(2_000), 'the reset ends its link');
    t.equal(await f.gw.store.jt.getTerminal('13800000071'), null);
    const third = await terminal(f, '13800000071');
    t.equal((await third.register('粤A77771', 'T4242')).result, 0, 'after the reset a new terminal registers');
  });

  await t.test('before authentication a registration or authentication in pieces is refused (result 2) and nothing kept; talking unauthenticated is listed once', async (t) => {
    const c = await terminal(f, '13800000013');
    const body = registration('粤A13013', 'T0001', '2013');
    const from = c.received.length;
    [body.subarray(0, 20), body.subarray(20)].forEach((piece, i) =>
      c.send(JT_MSG.REGISTER, Buffer.alloc(0), () => encodeFrame({ msgId: JT_MSG.REGISTER, edition: '2013', phone: c.phone, serial: 200 + i, packet: { total: 2, index: i + 1 } }, piece)),
    );
    const answers = await waitFor(async () => c.received.slice(from).filter((m) => m.header.msgId === JT_MSG.PLATFORM_RESPONSE).map((m) => decodeGeneralResponse(m.body)), (a) => a.length >= 2, 2_000, 20, 'both pieces answered');
    t.same(answers, [200, 201].map((serial) => ({ serial, msgId: JT_MSG.REGISTER, result: 2 })), 'each piece answered result 2');
    // Handled in order: a registration put together from the pieces would be answered before these.
    t.equal((await c.ask(JT_MSG.HEARTBEAT, Buffer.alloc(0))).result, 1, 'a heartbeat before authentication');
    t.equal((await c.ask(JT_MSG.LOCATION, encodeLocation(position(1)))).result, 1);
    t.notOk(c.received.slice(from).some((m) => m.header.msgId === JT_MSG.REGISTER_REPLY), 'the pieces were not put together into a registration');
    const rows = await waitFor(async () => (await f.gw.api('GET', '/api/jt808/refused', { token: f.gw.adminToken })).json.items.filter((r: any) => r.reason === 'unauthenticated'), (r) => r.length > 0, 2_000, 20, 'the unauthenticated terminal listed');
    t.match(rows, [{ sim: '13800000013', address: '127.0.0.1', count: 1 }], 'once for the connection, with the SIM of its header');
  });

  await t.test('shutdown closes every connection', async (t) => {
    await f.gw.close();
    for (const c of f.terminals) t.ok(await c.closedWithin(2_000));
    t.equal(jt.connectionCount, 0);
  });
});

t.test('auto-registration makes an unknown terminal a vehicle in the configured department', async (t) => {
  const f = await jtGateway(t, { autoRegister: { enabled: true, departmentId: 'countyB', channels: 2, maxPerHour: 3 } });
  const c = await terminal(f, '13700000001');
  await online(c, '粤D12345');
  const v = await vehicle(f, 'jt-13700000001');
  t.match(v, { plate: '粤D12345', plateColor: 'yellow', departmentId: 'countyB', terminalId: 'T0001', sim: '13700000001' });
  t.same(v.channels, [1, 2].map((n) => ({ channel: n, name: `channel ${n}`, sourceId: `jt-13700000001-ch${n}` })));
  const source = (await f.gw.api('GET', '/api/sources/jt-13700000001-ch2', { token: f.gw.adminToken })).json;
  t.match(source, { protocol: 'jt1078', url: 'jt1078://jt-13700000001/2', subUrl: 'jt1078://jt-13700000001/2?stream=1', departmentId: 'countyB' });
  const bad = await terminal(f, '13700000002');
  t.equal((await bad.register('LFV2A21K957000001')).result, 4, 'a VIN is no plate: refused');
  t.match((await f.gw.api('GET', '/api/jt808/refused', { token: f.gw.adminToken })).json.items, [{ sim: '13700000002', reason: 'plate' }]);

  // A terminal that registers again on a second connection before the first is answered: one vehicle, both answered.
  const [x, y] = [await terminal(f, '13700000003'), await terminal(f, '13700000003')];
  const both = await Promise.all([x.register('粤D12346'), y.register('粤D12346')]);
  t.same(both.map((r) => r.result), [0, 0], 'one SIM at a time: the second waits for the first one\'s vehicle');
  t.equal((await vehicle(f, 'jt-13700000003')).plate, '粤D12346');

  const over = await terminal(f, '13700000004');
  t.equal((await over.register('粤D12347')).result, 4, 'past jt808.autoRegister.maxPerHour an unknown terminal is refused');
  t.equal((await f.gw.api('GET', '/api/vehicles/jt-13700000004', { token: f.gw.adminToken })).status, 404);
});

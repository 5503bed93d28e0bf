/**
 * The JT/T 808/1078 terminal simulator against a bare platform built from the gateway's codecs:
 * registration and authentication in both editions (a kept code, a forgotten one, a refusal),
 * positions with held alarm bits and ADAS/DSM in the Jiangsu and Guangdong forms, 0x9101 answered
 * with video from a keyframe over TCP (2016 layout) and UDP (BCD[10] layout), 0x9102 switch and
 * close, and its faults: loss and reordering, bad checksums, oversized frames, no media, refusal.
 */
import { once } from 'node:events';
import { createSocket } from 'node:dgram';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import t, { type Test } from 'tap';
import type { AccessUnit } from '../../../gateway/src/gb28181/media/types.js';
import { encodeFrame, FrameSplitter, type JtMessage } from '../../../gateway/src/jt/protocol/frame.js';
import { decodeLocation } from '../../../gateway/src/jt/protocol/location.js';
import {
  decodeAuthentication,
  decodeGeneralResponse,
  decodeRegistration,
  encodeGeneralResponse,
  encodeLiveControl,
  encodeLiveRequest,
  encodeLiveStatus,
  encodeRegistrationReply,
  JT_MSG,
  type LiveControl,
  type LiveRequest,
} from '../../../gateway/src/jt/protocol/messages.js';
import { Jt1078StreamParser, type Jt1078Packet } from '../../../gateway/src/jt/media/packet.js';
import { Jt1078Reassembler } from '../../../gateway/src/jt/media/reassembler.js';
import { ensureClip } from '../../../scripts/sim/clips.js';
import { JtSimRefusedError, JtSimTerminal, type JtSimTerminalOptions } from '../../../scripts/sim/jt-terminal.js';
import { waitFor } from '../../helpers/streams.js';

const SIM = '14400000001';

/** A JT/T 808 platform reduced to what the terminal talks to, and a 1078 media receiver (TCP and UDP). */
async function bench(t: Test) {
  const state = {
    messages: [] as JtMessage[],
    parseErrors: [] as string[],
    links: [] as Socket[],
    code: 'code-1234',
    registerResult: 0 as 0 | 1 | 2 | 3 | 4,
    serial: 0,
    packets: [] as Jt1078Packet[],
    units: [] as AccessUnit[],
    mediaLinks: [] as Socket[],
    mediaErrors: [] as string[],
  };
  const reply = (sock: Socket, to: JtMessage, msgId: number, body: Buffer) =>
    sock.write(encodeFrame({ msgId, edition: to.header.edition, phone: to.header.phone, serial: state.serial++, ...(to.header.edition === '2019' ? { protocolVersion: 1 } : {}) }, body));
  const server = createServer((sock) => {
    sock.on('error', () => {});
    state.links.push(sock);
    const splitter = new FrameSplitter({
      maxFrameBytes: 4096,
      onError: (kind) => state.parseErrors.push(kind),
      onMessage: (m) => {
        state.messages.push(m);
        const { msgId, serial } = m.header;
        if (msgId === JT_MSG.REGISTER) {
          reply(sock, m, JT_MSG.REGISTER_REPLY, encodeRegistrationReply({ serial, result: state.registerResult, ...(state.registerResult === 0 ? { authCode: state.code } : {}) }));
        } else if (msgId === JT_MSG.AUTH) {
          const ok = decodeAuthentication(m.body, m.header.edition).authCode === state.code;
          reply(sock, m, JT_MSG.PLATFORM_RESPONSE, encodeGeneralResponse({ serial, msgId, result: ok ? 0 : 1 }));
        } else if (msgId !== JT_MSG.TERMINAL_RESPONSE) {
          reply(sock, m, JT_MSG.PLATFORM_RESPONSE, encodeGeneralResponse({ serial, msgId, result: 0 }));
        }
      },
    });
    sock.on('data', (d: Buffer) => splitter.push(d));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const receiver = () => {
    const reassembler = new Jt1078Reassembler({ maxFrameBytes: 4_194_304, onUnit: (u) => state.units.push(u) });
    return new Jt1078StreamParser({
      maxBodyBytes: 65_536,
      onPacket: (p) => {
        state.packets.push(p);
        reassembler.push(p);
      },
      onError: (kind) => state.mediaErrors.push(kind),
    });
  };
  const media = createServer((sock) => {
    sock.on('error', () => {});
    state.mediaLinks.push(sock);
    const parser = receiver();
    sock.on('data', (d: Buffer) => parser.push(d));
  });
  media.listen(0, '127.0.0.1');
  await once(media, 'listening');
  const udp = createSocket('udp4');
  const udpParser = receiver();
  udp.on('message', (d) => udpParser.push(d));
  udp.bind(0, '127.0.0.1');
  await once(udp, 'listening');
  t.teardown(async () => {
    for (const s of [...state.links, ...state.mediaLinks]) s.destroy();
    udp.close();
    await Promise.all([new Promise((r) => server.close(r)), new Promise((r) => media.close(r))]);
  });
  const port = (server.address() as AddressInfo).port;
  const terminal = (o: Partial<JtSimTerminalOptions> = {}) => {
    const term = new JtSimTerminal({ host: '127.0.0.1', port, sim: SIM, edition: '2013', plate: '苏A00001', terminalId: 'T100000', clip: 'h264-720p-1s', subClip: 'h264-360p-1s', ...o });
    t.teardown(() => term.close());
    return term;
  };
  const link = () => state.links.at(-1)!;
  const last = (msgId: number) => [...state.messages].reverse().find((m) => m.header.msgId === msgId)!;
  /** Sends a platform command on the newest link and resolves with the terminal's 0x0001 result. */
  const command = async (msgId: number, body: Buffer) => {
    const to = state.messages.at(-1)!;
    const serial = state.serial;
    reply(link(), to, msgId, body);
    const answer = await waitFor(
      () => state.messages.find((m) => m.header.msgId === JT_MSG.TERMINAL_RESPONSE && decodeGeneralResponse(m.body).serial === serial),
      (m) => m !== undefined,
      5_000,
      20,
      `the terminal's answer to 0x${msgId.toString(16)}`,
    );
    const r = decodeGeneralResponse(answer!.body);
    t.equal(r.msgId, msgId, 'the answer names the command');
    return r.result;
  };
  const liveRequest = (r: Partial<LiveRequest> = {}) => command(JT_MSG.LIVE_REQUEST, encodeLiveRequest({ ip: '127.0.0.1', tcpPort: (media.address() as AddressInfo).port, udpPort: udp.address().port, channel: 2, dataType: 1, stream: 0, ...r }));
  const liveControl = (c: LiveControl) => command(JT_MSG.LIVE_CONTROL, encodeLiveControl(c));
  return { state, terminal, last, command, liveRequest, liveControl };
}

const ids = (b: { state: { messages: JtMessage[] } }) => b.state.messages.map((m) => m.header.msgId);

// First, so no socket of an earlier test is still closing when it counts.
t.test('close leaves no socket or timer of the terminal behind', async (t) => {
  const b = await bench(t);
  const count = () => {
    const info = process.getActiveResourcesInfo();
    return { sockets: info.filter((r) => r === 'TCPSocketWrap' || r === 'UDPWrap').length, timers: info.filter((r) => r === 'Timeout').length };
  };
  const before = count();
  const term = b.terminal({ clip: 'h264-360p-1s', heartbeatIntervalMs: 1_000 });
  await term.connect();
  t.equal(await b.liveRequest({ udpPort: 0 }), 0);
  await waitFor(() => b.state.units.length, (n) => n >= 3, 10_000, 20, 'frames');
  const during = count();
  t.ok(during.sockets >= before.sockets + 4, 'the links are open (both ends of 808 and of media)');
  await term.close();
  await waitFor(() => b.state.links.concat(b.state.mediaLinks).every((s) => s.destroyed || s.readableEnded), (x) => x, 5_000, 20, 'the platform saw both links end');
  for (const s of [...b.state.links, ...b.state.mediaLinks]) s.destroy();
  await waitFor(count, (c) => c.sockets === before.sockets && c.timers <= before.timers, 5_000, 20, 'no socket or timer left');
});

t.test('2013 over TCP: registers, reports, raises and ends alarms, streams a channel from a keyframe, switches to the sub-stream, closes it', async (t) => {
  const b = await bench(t);
  const term = b.terminal();
  await term.connect();
  t.same(ids(b), [JT_MSG.REGISTER, JT_MSG.AUTH], 'registration, then authentication with the code it got');
  const reg = b.last(JT_MSG.REGISTER);
  t.match(reg.header, { edition: '2013', phone: `0${SIM}`, sim: SIM });
  t.match(decodeRegistration(reg.body, '2013'), { plate: '苏A00001', terminalId: 'T100000' });
  t.equal(term.authCode, 'code-1234');
  t.ok(term.online);

  t.equal(await term.sendLocation({ lat: 32.1, lon: 118.9, speedKmh: 42.5, heading: 90 }), 0, 'the platform answered the position');
  const where = decodeLocation(b.last(JT_MSG.LOCATION).body);
  t.match(where, { alarm: 0, heading: 90 });
  t.ok(Math.abs(where.lat - 32.1) < 1e-6 && Math.abs(where.lon - 118.9) < 1e-6 && Math.abs(where.speedKmh - 42.5) < 0.1, 'lat, lon and speed as given');

  await term.sendAlarm({ bits: 1 });
  t.equal(decodeLocation(b.last(JT_MSG.LOCATION).body).alarm, 1, 'SOS raised');
  await term.sendAlarm({ adas: { type: 1, level: 2 } });
  const started = decodeLocation(b.last(JT_MSG.LOCATION).body);
  t.equal(started.alarm, 1, 'the SOS bit is held in later reports');
  t.match(started.extras.adas, { flag: 1, type: 1, level: 2, identifier: { form: 'su', terminalId: 'T100000' } }, 'ADAS start in the Jiangsu form');
  await term.sendAlarm({ adas: { type: 1, level: 2, flag: 2 } });
  const ended = decodeLocation(b.last(JT_MSG.LOCATION).body).extras.adas!;
  t.equal(ended.flag, 2);
  t.equal(ended.alarmId, started.extras.adas!.alarmId, "the end carries the start's alarm id");
  await term.clearAlarm({ bits: 1 });
  t.equal(decodeLocation(b.last(JT_MSG.LOCATION).body).alarm, 0, 'SOS cleared');

  const opened = once(term, 'media-open');
  t.equal(await b.liveRequest({ udpPort: 0 }), 0, '0x9101 taken');
  t.match(term.commands, [{ msgId: JT_MSG.LIVE_REQUEST, request: { channel: 2, stream: 0, ip: '127.0.0.1' } }]);
  const [info] = await opened;
  t.match(info, { channel: 2, stream: 0, transport: 'tcp', layout: '2016' });
  await waitFor(() => b.state.units.length, (n) => n >= 10, 10_000, 20, 'ten frames');
  t.match(b.state.packets[0], { layout: '2016', sim: SIM, channel: 2, dataType: 0, pt: 98 }, 'the first packet is of an I frame');
  t.ok(b.state.units[0]!.key, 'the first access unit is a keyframe');
  t.ok(b.state.units.every((u, i) => i === 0 || u.pts90k > b.state.units[i - 1]!.pts90k), 'timestamps increase');
  t.ok(b.state.packets.some((p) => p.subpackage !== 0), 'large frames travel in pieces');
  t.same(b.state.mediaErrors, []);

  const sub = await ensureClip('h264-360p-1s');
  const before = b.state.units.length;
  t.equal(await b.liveControl({ channel: 2, command: 1, closeType: 0, stream: 1 }), 0);
  await waitFor(() => b.state.units.slice(before).find((u) => u.key && u.data.includes(sub.parameterSets[0]!)), (u) => u !== undefined, 10_000, 20, "the sub-stream's keyframe");
  t.equal(term.mediaInfo()[0]?.stream, 1);

  const closed = once(term, 'media-close');
  t.equal(await b.liveControl({ channel: 2, command: 0, closeType: 0, stream: 0 }), 0);
  t.match((await closed)[0], { channel: 2 });
  await waitFor(() => b.state.mediaLinks[0]!.readableEnded || b.state.mediaLinks[0]!.destroyed, (x) => x, 5_000, 20, 'the media link closed');
  t.same(term.mediaInfo(), []);
  await term.close();
  await term.close();
  await t.rejects(term.connect(), /closed/, 'a closed terminal stays closed');
});

t.test('2019 over UDP: authenticates with a kept code, BCD[10] packets, DSM in the Guangdong form; registers again when the code is forgotten', async (t) => {
  const b = await bench(t);
  const term = b.terminal({ edition: '2019', authCode: 'code-1234', mediaTransport: 'udp', clip: 'h264-360p-1s' });
  await term.connect();
  t.same(ids(b), [JT_MSG.AUTH], 'a kept code: authentication only');
  const auth = b.last(JT_MSG.AUTH);
  t.match(auth.header, { edition: '2019', protocolVersion: 1, phone: SIM.padStart(20, '0'), sim: SIM });
  t.match(decodeAuthentication(auth.body, '2019'), { authCode: 'code-1234', imei: /^\d{15}$/ });

  await term.sendAlarm({ dsm: { type: 2, level: 1 } });
  t.match(decodeLocation(b.last(JT_MSG.LOCATION).body).extras.dsm, { flag: 1, type: 2, level: 1, identifier: { form: 'yue', terminalId: 'T100000' } });

  t.equal(await b.command(JT_MSG.LIVE_STATUS, encodeLiveStatus({ channel: 2, lossPct: 3 })), 0, '0x9105 answered');
  t.match(term.statusNotices, [{ channel: 2, lossPct: 3 }]);
  t.equal(await b.liveRequest(), 0);
  await waitFor(() => b.state.units.length, (n) => n >= 5, 10_000, 20, 'frames over UDP');
  t.match(b.state.packets[0], { layout: '2019', sim: SIM, channel: 2, dataType: 0 });
  t.equal(b.state.mediaLinks.length, 0, 'no TCP media link');

  // The platform lost its database: the old code is refused, so the terminal registers afresh.
  b.state.code = 'code-5678';
  await term.disconnect();
  t.notOk(term.online);
  t.same(term.mediaInfo(), [], 'media ends with the link');
  b.state.messages.length = 0;
  await term.connect();
  t.same(ids(b), [JT_MSG.AUTH, JT_MSG.REGISTER, JT_MSG.AUTH]);
  t.equal(term.authCode, 'code-5678');
});

t.test('a terminal the platform does not know is refused with its result', async (t) => {
  const b = await bench(t);
  b.state.registerResult = 4;
  const term = b.terminal();
  const err = await term.connect().then(() => null, (e: unknown) => e);
  t.ok(err instanceof JtSimRefusedError);
  t.match(err, { step: 'register', result: 4 });
  t.notOk(term.online);
});

t.test('faults: a bad checksum and an oversized frame are the platform\'s to drop, the link lives on; loss and reordering; no media; a refused request', async (t) => {
  const b = await bench(t);
  const term = b.terminal({ clip: 'h264-360p-1s', faults: { loss: 0.05, reorder: 0.2 }, seed: 7 });
  await term.connect();
  term.sendBadChecksum();
  t.equal(await term.heartbeat(), 0, 'the next heartbeat is answered');
  t.ok(b.state.parseErrors.includes('checksum'), 'the platform saw a bad checksum');
  term.sendOversized(20_000);
  t.equal(await term.heartbeat(), 0);
  t.ok(b.state.parseErrors.includes('oversize'), 'the platform saw an oversized frame');

  t.equal(await b.liveRequest({ udpPort: 0 }), 0);
  await waitFor(() => b.state.packets.length, (n) => n >= 300, 15_000, 50, 'packets');
  const seqs = b.state.packets.map((p) => p.seq);
  t.ok(seqs.some((s, i) => i > 0 && s < seqs[i - 1]!), 'some packets come out of order');
  t.ok(term.mediaInfo()[0]!.lost > 0, 'some packets are lost');
  t.ok(b.state.units.length > 0, 'whole frames still come through');

  term.faults.noMedia = true;
  const links = b.state.mediaLinks.length;
  t.equal(await b.liveRequest({ channel: 3, udpPort: 0 }), 0, 'a terminal that never opens media still says yes');
  await new Promise((r) => setTimeout(r, 1_000));
  t.equal(b.state.mediaLinks.length, links, 'and opens no link');

  term.faults.refuseLive = 3;
  t.equal(await b.liveRequest({ channel: 4 }), 3, '0x9101 refused with the result set');
  t.same(term.mediaInfo().map((m) => m.channel), [2]);
});

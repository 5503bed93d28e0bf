/**
 * The GB/T 28181 simulator against a bare SIP endpoint playing the upper platform: digest
 * registration (challenge, stale nonce, wrong password, unregister), keepalives, a catalog in
 * several GB2312 messages sent one at a time, DeviceInfo, PTZ commands recorded, SUBSCRIBE/NOTIFY,
 * and INVITE with PS over RTP on UDP and both TCP modes, with its faults.
 */
import { createSocket } from 'node:dgram';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import iconv from 'iconv-lite';
import t, { type Test } from 'tap';
import { digestResponse, NonceStore, parseDigestParams } from '../../../gateway/src/gb28181/sip/digest.js';
import { SipEndpoint, SipStatusError } from '../../../gateway/src/gb28181/sip/endpoint.js';
import { header, type SipRequest } from '../../../gateway/src/gb28181/sip/message.js';
import { SipTransport, type SipPeer } from '../../../gateway/src/gb28181/sip/transport.js';
import { PsDemuxer } from '../../../gateway/src/gb28181/media/ps-demux.js';
import type { AccessUnit } from '../../../gateway/src/gb28181/media/types.js';
import { items, parseManscdp } from '../../../gateway/src/gb28181/xml.js';
import { GbSimDevice, GbSimPlatform, GbSimRegisterError } from '../../../scripts/sim/gb-device.js';

const SERVER_ID = '34020000002000000001';
const DOMAIN = '3402000000';
const PASSWORD = 'sim-secret-1';
const PLATFORM_ID = '34020100002000000001';

interface Received {
  req: SipRequest;
  peer: SipPeer;
  text: string;
  at: number;
}

/** An upper platform reduced to what the simulator talks to, with hooks for the test. */
async function upperPlatform(t: Test, opts: { transport: 'udp' | 'tcp' } = { transport: 'udp' }) {
  const transport = new SipTransport({ host: '127.0.0.1', port: 0, udp: true, tcp: true, maxMessageBytes: 1_048_576 });
  const ports = await transport.listen();
  const endpoint = new SipEndpoint({ transport, id: SERVER_ID, domain: DOMAIN, userAgent: 'test-upper', publicAddress: '', requestTimeoutMs: 4_000 });
  const nonces = new NonceStore(60_000);
  const state = {
    port: (opts.transport === 'udp' ? ports.udpPort : ports.tcpPort)!,
    registers: [] as { expires: number; authorized: boolean; stale: boolean; peer: SipPeer }[],
    messages: [] as Received[],
    /** The next challenge says stale=true whatever the device sent. */
    forceStale: false,
    /** ms the server waits before its 200 to a MESSAGE. */
    messageDelayMs: 0,
    devicePeer: null as SipPeer | null,
    waiters: [] as (() => void)[],
  };
  const changed = () => state.waiters.splice(0).forEach((w) => w());
  endpoint.onRequest('REGISTER', (req, peer) => {
    const expires = Number(header(req, 'Expires') ?? 3600);
    const auth = header(req, 'Authorization');
    const challenge = (stale: boolean) =>
      endpoint.reply(req, peer, 401, 'Unauthorized', { headers: [['WWW-Authenticate', `Digest realm="${DOMAIN}", nonce="${nonces.issue()}", qop="auth", algorithm=MD5${stale ? ', stale=true' : ''}`]] });
    if (!auth) {
      state.registers.push({ expires, authorized: false, stale: false, peer });
      return challenge(false);
    }
    const p = parseDigestParams(auth);
    const check = nonces.check(p.nonce ?? '', p.nc);
    if (state.forceStale || check === 'stale') {
      state.forceStale = false;
      state.registers.push({ expires, authorized: false, stale: true, peer });
      return challenge(true);
    }
    const expected = digestResponse({ username: p.username ?? '', realm: p.realm ?? '', password: PASSWORD, method: 'REGISTER', uri: p.uri ?? '', nonce: p.nonce ?? '', qop: p.qop, nc: p.nc, cnonce: p.cnonce });
    if (check !== 'ok' || p.response !== expected) {
      state.registers.push({ expires, authorized: false, stale: false, peer });
      endpoint.reply(req, peer, 403, 'Forbidden');
      return changed();
    }
    state.registers.push({ expires, authorized: true, stale: false, peer });
    state.devicePeer = peer;
    endpoint.reply(req, peer, 200, 'OK', { headers: [['Expires', String(expires)], ['Date', '2026-12-06T22:00:00.000']] });
    changed();
  });
  endpoint.onRequest('MESSAGE', (req, peer) => {
    const declared = /encoding="([^"]+)"/.exec(req.body.subarray(0, 80).toString('latin1'))?.[1] ?? 'UTF-8';
    state.messages.push({ req, peer, text: iconv.decode(req.body, declared), at: Date.now() });
    const answer = () => endpoint.reply(req, peer, 200, 'OK');
    if (state.messageDelayMs > 0) setTimeout(answer, state.messageDelayMs);
    else answer();
    changed();
  });
  /** Resolves once cond() holds after some request, or rejects after ms (a wait that never passes quietly). */
  const until = async (cond: () => boolean, what: string, ms = 5_000) => {
    const deadline = Date.now() + ms;
    while (!cond()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await Promise.race([new Promise<void>((r) => state.waiters.push(r)), sleep(50)]);
    }
  };
  const query = (deviceId: string, body: string, target = deviceId) =>
    endpoint.request(state.devicePeer!, { method: 'MESSAGE', targetId: target, body: Buffer.from(`<?xml version="1.0" encoding="UTF-8"?>\r\n${body}`), contentType: 'Application/MANSCDP+xml' });
  t.teardown(async () => {
    await endpoint.close();
    await transport.close();
  });
  return { endpoint, state, until, query, server: { address: '127.0.0.1', port: state.port, id: SERVER_ID } };
}

const cmdOf = (text: string) => /<CmdType>([^<]+)<\/CmdType>/.exec(text)?.[1];

t.test('registers with digest, answers a stale nonce, refreshes, keeps alive and unregisters on stop', async (t) => {
  const up = await upperPlatform(t);
  const dev = new GbSimDevice({ id: '34020000001320000001', password: PASSWORD, server: up.server, keepaliveIntervalMs: 200, expiresSec: 3 });
  t.teardown(() => dev.stop());
  await dev.start();
  t.ok(dev.registered, 'registered');
  t.equal(dev.serverDate, '2026-12-06T22:00:00.000', 'the Date of the 200 OK is kept (the device clock)');
  t.same(up.state.registers.map((r) => r.authorized), [false, true], 'a 401 challenge, then an authorized REGISTER');

  await up.until(() => up.state.messages.filter((m) => cmdOf(m.text) === 'Keepalive').length >= 2, 'two keepalives');
  const ka = up.state.messages.find((m) => cmdOf(m.text) === 'Keepalive')!;
  t.match(ka.text, /<Notify>[\s\S]*<DeviceID>34020000001320000001<\/DeviceID>[\s\S]*<Status>OK<\/Status>/, 'a Keepalive Notify');
  t.match(header(ka.req, 'Content-Type') ?? '', /MANSCDP\+xml/i);

  // Refresh before Expires (3 s granted → about 2 s) with the nonce it has; a stale answer gets one more try.
  up.state.forceStale = true;
  await up.until(() => up.state.registers.filter((r) => r.authorized).length >= 2, 'the refresh', 6_000);
  t.ok(up.state.registers.some((r) => r.stale), 'the refresh met a stale challenge');
  t.ok(dev.registered, 'still registered after the stale nonce');

  dev.setFaults({ keepalives: false });
  await sleep(150);
  const before = up.state.messages.length;
  await sleep(600);
  t.equal(up.state.messages.length, before, 'no keepalives while stopped');

  await dev.stop();
  t.equal(up.state.registers.at(-1)?.expires, 0, 'stop unregisters with Expires 0');
  t.equal(up.state.registers.at(-1)?.authorized, true, 'the unregister is authorized too');
});

t.test('a wrong password is refused (403) and start says so', async (t) => {
  const up = await upperPlatform(t);
  const dev = new GbSimDevice({ id: '34020000001320000002', password: 'wrong', server: up.server });
  t.teardown(() => dev.stop());
  const err = await dev.start().then(
    () => null,
    (e: unknown) => e,
  );
  t.ok(err instanceof GbSimRegisterError, 'GbSimRegisterError');
  t.equal((err as GbSimRegisterError).status, 403);
  t.notOk(dev.registered);
});

for (const transport of ['udp', 'tcp'] as const) {
  t.test(`a platform answers a catalog in several GB2312 messages, one at a time (SIP over ${transport})`, async (t) => {
    const up = await upperPlatform(t, { transport });
    const dev = new GbSimPlatform({ id: PLATFORM_ID, password: PASSWORD, server: up.server, transport, channels: 45, live: 5, catalogPageSize: 10 });
    t.teardown(() => dev.stop());
    await dev.start();
    const { groups, channels } = dev.catalog();
    t.same(groups.map((g) => g.id.slice(10, 13)), ['215', '216', '216'], 'a business group, a district and a station');
    t.equal(channels.filter((c) => c.status === 'ON').length, 5, 'the live channels are ON');
    const total = groups.length + channels.length;

    up.state.messageDelayMs = 150;
    const sent = Date.now();
    const res = await up.query(PLATFORM_ID, `<Query>\r\n<CmdType>Catalog</CmdType>\r\n<SN>77</SN>\r\n<DeviceID>${PLATFORM_ID}</DeviceID>\r\n</Query>\r\n`);
    t.equal(res.status, 200, 'the query is answered 200');
    const catalogs = () => up.state.messages.filter((m) => cmdOf(m.text) === 'Catalog');
    await up.until(() => catalogs().length >= Math.ceil(total / 10), 'every catalog message', 10_000);
    const msgs = catalogs();
    t.equal(msgs.length, 5, '48 items in messages of 10');
    for (const [i, m] of msgs.entries()) {
      t.match(m.text, /^<\?xml version="1.0" encoding="GB2312"\?>/, 'declares GB2312');
      t.match(m.text, /<SN>77<\/SN>/, 'echoes the SN');
      t.match(m.text, new RegExp(`<SumNum>${total}</SumNum>`), 'SumNum is the whole catalog');
      if (i > 0) t.ok(m.at - msgs[i - 1]!.at >= 140, `message ${i + 1} waited for the 200 of the one before`);
    }
    t.ok(msgs[0]!.at - sent >= 0);
    // The names, decoded from GB2312 bytes, are the simulator's own; the raw bytes are not UTF-8.
    const names = msgs.flatMap((m) => [...m.text.matchAll(/<Name>([^<]+)<\/Name>/g)].map((x) => x[1]!));
    t.same(names, [...groups.map((g) => g.name), ...channels.map((c) => c.name)], 'every name, in order, decodes right');
    t.match(names[0], /^公安视频专网$/);
    // The gateway's own MANSCDP reader agrees, item by item.
    const parsed = msgs.map((m) => parseManscdp(m.req.body, 65_536));
    t.same(parsed.flatMap((p) => items(p.body.DeviceList).map((i) => i.Name)), names, "the gateway's reader decodes the same names");
    t.ok(parsed.every((p) => p.sn === 77 && p.cmdType === 'Catalog' && p.deviceId === PLATFORM_ID));
    t.notOk(msgs[0]!.req.body.toString('utf8').includes('公安'), 'the body is GB2312, not UTF-8');
    t.ok(msgs[0]!.req.body.includes(iconv.encode('公安视频专网', 'gb2312')), 'the GB2312 bytes of the name are in the body');
    const firstChannel = msgs.map((m) => m.text).join('').split('<Item>').find((x) => x.includes(channels[0]!.id))!;
    t.match(firstChannel, /<Parental>0<\/Parental>/);
    t.match(firstChannel, new RegExp(`<ParentID>${groups[2]!.id}</ParentID>`), 'a channel hangs under its station');
    t.match(firstChannel, /<Status>ON<\/Status>[\s\S]*<Longitude>118\.\d+<\/Longitude>/);
  });
}

t.test('DeviceInfo is answered and PTZ commands are recorded', async (t) => {
  const up = await upperPlatform(t);
  const dev = new GbSimPlatform({ id: PLATFORM_ID, password: PASSWORD, server: up.server, channels: 3, live: 1 });
  t.teardown(() => dev.stop());
  await dev.start();
  await up.query(PLATFORM_ID, `<Query><CmdType>DeviceInfo</CmdType><SN>5</SN><DeviceID>${PLATFORM_ID}</DeviceID></Query>`);
  await up.until(() => up.state.messages.some((m) => cmdOf(m.text) === 'DeviceInfo'), 'DeviceInfo');
  const info = up.state.messages.find((m) => cmdOf(m.text) === 'DeviceInfo')!.text;
  t.match(info, /<Response>[\s\S]*<SN>5<\/SN>[\s\S]*<Manufacturer>wallgate-sim<\/Manufacturer>[\s\S]*<Channel>3<\/Channel>/);

  const channel = dev.catalog().channels[0]!.id;
  const res = await up.query(channel, `<Control><CmdType>DeviceControl</CmdType><SN>9</SN><DeviceID>${channel}</DeviceID><PTZCmd>A50F010800FA00B7</PTZCmd></Control>`);
  t.equal(res.status, 200);
  t.equal(dev.ptzCommands.length, 1, 'one command recorded');
  t.match(dev.ptzCommands[0], { channelId: channel, ptzCmd: 'A50F010800FA00B7', sn: 9 });

  const bad = await up.endpoint.request(up.state.devicePeer!, { method: 'MESSAGE', targetId: PLATFORM_ID, body: Buffer.from('<Query><CmdType>Catalog'), contentType: 'Application/MANSCDP+xml' });
  t.equal(bad.status, 400, 'a body that is not XML gets 400');
});

t.test('malformed XML and slow answers on demand', async (t) => {
  const up = await upperPlatform(t);
  const dev = new GbSimDevice({ id: '34020000001320000003', password: PASSWORD, server: up.server, faults: { malformedXml: true } });
  t.teardown(() => dev.stop());
  await dev.start();
  await dev.keepalive();
  const ka = up.state.messages.at(-1)!.text;
  t.match(ka, /<CmdType>Keepalive/);
  t.notMatch(ka, /<\/Notify>\s*$/, 'the body is cut short');
  dev.setFaults({ malformedXml: false, delayMs: 400 });
  const t0 = Date.now();
  const res = await up.query(dev.id, `<Query><CmdType>DeviceStatus</CmdType><SN>6</SN><DeviceID>${dev.id}</DeviceID></Query>`);
  t.equal(res.status, 200);
  t.ok(Date.now() - t0 >= 380, 'the answer waited the delay');
});

t.test('SUBSCRIBE Catalog, then NOTIFY for an added, renamed and removed channel', async (t) => {
  const up = await upperPlatform(t);
  const dev = new GbSimPlatform({ id: PLATFORM_ID, password: PASSWORD, server: up.server, channels: 4, live: 0 });
  t.teardown(() => dev.stop());
  const notifies: string[] = [];
  up.endpoint.onRequest('NOTIFY', (req, peer) => {
    notifies.push(iconv.decode(req.body, 'gb2312'));
    up.endpoint.reply(req, peer, 200, 'OK');
  });
  await dev.start();
  t.equal(await dev.renameChannel(dev.catalog().channels[0]!.id, 'x'), false, 'no NOTIFY before a subscription');
  const sub = await up.endpoint.request(up.state.devicePeer!, {
    method: 'SUBSCRIBE',
    targetId: PLATFORM_ID,
    headers: [['Event', 'Catalog;id=1'], ['Expires', '600']],
    body: Buffer.from(`<?xml version="1.0"?><Query><CmdType>Catalog</CmdType><SN>3</SN><DeviceID>${PLATFORM_ID}</DeviceID></Query>`),
    contentType: 'Application/MANSCDP+xml',
  });
  t.equal(sub.status, 200);
  t.equal(header(sub, 'Expires'), '600');
  const [first] = dev.catalog().channels;
  t.equal(await dev.addChannel({ id: `${PLATFORM_ID.slice(0, 10)}1310009999`, name: '新增摄像机', status: 'ON', live: true }), true);
  t.equal(await dev.renameChannel(first!.id, '改名后的摄像机'), true);
  t.equal(await dev.removeChannel(first!.id), true);
  t.equal(notifies.length, 3);
  t.match(notifies[0], /<CmdType>Catalog<\/CmdType>[\s\S]*<Name>新增摄像机<\/Name>[\s\S]*<Event>ADD<\/Event>/);
  t.match(notifies[1], /<Name>改名后的摄像机<\/Name>[\s\S]*<Event>UPDATE<\/Event>/);
  t.match(notifies[2], new RegExp(`<DeviceID>${first!.id}</DeviceID>[\\s\\S]*<Event>DEL</Event>`));
  t.equal(dev.catalog().channels.length, 4, 'one added, one removed');
});

/** RTP packets a receiver got: header fields and the payload. */
function rtpOf(p: Buffer) {
  return { pt: p[1]! & 0x7f, seq: p.readUInt16BE(2), ts: p.readUInt32BE(4), ssrc: p.readUInt32BE(8), payload: p.subarray(12) };
}

/** Splits RFC 4571 framing (2-byte length) into RTP packets. */
function rfc4571Reader(onPacket: (p: Buffer) => void) {
  let buf = Buffer.alloc(0);
  return (chunk: Buffer) => {
    buf = Buffer.concat([buf, chunk]);
    while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
      onPacket(buf.subarray(2, 2 + buf.readUInt16BE(0)));
      buf = buf.subarray(2 + buf.readUInt16BE(0));
    }
  };
}

function offer(port: number, ssrc: string, mode: 'udp' | 'tcp-passive' | 'tcp-active'): string {
  const tcp = mode !== 'udp';
  return [
    'v=0', `o=${SERVER_ID} 0 0 IN IP4 127.0.0.1`, 's=Play', 'c=IN IP4 127.0.0.1', 't=0 0',
    `m=video ${port} ${tcp ? 'TCP/RTP/AVP' : 'RTP/AVP'} 96 98`, 'a=recvonly', 'a=rtpmap:96 PS/90000', 'a=rtpmap:98 H264/90000',
    ...(tcp ? [`a=setup:${mode === 'tcp-passive' ? 'passive' : 'active'}`, 'a=connection:new'] : []),
    `y=${ssrc}`, '',
  ].join('\r\n');
}

for (const mode of ['udp', 'tcp-passive', 'tcp-active'] as const) {
  t.test(`INVITE → 200 with SDP → PS over RTP (${mode}) until our BYE`, async (t) => {
    const up = await upperPlatform(t);
    const dev = new GbSimPlatform({ id: PLATFORM_ID, password: PASSWORD, server: up.server, channels: 2, live: 1 });
    t.teardown(() => dev.stop());
    await dev.start();
    const channel = dev.catalog().channels[0]!.id;
    const packets: ReturnType<typeof rtpOf>[] = [];
    const onPacket = (p: Buffer) => packets.push(rtpOf(p));
    let port = 0;
    let close = async () => {};
    let dialTo: ((sdp: string) => Promise<void>) | null = null;
    if (mode === 'udp') {
      const sock = createSocket('udp4');
      sock.on('message', onPacket);
      await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
      port = sock.address().port;
      close = () => new Promise<void>((r) => sock.close(() => r()));
    } else if (mode === 'tcp-passive') {
      const server = createServer((s) => {
        s.on('error', () => {});
        s.on('data', rfc4571Reader(onPacket));
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
      port = (server.address() as AddressInfo).port;
      close = () => {
        server.close();
        return new Promise<void>((r) => server.close(() => r()));
      };
    } else {
      port = 9;
      let sock: Socket | null = null;
      dialTo = async (sdp) => {
        const p = Number(/^m=video (\d+) TCP\/RTP\/AVP/m.exec(sdp)?.[1]);
        t.ok(p > 9, 'the device put its listening port in m=');
        sock = connect({ host: '127.0.0.1', port: p });
        sock.on('error', () => {});
        sock.on('data', rfc4571Reader(onPacket));
        await new Promise<void>((r) => sock!.once('connect', () => r()));
      };
      close = async () => {
        sock?.destroy();
      };
    }
    t.teardown(close);
    const ssrc = '0200000123';
    const dialog = await up.endpoint.invite(up.state.devicePeer!, { targetId: channel, subject: `${channel}:0,${SERVER_ID}:0`, sdp: offer(port, ssrc, mode) });
    t.match(dialog.remoteSdp, /a=sendonly/);
    t.match(dialog.remoteSdp, /^y=0200000123$/m, 'y= echoes ours');
    t.match(dialog.remoteSdp, /^f=v\/2\/5\/25\//m, 'f= says H.264 720p');
    t.match(dialog.remoteSdp, mode === 'udp' ? /^m=video \d+ RTP\/AVP 96/m : /^m=video \d+ TCP\/RTP\/AVP 96/m);
    if (mode !== 'udp') t.match(dialog.remoteSdp, mode === 'tcp-active' ? /a=setup:passive/ : /a=setup:active/);
    if (dialTo) await dialTo(dialog.remoteSdp);
    await up.until(() => packets.length > 50, 'RTP packets', 5_000);
    t.ok(packets.every((p) => p.pt === 96 && p.ssrc === 200000123), 'PT 96 with the y= SSRC');
    t.same([...packets[0]!.payload.subarray(0, 4)], [0, 0, 1, 0xba], 'the first payload starts a PS pack');
    // The gateway's demuxer makes H.264 of it: a keyframe with its parameter sets first, then frames.
    const units: AccessUnit[] = [];
    const demuxer = new PsDemuxer((u) => units.push(u));
    for (const p of packets.slice(0, 50)) demuxer.push(p.payload);
    t.ok(units.length >= 2, `access units came out (${units.length})`);
    t.match(units[0], { codec: 'h264', key: true }, 'the stream starts at a keyframe');
    t.ok(units[0]!.data.includes(Buffer.from([0, 0, 0, 1, 0x67])) || units[0]!.data.includes(Buffer.from([0, 0, 1, 0x67])), 'with its SPS');
    const seqs = packets.slice(0, 30).map((p) => p.seq);
    t.ok(seqs.every((s, i) => i === 0 || s === ((seqs[i - 1]! + 1) & 0xffff)), 'sequence numbers follow on');
    t.equal(dev.streamsInfo().length, 1);
    t.match(dev.streamsInfo()[0], { channelId: channel, mode, ssrc, acked: true });

    // Real time: about 25 frames a second (distinct timestamps), not a burst.
    const frames0 = new Set(packets.map((p) => p.ts)).size;
    await sleep(1_000);
    const perSecond = new Set(packets.map((p) => p.ts)).size - frames0;
    t.ok(perSecond >= 18 && perSecond <= 32, `about 25 frames in a second (${perSecond})`);

    await dialog.bye();
    await sleep(200);
    const after = packets.length;
    await sleep(400);
    t.equal(packets.length, after, 'no packets after our BYE');
    t.equal(dev.streamsInfo().length, 0);
  });
}

t.test('INVITE faults: refusal, an offline channel, no media, wrong SSRC; the device BYE', async (t) => {
  const up = await upperPlatform(t);
  const dev = new GbSimPlatform({ id: PLATFORM_ID, password: PASSWORD, server: up.server, channels: 2, live: 1 });
  t.teardown(() => dev.stop());
  await dev.start();
  const [live, offline] = dev.catalog().channels;
  const packets: ReturnType<typeof rtpOf>[] = [];
  const sock = createSocket('udp4');
  sock.on('message', (p) => packets.push(rtpOf(p)));
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
  t.teardown(() => new Promise<void>((r) => sock.close(() => r())));
  const sdp = offer(sock.address().port, '0200000200', 'udp');
  const invite = (channel: string) => up.endpoint.invite(up.state.devicePeer!, { targetId: channel, subject: `${channel}:0,${SERVER_ID}:0`, sdp });

  const refused = await invite(offline!.id).then(() => null, (e: unknown) => e);
  t.ok(refused instanceof SipStatusError && refused.status === 480, 'an OFF channel answers 480');

  dev.setFaults({ refuseInvite: { status: 486, reason: 'Busy Here' } });
  const busy = await invite(live!.id).then(() => null, (e: unknown) => e);
  t.ok(busy instanceof SipStatusError && busy.status === 486, 'refuseInvite answers its status');
  dev.setFaults({ refuseInvite: null, noMedia: true });

  const quiet = await invite(live!.id);
  await sleep(600);
  t.equal(packets.length, 0, 'noMedia: 200 OK and no RTP');
  await quiet.bye();

  dev.setFaults({ noMedia: false, wrongSsrc: true });
  const wrong = await invite(live!.id);
  await up.until(() => packets.length > 5, 'RTP');
  t.ok(packets.every((p) => p.ssrc !== 200000200), 'wrongSsrc: another SSRC than y=');
  let byeSeen = false;
  wrong.onBye(() => (byeSeen = true));
  t.equal(await dev.byeFromDevice(live!.id), 1, 'the device hangs up its stream');
  await up.until(() => byeSeen, 'the BYE reaching the dialog');
  t.equal(dev.streamsInfo().length, 0);
});

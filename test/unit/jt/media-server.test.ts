import { createSocket } from 'node:dgram';
import { connect, type Socket } from 'node:net';
import t, { type Test } from 'tap';
import type { GatewayError } from '../../../gateway/src/errors.js';
import type { AccessUnit } from '../../../gateway/src/gb28181/media/types.js';
import { JtBudget } from '../../../gateway/src/jt/budget.js';
import { JtChannels, type JtChannelTap } from '../../../gateway/src/jt/channel-link.js';
import type { JtLink, JtTerminalState } from '../../../gateway/src/jt/link.js';
import { packetiseFrame, type Jt1078Layout } from '../../../gateway/src/jt/media/packet.js';
import { JtMediaServer, type JtMediaServerOptions } from '../../../gateway/src/jt/media/server.js';
import { decodeLiveControl, JT_MSG } from '../../../gateway/src/jt/protocol/messages.js';

const SIM = '13800000001';

/** The 808 service as the media server sees it: one vehicle, every command taken and recorded. */
function fakeLink(): JtLink & { sent: { msgId: number; body: Buffer }[] } {
  const state: JtTerminalState = { vehicleId: 'v1', sim: SIM, edition: '2013', online: true, lastSeenAt: 1, offlineSince: null, localAddress: '127.0.0.1' };
  const sent: { msgId: number; body: Buffer }[] = [];
  return {
    sent,
    terminal: (id) => (id === 'v1' ? state : null),
    vehicleBySim: (sim) => (sim === SIM ? 'v1' : null),
    command: async (_id, msgId, body) => void sent.push({ msgId, body }),
    onLinkChange: () => () => {},
    log: { info: () => {}, warn: () => {} },
  };
}

async function setup(t: Test, budgetBytes = 0, extra: Partial<JtMediaServerOptions> = {}) {
  const link = fakeLink();
  const budget = new JtBudget(budgetBytes);
  const channels = new JtChannels({ link, budget, publicAddress: '', mediaPorts: () => server.ports });
  const server: JtMediaServer = new JtMediaServer({ config: { host: '127.0.0.1', port: 0, maxPacketBytes: 65_536, maxFrameBytes: 1_048_576 }, link, channels, budget, reconnectGraceMs: 100, ...extra });
  await server.listen();
  t.teardown(async () => {
    await server.close();
    channels.close();
  });
  return { server, channels, budget, link };
}

/** 0x9102 closes sent, by channel. */
const closes = (link: ReturnType<typeof fakeLink>) => link.sent.filter((c) => c.msgId === JT_MSG.LIVE_CONTROL).map((c) => decodeLiveControl(c.body)).filter((c) => c.command === 0).map((c) => c.channel);

const sendUdp = (udp: ReturnType<typeof createSocket>, port: number, packets: Buffer[]) =>
  Promise.all(packets.map((p) => new Promise<void>((resolve, reject) => udp.send(p, port, '127.0.0.1', (e) => (e ? reject(e) : resolve())))));

/** A few frames of one channel as a terminal sends them: an I frame split in pieces, then P frames. */
function frames(sim: string, channel: number, layout: Jt1078Layout, count = 5, firstSeq = 0): Buffer[] {
  const out: Buffer[] = [];
  let seq = firstSeq;
  for (let i = 0; i < count; i++) {
    const key = i === 0;
    const data = Buffer.concat([Buffer.from([0, 0, 0, 1, key ? 0x65 : 0x41]), Buffer.alloc(key ? 3000 : 400, i)]);
    const packets = packetiseFrame({ sim, channel, pt: 98, dataType: key ? 0 : 1, timestamp: 1_000 + i * 40, lastIInterval: i * 40, lastFrameInterval: 40, data, firstSeq: seq }, layout, 950);
    seq += packets.length;
    out.push(...packets);
  }
  return out;
}

const connected = (port: number) =>
  new Promise<Socket>((resolve, reject) => {
    const s = connect(port, '127.0.0.1', () => resolve(s));
    s.on('error', reject);
  });
const closed = (s: Socket) => new Promise<void>((resolve) => (s.closed ? resolve() : s.once('close', () => resolve())));

async function until(what: string, ok: () => boolean, ms = 3_000) {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

t.test('a watched channel gets whole frames over TCP in either layout; an unwatched one is counted, not reassembled', async (t) => {
  const { server, channels } = await setup(t);
  const units: AccessUnit[] = [];
  const failures: GatewayError[] = [];
  const attachment = channels.attach('v1', 1, { stream: 0, unit: (u) => units.push(u), failed: (e) => failures.push(e) });
  await attachment.opened;
  t.equal(server.ports.udp, server.ports.tcp, 'UDP on the same port number as TCP');

  for (const layout of ['2016', '2019'] as const) {
    units.length = 0;
    const sock = await connected(server.ports.tcp);
    sock.write(Buffer.concat([...frames(SIM, 1, layout), ...frames(SIM, 2, layout)]));
    await until(`5 units (${layout})`, () => units.length === 5);
    t.match(units[0], { codec: 'h264', key: true }, `${layout}: the I frame first, whole`);
    t.equal(units[0]!.data.length, 3005);
    t.same(units.slice(1).map((u) => u.key), [false, false, false, false]);
    sock.destroy();
    await closed(sock);
  }
  t.ok(server.stats.unwanted > 0, 'channel 2, which nobody watches, is counted as unwanted');
  t.equal(attachment.packets > 0, true, "the attempt sees its channel's packets");
});

t.test('UDP datagrams, one packet each', async (t) => {
  const { server, channels } = await setup(t);
  const units: AccessUnit[] = [];
  const attachment = channels.attach('v1', 3, { stream: 1, unit: (u) => units.push(u), failed: () => {} });
  await attachment.opened;
  const udp = createSocket('udp4');
  t.teardown(() => udp.close());
  for (const p of frames(SIM, 3, '2016')) await new Promise<void>((resolve, reject) => udp.send(p, server.ports.udp, '127.0.0.1', (e) => (e ? reject(e) : resolve())));
  await until('5 units over UDP', () => units.length === 5);
  t.pass('all five frames arrived');
});

t.test("a SIM no vehicle has: the connection is closed and counted; the media link ending tells the channel's attempts after the grace", async (t) => {
  const { server, channels } = await setup(t);
  const stranger = await connected(server.ports.tcp);
  stranger.on('error', () => {});
  stranger.write(Buffer.concat(frames('13999999999', 1, '2016', 1)));
  await closed(stranger);
  t.equal(server.stats.unknownSim, 1);

  const failures: GatewayError[] = [];
  const attachment = channels.attach('v1', 1, { stream: 0, unit: () => {}, failed: (e) => failures.push(e) });
  await attachment.opened;
  const first = await connected(server.ports.tcp);
  first.write(Buffer.concat(frames(SIM, 1, '2016', 2)));
  await until('the packets', () => attachment.packets > 0);
  first.destroy();
  // The terminal comes back on a new connection within the grace: nothing is reported.
  const second = await connected(server.ports.tcp);
  second.write(Buffer.concat(frames(SIM, 1, '2016', 2, 100)));
  await new Promise((r) => setTimeout(r, 250));
  t.same(failures, [], 'a reconnect within the grace is no failure');
  second.destroy();
  await until('mediaLinkClosed', () => failures.length === 1);
  t.match(failures[0], { code: 'GW_ERR_CAMERA_UNREACHABLE', params: { reason: 'mediaLinkClosed' } });
  await until('no connection left', () => server.connections === 0);
});

t.test('the packets taken count against the vehicle’s daily budget; those of a channel nobody asked for do not, and its terminal is told to close it', async (t) => {
  const { server, channels, budget, link } = await setup(t, 4_000);
  const sock = await connected(server.ports.tcp);
  sock.write(Buffer.concat(frames(SIM, 5, '2016', 5)));
  await until('the unwanted packets', () => server.stats.unwanted >= 5);
  t.equal(budget.usedToday('v1'), 0, 'media of a channel nobody asked for may be anyone’s: not counted');
  t.same(closes(link), [5], 'one 0x9102 close for the stray channel');
  sock.write(Buffer.concat(frames(SIM, 5, '2016', 5, 100)));
  await until('more unwanted packets', () => server.stats.unwanted >= 10);
  t.same(closes(link), [5], 'rate-limited: no second close at once');
  sock.destroy();

  const attachment = channels.attach('v1', 4, { stream: 0, unit: () => {}, failed: () => {} });
  await attachment.opened;
  const terminal = await connected(server.ports.tcp);
  const packets = frames(SIM, 4, '2016', 5);
  terminal.write(Buffer.concat(packets));
  const wire = packets.reduce((n, p) => n + p.length, 0);
  await until('all counted', () => budget.usedToday('v1') === wire);
  t.ok(budget.over('v1'), `${wire} bytes is past a 4,000-byte budget`);
  terminal.destroy();
});

t.test('a watched channel takes media from the first source after 0x9101 only: a second connection or UDP sender naming the SIM is dropped and not counted', async (t) => {
  const { server, channels, budget } = await setup(t, 1_000_000_000);
  const units: AccessUnit[] = [];
  const before = await connected(server.ports.tcp);
  before.write(Buffer.concat(frames(SIM, 1, '2016', 2)));
  await until('the packets before 0x9101', () => server.stats.unwanted > 0);
  const attachment = channels.attach('v1', 1, { stream: 0, unit: (u) => units.push(u), failed: () => {} });
  await attachment.opened;

  const terminal = await connected(server.ports.tcp);
  terminal.write(Buffer.concat(frames(SIM, 1, '2016', 5)));
  await until('the terminal’s 5 units', () => units.length === 5);
  const used = budget.usedToday('v1');

  const spoofer = await connected(server.ports.tcp);
  spoofer.write(Buffer.concat(frames(SIM, 1, '2016', 5, 1000)));
  const udp = createSocket('udp4');
  t.teardown(() => udp.close());
  await sendUdp(udp, server.ports.udp, frames(SIM, 1, '2016', 5, 2000));
  // 8 packets each: the I frame in 4, then 4 P frames.
  await until('the spoofed packets', () => server.stats.refused === 16);
  // The connection that sent before 0x9101 was not pinned either: what it sends now is dropped too.
  before.write(Buffer.concat(frames(SIM, 1, '2016', 2, 3000)));
  await until('its packets', () => server.stats.refused === 21);
  t.equal(units.length, 5, 'no frame of theirs reached the channel');
  t.equal(budget.usedToday('v1'), used, 'nor the budget');

  terminal.write(Buffer.concat(frames(SIM, 1, '2016', 2, 100)));
  await until('the terminal’s next units', () => units.length === 7);
  for (const s of [before, terminal, spoofer]) s.destroy();
});

t.test('a UDP terminal whose address changed (carrier NAT) is taken once its old address falls silent', async (t) => {
  const { server, channels } = await setup(t);
  const units: AccessUnit[] = [];
  const attachment = channels.attach('v1', 2, { stream: 0, unit: (u) => units.push(u), failed: () => {} });
  await attachment.opened;
  const a = createSocket('udp4');
  const b = createSocket('udp4');
  t.teardown(() => (a.close(), b.close()));
  await sendUdp(a, server.ports.udp, frames(SIM, 2, '2016', 2));
  await until('2 units from the first address', () => units.length === 2);
  await sendUdp(b, server.ports.udp, frames(SIM, 2, '2016', 2, 100));
  await until('refused while the first is live', () => server.stats.refused > 0);
  t.equal(units.length, 2);
  await new Promise((r) => setTimeout(r, 2_100));
  await sendUdp(b, server.ports.udp, frames(SIM, 2, '2016', 2, 200));
  await until('the new address taken once the old one went silent', () => units.length === 4);
});

t.test('input whose handling throws closes its connection and is counted; the server carries on', async (t) => {
  const { server, channels } = await setup(t);
  let thrown = 0;
  const tap: JtChannelTap = {
    stream: 0,
    unit: () => {
      thrown++;
      throw new Error('a bug behind the parser');
    },
    failed: () => {},
  };
  const attachment = channels.attach('v1', 1, tap);
  await attachment.opened;
  const sock = await connected(server.ports.tcp);
  sock.on('error', () => {});
  sock.write(Buffer.concat(frames(SIM, 1, '2016', 3)));
  await closed(sock);
  t.equal(thrown, 1);
  t.equal(server.stats.failed, 1);
  const udp = createSocket('udp4');
  t.teardown(() => udp.close());
  await sendUdp(udp, server.ports.udp, frames(SIM, 1, '2016', 2, 100));
  await until('the datagram failure counted', () => server.stats.failed >= 2);
  t.ok(server.connections === 0, 'and the gateway is fine');
});

t.test('a connection must send a packet of a known vehicle within the first-packet deadline; connections are capped in all and per address', async (t) => {
  const { server } = await setup(t, 0, { firstPacketMs: 200, maxConnectionsPerIp: 2 });
  const trickle = await connected(server.ports.tcp);
  trickle.write(Buffer.from('01'));
  const started = Date.now();
  await closed(trickle);
  const took = Date.now() - started;
  t.ok(took >= 150 && took < 2_000, `closed after ${took} ms without a whole packet`);
  t.equal(server.stats.connectionsRefused, 1);

  const held = [await connected(server.ports.tcp), await connected(server.ports.tcp)];
  const third = await connected(server.ports.tcp);
  await closed(third);
  t.equal(server.stats.connectionsRefused, 2, 'a third from the same address is refused');
  for (const s of held) s.destroy();
  await until('none left', () => server.connections === 0);
});

t.test('close() ends every connection and both listeners', async (t) => {
  const { server } = await setup(t);
  const sock = await connected(server.ports.tcp);
  sock.write(Buffer.concat(frames(SIM, 1, '2016', 1)));
  await until('accepted', () => server.connections === 1);
  const port = server.ports.tcp;
  await server.close();
  await closed(sock);
  t.equal(server.connections, 0);
  await t.rejects(connected(port), 'nothing listens any more');
});

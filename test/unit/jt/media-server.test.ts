import { createSocket } from 'node:dgram';
import { connect, type Socket } from 'node:net';
import t, { type Test } from 'tap';
import type { GatewayError } from '../../../gateway/src/errors.js';
import type { AccessUnit } from '../../../gateway/src/gb28181/media/types.js';
import { JtBudget } from '../../../gateway/src/jt/budget.js';
import { JtChannels } from '../../../gateway/src/jt/channel-link.js';
import type { JtLink, JtTerminalState } from '../../../gateway/src/jt/link.js';
import { packetiseFrame, type Jt1078Layout } from '../../../gateway/src/jt/media/packet.js';
import { JtMediaServer } from '../../../gateway/src/jt/media/server.js';

const SIM = '13800000001';

/** The 808 service as the media server sees it: one vehicle, every command taken. */
function fakeLink(): JtLink {
  const state: JtTerminalState = { vehicleId: 'v1', sim: SIM, edition: '2013', online: true, lastSeenAt: 1, offlineSince: null, localAddress: '127.0.0.1' };
  return {
    terminal: (id) => (id === 'v1' ? state : null),
    vehicleBySim: (sim) => (sim === SIM ? 'v1' : null),
    command: async () => {},
    onLinkChange: () => () => {},
    log: { info: () => {}, warn: () => {} },
  };
}

async function setup(t: Test, budgetBytes = 0) {
  const link = fakeLink();
  const budget = new JtBudget(budgetBytes);
  const channels = new JtChannels({ link, budget, publicAddress: '', mediaPorts: () => server.ports });
  const server: JtMediaServer = new JtMediaServer({ config: { host: '127.0.0.1', port: 0, maxPacketBytes: 65_536, maxFrameBytes: 1_048_576 }, link, channels, budget, reconnectGraceMs: 100 });
  await server.listen();
  t.teardown(async () => {
    await server.close();
    channels.close();
  });
  return { server, channels, budget };
}

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

t.test('the packets count against the vehicle’s daily budget, watched or not', async (t) => {
  const { server, budget } = await setup(t, 4_000);
  const sock = await connected(server.ports.tcp);
  const packets = frames(SIM, 4, '2016', 5);
  sock.write(Buffer.concat(packets));
  const wire = packets.reduce((n, p) => n + p.length, 0);
  await until('all counted', () => budget.usedToday('v1') === wire);
  t.ok(budget.over('v1'), `${wire} bytes is past a 4,000-byte budget`);
  sock.destroy();
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

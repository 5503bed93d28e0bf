import t from 'tap';
import type { GatewayError } from '../../../gateway/src/errors.js';
import type { AccessUnit } from '../../../gateway/src/gb28181/media/types.js';
import { JtBudget } from '../../../gateway/src/jt/budget.js';
import { JtChannels, JtLinkSlot, type JtChannelTap } from '../../../gateway/src/jt/channel-link.js';
import { JtCommandError, type JtLink, type JtTerminalState } from '../../../gateway/src/jt/link.js';
import { decodeLiveControl, decodeLiveRequest, decodeLiveStatus, JT_MSG } from '../../../gateway/src/jt/protocol/messages.js';

/** The 808 service as the channel link sees it: commands recorded and answered by the test, link changes on demand. */
class FakeLink implements JtLink {
  readonly sent: { msgId: number; body: Buffer; answer(e?: Error): void }[] = [];
  /** Answer every command at once with this (undefined: success), or hold it for the test to answer. */
  auto: 'ok' | 'hold' = 'ok';
  refuseWith: Error | null = null;
  readonly listeners = new Set<(online: boolean) => void>();
  state: JtTerminalState = { vehicleId: 'v1', sim: '13800000001', edition: '2013', online: true, lastSeenAt: 1, offlineSince: null, localAddress: '::ffff:10.1.2.3' };
  readonly log = { info: () => {}, warn: () => {} };

  terminal(vehicleId: string) {
    return vehicleId === 'v1' ? this.state : null;
  }
  vehicleBySim(sim: string) {
    return sim === '13800000001' ? 'v1' : null;
  }
  command(_vehicleId: string, msgId: number, body: Buffer): Promise<void> {
    return new Promise((resolve, reject) => {
      const answer = (e?: Error) => (e ? reject(e) : resolve());
      this.sent.push({ msgId, body, answer });
      if (this.auto === 'ok') answer(this.refuseWith ?? undefined);
    });
  }
  onLinkChange(_vehicleId: string, cb: (online: boolean) => void) {
    this.listeners.add(cb);
    return () => this.listeners.delete(cb);
  }
  /** What was sent, decoded: 9101 stream, or 9102 command/stream. */
  decoded(): string[] {
    return this.sent.map(({ msgId, body }) => {
      if (msgId === JT_MSG.LIVE_REQUEST) {
        const r = decodeLiveRequest(body);
        return `9101 ${r.ip}:${r.tcpPort}/${r.udpPort} ch${r.channel} type${r.dataType} stream${r.stream}`;
      }
      if (msgId === JT_MSG.LIVE_CONTROL) {
        const c = decodeLiveControl(body);
        return c.command === 1 ? `9102 switch ch${c.channel} stream${c.stream}` : `9102 cmd${c.command} ch${c.channel} close${c.closeType}`;
      }
      if (msgId === JT_MSG.LIVE_STATUS) {
        const s = decodeLiveStatus(body);
        return `9105 ch${s.channel} loss${s.lossPct}`;
      }
      return msgId.toString(16);
    });
  }
}

class Tap implements JtChannelTap {
  readonly units: AccessUnit[] = [];
  readonly failures: GatewayError[] = [];
  constructor(readonly stream: 0 | 1) {}
  unit(u: AccessUnit) {
    this.units.push(u);
  }
  failed(e: GatewayError) {
    this.failures.push(e);
  }
}

function setup(opts: { budget?: JtBudget; publicAddress?: string; statusIntervalMs?: number } = {}) {
  const link = new FakeLink();
  const budget = opts.budget ?? new JtBudget(0);
  const channels = new JtChannels({ link, budget, publicAddress: opts.publicAddress ?? '', mediaPorts: () => ({ tcp: 7612, udp: 7613 }), statusIntervalMs: opts.statusIntervalMs ?? 60_000 });
  t.teardown(() => channels.close());
  return { link, budget, channels };
}

/** Lets queued commands run (each is a few promise hops). */
const settle = () => new Promise((resolve) => setImmediate(resolve));

const unit = (key: boolean): AccessUnit => ({ codec: 'h264', pts90k: 0, key, data: Buffer.from([0, 0, 0, 1, key ? 0x65 : 0x41]) });

t.test('the first attempt asks for the channel once; main and sub sessions share it; the last one leaving closes it', async (t) => {
  const { link, channels } = setup();
  const main = new Tap(0);
  const a = channels.attach('v1', 2, main);
  await a.opened;
  t.same(link.decoded(), ['9101 10.1.2.3:7612/7613 ch2 type1 stream0'], "0x9101 to the terminal's local address (IPv4 as it reads it), both our ports, video only, main");
  const sub = new Tap(1);
  const b = channels.attach('v1', 2, sub);
  await b.opened;
  await settle();
  t.equal(link.sent.length, 1, 'the sub session joins without a second request: main is still wanted');
  t.ok(channels.wants('v1', 2), 'its packets are wanted');

  channels.packet('v1', 2, 10);
  channels.unit('v1', 2, unit(true));
  t.equal(main.units.length, 1);
  t.equal(sub.units.length, 1, 'the packets do not say which stream: both sessions get what the terminal sends');
  t.equal(a.packets, 1);

  a.detach();
  a.detach();
  await settle();
  t.same(link.decoded().slice(1), ['9102 switch ch2 stream1'], 'the main session leaving switches the terminal to the sub-stream (once, however often detach is called)');
  b.detach();
  await settle();
  t.same(link.decoded().slice(2), ['9102 cmd0 ch2 close0'], 'the last one leaving closes audio and video of the channel');
  t.notOk(channels.wants('v1', 2), 'packets after the close are not reassembled');
  channels.unit('v1', 2, unit(true));
  t.equal(sub.units.length, 1, 'nothing is delivered after the close');
});

t.test('a main session joining a sub-stream channel switches it to main; jt1078.publicAddress overrides the local address', async (t) => {
  const { link, channels } = setup({ publicAddress: '203.0.113.7' });
  const sub = channels.attach('v1', 1, new Tap(1));
  await sub.opened;
  const main = channels.attach('v1', 1, new Tap(0));
  await main.opened;
  await settle();
  t.same(link.decoded(), ['9101 203.0.113.7:7612/7613 ch1 type1 stream1', '9102 switch ch1 stream0']);
});

t.test('attachments while 0x9101 is unanswered share it, and the close waits for its answer', async (t) => {
  const { link, channels } = setup();
  link.auto = 'hold';
  const a = channels.attach('v1', 1, new Tap(1));
  const b = channels.attach('v1', 1, new Tap(0));
  await settle();
  t.equal(link.sent.length, 1, 'one request in flight');
  a.detach();
  b.detach();
  await settle();
  t.equal(link.sent.length, 1, 'the close is not sent before the request is answered');
  link.sent[0]!.answer();
  await Promise.all([a.opened, b.opened]);
  await settle();
  t.same(link.decoded(), ['9101 10.1.2.3:7612/7613 ch1 type1 stream1', '9102 cmd0 ch1 close0'], 'the terminal took the request, so it is closed; no switch for a channel nobody watches');
  link.sent[1]!.answer();

  // Refused: the close is not sent for a request the terminal did not take.
  const c = channels.attach('v1', 1, new Tap(0));
  await settle();
  link.sent[2]!.answer(new JtCommandError('result', 'refused', 3));
  t.match(await c.opened.catch((e: unknown) => e), { kind: 'result', result: 3 }, 'the attempt hears the result');
  c.detach();
  await settle();
  t.equal(link.sent.length, 3, 'nothing to close');
  link.auto = 'ok';
  const d = channels.attach('v1', 1, new Tap(0));
  await d.opened;
  t.same(link.decoded().slice(3), ['9101 10.1.2.3:7612/7613 ch1 type1 stream0'], 'the next attempt asks again');
});

t.test('a 0x9101 we stopped waiting for is closed anyway: the terminal may take it late and send media on its data plan', async (t) => {
  const { link, channels } = setup();
  link.auto = 'hold';
  const tap = new Tap(0);
  const a = channels.attach('v1', 1, tap);
  await settle();
  link.sent[0]!.answer(new JtCommandError('timeout', 'no answer'));
  t.match(await a.opened.catch((e: unknown) => e), { kind: 'timeout' }, 'the attempt hears the timeout');
  await settle();
  t.same(link.decoded().slice(1), ['9102 cmd0 ch1 close0'], 'closed at the terminal although it never answered');
  link.sent[1]!.answer();
  a.detach();
  await settle();
  t.equal(link.sent.length, 2, 'once');

  // The last attempt leaving while the request is unanswered, which then times out: closed too.
  const b = channels.attach('v1', 2, new Tap(0));
  await settle();
  b.detach();
  link.sent[2]!.answer(new JtCommandError('timeout', 'no answer'));
  await settle();
  t.same(link.decoded().slice(3), ['9102 cmd0 ch2 close0']);
  link.sent[3]!.answer();
  await settle();
  t.equal(channels.size, 0, 'channel links are let go once unwatched and their commands done');
});

t.test('media of a channel nobody asked for: one 0x9102 close, rate-limited, queued behind a request so it never closes a newer one', async (t) => {
  const { link, channels } = setup();
  channels.stray('v1', 3);
  channels.stray('v1', 3);
  await settle();
  t.same(link.decoded(), ['9102 cmd0 ch3 close0'], 'once');
  link.auto = 'hold';
  const a = channels.attach('v1', 4, new Tap(0));
  channels.stray('v1', 4);
  await settle();
  link.sent[1]!.answer();
  await a.opened;
  await settle();
  t.same(link.decoded().slice(1), ['9101 10.1.2.3:7612/7613 ch4 type1 stream0'], 'an asked-for channel is not stray');
  a.detach();
  await settle();
  t.same(link.decoded().slice(2), ['9102 cmd0 ch4 close0'], 'the last reader leaving closes it');

  link.auto = 'ok';
  const b = channels.attach('v1', 5, new Tap(0));
  await b.opened;
  b.detach();
  await settle();
  t.same(link.decoded().slice(3), ['9101 10.1.2.3:7612/7613 ch5 type1 stream0', '9102 cmd0 ch5 close0']);
  channels.stray('v1', 5);
  await settle();
  t.equal(link.sent.length, 5, 'packets that were on their way as we closed are not worth a second close');
});

t.test("the terminal's link replaced during a live view: 0x9101 again on the new link, and a request the old link dropped is retried there", async (t) => {
  const { link, channels } = setup();
  const tap = new Tap(0);
  const a = channels.attach('v1', 1, tap);
  await a.opened;
  const before = channels.request('v1', 1);
  for (const cb of link.listeners) cb(true);
  await settle();
  t.same(link.decoded(), ['9101 10.1.2.3:7612/7613 ch1 type1 stream0', '9101 10.1.2.3:7612/7613 ch1 type1 stream0'], 'asked again on the new link');
  t.not(channels.request('v1', 1), before, 'media from the new link may pin a new source');
  t.same(tap.failures, [], 'the view goes on');

  // A request pending on the old link when it was replaced: dropped as "offline", while the terminal is online on its new link.
  link.auto = 'hold';
  const tap2 = new Tap(0);
  const b = channels.attach('v1', 2, tap2);
  await settle();
  link.sent[2]!.answer(new JtCommandError('offline', 'replaced by a new connection'));
  await settle();
  t.equal(link.decoded()[3], '9101 10.1.2.3:7612/7613 ch2 type1 stream0', 're-sent');
  link.sent[3]!.answer();
  await b.opened;
  t.same(tap2.failures, [], 'not "offline since now" for a vehicle that is online');
  a.detach();
  b.detach();
});

t.test('a subscription made before the 808 service is bound reaches it once bound', async (t) => {
  const slot = new JtLinkSlot({ info: () => {}, warn: () => {} });
  const seen: boolean[] = [];
  const unsubscribe = slot.onLinkChange('v1', (online) => seen.push(online));
  const link = new FakeLink();
  slot.bind(link);
  for (const cb of link.listeners) cb(false);
  t.same(seen, [false]);
  unsubscribe();
  t.equal(link.listeners.size, 0, 'and its unsubscribe reaches it too');
});

t.test('a terminal offline: the request is not sent; going offline fails every attempt with since, and the next asks again', async (t) => {
  const { link, channels } = setup();
  link.state = { ...link.state, online: false, offlineSince: 1_000 };
  const a = channels.attach('v1', 1, new Tap(0));
  t.match(await a.opened.catch((e: unknown) => e), { kind: 'offline' }, 'refused without asking');
  t.equal(link.sent.length, 0);
  a.detach();

  link.state = { ...link.state, online: true, offlineSince: null };
  const tap1 = new Tap(0);
  const tap2 = new Tap(1);
  const b = channels.attach('v1', 1, tap1);
  const c = channels.attach('v1', 1, tap2);
  await Promise.all([b.opened, c.opened]);
  t.equal(link.listeners.size, 1, 'one subscription to the link per channel');
  for (const cb of link.listeners) cb(false);
  t.match(tap1.failures, [{ code: 'GW_ERR_CAMERA_UNREACHABLE', params: { reason: 'vehicleOffline', vehicle: 'v1' } }]);
  t.type(tap1.failures[0]!.params!.since, 'number');
  t.match(tap2.failures, [{ params: { reason: 'vehicleOffline' } }]);
  t.notOk(channels.wants('v1', 1));
  b.detach();
  c.detach();
  await settle();
  t.equal(link.sent.length, 1, 'no close to a terminal that is gone');
  t.equal(link.listeners.size, 0, 'unsubscribed once unwatched');
});

t.test('the media link closing fails the attempts; the next attempt sends 0x9101 again', async (t) => {
  const { link, channels } = setup();
  const tap = new Tap(0);
  const a = channels.attach('v1', 3, tap);
  await a.opened;
  const { reasoned } = await import('../../../gateway/src/errors.js');
  channels.mediaClosed('v1', 3, reasoned('GW_ERR_CAMERA_UNREACHABLE', 'mediaLinkClosed', {}, 'closed'));
  t.match(tap.failures, [{ params: { reason: 'mediaLinkClosed' } }]);
  a.detach();
  const b = channels.attach('v1', 3, new Tap(0));
  await b.opened;
  t.same(link.decoded(), ['9101 10.1.2.3:7612/7613 ch3 type1 stream0', '9101 10.1.2.3:7612/7613 ch3 type1 stream0']);
});

t.test('past its daily budget a vehicle is switched to the sub-stream, also for a main session, and a new day starts afresh', async (t) => {
  let now = new Date(2026, 0, 5, 12).getTime();
  const budget = new JtBudget(1_000, () => now);
  const { link, channels } = setup({ budget });
  const a = channels.attach('v1', 1, new Tap(0));
  await a.opened;
  budget.count('v1', 600);
  budget.count('other', 5_000);
  t.notOk(budget.over('v1'));
  budget.count('v1', 600);
  t.ok(budget.over('v1'));
  await settle();
  t.same(link.decoded(), ['9101 10.1.2.3:7612/7613 ch1 type1 stream0', '9102 switch ch1 stream1'], 'the moment it goes past: switched to sub');
  const b = channels.attach('v1', 2, new Tap(0));
  await b.opened;
  t.same(link.decoded().slice(2), ['9101 10.1.2.3:7612/7613 ch1 type1 stream1'].map((s) => s.replace('ch1', 'ch2')), 'another channel opened past the budget asks for sub at once');
  now += 24 * 3600_000;
  t.notOk(budget.over('v1'), 'the next day the count starts again');
  t.equal(budget.usedToday('v1'), 0);
});

t.test('0x9105 tells the terminal the loss seen in each interval; late packets are not loss', async (t) => {
  const { link, channels } = setup({ statusIntervalMs: 50 });
  const a = channels.attach('v1', 1, new Tap(0));
  await a.opened;
  for (const seq of [65_534, 65_535, 0, 1, 3, 4, 2, 8, 9]) channels.packet('v1', 1, seq);
  // 9 packets, 2 and 5-7 missing from the run (2 came late: 4 gaps counted of 13), over the wrap at 65535.
  await new Promise((resolve) => setTimeout(resolve, 120));
  const status = link.decoded().filter((s) => s.startsWith('9105'));
  t.same(status[0], `9105 ch1 loss${Math.floor((4 * 100) / 13)}`, 'loss = missing / (received + missing), integer percent');
  t.equal(status.length, 1, 'nothing to report in an interval without packets');
  a.detach();
  await settle();
  const sentAfter = link.sent.length;
  await new Promise((resolve) => setTimeout(resolve, 120));
  t.equal(link.sent.length, sentAfter, 'the reports stop with the channel');
});

t.test('the play driver: a vehicle offline is refused before anything starts; past the budget its session lingers only overBudgetCloseAfterMs', async (t) => {
  const { JtPlayDriver } = await import('../../../gateway/src/jt/play-driver.js');
  let now = new Date(2026, 0, 5, 12).getTime();
  const budget = new JtBudget(1_000, () => now);
  const { link, channels } = setup({ budget });
  const jt = { channels, startTimeoutMs: 1_000, overBudgetCloseAfterMs: 5_000, commandTimeoutMs: 1_000, channelSource: (v: string, ch: number) => (v === 'v1' && ch === 1 ? 'v1-ch1' : null) };
  const source = { cameraId: 'v1-ch1', name: 'v1 1', departmentId: 'root', deptPath: '/root/', profile: 'main' as const, url: 'jt1078://v1/1', protocol: 'jt1078' as const, codec: 'h264' as const, enabled: true, credential: null };
  const failed: GatewayError[] = [];
  const events = { tag: () => {}, bytes: () => {}, probed: () => {}, failed: (e: GatewayError) => void failed.push(e) };
  // Nothing of the context is reached before the terminal check: a start that gets further would throw on it.
  const driver = new JtPlayDriver({} as never, jt, source, { hlsDir: '', segmentStart: 1, discontinuity: false, transcode: false }, events);
  t.ok(driver.startTimeoutMs() >= jt.commandTimeoutMs + jt.startTimeoutMs, "the session waits for the terminal's answer and then jt1078.startTimeoutMs, whatever streams.startTimeoutMs says");
  link.state = { ...link.state, online: false, offlineSince: new Date(2026, 0, 5, 14, 2).getTime() };
  const e = await driver.start().then(() => null, (x: GatewayError) => x);
  t.match(e, { code: 'GW_ERR_CAMERA_UNREACHABLE', params: { reason: 'vehicleOffline', vehicle: 'v1', since: link.state.offlineSince } });
  t.match(e!.message, /^vehicle v1 offline since 14:02$/);
  t.equal(link.sent.length, 0, 'the terminal is not asked');
  await driver.close('test');

  // A source naming the vehicle that is not the vehicle's own channel source plays nothing of it.
  const stranger = new JtPlayDriver({} as never, jt, { ...source, cameraId: 'elsewhere' }, { hlsDir: '', segmentStart: 1, discontinuity: false, transcode: false }, events);
  link.state = { ...link.state, online: true, offlineSince: null };
  t.match(await stranger.start().then(() => null, (x: GatewayError) => x), { code: 'GW_ERR_FORBIDDEN', params: { reason: 'notVehicleChannel', vehicle: 'v1', channel: 1 } });
  t.equal(link.sent.length, 0, 'the terminal is not asked for it');

  t.equal(driver.lingerMs(), null, 'within the budget: the usual linger');
  budget.count('v1', 1_001);
  t.equal(driver.lingerMs(), 5_000, 'past it: jt1078.overBudgetCloseAfterMs');
  now += 24 * 3600_000;
  t.equal(driver.lingerMs(), null, 'a new day');
});

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { defaultConfig } from '../../../gateway/src/config/load.js';
import { GatewayError } from '../../../gateway/src/errors.js';
import type { Clock, TimerHandle } from '../../../gateway/src/lib/clock.js';
import { GopBudget } from '../../../gateway/src/streams/gop-store.js';
import { StreamManager } from '../../../gateway/src/streams/manager.js';
import { StreamSession, type SessionHost } from '../../../gateway/src/streams/session.js';
import type { DriverAttempt, DriverEvents, SourceDriver } from '../../../gateway/src/streams/sources/driver.js';
import type { ResolvedSource, SessionState, SourceResolver } from '../../../gateway/src/streams/types.js';

/** Time that moves only when the test says: start timeouts, stalls and backoff take no wall-clock time. */
class ManualClock implements Clock {
  private t = 1_000_000;
  private readonly timers = new Map<TimerHandle, { at: number; fn: () => void }>();
  now() {
    return this.t;
  }
  setTimeout(fn: () => void, ms: number): TimerHandle {
    const handle = {};
    this.timers.set(handle, { at: this.t + ms, fn });
    return handle;
  }
  clearTimeout(handle: TimerHandle) {
    this.timers.delete(handle);
  }
  /** Runs every timer due within `ms`, in order, each at its own time. */
  advance(ms: number) {
    const end = this.t + ms;
    for (;;) {
      let next: [TimerHandle, { at: number; fn: () => void }] | null = null;
      for (const e of this.timers) if (e[1].at <= end && (!next || e[1].at < next[1].at)) next = e;
      if (!next) break;
      this.timers.delete(next[0]);
      this.t = next[1].at;
      next[1].fn();
    }
    this.t = end;
  }
}

function deferred<T>() {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => ((resolve = res), (reject = rej)));
  return { promise, resolve, reject };
}

/** A driver the test steers: its start resolves or rejects when told, and it reports what the test makes it. */
class FakeDriver implements SourceDriver {
  readonly pid = null;
  readonly starting = deferred<void>();
  closedWith: string[] = [];
  private ts = 0;
  constructor(
    readonly attempt: DriverAttempt,
    readonly events: DriverEvents,
  ) {}
  start() {
    return this.starting.promise;
  }
  timedOut(kind: 'start' | 'stall', ms: number) {
    return kind === 'start'
      ? new GatewayError('GW_ERR_STREAM_TIMEOUT', `fake: no video within ${ms} ms`)
      : new GatewayError('GW_ERR_CAMERA_UNREACHABLE', `fake: stalled for ${ms} ms`);
  }
  close(reason: string) {
    this.closedWith.push(reason);
    return Promise.resolve();
  }
  frame(keyframe = true) {
    this.events.tag({ type: 9, timestamp: (this.ts += 40), data: Buffer.from([keyframe ? 0x17 : 0x27, 1, 0, 0, 0, 9]), keyframe, header: false });
  }
}

const config = {
  ...defaultConfig().streams,
  startTimeoutMs: 10_000,
  watchdogMs: 5_000,
  closeAfterMs: 30_000,
  retry: { initialMs: 1_000, maxMs: 8_000 },
};

const source: ResolvedSource = {
  cameraId: 'cam-1',
  name: 'Camera 1',
  departmentId: 'root',
  deptPath: '/root/',
  profile: 'main',
  url: 'rtsp://10.0.0.1/stream',
  protocol: 'rtsp',
  codec: 'h264',
  enabled: true,
  credential: null,
};

/** Fake drivers, handed out in order; `driver(n)` waits for the n-th (from 1) and fails the test if it never comes. */
function fakeDrivers() {
  const made: FakeDriver[] = [];
  const waiting = new Map<number, () => void>();
  return {
    made,
    create: (_source: ResolvedSource, attempt: DriverAttempt, events: DriverEvents) => {
      const d = new FakeDriver(attempt, events);
      made.push(d);
      waiting.get(made.length)?.();
      return d;
    },
    async driver(n: number): Promise<FakeDriver> {
      if (made.length >= n) return made[n - 1]!;
      const timeout = deferred<never>();
      const timer = setTimeout(() => timeout.reject(new Error(`driver ${n} was never created (${made.length} were)`)), 2_000);
      const arrived = new Promise<void>((resolve) => waiting.set(n, resolve));
      await Promise.race([arrived, timeout.promise]).finally(() => clearTimeout(timer));
      return made[n - 1]!;
    },
  };
}

function harness(t: Test, opts: { transcodeSlots?: number; hlsDir?: string; createDriver?: SessionHost['createDriver'] } = {}) {
  const clock = new ManualClock();
  const drivers = fakeDrivers();
  const health: [string, string | null][] = [];
  const startedMs: number[] = [];
  let slots = opts.transcodeSlots ?? 1;
  let closed = 0;
  const host: SessionHost = {
    config,
    createDriver: opts.createDriver ?? drivers.create,
    clock,
    gopBudget: new GopBudget(config.gopCache.maxBytesTotal),
    acquireTranscode: () => (slots > 0 ? (slots--, true) : false),
    releaseTranscode: () => void slots++,
    health: (_s, h, e) => void health.push([h, e?.message ?? null]),
    started: (_s, ms) => void startedMs.push(ms),
    log: { info() {}, warn() {} },
    closed: () => void closed++,
  };
  const session = new StreamSession('s-1', source, opts.hlsDir ?? join(t.testdir(), 'hls'), host);
  const states: SessionState[] = [];
  session.on('state', (s) => states.push(s));
  t.teardown(() => session.close('test over'));
  return { clock, session, states, health, startedMs, driver: drivers.driver, made: drivers.made, closedCount: () => closed, slots: () => slots };
}

const reader = (id: string) => ({ id, kind: 'hls' as const, userId: 'u1', since: 0 });

/** Lets promise callbacks already queued run (the session's awaits on settled promises). */
const settle = () => new Promise((resolve) => setImmediate(resolve));

t.test('a start: starting, then ready on the first keyframe, with the attempt described to the driver', async (t) => {
  const h = harness(t);
  h.session.addReader(reader('r1'));
  t.equal(h.session.state, 'starting');
  const live = h.session.whenLive();
  const d = await h.driver(1);
  t.same(d.attempt, { hlsDir: h.session.hlsDir, segmentStart: 1, discontinuity: false, transcode: false });
  d.starting.resolve();
  h.clock.advance(700);
  d.frame(false);
  t.equal(h.session.state, 'starting', 'a frame before any keyframe does not make the stream live');
  d.frame(true);
  await live;
  t.equal(h.session.state, 'ready');
  t.same(h.startedMs, [700], 'the start time is measured from the attempt');
  t.same(h.health, [['online', null]]);
  t.same(h.states, ['starting', 'ready']);
});

t.test('each step that can fail reports its own coded reason, and the session retries while watched', async (t) => {
  t.test('the HLS directory cannot be made', async (t) => {
    const dir = t.testdir();
    writeFileSync(join(dir, 'file'), '');
    const h = harness(t, { hlsDir: join(dir, 'file', 'hls') });
    h.session.addReader(reader('r1'));
    await t.rejects(h.session.whenLive(), { code: 'GW_ERR_INTERNAL', message: /cannot prepare the HLS directory/ });
    t.equal(h.made.length, 0, 'no driver is started without a directory');
    t.equal(h.session.state, 'retrying');
  });

  t.test('the driver cannot even be made (the engine is not started): reported, not an unhandled rejection', async (t) => {
    const unhandled: unknown[] = [];
    const onUnhandled = (e: unknown) => void unhandled.push(e);
    process.on('unhandledRejection', onUnhandled);
    t.teardown(() => void process.off('unhandledRejection', onUnhandled));
    let calls = 0;
    const secondCall = deferred<void>();
    const h = harness(t, {
      createDriver: () => {
        if (++calls === 2) secondCall.resolve();
        throw new GatewayError('GW_ERR_INTERNAL', 'the stream engine was not started');
      },
    });
    h.session.addReader(reader('r1'));
    await t.rejects(h.session.whenLive(), { code: 'GW_ERR_INTERNAL', message: 'the stream engine was not started' });
    t.equal(h.session.state, 'retrying');
    t.match(h.session.lastError, { code: 'GW_ERR_INTERNAL' });
    t.same(h.health, [['offline', 'the stream engine was not started']]);
    h.clock.advance(1_000);
    const noRetry = setTimeout(() => secondCall.reject(new Error('the retry never tried to make a driver')), 2_000);
    await secondCall.promise.finally(() => clearTimeout(noRetry));
    t.equal(h.session.state, 'retrying', 'the retry fails the same way, and is scheduled again');
    t.equal(h.session.restarts, 2);
    await settle();
    t.same(unhandled, [], 'no promise rejection goes unheard');
  });

  t.test('the driver cannot start (its address is refused)', async (t) => {
    const h = harness(t);
    h.session.addReader(reader('r1'));
    const live = h.session.whenLive();
    (await h.driver(1)).starting.reject(new GatewayError('GW_ERR_FORBIDDEN', "the camera's address is not allowed: 10.0.0.0/8"));
    await t.rejects(live, { code: 'GW_ERR_FORBIDDEN' });
    t.equal(h.session.state, 'retrying');
    t.match(h.session.lastError, { code: 'GW_ERR_FORBIDDEN' });
    t.same(h.health, [['offline', "the camera's address is not allowed: 10.0.0.0/8"]]);
    t.same(h.made[0]!.closedWith, ['start failed'], 'the failed driver is closed');
    t.ok(h.session.retryInMs()! >= 500 && h.session.retryInMs()! <= 1_000, 'the retry is scheduled within the first backoff');
  });

  t.test('the source fails once started (the camera refuses the password)', async (t) => {
    const h = harness(t);
    h.session.addReader(reader('r1'));
    const live = h.session.whenLive();
    const d = await h.driver(1);
    d.starting.resolve();
    await settle();
    d.events.failed(new GatewayError('GW_ERR_CAMERA_AUTH', 'the camera refused the user name or password'));
    await t.rejects(live, { code: 'GW_ERR_CAMERA_AUTH' });
    t.equal(h.session.state, 'retrying');
    t.equal(h.session.restarts, 1);
  });

  t.test('no video within the start timeout: the driver words the reason, and is closed', async (t) => {
    const h = harness(t);
    h.session.addReader(reader('r1'));
    const live = h.session.whenLive();
    const d = await h.driver(1);
    d.starting.resolve();
    h.clock.advance(9_999);
    t.equal(h.session.state, 'starting');
    h.clock.advance(1);
    await t.rejects(live, { code: 'GW_ERR_STREAM_TIMEOUT', message: 'fake: no video within 10000 ms' });
    t.same(d.closedWith, ['start timeout']);
    t.equal(h.session.state, 'retrying');
  });

  t.test('a start that hangs before the driver reports anything times out too', async (t) => {
    const h = harness(t);
    h.session.addReader(reader('r1'));
    const live = h.session.whenLive();
    const d = await h.driver(1);
    h.clock.advance(10_000);
    await t.rejects(live, { code: 'GW_ERR_STREAM_TIMEOUT' });
    t.same(d.closedWith, ['start timeout']);
  });

  t.test('H.265 found while every transcode slot is busy', async (t) => {
    const h = harness(t, { transcodeSlots: 0 });
    h.session.addReader(reader('r1'));
    const live = h.session.whenLive();
    const d = await h.driver(1);
    d.starting.resolve();
    d.events.probed('hevc', '1920x1080');
    await t.rejects(live, { code: 'GW_ERR_CODEC_UNSUPPORTED', message: /all \d+ transcode slots are busy/ });
    t.same(d.closedWith, ['no transcode slot']);
    t.equal(h.session.inputCodec, 'hevc');
    t.equal(h.session.resolution, '1920x1080');
  });
});

t.test('a live stream that goes silent is ended by the watchdog, then recovers by itself', async (t) => {
  const h = harness(t);
  h.session.addReader(reader('r1'));
  const d1 = await h.driver(1);
  d1.starting.resolve();
  d1.frame();
  t.equal(h.session.state, 'ready');
  for (let i = 0; i < 8; i++) {
    h.clock.advance(1_000);
    d1.frame(i % 4 === 0);
  }
  t.equal(h.session.state, 'ready', 'a stream that keeps sending is left alone');
  h.clock.advance(6_000);
  t.equal(h.session.state, 'retrying', 'no video for longer than the watchdog allows ends the attempt');
  t.match(d1.closedWith, [/^stalled: no video for \d+ ms$/]);
  t.match(h.session.lastError, { code: 'GW_ERR_CAMERA_UNREACHABLE', message: /fake: stalled for (5|6)\d{3} ms/ });
  t.match(h.health.at(-1), ['offline', /stalled/]);

  h.clock.advance(1_000);
  const d2 = await h.driver(2);
  t.same(d2.attempt, { hlsDir: h.session.hlsDir, segmentStart: 1, discontinuity: true, transcode: false }, 'the next attempt marks the break');
  d2.starting.resolve();
  d2.frame();
  t.equal(h.session.state, 'ready');
  t.equal(h.session.lastError, null);
  t.same(h.health.at(-1), ['online', null]);
  t.equal(h.session.restarts, 1);
  const timestamps: number[] = [];
  h.session.on('tag', (tag) => timestamps.push(tag.timestamp));
  d2.frame(false);
  t.ok(timestamps[0]! > 8 * 40, 'timestamps continue from the dead attempt rather than going back to zero');
});

t.test('each attempt reports its own reason: a camera failing with one reason, then another, shows the second', async (t) => {
  const h = harness(t);
  h.session.addReader(reader('r1'));
  const d1 = await h.driver(1);
  d1.starting.resolve();
  d1.events.failed(new GatewayError('GW_ERR_CAMERA_AUTH', 'the camera refused the user name or password'));
  t.match(h.session.lastError, { code: 'GW_ERR_CAMERA_AUTH' });
  const second = h.session.whenLive();
  h.clock.advance(1_000);
  const d2 = await h.driver(2);
  d2.starting.resolve();
  d2.events.failed(new GatewayError('GW_ERR_CAMERA_NO_VIDEO', 'the stream has no video track'));
  await t.rejects(second, { code: 'GW_ERR_CAMERA_NO_VIDEO' }, 'a viewer waiting through the retry hears the second reason');
  t.match(h.session.lastError, { code: 'GW_ERR_CAMERA_NO_VIDEO' }, 'the session reports the second reason');
  t.same(
    h.health.map(([, e]) => e),
    ['the camera refused the user name or password', 'the stream has no video track'],
    'the registry is told each reason',
  );
});

t.test('late callbacks from a dead attempt change nothing', async (t) => {
  const h = harness(t);
  h.session.addReader(reader('r1'));
  const d1 = await h.driver(1);
  d1.starting.resolve();
  d1.events.failed(new GatewayError('GW_ERR_CAMERA_UNREACHABLE', 'the camera is unreachable'));
  h.clock.advance(1_000);
  const d2 = await h.driver(2);
  d2.starting.resolve();
  const tags: unknown[] = [];
  h.session.on('tag', (tag) => tags.push(tag));
  d1.frame();
  d1.events.bytes(1_000);
  d1.events.probed('hevc', '640x360');
  d1.events.failed(new GatewayError('GW_ERR_CAMERA_AUTH', 'late'));
  t.equal(h.session.state, 'retrying', 'a dead attempt cannot make the session live');
  t.equal(tags.length, 0);
  t.equal(h.session.bytesIn, 0);
  t.equal(h.session.inputCodec, null);
  t.equal(h.session.restarts, 1, 'nor end the live attempt');
  t.equal(h.made.length, 2);
  t.same(d2.closedWith, []);
  d2.frame();
  t.equal(h.session.state, 'ready');
});

t.test('closing during a start: the driver is closed, waiters hear why, nothing is retried', async (t) => {
  const h = harness(t);
  h.session.addReader(reader('r1'));
  const live = h.session.whenLive();
  const d = await h.driver(1);
  const closing = h.session.close('force-stopped');
  await t.rejects(live, { code: 'GW_ERR_STREAM_CLOSED', message: /force-stopped/ });
  d.starting.resolve();
  await closing;
  t.same(d.closedWith, ['force-stopped']);
  d.frame();
  d.events.failed(new GatewayError('GW_ERR_CAMERA_UNREACHABLE', 'late'));
  h.clock.advance(60_000);
  await settle();
  t.equal(h.session.state, 'closed');
  t.equal(h.made.length, 1, 'no attempt follows a close');
  await h.session.close('again');
  t.equal(h.closedCount(), 1, 'close is idempotent: the manager hears it once');
  t.throws(() => h.session.addReader(reader('r2')), { code: 'GW_ERR_STREAM_CLOSED' });
});

t.test('closing while the HLS directory is being prepared starts no driver', async (t) => {
  const h = harness(t);
  h.session.addReader(reader('r1'));
  await h.session.close('shutdown');
  await settle();
  t.equal(h.made.length, 0);
});

t.test('a stream an output reports undecodable restarts with a transcode, without a failure, when a slot is free', async (t) => {
  const h = harness(t, { transcodeSlots: 1 });
  h.session.addReader(reader('r1'));
  const d1 = await h.driver(1);
  d1.starting.resolve();
  d1.frame();
  t.ok(h.session.reportUndecodable('B-frames, which WebRTC cannot reorder'));
  t.same(d1.closedWith, ['restart to transcode']);
  t.equal(h.slots(), 0);
  const d2 = await h.driver(2);
  t.equal(d2.attempt.transcode, true);
  t.equal(h.session.lastError, null);
  t.same(h.health, [['online', null]], 'no offline blip for a restart the gateway chose');
  t.ok(h.session.reportUndecodable('again'), 'already transcoding');
  t.equal(h.made.length, 2);
  await h.session.close('done');
  t.equal(h.slots(), 1, 'the slot is given back on close');
});

t.test('with every transcode slot busy, an undecodable report changes nothing and says so', async (t) => {
  const h = harness(t, { transcodeSlots: 0 });
  h.session.addReader(reader('r1'));
  const d1 = await h.driver(1);
  d1.starting.resolve();
  d1.frame();
  t.notOk(h.session.reportUndecodable('B-frames'));
  t.same(d1.closedWith, []);
  t.equal(h.session.state, 'ready');
  t.equal(h.session.transcoding, false);
});

t.test('a camera found to be H.265 restarts with a transcode when a slot is free', async (t) => {
  const h = harness(t, { transcodeSlots: 1 });
  h.session.addReader(reader('r1'));
  const d1 = await h.driver(1);
  d1.starting.resolve();
  d1.events.probed('hevc', '1280x720');
  const d2 = await h.driver(2);
  t.equal(d2.attempt.transcode, true);
  t.equal(h.session.state, 'starting');
  d2.starting.resolve();
  d2.events.probed('hevc', '1280x720');
  t.equal(h.made.length, 2, 'the transcoding attempt is not restarted again');
  d2.frame();
  t.equal(h.session.state, 'ready');
});

t.test('lingering: the last viewer leaving closes the session after closeAfterMs, unless one comes back', async (t) => {
  const h = harness(t);
  h.session.addReader(reader('r1'));
  const d = await h.driver(1);
  d.starting.resolve();
  d.frame();
  h.session.removeReader('r1');
  t.equal(h.session.state, 'lingering');
  for (let s = 0; s < 29; s++) {
    h.clock.advance(1_000);
    d.frame();
  }
  h.session.addReader(reader('r2'));
  t.equal(h.session.state, 'ready', 'a viewer back in time finds it live');
  h.session.removeReader('r2');
  for (let s = 0; s < 29; s++) {
    h.clock.advance(1_000);
    d.frame();
  }
  t.equal(h.session.state, 'lingering');
  h.clock.advance(1_000);
  t.equal(h.session.state, 'closed');
  await settle();
  t.same(d.closedWith, ['no viewers']);
});

t.test('a pull only snapshots used lingers snapshots.lingerMs; one a viewer used lingers closeAfterMs', async (t) => {
  const snapshotReader = (id: string) => ({ id, kind: 'snapshot' as const, userId: 'u1', since: 0 });
  const h = harness(t);
  h.session.addReader(snapshotReader('s1'));
  const d = await h.driver(1);
  d.starting.resolve();
  d.frame();
  h.session.removeReader('s1');
  t.equal(h.session.state, 'lingering');
  h.clock.advance(config.snapshots.lingerMs - 1);
  t.equal(h.session.state, 'lingering');
  h.clock.advance(1);
  t.equal(h.session.state, 'closed', 'closed snapshots.lingerMs after the snapshot let go, not closeAfterMs');

  const w = harness(t);
  w.session.addReader(reader('r1'));
  const dw = await w.driver(1);
  dw.starting.resolve();
  dw.frame();
  w.session.addReader(snapshotReader('s1'));
  w.session.removeReader('r1');
  w.session.removeReader('s1');
  w.clock.advance(config.snapshots.lingerMs);
  t.equal(w.session.state, 'lingering', 'a snapshot taken of a watched pull does not cut its linger short');
  w.clock.advance(config.closeAfterMs - config.snapshots.lingerMs);
  t.equal(w.session.state, 'closed');
});

t.test('a driver may lengthen the start timeout (a vehicle terminal asked over JT/T 808 first), never shorten it', async (t) => {
  for (const [wanted, expected] of [[25_000, 25_000], [2_000, config.startTimeoutMs]] as const) {
    const drivers = fakeDrivers();
    const h = harness(t, {
      createDriver: (s, a, e) => Object.assign(drivers.create(s, a, e), { startTimeoutMs: () => wanted }),
    });
    h.session.addReader(reader('r1'));
    const d = await drivers.driver(1);
    h.clock.advance(expected - 1);
    t.same(d.closedWith, [], `not given up at ${expected - 1} ms (driver wants ${wanted})`);
    h.clock.advance(1);
    await settle();
    t.same(d.closedWith.length, 1, `given up at ${expected} ms`);
  }
});

t.test("a driver may shorten the linger (a vehicle past its data budget), never lengthen it", async (t) => {
  const h = harness(t);
  h.session.addReader(reader('r1'));
  const d = await h.driver(1);
  let wanted: number | null = 5_000;
  Object.assign(d, { lingerMs: () => wanted });
  d.starting.resolve();
  d.frame();
  h.session.removeReader('r1');
  h.clock.advance(4_999);
  t.equal(h.session.state, 'lingering');
  h.clock.advance(1);
  t.equal(h.session.state, 'closed', "closed after the driver's 5 s, not closeAfterMs");

  const l = harness(t);
  l.session.addReader(reader('r1'));
  const dl = await l.driver(1);
  Object.assign(dl, { lingerMs: () => wanted });
  wanted = config.closeAfterMs * 10;
  dl.starting.resolve();
  dl.frame();
  l.session.removeReader('r1');
  l.clock.advance(config.closeAfterMs);
  t.equal(l.session.state, 'closed', 'a longer wish is capped at closeAfterMs');
});

t.test('a failure with nobody watching closes instead of retrying', async (t) => {
  const h = harness(t);
  h.session.addReader(reader('r1'));
  const d = await h.driver(1);
  d.starting.resolve();
  h.session.removeReader('r1');
  d.events.failed(new GatewayError('GW_ERR_CAMERA_UNREACHABLE', 'the camera is unreachable'));
  t.equal(h.session.state, 'closed');
  h.clock.advance(60_000);
  t.equal(h.made.length, 1);
});

t.test("through the manager: the tile's reason, the registry's health and a viewer's error follow the latest attempt", async (t) => {
  const clock = new ManualClock();
  const drivers = fakeDrivers();
  const written: [string, string | null, string | null][] = [];
  const resolver: SourceResolver = {
    resolve: async () => source,
    checkConnect: async () => ({ addresses: ['10.0.0.1'] }),
    setHealth: async (_id, health, failure) => void written.push([health, failure?.message ?? null, failure?.code ?? null]),
  };
  const log = { info() {}, warn() {}, error() {} };
  const manager = new StreamManager(config, t.testdir(), resolver, log, { drivers: () => drivers.create, clock });
  await manager.start();
  t.teardown(() => manager.close());
  const lease = await manager.addReader({ cameraId: 'cam-1', profile: 'main', kind: 'hls', userId: 'u1' });
  const d1 = await drivers.driver(1);
  d1.starting.reject(new GatewayError('GW_ERR_CAMERA_AUTH', 'the camera refused the user name or password'));
  await t.rejects(lease.live(), { code: 'GW_ERR_CAMERA_AUTH' });
  const waiting = lease.live();
  clock.advance(1_000);
  const d2 = await drivers.driver(2);
  d2.starting.resolve();
  d2.events.failed(new GatewayError('GW_ERR_CAMERA_UNREACHABLE', 'the camera is unreachable: Connection refused'));
  await t.rejects(waiting, { code: 'GW_ERR_CAMERA_UNREACHABLE' });
  t.match(manager.list()[0]!.lastError, { code: 'GW_ERR_CAMERA_UNREACHABLE', message: /Connection refused/ });
  await settle();
  t.same(written, [
    ['offline', 'the camera refused the user name or password', 'GW_ERR_CAMERA_AUTH'],
    ['offline', 'the camera is unreachable: Connection refused', 'GW_ERR_CAMERA_UNREACHABLE'],
  ]);
  lease.release();
});

import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t, { type Test } from 'tap';
import { defaultConfig } from '../../../gateway/src/config/load.js';
import { GatewayError } from '../../../gateway/src/errors.js';
import { systemClock } from '../../../gateway/src/lib/clock.js';
import { jpegSize, KeyframeDecode } from '../../../gateway/src/snapshots/decoder.js';
import { waitFor } from '../../helpers/streams.js';
import { SnapshotService } from '../../../gateway/src/snapshots/service.js';
import { FlvDemuxer } from '../../../gateway/src/streams/flv-demux.js';
import { GopBudget } from '../../../gateway/src/streams/gop-store.js';
import { StreamSession } from '../../../gateway/src/streams/session.js';
import type { DriverEvents } from '../../../gateway/src/streams/sources/driver.js';
import type { FlvTag, Profile } from '../../../gateway/src/streams/types.js';

const run = promisify(execFile);

/** A real 640x360 H.264 stream as FLV tags: the decoder configuration, then 50 frames with a keyframe every 25. */
async function stream(): Promise<FlvTag[]> {
  const { stdout } = await run(
    'ffmpeg',
    ['-v', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=640x360:rate=25', '-frames:v', '50', '-c:v', 'libx264', '-g', '25', '-bf', '0', '-pix_fmt', 'yuv420p', '-f', 'flv', 'pipe:1'],
    { encoding: 'buffer', maxBuffer: 64 * 1024 * 1024 },
  );
  const tags: FlvTag[] = [];
  new FlvDemuxer((tag) => tags.push({ ...tag, data: Buffer.from(tag.data) })).push(stdout);
  return tags.filter((tag) => tag.type === 9);
}

/** A live session of a camera whose driver the test feeds, tag by tag. */
function liveSession(t: Test, profile: Profile, maxGopBytes = 8_388_608) {
  // The test feeds a few tags and then only decodes: a 5 s watchdog would call that a stall on a busy machine and drop the keyframe.
  const streams = { ...defaultConfig().streams, watchdogMs: 120_000, gopCache: { maxBytesPerSession: maxGopBytes, maxBytesTotal: 268_435_456 } };
  let events!: DriverEvents;
  const session = new StreamSession(
    `s-${profile}`,
    { cameraId: 'cam', name: 'Cam', departmentId: 'root', deptPath: '/root/', profile, url: 'rtsp://x/', protocol: 'rtsp', codec: 'h264', enabled: true, credential: null },
    join(t.testdir(), profile),
    {
      config: streams,
      createDriver: (_s, _a, e) => {
        events = e;
        return { pid: null, start: async () => {}, timedOut: () => new GatewayError('GW_ERR_STREAM_TIMEOUT', 'x'), close: async () => {} };
      },
      clock: systemClock,
      gopBudget: new GopBudget(streams.gopCache.maxBytesTotal),
      acquireTranscode: () => false,
      releaseTranscode: () => {},
      health: () => {},
      started: () => {},
      log: { info() {}, warn() {} },
      closed: () => {},
    },
  );
  session.addReader({ id: 'viewer', kind: 'hls', userId: 'u', since: 0 });
  t.teardown(() => session.close('test over'));
  return { session, feed: (tag: FlvTag) => events.tag(tag), started: () => events !== undefined };
}

t.test('a live session: its cached keyframe; a sub request served from the main stream; ifLive waits out a dropped GOP', async (t) => {
  const tags = await stream();
  const main = liveSession(t, 'main');
  const sessions = new Map<Profile, StreamSession>([['main', main.session]]);
  const engine = {
    sessionFor: (_cameraId: string, profile: Profile) => sessions.get(profile),
    addReader: () => Promise.reject(new Error('a live camera must not need a reader')),
  };
  // A decoder's deadline far beyond its usual second: on a busy machine ffmpeg's start alone took
  // the default 5 s, and this test is about which keyframe is decoded, not about the deadline.
  const config = { ...defaultConfig().streams, snapshots: { ...defaultConfig().streams.snapshots, cacheMs: 0, decodeTimeoutMs: 30_000 } };
  const service = new SnapshotService(engine, config);
  t.teardown(() => service.close());
  await waitFor(() => main.started(), Boolean, 5_000, 5, 'the main session to make its driver');
  for (const tag of tags.slice(0, 10)) main.feed(tag);
  const arrived = main.session.keyframeAt!;

  const shot = await service.take({ cameraId: 'cam', profile: 'main', userId: 'u' });
  t.same(jpegSize(shot!.jpeg), { width: 640, height: 360 });
  t.match(shot, { cameraId: 'cam', profile: 'main', width: 640, height: 360, takenAt: arrived });
  const sub = await service.take({ cameraId: 'cam', profile: 'sub', width: 320, userId: 'u', ifLive: true });
  t.match(sub, { profile: 'main', width: 320, height: 180 }, 'no sub-stream pull for a picture the main stream has');

  // With no cache, a hundred asks made while one decode runs share it.
  const decodesBefore = service.decodes;
  const hundred = await Promise.all(Array.from({ length: 100 }, () => service.take({ cameraId: 'cam', profile: 'main', width: 480, userId: 'u' })));
  t.equal(service.decodes - decodesBefore, 1, 'one decode for the hundred');
  t.equal(new Set(hundred.map((s) => s!.jpeg)).size, 1, 'the same picture for all');
  await service.take({ cameraId: 'cam', profile: 'main', width: 480, userId: 'u' });
  t.equal(service.decodes - decodesBefore, 2, 'once it has ended, the next ask decodes again (no cache)');

  // Each decode leaves a spare for its width, which the next picture of that width is given.
  t.same(service.spareWidths().slice(-1), [480], 'a spare waits for the width just decoded');
  const spares = [...KeyframeDecode.running()].filter((d) => d.waiting);
  t.equal(spares.length, service.spareWidths().length);
  t.ok(spares.length <= config.snapshots.spareDecoders, 'no more spares than streams.snapshots.spareDecoders');
  const spared = await service.take({ cameraId: 'cam', profile: 'main', width: 480, userId: 'u' });
  const used = spares.filter((d) => !d.waiting);
  t.equal(used.length, 1, 'one spare was used');
  t.same(await used[0]!.result, spared!.jpeg, 'and it decoded the picture');

  // A GOP too large for its bound is dropped: no keyframe is cached until the next one.
  const small = liveSession(t, 'main', 1024);
  sessions.set('main', small.session);
  await waitFor(() => small.started(), Boolean, 5_000, 5, 'the small session to make its driver');
  for (const tag of tags.slice(0, 10)) small.feed(tag);
  t.equal(small.session.joinTags().filter((tag) => !tag.header).length, 0, 'the GOP was dropped');
  const waiting = service.take({ cameraId: 'cam', profile: 'main', width: 160, userId: 'u', ifLive: true });
  let settled = false;
  void waiting.then(() => (settled = true));
  await new Promise((r) => setTimeout(r, 50));
  t.notOk(settled, 'waits for the next keyframe rather than answer without a picture');
  for (const tag of tags.slice(10)) small.feed(tag);
  t.same(jpegSize((await waiting)!.jpeg), { width: 160, height: 90 });

  await service.close();
  t.same(service.spareWidths(), []);
  t.equal(KeyframeDecode.running().size, 0, 'closing stops the spares');

  sessions.set('main', main.session);
  const idle = new SnapshotService(engine, { ...config, snapshots: { ...config.snapshots, spareDecoders: 1, spareIdleMs: 1_000 } });
  t.teardown(() => idle.close());
  await idle.take({ cameraId: 'cam', profile: 'main', width: 240, userId: 'u' });
  await idle.take({ cameraId: 'cam', profile: 'main', width: 200, userId: 'u' });
  t.same(idle.spareWidths(), [200], 'one spare at most: the older width gave way');
  await waitFor(() => idle.spareWidths(), (w) => w.length === 0, 5_000, 50, 'the unused spare to be stopped after spareIdleMs');
  await waitFor(() => KeyframeDecode.running().size, (n) => n === 0, 5_000, 50, 'the spare ffmpeg to exit');
});

t.test('ifLive with nothing live asks nothing of the engine; once closed every request is refused', async (t) => {
  const service = new SnapshotService({ sessionFor: () => undefined, addReader: () => new Promise(() => {}) }, defaultConfig().streams);
  t.equal(await service.take({ cameraId: 'cam', profile: 'main', userId: 'u', ifLive: true }), null, 'ifLive and nothing live: null, nothing asked of the engine');
  await service.close();
  await t.rejects(service.take({ cameraId: 'cam', profile: 'main', userId: 'u' }), { code: 'GW_ERR_UNAVAILABLE' });
});

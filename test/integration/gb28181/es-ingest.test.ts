import { randomUUID } from 'node:crypto';
import { mkdir, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { defaultConfig } from '../../../gateway/src/config/load.js';
import type { GatewayError } from '../../../gateway/src/errors.js';
import type { AccessUnit } from '../../../gateway/src/gb28181/media/types.js';
import { markedProcesses } from '../../../gateway/src/streams/process/sweep.js';
import type { DriverContext, DriverEvents } from '../../../gateway/src/streams/sources/driver.js';
import { EsIngest, type EsIngestOptions } from '../../../gateway/src/streams/sources/es-ingest.js';
import type { FlvTag } from '../../../gateway/src/streams/types.js';
import { ensureClip, type ClipKind } from '../../../scripts/sim/clips.js';
import { waitFor } from '../../helpers/streams.js';

/** EsIngest with a real ffmpeg: access units in, FLV tags and HLS segments out, one close that leaves no process. */

const START = Buffer.from([0, 0, 0, 1]);

async function clipUnits(kind: ClipKind, rounds = 1, pts = (i: number) => 90_000 + i * 3600): Promise<AccessUnit[]> {
  const clip = await ensureClip(kind);
  const out: AccessUnit[] = [];
  for (let r = 0; r < rounds; r++) {
    for (const f of clip.frames) {
      const i = out.length;
      out.push({ codec: clip.codec, pts90k: pts(i), key: f.key, data: Buffer.concat(f.nalUnits.flatMap((n) => [START, n])) });
    }
  }
  return out;
}

async function setup(t: Test, opts: { transcode?: boolean } & EsIngestOptions = {}) {
  const ctx: DriverContext = {
    config: { ...defaultConfig().streams, killGraceMs: 1_000 },
    instanceId: `es-ingest-test-${randomUUID()}`,
    checkConnect: async () => ({ addresses: ['127.0.0.1'] }),
  };
  const hlsDir = join(t.testdir(), randomUUID());
  await mkdir(hlsDir);
  const seen = { tags: [] as FlvTag[], probed: null as string | null, failed: [] as GatewayError[], bytes: 0 };
  const events: DriverEvents = {
    tag: (tag) => void seen.tags.push({ ...tag, data: Buffer.from(tag.data) }),
    bytes: (n) => void (seen.bytes += n),
    probed: (codec, resolution) => void (seen.probed = `${codec} ${resolution}`),
    failed: (e) => void seen.failed.push(e),
  };
  const ingest = new EsIngest(ctx, { hlsDir, segmentStart: 7, discontinuity: false, transcode: opts.transcode ?? false }, events, opts);
  t.teardown(() => ingest.close('test over'));
  return { ingest, seen, hlsDir, processes: () => markedProcesses(ctx.instanceId) };
}

const video = (tags: FlvTag[]) => tags.filter((x) => x.type === 9);
/** FLV's codec id: 7 AVC (H.264), 12 HEVC. */
const codecId = (tag: FlvTag) => tag.data[0]! & 0x0f;

function gone(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return false;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

/** Pushes a unit the way a demuxer that lends its buffer does: the bytes are overwritten once push() returns. */
function pushLent(ingest: EsIngest, u: AccessUnit, scratch: Buffer) {
  u.data.copy(scratch);
  ingest.push({ ...u, data: scratch.subarray(0, u.data.length) });
  scratch.fill(0xee);
}

t.test('H.264 access units in: FLV tags out (a keyframe after its AVC sequence header) and HLS segments in the attempt directory', async (t) => {
  const { ingest, seen, hlsDir, processes } = await setup(t);
  const units = await clipUnits('h264-720p-1s', 2);
  const scratch = Buffer.alloc(Math.max(...units.map((u) => u.data.length)));
  // The first units arrive while ffmpeg is still starting: they are kept (copied) from the keyframe on.
  for (const u of units.slice(0, 10)) pushLent(ingest, u, scratch);
  await ingest.start();
  const pid = ingest.pid!;
  t.ok(pid > 0, 'ffmpeg runs');
  t.same(await processes(), [pid], 'marked for the orphan sweep');
  for (const u of units.slice(10)) pushLent(ingest, u, scratch);
  t.equal(ingest.units, units.length, 'every unit written');
  t.equal(ingest.dropped, 0);
  await waitFor(() => video(seen.tags).filter((x) => x.keyframe && !x.header).length, (n) => n >= 7, 20_000, 50, 'keyframes out of ffmpeg');
  const tags = video(seen.tags);
  t.ok(tags[0]!.header, 'the AVC sequence header comes first');
  t.ok(tags[1]!.keyframe, 'then a keyframe');
  const firstIdr = (await ensureClip('h264-720p-1s')).frames[0]!.nalUnits.find((n) => (n[0]! & 0x1f) === 5)!;
  t.ok(tags[1]!.data.includes(firstIdr), "the first unit's own picture, though its buffer was overwritten while ffmpeg started");
  t.ok(tags.every((x) => codecId(x) === 7), 'H.264 copied as is');
  t.equal(seen.probed, 'h264 1280x720');
  const pictures = tags.filter((x) => !x.header);
  t.ok(pictures.every((x, i) => i === 0 || x.timestamp - pictures[i - 1]!.timestamp === 40), "the units' PTS carried through: 40 ms apart");
  await waitFor(async () => (await readdir(hlsDir)).filter((f) => /^seg\d+\.ts$/.test(f)), (segs) => segs.length >= 2, 20_000, 100, 'HLS segments');
  const playlist = await readFile(join(hlsDir, 'index.m3u8'), 'utf8');
  t.ok(Number(/#EXT-X-MEDIA-SEQUENCE:(\d+)/.exec(playlist)?.[1]) >= 7, "numbered from the attempt's segmentStart");
  await Promise.all([ingest.close('viewer left'), ingest.close('again')]);
  t.equal(ingest.pid, null);
  t.ok(gone(pid), `ffmpeg ${pid} is gone`);
  t.same(await processes(), [], 'no ffmpeg is left');
  t.same(seen.failed, [], 'a close is not reported as a failure');
  const count = seen.tags.length;
  ingest.push(units[0]!);
  t.equal(seen.tags.length, count, 'nothing after close');
});

t.test('H.265 in with attempt.transcode: H.264 out', async (t) => {
  const { ingest, seen, processes } = await setup(t, { transcode: true });
  await ingest.start();
  const pid = ingest.pid!;
  for (const u of await clipUnits('h265-720p-1s')) ingest.push(u);
  await waitFor(() => video(seen.tags).filter((x) => x.keyframe && !x.header).length, (n) => n >= 2, 30_000, 50, 'transcoded keyframes');
  const tags = video(seen.tags);
  t.ok(tags[0]!.header && codecId(tags[0]!) === 7, 'an AVC sequence header');
  t.ok(tags.every((x) => codecId(x) === 7), 'every picture is H.264');
  t.equal(seen.probed, 'hevc 1280x720', 'the input probed as H.265');
  await ingest.close('done');
  t.ok(gone(pid));
  t.same(await processes(), []);
});

t.test('units before the first keyframe are dropped; a device clock that stalls or jumps back still gives monotonic output', async (t) => {
  const { ingest, seen } = await setup(t);
  await ingest.start();
  const units = await clipUnits('h264-720p-1s', 2, (i) => (i < 60 ? 900_000 : 45_000 + i * 3600));
  // Start mid-GOP: the first 5 units precede no keyframe.
  for (const u of units.slice(20)) ingest.push(u);
  t.equal(ingest.dropped, 5, 'the units before the keyframe');
  await waitFor(() => video(seen.tags).filter((x) => x.keyframe && !x.header).length, (n) => n >= 6, 20_000, 50, 'keyframes');
  const pictures = video(seen.tags).filter((x) => !x.header);
  t.ok(pictures.length > 100);
  const steps = new Set(pictures.slice(1).map((x, i) => x.timestamp - pictures[i]!.timestamp));
  t.same([...steps], [40], 'FLV timestamps advance 40 ms a frame, through the stall and the jump back');
});

t.test('an ffmpeg that falls behind: units are dropped and counted, and writing resumes at a keyframe', async (t) => {
  const { ingest, seen } = await setup(t, { maxQueueBytes: 100_000 });
  await ingest.start();
  const pid = ingest.pid!;
  const units = await clipUnits('h264-720p-1s', 3);
  for (const u of units.slice(0, 25)) ingest.push(u);
  await waitFor(() => video(seen.tags).filter((x) => x.keyframe && !x.header).length, (n) => n >= 1, 20_000, 50, 'the first keyframe');
  process.kill(pid, 'SIGSTOP');
  t.teardown(() => void (gone(pid) || process.kill(pid, 'SIGCONT')));
  // Stopped: the pipe and then the queue fill up, and what follows is dropped.
  for (const u of units.slice(25, 200)) ingest.push(u);
  const droppedWhileStopped = ingest.dropped;
  t.ok(droppedWhileStopped > 50, `${droppedWhileStopped} units dropped while ffmpeg was stopped`);
  process.kill(pid, 'SIGCONT');
  await new Promise((r) => setTimeout(r, 500));
  // Caught up: non-key units still wait for a keyframe, which is written.
  const before = ingest.units;
  for (const u of units.slice(200, 210)) ingest.push(u);
  t.equal(ingest.units, before + 10, 'the keyframe at unit 200 resumes writing');
  t.equal(ingest.units + ingest.dropped, 210, 'every unit either written or counted as dropped');
  await waitFor(() => video(seen.tags).filter((x) => x.keyframe && !x.header).length, (n) => n >= 2, 20_000, 50, 'a keyframe after the stall');
  t.same(seen.failed, []);
});

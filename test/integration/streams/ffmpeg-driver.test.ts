import { randomUUID } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { defaultConfig } from '../../../gateway/src/config/load.js';
import type { GatewayError } from '../../../gateway/src/errors.js';
import { markedProcesses } from '../../../gateway/src/streams/process/sweep.js';
import type { DriverContext, DriverEvents } from '../../../gateway/src/streams/sources/driver.js';
import { FfmpegPullDriver, networkInput, type PreparedInput } from '../../../gateway/src/streams/sources/ffmpeg-pull.js';
import type { ResolvedSource } from '../../../gateway/src/streams/types.js';
import { ensureClip } from '../../../scripts/sim/clips.js';
import { CameraSimulator } from '../../../scripts/sim/rtsp-server.js';
import { waitFor } from '../../helpers/streams.js';

/** The pull driver on its own, with a real ffmpeg and the camera simulator: what the session relies on. */
async function setup(t: Test) {
  await ensureClip('h264-360p-1s');
  const sim = await CameraSimulator.start();
  t.teardown(() => sim.close());
  sim.addCamera('yard', { clip: 'h264-360p-1s' });
  const ctx: DriverContext = {
    config: { ...defaultConfig().streams, killGraceMs: 1_000, ioTimeoutMs: 3_000 },
    instanceId: `driver-test-${randomUUID()}`,
    checkConnect: async () => ({ addresses: ['127.0.0.1'] }),
  };
  const source = (url: string): ResolvedSource => ({
    cameraId: 'yard',
    name: 'Yard',
    departmentId: 'root',
    deptPath: '/root/',
    profile: 'main',
    url,
    protocol: 'rtsp',
    codec: 'h264',
    enabled: true,
    credential: null,
  });
  const driver = async (url: string, prepare?: () => Promise<PreparedInput>) => {
    const hlsDir = join(t.testdir(), randomUUID());
    await mkdir(hlsDir);
    const seen = { keyframes: 0, bytes: 0, probed: null as string | null, failed: [] as GatewayError[] };
    const events: DriverEvents = {
      tag: (tag) => void (tag.keyframe && seen.keyframes++),
      bytes: (n) => void (seen.bytes += n),
      probed: (codec, resolution) => void (seen.probed = `${codec} ${resolution}`),
      failed: (e) => void seen.failed.push(e),
    };
    const s = source(url);
    const d = new FfmpegPullDriver(ctx, { hlsDir, segmentStart: 1, discontinuity: false, transcode: false }, events, prepare ?? (() => networkInput(ctx, s)));
    t.teardown(() => d.close('test over'));
    return { d, seen };
  };
  return { sim, ctx, driver, processes: () => markedProcesses(ctx.instanceId) };
}

t.test('a pull delivers keyframes and the probed codec, and one close stops its ffmpeg', async (t) => {
  const { sim, driver, processes } = await setup(t);
  const { d, seen } = await driver(sim.url('yard'));
  await d.start();
  t.ok(d.pid, 'ffmpeg runs');
  t.same(await processes(), [d.pid], 'marked for the orphan sweep');
  await waitFor(() => seen.keyframes, (n) => n >= 2, 10_000);
  t.ok(seen.keyframes >= 2, 'keyframes arrive as FLV tags');
  t.ok(seen.bytes > 10_000);
  t.equal(seen.probed, 'h264 640x360');
  await Promise.all([d.close('viewer left'), d.close('again')]);
  t.equal(d.pid, null);
  t.same(await processes(), [], 'no ffmpeg is left');
  t.same(seen.failed, [], 'a close is not reported as a failure');
});

t.test('a close while the input is prepared or ffmpeg spawns leaves no process, and reports nothing', async (t) => {
  const { sim, driver, processes } = await setup(t);
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  const slow = await driver(sim.url('yard'), async () => {
    await gate;
    return { input: { protocol: 'rtsp', url: sim.url('yard'), rtspTransport: 'tcp', ioTimeoutMs: 3_000 }, secrets: [] };
  });
  const starting = slow.d.start();
  await slow.d.close('closed during prepare');
  release();
  await starting;
  t.equal(slow.d.pid, null, 'nothing is spawned after a close');

  const spawning = await driver(sim.url('yard'));
  const started = spawning.d.start();
  // networkInput resolves in a microtask or two; the spawn (mkfifo, then the child) takes longer.
  await new Promise((resolve) => setImmediate(resolve));
  await Promise.all([started, spawning.d.close('closed during spawn')]);
  t.equal(spawning.d.pid, null, 'the close waited for the spawn, and resolved once the child was gone');
  t.same(await processes(), [], 'no process is left');
  t.same([...slow.seen.failed, ...spawning.seen.failed], []);
});

t.test('each way an attempt fails is reported once, coded and worded for the step', async (t) => {
  const { sim, ctx, driver, processes } = await setup(t);

  const refused = await driver('rtsp://127.0.0.1:9/cam/yard');
  await refused.d.start();
  await waitFor(() => refused.seen.failed.length, (n) => n > 0, 10_000);
  t.match(refused.seen.failed, [{ code: 'GW_ERR_CAMERA_UNREACHABLE', message: /Connection refused/ }], 'a closed port');

  const missing = await driver(sim.url('yard').replace('/cam/yard', '/cam/nobody'));
  await missing.d.start();
  await waitFor(() => missing.seen.failed.length, (n) => n > 0, 10_000);
  t.match(missing.seen.failed, [{ code: 'GW_ERR_CAMERA_UNREACHABLE', message: /no stream at this path/ }], 'a path the camera does not serve');

  ctx.checkConnect = async () => ({ refused: 'address 10.1.2.3 is in the deny list' });
  const denied = await driver('rtsp://camera.example:554/x');
  await t.rejects(denied.d.start(), { code: 'GW_ERR_FORBIDDEN', message: /not allowed: address 10\.1\.2\.3/ }, 'the network policy, before any process');
  ctx.checkConnect = async () => {
    throw new Error('getaddrinfo ENOTFOUND camera.example');
  };
  const unknown = await driver('rtsp://camera.example:554/x');
  await t.rejects(unknown.d.start(), { code: 'GW_ERR_CAMERA_UNREACHABLE', message: /cannot look up the camera's address: getaddrinfo ENOTFOUND/ });

  ctx.checkConnect = async () => ({ addresses: ['127.0.0.1'] });
  const silent = await driver(sim.url('yard'));
  sim.setFault('yard', { kind: 'stall' });
  await silent.d.start();
  t.match(silent.d.timedOut('start', 10_000), { code: 'GW_ERR_STREAM_TIMEOUT', message: /no video within/ }, 'the words for a start timeout');
  t.match(silent.d.timedOut('stall', 6_000), { code: 'GW_ERR_CAMERA_UNREACHABLE', message: /stalled: no video for 6000 ms/ });
  await silent.d.close('start timeout');
  t.same(silent.seen.failed, [], 'the session closed it: not a failure of its own');
  t.same(await processes(), []);
});

t.test("an attempt lets go of its input's hold (the checked fetcher's source) when it closes, even mid-start", async (t) => {
  const { sim, ctx, driver } = await setup(t);
  let released = 0;
  const prepare = async (): Promise<PreparedInput> => ({ ...(await networkInput(ctx, { ...({} as ResolvedSource), url: sim.url('yard'), protocol: 'rtsp', credential: null })), release: () => void released++ });
  const running = await driver(sim.url('yard'), prepare);
  await running.d.start();
  t.equal(released, 0, 'held while ffmpeg runs');
  await running.d.close('viewer left');
  await running.d.close('again');
  t.equal(released, 1, 'released once when the attempt closes');
  const early = await driver(sim.url('yard'), prepare);
  const starting = early.d.start();
  await early.d.close('closed during start');
  await starting;
  t.equal(released, 2, 'released when the close came while the input was prepared');
});

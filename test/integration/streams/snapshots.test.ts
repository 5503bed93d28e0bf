import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { ensureClip } from '../../../scripts/sim/clips.js';
import { pushRtmp } from '../../../scripts/sim/rtmp-push.js';
import { jpegSize, KeyframeDecode } from '../../../gateway/src/snapshots/decoder.js';
import type { StreamSession } from '../../../gateway/src/streams/session.js';
import { tempDir } from '../../helpers/gateway.js';
import { ffmpegChildren } from '../../helpers/process.js';
import { startStreamingGateway, waitFor, type StreamingGateway } from '../../helpers/streams.js';

async function snapshot(gw: StreamingGateway, cameraId: string, query = '', token = gw.adminToken) {
  const res = await fetch(`${gw.baseUrl}/api/streams/${cameraId}/snapshot.jpg${query}`, { headers: { authorization: `Bearer ${token}` } });
  const body = Buffer.from(await res.arrayBuffer());
  return { status: res.status, headers: res.headers, body, json: () => JSON.parse(body.toString()) as { code: string; message: string } };
}

/** A counter from /metrics. */
async function metric(gw: StreamingGateway, name: string): Promise<number> {
  const text = await (await fetch(`${gw.baseUrl}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  if (!line) throw new Error(`no metric ${name}`);
  return Number(line.split(' ')[1]);
}

/**
 * ffmpeg children of this process that are neither pulls (the engine's pulls carry its marker) nor
 * spare decoders waiting on stdin for the next picture: the decoders at work.
 */
async function decoders(gw: StreamingGateway): Promise<number[]> {
  const children = await ffmpegChildren(process.pid);
  const pulls = new Set(await gw.ffmpegPids());
  const spares = new Set(spareDecoders());
  return children.filter((pid) => !pulls.has(pid) && !spares.has(pid));
}

const spareDecoders = () => [...KeyframeDecode.running()].filter((d) => d.waiting).map((d) => d.pid);

/** Watches a camera over HLS until its playlist answers: a live session. */
async function watch(gw: StreamingGateway, cameraId: string) {
  const urls = await gw.view(cameraId);
  await waitFor(async () => (await fetch(urls.hls)).status, (s) => s === 200, 20_000, 200, `${cameraId} live over HLS`);
}

t.test('a live camera: its keyframe as a JPEG of its size, or of the width asked; no decoder left behind', async (t) => {
  const gw = await startStreamingGateway(t);
  await gw.addCamera('live1', { clip: 'h264-720p-1s' });
  await watch(gw, 'live1');
  const pulls = await gw.ffmpegPids();
  const before = Date.now();

  const full = await snapshot(gw, 'live1');
  t.equal(full.status, 200);
  t.equal(full.headers.get('content-type'), 'image/jpeg');
  t.equal(full.headers.get('cache-control'), 'private, max-age=2');
  const lastModified = Date.parse(full.headers.get('last-modified') ?? '');
  t.ok(lastModified <= before && lastModified > before - 3_000, 'Last-Modified is when the cached keyframe (1 s GOP) arrived');
  t.same(jpegSize(full.body), { width: 1280, height: 720 }, "the camera's own size");

  const small = await snapshot(gw, 'live1', '?width=320');
  t.equal(small.status, 200);
  t.same(jpegSize(small.body), { width: 320, height: 180 }, 'the width asked, the aspect ratio kept');
  const sub = await snapshot(gw, 'live1', '?profile=sub&width=160');
  t.same(jpegSize(sub.body), { width: 160, height: 90 }, 'a camera without a sub-stream serves its main one');

  t.same(await gw.ffmpegPids(), pulls, 'no pull was started or stopped for it');
  // A spare that gave way to one for a more recent width is stopped as that one starts.
  await waitFor(() => decoders(gw), (pids) => pids.length === 0, 3_000, 50, 'every decoder but the spares to exit');
  const spares = spareDecoders();
  t.ok(spares.length > 0 && spares.length <= 2, 'what is left are spares, at most streams.snapshots.spareDecoders');

  const tooWide = await snapshot(gw, 'live1', '?width=4000');
  t.equal(tooWide.status, 400);
  t.match(tooWide.json(), { code: 'GW_ERR_VALIDATION', message: /querystring\.width.*streams\.snapshots\.maxWidth/ });
  const unknown = await snapshot(gw, 'live1', '?size=2');
  t.equal(unknown.status, 400, 'an unknown query field is refused');

  await gw.close();
  t.same(await ffmpegChildren(process.pid), [], 'no ffmpeg outlives the gateway');
});

t.test("an idle camera's snapshot starts a pull and ends it; ifLive starts nothing", async (t) => {
  const gw = await startStreamingGateway(t, { snapshots: { lingerMs: 300 } });
  await gw.addCamera('idle1', { clip: 'h264-720p-1s' });
  const started: StreamSession[] = [];
  const readerKinds: string[] = [];
  gw.streams.on('session', (s) => {
    started.push(s);
    readerKinds.push(...[...s.readers.values()].map((r) => r.kind));
  });

  const ifLive = await snapshot(gw, 'idle1', '?ifLive=1');
  t.equal(ifLive.status, 204, 'ifLive on an idle camera: no picture');
  t.equal(ifLive.body.length, 0);
  t.equal(started.length, 0, 'and no session was started');
  t.same(await ffmpegChildren(process.pid), [], 'nor any process');

  const res = await snapshot(gw, 'idle1', '?width=640');
  t.equal(res.status, 200);
  t.same(jpegSize(res.body), { width: 640, height: 360 });
  t.equal(started.length, 1, 'one pull was started for it');
  await waitFor(() => gw.streams.list().length, (n) => n === 0, 5_000, 50, 'the snapshot pull to close');
  t.equal(started[0]!.state, 'closed');
  t.same(await gw.ffmpegPids(), [], 'its ffmpeg has exited');
  t.same(await decoders(gw), [], 'and so has the decoder');

  const again = await snapshot(gw, 'idle1', '?width=640&ifLive=1');
  t.equal(again.status, 200, 'within cacheMs the cached picture is served, even with ifLive');
  t.same(again.body, res.body);
});

t.test('a snapshot of an idle camera is admitted like a viewing: the caps hold and no process starts', async (t) => {
  const gw = await startStreamingGateway(t, { limits: { sessions: 1, viewersPerUser: 100 } });
  await gw.addCamera('c1', { clip: 'h264-720p-1s' });
  await gw.addCamera('c2', { clip: 'h264-720p-1s' });
  await watch(gw, 'c1');
  const children = await ffmpegChildren(process.pid);

  const refused = await snapshot(gw, 'c2');
  t.equal(refused.status, 503);
  t.match(refused.json(), { code: 'GW_ERR_CAPACITY', message: /streams\.limits\.sessions/ });
  t.same(await ffmpegChildren(process.pid), children, 'no process was started for it');
  t.equal((await snapshot(gw, 'c1')).status, 200, 'the live camera still gives its picture: nothing has to start');
});

t.test("a foreign department's camera answers like a missing one", async (t) => {
  const gw = await startStreamingGateway(t);
  for (const id of ['traffic', 'fire']) {
    const res = await gw.api('POST', '/api/departments', { token: gw.adminToken, body: { id, name: id, parentId: 'root', level: 'city' } });
    t.equal(res.status, 201);
  }
  await gw.addCamera('tr1', { clip: 'h264-720p-1s' }, { departmentId: 'traffic' });
  const fireman = await gw.userToken('fireman', ['operator'], ['fire']);
  const foreign = await snapshot(gw, 'tr1', '', fireman);
  const missing = await snapshot(gw, 'nope', '', fireman);
  t.equal(foreign.status, 404);
  t.equal(missing.status, 404);
  t.equal(foreign.json().code, 'GW_ERR_NOT_FOUND');
  t.same({ ...foreign.json(), message: foreign.json().message.replace('tr1', 'nope') }, missing.json(), 'the same answer, but for the id');
  t.equal(gw.streams.list().length, 0, 'nothing was started');
  const anonymous = await fetch(`${gw.baseUrl}/api/streams/tr1/snapshot.jpg`);
  t.equal(anonymous.status, 401);
});

t.test('a hundred concurrent requests for one picture cost one decode', async (t) => {
  // As configured in production: a request that comes while the decode runs shares it, one that
  // comes after it gets its cached result. How many do which depends on how fast the requests
  // arrive (a loaded machine decodes before the last connection is open); one decode does not.
  const gw = await startStreamingGateway(t);
  await gw.addCamera('busy', { clip: 'h264-720p-1s' });
  await watch(gw, 'busy');
  const decodesBefore = await metric(gw, 'wallgate_snapshot_decodes_total');
  const answers = await Promise.all(Array.from({ length: 100 }, () => snapshot(gw, 'busy', '?width=320')));
  t.same([...new Set(answers.map((a) => a.status))], [200]);
  t.equal(new Set(answers.map((a) => a.body.toString('base64'))).size, 1, 'the same picture for all');
  t.equal((await metric(gw, 'wallgate_snapshot_decodes_total')) - decodesBefore, 1, 'one decode');
  const shared = (await metric(gw, 'wallgate_snapshot_coalesced_total')) + (await metric(gw, 'wallgate_snapshot_cache_hits_total'));
  t.equal(shared, 99, 'the other 99 shared the decode or its cached result');
});

t.test('without a cache, requests share only a decode in flight', async (t) => {
  const gw = await startStreamingGateway(t, { snapshots: { cacheMs: 0 } });
  await gw.addCamera('busy', { clip: 'h264-720p-1s' });
  await watch(gw, 'busy');
  const decodesBefore = await metric(gw, 'wallgate_snapshot_decodes_total');
  const [first, second] = await Promise.all([snapshot(gw, 'busy', '?width=320'), snapshot(gw, 'busy', '?width=320')]);
  t.same([first.status, second.status], [200, 200]);
  const afterPair = (await metric(gw, 'wallgate_snapshot_decodes_total')) - decodesBefore;
  t.equal(afterPair + (await metric(gw, 'wallgate_snapshot_coalesced_total')), 2, 'each of the pair decoded or shared, none answered from a cache');
  t.equal((await snapshot(gw, 'busy', '?width=320')).status, 200);
  t.equal((await metric(gw, 'wallgate_snapshot_decodes_total')) - decodesBefore, afterPair + 1, 'the next request decodes again');
});

t.test('within cacheMs a picture is served from the cache', async (t) => {
  const gw = await startStreamingGateway(t);
  await gw.addCamera('cached', { clip: 'h264-720p-1s' });
  await watch(gw, 'cached');
  const first = await snapshot(gw, 'cached');
  const second = await snapshot(gw, 'cached');
  t.same(second.body, first.body);
  t.equal(await metric(gw, 'wallgate_snapshot_decodes_total'), 1);
  t.equal(await metric(gw, 'wallgate_snapshot_cache_hits_total'), 1);
  const other = await snapshot(gw, 'cached', '?width=200');
  t.same(jpegSize(other.body), { width: 200, height: 112 }, 'another width is another picture');
  t.equal(await metric(gw, 'wallgate_snapshot_decodes_total'), 2);
});

t.test('a camera that cannot be reached answers with the code a viewing gets; shutdown ends a waiting snapshot', async (t) => {
  const gw = await startStreamingGateway(t, { snapshots: { lingerMs: 0 } });
  await gw.addCamera('dead', { clip: 'h264-720p-1s' });
  gw.sim.setFault('dead', { kind: 'refuse' });
  const res = await snapshot(gw, 'dead');
  await waitFor(() => gw.streams.list().length, (n) => n === 0, 5_000, 50, 'the failed snapshot pull to close');
  const viewing = await fetch((await gw.view('dead')).hls);
  t.equal(res.status, viewing.status);
  t.equal(res.json().code, ((await viewing.json()) as { code: string }).code);
  t.equal(res.json().code, 'GW_ERR_CAMERA_UNREACHABLE');

  await gw.addCamera('slow', { clip: 'h264-720p-1s' });
  gw.sim.setFault('slow', { kind: 'stall' });
  const waiting = snapshot(gw, 'slow').catch((e: Error) => ({ status: 0, error: `${e.message}: ${String(e.cause)}`, json: () => null }));
  await waitFor(() => gw.streams.list().map((s) => s.cameraId), (ids) => ids.includes('slow'), 5_000, 10, 'the snapshot pull to start');
  await gw.close();
  const answer = await waiting;
  t.equal(answer.status, 503, 'the waiting snapshot is told the gateway is shutting down');
  t.match(answer.json(), { code: 'GW_ERR_UNAVAILABLE' });
  t.same(await ffmpegChildren(process.pid), [], 'no pull and no decoder outlives the gateway');
});

t.test('decodes beyond maxConcurrentDecodes wait in a bounded queue; past it GW_ERR_CAPACITY', async (t) => {
  // An ffmpeg whose snapshot decoders take a second to start (pulls start at once), so every request
  // below arrives while the first decode holds the only slot, however loaded the machine is.
  const dir = tempDir(t, 'wallgate-slow-decoder-');
  const slowFfmpeg = join(dir, 'ffmpeg');
  writeFileSync(slowFfmpeg, '#!/bin/sh\ncase "$*" in *image2pipe*) sleep 1;; esac\nexec ffmpeg "$@"\n');
  chmodSync(slowFfmpeg, 0o755);
  const gw = await startStreamingGateway(t, { ffmpegPath: slowFfmpeg, snapshots: { cacheMs: 0, maxConcurrentDecodes: 1, maxQueuedDecodes: 1, spareDecoders: 0 } });
  await gw.addCamera('q1', { clip: 'h264-720p-1s' });
  await watch(gw, 'q1');
  // Distinct widths: distinct pictures, which cannot share a decode.
  const answers = await Promise.all([320, 330, 340, 350, 360, 370].map((w) => snapshot(gw, 'q1', `?width=${w}`)));
  const statuses = answers.map((a) => a.status);
  t.equal(statuses.filter((s) => s === 200).length, 2, 'one decoding and one queued are answered');
  for (const refused of answers.filter((a) => a.status !== 200)) {
    t.equal(refused.status, 503);
    t.match(refused.json(), { code: 'GW_ERR_CAPACITY', message: /maxConcurrentDecodes/ });
  }
  t.equal(await metric(gw, 'wallgate_snapshot_decodes_total'), 2, 'the refused never started a decoder');
});

t.test('a pushed camera (RTMP) gives its picture like a pulled one: the snapshot sits on the session', async (t) => {
  const gw = await startStreamingGateway(t, { snapshots: { lingerMs: 0 } });
  const created = await gw.api('POST', '/api/sources', {
    token: gw.adminToken,
    body: { id: 'drone-1', name: 'Drone 1', departmentId: 'root', protocol: 'rtmp-push', url: 'rtmp://gateway.example/push/drone1' },
  });
  t.equal(created.status, 201, created.body);
  const nobody = await snapshot(gw, 'drone-1');
  t.equal(nobody.status, 502, 'nobody publishing: the error a viewer gets');
  t.match(nobody.json(), { message: /nobody is publishing/ });

  const issued = await gw.api('POST', '/api/sources/drone-1/publish-url', { token: gw.adminToken });
  const pusher = pushRtmp(issued.json.url.replace('localhost', '127.0.0.1'), await ensureClip('h264-360p-1s'));
  t.teardown(() => pusher.close());
  const res = await waitFor(() => snapshot(gw, 'drone-1', '?width=320'), (r) => r.status === 200, 15_000, 300, 'a picture of the pushed stream');
  t.same(jpegSize(res.body), { width: 320, height: 180 });
  await waitFor(() => gw.streams.list().length, (n) => n === 0, 5_000, 50, 'the snapshot pull of the ingest to close');
  await pusher.close();
});

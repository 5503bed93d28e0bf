import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import t from 'tap';
import { decodeFrames, startStreamingGateway } from '../../helpers/streams.js';

const run = promisify(execFile);

t.test('an H.265 camera is transcoded to H.264, and the transcode cap holds', async (t) => {
  const gw = await startStreamingGateway(t, { transcode: { maxConcurrent: 1, preset: 'ultrafast', height: 360, bitrateKbps: 800 } });
  await gw.addCamera('hevc1', { clip: 'h265-720p-1s' });
  await gw.addCamera('hevc2', { clip: 'h265-720p-1s' });
  // Registered without a codec: the engine finds H.265 in the stream and switches to a transcode itself.
  await gw.addCamera('hevc3', { clip: 'h265-720p-1s' }, { codec: 'unknown' });

  const urls = await gw.view('hevc1');
  const { stdout } = await run('ffprobe', ['-v', 'error', '-select_streams', 'v:0', '-show_entries', 'stream=codec_name,height', '-of', 'csv=p=0', urls.hls]);
  t.same([...new Set(stdout.split('\n').filter(Boolean))], ['h264,360'], 'HLS carries H.264 at the configured height');
  t.equal(await decodeFrames(urls.flv, 10), 10, 'and FLV too (FLV cannot carry H.265)');
  t.match(gw.streams.list()[0], { transcoding: true, inputCodec: 'hevc' });

  const pidsBefore = await gw.ffmpegPids();
  const second = await gw.view('hevc2');
  const res = await fetch(second.hls);
  t.equal(res.status, 503);
  t.match(await res.json(), { code: 'GW_ERR_CAPACITY', message: /transcode.*streams\.transcode\.maxConcurrent/, params: { reason: 'transcode', limit: Number } });
  t.same(await gw.ffmpegPids(), pidsBefore, 'no process was started for it');

  const third = await gw.view('hevc3');
  const r3 = await fetch(third.hls);
  t.equal(r3.status, 502, 'an unregistered H.265 stream finds no free slot either');
  t.match(await r3.json(), { code: 'GW_ERR_CODEC_UNSUPPORTED', message: /H\.265.*transcode slots are busy/ });
  t.equal(gw.streams.stats().transcodes, 1, 'the failed one gave its slot back');
});

t.test('caps answer 503 (gateway, department) or 429 (user) and never start a process', async (t) => {
  // Each pull here is fetched once: a playlist poller's timeout long enough that none of them ends
  // while the test counts the processes, however slowly a busy machine gets through it.
  const gw = await startStreamingGateway(t, { limits: { sessions: 2, viewers: 100, viewersPerUser: 3, departmentPulls: { traffic: 1 } }, hls: { viewerTimeoutMs: 120_000 } });
  const dept = await gw.api('POST', '/api/departments', { token: gw.adminToken, body: { id: 'traffic', name: 'Traffic', parentId: 'root', level: 'city' } });
  t.equal(dept.status, 201);
  await gw.addCamera('t1', { clip: 'h264-720p-1s' }, { departmentId: 'traffic' });
  await gw.addCamera('t2', { clip: 'h264-720p-1s' }, { departmentId: 'traffic' });
  await gw.addCamera('r1', { clip: 'h264-720p-1s' });
  await gw.addCamera('r2', { clip: 'h264-720p-1s' });

  const t1 = await fetch((await gw.view('t1')).hls);
  t.equal(t1.status, 200);
  const t2 = await fetch((await gw.view('t2')).hls);
  t.equal(t2.status, 503, "the traffic department's one pull is in use");
  t.match(await t2.json(), { code: 'GW_ERR_CAPACITY', message: /department "traffic".*departmentPulls/, params: { reason: 'departmentPulls', department: 'traffic', limit: 1 } });

  const r1 = await fetch((await gw.view('r1')).hls);
  t.equal(r1.status, 200);
  const r2 = await fetch((await gw.view('r2')).hls);
  t.equal(r2.status, 503, 'the gateway-wide session cap');
  t.match(await r2.json(), { message: /streams\.limits\.sessions/ });
  t.equal((await gw.ffmpegPids()).length, 2, 'only the admitted pulls run');

  const op = await gw.userToken('op1', ['operator'], ['root']);
  for (let i = 0; i < 3; i++) t.equal((await fetch((await gw.view('r1', op)).hls)).status, 200, `operator viewing ${i + 1}`);
  const over = await fetch((await gw.view('r1', op)).hls);
  t.equal(over.status, 429, 'a fourth viewing by the same user');
  t.match(await over.json(), { code: 'GW_ERR_USER_QUOTA' });
  t.equal((await gw.ffmpegPids()).length, 2, 'the refused viewing started no process');
});

t.test('an admin lists live sessions and force-stops one; its viewers are told', async (t) => {
  const gw = await startStreamingGateway(t);
  await gw.addCamera('lobby', { clip: 'h264-720p-2s' });
  const urls = await gw.view('lobby');
  t.equal((await fetch(urls.hls)).status, 200);
  const list = await gw.api('GET', '/api/streams', { token: gw.adminToken });
  t.equal(list.status, 200);
  t.match(list.json.items[0], { cameraId: 'lobby', state: 'ready', readers: { hls: 1 }, inputCodec: 'h264', resolution: '1280x720' });
  const op = await gw.userToken('op2', ['operator'], ['root']);
  t.equal((await gw.api('GET', '/api/streams', { token: op })).status, 403, 'operators do not manage sessions');

  const stop = await gw.api('DELETE', `/api/streams/${list.json.items[0].id}`, { token: gw.adminToken });
  t.equal(stop.status, 204);
  t.same(await gw.ffmpegPids(), [], 'ffmpeg stopped with the session');
  const after = await fetch(urls.hls);
  t.equal(after.status, 503, 'the stopped viewing does not restart the stream');
  t.match(await after.json(), { code: 'GW_ERR_STREAM_CLOSED' });
  const audit = await gw.api('GET', '/api/audit?action=stream.stop', { token: await gw.userToken('aud', ['auditor'], ['root']) });
  t.match(audit.json.items?.[0] ?? audit.json, { action: 'stream.stop', target: 'lobby' });

  const metrics = (await gw.api('GET', '/metrics')).body;
  t.match(metrics, /wallgate_stream_start_seconds_count 1/);
  t.match(metrics, /wallgate_stream_bytes_out_total [1-9]/);
});

import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import t from 'tap';
import { ensureClip } from '../../../scripts/sim/clips.js';
import { pushRtmp } from '../../../scripts/sim/rtmp-push.js';
import { decodeFrames, startStreamingGateway, waitFor } from '../../helpers/streams.js';

const run = promisify(execFile);

t.test('an RTMP push source becomes a camera like any other; publishing and playing need signed URLs', async (t) => {
  const gw = await startStreamingGateway(t, { startTimeoutMs: 4_000 });
  const port = gw.ingest!.port;
  const created = await gw.api('POST', '/api/sources', {
    token: gw.adminToken,
    body: { id: 'drone-7', name: 'Drone 7', departmentId: 'root', protocol: 'rtmp-push', url: 'rtmp://gateway.example/push/drone7' },
  });
  t.equal(created.status, 201, created.body);
  const bad = await gw.api('POST', '/api/sources', {
    token: gw.adminToken,
    body: { id: 'drone-8', name: 'Drone 8', departmentId: 'root', protocol: 'rtmp-push', url: 'rtmp://gateway.example/live/../x' },
  });
  t.match(bad.json, { code: 'GW_ERR_VALIDATION', issues: [{ field: 'url', message: /push\/<name>/ }] });

  t.comment('nobody publishing yet: a viewer is told so');
  const early = await fetch((await gw.view('drone-7')).hls);
  t.equal(early.status, 502);
  t.match(await early.json(), { message: /nobody is publishing/ });

  const issued = await gw.api('POST', '/api/sources/drone-7/publish-url?ttlSec=3600', { token: gw.adminToken });
  t.equal(issued.status, 200);
  t.match(issued.json.url, /^rtmp:\/\/localhost:\d+\/push\/drone7\?sign=\d+-[0-9a-f]{32}$/);
  const publishUrl = issued.json.url.replace('localhost', '127.0.0.1');
  const clip = await ensureClip('h264-720p-1s');

  // Each refusal must be the ingest's signature check, named in the gateway's log, not any failure.
  const refusal = async (attempt: () => Promise<unknown>) => {
    const from = gw.logs.length;
    const outcome = await attempt();
    const refusedInLog = () => gw.logs.slice(from).map((l) => JSON.parse(l) as { msg: string }).find((l) => /authentication verification failed/.test(l.msg));
    const logged = await waitFor(refusedInLog, (l) => l !== undefined, 5_000, 20, 'the signature check refusal in the log');
    return { outcome, logged: logged!.msg };
  };
  const unsigned = await refusal(async () => {
    const push = pushRtmp(`rtmp://127.0.0.1:${port}/push/drone7`, clip, { quiet: true });
    t.teardown(() => push.close());
    return push.exited;
  });
  t.not(unsigned.outcome, 0, 'an unsigned publish fails');
  t.match(unsigned.logged, /^RTMP session \S+ \S+ push \/push\/drone7 error, publish stream \/push\/drone7 authentication verification failed$/, 'refused by the signature check');
  const forgedUrl = publishUrl.replace(/[0-9a-f]{32}$/, (h: string) => (h[0] === '0' ? '1' : '0') + h.slice(1));
  const forged = await refusal(async () => {
    const push = pushRtmp(forgedUrl, clip, { quiet: true });
    t.teardown(() => push.close());
    return push.exited;
  });
  t.not(forged.outcome, 0, 'a publish with a forged signature fails');
  t.match(forged.logged, /publish stream \/push\/drone7 authentication verification failed$/, 'refused by the signature check');

  const pusher = pushRtmp(publishUrl, clip);
  t.teardown(() => pusher.close());
  const urls = await gw.view('drone-7');
  t.equal(await decodeFrames(urls.hls, 25), 25, 'HLS of the pushed stream decodes');
  t.equal(await decodeFrames(urls.flv, 25), 25, 'and FLV');

  const outsider = await refusal(() =>
    run('ffmpeg', ['-v', 'error', '-rw_timeout', '3000000', '-i', `rtmp://127.0.0.1:${port}/push/drone7`, '-frames:v', '1', '-f', 'null', '-'], { timeout: 15_000 }).then(
      () => 'played',
      (err: { code?: number; killed?: boolean }) => (err.killed ? 'timed out' : `exit ${err.code}`),
    ),
  );
  t.match(outsider.outcome, /^exit [1-9]/, 'nobody plays the ingest directly without a signed URL');
  t.match(outsider.logged, /^RTMP session \S+ \S+ play \/push\/drone7 error, play stream \/push\/drone7 authentication verification failed$/, 'refused by the signature check');

  const unknown = await gw.api('POST', '/api/sources/nowhere/publish-url', { token: gw.adminToken });
  t.match(unknown, { status: 404, json: { code: 'GW_ERR_NOT_FOUND', message: /nowhere/ } }, 'an unregistered camera has no publish URL');
  const pulledCamera = await gw.api('POST', '/api/sources', {
    token: gw.adminToken,
    body: { id: 'mast-3', name: 'Mast 3', departmentId: 'root', url: 'rtsp://10.1.0.3:554/stream1' },
  });
  t.equal(pulledCamera.status, 201, pulledCamera.body);
  const pulled = await gw.api('POST', '/api/sources/mast-3/publish-url', { token: gw.adminToken });
  t.match(pulled, { status: 409, json: { code: 'GW_ERR_CONFLICT', message: 'camera "mast-3" is pulled, not pushed (its protocol is rtsp)' } }, 'a pulled camera has none either');
  const audit = await gw.api('GET', '/api/audit?action=source.publish-url', { token: await gw.userToken('aud', ['auditor'], ['root']) });
  t.match(JSON.stringify(audit.json), /drone-7/, 'issuing a publish URL is audited');
  await pusher.close();
});

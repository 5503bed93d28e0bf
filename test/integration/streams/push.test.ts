import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import t from 'tap';
import { ensureClip } from '../../../scripts/sim/clips.js';
import { pushRtmp } from '../../../scripts/sim/rtmp-push.js';
import { decodeFrames, startStreamingGateway } from '../../helpers/streams.js';

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

  const unsigned = pushRtmp(`rtmp://127.0.0.1:${port}/push/drone7`, clip);
  t.teardown(() => unsigned.close());
  t.not(await unsigned.exited, 0, 'an unsigned publish is refused');

  const pusher = pushRtmp(publishUrl, clip);
  t.teardown(() => pusher.close());
  const urls = await gw.view('drone-7');
  t.equal(await decodeFrames(urls.hls, 25), 25, 'HLS of the pushed stream decodes');
  t.equal(await decodeFrames(urls.flv, 25), 25, 'and FLV');

  const outsider = await run('ffmpeg', ['-v', 'error', '-rw_timeout', '3000000', '-i', `rtmp://127.0.0.1:${port}/push/drone7`, '-frames:v', '1', '-f', 'null', '-'], { timeout: 15_000 })
    .then(() => 'played')
    .catch(() => 'refused');
  t.equal(outsider, 'refused', 'nobody plays the ingest directly without a signed URL');

  const pulled = await gw.api('POST', '/api/sources/plain/publish-url', { token: gw.adminToken });
  t.equal(pulled.status, 404);
  const audit = await gw.api('GET', '/api/audit?action=source.publish-url', { token: await gw.userToken('aud', ['auditor'], ['root']) });
  t.match(JSON.stringify(audit.json), /drone-7/, 'issuing a publish URL is audited');
  await pusher.close();
});

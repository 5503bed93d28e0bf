import { randomBytes } from 'node:crypto';
import { chmodSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { jpegSize } from '../../../gateway/src/snapshots/decoder.js';
import { CameraSimulator } from '../../../scripts/sim/rtsp-server.js';
import { tempDir } from '../../helpers/gateway.js';
import { adminLogin, ffmpegChildren, gatewayApi, noProcessLeft, spawnGateway } from '../../helpers/process.js';

const PASSWORD = 'decoder-must-not-see-this';

t.test("a snapshot decoder sees neither the camera's URL and password nor the gateway's keys, and goes with its request", async (t) => {
  // An ffmpeg that records each invocation's arguments and environment, then runs the real one.
  const spy = tempDir(t, 'wallgate-ffmpeg-spy-');
  const wrapper = join(spy, 'ffmpeg');
  writeFileSync(wrapper, `#!/bin/sh\nprintf '%s\\n' "$*" > "${spy}/args.$$"\nenv > "${spy}/env.$$"\nexec ffmpeg "$@"\n`);
  chmodSync(wrapper, 0o755);
  const tokenKey = randomBytes(32).toString('base64');
  const credentialKey = randomBytes(32).toString('base64');

  const sim = await CameraSimulator.start();
  t.teardown(() => sim.close());
  sim.addCamera('gate', { clip: 'h264-720p-1s', auth: { scheme: 'digest', username: 'ops', password: PASSWORD } });
  const dataDir = tempDir(t);
  const gw = await spawnGateway(t, dataDir, {
    WALLGATE_STREAMS_FFMPEG_PATH: wrapper,
    WALLGATE_SECRETS_TOKEN_KEY: tokenKey,
    WALLGATE_SECRETS_CREDENTIAL_KEY: credentialKey,
    WALLGATE_STREAMS_SNAPSHOTS_LINGER_MS: '0',
  });
  const token = await adminLogin(gw.baseUrl, gw.adminPassword!);
  const created = await gatewayApi(gw.baseUrl, token, 'POST', '/api/sources', { id: 'gate', name: 'Gate', departmentId: 'root', url: sim.url('gate', true), codec: 'h264' });
  t.equal(created.status, 201);

  const res = await fetch(`${gw.baseUrl}/api/streams/gate/snapshot.jpg?width=320`, { headers: { authorization: `Bearer ${token}` } });
  t.equal(res.status, 200);
  t.same(jpegSize(Buffer.from(await res.arrayBuffer())), { width: 320, height: 180 });

  const runs = readdirSync(spy)
    .filter((f) => f.startsWith('args.'))
    .map((f) => ({ args: readFileSync(join(spy, f), 'utf8'), env: readFileSync(join(spy, f.replace('args.', 'env.')), 'utf8') }));
  const decoders = runs.filter((r) => r.args.includes('image2pipe'));
  t.equal(decoders.length, 1, 'one decoder ran, through the configured ffmpeg');
  t.match(decoders[0]!.args, /-f flv .*-i pipe:0 .* pipe:1/, 'fed on stdin, writing to stdout');
  for (const run of decoders) {
    t.notMatch(run.args, /rtsp:|ops|decoder-must-not-see-this/, 'no camera URL, user or password on its command line');
    t.notOk(run.env.includes(tokenKey) || run.env.includes(credentialKey), "the gateway's keys are not in its environment");
    t.notOk(run.env.includes(PASSWORD), 'nor the camera password');
  }
  t.ok(runs.some((r) => r.args.includes('concat')), 'the pull ran through it too (its credentials on stdin)');

  // The pull lingers 0 ms: once it has gone, only the gateway is left, with no ffmpeg at all.
  const deadline = Date.now() + 10_000;
  while ((await ffmpegChildren(gw.child.pid!)).length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  t.same(await ffmpegChildren(gw.child.pid!), [], 'neither the pull nor the decoder outlives the snapshot');
  gw.child.kill('SIGTERM');
  t.equal((await gw.exited).code, 0);
  await noProcessLeft(t, dataDir, []);
});

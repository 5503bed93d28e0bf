import { randomBytes } from 'node:crypto';
import { chmodSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { jpegSize } from '../../../gateway/src/snapshots/decoder.js';
import { CameraSimulator } from '../../../scripts/sim/rtsp-server.js';
import { tempDir } from '../../helpers/gateway.js';
import { adminLogin, ffmpegChildren, gatewayApi, noProcessLeft, spawnGateway } from '../../helpers/process.js';
import { waitFor } from '../../helpers/streams.js';

const PASSWORD = 'decoder-must-not-see-this';

t.test("a snapshot decoder sees neither the camera's URL and password nor the gateway's keys, and goes with its request", async (t) => {
  // An ffmpeg that records each invocation's arguments and environment, then runs the real one.
  const spy = tempDir(t, 'wallgate-ffmpeg-spy-');
  const wrapper = join(spy, 'ffmpeg');
  // The environment first: the arguments' file is what the test looks for.
  writeFileSync(wrapper, `#!/bin/sh\nenv > "${spy}/env.$$"\nprintf '%s\\n' "$*" > "${spy}/args.$$"\nexec ffmpeg "$@"\n`);
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

  const invocations = () =>
    readdirSync(spy)
      .filter((f) => f.startsWith('args.'))
      .map((f) => ({ pid: Number(f.slice('args.'.length)), args: readFileSync(join(spy, f), 'utf8'), env: readFileSync(join(spy, f.replace('args.', 'env.')), 'utf8') }));
  // The spare is started once the picture is answered.
  const imageDecoders = () => invocations().filter((r) => r.args.includes('image2pipe'));
  await waitFor(() => imageDecoders().length, (n) => n === 2, 10_000, 50, 'the spare decoder to start');
  const runs = invocations();
  const decoders = imageDecoders();
  // The one that decoded, and the spare it left for the next picture of this width.
  t.equal(decoders.length, 2, 'the decoder and its spare ran through the configured ffmpeg');
  t.match(decoders[0]!.args, /-f flv .*-i pipe:0 .* pipe:1/, 'fed on stdin, writing to stdout');
  for (const run of decoders) {
    t.notMatch(run.args, /rtsp:|ops|decoder-must-not-see-this/, 'no camera URL, user or password on its command line');
    t.notOk(run.env.includes(tokenKey) || run.env.includes(credentialKey), "the gateway's keys are not in its environment");
    t.notOk(run.env.includes(PASSWORD), 'nor the camera password');
  }
  t.ok(runs.some((r) => r.args.includes('concat')), 'the pull ran through it too (its credentials on stdin)');

  // The pull lingers 0 ms: once it has gone, only the spare decoder is left, waiting on stdin.
  const spares = decoders.map((r) => r.pid);
  const left = async () => (await ffmpegChildren(gw.child.pid!)).filter((pid) => !spares.includes(pid));
  t.same(await waitFor(left, (pids) => pids.length === 0, 10_000, 100, 'the pull and the decoder to exit'), [], 'neither the pull nor the decoder outlives the snapshot');
  t.equal((await ffmpegChildren(gw.child.pid!)).length, 1, 'one spare decoder waits for the next picture');
  gw.child.kill('SIGTERM');
  t.equal((await gw.exited).code, 0);
  await noProcessLeft(t, dataDir, []);
});

import t from 'tap';
import { defaultConfig } from '../../../gateway/src/config/load.js';
import { classifyFailure } from '../../../gateway/src/streams/failure.js';
import { redact } from '../../../gateway/src/streams/process/ffmpeg-process.js';
import { pushFailure } from '../../../gateway/src/streams/sources/rtmp-push.js';

const cfg = defaultConfig().streams;
const exit = (code: number | null, reason: string | null = null) => ({ code, signal: null, reason });

t.test("ffmpeg's last words become the error a viewer reads", async (t) => {
  const cases: [string, string[], string, RegExp][] = [
    ['auth', ['[rtsp @ 0x1] method DESCRIBE failed: 401 Unauthorized', 'pipe:0: Server returned 401 Unauthorized (authorization failed)'], 'GW_ERR_CAMERA_AUTH', /refused the user name or password/],
    ['refused', ['[tcp @ 0x2] Connection to tcp://10.0.0.9:554?timeout=0 failed: Connection refused', 'pipe:0: Connection refused'], 'GW_ERR_CAMERA_UNREACHABLE', /unreachable: pipe:0: Connection refused/],
    ['no stream', ['[rtsp @ 0x3] method DESCRIBE failed: 404 Not Found'], 'GW_ERR_CAMERA_UNREACHABLE', /no stream at this path/],
    ['no video', ["Stream map '0:v:0' matches no streams."], 'GW_ERR_CAMERA_NO_VIDEO', /no video track/],
    ['codec', ['[concat @ 0x4] Decoder (codec none) not found for input stream #0:0'], 'GW_ERR_CODEC_UNSUPPORTED', /codec is not supported/],
  ];
  for (const [what, tail, code, message] of cases) {
    const e = classifyFailure(exit(1), tail, false, cfg);
    t.equal(e.code, code, what);
    t.match(e.message, message, what);
    t.notMatch(e.message, /0x[0-9a-f]+\]/, `${what}: no "[demuxer @ 0x…]" noise`);
  }
  t.match(classifyFailure(exit(255, 'start timeout'), [], false, cfg), { code: 'GW_ERR_STREAM_TIMEOUT', message: /no video within 10000 ms/ });
  t.match(classifyFailure(exit(255, 'stalled: no video for 5200 ms'), [], true, cfg), { code: 'GW_ERR_CAMERA_UNREACHABLE', message: /stalled/ });
  t.match(classifyFailure(exit(0), ['video:120kB audio:0kB'], true, cfg), { message: 'the camera closed the stream' });
  t.match(pushFailure(exit(1), ['pipe:0: Input/output error'], false, cfg), { message: /nobody is publishing/ }, 'a push camera nobody publishes to');
  t.match(pushFailure(exit(255, 'start timeout'), [], false, cfg), { message: /nobody is publishing/ });
  t.match(pushFailure(exit(255, 'stalled: no video for 5200 ms'), [], true, cfg), { message: /stalled/ }, 'a publisher that stops is a stall like any');
});

t.test('redaction removes a password in every form ffmpeg may print it', async (t) => {
  const pw = 'p@ss:w/rd%1';
  const line = `Impossible to open 'rtsp://admin:${encodeURIComponent(pw)}@10.0.0.1/x' and ${pw} and rtsp://u:other@h/`;
  const out = redact(line, [pw]);
  t.notOk(out.includes(pw) || out.includes(encodeURIComponent(pw)) || out.includes('other'), out);
  t.match(out, /rtsp:\/\/admin:\*\*\*@10\.0\.0\.1/);
});

import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import t, { type Test } from 'tap';
import { ensureClip } from '../../../scripts/sim/clips.js';
import { CameraSimulator } from '../../../scripts/sim/rtsp-server.js';

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Runs a tool to completion; a non-zero exit is a result here, not an exception. */
function run(cmd: 'ffmpeg' | 'ffprobe', args: string[], timeoutMs = 20_000): Promise<Run> {
  const started = performance.now();
  return new Promise((resolve) => {
    execFile(cmd, [...(cmd === 'ffmpeg' ? ['-hide_banner', '-nostdin'] : ['-hide_banner']), ...args],
      { timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 16 << 20 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : null) : 0;
        resolve({ code, stdout, stderr, ms: performance.now() - started });
      });
  });
}

/** `-frames:v n` decoded from a camera; the frame count comes from -progress. */
async function decode(url: string, frames: number, transport: 'tcp' | 'udp' = 'tcp'): Promise<Run & { frames: number }> {
  const r = await run('ffmpeg', ['-v', 'error', '-rtsp_transport', transport, '-timeout', '5000000', '-i', url,
    '-frames:v', String(frames), '-progress', 'pipe:1', '-nostats', '-f', 'null', '-']);
  return { ...r, frames: lastFrame(r.stdout) };
}

function lastFrame(progress: string): number {
  const all = [...progress.matchAll(/^frame=(\d+)$/gm)];
  return Number(all[all.length - 1]?.[1] ?? 0);
}

async function probe(url: string): Promise<{ codec_name?: string; width?: number; height?: number } | null> {
  const r = await run('ffprobe', ['-v', 'error', '-rtsp_transport', 'tcp', '-timeout', '5000000',
    '-select_streams', 'v', '-show_entries', 'stream=codec_name,width,height', '-of', 'json', url]);
  if (r.code !== 0) return null;
  const parsed = JSON.parse(r.stdout) as { streams?: { codec_name?: string; width?: number; height?: number }[] };
  return parsed.streams?.[0] ?? null;
}

/** Video packet pts (90 kHz) of the first `count` packets of a camera. */
async function packetPts(url: string, count: number): Promise<number[]> {
  const r = await run('ffprobe', ['-v', 'error', '-rtsp_transport', 'tcp', '-select_streams', 'v',
    '-show_entries', 'packet=pts', '-read_intervals', `%+#${count}`, '-of', 'json', url]);
  const parsed = JSON.parse(r.stdout || '{}') as { packets?: { pts?: number }[] };
  return (parsed.packets ?? []).flatMap((p) => (typeof p.pts === 'number' ? [p.pts] : []));
}

async function startSim(t: Test): Promise<CameraSimulator> {
  const sim = await CameraSimulator.start();
  t.teardown(() => sim.close());
  return sim;
}

/** A long-running ffmpeg client, killed at teardown if still alive. */
function spawnClient(t: Test, args: string[]): { child: ChildProcess; exited: Promise<number | null>; progress: () => number } {
  const child = spawn('ffmpeg', ['-hide_banner', '-nostdin', '-v', 'error', ...args], { stdio: ['ignore', 'pipe', 'ignore'] });
  let out = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => {
    // Keep only the tail: the newest progress block is what matters.
    out = (out + d).slice(-4096);
  });
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
  });
  return { child, exited, progress: () => lastFrame(out) };
}

async function until(what: string, cond: () => boolean, timeoutMs = 15_000): Promise<void> {
  const end = performance.now() + timeoutMs;
  while (!cond()) {
    if (performance.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

t.before(async () => {
  // First run encodes into the cache; later runs read the files.
  await Promise.all([ensureClip('h264-720p-1s'), ensureClip('h265-720p-1s')]);
});

t.test('ffprobe over RTSP/TCP sees an H.264 1280x720 stream', async (t) => {
  const sim = await startSim(t);
  sim.addCamera('a', { clip: 'h264-720p-1s' });
  const s = await probe(sim.url('a'));
  t.same(s, { codec_name: 'h264', width: 1280, height: 720 });
  t.equal(sim.stats().perCamera.a?.describes, 1);
});

t.test('ffmpeg decodes frames over TCP and over UDP', async (t) => {
  const sim = await startSim(t);
  sim.addCamera('a', { clip: 'h264-720p-1s' });
  const [tcp, udp] = await Promise.all([decode(sim.url('a'), 25, 'tcp'), decode(sim.url('a'), 25, 'udp')]);
  t.equal(tcp.code, 0, 'tcp exit', { stderr: tcp.stderr });
  t.equal(tcp.frames, 25, 'tcp frames');
  t.equal(udp.code, 0, 'udp exit', { stderr: udp.stderr });
  t.equal(udp.frames, 25, 'udp frames');
});

t.test('auth: digest rejects a wrong password and accepts the right one; basic works', async (t) => {
  const sim = await startSim(t);
  sim.addCamera('d', { clip: 'h264-720p-1s', auth: { scheme: 'digest', username: 'op', password: 's3cret' } });
  sim.addCamera('b', { clip: 'h264-720p-1s', auth: { scheme: 'basic', username: 'op', password: 's3cret' } });
  const wrong = sim.url('d').replace('rtsp://', 'rtsp://op:nope@');
  t.equal(sim.url('d', true), sim.url('d').replace('rtsp://', 'rtsp://op:s3cret@'));
  const [bad, none, digest, basic] = await Promise.all([
    decode(wrong, 5),
    decode(sim.url('d'), 5),
    decode(sim.url('d', true), 5),
    decode(sim.url('b', true), 5),
  ]);
  t.not(bad.code, 0, 'wrong password fails');
  t.match(bad.stderr, /401/);
  t.match(none.stderr, /401/, 'no credentials');
  t.equal(digest.frames, 5, 'digest', { stderr: digest.stderr });
  t.equal(basic.frames, 5, 'basic', { stderr: basic.stderr });
});

t.test('an H.265 camera decodes as hevc', async (t) => {
  const sim = await startSim(t);
  sim.addCamera('h', { clip: 'h265-720p-1s' });
  t.same(await probe(sim.url('h')), { codec_name: 'hevc', width: 1280, height: 720 });
  const r = await decode(sim.url('h'), 10);
  t.equal(r.frames, 10, 'hevc frames', { stderr: r.stderr });
});

t.test('unknown cameras are 404; /auto/<clip>/<any> needs no registration', async (t) => {
  const sim = await startSim(t);
  const missing = await run('ffprobe', ['-v', 'error', '-rtsp_transport', 'tcp', `rtsp://127.0.0.1:${sim.port}/cam/nope`]);
  t.match(missing.stderr, /404/);
  const auto = `rtsp://127.0.0.1:${sim.port}/auto/h265-720p-1s/bench-17`;
  t.same(await probe(auto), { codec_name: 'hevc', width: 1280, height: 720 });
  t.equal(sim.stats().perCamera['auto/h265-720p-1s/bench-17']?.describes, 1);
});

t.test('refuse fails fast; drop ends a running pull and recovers after forMs', async (t) => {
  const sim = await startSim(t);
  sim.addCamera('r', { clip: 'h264-720p-1s' });
  sim.addCamera('x', { clip: 'h264-720p-1s' });
  sim.setFault('r', { kind: 'refuse' });
  const refused = await decode(sim.url('r'), 5);
  t.not(refused.code, 0);
  t.ok(refused.ms < 3000, `refused in ${refused.ms.toFixed(0)} ms`);
  sim.clearFault('r');
  t.equal((await decode(sim.url('r'), 5)).frames, 5, 'serves again once cleared');

  const pull = spawnClient(t, ['-rtsp_transport', 'tcp', '-timeout', '3000000', '-i', sim.url('x'), '-c', 'copy', '-f', 'null', '-']);
  await until('x playing', () => sim.stats().perCamera.x?.playing === 1);
  const dropped = performance.now();
  sim.setFault('x', { kind: 'drop', forMs: 2000 });
  await pull.exited;
  const endedMs = performance.now() - dropped;
  t.ok(endedMs < 2500, `running ffmpeg ended ${endedMs.toFixed(0)} ms after the drop`);
  const during = await decode(sim.url('x'), 5);
  t.not(during.code, 0, 'refused during the drop window');
  await sleep(Math.max(0, 2100 - (performance.now() - dropped)));
  const after = await decode(sim.url('x'), 5);
  t.equal(after.frames, 5, 'connects again after forMs');
});

t.test('stall: no answers to new requests; playing sessions get no media but stay connected', async (t) => {
  const sim = await startSim(t);
  sim.addCamera('s', { clip: 'h264-720p-1s' });
  const pull = spawnClient(t, ['-rtsp_transport', 'tcp', '-i', sim.url('s'), '-c', 'copy', '-f', 'null', '-']);
  await until('s playing', () => sim.stats().perCamera.s?.playing === 1);
  sim.setFault('s', { kind: 'stall' });
  await sleep(100);
  const bytes = sim.stats().perCamera.s?.bytesSent;
  const stalled = await run('ffmpeg', ['-v', 'error', '-rtsp_transport', 'tcp', '-timeout', '2000000', '-i', sim.url('s'), '-frames:v', '1', '-f', 'null', '-']);
  t.not(stalled.code, 0);
  t.ok(stalled.ms < 6000, `stalled request failed after ${stalled.ms.toFixed(0)} ms`);
  const st = sim.stats();
  t.equal(st.perCamera.s?.bytesSent, bytes, 'no media while stalled');
  t.equal(st.perCamera.s?.playing, 1, 'the playing session stays connected');
  t.equal(pull.child.exitCode, null);
  sim.clearFault('s');
  await until('media again', () => (sim.stats().perCamera.s?.bytesSent ?? 0) > (bytes ?? 0), 3000);
});

t.test('RTP timestamps continue across the loop boundary and jump only when told to', async (t) => {
  const sim = await startSim(t);
  sim.addCamera('loop', { clip: 'h264-720p-1s' });
  sim.addCamera('jump', { clip: 'h264-720p-1s' });
  // 150 frames = 6 s of a 4 s clip: at least one wrap whatever the join point.
  const loop = packetPts(sim.url('loop'), 150);
  const jump = packetPts(sim.url('jump'), 75);
  await until('jump playing', () => sim.stats().perCamera.jump?.playing === 1);
  await sleep(1000);
  sim.setFault('jump', { kind: 'jump', ms: 5000 });

  const pts = await loop;
  t.ok(pts.length >= 140, `${pts.length} packets`);
  const steps = pts.slice(1).map((p, i) => p - pts[i]!);
  t.same(steps.filter((d) => d !== 3600), [], 'every step is 40 ms (3600 at 90 kHz)');

  const jpts = await jump;
  const jsteps = jpts.slice(1).map((p, i) => p - jpts[i]!);
  t.same(jsteps.filter((d) => d !== 3600), [3600 + 5000 * 90], 'one discontinuity of the jump size');
});

t.test('the RTSP parser copes with split, pipelined, malformed and oversized input', async (t) => {
  const sim = await startSim(t);
  sim.addCamera('p', { clip: 'h264-720p-1s' });
  sim.addCamera('pad', { clip: 'h264-720p-1s' });
  const base = sim.url('p');

  const talk = async (chunks: string[], waitFor: RegExp | 'close'): Promise<{ text: string; closed: boolean }> => {
    const sock: Socket = connect(sim.port, '127.0.0.1');
    t.teardown(() => sock.destroy());
    let text = '';
    let closed = false;
    sock.setEncoding('latin1').on('data', (d: string) => (text += d));
    sock.on('close', () => (closed = true));
    sock.on('error', () => {});
    for (const c of chunks) {
      sock.write(c);
      await sleep(20);
    }
    await until(String(waitFor), () => (waitFor === 'close' ? closed : waitFor.test(text)), 5000);
    sock.destroy();
    return { text, closed };
  };

  const split = await talk([`OPTIONS ${base} RT`, 'SP/1.0\r\nCSe', 'q: 1\r\n', '\r\n'], /\r\n\r\n/);
  t.match(split.text, /^RTSP\/1\.0 200 OK\r\nCSeq: 1\r\n/);

  const piped = await talk([
    `OPTIONS ${base} RTSP/1.0\r\nCSeq: 1\r\n\r\n$\x01\x00\x04abcdGET_PARAMETER ${base} RTSP/1.0\r\nCSeq: 2\r\n\r\n` +
      `FOO ${base} RTSP/1.0\r\nCSeq: 3\r\n\r\nDESCRIBE ${base} RTSP/1.0\r\nCSeq: 4\r\nAccept: application/sdp\r\n\r\n`,
  ], /CSeq: 4[\s\S]*a=control:trackID=0/);
  const statuses = [...piped.text.matchAll(/RTSP\/1\.0 (\d+)[^\r]*\r\nCSeq: (\d+)/g)].map((m) => `${m[2]}:${m[1]}`);
  t.same(statuses, ['1:200', '2:200', '3:501', '4:200'], 'in order, interleaved data skipped');
  t.match(piped.text, /a=rtpmap:96 H264\/90000/);
  t.match(piped.text, /a=fmtp:96 packetization-mode=1;profile-level-id=[0-9a-f]{6};sprop-parameter-sets=\S+,\S+/);
  t.match(piped.text, /Content-Base: rtsp:\/\/127\.0\.0\.1:\d+\/cam\/p\/\r\n/);

  t.match((await talk(['HELLO\r\n\r\n'], /\r\n\r\n/)).text, /^RTSP\/1\.0 400 /);
  t.ok((await talk([`OPTIONS ${base} RTSP/1.0\r\nX: ${'a'.repeat(20_000)}`], 'close')).closed, 'header bound closes');

  // ffmpeg answers Digest without qop; other clients send qop=auth, which must work too.
  sim.addCamera('dq', { clip: 'h264-720p-1s', auth: { scheme: 'digest', username: 'op', password: 'pw' } });
  const dq = sim.url('dq');
  const challenge = await talk([`DESCRIBE ${dq} RTSP/1.0\r\nCSeq: 1\r\n\r\n`], /\r\n\r\n/);
  t.match(challenge.text, /^RTSP\/1\.0 401 [\s\S]*WWW-Authenticate: Digest realm="wallgate-sim", nonce="/);
  const nonce = /nonce="([^"]+)"/.exec(challenge.text)?.[1] ?? '';
  const md5 = (x: string) => createHash('md5').update(x).digest('hex');
  const digestWith = (password: string) => {
    const ha1 = md5(`op:wallgate-sim:${password}`);
    const response = md5(`${ha1}:${nonce}:00000001:c0ffee:auth:${md5(`DESCRIBE:${dq}`)}`);
    return `Digest username="op", realm="wallgate-sim", nonce="${nonce}", uri="${dq}", qop=auth, nc=00000001, cnonce="c0ffee", response="${response}"`;
  };
  const ok = await talk([`DESCRIBE ${dq} RTSP/1.0\r\nCSeq: 2\r\nAuthorization: ${digestWith('pw')}\r\n\r\n`], /\r\n\r\n[\s\S]*trackID=0/);
  t.match(ok.text, /^RTSP\/1\.0 200 /, 'qop=auth accepted');
  const no = await talk([`DESCRIBE ${dq} RTSP/1.0\r\nCSeq: 3\r\nAuthorization: ${digestWith('nope')}\r\n\r\n`], /\r\n\r\n/);
  t.match(no.text, /^RTSP\/1\.0 401 /, 'qop=auth with a wrong password refused');

  sim.setFault('pad', { kind: 'oversized-headers', bytes: 5000 });
  const padded = await talk([`OPTIONS ${sim.url('pad')} RTSP/1.0\r\nCSeq: 9\r\n\r\n`], /\r\n\r\n/);
  t.match(padded.text, new RegExp(`X-Sim-Padding: x{5000}\\r\\n`));
});

t.test('40 cameras with a connected ffmpeg each: all advance, the simulator stays cheap', async (t) => {
  const sim = await startSim(t);
  const names = Array.from({ length: 40 }, (_, i) => `c${i}`);
  for (const n of names) sim.addCamera(n, { clip: 'h264-720p-1s' });
  const clients = names.map((n) =>
    spawnClient(t, ['-rtsp_transport', 'tcp', '-i', sim.url(n), '-c', 'copy', '-progress', 'pipe:1', '-stats_period', '0.5', '-f', 'null', '-']),
  );
  await until('40 playing', () => sim.stats().playing === 40, 30_000);
  await sleep(1000);

  const bytes0 = sim.stats().perCamera;
  const frames0 = clients.map((c) => c.progress());
  const cpu0 = process.cpuUsage();
  const wall0 = performance.now();
  await sleep(5000);
  const cpu = process.cpuUsage(cpu0);
  const wallMs = performance.now() - wall0;
  const bytes1 = sim.stats().perCamera;
  const frames1 = clients.map((c) => c.progress());

  const stuck = names.filter((n, i) => (bytes1[n]?.bytesSent ?? 0) <= (bytes0[n]?.bytesSent ?? 0) || frames1[i]! - frames0[i]! < 75);
  t.same(stuck, [], 'every camera sent media and every client counted >= 75 frames in 5 s');
  const cpuPct = ((cpu.user + cpu.system) / 1000 / wallMs) * 100;
  const mbit = names.reduce((n, k) => n + (bytes1[k]!.bytesSent - bytes0[k]!.bytesSent), 0) * 8 / 1e6 / (wallMs / 1000);
  t.comment(`simulator CPU for 40 cameras at 25 fps: ${cpuPct.toFixed(1)}% of one core (${mbit.toFixed(0)} Mbit/s sent)`);
  t.ok(cpuPct < 50, 'well under one core');
});

import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t, { type Test } from 'tap';
import { defaultConfig } from '../../../gateway/src/config/load.js';
import { tempDir } from '../../helpers/gateway.js';
import { allCommandLines, decodeFrames, startStreamingGateway, waitFor, type StreamingGateway } from '../../helpers/streams.js';

const run = promisify(execFile);
const SEGMENT_SEC = 1;
const PASSWORD = 'hls-pass-8841';

/** 40 one-second segments of a small H.264 test pattern, encoded once for the file. */
async function encodeSegments(dir: string): Promise<number> {
  await run('ffmpeg', [
    '-hide_banner', '-loglevel', 'error', '-f', 'lavfi', '-i', 'testsrc=size=320x240:rate=25', '-t', '40',
    '-c:v', 'libx264', '-preset', 'ultrafast', '-g', '25', '-keyint_min', '25', '-sc_threshold', '0', '-pix_fmt', 'yuv420p',
    '-f', 'hls', '-hls_time', String(SEGMENT_SEC), '-hls_list_size', '0', '-hls_segment_filename', join(dir, 'seg%d.ts'), join(dir, 'vod.m3u8'),
  ], { timeout: 60_000 });
  await run('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-i', join(dir, 'vod.m3u8'), '-c', 'copy', '-f', 'flv', join(dir, 'cam.flv')], { timeout: 60_000 });
  return readFileSync(join(dir, 'vod.m3u8'), 'utf8').match(/^seg\d+\.ts$/gm)!.length;
}

/** A live sliding window over the segments, as a camera's HLS endpoint serves it; `uri` says where each segment is. */
function livePlaylist(startedAt: number, total: number, uri: (n: number) => string): string {
  const newest = Math.min(total - 1, 2 + Math.floor((Date.now() - startedAt) / (SEGMENT_SEC * 1000)));
  const first = Math.max(0, newest - 2);
  const lines = ['#EXTM3U', '#EXT-X-VERSION:3', `#EXT-X-TARGETDURATION:${SEGMENT_SEC}`, `#EXT-X-MEDIA-SEQUENCE:${first}`];
  for (let n = first; n <= newest; n++) lines.push(`#EXTINF:${SEGMENT_SEC}.000,`, uri(n));
  return lines.join('\n') + '\n';
}

const REALM = 'IP Camera(C4012)';
const NONCE = 'dcd98b7102dd2f0e8b11d0f600bfb0c093';
const md5 = (s: string) => createHash('md5').update(s).digest('hex');

/** Checks an Authorization header against the camera's Digest challenge (qop=auth, MD5), as a Hikvision camera does. */
function digestValid(header: string | undefined, path: string): boolean {
  if (!header?.startsWith('Digest ')) return false;
  const p = Object.fromEntries([...header.matchAll(/(\w+)=(?:"([^"]*)"|([^,\s]*))/g)].map((m) => [m[1], m[2] ?? m[3]]));
  const expected = md5(`${md5(`cam:${REALM}:${PASSWORD}`)}:${NONCE}:${p.nc}:${p.cnonce}:auth:${md5(`GET:${path}`)}`);
  return p.username === 'cam' && p.realm === REALM && p.nonce === NONCE && p.uri === path && p.qop === 'auth' && p.response === expected;
}

async function listen(server: Server, host: string): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  return (server.address() as AddressInfo).port;
}

interface Setup {
  gw: StreamingGateway;
  /** Connections the forbidden listener accepted. */
  forbiddenConnections(): number;
  allowedUrl: string;
  forbiddenUrl: string;
  /** Basic auth headers the camera saw, by path. */
  authSeen: Map<string, string | undefined>;
}

async function setup(t: Test): Promise<Setup> {
  const dir = tempDir(t, 'wallgate-hls-');
  const total = await encodeSegments(dir);
  const startedAt = Date.now();
  // 127.0.0.2 stands for a network the policy denies; it is loopback, so a connection to it would be seen here.
  const forbidden = createServer((req, res) => res.end(readFileSync(join(dir, 'seg0.ts'))));
  let connections = 0;
  forbidden.on('connection', () => connections++);
  const forbiddenUrl = `http://127.0.0.2:${await listen(forbidden, '127.0.0.2')}`;
  t.teardown(() => forbidden.close());

  const authSeen = new Map<string, string | undefined>();
  const camera = createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0]!;
    authSeen.set(path, req.headers.authorization);
    const segment = /^\/(?:good\/|digest\/)?(seg\d+\.ts)$/.exec(path);
    if (path.startsWith('/digest/') && !digestValid(req.headers.authorization, req.url ?? '')) {
      return void res.writeHead(401, { 'www-authenticate': `Basic realm="${REALM}", Digest realm="${REALM}", qop="auth", nonce="${NONCE}", algorithm=MD5, stale=FALSE` }).end();
    }
    if (path === '/digest/live.m3u8') return void res.writeHead(200).end(livePlaylist(startedAt, total, (n) => `seg${n}.ts`));
    if (path === '/good/live.m3u8') {
      if (req.headers.authorization !== `Basic ${Buffer.from(`cam:${PASSWORD}`).toString('base64')}`) return void res.writeHead(401).end();
      return void res.writeHead(200, { 'content-type': 'application/vnd.apple.mpegurl' }).end(livePlaylist(startedAt, total, (n) => `seg${n}.ts`));
    }
    if (segment) return void res.writeHead(200, { 'content-type': 'video/mp2t' }).end(readFileSync(join(dir, segment[1]!)));
    if (path === '/cam.flv') {
      // A live HTTP-FLV stream: the file trickles out, as a camera's would.
      const flv = readFileSync(join(dir, 'cam.flv'));
      res.writeHead(200, { 'content-type': 'video/x-flv' });
      let at = 0;
      const timer = setInterval(() => {
        if (at >= flv.length || res.destroyed) return void (clearInterval(timer), res.end());
        res.write(flv.subarray(at, (at += 16_384)));
      }, 20);
      res.on('close', () => clearInterval(timer));
      return;
    }
    if (path === '/redirect/cam.flv') return void res.writeHead(307, { location: `${forbiddenUrl}/cam.flv` }).end();
    if (path === '/redirect/live.m3u8') return void res.writeHead(302, { location: `${forbiddenUrl}/live.m3u8` }).end();
    if (path === '/hop/live.m3u8') return void res.writeHead(301, { location: '/redirect/live.m3u8' }).end();
    if (path === '/elsewhere/live.m3u8') return void res.writeHead(200).end(livePlaylist(startedAt, total, (n) => `${forbiddenUrl}/seg${n}.ts`));
    if (path === '/files/live.m3u8') return void res.writeHead(200).end(livePlaylist(startedAt, total, (n) => `file://${join(dir, `seg${n}.ts`)}`));
    if (path === '/keyed/live.m3u8') {
      return void res.writeHead(200).end(livePlaylist(startedAt, total, (n) => `seg${n}.ts`).replace('#EXT-X-MEDIA-SEQUENCE', `#EXT-X-KEY:METHOD=AES-128,URI="${forbiddenUrl}/key"\n#EXT-X-MEDIA-SEQUENCE`));
    }
    // ffmpeg ends a line at a bare CR: the segment after it is a URI line to ffmpeg, whatever a split on \n sees.
    if (path === '/cr/live.m3u8') return void res.writeHead(200).end(livePlaylist(startedAt, total, (n) => `seg${n}.ts`).replace(/,\n(seg\d+\.ts)/g, `,\r${forbiddenUrl}/$1`));
    if (path === '/bare-key/live.m3u8') {
      return void res.writeHead(200).end(livePlaylist(startedAt, total, (n) => `seg${n}.ts`).replace('#EXT-X-MEDIA-SEQUENCE', `#EXT-X-KEY:METHOD=AES-128,URI=${forbiddenUrl}/key\n#EXT-X-MEDIA-SEQUENCE`));
    }
    res.writeHead(404).end();
  });
  const allowedUrl = `http://127.0.0.1:${await listen(camera, '127.0.0.1')}`;
  t.teardown(() => camera.close());

  const deny = [...defaultConfig().registry.networks.deny, '127.0.0.2/32'];
  const gw = await startStreamingGateway(t, {}, {}, { registry: { networks: { allow: [], deny } } });
  return { gw, forbiddenConnections: () => connections, allowedUrl, forbiddenUrl, authSeen };
}

async function register(gw: StreamingGateway, id: string, url: string, protocol = 'hls') {
  const res = await gw.api('POST', '/api/sources', { token: gw.adminToken, body: { id, name: `HTTP ${id}`, departmentId: 'root', url, protocol, codec: 'h264' } });
  if (res.status !== 201) throw new Error(`register ${id}: ${res.body}`);
}

/** Starts the camera's pull and resolves to the reason its first attempt failed. */
async function firstFailure(gw: StreamingGateway, id: string): Promise<{ code: string; message: string }> {
  const lease = await gw.streams.addReader({ cameraId: id, profile: 'main', kind: 'prewarm', userId: 'test' });
  try {
    await lease.live();
    throw new Error(`${id} went live`);
  } catch (e) {
    return e as { code: string; message: string };
  } finally {
    lease.release();
  }
}

t.test('an HLS camera plays through the checked fetcher, its password on no command line', async (t) => {
  const { gw, allowedUrl, authSeen } = await setup(t);
  await register(gw, 'hls-good', `${allowedUrl.replace('http://', `http://cam:${PASSWORD}@`)}/good/live.m3u8`);
  const urls = await gw.view('hls-good');
  t.equal(await decodeFrames(urls.flv, 25), 25, 'video arrives from the HLS camera (MPEG-TS copied into FLV)');
  t.notMatch(await allCommandLines(), PASSWORD, 'the password is on no command line');
  t.notMatch(await allCommandLines(), allowedUrl, "ffmpeg is not given the camera's address at all");
  t.ok([...authSeen.keys()].some((p) => /seg\d+\.ts$/.test(p)), 'segments were fetched from the camera');
  t.ok([...authSeen.entries()].filter(([p]) => /seg\d+\.ts$/.test(p)).every(([, a]) => a?.startsWith('Basic ')), 'with the credential, on the camera origin');
});

t.test('a camera that asks for Digest authentication plays, the password sent to it only as a digest', async (t) => {
  const { gw, allowedUrl, authSeen } = await setup(t);
  await register(gw, 'hls-digest', `${allowedUrl.replace('http://', `http://cam:${PASSWORD}@`)}/digest/live.m3u8`);
  const urls = await gw.view('hls-digest');
  t.equal(await decodeFrames(urls.flv, 25), 25, 'video arrives from the Digest-protected camera');
  const segments = [...authSeen.entries()].filter(([p]) => /^\/digest\/seg\d+\.ts$/.test(p));
  t.ok(segments.length > 0 && segments.every(([, a]) => a?.startsWith('Digest ')), 'segments are fetched with a Digest answer, once the challenge is known');
});

t.test('a redirect to a denied network is not followed, and the camera says why', async (t) => {
  const { gw, allowedUrl, forbiddenConnections } = await setup(t);
  await register(gw, 'hls-redirect', `${allowedUrl}/redirect/live.m3u8`);
  await register(gw, 'hls-hops', `${allowedUrl}/hop/live.m3u8`);
  const direct = await firstFailure(gw, 'hls-redirect');
  t.equal(direct.code, 'GW_ERR_FORBIDDEN');
  t.match(direct.message, /not allowed: a redirect leads to 127\.0\.0\.2: host is in a denied network \(registry\.networks\.deny\)/);
  const twoHops = await firstFailure(gw, 'hls-hops');
  t.match(twoHops.message, /a redirect leads to 127\.0\.0\.2: host is in a denied network/, 'the second hop is checked as well');
  const health = await gw.api('GET', '/api/sources/hls-redirect', { token: gw.adminToken });
  t.match(health.json.health, { state: 'offline', error: /a redirect leads to 127\.0\.0\.2/ }, 'the registry shows the reason');
  t.equal(forbiddenConnections(), 0, 'nothing connected to the denied address');
});

t.test('segments, keys and files a playlist names elsewhere are never fetched', async (t) => {
  const { gw, allowedUrl, forbiddenConnections } = await setup(t);
  await register(gw, 'hls-elsewhere', `${allowedUrl}/elsewhere/live.m3u8`);
  await register(gw, 'hls-keyed', `${allowedUrl}/keyed/live.m3u8`);
  await register(gw, 'hls-files', `${allowedUrl}/files/live.m3u8`);
  const elsewhere = await firstFailure(gw, 'hls-elsewhere');
  t.equal(elsewhere.code, 'GW_ERR_FORBIDDEN');
  t.match(elsewhere.message, /the playlist leads to 127\.0\.0\.2: host is in a denied network/);
  t.match((await firstFailure(gw, 'hls-keyed')).message, /the playlist leads to 127\.0\.0\.2/, 'an encryption key is a URI like any other');
  await register(gw, 'hls-cr', `${allowedUrl}/cr/live.m3u8`);
  await register(gw, 'hls-bare-key', `${allowedUrl}/bare-key/live.m3u8`);
  t.match((await firstFailure(gw, 'hls-cr')).message, /the playlist leads to 127\.0\.0\.2/, 'a segment after a bare CR is rewritten, then refused');
  t.match((await firstFailure(gw, 'hls-bare-key')).message, /the playlist leads to 127\.0\.0\.2/, 'so is an unquoted key URI');
  const files = await firstFailure(gw, 'hls-files');
  t.match(files.message, /the playlist leads to a file: URL; only http and https are fetched/, 'a file: segment is refused, never opened');
  t.equal(forbiddenConnections(), 0, 'nothing connected to the denied address');
});

t.test('HTTP-FLV goes through the fetcher too: a live stream plays, a redirect to a denied network is refused', async (t) => {
  const { gw, allowedUrl, forbiddenConnections } = await setup(t);
  await register(gw, 'flv-good', `${allowedUrl}/cam.flv`, 'http-flv');
  await register(gw, 'flv-redirect', `${allowedUrl}/redirect/cam.flv`, 'http-flv');
  const urls = await gw.view('flv-good');
  t.equal(await decodeFrames(urls.flv, 25), 25, 'video arrives from the HTTP-FLV camera');
  const refused = await firstFailure(gw, 'flv-redirect');
  t.equal(refused.code, 'GW_ERR_FORBIDDEN');
  t.match(refused.message, /a redirect leads to 127\.0\.0\.2: host is in a denied network/);
  t.equal(forbiddenConnections(), 0, 'nothing connected to the denied address');
});

t.test("the camera's password goes to its own origin only, not to a CDN its playlist names", async (t) => {
  const { gw } = await setup(t);
  const seen: (string | undefined)[] = [];
  // Another allowed host serving the segments, as a CDN would.
  const cdn = createServer((req, res) => {
    seen.push(req.headers.authorization);
    res.writeHead(404).end();
  });
  const cdnUrl = `http://127.0.0.3:${await listen(cdn, '127.0.0.3')}`;
  t.teardown(() => cdn.close());
  const origin = createServer((req, res) => {
    if (req.headers.authorization !== `Basic ${Buffer.from(`cam:${PASSWORD}`).toString('base64')}`) return void res.writeHead(401).end();
    res.end(livePlaylist(Date.now(), 40, (n) => `${cdnUrl}/seg${n}.ts`));
  });
  const originHost = `127.0.0.1:${await listen(origin, '127.0.0.1')}`;
  t.teardown(() => origin.close());
  await register(gw, 'hls-cdn', `http://cam:${PASSWORD}@${originHost}/live.m3u8`);
  const lease = await gw.streams.addReader({ cameraId: 'hls-cdn', profile: 'main', kind: 'prewarm', userId: 'test' });
  lease.live().catch(() => {});
  await waitFor(() => seen.length, (n) => n > 0, 10_000, 100, 'a segment request at the CDN');
  lease.release();
  t.same([...new Set(seen)], [undefined], 'the CDN got no Authorization header');
});

import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import { defaultConfig } from '../../../gateway/src/config/load.js';
import { redact } from '../../../gateway/src/streams/process/ffmpeg-process.js';
import { CheckedFetcher, rewritePlaylist } from '../../../gateway/src/streams/sources/checked-fetcher.js';
import type { DriverContext } from '../../../gateway/src/streams/sources/driver.js';
import { fetchedInput } from '../../../gateway/src/streams/sources/ffmpeg-pull.js';
import type { ResolvedSource } from '../../../gateway/src/streams/types.js';

t.test('every URI of a playlist is made absolute and mapped, tags and all', async (t) => {
  const text = ['#EXTM3U', '#EXT-X-KEY:METHOD=AES-128,URI="key.bin",IV=0x1', '#EXT-X-MAP:URI="/init.mp4"', '', '#EXTINF:1.0,', 'seg1.ts', '#EXTINF:1.0,', 'http://other.example/seg2.ts', 'file:///etc/passwd', '#EXT-X-STREAM-INF:BANDWIDTH=1', 'sub/index.m3u8'].join('\r\n');
  const out = rewritePlaylist(text, new URL('http://cam.example/live/index.m3u8'), (u) => `<${u}>`);
  t.equal(
    out,
    [
      '#EXTM3U',
      '#EXT-X-KEY:METHOD=AES-128,URI="<http://cam.example/live/key.bin>",IV=0x1',
      '#EXT-X-MAP:URI="<http://cam.example/init.mp4>"',
      '',
      '#EXTINF:1.0,',
      '<http://cam.example/live/seg1.ts>',
      '#EXTINF:1.0,',
      '<http://other.example/seg2.ts>',
      '<file:///etc/passwd>',
      '#EXT-X-STREAM-INF:BANDWIDTH=1',
      '<http://cam.example/live/sub/index.m3u8>',
    ].join('\n'),
  );
});

t.test('a URI after a bare CR or a NUL, or in an unquoted URI attribute, is rewritten like any other', async (t) => {
  const text = [
    '#EXTM3U',
    '#EXT-X-KEY:METHOD=AES-128,URI=http://evil.example/key,IV=0x1',
    '#EXT-X-MAP:URI="/init.mp4',
    '#EXTINF:1,\rhttp://0.0.0.0:8080/seg1.ts',
    '#EXTINF:1,\0http://0.0.0.0:8080/seg2.ts\r',
  ].join('\n');
  const out = rewritePlaylist(text, new URL('http://cam.example/live/index.m3u8'), (u) => `<${u}>`);
  t.equal(
    out,
    [
      '#EXTM3U',
      '#EXT-X-KEY:METHOD=AES-128,URI="<http://evil.example/key>",IV=0x1',
      '#EXT-X-MAP:URI="<http://cam.example/init.mp4>"',
      '#EXTINF:1,',
      '<http://0.0.0.0:8080/seg1.ts>',
      '#EXTINF:1,',
      '<http://0.0.0.0:8080/seg2.ts>',
      '',
    ].join('\n'),
  );
  t.notMatch(out, /\r|\0/, 'the playlist ffmpeg reads has no line end but \\n');
});

t.test('the loopback server serves only the URLs it signed, and bounds what it fetches', async (t) => {
  const big = Buffer.alloc(4096, 'x');
  const upstream = createServer((req, res) => {
    if (req.url === '/huge.m3u8') return void res.end('#EXTM3U\n' + '#EXT-X-X\n'.repeat(1000));
    if (req.url === '/big.ts') return void res.end(big);
    res.end('#EXTM3U\n#EXTINF:1,\nbig.ts\n');
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  t.teardown(() => upstream.close());
  const base = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
  const refusals: string[] = [];
  const fetcher = new CheckedFetcher({ check: async (host) => ({ addresses: [host] }), ioTimeoutMs: 2_000, maxPlaylistBytes: 2_000, maxSegmentBytes: 1_000 });
  await fetcher.start();
  t.teardown(() => fetcher.close());
  const local = fetcher.open(`${base}/index.m3u8`, { live: false, onRefused: (r) => refusals.push(r) }).url;
  t.match(local, /^http:\/\/127\.0\.0\.1:\d+\/[\w-]{22}\/[\w-]{22}\/[\w-]+\/index\.m3u8$/);
  const playlist = await (await fetch(local)).text();
  const segment = playlist.split('\n')[2]!;
  t.match(segment, /\/big\.ts$/, 'the segment leads back to the fetcher');

  const parts = new URL(local).pathname.split('/');
  const forged = local.replace(parts[3]!, Buffer.from(`${base}/big.ts`).toString('base64url'));
  t.equal((await fetch(forged)).status, 404, 'a target it did not sign is not fetched');
  t.equal((await fetch(local.replace(parts[1]!, 'A'.repeat(22)))).status, 404, 'nor one under an unknown token');
  t.equal((await fetch(local, { method: 'POST' })).status, 405);

  const cut = await fetch(segment).then((r) => r.arrayBuffer()).then((b) => b.byteLength, () => -1);
  t.ok(cut < big.length, `a segment past maxSegmentBytes is cut (${cut} of ${big.length} bytes)`);
  const huge = fetcher.open(`${base}/huge.m3u8`, { live: false, onRefused: (r) => refusals.push(r) }).url;
  t.equal((await fetch(huge)).status, 502, 'a playlist past maxPlaylistBytes is refused');

  const denied = new CheckedFetcher({ check: async (host) => ({ refused: `${host} is denied` }), ioTimeoutMs: 2_000 });
  await denied.start();
  t.teardown(() => denied.close());
  const res = await fetch(denied.open(`${base}/index.m3u8`, { live: false, onRefused: (r) => refusals.push(r) }).url);
  t.equal(res.status, 403);
  t.match(res.statusText, /^wallgate refused: the stream leads to 127\.0\.0\.1: 127\.0\.0\.1 is denied/, "ffmpeg's log gets the reason too");
  t.same(refusals, ['the stream leads to 127.0.0.1: 127.0.0.1 is denied']);
});

t.test("a closed source's URL is refused at once; an idle one is swept, but not while a live relay is running", async (t) => {
  const upstream = createServer((req, res) => {
    if (req.url !== '/live.flv') return void res.end('FLV');
    // A live stream: a byte every 50 ms, for much longer than the fetcher's idle time.
    const timer = setInterval(() => res.write('x'), 50);
    res.on('close', () => clearInterval(timer));
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  t.teardown(() => upstream.close());
  const base = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
  const fetcher = new CheckedFetcher({ check: async (host) => ({ addresses: [host] }), ioTimeoutMs: 2_000, idleMs: 100 });
  await fetcher.start();
  t.teardown(() => fetcher.close());
  const opts = { live: true, onRefused: () => {} };

  const closed = fetcher.open(`${base}/a.flv`, opts);
  t.equal((await fetch(closed.url)).status, 200);
  closed.close();
  t.equal((await fetch(closed.url)).status, 404, 'its token leads nowhere once the attempt closed it');

  const idle = fetcher.open(`${base}/b.flv`, opts);
  const live = fetcher.open(`${base}/live.flv`, opts);
  const stream = await fetch(live.url);
  const reader = stream.body!.getReader();
  let received = 0;
  const until = Date.now() + 600;
  while (Date.now() < until) received += (await reader.read()).value?.length ?? 0;
  t.equal((await fetch(idle.url)).status, 404, 'the idle source was swept');
  t.ok(received >= 5, `the live relay kept running past the idle time (${received} bytes)`);
  const again = await fetch(live.url);
  t.equal(again.status, 200, 'the live source was not swept while its relay ran (ffmpeg may reconnect with it)');
  await Promise.all([reader.cancel(), again.body?.cancel()]);
});

t.test("the loopback URL's token is a secret of the attempt: redacted from ffmpeg's log, dead once released", async (t) => {
  const fetcher = new CheckedFetcher({ check: async (host) => ({ addresses: [host] }), ioTimeoutMs: 2_000 });
  await fetcher.start();
  t.teardown(() => fetcher.close());
  const ctx: DriverContext = { config: defaultConfig().streams, instanceId: 'unit', checkConnect: async (host) => ({ addresses: [host] }), checkedFetcher: fetcher };
  const source = { cameraId: 'c', name: 'C', departmentId: 'root', deptPath: '/root/', profile: 'main', url: 'http://127.0.0.1:9/live.m3u8', protocol: 'hls', codec: 'h264', enabled: true, credential: { username: 'cam', password: 'pw-7731' } } as ResolvedSource;
  const prepared = await fetchedInput(ctx, source, () => {});
  const token = new URL(prepared.input.url).pathname.split('/')[1]!;
  const line = redact(`[hls @ 0x1] Opening '${prepared.input.url}' for reading`, prepared.secrets);
  t.notOk(line.includes(token), `the token is not in the line ffmpeg logs: ${line}`);
  t.notOk(line.includes('pw-7731'));
  t.equal((await fetch(prepared.input.url)).status, 502, 'the URL works while the attempt holds it (the camera is down)');
  prepared.release!();
  t.equal((await fetch(prepared.input.url)).status, 404, 'and leads nowhere once released');
});

t.test('as the HTTP proxy ffmpeg is given, the fetcher serves its own signed URLs and nothing else', async (t) => {
  const upstream = createServer((_req, res) => res.end('media'));
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  t.teardown(() => upstream.close());
  const base = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
  const fetcher = new CheckedFetcher({ check: async (host) => ({ addresses: [host] }), ioTimeoutMs: 2_000 });
  await fetcher.start();
  t.teardown(() => fetcher.close());
  const opened = fetcher.open(`${base}/a.flv`, { live: false, onRefused: () => {} });
  const viaProxy = (absolute: string) =>
    new Promise<number>((resolve, reject) => {
      const proxy = new URL(fetcher.proxyUrl);
      const req = request({ host: proxy.hostname, port: proxy.port, path: absolute, method: 'GET' }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.end();
    });
  t.equal(await viaProxy(opened.url), 200, 'a signed URL, asked in absolute form');
  t.equal(await viaProxy(`${base}/a.flv`), 404, 'a URL that escaped the rewrite fails closed');
  t.equal(await viaProxy(opened.url.replace('127.0.0.1', '127.0.0.2')), 404, 'even with a signed path on another host');
});

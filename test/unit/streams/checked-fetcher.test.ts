import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import { CheckedFetcher, rewritePlaylist } from '../../../gateway/src/streams/sources/checked-fetcher.js';

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
  const local = fetcher.open(`${base}/index.m3u8`, { live: false, onRefused: (r) => refusals.push(r) });
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
  const huge = fetcher.open(`${base}/huge.m3u8`, { live: false, onRefused: (r) => refusals.push(r) });
  t.equal((await fetch(huge)).status, 502, 'a playlist past maxPlaylistBytes is refused');

  const denied = new CheckedFetcher({ check: async (host) => ({ refused: `${host} is denied` }), ioTimeoutMs: 2_000 });
  await denied.start();
  t.teardown(() => denied.close());
  const res = await fetch(denied.open(`${base}/index.m3u8`, { live: false, onRefused: (r) => refusals.push(r) }));
  t.equal(res.status, 403);
  t.match(res.statusText, /^wallgate refused: the stream leads to 127\.0\.0\.1: 127\.0\.0\.1 is denied/, "ffmpeg's log gets the reason too");
  t.same(refusals, ['the stream leads to 127.0.0.1: 127.0.0.1 is denied']);
});

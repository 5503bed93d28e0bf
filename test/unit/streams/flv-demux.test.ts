import { execFileSync } from 'node:child_process';
import t from 'tap';
import { FlvDemuxer } from '../../../gateway/src/streams/flv-demux.js';
import type { FlvTag } from '../../../gateway/src/streams/types.js';

const flv = execFileSync(
  'ffmpeg',
  ['-v', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=320x240:rate=25', '-t', '3', '-c:v', 'libx264', '-preset', 'ultrafast', '-g', '25', '-bf', '0', '-f', 'flv', 'pipe:1'],
  { maxBuffer: 64 * 1024 * 1024 },
);

function demux(chunks: Buffer[]): { tags: FlvTag[]; error: string | null } {
  const tags: FlvTag[] = [];
  const d = new FlvDemuxer((tag) => tags.push({ ...tag, data: Buffer.from(tag.data) }));
  for (const c of chunks) {
    const error = d.push(c);
    if (error) return { tags, error };
  }
  return { tags, error: null };
}

t.test('tags come out the same however the pipe cuts the stream', async (t) => {
  const whole = demux([flv]);
  t.equal(whole.error, null);
  t.equal(whole.tags.filter((x) => x.type === 9 && x.data[1] === 1).length, 75, '3 s of pictures at 25 fps');
  t.equal(whole.tags.filter((x) => x.keyframe).length, 3, 'one keyframe per 1 s GOP');
  t.equal(whole.tags.filter((x) => x.header).length, 1, 'one AVC sequence header');
  t.equal(whole.tags[0]!.type, 18, 'onMetaData first');
  let seed = 7;
  const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  for (const maxChunk of [1, 7, 13, 100, 4096, 40_000]) {
    const chunks: Buffer[] = [];
    for (let at = 0; at < flv.length; ) {
      const n = 1 + Math.floor(random() * maxChunk);
      chunks.push(flv.subarray(at, at + n));
      at += n;
    }
    const cut = demux(chunks);
    t.equal(cut.error, null);
    t.same(
      cut.tags.map((x) => [x.type, x.timestamp, x.keyframe, x.header, x.data.toString('base64')]),
      whole.tags.map((x) => [x.type, x.timestamp, x.keyframe, x.header, x.data.toString('base64')]),
      `chunks of up to ${maxChunk} bytes`,
    );
  }
});

t.test('anything but FLV is refused', async (t) => {
  t.match(demux([Buffer.from('#EXTM3U\n#EXT-X-VERSION:3\n')]).error, /not FLV/);
  const huge = Buffer.from(flv.subarray(0, 13 + 11));
  huge.writeUIntBE(0xffffff, 13 + 1, 3);
  t.match(demux([huge]).error, /FLV tag of \d+ bytes/);
});

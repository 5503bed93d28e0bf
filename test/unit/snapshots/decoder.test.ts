import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import t from 'tap';
import { flvFile, jpegSize, KeyframeDecode } from '../../../gateway/src/snapshots/decoder.js';
import { FlvDemuxer } from '../../../gateway/src/streams/flv-demux.js';
import type { FlvTag } from '../../../gateway/src/streams/types.js';
import { stillRunning } from '../../helpers/process.js';
import { waitFor } from '../../helpers/streams.js';

const run = promisify(execFile);

/** The decoder configuration and first keyframe of a real H.264 FLV of this size, as a session's GOP store holds them. */
async function keyframeTags(width: number, height: number): Promise<FlvTag[]> {
  const { stdout } = await run(
    'ffmpeg',
    ['-v', 'error', '-f', 'lavfi', '-i', `testsrc2=size=${width}x${height}:rate=25`, '-frames:v', '10', '-c:v', 'libx264', '-g', '25', '-pix_fmt', 'yuv420p', '-f', 'flv', 'pipe:1'],
    { encoding: 'buffer', maxBuffer: 64 * 1024 * 1024 },
  );
  const tags: FlvTag[] = [];
  const demuxer = new FlvDemuxer((tag) => tags.push({ ...tag, data: Buffer.from(tag.data) }));
  t.equal(demuxer.push(stdout), null);
  const header = tags.find((tag) => tag.type === 9 && tag.header)!;
  const keyframe = tags.find((tag) => tag.type === 9 && tag.keyframe && !tag.header)!;
  // A large stream time, as a session's tags carry after a restart: the decoder must not care.
  return [{ ...header, timestamp: 987_654_321 }, { ...keyframe, timestamp: 987_654_321 }];
}

const options = { ffmpegPath: 'ffmpeg', quality: 4, timeoutMs: 10_000, killGraceMs: 1_000 };

t.test('a keyframe decodes to a JPEG of its own size, or of the width asked with the aspect kept', async (t) => {
  const tags = await keyframeTags(1280, 720);
  const full = await new KeyframeDecode({ ...options, tags }).result;
  t.same(jpegSize(full), { width: 1280, height: 720 });
  const small = await new KeyframeDecode({ ...options, tags, width: 320 }).result;
  t.same(jpegSize(small), { width: 320, height: 180 });
  const odd = await new KeyframeDecode({ ...options, tags, width: 250 }).result;
  t.same(jpegSize(odd), { width: 250, height: 140 }, 'an even height (140.6 rounds to an even number)');
  const wider = await new KeyframeDecode({ ...options, tags, width: 1920 }).result;
  t.same(jpegSize(wider), { width: 1280, height: 720 }, 'never scaled up');
  t.equal(KeyframeDecode.running().size, 0, 'every decoder has exited');
});

t.test('the decoder is fed on stdin and writes to stdout: its command line names no input', async (t) => {
  const tags = await keyframeTags(640, 360);
  const decode = new KeyframeDecode({ ...options, tags, width: 320 });
  await decode.result;
  t.equal(
    decode.commandLine?.trim(),
    "ffmpeg -f flv -hide_banner -loglevel error -i pipe:0 -an -vframes 1 -vcodec mjpeg -filter:v scale=w='min(320,iw)':h=-2 -q:v 4 -pix_fmt yuvj420p -f image2pipe pipe:1",
  );
});

t.test('a stream that is not video fails with the reason and leaves no process', async (t) => {
  const decode = new KeyframeDecode({ ...options, tags: [{ type: 9, timestamp: 0, data: Buffer.from([0x17, 1, 0, 0, 0, 1, 2, 3]), keyframe: true, header: false }] });
  await t.rejects(decode.result, { code: 'GW_ERR_INTERNAL', message: /could not be decoded \(ffmpeg exited with 1\): .+/ });
  t.not(decode.pid, null, 'a decoder was started');
  t.same(await stillRunning([decode.pid!]), []);
});

t.test('close stops a decoder and is idempotent; the result says why', async (t) => {
  const tags = await keyframeTags(640, 360);
  const decode = new KeyframeDecode({ ...options, tags });
  const closing = [decode.close('gateway shutting down'), decode.close('again')];
  await Promise.all(closing);
  await t.rejects(decode.result, { code: 'GW_ERR_UNAVAILABLE', message: /gateway shutting down/ });
  t.equal(KeyframeDecode.running().size, 0);
  if (decode.pid !== null) t.same(await stillRunning([decode.pid]), []);
});

t.test('a spare starts ffmpeg before its picture is known, decodes it once fed, and closes unfed leaving no process', async (t) => {
  const tags = await keyframeTags(640, 360);
  const spare = new KeyframeDecode({ ...options, width: 320 });
  await waitFor(() => spare.pid, (pid) => pid !== null, 10_000, 20, 'the spare ffmpeg to start');
  t.ok(spare.waiting, 'started and waiting on stdin');
  t.same(await stillRunning([spare.pid!]), [spare.pid], 'its ffmpeg runs before any picture is given');
  spare.feed(tags);
  t.notOk(spare.waiting);
  t.throws(() => spare.feed(tags), /fed once/);
  t.same(jpegSize(await spare.result), { width: 320, height: 180 });

  const unused = new KeyframeDecode({ ...options });
  await waitFor(() => unused.pid, (pid) => pid !== null, 10_000, 20, 'the second spare to start');
  await unused.close('unused');
  t.notOk(unused.waiting);
  await t.rejects(unused.result, { code: 'GW_ERR_UNAVAILABLE', message: /unused/ });
  t.same(await stillRunning([spare.pid!, unused.pid!]), []);
  t.equal(KeyframeDecode.running().size, 0);
});

t.test('flvFile writes a header and each tag with its back pointer', async (t) => {
  const file = flvFile([{ type: 9, timestamp: 5, data: Buffer.from([1, 2, 3]), keyframe: true, header: false }]);
  t.equal(file.length, 13 + 11 + 3 + 4);
  t.equal(file.subarray(0, 3).toString(), 'FLV');
  t.equal(file.readUInt32BE(file.length - 4), 14);
});

t.test('jpegSize reads the start-of-frame marker and refuses what is not a JPEG', async (t) => {
  t.equal(jpegSize(Buffer.from('not a jpeg')), null);
  t.equal(jpegSize(Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10])), null, 'cut short before any frame');
});

import { randomUUID } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { defaultConfig } from '../../../gateway/src/config/load.js';
import { PsDemuxer } from '../../../gateway/src/gb28181/media/ps-demux.js';
import { psPack, rtpPackets } from '../../../gateway/src/gb28181/media/ps-mux.js';
import { openRtpReceiver, RtpPortPool } from '../../../gateway/src/gb28181/media/receiver.js';
import { EsIngest } from '../../../gateway/src/streams/sources/es-ingest.js';
import type { FlvTag } from '../../../gateway/src/streams/types.js';
import { ensureClip } from '../../../scripts/sim/clips.js';
import { waitFor } from '../../helpers/streams.js';

/**
 * The whole media path a GB play driver assembles: a device's PS over RTP (UDP, in real time,
 * joined mid-GOP) → RtpReceiver → PsDemuxer → EsIngest → ffmpeg's FLV tags, as a session sees them.
 */

t.test('PS over RTP in real time, joined mid-GOP: FLV keyframes come out of the ES ingest', async (t) => {
  const clip = await ensureClip('h264-360p-1s');
  const start = Buffer.from([0, 0, 0, 1]);
  // Find a free port for the range: the pool gets a one-port range.
  const probe = createSocket('udp4');
  await new Promise<void>((r) => probe.bind(0, '127.0.0.1', r));
  const port = probe.address().port;
  await new Promise<void>((r) => probe.close(r));
  const pool = new RtpPortPool(port, port);
  const ssrc = 100000001;
  const rx = await openRtpReceiver(pool, { mode: 'udp', host: '127.0.0.1', expectedSsrc: ssrc, reorderWindow: 32 });
  t.teardown(() => rx.close());
  t.equal(rx.port, port);
  const hlsDir = join(t.testdir(), randomUUID());
  await mkdir(hlsDir);
  const tags: FlvTag[] = [];
  let probed = '';
  const ingest = new EsIngest(
    { config: { ...defaultConfig().streams, killGraceMs: 1_000 }, instanceId: `media-path-${randomUUID()}`, checkConnect: async () => ({ addresses: [] }) },
    { hlsDir, segmentStart: 1, discontinuity: false, transcode: false },
    { tag: (tag) => void tags.push({ ...tag, data: Buffer.from(tag.data) }), bytes: () => {}, probed: (c, r) => void (probed = `${c} ${r}`), failed: (e) => t.fail(e.message) },
  );
  t.teardown(() => ingest.close('test over'));
  await ingest.start();
  const demux = new PsDemuxer((u) => ingest.push(u));
  rx.on('payload', (p, _ts, marker) => {
    demux.push(p);
    if (marker) demux.flush();
  });
  rx.on('lost', () => demux.resync());

  const device = createSocket('udp4');
  device.on('error', () => {});
  t.teardown(() => device.close());
  let seq = 1;
  let frame = 10; // mid-GOP: the first 15 frames precede the next keyframe
  const began = Date.now();
  const timer = setInterval(() => {
    const f = clip.frames[frame % clip.frames.length]!;
    const pts = 3600 * frame++;
    const r = rtpPackets(psPack({ codec: 'h264', pts90k: pts, key: f.key, data: Buffer.concat(f.nalUnits.flatMap((n) => [start, n])) }), { ssrc, seq, timestamp: pts });
    seq = r.nextSeq;
    for (const p of r.packets) device.send(p, port, '127.0.0.1');
  }, 40);
  t.teardown(() => clearInterval(timer));
  await waitFor(() => tags.filter((x) => x.type === 9 && x.keyframe && !x.header).length, (n) => n >= 2, 15_000, 20, 'two keyframes in FLV');
  const firstKeyMs = Date.now() - began;
  clearInterval(timer);
  const video = tags.filter((x) => x.type === 9);
  t.ok(video[0]!.header, 'the AVC sequence header first');
  t.equal(probed, 'h264 640x360');
  t.ok(ingest.dropped >= 15, `${ingest.dropped} units before the first keyframe dropped`);
  t.equal(rx.stats.lost, 0);
  t.ok(demux.stats.units >= 40, `${demux.stats.units} frames demuxed in ${firstKeyMs} ms`);
  const pid = ingest.pid!;
  await ingest.close('viewer left');
  t.throws(() => process.kill(pid, 0), { code: 'ESRCH' }, 'ffmpeg is gone');
  await rx.close();
  t.equal(pool.take(), port, 'the port is back in the pool');
});

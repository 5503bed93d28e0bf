import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { once } from 'node:events';
import { connect, createServer, type Server, type Socket } from 'node:net';
import t, { type Test } from 'tap';
import { PsDemuxer } from '../../../gateway/src/gb28181/media/ps-demux.js';
import { psPack, rfc4571, rtpPackets } from '../../../gateway/src/gb28181/media/ps-mux.js';
import { openRtpReceiver, RtpPortPool, RtpReceiver, type RtpReceiverOptions } from '../../../gateway/src/gb28181/media/receiver.js';
import type { AccessUnit } from '../../../gateway/src/gb28181/media/types.js';
import { ensureClip } from '../../../scripts/sim/clips.js';
import { waitFor } from '../../helpers/streams.js';

/**
 * The RTP receiver over real loopback sockets (UDP, TCP with the device connecting, TCP with us
 * connecting), fed a clip as a device sends it, then shuffled within the window, with duplicates,
 * a second stream of another SSRC, packets from a second address and RTCP: the PS demuxed from what
 * it hands on is the clip, frame for frame, and its stats say what it dropped.
 */

const SSRC = 200000125;
const WRONG_SSRC = 200000999;
const WINDOW = 32;
const START = Buffer.from([0, 0, 0, 1]);
/** A second loopback address: Linux answers on all of 127/8. */
const OTHER_ADDRESS = '127.0.0.2';

const clip = await ensureClip('h264-720p-1s');
const units: AccessUnit[] = clip.frames.map((f, i) => ({ codec: 'h264', pts90k: 90_000 + i * 3600, key: f.key, data: Buffer.concat(f.nalUnits.flatMap((n) => [START, n])) }));

/** The clip as a device sends it; `frameOf[i]` is the frame packet i belongs to. */
function packetsOf(ssrc: number, seq: number, frameOf: number[] = []): Buffer[] {
  const out: Buffer[] = [];
  units.forEach((u, frame) => {
    const r = rtpPackets(psPack(u), { ssrc, seq, timestamp: u.pts90k });
    out.push(...r.packets);
    for (const _ of r.packets) frameOf.push(frame);
    seq = r.nextSeq;
  });
  return out;
}

let seed = 42;
const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);

/**
 * The device's packets as a bad network delivers them: shuffled in blocks smaller than the window,
 * one in ten sent twice, and a foreign stream (another SSRC) interleaved.
 */
function badNetwork(): { packets: Buffer[]; duplicates: number; foreign: number } {
  // Sequence numbers wrap during the clip.
  const good = packetsOf(SSRC, 65_300);
  const foreign = packetsOf(WRONG_SSRC, 1).slice(0, 200);
  const out: Buffer[] = [good[0]!];
  let duplicates = 0;
  for (let at = 1; at < good.length; at += WINDOW / 2) {
    const block = good.slice(at, at + WINDOW / 2);
    for (let i = block.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [block[i], block[j]] = [block[j]!, block[i]!];
    }
    for (const p of block) {
      out.push(p);
      if (random() < 0.1) {
        out.push(p);
        duplicates++;
      }
    }
  }
  // The foreign packets spread through the stream (after the first good packet, which binds the source).
  for (let k = 0; k < foreign.length; k++) out.splice(1 + Math.floor(random() * (out.length - 1)), 0, foreign[k]!);
  return { packets: out, duplicates, foreign: foreign.length };
}

/** An RTCP sender report with some SSRC: devices often send one first. */
const RTCP_SR = Buffer.from('80c80006' + '0bebc2ff' + '00'.repeat(20), 'hex');

/** What a play driver does: receiver → demuxer, flushing at the marker and resyncing after a loss. */
function pipeline(rx: RtpReceiver) {
  const out: AccessUnit[] = [];
  const demuxer = new PsDemuxer((u) => out.push(u));
  rx.on('payload', (payload, _ts, marker) => {
    demuxer.push(payload);
    if (marker) demuxer.flush();
  });
  rx.on('lost', () => demuxer.resync());
  return { out, demuxer };
}

function checkFrames(t: Test, out: AccessUnit[]) {
  t.equal(out.length, units.length, 'every frame came out');
  const same = units.filter((u, i) => out[i] && out[i]!.pts90k === u.pts90k && out[i]!.key === u.key && out[i]!.data.equals(u.data)).length;
  t.equal(same, units.length, 'frame for frame: bytes, PTS and key flag');
}

async function receiver(t: Test, opts: Partial<RtpReceiverOptions> & Pick<RtpReceiverOptions, 'mode'>) {
  const rx = new RtpReceiver({ host: '127.0.0.1', port: 0, expectedSsrc: SSRC, reorderWindow: WINDOW, ...opts });
  t.teardown(() => rx.close());
  return rx;
}

async function udpSender(t: Test, address: string): Promise<UdpSocket> {
  const s = createSocket('udp4');
  s.on('error', () => {});
  await new Promise<void>((r) => s.bind(0, address, r));
  t.teardown(() => s.close());
  return s;
}

/** Writes packets paced a little, so the loopback's socket buffers never overflow. */
async function paced(packets: Buffer[], send: (p: Buffer) => void) {
  for (let i = 0; i < packets.length; i++) {
    send(packets[i]!);
    if (i % 8 === 7) await new Promise((r) => setTimeout(r, 1));
  }
}

t.test('UDP: shuffled, duplicated, a foreign SSRC, a second address and RTCP first: the clip comes through whole', async (t) => {
  const rx = await receiver(t, { mode: 'udp' });
  await rx.start();
  const { out } = pipeline(rx);
  const device = await udpSender(t, '127.0.0.1');
  const stranger = await udpSender(t, OTHER_ADDRESS);
  const net = badNetwork();
  // RTCP from the stranger arrives first: it must neither bind the source nor count as a wrong SSRC.
  stranger.send(RTCP_SR, rx.port!, '127.0.0.1');
  await new Promise((r) => setTimeout(r, 20));
  device.send(RTCP_SR, rx.port!, '127.0.0.1');
  const fromStranger = packetsOf(SSRC, 5000).slice(0, 50);
  let k = 0;
  await paced(net.packets, (p) => {
    device.send(p, rx.port!, '127.0.0.1');
    // The stranger sends right-SSRC packets once the device's first one has bound the source.
    if (k < fromStranger.length && p !== net.packets[0]) stranger.send(fromStranger[k++]!, rx.port!, '127.0.0.1');
  });
  await waitFor(() => out.length, (n) => n >= units.length - 1, 10_000, 20, 'the frames');
  // The last frame ends at its marker; the last packets may wait for the hold timer.
  await waitFor(() => out.length, (n) => n === units.length, 2_000, 20, 'the last frame');
  checkFrames(t, out);
  t.match(rx.stats, { lost: 0, rtcp: 2, wrongAddress: fromStranger.length, wrongSsrc: { ssrc: WRONG_SSRC, count: net.foreign }, source: `127.0.0.1:${device.address().port}` });
  t.ok(rx.stats.reordered > 50, `${rx.stats.reordered} packets put back in order`);
  t.equal(rx.stats.duplicates, net.duplicates, 'duplicates dropped');
  t.ok(rx.stats.firstPacketAt! <= Date.now());
});

/** Sends framed packets on a TCP connection in arbitrary cuts. */
async function writeCut(socket: Socket, data: Buffer) {
  for (let at = 0; at < data.length; ) {
    const n = 1 + Math.floor(random() * 3000);
    if (!socket.write(data.subarray(at, at + n))) await once(socket, 'drain');
    at += n;
  }
}

const dollar = (p: Buffer) => Buffer.concat([Buffer.from([0x24, 0, p.length >> 8, p.length & 0xff]), p]);

for (const [framing, frame] of [
  ['RFC 4571', rfc4571],
  ["RTSP-interleaved '$'", dollar],
] as const) {
  t.test(`TCP passive, ${framing} framing: the device connects, the clip comes through whole; a second address is ignored`, async (t) => {
    const rx = await receiver(t, { mode: 'tcp-passive' });
    await rx.start();
    const { out } = pipeline(rx);
    const net = badNetwork();
    const device = connect({ host: '127.0.0.1', port: rx.port! });
    device.on('error', () => {});
    t.teardown(() => device.destroy());
    await once(device, 'connect');
    await writeCut(device, Buffer.concat([frame(RTCP_SR), ...net.packets.slice(0, 10).map(frame)]));
    await waitFor(() => rx.stats.packets, (n) => n > 0, 5_000, 20, 'the first packet');
    const stranger = connect({ host: '127.0.0.1', port: rx.port!, localAddress: OTHER_ADDRESS });
    stranger.on('error', () => {});
    t.teardown(() => stranger.destroy());
    await once(stranger, 'connect');
    stranger.write(Buffer.concat(packetsOf(SSRC, 9000).slice(0, 20).map(frame)));
    await writeCut(device, Buffer.concat(net.packets.slice(10).map(frame)));
    await waitFor(() => out.length, (n) => n === units.length, 10_000, 20, 'the frames');
    await waitFor(() => rx.stats.wrongAddress, (n) => n === 20, 5_000, 20, "the stranger's packets");
    checkFrames(t, out);
    t.match(rx.stats, { lost: 0, rtcp: 1, malformed: 0, wrongSsrc: { ssrc: WRONG_SSRC, count: net.foreign }, source: '127.0.0.1', duplicates: net.duplicates });
    const ended = once(rx, 'end');
    device.end();
    const [reason] = (await ended) as [string];
    t.match(reason, /closed its RTP connection from 127\.0\.0\.1/, 'the device hanging up ends the media');
  });
}

t.test('TCP passive: junk between two packets costs no packet: the framing is found again by the SSRC', async (t) => {
  const rx = await receiver(t, { mode: 'tcp-passive' });
  await rx.start();
  const { out } = pipeline(rx);
  const good = packetsOf(SSRC, 100);
  const device = connect({ host: '127.0.0.1', port: rx.port! });
  device.on('error', () => {});
  t.teardown(() => device.destroy());
  await once(device, 'connect');
  const framed = good.map(rfc4571);
  // Half a frame header, then junk: the framing is lost until a packet with our SSRC is found again.
  await writeCut(device, Buffer.concat([...framed.slice(0, 300), Buffer.from([0x05]), Buffer.alloc(3000, 0x42), ...framed.slice(300)]));
  await waitFor(() => out.length, (n) => n === units.length, 10_000, 20, 'the frames after the junk');
  t.ok(rx.stats.malformed >= 1, 'the junk was noticed');
  t.equal(rx.stats.packets, good.length, 'every packet recovered');
  checkFrames(t, out);
});

t.test('TCP passive: connections that bring nothing lose their slot, so the device gets in', async (t) => {
  const rx = await receiver(t, { mode: 'tcp-passive', strayConnectionMs: 300 });
  await rx.start();
  const { out } = pipeline(rx);
  const strays = await Promise.all(
    Array.from({ length: 4 }, async () => {
      const s = connect({ host: '127.0.0.1', port: rx.port! });
      s.on('error', () => {});
      t.teardown(() => s.destroy());
      await once(s, 'connect');
      return s;
    }),
  );
  const refused = connect({ host: '127.0.0.1', port: rx.port! });
  refused.on('error', () => {});
  await once(refused, 'close');
  t.ok(strays.every((x) => x.readyState === 'open'), 'a fifth connection is refused while four are open');
  await Promise.all(strays.map((s) => once(s, 'close')));
  t.pass('the silent ones are closed');
  const device = connect({ host: '127.0.0.1', port: rx.port! });
  device.on('error', () => {});
  t.teardown(() => device.destroy());
  await once(device, 'connect');
  await writeCut(device, Buffer.concat(packetsOf(SSRC, 1).map(rfc4571)));
  await waitFor(() => out.length, (n) => n === units.length, 10_000, 20, 'the frames');
  await new Promise((r) => setTimeout(r, 500));
  t.notOk(device.destroyed, 'the connection that delivers stays open');
});

t.test('TCP active: we connect to the device, retrying once a second until it listens', async (t) => {
  // A port the device will listen on later: found free now, listened on after 1.5 s.
  const probe = createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
  const port = (probe.address() as { port: number }).port;
  await new Promise((r) => probe.close(r));
  let device: Server | null = null;
  const accepted = new Promise<Socket>((resolve) => {
    setTimeout(() => {
      device = createServer((s) => {
        s.on('error', () => {});
        resolve(s);
      });
      device.on('error', () => {});
      device.listen(port, '127.0.0.1');
    }, 1_500);
  });
  t.teardown(() => device?.close());
  const rx = await receiver(t, { mode: 'tcp-active', remote: { address: '127.0.0.1', port } });
  const { out } = pipeline(rx);
  const began = Date.now();
  await rx.start();
  t.ok(Date.now() - began >= 1_400, 'connected on a later attempt');
  const socket = await accepted;
  t.teardown(() => socket.destroy());
  const net = badNetwork();
  await writeCut(socket, Buffer.concat(net.packets.map(rfc4571)));
  await waitFor(() => out.length, (n) => n === units.length, 10_000, 20, 'the frames');
  checkFrames(t, out);
  t.match(rx.stats, { lost: 0, wrongSsrc: { ssrc: WRONG_SSRC, count: net.foreign }, source: '127.0.0.1' });
  const ended = once(rx, 'end');
  socket.destroy();
  t.match(((await ended) as [string])[0], /closed the RTP connection/);
});

t.test('TCP active: a device that never listens fails after the attempts, naming its address', async (t) => {
  const probe = createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
  const port = (probe.address() as { port: number }).port;
  await new Promise((r) => probe.close(r));
  const rx = await receiver(t, { mode: 'tcp-active', remote: { address: '127.0.0.1', port }, connectAttempts: 4 });
  const began = Date.now();
  await t.rejects(rx.start(), { message: new RegExp(`cannot connect to 127\\.0\\.0\\.1:${port} for RTP after 4 attempts`) });
  t.ok(Date.now() - began >= 2_900, 'three retries a second apart');
});

t.test('a gap that never fills is given up after the hold time, and counted', async (t) => {
  const rx = await receiver(t, { mode: 'udp', reorderHoldMs: 100 });
  await rx.start();
  const { out } = pipeline(rx);
  const lost: number[] = [];
  rx.on('lost', (n) => lost.push(n));
  const device = await udpSender(t, '127.0.0.1');
  const frameOf: number[] = [];
  const packets = packetsOf(SSRC, 0, frameOf);
  const missing = 300;
  const hit = frameOf[missing]!;
  await paced(packets.filter((_, i) => i !== missing), (p) => device.send(p, rx.port!, '127.0.0.1'));
  await waitFor(() => out.length, (n) => n === units.length - 1, 10_000, 20, 'the frames but the one hit');
  t.same(lost, [1]);
  t.equal(rx.stats.lost, 1);
  const expected = units.filter((_, i) => i !== hit);
  t.same(out.map((u) => u.pts90k), expected.map((u) => u.pts90k), 'the frame with the hole was dropped, and only it');
  t.ok(out.every((u, i) => u.data.equals(expected[i]!.data)), 'the others are whole');
});

t.test('two gaps at the end of what arrived: both are given up in turn, with nothing more arriving, and every held packet comes out', async (t) => {
  const rx = await receiver(t, { mode: 'udp', reorderHoldMs: 50 });
  await rx.start();
  const seqs: number[] = [];
  rx.on('payload', (_p: Buffer, ts: number) => void seqs.push(ts));
  rx.on('lost', () => {});
  const device = await udpSender(t, '127.0.0.1');
  const packet = (seq: number) => {
    const p = Buffer.alloc(20, 0x5a);
    p[0] = 0x80;
    p[1] = 96;
    p.writeUInt16BE(seq, 2);
    p.writeUInt32BE(seq, 4);
    p.writeUInt32BE(SSRC, 8);
    return p;
  };
  // 10, then 12 and 13 (11 missing), then 15 (14 missing): after the first gap is given up, 15 still waits behind the second.
  for (const seq of [10, 12, 13, 15]) await new Promise((r) => device.send(packet(seq), rx.port!, '127.0.0.1', r));
  await waitFor(() => seqs.length, (n) => n === 4, 3_000, 10, 'every packet held behind either gap');
  t.same(seqs, [10, 12, 13, 15]);
  t.equal(rx.stats.lost, 2);
});

t.test('with senders set, RTP from any other address is dropped even when it comes first with the right SSRC; allowSender adds one', async (t) => {
  const rx = await receiver(t, { mode: 'udp', senders: ['127.0.0.1'] });
  await rx.start();
  let delivered = 0;
  rx.on('payload', () => void delivered++);
  const packet = (seq: number) => {
    const p = Buffer.alloc(20, 0x5a);
    p[0] = 0x80;
    p[1] = 96;
    p.writeUInt16BE(seq, 2);
    p.writeUInt32BE(SSRC, 8);
    return p;
  };
  const guesser = await udpSender(t, '127.0.0.2');
  await new Promise((r) => guesser.send(packet(1), rx.port!, '127.0.0.1', r));
  const device = await udpSender(t, '127.0.0.1');
  await new Promise((r) => device.send(packet(2), rx.port!, '127.0.0.1', r));
  await waitFor(() => delivered, (n) => n === 1, 3_000, 10, "the device's packet");
  t.equal(rx.stats.wrongAddress, 1, 'the guesser was counted, not taken');
  t.equal(rx.stats.source?.startsWith('127.0.0.1:'), true, 'the stream is locked to the device');
});

t.test('allowSender: a platform whose answer names its media server is taken from there', async (t) => {
  const rx = await receiver(t, { mode: 'udp', senders: ['127.0.0.1'] });
  await rx.start();
  let delivered = 0;
  rx.on('payload', () => void delivered++);
  rx.allowSender('127.0.0.3');
  const mediaServer = await udpSender(t, '127.0.0.3');
  const p = Buffer.alloc(20, 0x5a);
  p[0] = 0x80;
  p[1] = 96;
  p.writeUInt32BE(SSRC, 8);
  await new Promise((r) => mediaServer.send(p, rx.port!, '127.0.0.1', r));
  await waitFor(() => delivered, (n) => n === 1, 3_000, 10, "the media server's packet");
  t.equal(rx.stats.wrongAddress, 0);
});

t.test('the port pool hands ports out in turn, skips ports another program holds, and takes them back on close', async (t) => {
  const pool = new RtpPortPool(1000, 1002);
  t.same([pool.take(), pool.take(), pool.take(), pool.take()], [1000, 1001, 1002, null]);
  pool.give(1001);
  t.equal(pool.take(), 1001);

  const holder = await udpSender(t, '127.0.0.1');
  const busy = holder.address().port;
  const range = new RtpPortPool(busy, busy + 2);
  const rx = await openRtpReceiver(range, { mode: 'udp', host: '127.0.0.1', expectedSsrc: SSRC, reorderWindow: WINDOW });
  t.not(rx.port, busy, 'the busy port was skipped');
  t.ok(rx.port! > busy && rx.port! <= busy + 2);
  t.equal(range.free, 2, 'the busy port went back to the pool; the bound one is out');
  await rx.close();
  await rx.close();
  t.equal(range.free, 3, 'close gives the port back, once');
});

import { EventEmitter } from 'node:events';
import { setImmediate as turn } from 'node:timers/promises';
import t from 'tap';
import { RtpFeed, type FeedSink } from '../../../gateway/src/outputs/webrtc/feed.js';
import type { AccessUnit } from '../../../gateway/src/outputs/webrtc/h264.js';
import type { LiveStream } from '../../../gateway/src/outputs/stream-access.js';
import type { FlvTag } from '../../../gateway/src/streams/types.js';

const SPS = Buffer.from('674d401fda014016ec0440000003004000000ca3c60ca8', 'hex');
const PPS = Buffer.from('68ef3c80', 'hex');
const record = Buffer.concat([Buffer.from([1, 0x4d, 0x40, 0x1f, 0xff, 0xe1, 0, SPS.length]), SPS, Buffer.from([1, 0, PPS.length]), PPS]);
const header: FlvTag = { type: 9, timestamp: 0, data: Buffer.concat([Buffer.from([0x17, 0, 0, 0, 0]), record]), keyframe: false, header: true };

/** A video tag of about `bytes`, which the packetizer splits into bytes/1200 packets. */
function frame(n: number, keyframe: boolean, bytes = 6_000): FlvTag {
  const nal = Buffer.alloc(bytes, n & 0xff);
  nal[0] = keyframe ? 0x65 : 0x41;
  const len = Buffer.alloc(4);
  len.writeUInt32BE(nal.length);
  return { type: 9, timestamp: n * 40, data: Buffer.concat([Buffer.from([keyframe ? 0x17 : 0x27, 1, 0, 0, 0]), len, nal]), keyframe, header: false };
}

/** Keeps the GOP so far, as the session's GOP store does; `send` stores a frame, then emits it. */
class FakeSession extends EventEmitter {
  transcoding = false;
  gop: FlvTag[] = [];
  joinTags() {
    return [header, ...this.gop];
  }
  send(tag: FlvTag) {
    if (tag.keyframe) this.gop = [tag];
    else if (this.gop.length > 0) this.gop.push(tag);
    this.emit('tag', tag);
  }
  reportUndecodable() {
    return false;
  }
}

class Sink implements FeedSink {
  got: number[] = [];
  cached: { frame: number; timestamp: number }[] = [];
  resyncs = 0;
  waiting = false;
  sendCached(au: AccessUnit, timestamp: number) {
    this.cached.push({ frame: au.timestamp / 90 / 40, timestamp });
  }
  sendLive(au: AccessUnit) {
    if (this.waiting && !au.keyframe) return;
    this.waiting = false;
    this.got.push(au.timestamp / 90 / 40);
  }
  resync() {
    this.resyncs++;
    this.waiting = true;
  }
}

t.test('every peer gets every frame in order, sent over several event-loop turns', async (t) => {
  const session = new FakeSession();
  const feed = new RtpFeed(session as unknown as LiveStream);
  const sinks = Array.from({ length: 100 }, () => new Sink());
  for (const s of sinks) feed.peers.add(s);
  for (let n = 0; n < 10; n++) session.send(frame(n, n === 0));
  t.ok(sinks.at(-1)!.got.length < 10, 'a burst to 100 peers is not sent in one turn');
  for (let i = 0; i < 50; i++) await turn();
  t.ok(sinks.every((s) => s.got.join() === '0,1,2,3,4,5,6,7,8,9'), 'then every peer has every frame, in order');
  feed.detach();
});

t.test('a fan-out more than a second behind drops its backlog and resumes at a keyframe', async (t) => {
  const session = new FakeSession();
  let overloads = 0;
  const feed = new RtpFeed(session as unknown as LiveStream, undefined, () => overloads++);
  const sinks = Array.from({ length: 100 }, () => new Sink());
  for (const s of sinks) feed.peers.add(s);
  // 40 frames arrive while the loop never turns: more than the 25 that may wait.
  for (let n = 0; n < 40; n++) session.send(frame(n, n === 0));
  t.equal(overloads, 1, 'the overload is reported');
  t.equal(feed.overloads, 1);
  t.ok(sinks.every((s) => s.resyncs >= 1), 'every waiting peer is told to resync');
  session.send(frame(40, true));
  for (let i = 0; i < 100; i++) await turn();
  const last = sinks.at(-1)!.got;
  t.equal(last.at(-1), 40, 'they resume at the next keyframe');
  t.ok(last.length < 41, `and the backlog was not sent late (${last.length} frames)`);
  feed.detach();
});

t.test("a joining peer's burst is the session's cached GOP, packetized on join: the feed keeps no copy", async (t) => {
  const session = new FakeSession();
  // The GOP so far arrived before the feed existed: only the session has it.
  for (let n = 0; n < 6; n++) session.send(frame(n, n === 0));
  const feed = new RtpFeed(session as unknown as LiveStream);
  const sink = new Sink();
  feed.peers.add(sink);
  t.not(feed.join(sink), null, 'a burst is queued');
  for (let i = 0; i < 10; i++) await turn();
  t.same(
    sink.cached.map((c) => c.frame),
    [0, 1, 2, 3, 4, 5],
    'the burst is the GOP from its keyframe on',
  );
  const newest = 5 * 40 * 90;
  t.same(
    sink.cached.map((c) => c.timestamp),
    [0, 1, 2, 3, 4, 5].map((i) => newest - (5 - i) * 90),
    'squeezed 1 ms apart, ending at the newest frame',
  );
  session.gop = [];
  const late = new Sink();
  feed.peers.add(late);
  t.equal(feed.join(late), null, 'with the session holding no GOP (dropped over its bound) a peer waits for the next keyframe');
  feed.detach();
});

t.test('join bursts share the per-turn budget and come before the live frames that follow them', async (t) => {
  const session = new FakeSession();
  const feed = new RtpFeed(session as unknown as LiveStream);
  // 30 frames of 50 packets each: 1,500 packets, more than one turn's 800.
  for (let n = 0; n < 30; n++) session.send(frame(n, n === 0, 60_000));
  const sinks = [new Sink(), new Sink()];
  const order: string[] = [];
  for (const s of sinks) {
    feed.peers.add(s);
    const live = s.sendLive.bind(s);
    const cached = s.sendCached.bind(s);
    s.sendLive = (au) => {
      order.push(`live${au.timestamp / 90 / 40}`);
      live(au);
    };
    s.sendCached = (au, ts) => {
      order.push('cached');
      cached(au, ts);
    };
  }
  const through = sinks.map((s) => feed.join(s));
  t.same(through, [30, 30], 'each burst covers the 30 live frames so far');
  t.same(sinks.map((s) => s.cached.length), [0, 0], 'nothing is sent before join returns');
  await Promise.resolve();
  const firstTurn = sinks[0]!.cached.length + sinks[1]!.cached.length;
  t.ok(firstTurn > 0 && firstTurn <= 17, `the first turn sends no more than its budget (${firstTurn} frames)`);
  session.send(frame(30, false, 6_000));
  for (let i = 0; i < 20; i++) await turn();
  t.same(sinks.map((s) => s.cached.length), [30, 30], 'both bursts arrive whole over later turns');
  t.same(sinks.map((s) => s.got), [[30], [30]], 'the live frame follows');
  t.equal(order.indexOf('live30'), order.length - 2, 'after every burst frame');
  feed.detach();
});

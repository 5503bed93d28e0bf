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

class FakeSession extends EventEmitter {
  transcoding = false;
  joinTags() {
    return [header];
  }
  reportUndecodable() {
    return false;
  }
}

class Sink implements FeedSink {
  got: number[] = [];
  resyncs = 0;
  waiting = false;
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
  for (let n = 0; n < 10; n++) session.emit('tag', frame(n, n === 0));
  t.ok(sinks.at(-1)!.got.length < 10, 'a burst to 100 peers is not sent in one turn');
  for (let i = 0; i < 50; i++) await turn();
  t.ok(sinks.every((s) => s.got.join() === '0,1,2,3,4,5,6,7,8,9'), 'then every peer has every frame, in order');
  t.equal(feed.keyframeCache.length, 10, 'the cache holds the GOP so far');
  feed.detach();
});

t.test('a fan-out more than a second behind drops its backlog and resumes at a keyframe', async (t) => {
  const session = new FakeSession();
  let overloads = 0;
  const feed = new RtpFeed(session as unknown as LiveStream, undefined, () => overloads++);
  const sinks = Array.from({ length: 100 }, () => new Sink());
  for (const s of sinks) feed.peers.add(s);
  // 40 frames arrive while the loop never turns: more than the 25 that may wait.
  for (let n = 0; n < 40; n++) session.emit('tag', frame(n, n === 0));
  t.equal(overloads, 1, 'the overload is reported');
  t.equal(feed.overloads, 1);
  t.ok(sinks.every((s) => s.resyncs >= 1), 'every waiting peer is told to resync');
  session.emit('tag', frame(40, true));
  for (let i = 0; i < 100; i++) await turn();
  const last = sinks.at(-1)!.got;
  t.equal(last.at(-1), 40, 'they resume at the next keyframe');
  t.ok(last.length < 41, `and the backlog was not sent late (${last.length} frames)`);
  feed.detach();
});

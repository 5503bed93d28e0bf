import { setTimeout as sleep } from 'node:timers/promises';
import t from 'tap';
import { WebSocket } from 'ws';
import { RawWebSocket } from '../../../scripts/sim/raw-websocket.js';
import { startStreamingGateway, waitFor } from '../../helpers/streams.js';

/** Resolves when a WS-FLV viewer has its first video picture, with whether it is a keyframe; counts bytes after. */
function watch(url: string) {
  const ws = new WebSocket(url);
  let bytes = 0;
  let buf: Buffer | null = Buffer.alloc(0);
  const first = new Promise<boolean>((resolve, reject) => {
    ws.on('message', (data: Buffer) => {
      bytes += data.length;
      if (!buf) return;
      buf = Buffer.concat([buf, data]);
      let at = 13;
      while (buf.length >= at + 13) {
        const size = buf.readUIntBE(at + 1, 3);
        if (buf[at] === 9 && buf[at + 12] === 1) {
          resolve(buf[at + 11]! >> 4 === 1);
          buf = null;
          return;
        }
        at += 15 + size;
      }
    });
    ws.on('error', reject);
  });
  const closed = new Promise<void>((resolve) => ws.on('close', () => resolve()));
  return { ws, first, closed, bytes: () => bytes };
}

t.test('twelve FLV viewers of one camera: one state listener on the session, no MaxListenersExceededWarning', async (t) => {
  const warnings: Error[] = [];
  const onWarning = (w: Error) => warnings.push(w);
  process.on('warning', onWarning);
  t.teardown(() => void process.off('warning', onWarning));
  const gw = await startStreamingGateway(t);
  await gw.addCamera('hall', { clip: 'h264-720p-2s' });
  const viewers = [];
  let withOne = 0;
  for (let i = 0; i < 12; i++) {
    const v = watch((await gw.view('hall')).wsFlv);
    viewers.push(v);
    // Each joins on a keyframe from the session's one cached GOP.
    t.equal(await v.first, true, `viewer ${i + 1} starts on a keyframe`);
    if (i === 0) withOne = gw.streams.sessionFor('hall', 'main')!.listenerCount('state');
  }
  const session = gw.streams.sessionFor('hall', 'main')!;
  t.equal(session.readers.size, 12);
  t.equal(session.listenerCount('state'), withOne, "twelve FLV viewers add no more 'state' listeners than one");
  // A warning is emitted on the next tick of the listener that passes the limit.
  await sleep(50);
  t.same(
    warnings.filter((w) => w.name === 'MaxListenersExceededWarning').map((w) => w.message),
    [],
    'no MaxListenersExceededWarning',
  );
  await gw.streams.stop(session.id, 'test');
  await Promise.all(viewers.map((v) => v.closed));
  t.pass('the session closing ends every viewer');
  t.equal(gw.streams.stats().readers, 0, 'and lets go of every reader');
});

t.test('past the total queued for all FLV viewers, the viewers furthest behind are cut first', async (t) => {
  // Each viewer may fall far behind on its own; together they may not hold more than 4 MB.
  const gw = await startStreamingGateway(t, { flv: { maxBufferedBytes: 256 * 1024 * 1024, maxBufferedBytesTotal: 4 * 1024 * 1024 } });
  await gw.addCamera('yard', { clip: 'h264-1080p-8m-4s' });
  const reading = watch((await gw.view('yard')).wsFlv);
  t.equal(await reading.first, true, 'a viewer that reads is playing');
  const session = gw.streams.sessionFor('yard', 'main')!;
  const flvSince = () => [...session.readers.values()].filter((r) => r.kind === 'flv').map((r) => r.since);
  // Two screens that stop reading, the second joining a few seconds after the first.
  const first = await RawWebSocket.connect((await gw.view('yard')).wsFlv, {});
  t.teardown(() => first.socket.destroy());
  const firstSince = flvSince().at(-1)!;
  await sleep(3_000);
  const second = await RawWebSocket.connect((await gw.view('yard')).wsFlv, {});
  t.teardown(() => second.socket.destroy());
  const secondSince = flvSince().at(-1)!;
  t.not(firstSince, secondSince);

  const afterFirstCut = await waitFor(flvSince, (s) => s.length < 3, 30_000, 50);
  t.equal(afterFirstCut.length, 2, 'one viewer is cut once the total passes 4 MB');
  t.notOk(afterFirstCut.includes(firstSince), 'the one furthest behind goes first');
  t.ok(afterFirstCut.includes(secondSince), 'while the other is still served');
  const afterBoth = await waitFor(flvSince, (s) => s.length < 2, 30_000, 50);
  t.equal(afterBoth.length, 1, 'the second goes too once it alone passes the total');
  const before = reading.bytes();
  await waitFor(reading.bytes, (bytes) => bytes > before, 5_000, 50, 'the reading viewer to get more video');
  t.pass('the viewer that reads keeps playing');
  reading.ws.close();
});

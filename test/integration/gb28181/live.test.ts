import { randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import t from 'tap';
import { rtpPackets } from '../../../gateway/src/gb28181/media/ps-mux.js';
import { whepConnect } from '../../../scripts/sim/whep-client.js';
import { CHANNEL, DEVICE, count, liveGateway } from '../../helpers/gb28181.js';
import { decodeFrames, waitFor } from '../../helpers/streams.js';

/**
 * Live view of GB/T 28181 channels end to end: the simulator (scripts/sim/gb-device.ts) registers,
 * its catalog becomes sources, and a reader of any output makes the gateway INVITE the channel and
 * play its PS over RTP; the last reader leaving sends BYE. Failures: live-failures.test.ts.
 */
for (const streamMode of ['udp', 'tcp-passive'] as const) {
  t.test(`${streamMode}: one INVITE however many readers, HLS and WHEP play, BYE when the last reader leaves`, async (t) => {
    const { gw, device } = await liveGateway(t, { streamMode });
    const invites = count(device, 'invite');
    const byes = count(device, 'bye');
    const urls = await gw.view(CHANNEL);
    const hlsFrames = await decodeFrames(urls.hls, 10, 30_000);
    t.ok(hlsFrames >= 10, `HLS decodes (${hlsFrames} frames)`);
    const viewer = await whepConnect(urls.whep, urls.token);
    t.teardown(() => viewer.close());
    await waitFor(() => viewer.timings.firstKeyframe, (x) => x !== null, 10_000, 20, 'a keyframe over WebRTC');
    const frames = viewer.frames;
    await waitFor(() => viewer.frames, (n) => n >= frames + 10, 5_000, 100, 'WebRTC frames keep coming');
    const prewarm = await gw.streams.addReader({ cameraId: CHANNEL, profile: 'main', kind: 'prewarm', userId: 'tour' });
    await prewarm.live();
    t.equal(invites(), 1, 'HLS, WHEP and a pre-warm share one INVITE');
    const [stream] = device.streamsInfo();
    t.equal(stream?.mode, streamMode, 'the device was asked for the device setting');
    t.match(stream?.ssrc, new RegExp(`^0${gw.config.gb28181.domain.slice(3, 8)}\\d{4}$`), 'y= is 0, the domain digits 4-8 and a 4-digit number');
    t.equal(stream?.remote.address, '127.0.0.1', 'told to send to the address it reached us on');
    t.ok(stream!.packets > 0);
    await waitFor(() => gw.api('GET', `/api/sources/${CHANNEL}`, { token: gw.adminToken }), (r) => r.json.health.state === 'online', 5_000, 100, 'the channel online');

    prewarm.release();
    await viewer.close();
    // The HLS viewer times out (streams.hls.viewerTimeoutMs), then the session lingers (closeAfterMs).
    await waitFor(() => byes(), (n) => n === 1, 15_000, 100, 'BYE to the device once nobody watches');
    await waitFor(() => gw.streams.list().length, (n) => n === 0, 5_000, 100, 'the session closed');
    t.equal(device.streamsInfo().length, 0, 'the device stopped sending');
    t.same(await gw.ffmpegPids(), [], 'no ffmpeg left');
  });
}

t.test('the sub-stream is asked for with a=streamnumber:1 when the channel is registered with one', async (t) => {
  const { gw, device } = await liveGateway(t);
  const source = (await gw.api('GET', `/api/sources/${CHANNEL}`, { token: gw.adminToken })).json;
  const patched = await gw.api('PATCH', `/api/sources/${CHANNEL}`, { token: gw.adminToken, body: { subUrl: `gb28181://${DEVICE}/${CHANNEL}?stream=1` }, headers: { 'if-match': `"${source.version}"` } });
  t.equal(patched.status, 200, `sub URL set: ${patched.body}`);
  const lease = await gw.streams.addReader({ cameraId: CHANNEL, profile: 'sub', kind: 'prewarm', userId: 'test' });
  t.teardown(() => lease.release());
  await lease.live();
  t.equal(device.streamsInfo()[0]?.streamNumber, 1);
});

t.test('packets of another SSRC or from another port are ignored while the stream plays on', async (t) => {
  const { gw, device } = await liveGateway(t);
  const urls = await gw.view(CHANNEL);
  const lease = await gw.streams.addReader({ cameraId: CHANNEL, profile: 'main', kind: 'prewarm', userId: 'test' });
  t.teardown(() => lease.release());
  await lease.live();
  const [stream] = device.streamsInfo();
  const intruder = createSocket('udp4');
  t.teardown(() => intruder.close());
  let stop = false;
  const flood = (async () => {
    let seq = 1;
    while (!stop) {
      for (const ssrc of [Number(stream!.ssrc) + 1, Number(stream!.ssrc)]) {
        const out = rtpPackets(randomBytes(1_200), { ssrc, seq, timestamp: seq * 3600 });
        for (const p of out.packets) intruder.send(p, stream!.remote.port, stream!.remote.address);
      }
      seq++;
      await new Promise((r) => setTimeout(r, 5));
    }
  })();
  const frames = await decodeFrames(urls.hls, 25, 30_000);
  stop = true;
  await flood;
  t.ok(frames >= 25, `the picture decodes through the intrusion (${frames} frames)`);
  t.equal(gw.streams.sessionFor(CHANNEL, 'main')?.restarts, 0, 'without a restart');
});


t.test('the catalog subscription: the device accepts it, and a channel it renames or removes changes in the registry', async (t) => {
  const { gw, device } = await liveGateway(t);
  // The SUBSCRIBE follows the catalog query after the registration.
  await waitFor(() => device.renameChannel(CHANNEL, '东门 已改名'), (sent) => sent, 10_000, 200, 'a NOTIFY the gateway answers 200');
  await waitFor(() => gw.api('GET', `/api/sources/${CHANNEL}`, { token: gw.adminToken }), (r) => r.json.name === '东门 已改名', 5_000, 100, 'the new name in the registry');
  t.ok(await device.removeChannel(CHANNEL));
  const removed = await waitFor(() => gw.api('GET', `/api/sources/${CHANNEL}`, { token: gw.adminToken }), (r) => r.json.tags.includes('gb:removed'), 5_000, 100, 'marked removed');
  t.equal(removed.json.enabled, false, 'disabled, not deleted');
});

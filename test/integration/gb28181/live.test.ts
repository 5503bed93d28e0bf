import { randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import t, { type Test } from 'tap';
import type { Config } from '../../../gateway/src/config/schema.js';
import type { GatewayError } from '../../../gateway/src/errors.js';
import { rtpPackets } from '../../../gateway/src/gb28181/media/ps-mux.js';
import { GbSimDevice, type GbSimChannel } from '../../../scripts/sim/gb-device.js';
import { whepConnect } from '../../../scripts/sim/whep-client.js';
import type { DeepPartial } from '../../helpers/gateway.js';
import { decodeFrames, startStreamingGateway, waitFor, type StreamingGateway } from '../../helpers/streams.js';

/**
 * Live view of GB/T 28181 channels end to end: the simulator (scripts/sim/gb-device.ts) registers,
 * its catalog becomes sources, and a reader of any output makes the gateway INVITE the channel and
 * play its PS over RTP; the last reader leaving sends BYE. Each way a start can fail is worded by
 * its step, in the error, the registry's health and the log.
 */
const DEVICE = '34020000001180000001';
const CHANNEL = '34020000001310000001';
const PASSWORD = 'live-device-secret';

interface Live {
  gw: StreamingGateway;
  device: GbSimDevice;
}

const channel = (id: string, extra: Partial<GbSimChannel> = {}): GbSimChannel => ({ id, name: `通道 ${id.slice(-4)}`, status: 'ON', live: true, clip: 'h264-360p-1s', ...extra });

async function liveGateway(
  t: Test,
  o: { streamMode?: 'udp' | 'tcp-passive'; gb?: DeepPartial<Config['gb28181']>; channels?: GbSimChannel[]; deviceId?: string; departmentId?: string; gw?: StreamingGateway } = {},
): Promise<Live> {
  const gw = o.gw ?? (await startStreamingGateway(t, {}, {}, { gb28181: { media: { firstPacketTimeoutMs: 1_500 }, requestTimeoutMs: 2_000, ...o.gb } }));
  const deviceId = o.deviceId ?? DEVICE;
  const added = await gw.api('POST', '/api/gb28181/devices', {
    token: gw.adminToken,
    body: { id: deviceId, name: `设备 ${deviceId.slice(-4)}`, departmentId: o.departmentId ?? 'root', password: PASSWORD, streamMode: o.streamMode ?? 'udp' },
  });
  if (added.status !== 201) throw new Error(`add device: ${added.status} ${added.body}`);
  const channels = o.channels ?? [channel(CHANNEL)];
  const device = new GbSimDevice({ id: deviceId, password: PASSWORD, server: { address: '127.0.0.1', port: gw.gb28181!.ports.udpPort!, id: gw.config.gb28181.id }, channels });
  t.teardown(() => device.stop());
  await device.start();
  // The catalog query after the registration puts the channels in the registry.
  for (const ch of channels) {
    await waitFor(() => gw.api('GET', `/api/sources/${ch.id}`, { token: gw.adminToken }), (r) => r.status === 200, 10_000, 100, `channel ${ch.id} in the registry`);
  }
  return { gw, device };
}

/** A start of the channel by a pre-warm reader that must fail: the reason, once the session has gone. */
async function startFails(gw: StreamingGateway, cameraId = CHANNEL): Promise<GatewayError> {
  const lease = await gw.streams.addReader({ cameraId, profile: 'main', kind: 'prewarm', userId: 'test' });
  try {
    await lease.live();
  } catch (e) {
    return e as GatewayError;
  } finally {
    lease.release();
    await waitFor(() => gw.streams.sessionFor(cameraId, 'main'), (s) => s === undefined, 10_000, 20, 'the failed session gone');
  }
  throw new Error('the start did not fail');
}

const count = (device: GbSimDevice, event: string) => {
  let n = 0;
  device.on(event, () => n++);
  return () => n;
};

for (const streamMode of ['udp', 'tcp-passive'] as const) {
  t.test(`${streamMode}: one INVITE however many readers, HLS and WHEP play, BYE when the last reader leaves`, async (t) => {
    const { gw, device } = await liveGateway(t, { streamMode });
    const invites = count(device, 'invite');
    const byes = count(device, 'bye');
    const urls = await gw.view(CHANNEL);
    const [hlsFrames, viewer] = await Promise.all([decodeFrames(urls.hls, 10, 30_000), whepConnect(urls.whep, urls.token)]);
    t.ok(hlsFrames >= 10, `HLS decodes (${hlsFrames} frames)`);
    await waitFor(() => viewer.keyframes, (n) => n >= 1, 10_000, 100, 'a keyframe over WebRTC');
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

t.test('each failed step says what happened, in the error, the health and the log', async (t) => {
  const { gw, device } = await liveGateway(t);
  const health = async () => (await gw.api('GET', `/api/sources/${CHANNEL}`, { token: gw.adminToken })).json.health;

  device.setFaults({ refuseInvite: { status: 486, reason: 'Busy Here' } });
  let e = await startFails(gw);
  t.match(e, { code: 'GW_ERR_CAMERA_UNREACHABLE', params: { reason: 'inviteRefused', status: 486, phrase: 'Busy Here' } });
  t.match(e.message, /the device refused the INVITE: 486 Busy Here/);
  t.match(await health(), { code: 'GW_ERR_CAMERA_UNREACHABLE', params: { reason: 'inviteRefused' } }, 'the health says so too');
  t.match(gw.logs.join(''), /GB live view failed at invite: the device refused the INVITE: 486 Busy Here/, 'the log names the step');

  device.setFaults({ refuseInvite: null, delayMs: 3_000 });
  e = await startFails(gw);
  t.match(e, { params: { reason: 'inviteTimeout', ms: 2_000 } });
  t.match(e.message, /the device did not answer INVITE within 2 s/);

  device.setFaults({ delayMs: 0, noMedia: true });
  e = await startFails(gw);
  t.match(e, { params: { reason: 'noRtp', ms: 1_500, address: '127.0.0.1' } });
  t.match(e.message, /^no RTP on port \d+ within 1\.5 s \(the device was told to send to 127\.0\.0\.1:\d+: check routing\/NAT\)$/);

  device.setFaults({ noMedia: false, wrongSsrc: true });
  e = await startFails(gw);
  t.match(e, { params: { reason: 'wrongSsrc' } });
  t.match(e.message, /^RTP arrived with SSRC \d{10}, expected \d{10}$/);
  t.not((e.params as { ssrc: string }).ssrc, (e.params as { expected: string }).expected);
  t.match(gw.logs.join(''), /GB live view failed at rtp: RTP arrived with SSRC/);

  t.comment('RTP of the right SSRC with no PS in it: no decodable video');
  device.setFaults({ wrongSsrc: false, noMedia: true });
  const garbage = createSocket('udp4');
  t.teardown(() => garbage.close());
  let stop = false;
  const send = async () => {
    const [stream] = await waitFor(() => device.streamsInfo(), (s) => s.length === 1, 5_000, 20, 'the INVITE answered');
    let seq = 1;
    while (!stop) {
      const out = rtpPackets(randomBytes(3_000), { ssrc: Number(stream!.ssrc), seq, timestamp: seq * 3600 });
      seq = out.nextSeq;
      for (const p of out.packets) garbage.send(p, stream!.remote.port, stream!.remote.address);
      await new Promise((r) => setTimeout(r, 40));
    }
  };
  const sending = send();
  e = await startFails(gw);
  stop = true;
  await sending;
  t.match(e, { params: { reason: 'noVideo' } });
  t.match(e.message, /^RTP arrived but no decodable video/);

  device.setFaults({ noMedia: false });
  const lease = await gw.streams.addReader({ cameraId: CHANNEL, profile: 'main', kind: 'prewarm', userId: 'test' });
  t.teardown(() => lease.release());
  await lease.live();
  t.comment('the device hangs up');
  await device.byeFromDevice(CHANNEL);
  await waitFor(health, (h) => h.params?.reason === 'deviceBye', 10_000, 100, 'deviceBye in the health');
  t.comment('MediaStatus 121 ends the stream');
  await waitFor(() => device.streamsInfo(), (s) => s.length === 1 && s[0]!.acked, 15_000, 100, 'the retry playing again');
  await waitFor(() => gw.streams.sessionFor(CHANNEL, 'main')?.state, (s) => s === 'ready', 10_000, 100, 'live again');
  t.equal(await device.sendMediaStatus(CHANNEL), 200);
  await waitFor(health, (h) => h.params?.reason === 'mediaEnded', 10_000, 100, 'mediaEnded in the health');
  lease.release();
  await waitFor(() => gw.streams.sessionFor(CHANNEL, 'main'), (s) => s === undefined, 10_000, 20, 'the session gone');

  t.comment('the device goes offline: its channels are offline and a start fails at once');
  await device.stop();
  await waitFor(health, (h) => h.params?.reason === 'deviceOffline', 10_000, 100, 'deviceOffline in the health');
  e = await startFails(gw);
  t.match(e, { params: { reason: 'deviceOffline', device: DEVICE } });
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

t.test('a department-scoped operator sees and plays only the GB channels of their departments', async (t) => {
  const gw = await startStreamingGateway(t, {}, {}, { gb28181: { media: { firstPacketTimeoutMs: 1_500 } } });
  for (const d of [
    { id: 'countyA', name: 'County A', parentId: 'root', level: 'county' },
    { id: 'countyB', name: 'County B', parentId: 'root', level: 'county' },
  ]) {
    t.equal((await gw.api('POST', '/api/departments', { token: gw.adminToken, body: d })).status, 201);
  }
  const a = { device: '34020000001180000011', channel: '34020000001310000011' };
  const b = { device: '34020000001180000012', channel: '34020000001310000012' };
  await liveGateway(t, { gw, deviceId: a.device, departmentId: 'countyA', channels: [channel(a.channel)] });
  await liveGateway(t, { gw, deviceId: b.device, departmentId: 'countyB', channels: [channel(b.channel)] });
  const operator = await gw.userToken('op-a', ['operator'], ['countyA']);
  const listed = await gw.api('GET', '/api/sources?protocol=gb28181', { token: operator });
  t.equal(listed.status, 200);
  t.same(
    listed.json.items.map((s: { id: string }) => s.id),
    [a.channel],
    "only county A's channel",
  );
  t.equal((await gw.api('POST', `/api/streams/${b.channel}/view`, { token: operator })).status, 404, "county B's channel cannot be played");
  const urls = await gw.view(a.channel, operator);
  t.ok((await decodeFrames(urls.hls, 5, 30_000)) >= 5, "county A's channel plays");
  const devices = await gw.api('GET', '/api/gb28181/devices', { token: operator });
  t.same(
    devices.json.items.map((d: { id: string }) => d.id),
    [a.device],
    'and only its device',
  );
});

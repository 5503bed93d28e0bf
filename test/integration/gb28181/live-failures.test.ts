import { randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import t from 'tap';
import { rtpPackets } from '../../../gateway/src/gb28181/media/ps-mux.js';
import { CHANNEL, DEVICE, channel, liveGateway, startFails } from '../../helpers/gb28181.js';
import { decodeFrames, startStreamingGateway, waitFor } from '../../helpers/streams.js';

/**
 * GB/T 28181 live view when it cannot start or ends: each step's own reason and words (in the error,
 * the registry's health and the log), and department scope over GB channels.
 */
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

import type { Test } from 'tap';
import type { Config } from '../../gateway/src/config/schema.js';
import type { GatewayError } from '../../gateway/src/errors.js';
import { GbSimDevice, type GbSimChannel } from '../../scripts/sim/gb-device.js';
import type { DeepPartial } from './gateway.js';
import { startStreamingGateway, waitFor, type StreamingGateway } from './streams.js';

/** GB/T 28181 live view in tests: a streaming gateway with the simulator registered and its channels in the registry. */
export const DEVICE = '34020000001180000001';
export const CHANNEL = '34020000001310000001';
export const PASSWORD = 'live-device-secret';

export interface Live {
  gw: StreamingGateway;
  device: GbSimDevice;
}

export const channel = (id: string, extra: Partial<GbSimChannel> = {}): GbSimChannel => ({ id, name: `通道 ${id.slice(-4)}`, status: 'ON', live: true, clip: 'h264-360p-1s', ...extra });

export async function liveGateway(
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
export async function startFails(gw: StreamingGateway, cameraId = CHANNEL): Promise<GatewayError> {
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

/** Counts the device's events of a kind from now on. */
export const count = (device: GbSimDevice, event: string) => {
  let n = 0;
  device.on(event, () => n++);
  return () => n;
};


import t from 'tap';
import { parsePtzCmd } from '../../../gateway/src/gb28181/ptz-cmd.js';
import { CHANNEL, liveGateway } from '../../helpers/gb28181.js';
import { waitFor } from '../../helpers/streams.js';

/**
 * PTZ end to end with nothing faked: the REST route, the PTZ service, the GB service's DeviceControl
 * MESSAGE over SIP, and the simulated device (scripts/sim/gb-device.ts) recording the PTZCmd it got.
 */
t.test('a PTZ command reaches the registered device as a DeviceControl with its PTZCmd', async (t) => {
  const { gw, device } = await liveGateway(t);
  const op = await gw.userToken('op', ['operator'], ['root']);
  const url = `/api/cameras/${CHANNEL}/ptz`;

  const up = await gw.api('POST', url, { token: op, body: { action: 'move', tilt: 1, speed: 0x64 } });
  t.equal(up.status, 200, up.body);
  await waitFor(() => device.ptzCommands.length, (n) => n >= 1, 5_000, 20, 'the device got the move');
  t.match(device.ptzCommands[0], { channelId: CHANNEL, ptzCmd: 'A50F010800640021' }, 'up at 0x64, to the channel');
  t.same(parsePtzCmd(device.ptzCommands[0]!.ptzCmd)?.command, { action: 'move', pan: 0, tilt: 1, zoom: 0, speed: 100 });

  t.equal((await gw.api('POST', url, { token: op, body: { action: 'preset', op: 'goto', preset: 5 } })).status, 200);
  t.equal((await gw.api('POST', url, { token: op, body: { action: 'stop' } })).status, 200);
  await waitFor(() => device.ptzCommands.length, (n) => n >= 3, 5_000, 20, 'the device got all three');
  t.same(device.ptzCommands.map((c) => c.ptzCmd), ['A50F010800640021', 'A50F01820005003C', 'A50F0100000000B5'], 'in the order sent');

  const auditor = await gw.userToken('aud', ['auditor'], ['root']);
  const log = await gw.api('GET', '/api/audit?action=ptz.command', { token: auditor });
  t.same(log.json.items.map((e: { outcome: string; detail: { ptzCmd: string } }) => [e.outcome, e.detail.ptzCmd]).reverse(), device.ptzCommands.map((c) => ['ok', c.ptzCmd]), 'each audited as sent');
});

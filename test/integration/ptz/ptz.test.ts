import t, { type Test } from 'tap';
import { startControlGateway } from '../../helpers/control.js';
import { gbChannel, RecordingPtzSender } from '../../helpers/ptz.js';
import { waitFor } from '../../helpers/streams.js';

const GB_A = '34020000001310000001';
const GB_B = '34020000001310000002';

/**
 * A gateway whose PTZ commands go to a recording sender (BuildOptions.ptzSender, where the GB
 * service's DeviceControl sender goes), with a GB channel in county A and one in county B beside
 * the RTSP cameras a1..b1.
 */
async function ptzGateway(t: Test, sender: RecordingPtzSender | null) {
  const gw = await startControlGateway(t, { gb28181: { ptz: { leaseMs: 5_000, commandsPerSec: 4 } } }, sender ? { ptzSender: sender } : {});
  await gbChannel(gw, GB_A, 'countyA');
  await gbChannel(gw, GB_B, 'countyB');
  return gw;
}

t.test('REST: command, lease state, release; refusals with their codes', async (t) => {
  const sender = new RecordingPtzSender();
  const gw = await ptzGateway(t, sender);
  const op1 = await gw.userToken('op1', ['operator'], ['countyA']);
  const op2 = await gw.userToken('op2', ['operator'], ['countyA']);
  const sup = await gw.userToken('sup', ['supervisor'], ['city']);
  const reg = await gw.userToken('reg', ['regulator'], ['countyA']);
  const url = `/api/cameras/${GB_A}/ptz`;

  const idle = await gw.api('GET', url, { token: op1 });
  t.equal(idle.status, 200);
  t.same(idle.json, { cameraId: GB_A, supported: true, holder: null, until: null, mine: false, canTakeOver: false, leaseMs: 5_000 });

  const moved = await gw.api('POST', url, { token: op1, body: { action: 'move', tilt: 1, speed: 0x64 } });
  t.equal(moved.status, 200, moved.body);
  t.match(moved.json, { holder: { username: 'op1' }, mine: true });
  t.ok(moved.json.until > Date.now() + 4_000, 'the lease runs gb28181.ptz.leaseMs from the command');
  t.same(sender.sent, [{ cameraId: GB_A, url: `gb28181://34020000001320000001/${GB_A}`, hex: 'A50F010800640021' }], 'up at 0x64 reached the sender');

  const locked = await gw.api('POST', url, { token: op2, body: { action: 'move', tilt: -1 } });
  t.equal(locked.status, 423);
  t.match(locked.json, { code: 'GW_ERR_LOCKED', params: { reason: 'ptz', camera: GB_A, user: 'op1' } });
  t.match((await gw.api('GET', url, { token: op2 })).json, { holder: { username: 'op1' }, mine: false });
  const noTakeover = await gw.api('POST', url, { token: op2, body: { action: 'stop', takeover: true } });
  t.match(noTakeover, { status: 403, json: { code: 'GW_ERR_FORBIDDEN', params: { permission: 'walls:break-lock' } } });

  const taken = await gw.api('POST', url, { token: sup, body: { action: 'preset', op: 'goto', preset: 5, takeover: true } });
  t.equal(taken.status, 200, taken.body);
  t.match(taken.json, { holder: { username: 'sup' }, mine: true, canTakeOver: true });
  t.equal(sender.sent.at(-1)!.hex, 'A50F01820005003C');
  const released = await gw.api('DELETE', url, { token: sup });
  t.match(released, { status: 200, json: { holder: null } });
  t.equal((await gw.api('POST', url, { token: op2, body: { action: 'stop' } })).status, 200, 'released: another operator may steer');

  // Refusals.
  t.match(await gw.api('POST', url, { token: reg, body: { action: 'stop' } }), { status: 403, json: { params: { permission: 'ptz:control' } } });
  t.match(await gw.api('POST', `/api/cameras/${GB_B}/ptz`, { token: op1, body: { action: 'stop' } }), { status: 404, json: { code: 'GW_ERR_NOT_FOUND' } }, 'another department: not found');
  t.match(await gw.api('GET', `/api/cameras/${GB_B}/ptz`, { token: op1 }), { status: 404 });
  t.match(await gw.api('POST', '/api/cameras/a1/ptz', { token: op1, body: { action: 'stop' } }), { status: 422, json: { code: 'GW_ERR_UNSUPPORTED', params: { reason: 'ptz', camera: 'a1' } } });
  t.match((await gw.api('GET', '/api/cameras/a1/ptz', { token: op1 })).json, { supported: false });
  const bad = await gw.api('POST', url, { token: op2, body: { action: 'move', pan: 2, speed: 300, extra: 1 } });
  t.equal(bad.status, 400);
  t.equal(bad.json.code, 'GW_ERR_VALIDATION');
  t.same(bad.json.issues.map((i: { field: string }) => i.field).sort(), ['extra', 'pan', 'speed'], 'each bad field is named');
  const mixed = await gw.api('POST', url, { token: op2, body: { action: 'stop', preset: 3 } });
  t.match(mixed, { status: 400, json: { issues: [{ field: 'preset', rule: 'unknownField' }] } }, 'a field of another action is refused by name');
  t.match(await gw.api('POST', url, { token: op2, body: { action: 'preset', op: 'goto' } }), { status: 400, json: { issues: [{ field: 'preset', rule: 'required' }] } });
  t.match(await gw.api('POST', url, { token: op2, body: { action: 'preset', op: 'goto', preset: 0 } }), { status: 400, json: { code: 'GW_ERR_VALIDATION' } });
  t.match(await gw.api('POST', url, { token: op2, body: { action: 'spin' } }), { status: 400, json: { code: 'GW_ERR_VALIDATION' } });

  // The rate: four a second for op2 on this camera, the fifth refused.
  const codes: number[] = [];
  for (let i = 0; i < 5; i++) codes.push((await gw.api('POST', url, { token: op2, body: { action: 'move', pan: 1 } })).status);
  t.same(codes.slice(0, 3), [200, 200, 200]);
  t.ok(codes.includes(429), `over gb28181.ptz.commandsPerSec a command is refused (${codes.join(', ')})`);

  // Every command sent is in the audit log with who, camera and command.
  const auditor = await gw.userToken('aud', ['auditor'], ['root']);
  const log = await gw.api('GET', '/api/audit?action=ptz.command', { token: auditor });
  t.equal(log.status, 200);
  const entries = log.json.items as { actor: string; target: string; outcome: string; detail: { ptzCmd: string; command: { action: string } } }[];
  t.equal(entries.length, sender.sent.length, 'one audit entry per command sent');
  t.match(entries.at(-1), { actor: 'op1', target: GB_A, outcome: 'ok', detail: { command: { action: 'move', tilt: 1, speed: 100 }, ptzCmd: 'A50F010800640021' } });
  t.match((await gw.api('GET', '/api/audit?action=ptz.takeover', { token: auditor })).json.items, [{ actor: 'sup', target: GB_A, detail: { from: 'op1' } }]);
});

t.test('the control WebSocket message ptz answers like the REST route', async (t) => {
  const sender = new RecordingPtzSender();
  const gw = await ptzGateway(t, sender);
  const op1 = await gw.client(await gw.userToken('op1', ['operator'], ['countyA']));
  const op2 = await gw.client(await gw.userToken('op2', ['operator'], ['countyA']));
  const ack = await op1.request('ptz', { cameraId: GB_A, action: 'move', pan: -1, speed: 0x1f }, 'p1');
  t.match(ack, { type: 'ack', id: 'p1', payload: { cameraId: GB_A, holder: { username: 'op1' }, mine: true } });
  t.same(sender.sent.map((s) => s.hex), ['A50F01021F0000D6']);
  t.match(await op2.request('ptz', { cameraId: GB_A, action: 'stop' }, 'p2'), { type: 'error', id: 'p2', code: 'GW_ERR_LOCKED', params: { reason: 'ptz', user: 'op1' } });
  t.match(await op1.request('ptz', { cameraId: 'a1', action: 'stop' }), { type: 'error', code: 'GW_ERR_UNSUPPORTED', params: { camera: 'a1' } });
  t.match(await op1.request('ptz', { cameraId: GB_B, action: 'stop' }), { type: 'error', code: 'GW_ERR_NOT_FOUND' });
  t.match(await op1.request('ptz', { cameraId: GB_A, action: 'move', zoom: 3 }), { type: 'error', code: 'GW_ERR_VALIDATION' });
  t.match(await op1.request('ptz', { cameraId: GB_A, action: 'stop' }), { type: 'ack', payload: { mine: true } });
  t.same(sender.sent.map((s) => s.hex), ['A50F01021F0000D6', 'A50F0100000000B5']);
  const schema = await gw.api('GET', '/api/control/schema.json');
  t.match(schema.json.$defs.ptz, { 'x-permission': 'ptz:control' }, 'the published protocol documents the message');

  // The console closes mid-pan (a crash, a pulled cable): nobody is left to release the button.
  t.match(await op1.request('ptz', { cameraId: GB_A, action: 'move', pan: 1 }), { type: 'ack', payload: { mine: true, leaseMs: 5_000 } });
  op1.close();
  await waitFor(() => sender.sent.length, (n) => n === 4, 3_000, 20, 'the gateway to stop the camera');
  t.equal(sender.sent[3]!.hex, 'A50F0100000000B5', 'the gateway stops the camera its closed connection left moving');
  t.match(await op2.request('ptz', { cameraId: GB_A, action: 'stop' }), { type: 'ack', payload: { holder: { username: 'op2' } } }, 'and the camera is free for the next operator at once');
  const auditor = await gw.userToken('aud', ['auditor'], ['root']);
  t.match((await gw.api('GET', '/api/audit?action=ptz.auto-stop', { token: auditor })).json.items, [{ actor: 'op1', target: GB_A, outcome: 'ok', detail: { reason: 'connectionClosed' } }], 'audited as an automatic stop');
});

t.test('without the GB service a GB channel answers GW_ERR_UNAVAILABLE; with it, an unregistered device says so', async (t) => {
  const off = await startControlGateway(t, { gb28181: { enabled: false } });
  await gbChannel(off, GB_A, 'countyA');
  const op = await off.userToken('op', ['operator'], ['countyA']);
  t.match(await off.api('POST', `/api/cameras/${GB_A}/ptz`, { token: op, body: { action: 'stop' } }), { status: 503, json: { code: 'GW_ERR_UNAVAILABLE' } });

  // The GB service is the sender when no test replaces it (app.ts): a device that never registered cannot be reached.
  const on = await startControlGateway(t);
  await gbChannel(on, GB_A, 'countyA');
  const op2 = await on.userToken('op', ['operator'], ['countyA']);
  const res = await on.api('POST', `/api/cameras/${GB_A}/ptz`, { token: op2, body: { action: 'stop' } });
  t.match(res, { status: 502, json: { code: 'GW_ERR_CAMERA_UNREACHABLE' } }, res.body);
  const auditor = await on.userToken('aud', ['auditor'], ['root']);
  t.match((await on.api('GET', '/api/audit?action=ptz.command', { token: auditor })).json.items, [{ outcome: 'failed', detail: { error: 'GW_ERR_CAMERA_UNREACHABLE' } }], 'the failed command is audited');
});

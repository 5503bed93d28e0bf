import t from 'tap';
import { GatewayError, notFound } from '../../../gateway/src/errors.js';
import { PtzService, type PtzActor } from '../../../gateway/src/ptz/service.js';
import type { AuditEntry, SourceRecord } from '../../../gateway/src/store/types.js';
import { RecordingPtzSender } from '../../helpers/ptz.js';

const source = (id: string, departmentId: string, protocol: SourceRecord['protocol'] = 'gb28181') =>
  ({ id, departmentId, deptPath: `/root/${departmentId}/`, protocol, url: protocol === 'gb28181' ? `gb28181://34020000001320000001/${id}` : 'rtsp://10.0.0.1/s' }) as SourceRecord;

const CAMERAS = [source('gbA', 'countyA'), source('gbB', 'countyB'), source('rtspA', 'countyA', 'rtsp')];
const actor = (id: string, roles: PtzActor['roles'], scopes = ['countyA']): PtzActor => ({ id, username: id, ip: '127.0.0.1', scopes, roles });
const op1 = actor('op1', ['operator']);
const op2 = actor('op2', ['operator']);
const sup = actor('sup', ['supervisor']);
const regulator = actor('reg', ['regulator']);

/** A clock of the test's own unless `realClock`: the automatic stop's timers run on the real one. */
function setup(config = { leaseMs: 30_000, commandsPerSec: 5 }, sender: RecordingPtzSender | null = new RecordingPtzSender(), realClock = false) {
  let now = 1_000_000;
  const audit: Omit<AuditEntry, 'seq'>[] = [];
  const cameras = {
    // The registry's scope rule: a camera outside the actor's departments is not found.
    async getSource(a: PtzActor, id: string) {
      const s = CAMERAS.find((c) => c.id === id);
      if (!s || !a.scopes.includes(s.departmentId)) throw notFound(`source "${id}"`);
      return s;
    },
  };
  const ptz = new PtzService(cameras, async (e) => void audit.push(e), sender, config, realClock ? Date.now : () => now);
  t.teardown(() => ptz.close());
  return { ptz, audit, sender, advance: (ms: number) => (now += ms), now: () => now };
}

const code = async (p: Promise<unknown>) =>
  p.then(
    () => 'ok',
    (e: GatewayError) => `${e.code}${e.params?.reason ? `:${e.params.reason}` : ''}`,
  );

t.test('a command is encoded, sent to the channel, audited, and takes the lease', async (t) => {
  const { ptz, audit, sender } = setup();
  const state = await ptz.command(op1, 'gbA', { action: 'move', pan: -1, speed: 0x1f });
  t.same(sender!.sent, [{ cameraId: 'gbA', url: 'gb28181://34020000001320000001/gbA', hex: 'A50F01021F0000D6' }]);
  t.match(state, { cameraId: 'gbA', supported: true, holder: { userId: 'op1', username: 'op1' }, until: 1_030_000, mine: true, canTakeOver: false });
  t.match(audit, [{ actor: 'op1', action: 'ptz.command', target: 'gbA', outcome: 'ok', scopePath: '/root/countyA/', detail: { command: { action: 'move', pan: -1, speed: 31 }, ptzCmd: 'A50F01021F0000D6' } }]);
  await ptz.command(op1, 'gbA', { action: 'stop' });
  t.equal(sender!.sent[1]!.hex, 'A50F0100000000B5');
  t.equal(audit.length, 2, 'every command audited');
});

t.test('permission and department scope', async (t) => {
  const { ptz, sender } = setup();
  t.equal(await code(ptz.command(regulator, 'gbA', { action: 'stop' })), 'GW_ERR_FORBIDDEN:permission', 'a regulator may watch but not steer');
  t.equal(await code(ptz.state(regulator, 'gbA')), 'GW_ERR_FORBIDDEN:permission');
  t.equal(await code(ptz.command(op1, 'gbB', { action: 'stop' })), 'GW_ERR_NOT_FOUND', 'a camera of another department answers like a missing one');
  t.equal(await code(ptz.command(op1, 'nope', { action: 'stop' })), 'GW_ERR_NOT_FOUND');
  t.equal(await code(ptz.command(op1, 'rtspA', { action: 'stop' })), 'GW_ERR_UNSUPPORTED:ptz', 'an RTSP camera is not steered');
  t.match(await ptz.state(op1, 'rtspA'), { supported: false, holder: null });
  t.equal(sender!.sent.length, 0, 'nothing refused was sent');
});

t.test('one user at a time: the lease, its renewal and expiry, release, and a supervisor taking over', async (t) => {
  const { ptz, audit, sender, advance } = setup({ leaseMs: 10_000, commandsPerSec: 5 });
  await ptz.command(op1, 'gbA', { action: 'move', tilt: 1 });
  const refused = await ptz.command(op2, 'gbA', { action: 'move', tilt: -1 }).catch((e: GatewayError) => e);
  t.match(refused, { code: 'GW_ERR_LOCKED', params: { reason: 'ptz', camera: 'gbA', user: 'op1' } }, 'another operator is told who holds it');
  t.match(await ptz.state(op2, 'gbA'), { holder: { username: 'op1' }, mine: false, canTakeOver: false });
  t.equal(await code(ptz.command(op2, 'gbA', { action: 'stop' }, true)), 'GW_ERR_FORBIDDEN:permission', 'an operator cannot take over');
  advance(9_000);
  await ptz.command(op1, 'gbA', { action: 'stop' });
  advance(9_000);
  t.equal(await code(ptz.command(op2, 'gbA', { action: 'stop' })), 'GW_ERR_LOCKED:ptz', 'each command renews the lease');
  advance(1_001);
  t.equal(await code(ptz.command(op2, 'gbA', { action: 'move', pan: 1 })), 'ok', 'an expired lease is free');
  t.match(await ptz.state(op1, 'gbA'), { holder: { username: 'op2' }, mine: false });

  t.match(await ptz.state(sup, 'gbA'), { canTakeOver: true });
  t.equal(await code(ptz.command(sup, 'gbA', { action: 'stop' })), 'GW_ERR_LOCKED:ptz', 'a supervisor too must ask to take over');
  t.match(await ptz.command(sup, 'gbA', { action: 'stop' }, true), { holder: { username: 'sup' }, mine: true });
  t.match(audit.filter((e) => e.action === 'ptz.takeover'), [{ actor: 'sup', target: 'gbA', detail: { from: 'op2' } }], 'the takeover is audited');
  t.equal(await code(ptz.command(op2, 'gbA', { action: 'stop' })), 'GW_ERR_LOCKED:ptz', 'and the operator has lost it');

  t.match(await ptz.release(op2, 'gbA'), { holder: { username: 'sup' } }, "releasing someone else's lease changes nothing");
  t.match(await ptz.release(sup, 'gbA'), { holder: null, until: null });
  t.equal(await code(ptz.command(op2, 'gbA', { action: 'stop' })), 'ok', 'released: free for anyone');
  t.equal(sender!.sent.length, 5, 'the refused commands were not sent');
});

t.test('the rate limit is per user and camera; a stop after a move always goes', async (t) => {
  const { ptz, sender, advance } = setup({ leaseMs: 30_000, commandsPerSec: 3 });
  const move = { action: 'move', pan: 1 } as const;
  for (let i = 0; i < 3; i++) t.equal(await code(ptz.command(op1, 'gbA', move)), 'ok');
  const limited = await ptz.command(op1, 'gbA', move).catch((e: GatewayError) => e);
  t.match(limited, { code: 'GW_ERR_RATE_LIMITED', params: { reason: 'messages', perSecond: 3 } });
  t.equal(await code(ptz.command(op1, 'gbA', { action: 'stop' })), 'ok', 'the stop that ends a move is never dropped');
  t.equal(await code(ptz.command(op1, 'gbA', { action: 'stop' })), 'GW_ERR_RATE_LIMITED:messages', 'a second stop counts like anything else');
  advance(500);
  t.equal(await code(ptz.command(op1, 'gbA', move)), 'GW_ERR_RATE_LIMITED:messages', 'still within the second');
  advance(501);
  t.equal(await code(ptz.command(op1, 'gbA', move)), 'ok', 'a second later it goes again');
  t.equal(sender!.sent.length, 5);
  // Another camera of the same user has its own count.
  const { ptz: other, sender: s2 } = setup({ leaseMs: 30_000, commandsPerSec: 1 });
  await other.command(op1, 'gbA', move);
  t.equal(await code(other.command(op1, 'gbA', move)), 'GW_ERR_RATE_LIMITED:messages');
  const opBoth = actor('opBoth', ['operator'], ['countyA', 'countyB']);
  t.equal(await code(other.command(opBoth, 'gbB', move)), 'ok', 'another user and camera are not limited by it');
  t.equal(s2!.sent.length, 2);
});

t.test('without a sender GB cameras answer GW_ERR_UNAVAILABLE; a failed send is audited as failed', async (t) => {
  const none = setup(undefined, null);
  t.equal(await code(none.ptz.command(op1, 'gbA', { action: 'stop' })), 'GW_ERR_UNAVAILABLE');
  t.equal(await code(none.ptz.command(op1, 'rtspA', { action: 'stop' })), 'GW_ERR_UNSUPPORTED:ptz', 'a non-GB camera still says why');
  t.match(await none.ptz.state(op1, 'gbA'), { supported: true, holder: null }, 'and no lease was taken');
  const { ptz, audit, sender } = setup();
  sender!.failWith = new GatewayError('GW_ERR_CAMERA_UNREACHABLE', 'device offline', undefined, { reason: 'deviceOffline', device: '34020000001320000001' });
  t.equal(await code(ptz.command(op1, 'gbA', { action: 'move', zoom: 1 })), 'GW_ERR_CAMERA_UNREACHABLE:deviceOffline');
  t.match(audit, [{ action: 'ptz.command', outcome: 'failed', detail: { ptzCmd: /^A50F0110/, error: 'GW_ERR_CAMERA_UNREACHABLE' } }]);
});

t.test('a move left without a stop is stopped by the gateway when its lease runs out, unless repeated; the camera is then free', async (t) => {
  const { ptz, audit, sender: recording } = setup({ leaseMs: 400, commandsPerSec: 50 }, new RecordingPtzSender(), true);
  const sender = recording!;
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  await ptz.command(op1, 'gbA', { action: 'move', pan: 1 });
  for (let i = 0; i < 3; i++) {
    await sleep(100);
    await ptz.command(op1, 'gbA', { action: 'move', pan: 1 });
  }
  t.equal(sender.sent.length, 4, 'a move repeated within the lease (a held button) keeps the camera turning');
  await sleep(600);
  t.same(sender.sent.map((s) => s.hex).slice(4), ['A50F0100000000B5'], 'once nobody repeats it or stops it, the gateway stops the camera');
  t.match(audit.at(-1), { actor: 'op1', action: 'ptz.auto-stop', target: 'gbA', outcome: 'ok', detail: { reason: 'leaseExpired' } });
  t.match(await ptz.state(op2, 'gbA'), { holder: null }, 'and nobody holds it');

  await ptz.command(op2, 'gbA', { action: 'move', tilt: 1 });
  await ptz.command(op2, 'gbA', { action: 'stop' });
  await ptz.command(op2, 'gbA', { action: 'preset', op: 'goto', preset: 2 });
  await sleep(600);
  t.equal(sender.sent.filter((s) => s.hex === 'A50F0100000000B5').length, 2, 'a stopped camera, or one sent to a preset, is left alone');

  const origin = {};
  await ptz.command(op1, 'gbA', { action: 'move', zoom: 1 }, false, origin);
  await ptz.command(actor('op3', ['operator'], ['countyA', 'countyB']), 'gbB', { action: 'move', zoom: 1 }, false, {});
  ptz.originClosed(origin);
  await sleep(10);
  t.same(sender.sent.at(-1), { cameraId: 'gbA', url: 'gb28181://34020000001320000001/gbA', hex: 'A50F0100000000B5' }, "a closed connection's moving camera is stopped at once, and only that one");
  ptz.close();
  await sleep(600);
  t.equal(sender.sent.at(-1)!.cameraId, 'gbA', 'after close nothing more is sent (gbB is left to its device)');
});

t.test('an automatic stop the device does not take is audited as failed, with the code', async (t) => {
  const { ptz, audit, sender: recording } = setup({ leaseMs: 30_000, commandsPerSec: 50 }, new RecordingPtzSender(), true);
  const sender = recording!;
  const origin = {};
  await ptz.command(op1, 'gbA', { action: 'move', pan: -1 }, false, origin);
  sender.failWith = new GatewayError('GW_ERR_CAMERA_UNREACHABLE', 'the device is offline');
  ptz.originClosed(origin);
  await new Promise((r) => setTimeout(r, 20));
  t.match(audit.at(-1), { action: 'ptz.auto-stop', target: 'gbA', outcome: 'failed', detail: { reason: 'connectionClosed', error: 'GW_ERR_CAMERA_UNREACHABLE' } });
});

import t from 'tap';
import type { ControlClient } from '../../../scripts/sim/control-client.js';
import { startVehicleGateway, vehicleBody, type VehicleGateway } from '../../helpers/vehicles.js';

const FAST = { vehicles: { offlineAfterSec: 5, clearedCloseAfterSec: 1, subscriptions: { minIntervalMs: 500 } } };
const RESERVED = ['s4-1', 's4-2', 's4-3', 's4-4'];

async function rule(gw: VehicleGateway, body: Record<string, unknown>) {
  const res = await gw.api('POST', '/api/linkage-rules', { token: gw.adminToken, body: { name: 'serious alarms', departmentId: 'city', wallId: 'alarm-wall', tileIds: RESERVED, priority: 50, match: { minSeverity: 'high' }, ...body } });
  if (res.status !== 201) throw new Error(res.body);
  return res.json;
}

/** Waits for the wall delta that shows or ends `popup`-ish changes, and returns the wall after it. */
async function wallWhere(screen: ControlClient, ok: (wall: any) => boolean, timeoutMs = 5_000): Promise<any> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const wall = screen.walls.get('alarm-wall');
    if (wall && ok(wall)) return wall;
    if (Date.now() > deadline) throw new Error(`wall never got there: ${JSON.stringify(Object.values(wall?.popups ?? {}))}`);
    await screen.next((m) => m.type === 'wall.deltas', Math.max(1, deadline - Date.now()), screen.messages.length).catch(() => undefined);
  }
}

t.test('an alarm puts the vehicle\'s channels on the reserved tiles, pre-warms them, and the wall comes back when it closes', async (t) => {
  const gw = await startVehicleGateway(t, FAST);
  await gw.addVehicle(vehicleBody('v1', '粤A11111', 'countyA', {}, 4));
  await rule(gw, { channels: [2, 1] });
  const op = await gw.userToken('op', ['operator'], ['city']);
  const screen = await gw.client(op);
  const before = await screen.subscribe('alarm-wall');
  const assigned = await screen.request('tile.assign', { wallId: 'alarm-wall', baseVersion: before.version, tileId: 's4-1', content: { kind: 'camera', cameraId: 'a2' } });
  t.equal(assigned.type, 'ack');
  const regA = await gw.client(await gw.userToken('reg-a', ['regulator'], ['countyA']));
  const regB = await gw.client(await gw.userToken('reg-b', ['regulator'], ['countyB']));
  t.same((await regA.request('alarms.subscribe', {})).payload.alarms, []);
  await regB.request('alarms.subscribe', {});

  // A medium alarm matches no rule: recorded and notified, but the wall stays as it is.
  const medium = await gw.alarms([{ vehicleId: 'v1', type: 'overspeed', severity: 'medium', at: Date.now(), lat: 32.05, lon: 118.78 }]);
  t.equal(medium.raised.length, 1);
  const sent = Date.now();
  const serious = await gw.alarms([{ plate: '粤A11111', type: 'collision-warning', severity: 'critical', at: Date.now() }]);
  const alarmId = serious.raised[0];
  const wall = await wallWhere(screen, (w) => Object.keys(w.popups).length === 1);
  t.comment(`alarm to wall delta at the screen: ${Date.now() - sent} ms`);
  const popup = Object.values(wall.popups)[0] as any;
  t.match(popup, { label: /粤A11111 .*collision warning/, priority: 50, alarmId, vehicleId: 'v1' });
  t.match(wall.tiles['s4-1'], { popup: popup.id, content: { kind: 'camera', cameraId: 'a2' }, stream: { cameraId: 'v1-ch2' } }, 'channel 2 first, as the rule orders; the tile keeps its own content underneath');
  t.match(wall.tiles['s4-2'], { popup: popup.id, stream: { cameraId: 'v1-ch1' } });
  t.match(wall.tiles['s4-3'], { popup: null, stream: null }, 'two channels chosen, two tiles used');
  t.ok(gw.streams.sessionFor('v1-ch2', 'main') && gw.streams.sessionFor('v1-ch1', 'main'), 'the channels\' streams were pre-warmed');

  const raised = await regA.next((m) => m.type === 'alarm' && m.payload.alarm.id === alarmId);
  t.match(raised.payload, { change: 'raised', alarm: { plate: '粤A11111', type: 'collision-warning', severity: 'critical', state: 'raised' } }, 'the regulator of the vehicle\'s department hears of it');
  const linked = await regA.next((m) => m.type === 'alarm' && m.payload.alarm.id === alarmId && m.payload.alarm.linkages.length > 0);
  t.equal(linked.payload.alarm.linkages.length, 1);
  t.match(linked.payload.alarm.linkages, [{ wallId: 'alarm-wall', popupId: popup.id, endedAt: null }], 'and where its cameras went');
  t.equal(regB.messages.filter((m) => m.type === 'alarm').length, 0, 'another department\'s regulator hears nothing');

  // The tiles under the pop-up are not reassigned behind its back.
  const refused = await screen.request('tile.assign', { wallId: 'alarm-wall', baseVersion: wall.version, tileId: 's4-2', content: { kind: 'empty' } });
  t.match(refused, { type: 'error', code: 'GW_ERR_LOCKED', message: /alarm pop-up/ });

  const reg = await gw.userToken('reg-a2', ['regulator'], ['countyA']);
  const ack = await gw.api('POST', `/api/alarms/${alarmId}/ack`, { token: reg, body: { note: '已电话联系司机 called the driver' } });
  t.match(ack, { status: 200, json: { state: 'acknowledged', acknowledgedBy: 'reg-a2' } });
  t.equal((await gw.api('POST', `/api/alarms/${alarmId}/ack`, { token: reg })).status, 409, 'acknowledged once');
  t.equal((await gw.api('POST', `/api/alarms/${alarmId}/close`, { token: await gw.userToken('reg-b2', ['regulator'], ['countyB']) })).status, 404, 'another department cannot close it');
  const closed = await regA.request('alarm.close', { alarmId, note: 'handled' });
  t.match(closed, { type: 'ack', payload: { alarm: { state: 'closed', closedBy: 'reg-a', closeReason: 'handled' } } });
  const restored = await wallWhere(screen, (w) => Object.keys(w.popups).length === 0);
  t.match(restored.tiles['s4-1'], { popup: null, stream: { cameraId: 'a2' } }, 'the tile shows its own camera again');
  t.match(restored.tiles['s4-2'], { popup: null, stream: null });
  t.match(await gw.api('POST', `/api/alarms/${alarmId}/ack`, { token: reg }), { status: 409, json: { message: /is closed \(by reg-a\)/ } }, 'a closed alarm is a conflict, not a missing one');
  t.equal((await gw.api('POST', `/api/alarms/${alarmId}/close`, { token: reg })).status, 409);

  const audit = (await gw.api('GET', '/api/audit?limit=100', { token: await gw.userToken('aud', ['auditor'], ['root']) })).json.items;
  t.match(audit.find((e: { action: string }) => e.action === 'alarm.acknowledge'), { actor: 'reg-a2', target: alarmId, detail: { note: '已电话联系司机 called the driver', plate: '粤A11111' } }, 'the acknowledgement is audited');
  t.match(audit.find((e: { action: string }) => e.action === 'alarm.close'), { actor: 'reg-a', target: alarmId });
  t.ok(audit.some((e: { action: string }) => e.action === 'wall.popup.show') && audit.some((e: { action: string }) => e.action === 'wall.popup.end'), 'the wall change is audited too');
  const listed = await gw.api('GET', '/api/alarms?state=closed', { token: reg });
  t.same(listed.json.items.map((a: { id: string }) => a.id), [alarmId]);
  t.match((await gw.api('GET', `/api/alarms/${alarmId}`, { token: reg })).json, { state: 'closed', note: 'handled', linkages: [{ endedAt: Number }] });
});

t.test('pop-ups pre-empt by priority, and each comes back in turn; an operator may dismiss one', async (t) => {
  const gw = await startVehicleGateway(t, FAST);
  await gw.addVehicle(vehicleBody('v1', '粤A11111', 'countyA', {}, 2));
  await gw.addVehicle(vehicleBody('v2', '粤A22222', 'countyA', { category: 'dangerous-goods', hazardClass: '2.1' }, 2));
  await rule(gw, { id: 'low', priority: 10, match: { types: ['overspeed'] } });
  await rule(gw, { id: 'high', priority: 90, match: { categories: ['dangerous-goods'], types: ['leak'] } });
  const screen = await gw.client(gw.adminToken);
  await screen.subscribe('alarm-wall');

  const low = (await gw.alarms([{ vehicleId: 'v1', type: 'overspeed', severity: 'high', at: Date.now() }])).raised[0];
  let wall = await wallWhere(screen, (w) => w.tiles['s4-1'].stream?.cameraId === 'v1-ch1');
  const lowPopup = wall.tiles['s4-1'].popup;
  const high = (await gw.alarms([{ vehicleId: 'v2', type: 'leak', severity: 'critical', at: Date.now() }])).raised[0];
  wall = await wallWhere(screen, (w) => w.tiles['s4-1'].stream?.cameraId === 'v2-ch1');
  t.match(wall.tiles['s4-2'], { stream: { cameraId: 'v2-ch2' } }, 'the leak pre-empts the overspeed');
  t.equal(Object.keys(wall.popups).length, 2, 'the overspeed waits under it');

  await gw.api('POST', `/api/alarms/${high}/close`, { token: gw.adminToken });
  wall = await wallWhere(screen, (w) => w.tiles['s4-1'].stream?.cameraId === 'v1-ch1');
  t.equal(wall.tiles['s4-1'].popup, lowPopup, 'the lower one shows again when the higher closes');

  const dismissed = await gw.api('DELETE', `/api/walls/alarm-wall/popups/${lowPopup}`, { token: await gw.userToken('op', ['operator'], ['city']) });
  t.equal(dismissed.status, 200, dismissed.body);
  t.equal((await gw.api('DELETE', `/api/walls/alarm-wall/popups/${lowPopup}`, { token: gw.adminToken })).status, 404, 'a pop-up that is gone is not found');
  wall = await wallWhere(screen, (w) => Object.keys(w.popups).length === 0);
  t.equal(wall.tiles['s4-1'].stream, null);
  const alarm = (await gw.api('GET', `/api/alarms/${low}`, { token: gw.adminToken })).json;
  t.match(alarm, { state: 'raised', linkages: [{ endedAt: Number }] }, 'the alarm stays open without its pop-up');
});

t.test('flapping: repeats and re-raises fold into one alarm and one pop-up; it closes itself once the condition stays over', async (t) => {
  const gw = await startVehicleGateway(t, FAST);
  await gw.addVehicle(vehicleBody('v1', '粤A11111', 'countyA', {}, 1));
  await rule(gw, {});
  const screen = await gw.client(gw.adminToken);
  const start = (await screen.subscribe('alarm-wall')).version;
  const report = (state: 'raised' | 'cleared') => gw.alarms([{ vehicleId: 'v1', type: 'fatigue-driving', severity: 'high', state, at: Date.now() }]);
  const first = await report('raised');
  await report('cleared');
  const again = await report('raised');
  await report('raised');
  await report('cleared');
  t.equal(first.raised.length, 1);
  t.same(again.repeated, first.raised, 'a re-raise within the window is the same alarm');
  const id = first.raised[0];
  await wallWhere(screen, (w) => Object.keys(w.popups).length === 1);
  const alarm = (await gw.api('GET', `/api/alarms/${id}`, { token: gw.adminToken })).json;
  t.match(alarm, { state: 'raised', occurrences: 3, active: false, clearedAt: Number });
  // Auto-close after vehicles.clearedCloseAfterSec (1 s) of quiet, at the next sweep.
  const closedWall = await wallWhere(screen, (w) => Object.keys(w.popups).length === 0, 6_000);
  t.match((await gw.api('GET', `/api/alarms/${id}`, { token: gw.adminToken })).json, { state: 'closed', closeReason: 'cleared', closedBy: 'system' });
  const shows = screen.messages.filter((m) => m.type === 'wall.deltas').flatMap((m) => m.payload.deltas).filter((d: { cause: string; version: number }) => d.version > start && d.cause === 'popup.show');
  t.equal(shows.length, 1, 'the wall changed once for five reports');
  t.ok(closedWall.version <= start + 2, 'and once more to restore');
});

t.test('geofences raise their rule\'s alarm on entry; late reports are recorded without linkage; a hold ends the pop-up early', async (t) => {
  const gw = await startVehicleGateway(t, FAST);
  await gw.addVehicle(vehicleBody('dg', '粤A33333', 'countyA', { category: 'dangerous-goods', hazardClass: '3' }, 1));
  await gw.addVehicle(vehicleBody('bus', '粤A44444', 'countyA', {}, 1));
  const fence = await gw.api('POST', '/api/geofences', {
    token: gw.adminToken,
    body: { id: 'school', name: '实验小学 school zone', departmentId: 'city', shape: { kind: 'circle', center: [118.78, 32.05], radiusM: 500 }, rules: [{ forbid: 'enter', categories: ['dangerous-goods'], severity: 'high' }] },
  });
  t.equal(fence.status, 201, fence.body);
  const badFence = await gw.api('POST', '/api/geofences', { token: gw.adminToken, body: { name: 'x', departmentId: 'city', shape: { kind: 'polygon', points: [[1, 2]] }, rules: [] } });
  t.match(badFence, { status: 400, json: { issues: [{ field: /^shape/ }] } });
  await rule(gw, { holdSec: 1, match: { geofenceIds: ['school'], types: ['geofence-enter'] } });
  const screen = await gw.client(gw.adminToken);
  await screen.subscribe('alarm-wall');
  const now = Date.now();
  const at = (i: number) => now - 10_000 + i * 1000;
  await gw.positions([
    { vehicleId: 'dg', lat: 32.06, lon: 118.78, speed: 40, heading: 180, at: at(0) },
    { vehicleId: 'bus', lat: 32.06, lon: 118.78, speed: 40, heading: 180, at: at(0) },
  ]);
  await gw.positions([
    { vehicleId: 'dg', lat: 32.051, lon: 118.78, speed: 40, heading: 180, at: at(1) },
    { vehicleId: 'bus', lat: 32.051, lon: 118.78, speed: 40, heading: 180, at: at(1) },
  ]);
  const alarms = (await gw.api('GET', '/api/alarms', { token: gw.adminToken })).json.items;
  t.equal(alarms.length, 1, 'only the dangerous-goods truck broke the rule');
  t.match(alarms[0], { vehicleId: 'dg', type: 'geofence-enter', severity: 'high', geofence: { id: 'school', name: '实验小学 school zone' }, position: { lat: 32.051 } });
  await wallWhere(screen, (w) => w.tiles['s4-1'].stream?.cameraId === 'dg-ch1');
  await gw.positions([{ vehicleId: 'dg', lat: 32.06, lon: 118.78, speed: 40, heading: 0, at: at(2) }]);
  t.equal((await gw.api('GET', '/api/alarms', { token: gw.adminToken })).json.items.length, 1, 'leaving raises nothing under an enter rule');
  // holdSec 1: off the wall after a second, the alarm still open.
  await wallWhere(screen, (w) => Object.keys(w.popups).length === 0, 4_000);
  t.match((await gw.api('GET', `/api/alarms/${alarms[0].id}`, { token: gw.adminToken })).json, { state: 'raised', linkages: [{ endedAt: Number }] });

  const version = screen.walls.get('alarm-wall')!.version;
  await rule(gw, { id: 'any', match: {} });
  const late = await gw.alarms([{ vehicleId: 'bus', type: 'emergency-button', severity: 'critical', at: Date.now() - 20 * 60_000 }]);
  const lateAlarm = (await gw.api('GET', `/api/alarms/${late.raised[0]}`, { token: gw.adminToken })).json;
  t.equal(lateAlarm.late, true);
  t.same(lateAlarm.linkages, [], 'a twenty-minute-old alarm (a terminal catching up) pops nothing up');
  // The silence is what is under test: a late alarm must not change the wall, so nothing can be waited for.
  await new Promise((r) => setTimeout(r, 300));
  t.equal(screen.walls.get('alarm-wall')!.version, version, 'the wall did not change');
  const liveAt = Date.now();
  const live = await gw.alarms([{ vehicleId: 'bus', type: 'emergency-button', severity: 'critical', at: liveAt }]);
  t.same(live.repeated, late.raised, 'the live report folds into the caught-up alarm');
  const shown = await wallWhere(screen, (w) => Object.values(w.popups).some((p: any) => p.alarmId === late.raised[0]));
  const popup = Object.values(shown.popups).find((p: any) => p.alarmId === late.raised[0]) as { at: number };
  t.ok(popup.at >= liveAt, 'and now that it is live, its cameras go up: the pop-up came with the live report, not the late one');

  // A batch that enters and leaves a fence between two reports still raises the fence's alarm.
  await gw.addVehicle(vehicleBody('dg2', '粤A66666', 'countyA', { category: 'dangerous-goods', hazardClass: '2.1' }, 1));
  await gw.positions([
    { vehicleId: 'dg2', lat: 32.06, lon: 118.78, speed: 40, heading: 180, at: at(3) },
    { vehicleId: 'dg2', lat: 32.05, lon: 118.78, speed: 40, heading: 180, at: at(4) },
    { vehicleId: 'dg2', lat: 32.04, lon: 118.78, speed: 40, heading: 180, at: at(5) },
  ]);
  const dg2 = (await gw.api('GET', '/api/alarms?vehicleId=dg2', { token: gw.adminToken })).json.items;
  t.match(dg2, [{ type: 'geofence-enter', position: { lat: 32.05 } }]);
  t.equal(dg2.length, 1);
  const badRule = await gw.api('POST', '/api/linkage-rules', { token: gw.adminToken, body: { name: 'x', departmentId: 'city', wallId: 'alarm-wall', tileIds: ['s9-1'], priority: 5, match: { geofenceIds: ['nope'] } } });
  t.match(badRule, { status: 400, json: { issues: [{ field: 'tileIds[0]' }] } });
  const foreignWall = await gw.api('POST', '/api/linkage-rules', { token: await gw.userToken('sup-b', ['supervisor'], ['countyB']), body: { name: 'x', departmentId: 'countyB', wallId: 'alarm-wall', tileIds: ['s1-1'], priority: 5, match: {} } });
  t.match(foreignWall, { status: 400, json: { issues: [{ field: 'wallId', message: /no wall "alarm-wall" in your scope/ }] } }, 'a wall outside the user\'s departments cannot be a rule\'s target');
});

t.test('an open alarm follows its vehicle to another department; deleting the vehicle closes it, audited', async (t) => {
  const gw = await startVehicleGateway(t, FAST);
  await gw.addVehicle(vehicleBody('v1', '粤A11111', 'countyA', {}, 1));
  const regA = await gw.userToken('reg-a', ['regulator'], ['countyA']);
  const regB = await gw.userToken('reg-b', ['regulator'], ['countyB']);
  const id = (await gw.alarms([{ vehicleId: 'v1', type: 'overspeed', severity: 'medium', at: Date.now() }])).raised[0];
  t.equal((await gw.api('GET', `/api/alarms/${id}`, { token: regA })).status, 200);
  const moved = await gw.api('PATCH', '/api/vehicles/v1', { token: gw.adminToken, headers: { 'if-match': '"1"' }, body: { departmentId: 'countyB' } });
  t.equal(moved.status, 200, moved.body);
  t.equal((await gw.api('GET', `/api/alarms/${id}`, { token: regA })).status, 404, 'the department it left no longer sees it');
  t.match((await gw.api('GET', `/api/alarms/${id}`, { token: regB })).json, { departmentId: 'countyB', state: 'raised' }, 'the department it joined does');
  t.same((await gw.api('GET', '/api/alarms', { token: regB })).json.items.map((a: { id: string }) => a.id), [id], 'also in the stored list');

  t.equal((await gw.api('DELETE', '/api/vehicles/v1', { token: gw.adminToken })).status, 204);
  t.match((await gw.api('GET', `/api/alarms/${id}`, { token: regB })).json, { state: 'closed', note: 'vehicle deleted' });
  const audit = (await gw.api('GET', '/api/audit?action=alarm.close', { token: await gw.userToken('aud', ['auditor'], ['root']) })).json.items;
  t.match(audit, [{ target: id, detail: { reason: 'vehicle deleted' } }]);
  t.match((await gw.positions([{ vehicleId: 'v1', lat: 32, lon: 118, speed: 0, heading: 0, at: Date.now() }])).rejected, [{ field: 'vehicleId' }], 'nothing lands on a deleted vehicle');
});

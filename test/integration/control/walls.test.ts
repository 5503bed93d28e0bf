import { join } from 'node:path';
import t from 'tap';
import { ControlClient } from '../../../scripts/sim/control-client.js';
import type { ControlActor } from '../../../gateway/src/control/walls.js';
import { messageSchemas, type MessageType } from '../../../gateway/src/control/protocol.js';
import { SqliteStore } from '../../../gateway/src/store/sqlite/index.js';
import { SCREENS_2X2, startControlGateway } from '../../helpers/control.js';
import { camera } from '../../helpers/gateway.js';

t.test('subscribe gives a snapshot; an assignment reaches every subscriber as the next version', async (t) => {
  const gw = await startControlGateway(t);
  const wallId = await gw.createWall({ id: 'main-wall', name: '指挥大厅 Main hall', departmentId: 'countyA', screens: SCREENS_2X2, layout: '9' });
  const op = await gw.userToken('op', ['operator'], ['countyA']);
  const alice = await gw.client(op);
  const screen = await gw.client(op, { viaSubprotocol: true });

  const wall = structuredClone(await alice.subscribe(wallId));
  await screen.subscribe(wallId);
  t.equal(Object.keys(wall.tiles).length, 36, 'four monitors of nine tiles');
  t.match(wall.tiles['s1-1'], { width: 640, height: 360, content: { kind: 'empty' }, stream: null });

  const ack = await alice.request('tile.assign', { wallId, baseVersion: wall.version, tileId: 's1-1', content: { kind: 'camera', cameraId: 'a1' } }, 'assign-1');
  t.equal(ack.type, 'ack', JSON.stringify(ack));
  t.equal(ack.payload.version, wall.version + 1);
  const seen = await screen.untilVersion(wallId, wall.version + 1);
  t.match(seen.tiles['s1-1'], {
    content: { kind: 'camera', cameraId: 'a1', name: 'Camera a1', departmentId: 'countyA' },
    // A 640-pixel tile plays the sub-stream of a camera that has one.
    stream: { cameraId: 'a1', profile: 'sub' },
    by: 'op',
  });
  const delta = screen.messages.find((m) => m.type === 'wall.deltas')!.payload.deltas[0];
  t.match(delta, { cause: 'tile.assign', ref: 'assign-1', by: 'op' }, 'the delta names its cause, author and request');

  // A layout with one big tile: the camera stays on tile 1, which now plays its main stream.
  const big = await alice.request('layout.set', { wallId, baseVersion: ack.payload.version, target: 1, layout: '1+5' });
  t.equal(big.type, 'ack', JSON.stringify(big));
  const after = await screen.untilVersion(wallId, big.payload.version);
  t.match(after.tiles['s1-1'], { rowSpan: 2, colSpan: 2, width: 1280, stream: { cameraId: 'a1', profile: 'main' } });
  t.equal(Object.keys(after.tiles).filter((id) => id.startsWith('s1-')).length, 6);
  t.equal(Object.keys(after.tiles).filter((id) => id.startsWith('s2-')).length, 9, 'the other monitors keep their layout');

  // One layout across the whole wall.
  const across = await alice.request('layout.set', { wallId, baseVersion: big.payload.version, target: 'wall', layout: { rows: 4, cols: 4, cells: [{ row: 0, col: 0, rowSpan: 2, colSpan: 4 }, { row: 2, col: 0, rowSpan: 2, colSpan: 2 }] } });
  t.equal(across.type, 'ack', JSON.stringify(across));
  const spanned = await screen.untilVersion(wallId, across.payload.version);
  t.same(Object.keys(spanned.tiles), ['wall-1', 'wall-2']);
  t.match(spanned.tiles['wall-1'], { width: 3840, height: 1080 });

  // Clients that applied every delta hold exactly what a fresh snapshot shows.
  const fresh = await gw.api('GET', `/api/walls/${wallId}`, { token: op });
  t.same(screen.walls.get(wallId), fresh.json.wall);
  t.same(alice.walls.get(wallId), fresh.json.wall);
  t.same(screen.gaps, []);
});

t.test('two operators change the same tile at once: one wins, the other gets a conflict with the new state', async (t) => {
  const gw = await startControlGateway(t);
  const wallId = await gw.createWall({ name: 'Wall', departmentId: 'countyA', screens: SCREENS_2X2, layout: '4' });
  const alice = await gw.client(await gw.userToken('alice', ['operator'], ['countyA']));
  const bob = await gw.client(await gw.userToken('bob', ['operator'], ['countyA']));
  const { version } = await alice.subscribe(wallId);
  await bob.subscribe(wallId);

  const [a, b] = await Promise.all([
    alice.request('tile.assign', { wallId, baseVersion: version, tileId: 's2-3', content: { kind: 'camera', cameraId: 'a1' } }),
    bob.request('tile.assign', { wallId, baseVersion: version, tileId: 's2-3', content: { kind: 'camera', cameraId: 'a2' } }),
  ]);
  const [winner, loser] = a.type === 'ack' ? [a, b] : [b, a];
  t.equal(winner.type, 'ack');
  t.match(loser, { type: 'error', code: 'GW_ERR_VERSION_CONFLICT' });
  const winnerCamera = winner === a ? 'a1' : 'a2';
  t.equal(loser.current.version, version + 1, 'the conflict carries the wall as it is now');
  t.equal(loser.current.tiles['s2-3'].content.cameraId, winnerCamera);
  t.equal(loser.current.tiles['s2-3'].by, winner === a ? 'alice' : 'bob');

  // A change to another tile based on the same older version still applies: only what changed conflicts.
  const other = await (loser === a ? alice : bob).request('tile.assign', { wallId, baseVersion: version, tileId: 's2-4', content: { kind: 'camera', cameraId: 'a3' } });
  t.equal(other.type, 'ack', JSON.stringify(other));
  // And over REST the same rule answers 412 with the current wall.
  const rest = await gw.api('PUT', `/api/walls/${wallId}/tiles/s2-3`, { token: gw.adminToken, body: { baseVersion: version, content: { kind: 'empty' } } });
  t.equal(rest.status, 412);
  t.equal(rest.json.current.tiles['s2-3'].content.cameraId, winnerCamera);
  const ahead = await alice.request('tile.assign', { wallId, baseVersion: 999, tileId: 's2-3', content: { kind: 'empty' } });
  t.match(ahead, { code: 'GW_ERR_VALIDATION', issues: [{ field: 'baseVersion' }] });
  const wall = await bob.untilVersion(wallId, version + 2);
  t.equal(wall.tiles['s2-3']!.content.kind, 'camera', 'the loser changed nothing');
});

t.test('locks: others are refused, the holder unlocks, a supervisor breaks the lock and it is audited', async (t) => {
  const gw = await startControlGateway(t);
  const wallId = await gw.createWall({ name: 'Wall', departmentId: 'countyA', screens: SCREENS_2X2, layout: '4' });
  const alice = await gw.client(await gw.userToken('alice', ['operator'], ['countyA']));
  const bob = await gw.client(await gw.userToken('bob', ['operator'], ['countyA']));
  const boss = await gw.client(await gw.userToken('boss', ['supervisor'], ['city']));
  await alice.subscribe(wallId);
  await bob.subscribe(wallId);

  const locked = await alice.request('lock', { wallId, tileIds: ['s1-1', 's1-2'] });
  t.equal(locked.type, 'ack', JSON.stringify(locked));
  const wall = await bob.untilVersion(wallId, locked.payload.version);
  t.match(wall.tiles['s1-1']!.lock, { username: 'alice' }, 'everyone sees who holds the lock');

  const refused = await bob.request('tile.assign', { wallId, baseVersion: wall.version, tileId: 's1-2', content: { kind: 'camera', cameraId: 'a2' } });
  t.match(refused, { type: 'error', code: 'GW_ERR_LOCKED', lock: { tileId: 's1-2', username: 'alice' }, params: { reason: 'tile', tile: 's1-2', user: 'alice' } });
  t.match(await bob.request('unlock', { wallId, tileIds: ['s1-1'] }), { code: 'GW_ERR_LOCKED' }, 'only the holder unlocks');
  t.match(await bob.request('layout.set', { wallId, baseVersion: wall.version, target: 1, layout: '9' }), { code: 'GW_ERR_LOCKED' }, 'nor can the layout under a lock change');
  t.match(await bob.request('lock.break', { wallId, tileIds: ['s1-1'] }), { code: 'GW_ERR_FORBIDDEN' }, 'an operator cannot break a lock');

  // The holder still drives the locked tile.
  t.equal((await alice.request('tile.assign', { wallId, baseVersion: wall.version, tileId: 's1-2', content: { kind: 'camera', cameraId: 'a1' } })).type, 'ack');
  t.equal((await alice.request('unlock', { wallId, tileIds: ['s1-2'] })).type, 'ack');

  const broken = await boss.request('lock.break', { wallId, tileIds: ['s1-1'] });
  t.match(broken, { type: 'ack', payload: { broken: [{ tile: 's1-1', holder: 'alice' }] } });
  const now = await bob.untilVersion(wallId, broken.payload.version);
  t.equal(now.tiles['s1-1']!.lock, null);
  t.equal((await bob.request('tile.assign', { wallId, baseVersion: now.version, tileId: 's1-1', content: { kind: 'camera', cameraId: 'a2' } })).type, 'ack');

  const auditor = await gw.userToken('aud', ['auditor'], ['root']);
  const log = await gw.api('GET', '/api/audit?action=wall.lock.break', { token: auditor });
  t.match(log.json.items, [{ actor: 'boss', action: 'wall.lock.break', target: wallId, detail: { broken: [{ tile: 's1-1', holder: 'alice' }] } }]);
  const assigns = await gw.api('GET', '/api/audit?action=wall.assign', { token: auditor });
  t.same(assigns.json.items.map((e: { actor: string }) => e.actor), ['bob', 'alice'], 'every assignment records who made it');
});

t.test('presets are saved and recalled; an emergency plan pre-empts the wall and revert restores it', async (t) => {
  const gw = await startControlGateway(t);
  const wallId = await gw.createWall({ name: 'Wall', departmentId: 'countyA', screens: { rows: 1, cols: 2, width: 1920, height: 1080 }, layout: '4' });
  const op = await gw.client(await gw.userToken('op', ['operator'], ['countyA']));
  const boss = await gw.client(await gw.userToken('boss', ['supervisor'], ['countyA']));
  let wall = await op.subscribe(wallId);
  const assign = async (tileId: string, cameraId: string) => {
    const r = await op.request('tile.assign', { wallId, baseVersion: op.walls.get(wallId)!.version, tileId, content: { kind: 'camera', cameraId } });
    t.equal(r.type, 'ack', JSON.stringify(r));
    await op.untilVersion(wallId, r.payload.version);
  };
  await assign('s1-1', 'a1');
  await assign('s2-4', 'a2');
  const saved = await op.request('preset.save', { wallId, name: '早班 Morning' });
  t.equal(saved.type, 'ack', JSON.stringify(saved));
  t.match(await op.request('preset.save', { wallId, name: '早班 Morning' }), { code: 'GW_ERR_CONFLICT' }, 'preset names are unique per wall');

  // Change everything, then recall.
  const layout = await op.request('layout.set', { wallId, baseVersion: op.walls.get(wallId)!.version, target: 'each', layout: '16' });
  await op.untilVersion(wallId, layout.payload.version);
  const recalled = await op.request('preset.recall', { wallId, presetId: saved.payload.id, baseVersion: layout.payload.version });
  t.equal(recalled.type, 'ack', JSON.stringify(recalled));
  wall = await op.untilVersion(wallId, recalled.payload.version);
  t.equal(Object.keys(wall.tiles).length, 8);
  t.match(wall.tiles['s1-1']!.content, { cameraId: 'a1' });
  t.match(wall.tiles['s2-4']!.content, { cameraId: 'a2' });

  // An operator may activate a plan but not define one.
  t.match(await op.request('plan.save', { wallId, name: 'x', priority: 5 }), { code: 'GW_ERR_FORBIDDEN' });
  // The supervisor composes the plans' picture (one spanned layout with a3 large), saves it, and recalls the morning preset.
  await boss.subscribe(wallId);
  const across = await boss.request('layout.set', { wallId, baseVersion: boss.walls.get(wallId)!.version, target: 'wall', layout: '1+5' });
  await boss.untilVersion(wallId, across.payload.version);
  const big = await boss.request('tile.assign', { wallId, baseVersion: across.payload.version, tileId: 'wall-1', content: { kind: 'camera', cameraId: 'a3' } });
  t.equal(big.type, 'ack', JSON.stringify(big));
  const floodPlan = await boss.request('plan.save', { wallId, name: '防汛 Flood', priority: 10 });
  const fire = await boss.request('plan.save', { wallId, name: '火警 Fire', priority: 50 });
  const drill = await boss.request('plan.save', { wallId, name: '演练 Drill', priority: 5 });
  t.equal(floodPlan.type, 'ack', JSON.stringify(floodPlan));
  const back = await boss.request('preset.recall', { wallId, presetId: saved.payload.id, baseVersion: big.payload.version });
  await op.untilVersion(wallId, back.payload.version);
  await assign('s1-2', 'a3');
  const lock = await op.request('lock', { wallId, tileIds: ['s1-2'] });
  const before = structuredClone(await op.untilVersion(wallId, lock.payload.version));
  t.match(await boss.request('layout.set', { wallId, baseVersion: lock.payload.version, target: 'wall', layout: '1' }), { code: 'GW_ERR_LOCKED' }, "an operator's lock holds against a supervisor's changes");

  const activated = await op.request('plan.activate', { wallId, planId: floodPlan.payload.id });
  t.equal(activated.type, 'ack', JSON.stringify(activated));
  wall = await op.untilVersion(wallId, activated.payload.version);
  t.match(wall.plan, { planId: floodPlan.payload.id, priority: 10, activatedBy: 'op' });
  t.same(Object.keys(wall.tiles), ['wall-1', 'wall-2', 'wall-3', 'wall-4', 'wall-5', 'wall-6'], "the plan's layout replaces the wall's");
  t.match(wall.tiles['wall-1'], { content: { cameraId: 'a3' }, lock: null });

  t.match(await op.request('plan.activate', { wallId, planId: drill.payload.id }), { code: 'GW_ERR_CONFLICT' }, 'a lower-priority plan cannot pre-empt');
  const fired = await op.request('plan.activate', { wallId, planId: fire.payload.id });
  t.equal(fired.type, 'ack', 'a higher-priority plan pre-empts the active one');
  wall = await op.untilVersion(wallId, fired.payload.version);
  t.match(wall.plan, { name: '火警 Fire', priority: 50 });

  // Meanwhile operators keep working on the plan's wall; revert goes back to the state before any plan.
  await assign('wall-2', 'a1');
  const reverted = await op.request('plan.revert', { wallId });
  t.equal(reverted.type, 'ack', JSON.stringify(reverted));
  wall = await op.untilVersion(wallId, reverted.payload.version);
  t.equal(wall.plan, null);
  for (const id of Object.keys(before.tiles)) {
    t.same(wall.tiles[id]!.content, before.tiles[id]!.content, `tile ${id} is back`);
    t.same(wall.tiles[id]!.lock, before.tiles[id]!.lock, `tile ${id}'s lock is back`);
  }
  t.same(wall.regions, before.regions);
  t.match(await op.request('plan.revert', { wallId }), { code: 'GW_ERR_CONFLICT' }, 'nothing left to revert');

  const auditor = await gw.userToken('aud', ['auditor'], ['root']);
  const log = await gw.api('GET', '/api/audit?action=wall.plan.activate', { token: auditor });
  t.equal(log.json.items.length, 2);
  t.match(log.json.items[1], { actor: 'op', detail: { name: '防汛 Flood', brokenLocks: ['s1-2:op'] } }, 'activation records the locks it overrode');
  const presets = await gw.api('GET', `/api/walls/${wallId}/presets`, { token: gw.adminToken });
  t.same(presets.json.presets.map((p: { name: string }) => p.name).sort(), ['早班 Morning', '演练 Drill', '火警 Fire', '防汛 Flood'].sort());
});

t.test('department scope: nobody sees or drives a wall, or assigns a camera, outside their departments', async (t) => {
  const gw = await startControlGateway(t);
  const wallA = await gw.createWall({ name: 'County A wall', departmentId: 'countyA', screens: SCREENS_2X2 });
  const wallB = await gw.createWall({ name: 'County B wall', departmentId: 'countyB', screens: SCREENS_2X2 });
  const bTok = await gw.userToken('bop', ['operator'], ['countyB']);
  const b = await gw.client(bTok);

  const list = await b.request('walls.list');
  t.same(list.payload.walls.map((w: { id: string }) => w.id), [wallB], 'only their walls are listed');
  t.match(await b.request('subscribe', { wallId: wallA }), { type: 'error', code: 'GW_ERR_NOT_FOUND' });
  t.match(await b.request('tile.assign', { wallId: wallA, baseVersion: 1, tileId: 's1-1', content: { kind: 'empty' } }), { code: 'GW_ERR_NOT_FOUND' });
  t.match(await b.request('lock', { wallId: wallA, tileIds: ['s1-1'] }), { code: 'GW_ERR_NOT_FOUND' });
  const foreign = await b.request('tile.assign', { wallId: wallB, baseVersion: 1, tileId: 's1-1', content: { kind: 'camera', cameraId: 'a1' } });
  t.match(foreign, { code: 'GW_ERR_VALIDATION', issues: [{ field: 'content.cameraId' }] }, 'a camera of another department is refused like a missing one');
  t.match(await b.request('tour.start', { wallId: wallB, baseVersion: 1, name: 't', tileIds: ['s1-1'], departmentId: 'countyA', dwellSec: 10 }), {
    code: 'GW_ERR_VALIDATION',
    issues: [{ field: 'departmentId' }],
  });
  t.match(await b.request('wall.create', { name: 'x', departmentId: 'countyB', screens: SCREENS_2X2 }), { code: 'GW_ERR_FORBIDDEN' }, 'operators do not create walls');
  t.equal((await gw.api('GET', `/api/walls/${wallA}`, { token: bTok })).status, 404);
  t.equal((await gw.api('PUT', `/api/walls/${wallA}/tiles/s1-1`, { token: bTok, body: { baseVersion: 1, content: { kind: 'empty' } } })).status, 404);
  const regulator = await gw.userToken('reg', ['regulator'], ['countyB']);
  t.equal((await gw.api('PUT', `/api/walls/${wallB}/tiles/s1-1`, { token: regulator, body: { baseVersion: 1, content: { kind: 'empty' } } })).status, 403, 'a regulator watches walls but does not drive them');
  t.equal((await gw.api('PUT', `/api/walls/${wallB}/tiles/s1-1`, { token: bTok, body: { baseVersion: 1, content: { kind: 'empty' } } })).status, 200);
});

t.test('REST: the same operations for scripts, delivered to WebSocket subscribers', async (t) => {
  const gw = await startControlGateway(t);
  const tok = gw.adminToken;
  const created = await gw.api('POST', '/api/walls', { token: tok, body: { id: 'ops', name: 'Ops', departmentId: 'city', screens: { rows: 1, cols: 1, width: 3840, height: 2160 }, layout: '4' } });
  t.equal(created.status, 201, created.body);
  t.equal((await gw.api('POST', '/api/walls', { token: tok, body: { id: 'ops', name: 'Ops', departmentId: 'city', screens: SCREENS_2X2 } })).status, 409);
  const bad = await gw.api('POST', '/api/walls', { token: tok, body: { name: '', departmentId: 'nope', screens: { rows: 0, cols: 1, width: 1, height: 1 }, layout: '7' } });
  t.equal(bad.status, 400);
  t.match(bad.json.issues.map((i: { field: string }) => i.field).sort(), ['name', 'screens.height', 'screens.rows', 'screens.width'].sort());
  const badLayout = await gw.api('PUT', '/api/walls/ops/layout', { token: tok, body: { baseVersion: 1, target: 1, layout: { rows: 2, cols: 2, cells: [{ row: 0, col: 0, rowSpan: 2, colSpan: 2 }, { row: 1, col: 1, rowSpan: 1, colSpan: 1 }] } } });
  t.match(badLayout.json, { code: 'GW_ERR_VALIDATION', issues: [{ field: 'layout.cells[1]', message: 'overlaps an earlier tile' }] });
  t.match((await gw.api('PUT', '/api/walls/ops/layout', { token: tok, body: { baseVersion: 1, target: 1, layout: '7' } })).json.issues, [{ field: 'layout' }]);

  const screen = await gw.client(tok);
  await screen.subscribe('ops');
  const put = await gw.api('PUT', '/api/walls/ops/tiles/s1-4', { token: tok, body: { baseVersion: 1, content: { kind: 'camera', cameraId: 'b1', profile: 'main' } } });
  t.equal(put.status, 200, put.body);
  const wall = await screen.untilVersion('ops', put.json.version);
  t.match(wall.tiles['s1-4'], { width: 1920, stream: { cameraId: 'b1', profile: 'main' }, by: 'admin' });
  const get = await gw.api('GET', '/api/walls/ops', { token: tok });
  t.match(get.json, { wall: { version: put.json.version }, status: { 's1-4': { state: 'idle' } } }, 'the snapshot carries each tile\'s stream state');
  t.equal((await gw.api('DELETE', '/api/walls/ops', { token: tok })).status, 200);
  const removed = await screen.next((m) => m.type === 'wall.removed');
  t.same(removed.payload, { wallId: 'ops' }, 'subscribers learn the wall is gone');
  t.equal((await gw.api('GET', '/api/walls/ops', { token: tok })).status, 404);
});

t.test('demo mode seeds a working wall: live cameras on its tiles and a tour over the rest', async (t) => {
  const gw = await startControlGateway(t, { demo: { enabled: true, sources: 10, liveCameraBase: 'rtsp://127.0.0.1:8554', liveCameras: 20 } });
  const wall = (await gw.api('GET', '/api/walls/demo-wall', { token: gw.adminToken })).json.wall;
  const cameras = Object.values(wall.tiles as Record<string, { content: { kind: string; cameraId?: string } }>).filter((x) => x.content.kind === 'camera');
  t.equal(cameras.length, 15);
  t.ok(cameras.every((x) => /^live-\d{3}$/.test(x.content.cameraId!)), 'every tile shows a live demo camera');
  const tours = Object.values(wall.tours as Record<string, { cameraCount: number; tileIds: string[] }>);
  // 20 live cameras, every twelfth H.265: 19 for the wall, 15 on tiles and 4 touring.
  t.match(tours, [{ tileIds: ['s4-4'], cameraCount: 4 }], 'the last tile tours the remaining H.264 cameras');
  // The demo fleet's channels are played from the vehicles' own terminals (scripts/jt-sim.ts).
  const channel = (await gw.api('GET', '/api/sources/veh-00001-ch1', { token: gw.adminToken })).json;
  t.match(channel, { protocol: 'jt1078', url: 'jt1078://veh-00001/1', subUrl: 'jt1078://veh-00001/1?stream=1' });
  t.match((await gw.api('GET', '/api/vehicles/veh-00001', { token: gw.adminToken })).json, { sim: '14401000000', terminalId: 'T100000' }, 'known to the JT/T 808 server by its SIM');
});

t.test('a change the store cannot write is not acknowledged, not sent, and leaves the wall as it was', async (t) => {
  const gw = await startControlGateway(t);
  const wallId = await gw.createWall({ name: 'Wall', departmentId: 'countyA', screens: SCREENS_2X2, layout: '4' });
  const op = await gw.client(gw.adminToken);
  const screen = await gw.client(gw.adminToken);
  const before = structuredClone(await op.subscribe(wallId));
  await screen.subscribe(wallId);
  const save = gw.store.walls.save.bind(gw.store.walls);
  gw.store.walls.save = async () => {
    throw new Error('disk full');
  };
  const failed = await op.request('layout.set', { wallId, baseVersion: before.version, target: 'wall', layout: '9' });
  t.match(failed, { type: 'error', code: 'GW_ERR_INTERNAL' });
  t.notMatch(JSON.stringify(failed), /disk full/, 'the store\'s words stay in the log');
  gw.store.walls.save = save;
  const now = await gw.api('GET', `/api/walls/${wallId}`, { token: gw.adminToken });
  t.same(now.json.wall, before, 'the wall in memory is what the store holds');
  const retried = await op.request('tile.assign', { wallId, baseVersion: before.version, tileId: 's1-1', content: { kind: 'camera', cameraId: 'a1' } });
  t.match(retried, { type: 'ack', payload: { version: before.version + 1 } }, 'the next change takes the next version');
  const seen = await screen.untilVersion(wallId, before.version + 1);
  t.same(Object.keys(seen.tiles).length, 16, 'subscribers never saw the failed layout');
  t.same(screen.gaps, []);
  t.match(gw.logs.join(''), /disk full/);
});

t.test('deltas show only committed state: a refused lock changes nothing, even while an earlier change waits to be sent', async (t) => {
  // A long flush interval keeps the second change waiting in the batch while the refused lock runs.
  const gw = await startControlGateway(t, { control: { flushIntervalMs: 800 } });
  const wallId = await gw.createWall({ name: 'Wall', departmentId: 'countyA', screens: SCREENS_2X2, layout: '4' });
  const alice = await gw.client(await gw.userToken('alice', ['operator'], ['countyA']));
  const bob = await gw.client(await gw.userToken('bob', ['operator'], ['countyA']));
  const screen = await gw.client(gw.adminToken);
  await screen.subscribe(wallId);
  t.equal((await alice.request('lock', { wallId, tileIds: ['s1-2'] })).type, 'ack');
  const assigned = await alice.request('tile.assign', { wallId, baseVersion: 2, tileId: 's1-1', content: { kind: 'camera', cameraId: 'a1' } });
  t.equal(assigned.type, 'ack');
  t.match(await bob.request('lock', { wallId, tileIds: ['s1-1', 's1-2'] }), { code: 'GW_ERR_LOCKED', lock: { tileId: 's1-2' } });
  const seen = await screen.untilVersion(wallId, assigned.payload.version);
  t.equal(seen.tiles['s1-1']!.lock, null, 'the refused lock never reached a screen');
  t.same(seen, (await gw.api('GET', `/api/walls/${wallId}`, { token: gw.adminToken })).json.wall);
});

t.test('a tour losing a tile re-spreads its cameras over the tiles it keeps, and screens see it', async (t) => {
  const gw = await startControlGateway(t);
  const wallId = await gw.createWall({ name: 'Wall', departmentId: 'countyA', screens: { rows: 1, cols: 1, width: 1920, height: 1080 }, layout: '4' });
  const op = await gw.client(gw.adminToken);
  const screen = await gw.client(gw.adminToken);
  const { version } = await op.subscribe(wallId);
  await screen.subscribe(wallId);
  const tour = await op.request('tour.start', { wallId, baseVersion: version, name: 'Three', tileIds: ['s1-1', 's1-2', 's1-3'], cameras: ['a1', 'a2', 'a3'], dwellSec: 600 });
  t.equal(tour.type, 'ack', JSON.stringify(tour));
  const before = await screen.untilVersion(wallId, tour.payload.version);
  t.same(['s1-1', 's1-2', 's1-3'].map((id) => before.tiles[id]!.stream?.cameraId), ['a1', 'a2', 'a3']);
  const took = await op.request('tile.assign', { wallId, baseVersion: tour.payload.version, tileId: 's1-1', content: { kind: 'empty' } });
  const after = await screen.untilVersion(wallId, took.payload.version);
  t.same(after.tours[tour.payload.tourId]!.tileIds, ['s1-2', 's1-3']);
  t.same(['s1-2', 's1-3'].map((id) => after.tiles[id]!.stream?.cameraId), ['a1', 'a2'], 'step 0 now spreads a1, a2 over the two tiles left');
  const stopped = await op.request('tour.stop', { wallId, tourId: tour.payload.tourId });
  const frozen = await screen.untilVersion(wallId, stopped.payload.version);
  t.same(['s1-2', 's1-3'].map((id) => (frozen.tiles[id]!.content as { cameraId?: string }).cameraId), ['a1', 'a2'], 'stopping keeps what the tiles showed');
  t.match(await op.request('tour.stop', { wallId, tourId: 'constructor' }), { code: 'GW_ERR_VALIDATION', issues: [{ field: 'tourId' }] });
  t.same(screen.walls.get(wallId), (await gw.api('GET', `/api/walls/${wallId}`, { token: gw.adminToken })).json.wall);
});

t.test('a department moved out of a user\'s scope takes its walls from their open connection', async (t) => {
  const gw = await startControlGateway(t, { control: { heartbeatMs: 200 } });
  const wallId = await gw.createWall({ name: 'Town wall', departmentId: 'townA', screens: SCREENS_2X2 });
  const op = await gw.client(await gw.userToken('op', ['operator'], ['countyA']));
  await op.subscribe(wallId);
  const moved = await gw.api('PATCH', '/api/departments/townA', { token: gw.adminToken, body: { parentId: 'countyB' } });
  t.equal(moved.status, 200, moved.body);
  const removed = await op.next((m) => m.type === 'wall.removed', 3_000);
  t.same(removed.payload, { wallId });
  const admin = await gw.client(gw.adminToken);
  await admin.subscribe(wallId);
  const assign = await gw.api('PUT', `/api/walls/${wallId}/tiles/s1-1`, { token: gw.adminToken, body: { baseVersion: 1, content: { kind: 'empty' } } });
  t.equal(assign.status, 200);
  // Once a subscriber has the change, it has been sent to every subscriber; a reply on op's own
  // connection then comes after anything the gateway sent op before it.
  await admin.untilVersion(wallId, assign.json.version);
  t.equal((await op.request('walls.list')).type, 'ack');
  t.notOk(op.messages.some((m) => m.type === 'wall.deltas'), 'and it gets no more of its changes');
});

t.test('rename, unsubscribe, preset and plan deletion, department tours and the connection caps', async (t) => {
  const gw = await startControlGateway(t, { control: { maxConnections: 3, maxSubscriptions: 1 } });
  const wallId = await gw.createWall({ name: 'Wall', departmentId: 'countyA', screens: SCREENS_2X2, layout: '4' });
  const otherWall = await gw.createWall({ name: 'Other', departmentId: 'countyA', screens: SCREENS_2X2 });
  t.equal((await gw.api('POST', '/api/sources', { token: gw.adminToken, body: camera('a4', 'countyA', { tags: ['学校'] }) })).status, 201);
  const op = await gw.client(gw.adminToken);
  const screen = await gw.client(gw.adminToken);
  await op.subscribe(wallId);
  await screen.subscribe(wallId);
  t.match(await screen.request('subscribe', { wallId: otherWall }), { code: 'GW_ERR_CAPACITY', message: /control.maxSubscriptions/ });
  const extra = await gw.client(gw.adminToken);
  const fourth = await ControlClient.connect(gw.wsUrl, gw.adminToken).then(() => null, (err: { status: number; body: string }) => err);
  t.match(fourth, { status: 503, body: /control.maxConnections/ }, 'a fourth connection is over control.maxConnections');
  await extra.close();

  // Rename over REST: any change since baseVersion conflicts; the name reaches screens.
  t.equal((await gw.api('PATCH', `/api/walls/${wallId}`, { token: gw.adminToken, body: { baseVersion: 0, name: 'x' } })).status, 412);
  const renamed = await gw.api('PATCH', `/api/walls/${wallId}`, { token: gw.adminToken, body: { baseVersion: 1, name: '二号大屏 Wall 2' } });
  t.equal(renamed.status, 200, renamed.body);
  t.equal((await screen.untilVersion(wallId, renamed.json.version)).name, '二号大屏 Wall 2');

  // A tour over a department subtree, narrowed by a tag.
  const all = await op.request('tour.start', { wallId, baseVersion: renamed.json.version, name: 'County A', tileIds: ['s1-1'], departmentId: 'countyA', dwellSec: 60 });
  t.equal(all.type, 'ack', JSON.stringify(all));
  const schools = await op.request('tour.start', { wallId, baseVersion: all.payload.version, name: 'Schools', tileIds: ['s1-2'], departmentId: 'countyA', tag: '学校', dwellSec: 60 });
  const toured = await screen.untilVersion(wallId, schools.payload.version);
  t.equal(toured.tours[all.payload.tourId]!.cameraCount, 4, 'a1, a2, a4 and a3 of the town below');
  t.match(toured.tours[schools.payload.tourId], { cameraCount: 1 });
  t.match(toured.tiles['s1-2']!.stream, { cameraId: 'a4' });
  t.match(await op.request('tour.start', { wallId, baseVersion: schools.payload.version, name: 'x', tileIds: ['s1-3'], tag: '学校', dwellSec: 60 }), {
    code: 'GW_ERR_VALIDATION',
    issues: [{ field: 'cameras' }, { field: 'tag' }],
  });

  // Saving and deleting presets and plans tells every screen; an active plan cannot be deleted.
  const saved = await op.request('preset.save', { wallId, name: 'Day' });
  t.match((await screen.next((m) => m.type === 'wall.presets')).payload.presets, [{ id: saved.payload.id, kind: 'preset', name: 'Day' }]);
  const from = screen.messages.length;
  t.equal((await op.request('preset.delete', { wallId, presetId: saved.payload.id })).type, 'ack');
  t.same((await screen.next((m) => m.type === 'wall.presets', 2_000, from)).payload.presets, []);
  t.match(await op.request('preset.recall', { wallId, presetId: saved.payload.id, baseVersion: schools.payload.version }), { code: 'GW_ERR_VALIDATION', issues: [{ field: 'presetId' }] });
  const plan = await op.request('plan.save', { wallId, name: 'Flood', priority: 10 });
  t.equal((await op.request('plan.activate', { wallId, planId: plan.payload.id })).type, 'ack');
  t.match(await op.request('plan.delete', { wallId, planId: plan.payload.id }), { code: 'GW_ERR_CONFLICT', message: /revert it first/ });
  const reverted = await op.request('plan.revert', { wallId });
  t.equal(reverted.type, 'ack');
  await op.untilVersion(wallId, reverted.payload.version);
  t.equal((await gw.api('DELETE', `/api/walls/${wallId}/plans/${plan.payload.id}`, { token: gw.adminToken })).status, 200);
  t.same((await gw.api('GET', `/api/walls/${wallId}/presets`, { token: gw.adminToken })).json.presets, []);

  // After unsubscribing, a screen gets no more of the wall's changes.
  t.match(await screen.request('unsubscribe', { wallId }), { type: 'ack', payload: { wallId } });
  const quiet = screen.messages.length;
  // The revert brought the tours back under fresh ids.
  const restored = Object.values(op.walls.get(wallId)!.tours).find((x) => x.name === 'County A')!;
  const last = await op.request('tour.stop', { wallId, tourId: restored.id });
  t.equal(last.type, 'ack', JSON.stringify(last));
  await op.untilVersion(wallId, last.payload.version);
  // op has the change, so it went to every subscriber; the reply to a request the screen sends now
  // comes after anything the gateway sent the screen before it.
  const barrier = await screen.request('walls.list');
  t.same(screen.messages.slice(quiet), [barrier], 'nothing more arrives');
  t.equal((await screen.subscribe(otherWall)).id, otherWall, 'and the freed subscription can follow another wall');
});

t.test('close() refuses new changes and returns only once every change it accepted is written', async (t) => {
  const gw = await startControlGateway(t);
  const wallId = await gw.createWall({ name: 'Wall', departmentId: 'countyA', screens: SCREENS_2X2, layout: '9' });
  const actor: ControlActor = { id: 'op', username: 'op', ip: '127.0.0.1', scopes: ['countyA'], roles: ['operator'] };
  const tileIds = Object.keys(gw.walls.snapshot(actor, wallId).tiles);
  const cameras = ['a1', 'a2', 'a3'];
  // A burst on every tile, each waiting on a registry read before it reaches the wall's queue; close() at once.
  const settled: { tileId: string; camera: string; version?: number; code?: string }[] = [];
  tileIds.forEach((tileId, i) => {
    const camera = cameras[i % cameras.length]!;
    void gw.walls.execute(actor, 'tile.assign', { wallId, baseVersion: 1, tileId, content: { kind: 'camera', cameraId: camera } }).then(
      (ack) => settled.push({ tileId, camera, version: (ack as { version: number }).version }),
      (err: { code: string }) => settled.push({ tileId, camera, code: err.code }),
    );
  });
  const closed = gw.walls.close();
  const late = await gw.walls.execute(actor, 'tile.assign', { wallId, baseVersion: 1, tileId: 's1-1', content: { kind: 'empty' } }).then(
    () => null,
    (err: { code: string; message: string }) => err,
  );
  t.match(late, { code: 'GW_ERR_UNAVAILABLE', message: /shutting down/ }, 'a change after close() is refused');
  await closed;
  t.equal(settled.length, tileIds.length, 'close() returned after every accepted change was answered');
  t.same(settled.filter((s) => s.code), [], 'and every one of them was acknowledged');

  // The store closes right after, as on SIGTERM; what it holds is what was acknowledged.
  await gw.store.close();
  const reopened = SqliteStore.open(join(gw.config.dataDir, 'wallgate.db'));
  t.teardown(() => reopened.close());
  const row = (await reopened.walls.all()).find((w) => w.id === wallId)!;
  t.equal(row.version, tileIds.length + 1, 'the wall is stored at the last acknowledged version');
  for (const s of settled) t.match(JSON.parse(row.tiles.get(s.tileId)!), { content: { kind: 'camera', cameraId: s.camera }, v: s.version }, `${s.tileId} as acknowledged`);
});

t.test('every message type reaches the section that handles it; subscribing is for the WebSocket only', async (t) => {
  const gw = await startControlGateway(t);
  const admin: ControlActor = { id: 'admin', username: 'admin', ip: '127.0.0.1', scopes: ['root'], roles: ['admin'] };
  for (const type of Object.keys(messageSchemas) as MessageType[]) {
    const err = await gw.walls.execute(admin, type, { unknownField: 1 }).then(() => null, (e: { code: string; message: string }) => e);
    if (type === 'subscribe' || type === 'unsubscribe') t.match(err, { code: 'GW_ERR_BAD_MESSAGE', message: /WebSocket message/ }, type);
    else t.match(err, { code: 'GW_ERR_VALIDATION', message: /unknownField/ }, `${type}: its payload is checked, then handled`);
  }
});

t.test('REST: every route group refuses a bad field by name, with the checks the WebSocket uses, and changes nothing', async (t) => {
  const gw = await startControlGateway(t);
  const tok = gw.adminToken;
  const wallId = await gw.createWall({ id: 'ops', name: 'Ops', departmentId: 'countyA', screens: SCREENS_2X2, layout: '4' });
  const op = await gw.client(tok);
  const { version } = await op.subscribe(wallId);
  const refused = async (method: string, url: string, body: unknown, field: string, what: string) => {
    const res = await gw.api(method, url, { token: tok, ...(body === undefined ? {} : { body }) });
    t.equal(res.status, 400, `${what}: ${res.body}`);
    t.match(res.json, { code: 'GW_ERR_VALIDATION' }, what);
    t.ok(res.json.issues?.some((i: { field: string }) => i.field === field), `${what}: names ${field} (${JSON.stringify(res.json.issues)})`);
  };
  // Walls.
  await refused('POST', '/api/walls', { name: 'X', departmentId: 'countyA', screens: SCREENS_2X2, colour: 'red' }, 'colour', 'an unknown field');
  await refused('PATCH', `/api/walls/${wallId}`, { baseVersion: version, name: 'x'.repeat(101) }, 'name', 'a name too long');
  await refused('GET', '/api/walls/not%20an%20id', undefined, 'params.wallId', 'a wall id that cannot be one');
  // Tiles, layouts and locks: a number is a number, as over the WebSocket (no coercion of "1").
  await refused('PUT', `/api/walls/${wallId}/tiles/s1-1`, { baseVersion: String(version), content: { kind: 'empty' } }, 'baseVersion', 'a version as text');
  const ws = await op.request('tile.assign', { wallId, baseVersion: String(version), tileId: 's1-1', content: { kind: 'empty' } });
  t.match(ws, { type: 'error', code: 'GW_ERR_VALIDATION', issues: [{ field: 'baseVersion' }] }, 'the WebSocket refuses the same field');
  await refused('PUT', `/api/walls/${wallId}/tiles/tile-one`, { baseVersion: version, content: { kind: 'empty' } }, 'params.tileId', 'a tile id that cannot be one');
  await refused('PUT', `/api/walls/${wallId}/tiles/s1-1`, { wallId: 'other', baseVersion: version, content: { kind: 'empty' } }, 'wallId', 'a path id repeated in the body');
  await refused('PUT', `/api/walls/${wallId}/layout`, { baseVersion: version, target: 0, layout: '4' }, 'target', 'monitor 0');
  await refused('POST', `/api/walls/${wallId}/locks`, { tileIds: [] }, 'tileIds', 'no tiles to lock');
  await refused('POST', `/api/walls/${wallId}/locks/break`, ['s1-1'], '(body)', 'a body that is not an object');
  // Tours.
  await refused('POST', `/api/walls/${wallId}/tours`, { baseVersion: version, name: 'T', tileIds: ['s1-1'], cameras: ['a1'], dwellSec: 0 }, 'dwellSec', 'a dwell of 0 s');
  await refused('DELETE', `/api/walls/${wallId}/tours/a%20b`, undefined, 'params.tourId', 'a tour id that cannot be one');
  // Presets and plans.
  await refused('POST', `/api/walls/${wallId}/presets`, { name: '' }, 'name', 'an empty preset name');
  await refused('POST', `/api/walls/${wallId}/plans`, { name: 'Flood', priority: 101 }, 'priority', 'a priority over 100');
  await refused('POST', `/api/walls/${wallId}/plans/revert`, { now: true }, 'now', 'an unknown field on revert');
  // Pop-ups.
  await refused('DELETE', `/api/walls/${wallId}/popups/${'p'.repeat(65)}`, undefined, 'params.popupId', 'a pop-up id too long');

  const after = await gw.api('GET', `/api/walls/${wallId}`, { token: tok });
  t.equal(after.json.wall.version, version, 'no refused call changed the wall');
  t.same((await gw.api('GET', `/api/walls/${wallId}/presets`, { token: tok })).json.presets, []);
});

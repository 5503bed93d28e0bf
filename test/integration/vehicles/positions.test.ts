import t from 'tap';
import { waitFor } from '../../helpers/streams.js';
import { startVehicleGateway, vehicleBody } from '../../helpers/vehicles.js';

const FAST = { vehicles: { offlineAfterSec: 5, subscriptions: { minIntervalMs: 500 } } };

t.test('positions: ordering, staleness and bad reports; the track keeps everything in time order', async (t) => {
  const gw = await startVehicleGateway(t, FAST);
  await gw.addVehicle(vehicleBody('v1', '粤A11111', 'countyA'));
  const now = Date.now();
  const at = (offsetMs: number) => now + offsetMs;
  const p = (offsetMs: number, lon: number, extra: Record<string, unknown> = {}) => ({ vehicleId: 'v1', lat: 32.05, lon, speed: 50, heading: 90, at: at(offsetMs), ...extra });

  const firstTwo = await gw.positions([p(-4000, 118.1), p(-2000, 118.3)]);
  t.match(firstTwo, { accepted: 2, outOfOrder: 0, stale: 0 });
  t.same(firstTwo.rejected, []);
  let v = (await gw.api('GET', '/api/vehicles/v1', { token: gw.adminToken })).json;
  t.match(v.live, { status: 'online', moving: true, position: { lon: 118.3, at: at(-2000) } }, 'the newest position is live');

  const late = await gw.positions([p(-3000, 118.2), p(-400_000, 117.9, { plate: undefined }), p(-2000, 118.3)]);
  t.match(late, { accepted: 3, outOfOrder: 3, stale: 0 }, 'older than the live position (and a repeat): track only');
  v = (await gw.api('GET', '/api/vehicles/v1', { token: gw.adminToken })).json;
  t.equal(v.live.position.lon, 118.3, 'the vehicle did not jump back on the map');

  // A terminal that was out of coverage replays what it stored: its track fills in, the map moves only for fresh news.
  await gw.api('DELETE', '/api/vehicles/v1', { token: gw.adminToken });
  await gw.addVehicle({ ...vehicleBody('v2', '粤A22222', 'countyA'), channels: [] });
  const replay = await gw.positions([{ plate: '粤a 22222', lat: 32, lon: 118, speed: 0, heading: 0, at: new Date(at(-600_000)).toISOString() }]);
  t.match(replay, { accepted: 1, stale: 1 }, 'a ten-minute-old position is stale (vehicles.staleAfterSec 300)');
  const v2 = (await gw.api('GET', '/api/vehicles/v2', { token: gw.adminToken })).json;
  t.match(v2.live, { status: 'online', position: null }, 'heard from, but not placed by a stale position');

  const refused = await gw.positions([
    { vehicleId: 'v2', lat: 91, lon: 118, speed: 0, heading: 0, at: now },
    { vehicleId: 'ghost', lat: 32, lon: 118, speed: 0, heading: 0, at: now },
    { vehicleId: 'v2', lat: 32, lon: 118, speed: 0, heading: 0, at: at(120_000) },
    { vehicleId: 'v2', plate: '粤A22222', lat: 32, lon: 118, speed: 0, heading: 0, at: now },
    { vehicleId: 'v2', lat: 32, lon: 118, speed: 0, heading: 0, at: 'yesterday' },
    { vehicleId: 'v2', lat: 32.01, lon: 118.01, speed: 0, heading: 359, at: now },
  ]);
  const lastReport = Date.now();
  t.match(refused, { accepted: 1 });
  t.same(refused.rejected.map((r: { index: number; field: string }) => `${r.index}:${r.field}`), ['0:lat', '1:vehicleId', '2:at', '3:vehicleId', '4:at']);
  t.match(refused.rejected[2].message, /ahead of the gateway clock/);

  const track = (await gw.api('GET', `/api/vehicles/v2/track?from=${at(-700_000)}`, { token: gw.adminToken })).json.points;
  t.same(track.map((x: { at: number }) => x.at), [at(-600_000), now], 'the stale point is in the track, in time order');
  t.equal((await gw.api('GET', '/api/vehicles/v2/track?from=2026-01-01T00:00:00Z&to=2025-01-01T00:00:00Z', { token: gw.adminToken })).status, 400);
  // Pruning past the window keeps each vehicle's newest point, so it is still on the map after a restart.
  await gw.store.vehicles.prunePositions(now + 1);
  const pruned = (await gw.api('GET', `/api/vehicles/v2/track?from=${at(-700_000)}`, { token: gw.adminToken })).json.points;
  t.same(pruned.map((x: { at: number }) => x.at), [now]);
  const bad = await gw.api('POST', '/api/feed/positions', { token: gw.feedToken, body: { positions: 'x' } });
  t.match(bad, { status: 400, json: { issues: [{ field: 'positions' }] } });

  // Silence makes a vehicle offline.
  await waitFor(async () => (await gw.api('GET', '/api/vehicles/v2', { token: gw.adminToken })).json.live.status, (s) => s === 'offline', 10_000, 250, 'v2 to go offline');
  t.ok(Date.now() - lastReport >= 4_800, `offline after vehicles.offlineAfterSec (5 s) of silence: ${Date.now() - lastReport} ms after the last report`);
});

t.test('position subscriptions over the WebSocket: throttled batches of the latest state, filtered, in scope', async (t) => {
  const gw = await startVehicleGateway(t, FAST);
  await gw.addVehicle(vehicleBody('pa', '粤A10001', 'countyA'));
  await gw.addVehicle(vehicleBody('ta', '粤A10002', 'countyA', { category: 'tourist' }));
  await gw.addVehicle(vehicleBody('db', '粤B10003', 'countyB', { category: 'dangerous-goods', hazardClass: '3' }));
  const feed = await gw.client(gw.feedToken);
  const regA = await gw.client(await gw.userToken('reg-a', ['regulator'], ['countyA']));
  const regAll = await gw.client(await gw.userToken('reg-all', ['regulator'], ['city']));
  const tourists = await gw.client(await gw.userToken('reg-t', ['regulator'], ['city']));
  const boxed = await gw.client(await gw.userToken('reg-box', ['regulator'], ['city']));

  const now = Date.now();
  const first = await feed.request('positions.report', { positions: ['pa', 'ta', 'db'].map((vehicleId) => ({ vehicleId, lat: 32.05, lon: 118.78, speed: 40, heading: 0, at: now })) });
  t.match(first, { type: 'ack', payload: { accepted: 3 } }, 'a feed reports over the WebSocket too');

  const sub = await regA.request('vehicles.subscribe', { intervalMs: 1000 });
  t.match(sub, { type: 'ack', payload: { intervalMs: 1000 } });
  t.same(sub.payload.vehicles.map((v: { id: string }) => v.id).sort(), ['pa', 'ta'], 'the snapshot holds county A only');
  t.match((await regAll.request('vehicles.subscribe', { intervalMs: 10 })).payload, { intervalMs: 500 }, 'no faster than vehicles.subscriptions.minIntervalMs');
  t.same((await tourists.request('vehicles.subscribe', { categories: ['tourist'] })).payload.vehicles.map((v: { id: string }) => v.id), ['ta']);
  t.same((await boxed.request('vehicles.subscribe', { bbox: [118.9, 32.0, 119.1, 32.2] })).payload.vehicles, [], 'nothing inside the box yet');
  t.match(await regA.request('vehicles.subscribe', { bbox: [119, 32, 118, 33] }), { type: 'error', code: 'GW_ERR_VALIDATION', issues: [{ field: 'bbox' }] });
  t.match(await regA.request('vehicles.subscribe', { departmentId: 'countyB' }), { type: 'error', issues: [{ field: 'departmentId' }] });
  t.match(await regA.request('positions.report', { positions: [] }), { type: 'error', code: 'GW_ERR_FORBIDDEN' }, 'a regulator is not a feed');
  await regA.request('vehicles.subscribe', { intervalMs: 1000 });
  const from = regA.messages.length;

  // 30 updates of each vehicle over 3 s; pa ends up inside the box.
  const t0 = Date.now();
  for (let i = 1; i <= 30; i++) {
    const positions = ['pa', 'ta', 'db'].map((vehicleId) => ({ vehicleId, lat: 32.05 + i * 0.001, lon: vehicleId === 'pa' && i === 30 ? 119 : 118.78, speed: 40, heading: 0, at: now + i * 100 }));
    await feed.request('positions.report', { positions });
    // The feed's pace is what is under test: ten reports a second, for the subscriptions to throttle.
    await new Promise((r) => setTimeout(r, t0 + i * 100 - Date.now()));
  }
  const finalPa = (m: { type: string; payload?: any }) => m.type === 'vehicles.positions' && m.payload.positions.some((p: { id: string; lon: number }) => p.id === 'pa' && p.lon === 119);
  await regA.next(finalPa, 3_000, from);
  await boxed.next(finalPa, 3_000);
  await tourists.next((m) => m.type === 'vehicles.positions' && m.payload.positions.some((p: { id: string; at: number }) => p.id === 'ta' && p.at === now + 3000), 3_000);
  const batches = regA.messages.slice(from).filter((m) => m.type === 'vehicles.positions');
  t.ok(batches.length >= 2 && batches.length <= 5, `90 updates in 3 s came as ${batches.length} batches at most a second apart, not 60 messages`);
  for (const b of batches) {
    const ids = b.payload.positions.map((p: { id: string }) => p.id);
    t.same([...new Set(ids)].length, ids.length, 'each vehicle once per batch: its latest state');
    t.notOk(ids.includes('db'), 'never another department\'s vehicle');
  }
  const last = batches[batches.length - 1]!.payload.positions.find((p: { id: string }) => p.id === 'pa');
  t.match(last, { plate: '粤A10001', category: 'passenger', lon: 119, at: now + 3000, status: 'online', moving: true }, 'the last batch carries the final position');
  const tourBatches = tourists.messages.filter((m) => m.type === 'vehicles.positions');
  t.ok(tourBatches.length > 0 && tourBatches.every((b) => b.payload.positions.every((p: { category: string }) => p.category === 'tourist')), 'a category subscription gets that category only');
  const boxIds = boxed.messages.filter((m) => m.type === 'vehicles.positions').flatMap((b) => b.payload.positions.map((p: { id: string }) => p.id));
  t.same([...new Set(boxIds)], ['pa'], 'a box subscription gets what moves into the box');

  t.match(await regA.request('vehicles.unsubscribe', {}), { type: 'ack', payload: { subscribed: true } });
  const quiet = regA.messages.length;
  await feed.request('positions.report', { positions: [{ vehicleId: 'pa', lat: 32.2, lon: 119, speed: 40, heading: 0, at: now + 4000 }] });
  // A subscriber still on (every 500 ms) gets the report: it was processed and batches went out.
  await regAll.next((m) => m.type === 'vehicles.positions' && m.payload.positions.some((p: { id: string; at: number }) => p.id === 'pa' && p.at === now + 4000), 3_000);
  // The silence is what is under test: a whole interval of regA's (1 s) and a little more passes with nothing for it.
  await new Promise((r) => setTimeout(r, 1_200));
  t.equal(regA.messages.slice(quiet).filter((m) => m.type === 'vehicles.positions').length, 0, 'nothing after unsubscribing');
});

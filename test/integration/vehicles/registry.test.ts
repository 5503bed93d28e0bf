import { join } from 'node:path';
import t from 'tap';
import { SqliteStore } from '../../../gateway/src/store/sqlite/index.js';
import type { VehicleActor } from '../../../gateway/src/vehicles/service.js';
import { camera } from '../../helpers/gateway.js';
import { startVehicleGateway, vehicleBody } from '../../helpers/vehicles.js';

t.test('vehicle CRUD: plates normalised, channels are registered cameras, conflicts named', async (t) => {
  const gw = await startVehicleGateway(t);
  const created = await gw.addVehicle(vehicleBody('v1', ' 粤a·12345', 'countyA'));
  t.match(created, { id: 'v1', plate: '粤A12345', plateColor: 'yellow', category: 'passenger', departmentName: 'County A', version: 1, live: { status: 'offline', position: null, openAlarms: 0 } });
  t.equal(created.channels.length, 3);

  const dup = await gw.api('POST', '/api/vehicles', { token: gw.adminToken, body: { ...vehicleBody('v2', '粤A12345', 'countyA'), channels: [] } });
  t.match(dup, { status: 409, json: { code: 'GW_ERR_CONFLICT', message: /^plate: 粤A12345/ } }, 'a plate is registered once');
  const taken = await gw.api('POST', '/api/vehicles', { token: gw.adminToken, body: { ...vehicleBody('v2', '粤A22222', 'countyA'), channels: [{ channel: 1, name: 'front', sourceId: 'v1-ch2' }] } });
  t.match(taken, { status: 409, json: { message: /^channels\[0\]\.sourceId: source "v1-ch2" is another vehicle's channel/ } }, 'a camera is one vehicle\'s channel');
  const missing = await gw.api('POST', '/api/vehicles', { token: gw.adminToken, body: { ...vehicleBody('v2', '粤A22222', 'countyA'), channels: [{ channel: 1, name: 'front', sourceId: 'nope' }] } });
  t.match(missing, { status: 400, json: { issues: [{ field: 'channels[0].sourceId', message: /no camera source "nope"/ }] } });
  const foreign = await gw.api('POST', '/api/vehicles', { token: gw.adminToken, body: { ...vehicleBody('v2', '粤A22222', 'nowhere'), channels: [] } });
  t.match(foreign, { status: 400, json: { issues: [{ field: 'departmentId' }] } });
  const bad = await gw.api('POST', '/api/vehicles', {
    token: gw.adminToken,
    body: { plate: '粤O1234', category: 'dangerous-goods', company: '', departmentId: 'countyA', channels: [{ channel: 0, name: 'x', sourceId: 'a1' }] },
  });
  t.equal(bad.status, 400);
  t.same(bad.json.issues.map((i: { field: string }) => i.field).sort(), ['channels[0].channel', 'company', 'hazardClass', 'plate'], 'every bad field is named, nothing is written');
  t.equal((await gw.api('GET', '/api/vehicles', { token: gw.adminToken })).json.items.length, 1);

  // Deleting a camera that is a vehicle's channel is refused until it is taken off the vehicle.
  const del = await gw.api('DELETE', '/api/sources/v1-ch1', { token: gw.adminToken });
  t.match(del, { status: 409, json: { message: /is a vehicle's camera channel/ } });
  t.notMatch(del.body, /粤A12345/, 'without naming a vehicle the caller may not see');

  const noMatch = await gw.api('PATCH', '/api/vehicles/v1', { token: gw.adminToken, body: { company: 'X' } });
  t.equal(noMatch.status, 428, 'a change needs the version read');
  const patched = await gw.api('PATCH', '/api/vehicles/v1', { token: gw.adminToken, headers: { 'if-match': '"1"' }, body: { category: 'dangerous-goods', hazardClass: '3', unNumber: 'UN1203', cargo: 'petrol', channels: [{ channel: 1, name: 'front', sourceId: 'v1-ch1' }] } });
  t.match(patched, { status: 200, json: { version: 2, category: 'dangerous-goods', cargo: { hazardClass: '3', unNumber: 'UN1203' }, channels: [{ sourceId: 'v1-ch1' }] } });
  t.equal(patched.headers.etag, '"2"');
  const stale = await gw.api('PATCH', '/api/vehicles/v1', { token: gw.adminToken, headers: { 'if-match': '"1"' }, body: { company: 'Y' } });
  t.equal(stale.status, 412, 'a stale version is refused');
  t.equal((await gw.api('DELETE', '/api/sources/v1-ch2', { token: gw.adminToken })).status, 204, 'a camera taken off the vehicle can go');
  const back = await gw.api('PATCH', '/api/vehicles/v1', { token: gw.adminToken, headers: { 'if-match': '"2"' }, body: { category: 'passenger' } });
  t.match(back, { status: 200, json: { category: 'passenger', cargo: null } }, 'a change of category drops the cargo');

  t.equal((await gw.api('DELETE', '/api/vehicles/v1', { token: gw.adminToken })).status, 204);
  t.equal((await gw.api('GET', '/api/vehicles/v1', { token: gw.adminToken })).status, 404);
  t.equal((await gw.api('DELETE', '/api/sources/v1-ch1', { token: gw.adminToken })).status, 204, 'its cameras are free again');
  const audit = await gw.api('GET', '/api/audit?limit=50', { token: await gw.userToken('aud', ['auditor'], ['root']) });
  t.same(audit.json.items.filter((e: { action: string }) => e.action.startsWith('vehicle.')).map((e: { action: string }) => e.action).reverse(), ['vehicle.create', 'vehicle.update', 'vehicle.update', 'vehicle.delete']);
});

t.test('search and filters; a regulator sees only their departments\' vehicles', async (t) => {
  const gw = await startVehicleGateway(t);
  await gw.addVehicle(vehicleBody('pa', '粤A10001', 'countyA', { company: 'Alpha Coaches' }));
  await gw.addVehicle(vehicleBody('ta', '粤A10002', 'townA', { category: 'tourist', company: 'Beta Tours' }));
  await gw.addVehicle(vehicleBody('db', '粤B10003', 'countyB', { category: 'dangerous-goods', hazardClass: '2.1', company: 'Gamma Gas' }));
  const now = Date.now();
  await gw.positions([
    { vehicleId: 'pa', lat: 32.05, lon: 118.78, speed: 60, heading: 90, at: now },
    { vehicleId: 'db', lat: 31.5, lon: 118.2, speed: 0, heading: 0, at: now },
  ]);
  const ids = async (query: string, token = gw.adminToken) => {
    const res = await gw.api('GET', `/api/vehicles${query}`, { token });
    if (res.status !== 200) throw new Error(res.body);
    return res.json.items.map((v: { id: string }) => v.id);
  };
  t.same(await ids(''), ['pa', 'ta', 'db'], 'ordered by plate');
  t.same(await ids('?category=tourist'), ['ta']);
  t.same(await ids('?company=Gamma%20Gas'), ['db']);
  t.same(await ids('?status=online'), ['pa', 'db']);
  t.same(await ids('?moving=true'), ['pa']);
  t.same(await ids('?bbox=118.7,32,118.9,32.1'), ['pa'], 'inside a bounding box, by the last position');
  t.same(await ids('?q=10002'), ['ta'], 'plate search');
  t.same(await ids('?q=%E7%B2%A4b'), ['db'], 'plate search as typed (lower case)');
  t.same(await ids('?departmentId=countyA'), ['pa', 'ta'], 'a department and its subtree');
  const page1 = await gw.api('GET', '/api/vehicles?limit=2', { token: gw.adminToken });
  t.equal(page1.json.items.length, 2);
  t.same(await ids(`?limit=2&cursor=${page1.json.nextCursor}`), ['db'], 'the next page from the cursor');
  t.equal((await gw.api('GET', '/api/vehicles?bbox=1,2,3', { token: gw.adminToken })).status, 400);

  const reg = await gw.userToken('reg-a', ['regulator'], ['countyA']);
  t.same(await ids('', reg), ['pa', 'ta'], 'a county A regulator lists county A only');
  t.equal((await gw.api('GET', '/api/vehicles/db', { token: reg })).status, 404, 'another department\'s vehicle is not found');
  t.equal((await gw.api('GET', '/api/vehicles/db/track', { token: reg })).status, 404);
  t.equal((await gw.api('GET', '/api/vehicles?departmentId=countyB', { token: reg })).status, 404);
  t.equal((await gw.api('POST', '/api/vehicles', { token: reg, body: vehicleBody('x', '粤A99999', 'countyA') })).status, 403, 'a regulator registers nothing');
  t.equal((await gw.api('POST', '/api/feed/positions', { token: reg, body: { positions: [] } })).status, 403, 'nor feeds positions');
});

t.test('bulk import reports errors per row; keep-valid applies the rest, all-or-nothing applies none', async (t) => {
  const gw = await startVehicleGateway(t);
  for (const id of ['c1', 'c2', 'c3', 'c4']) await gw.api('POST', '/api/sources', { token: gw.adminToken, body: { id, name: id, departmentId: 'countyA', url: 'rtsp://10.1.0.5/x' } });
  const csv = [
    'id,plate,category,hazardClass,company,departmentId,channels',
    'i1,粤A30001,passenger,,Alpha,countyA,1:front road:c1;2:driver:c2',
    'i2,粤I30002,passenger,,Alpha,countyA,',
    'i3,粤A30003,dangerous-goods,,Gas Co,countyA,3:tank:c3',
    'i4,粤A30001,tourist,,Beta,countyA,',
    'i5,粤A30005,tourist,,Beta,countyB,1:front:c4',
    'i6,粤A30006,tourist,,Beta,nowhere,1:front:zz',
    '"i7,broken',
  ].join('\n');
  const strict = await gw.api('POST', '/api/vehicles/import?mode=all-or-nothing', { token: gw.adminToken, headers: { 'content-type': 'text/csv' }, payload: csv });
  t.match(strict, { status: 422, json: { code: 'GW_ERR_IMPORT_REJECTED', report: { applied: false } } });
  t.equal((await gw.api('GET', '/api/vehicles', { token: gw.adminToken })).json.items.length, 0, 'nothing written');

  const res = await gw.api('POST', '/api/vehicles/import?mode=keep-valid', { token: gw.adminToken, headers: { 'content-type': 'text/csv' }, payload: csv });
  t.equal(res.status, 200, res.body);
  const r = res.json;
  t.match(r, { applied: true, rows: 7, created: 2, updated: 0, rejected: 5 });
  const errs = r.errors.map((e: { line: number; field: string }) => `${e.line}:${e.field}`);
  t.same(errs, ['3:plate', '4:hazardClass', '5:plate', '7:departmentId', '7:channels[0].sourceId', '8:(row)'], JSON.stringify(r.errors));
  t.match(r.errors[2].message, /also given at line 2/, 'a plate twice in the file names the first line');
  const list = (await gw.api('GET', '/api/vehicles', { token: gw.adminToken })).json.items;
  t.same(list.map((v: { id: string }) => v.id), ['i1', 'i5'], 'valid rows are in, a county B vehicle may use a county A camera the admin sees');

  // Re-importing updates by id; a camera already another vehicle's channel is refused in the store.
  const again = await gw.api('POST', '/api/vehicles/import?mode=keep-valid', {
    token: gw.adminToken,
    headers: { 'content-type': 'application/x-ndjson' },
    payload: [
      JSON.stringify({ id: 'i1', plate: '粤A30001', category: 'tourist', company: 'Alpha', departmentId: 'countyA', channels: [{ channel: 1, name: 'front', sourceId: 'c1' }] }),
      JSON.stringify({ id: 'i9', plate: '粤A30009', category: 'tourist', company: 'Alpha', departmentId: 'countyA', channels: [{ channel: 1, name: 'front', sourceId: 'c4' }] }),
    ].join('\n'),
  });
  t.match(again.json, { applied: true, created: 0, updated: 1, rejected: 1, errors: [{ line: 2, field: 'channels', message: /c4/ }] });
  t.equal((await gw.api('GET', '/api/vehicles/i1', { token: gw.adminToken })).json.category, 'tourist');
});

t.test('close() refuses new changes and returns only once every change it accepted is written', async (t) => {
  const gw = await startVehicleGateway(t);
  const admin: VehicleActor = { id: 'admin', username: 'admin', ip: '127.0.0.1', scopes: ['root'], roles: ['admin'] };
  const bodies = Array.from({ length: 30 }, (_, i) => vehicleBody(`b${i}`, `粤B${String(10000 + i)}`, 'countyA', {}, 2));
  for (const b of bodies) for (const c of b.channels) t.equal((await gw.api('POST', '/api/sources', { token: gw.adminToken, body: camera(c.sourceId, 'countyA') })).status, 201);
  // A burst of registrations, each checking its channels in the registry before it writes; close() at once.
  const settled: { id: string; version?: number; code?: string }[] = [];
  for (const b of bodies) {
    void gw.vehicles.create(admin, b).then(
      (entry) => settled.push({ id: b.id, version: entry.vehicle.version }),
      (err: { code: string }) => settled.push({ id: b.id, code: err.code }),
    );
  }
  const closed = gw.vehicles.close();
  const late = await gw.vehicles.create(admin, vehicleBody('late', '粤B99999', 'countyA', {}, 0)).then(() => null, (err: { code: string; message: string }) => err);
  t.match(late, { code: 'GW_ERR_UNAVAILABLE', message: /shutting down/ }, 'a change after close() is refused');
  await closed;
  t.equal(settled.length, bodies.length, 'close() returned after every accepted change was answered');
  t.same(settled.filter((s) => s.code), [], 'and every one of them was acknowledged');

  // The store closes right after, as on SIGTERM; what it holds is what was acknowledged.
  await gw.store.close();
  const reopened = SqliteStore.open(join(gw.config.dataDir, 'wallgate.db'));
  t.teardown(() => reopened.close());
  const stored = new Map((await reopened.vehicles.all()).map((r) => [r.id, r]));
  for (const s of settled) {
    t.match(JSON.parse(stored.get(s.id)?.doc ?? 'null'), { version: s.version, channels: [{ sourceId: `${s.id}-ch1` }, { sourceId: `${s.id}-ch2` }] }, `${s.id} as acknowledged`);
  }
  t.notOk(stored.has('late'), 'the refused one is not there');
});

t.test('REST: every route group refuses a bad field by name, with the schemas the feed and the import use, and writes nothing', async (t) => {
  const gw = await startVehicleGateway(t);
  await gw.addVehicle(vehicleBody('v1', '粤A12345', 'countyA', {}, 1));
  const refused = async (method: string, url: string, body: unknown, field: string, what: string, token = gw.adminToken, headers: Record<string, string> = {}) => {
    const res = await gw.api(method, url, { token, headers, ...(body === undefined ? {} : { body }) });
    t.equal(res.status, 400, `${what}: ${res.body}`);
    t.match(res.json, { code: 'GW_ERR_VALIDATION' }, what);
    t.ok(res.json.issues?.some((i: { field: string }) => i.field === field), `${what}: names ${field} (${JSON.stringify(res.json.issues)})`);
  };
  // Vehicles.
  await refused('POST', '/api/vehicles', { ...vehicleBody('v2', '粤A22222', 'countyA', {}, 0), colour: 'red' }, 'colour', 'an unknown field');
  await refused('POST', '/api/vehicles', { ...vehicleBody('v2', '粤A22222', 'countyA', {}, 0), company: { name: 'x' } }, 'company', 'an object where text goes');
  await refused('PATCH', '/api/vehicles/v1', { tags: { a: 1 } }, 'tags', 'tags that are neither a list nor text', gw.adminToken, { 'if-match': '"1"' });
  await refused('PUT', `/api/vehicles/${'v'.repeat(65)}`, vehicleBody('v1', '粤A12345', 'countyA', {}, 0), 'params.id', 'an id too long', gw.adminToken, { 'if-match': '"1"' });
  // The feed: the same batch schema as positions.report and alarms.report on the WebSocket.
  await refused('POST', '/api/feed/positions', { positions: [] }, 'positions', 'an empty batch', gw.feedToken);
  await refused('POST', '/api/feed/positions', { position: [{}] }, 'position', 'a misspelt batch', gw.feedToken);
  await refused('POST', '/api/feed/alarms', { alarms: 'overspeed' }, 'alarms', 'alarms that are not a list', gw.feedToken);
  // Alarms.
  const raised = await gw.alarms([{ vehicleId: 'v1', type: 'overspeed', at: Date.now() }]);
  const alarmId = raised.raised[0];
  await refused('POST', `/api/alarms/${alarmId}/ack`, { note: 'x'.repeat(501) }, 'note', 'a note too long');
  await refused('POST', `/api/alarms/${alarmId}/close`, { alarmId, note: 'done' }, 'alarmId', 'the path id repeated in the body');
  // Geofences and linkage rules: the schemas the service checks with.
  const fence = { name: 'Depot', departmentId: 'countyA', shape: { kind: 'circle', center: [113.3, 23.1], radiusM: 0 }, rules: [] };
  await refused('POST', '/api/geofences', fence, 'shape', 'a circle of radius 0');
  await refused('PUT', '/api/geofences/f1', { ...fence, shape: { kind: 'circle', center: [113.3, 23.1], radiusM: 10 }, colour: 'red' }, 'colour', 'an unknown field on a geofence', gw.adminToken, { 'if-match': '"1"' });
  const rule = { name: 'Overspeed', departmentId: 'countyA', match: {}, wallId: 'alarm-wall', tileIds: ['s1-1'], priority: 0 };
  await refused('POST', '/api/linkage-rules', rule, 'priority', 'a priority of 0');
  await refused('PUT', '/api/linkage-rules/r1', { ...rule, priority: 5, tileIds: ['tile one'] }, 'tileIds[0]', 'a tile id that cannot be one', gw.adminToken, { 'if-match': '"1"' });

  t.match((await gw.api('GET', '/api/vehicles/v1', { token: gw.adminToken })).json, { version: 1, tags: [] }, 'the vehicle is as it was');
  t.equal((await gw.api('GET', '/api/vehicles', { token: gw.adminToken })).json.items.length, 1, 'and no other was registered');
  t.match((await gw.api('GET', `/api/alarms/${alarmId}`, { token: gw.adminToken })).json, { state: 'raised', note: null });
  t.same((await gw.api('GET', '/api/geofences', { token: gw.adminToken })).json.items, []);
  t.same((await gw.api('GET', '/api/linkage-rules', { token: gw.adminToken })).json.items, []);
});

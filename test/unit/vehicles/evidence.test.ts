import t, { type Test } from 'tap';
import { GatewayError } from '../../../gateway/src/errors.js';
import type { SqliteStore } from '../../../gateway/src/store/sqlite/index.js';
import type { Snapshot, SnapshotRequest, Snapshotter } from '../../../gateway/src/snapshots/types.js';
import { waitFor } from '../../helpers/streams.js';
import { startVehicleGateway, vehicleBody, type VehicleGateway } from '../../helpers/vehicles.js';

/** A JPEG's first and last bytes around the camera id, so each picture is told apart. */
const jpegOf = (cameraId: string) => Buffer.concat([Buffer.from([0xff, 0xd8, 0xff, 0xe0]), Buffer.from(cameraId), Buffer.from([0xff, 0xd9])]);

/**
 * A snapshot engine under the test's control: each request waits until the test answers it (or
 * answers at once with `auto`), so slowness, failures and concurrency are the test's to choose.
 */
class FakeSnapshotter implements Snapshotter {
  readonly asked: SnapshotRequest[] = [];
  readonly waiting: { req: SnapshotRequest; resolve: (s: Snapshot) => void; reject: (e: Error) => void }[] = [];
  auto: ((req: SnapshotRequest) => Snapshot | Error) | null = (req) => this.picture(req);
  inFlight = 0;
  maxInFlight = 0;

  picture(req: SnapshotRequest, takenAt = Date.now()): Snapshot {
    return { cameraId: req.cameraId, profile: req.profile, jpeg: jpegOf(req.cameraId), width: req.width ?? 1920, height: Math.round(((req.width ?? 1920) * 9) / 16), takenAt };
  }

  take(req: SnapshotRequest): Promise<Snapshot | null> {
    this.asked.push(req);
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    const done = <T>(v: T) => {
      this.inFlight--;
      return v;
    };
    const outcome = this.auto?.(req);
    if (outcome instanceof Error) return Promise.reject(done(outcome));
    if (outcome) return Promise.resolve(done(outcome));
    return new Promise<Snapshot>((resolve, reject) => this.waiting.push({ req, resolve: (s) => resolve(done(s)), reject: (e) => reject(done(e)) }));
  }
}

async function evidenceGateway(t: Test, fake: FakeSnapshotter, snapshots: Record<string, unknown> = {}): Promise<VehicleGateway> {
  const gw = await startVehicleGateway(t, { vehicles: { alarmSnapshots: snapshots } }, { snapshotter: fake });
  await gw.addVehicle(vehicleBody('v1', '粤A11111', 'countyA', {}, 3));
  return gw;
}

const db = (gw: VehicleGateway) => (gw.store as SqliteStore).db;
const alarmOf = async (gw: VehicleGateway, id: string) => (await gw.api('GET', `/api/alarms/${id}`, { token: gw.adminToken })).json;
const pictured = (gw: VehicleGateway, id: string) => waitFor(() => alarmOf(gw, id), (a) => a.snapshot !== null || a.snapshotError !== null, 5_000, 20, `alarm ${id}'s picture`);

t.test('an alarm gets one picture of its vehicle\'s first channel when it opens, served with it and pushed to regulators', async (t) => {
  const fake = new FakeSnapshotter();
  const gw = await evidenceGateway(t, fake);
  const reg = await gw.client(await gw.userToken('reg-a', ['regulator'], ['countyA']));
  await reg.request('alarms.subscribe', {});
  const at = Date.now();
  const { raised } = await gw.alarms([{ vehicleId: 'v1', type: 'overspeed', severity: 'high', at }]);
  const id = raised[0];

  const alarm = await pictured(gw, id);
  t.match(alarm.snapshot, { cameraId: 'v1-ch1', width: 1280, height: 720 }, 'channel 1 of the vehicle, at vehicles.alarmSnapshots.width');
  t.ok(alarm.snapshot.takenAt >= at, 'taken when the alarm opened');
  t.equal(alarm.snapshotError, null);
  t.match(fake.asked, [{ cameraId: 'v1-ch1', profile: 'main', width: 1280, userId: 'system:alarm-evidence' }]);
  t.notOk(fake.asked[0]!.ifLive, 'an idle camera is pulled for it');

  const jpg = await gw.http.inject({ method: 'GET', url: `/api/alarms/${id}/snapshot.jpg`, headers: { authorization: `Bearer ${gw.adminToken}` } });
  t.equal(jpg.statusCode, 200);
  t.equal(jpg.headers['content-type'], 'image/jpeg');
  t.same(jpg.rawPayload, jpegOf('v1-ch1'), 'the bytes the snapshotter gave');
  t.equal(jpg.headers['last-modified'], new Date(alarm.snapshot.takenAt).toUTCString());

  const update = await reg.next((m) => m.type === 'alarm' && m.payload.alarm.id === id && m.payload.alarm.snapshot !== null);
  t.match(update.payload, { change: 'updated', alarm: { snapshot: { cameraId: 'v1-ch1' } } }, 'the regulators\' cards hear of the picture');

  // Handling the alarm rewrites its row: the picture must survive that.
  t.equal((await gw.api('POST', `/api/alarms/${id}/ack`, { token: gw.adminToken })).status, 200);
  t.equal((await gw.api('POST', `/api/alarms/${id}/close`, { token: gw.adminToken })).status, 200);
  t.match(await alarmOf(gw, id), { state: 'closed', snapshot: { cameraId: 'v1-ch1' } });
  t.equal((await gw.api('GET', `/api/alarms/${id}/snapshot.jpg`, { token: gw.adminToken })).status, 200, 'still served once closed');
  t.match((await gw.api('GET', '/api/alarms?state=closed', { token: gw.adminToken })).json.items, [{ id, snapshot: { cameraId: 'v1-ch1' } }], 'and in the list');
});

t.test('the picture comes from the camera the linkage rule puts on the wall first', async (t) => {
  const fake = new FakeSnapshotter();
  const gw = await evidenceGateway(t, fake);
  const res = await gw.api('POST', '/api/linkage-rules', { token: gw.adminToken, body: { name: 'r', departmentId: 'city', wallId: 'alarm-wall', tileIds: ['s4-1', 's4-2'], priority: 50, channels: [3, 1], match: { minSeverity: 'high' } } });
  t.equal(res.status, 201);
  const { raised } = await gw.alarms([{ vehicleId: 'v1', type: 'leak', severity: 'critical', at: Date.now() }]);
  t.match((await pictured(gw, raised[0])).snapshot, { cameraId: 'v1-ch3' });
});

t.test('repeats folded into an open alarm take no picture; a late report takes none until the alarm is live', async (t) => {
  const fake = new FakeSnapshotter();
  const gw = await evidenceGateway(t, fake);
  const first = await gw.alarms([{ vehicleId: 'v1', type: 'overspeed', severity: 'medium', at: Date.now() }]);
  await pictured(gw, first.raised[0]);
  for (let i = 0; i < 3; i++) t.same((await gw.alarms([{ vehicleId: 'v1', type: 'overspeed', severity: 'high', at: Date.now() }])).repeated, first.raised);
  t.equal(fake.asked.length, 1, 'one alarm, one picture');

  const late = await gw.alarms([{ vehicleId: 'v1', type: 'leak', severity: 'high', at: Date.now() - 3_600_000 }]);
  const lateId = late.raised[0];
  t.match(await alarmOf(gw, lateId), { late: true, snapshot: null, snapshotError: null });
  t.equal(fake.asked.length, 1, 'a report an hour late takes no picture of now');
  await gw.alarms([{ vehicleId: 'v1', type: 'leak', severity: 'high', at: Date.now() }]);
  t.match((await pictured(gw, lateId)).snapshot, { cameraId: 'v1-ch1' }, 'the live repeat takes it');
  await gw.alarms([{ vehicleId: 'v1', type: 'leak', severity: 'critical', at: Date.now() }]);
  t.equal(fake.asked.length, 2);
});

t.test('a picture that fails or is slow neither delays nor loses the alarm', async (t) => {
  const fake = new FakeSnapshotter();
  const gw = await evidenceGateway(t, fake);
  fake.auto = () => new GatewayError('GW_ERR_CAMERA_UNREACHABLE', 'camera v1-ch1: connection refused', undefined, { reason: 'unreachable' });
  const failed = (await gw.alarms([{ vehicleId: 'v1', type: 'overspeed', severity: 'high', at: Date.now() }])).raised[0];
  t.same(
    (await pictured(gw, failed)).snapshotError,
    { code: 'GW_ERR_CAMERA_UNREACHABLE', message: 'camera v1-ch1: connection refused', params: { reason: 'unreachable' } },
    'the failure is recorded on the alarm with its code and parameters, for the page to word',
  );
  t.match(await alarmOf(gw, failed), { state: 'raised', snapshot: null });
  t.match(await gw.api('GET', `/api/alarms/${failed}/snapshot.jpg`, { token: gw.adminToken }), { status: 404, json: { code: 'GW_ERR_NOT_FOUND' } });
  t.ok(gw.logs.some((l) => l.includes('alarm picture not taken') && l.includes('GW_ERR_CAMERA_UNREACHABLE')), 'and logged');

  fake.auto = () => {
    throw new Error('a bug in the engine');
  };
  const thrown = (await gw.alarms([{ vehicleId: 'v1', type: 'leak', severity: 'high', at: Date.now() }])).raised[0];
  t.same((await pictured(gw, thrown)).snapshotError, { code: 'GW_ERR_INTERNAL', message: 'the picture could not be taken' }, 'even a snapshotter that throws (its words stay in the log)');

  fake.auto = () => new GatewayError('GW_ERR_UNAVAILABLE', 'the gateway is shutting down');
  const stopped = (await gw.alarms([{ vehicleId: 'v1', type: 'collision-warning', severity: 'high', at: Date.now() }])).raised[0];
  t.ok(stopped, 'the alarm was raised');

  fake.auto = null;
  const started = Date.now();
  const slow = (await gw.alarms([{ vehicleId: 'v1', type: 'fatigue-driving', severity: 'high', at: Date.now() }])).raised[0];
  t.ok(Date.now() - started < 2_000, 'the report is answered while the picture is still being taken');
  t.match(await alarmOf(gw, slow), { state: 'raised', snapshot: null, snapshotError: null });
  t.equal(fake.waiting.length, 1);
  fake.waiting[0]!.resolve(fake.picture(fake.waiting[0]!.req));
  t.match((await pictured(gw, slow)).snapshot, { cameraId: 'v1-ch1' }, 'and gets it when it comes');
  // Asked before the slow one and refused at once: had it been recorded, it would be by now.
  const unpictured = await alarmOf(gw, stopped!);
  t.same([unpictured.id, unpictured.snapshot, unpictured.snapshotError], [stopped, null, null], 'a picture the shutdown stopped is not recorded as a failure');
});

t.test('an alarm storm takes at most maxConcurrent pictures at once and queues at most maxQueued', async (t) => {
  const fake = new FakeSnapshotter();
  fake.auto = null;
  const gw = await evidenceGateway(t, fake, { maxConcurrent: 2, maxQueued: 3 });
  const ids: string[] = [];
  for (let i = 0; i < 10; i++) {
    await gw.addVehicle(vehicleBody(`s${i}`, `粤B0000${i}`, 'countyA', {}, 1));
    ids.push((await gw.alarms([{ vehicleId: `s${i}`, type: 'emergency-button', severity: 'critical', at: Date.now() }])).raised[0]);
  }
  t.equal(fake.waiting.length, 2, 'two pulls at once');
  for (const id of ids.slice(5)) {
    t.match(await pictured(gw, id), { snapshot: null, snapshotError: { code: 'GW_ERR_CAPACITY', params: { reason: 'alarmPictures', limit: 5 } } }, 'past the queue: no picture, and why');
  }
  for (let released = 0; released < 5; released++) {
    await waitFor(() => fake.waiting.length, (n) => n > 0, 2_000, 10, 'a queued picture to start');
    const w = fake.waiting.shift()!;
    w.resolve(fake.picture(w.req));
  }
  for (const id of ids.slice(0, 5)) t.match((await pictured(gw, id)).snapshot, { cameraId: /^s\d-ch1$/ }, 'the queued ones are taken in turn');
  t.equal(fake.maxInFlight, 2, 'never more than two at once');
  t.equal(fake.asked.length, 5);
});

t.test('the store keeps at most maxCount pictures, the newest; a pruned picture is gone from its alarm', async (t) => {
  const fake = new FakeSnapshotter();
  const gw = await evidenceGateway(t, fake, { maxCount: 3 });
  const reg = await gw.client(await gw.userToken('reg-a', ['regulator'], ['countyA']));
  await reg.request('alarms.subscribe', {});
  const types = ['overspeed', 'leak', 'fatigue-driving', 'lane-departure', 'tank-pressure'];
  const ids: string[] = [];
  for (const type of types) {
    const id = (await gw.alarms([{ vehicleId: 'v1', type, severity: 'high', at: Date.now() }])).raised[0];
    await pictured(gw, id);
    ids.push(id);
  }
  for (const id of ids.slice(0, 2)) {
    t.match(await alarmOf(gw, id), { snapshot: null, snapshotError: null }, 'the oldest pictures went');
    t.equal((await gw.api('GET', `/api/alarms/${id}/snapshot.jpg`, { token: gw.adminToken })).status, 404);
  }
  for (const id of ids.slice(2)) t.equal((await gw.api('GET', `/api/alarms/${id}/snapshot.jpg`, { token: gw.adminToken })).status, 200);
  t.equal(db(gw).prepare('SELECT count(*) FROM alarm_snapshots').pluck().get(), 3);
  t.ok(
    reg.messages.some((m) => m.type === 'alarm' && m.payload.alarm.id === ids[0] && m.payload.alarm.snapshot === null && m.payload.change === 'updated'),
    'the card of an open alarm whose picture was pruned hears of it',
  );

  // The picture lives no longer than its alarm.
  db(gw).prepare('DELETE FROM alarms WHERE id = ?').run(ids[4]);
  t.equal(db(gw).prepare('SELECT count(*) FROM alarm_snapshots WHERE alarm_id = ?').pluck().get(ids[4]), 0, 'deleting an alarm deletes its picture');
});

t.test('a picture is scoped like its alarm, and the export carries it', async (t) => {
  const fake = new FakeSnapshotter();
  const gw = await evidenceGateway(t, fake);
  await gw.addVehicle(vehicleBody('w1', '粤C22222', 'countyB', {}, 1));
  const a = (await gw.alarms([{ vehicleId: 'v1', type: 'overspeed', severity: 'high', at: Date.now(), detail: '=HYPERLINK("x")' }])).raised[0];
  const b = (await gw.alarms([{ vehicleId: 'w1', type: 'leak', severity: 'high', at: Date.now() }])).raised[0];
  fake.auto = () => new GatewayError('GW_ERR_CAMERA_NO_VIDEO', 'no video');
  const c = (await gw.alarms([{ vehicleId: 'v1', type: 'leak', severity: 'high', at: Date.now() }])).raised[0];
  const alarmA = await pictured(gw, a);
  await pictured(gw, b);
  await pictured(gw, c);

  const regA = await gw.userToken('reg-a', ['regulator'], ['countyA']);
  const regB = await gw.userToken('reg-b', ['regulator'], ['countyB']);
  t.equal((await gw.api('GET', `/api/alarms/${a}/snapshot.jpg`, { token: regA })).status, 200);
  const foreign = await gw.api('GET', `/api/alarms/${a}/snapshot.jpg`, { token: regB });
  const missing = await gw.api('GET', '/api/alarms/alm-000000000000/snapshot.jpg', { token: regB });
  t.match(foreign, { status: 404, json: { code: 'GW_ERR_NOT_FOUND' } }, 'another department\'s alarm answers 404');
  t.equal(foreign.json.message.replace(a, 'X'), missing.json.message.replace('alm-000000000000', 'X'), 'as a missing one does, word for word');
  t.equal((await gw.api('GET', `/api/alarms/${a}/snapshot.jpg`)).status, 401);

  const csv = await gw.api('GET', '/api/alarms/export?format=csv', { token: regA });
  t.equal(csv.status, 200);
  t.match(csv.headers['content-type'], /^text\/csv/);
  t.match(csv.headers['content-disposition'], /filename="alarms.csv"/);
  const [header, ...lines] = csv.body.trim().split('\n');
  const cols = header!.split(',');
  t.ok(cols.includes('snapshotUrl') && cols.includes('snapshotTakenAt') && cols.includes('snapshotError'));
  t.equal(lines.length, 2, 'county A\'s two alarms, not county B\'s');
  const rowA = lines.find((l) => l.startsWith(`${a},`))!;
  t.ok(rowA.includes(`,/api/alarms/${a}/snapshot.jpg,${new Date(alarmA.snapshot.takenAt).toISOString()},v1-ch1,`), 'its picture\'s URL, time and camera');
  t.ok(rowA.includes(`"'=HYPERLINK(""x"")"`), 'formula text is neutralised (csvCell)');
  t.ok(lines.find((l) => l.startsWith(`${c},`))!.endsWith(',,,,GW_ERR_CAMERA_NO_VIDEO'), 'a failed picture: no URL, and why');

  const nd = await gw.api('GET', `/api/alarms/export?format=ndjson&type=overspeed`, { token: regA });
  t.equal(nd.headers['content-type'], 'application/x-ndjson');
  const rows = nd.body.trim().split('\n').map((l) => JSON.parse(l));
  t.match(rows, [{ id: a, snapshotUrl: `/api/alarms/${a}/snapshot.jpg`, snapshotCameraId: 'v1-ch1' }], 'the list\'s filters apply');
  const fetched = await gw.api('GET', rows[0].snapshotUrl, { token: regA });
  t.equal(fetched.status, 200, 'the exported URL serves the picture');

  t.match(await gw.api('GET', '/api/alarms/export?format=xml', { token: regA }), { status: 400, json: { code: 'GW_ERR_VALIDATION' } });
  t.match(await gw.api('GET', '/api/alarms/export?format=csv&since=yesterday', { token: regA }), { status: 400, json: { issues: [{ field: 'querystring.since' }] } });
});

t.test('with alarmSnapshots.enabled off, alarms keep no picture and lose nothing', async (t) => {
  const fake = new FakeSnapshotter();
  const gw = await evidenceGateway(t, fake, { enabled: false });
  const id = (await gw.alarms([{ vehicleId: 'v1', type: 'overspeed', severity: 'high', at: Date.now() }])).raised[0];
  await new Promise((r) => setTimeout(r, 100));
  t.match(await alarmOf(gw, id), { state: 'raised', snapshot: null, snapshotError: null });
  t.equal(fake.asked.length, 0);
});

t.test('on a store with a round trip per write (as PostgreSQL), a picture waits for its alarm\'s row and an alarm\'s writes land in the order made', async (t) => {
  const fake = new FakeSnapshotter();
  fake.auto = () => new GatewayError('GW_ERR_CAMERA_UNREACHABLE', 'camera v1-ch1: connection refused');
  const gw = await evidenceGateway(t, fake);
  const alarms = gw.store.alarms;
  const save = alarms.save.bind(alarms);
  // Writes that overtake each other, as on two pooled connections: the first of the batch is the slowest.
  const latencies = [150, 10];
  alarms.save = async (row, audit) => {
    await new Promise((r) => setTimeout(r, latencies.shift() ?? 0));
    return save(row, audit);
  };
  const { raised } = await gw.alarms([
    { vehicleId: 'v1', type: 'overspeed', severity: 'high', at: Date.now() },
    { vehicleId: 'v1', type: 'overspeed', severity: 'critical', at: Date.now() },
  ]);
  const id = raised[0];
  t.match(JSON.parse((await gw.store.alarms.get(id))!.doc), { occurrences: 2, severity: 'critical' }, 'the repeat, written second, is what the store keeps');
  t.match((await pictured(gw, id)).snapshotError, { code: 'GW_ERR_CAMERA_UNREACHABLE' }, "the failed picture is recorded: it waited for the alarm's row it refers to");
  t.notOk(gw.logs.some((l) => l.includes('alarm picture not saved')));
});

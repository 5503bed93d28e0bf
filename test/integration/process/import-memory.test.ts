import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import t from 'tap';
import { tempDir } from '../../helpers/gateway.js';
import { spawnGateway, type GatewayProcess } from '../../helpers/process.js';
import { waitFor } from '../../helpers/streams.js';

const MB = 1024 * 1024;

const rssOf = (pid: number) => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) * 1024;

async function login(baseUrl: string, password: string): Promise<string> {
  const res = await fetch(`${baseUrl}/api/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'admin', password }) });
  return ((await res.json()) as { token: string }).token;
}

interface Upload {
  /** The response, once it came. */
  response: Promise<{ status: number; body: string }>;
  /** Body bytes the gateway took before it answered or the connection ended. */
  sent(): number;
  /** Sends the rest and ends the body. */
  end(rest?: string): void;
}

/**
 * A CSV import whose body is written as fast as the gateway takes it: `head`, then `chunk` repeated
 * up to `total` bytes, stopping when the response comes or the connection closes.
 */
function upload(gw: GatewayProcess, token: string, head: string, chunk: Buffer, total: number, autoEnd = true): Upload {
  let sent = 0;
  let answered = false;
  const req = request(new URL('/api/sources/import?mode=keep-valid', gw.baseUrl), {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'text/csv' },
  });
  const response = new Promise<{ status: number; body: string }>((resolve, reject) => {
    req.on('response', (res) => {
      answered = true;
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d));
      res.on('end', () => {
        resolve({ status: res.statusCode!, body });
        req.destroy();
      });
      res.on('error', reject);
    });
    req.on('error', (err) => {
      if (!answered) reject(err);
    });
  });
  req.write(head);
  sent += head.length;
  const pump = () => {
    while (!answered && !req.destroyed && sent < total) {
      sent += chunk.length;
      if (!req.write(chunk)) {
        req.once('drain', pump);
        return;
      }
    }
    if (autoEnd && !req.destroyed && !answered) req.end();
  };
  if (autoEnd) pump();
  return { response, sent: () => sent, end: (rest) => req.end(rest) };
}

t.test('an unclosed quoted field streamed to 300 MB is refused with its line, and RSS stays near idle', async (t) => {
  const gw = await spawnGateway(t, tempDir(t), {});
  const token = await login(gw.baseUrl, gw.adminPassword!);
  const pid = gw.child.pid!;
  // Warm the import path so its code is loaded before idle is measured.
  const warm = await upload(gw, token, 'id,name,departmentId,url\r\nw1,warm,root,rtsp://10.0.0.1/a\r\n', Buffer.alloc(0), 0).response;
  t.equal(warm.status, 200, warm.body);
  await new Promise((r) => setTimeout(r, 500));
  const idle = rssOf(pid);

  let peak = idle;
  const sampler = setInterval(() => (peak = Math.max(peak, rssOf(pid))), 20);
  const chunk = Buffer.alloc(64 * 1024, 'a');
  const headers = 'id,name,departmentId,url\r\nok1,fine,root,rtsp://10.0.0.2/a\r\nopen1,"never closed';
  const first = upload(gw, token, headers, chunk, 300 * MB);
  const second = upload(gw, token, headers, chunk, 300 * MB);
  const [a, b] = await Promise.all([first.response, second.response]);
  clearInterval(sampler);
  peak = Math.max(peak, rssOf(pid));

  for (const [res, u] of [
    [a, first],
    [b, second],
  ] as const) {
    t.equal(res.status, 413, res.body);
    const body = JSON.parse(res.body) as { code: string; message: string };
    t.equal(body.code, 'GW_ERR_PAYLOAD_TOO_LARGE');
    t.match(body.message, /^line 3: a CSV row longer than 65536 characters \(is a quoted field never closed\?\)/, 'the refusal names the line the row starts on');
    t.ok(u.sent() < 300 * MB, `refused after ${(u.sent() / MB).toFixed(1)} MB of 300 were sent`);
  }
  t.ok(peak - idle < 50 * MB, `RSS peaked ${((peak - idle) / MB).toFixed(1)} MB above idle (${(idle / MB).toFixed(0)} MB)`);
  const list = await fetch(`${gw.baseUrl}/api/sources?limit=10`, { headers: { authorization: `Bearer ${token}` } });
  t.same(((await list.json()) as { items: { id: string }[] }).items.map((s) => s.id), ['w1'], 'nothing of a refused import was written');
});

t.test('one import more than registry.importMaxConcurrent is refused at once with GW_ERR_IMPORT_BUSY', async (t) => {
  const gw = await spawnGateway(t, tempDir(t), { WALLGATE_REGISTRY_IMPORT_MAX_CONCURRENT: '1' });
  const token = await login(gw.baseUrl, gw.adminPassword!);
  const slow = upload(gw, token, 'id,name,departmentId,url\r\nh1,held,root,rtsp://10.0.0.1/a\r\n', Buffer.alloc(0), 0, false);
  // The held import has its slot once the gateway says one import is running.
  await waitFor(
    async () => (await (await fetch(`${gw.baseUrl}/metrics`, { headers: { authorization: `Bearer ${token}` } })).text()).match(/^wallgate_imports_running (\d+)$/m)?.[1],
    (running) => running === '1',
    10_000,
    50,
    'the held import to take its slot',
  );
  const extra = await upload(gw, token, 'id,name,departmentId,url\r\nx1,extra,root,rtsp://10.0.0.2/a\r\n', Buffer.alloc(64 * 1024, 'a'), 50 * MB).response;
  t.equal(extra.status, 503, extra.body);
  t.match(JSON.parse(extra.body), { code: 'GW_ERR_IMPORT_BUSY', message: /registry\.importMaxConcurrent/ });
  slow.end('h2,held too,root,rtsp://10.0.0.3/a\r\n');
  const done = await slow.response;
  t.equal(done.status, 200, done.body);
  t.match(JSON.parse(done.body), { created: 2 }, 'the running import finished untouched');
  const after = await upload(gw, token, 'id,name,departmentId,url\r\nx1,extra,root,rtsp://10.0.0.2/a\r\n', Buffer.alloc(0), 0).response;
  t.equal(after.status, 200, 'a slot is free again once it finished');
});

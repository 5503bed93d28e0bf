import { readFileSync, writeFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import fc from 'fast-check';
import t from 'tap';
import { tempDir } from '../helpers/gateway.js';
import { checkProperty, fuzzParameters, IMPORT_ANSWERS as ANSWERS, oneAtATime, SOURCE_COLUMNS as COLUMNS, streamed } from '../helpers/fuzz.js';
import { spawnGateway } from '../helpers/process.js';

/**
 * Import bodies far over the limits (an unclosed quote, an endless line, rows without end, rows of
 * empty cells, bare CRs), streamed to a gateway process of its own: each is refused or reported, the
 * gateway is still up after each, and its resident set, as the kernel counts its peak, stays within
 * 50 MB of where it idled.
 */

/** The size limit of the gateway that gets the large bodies; they go up to twice it. */
const LARGE_MAX_BYTES = 8 * 1024 * 1024;

/** The gateway child's resident set now and at its peak since the last reset (kB, from /proc). */
function rssOf(pid: number): { now: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { now: kb('VmRSS'), peak: kb('VmHWM') };
}

t.test('large and endless import bodies keep the gateway\'s memory within 50 MB of idle', async (t) => {
  // A gateway process of its own, so its resident set is the gateway's alone, and its peak is the kernel's count.
  // Rows are held until an import commits (all-or-nothing needs them), so their count is bounded apart:
  // a low row limit here keeps the many-rows bodies about the limit's refusal, not a legitimate import.
  const gw = await spawnGateway(t, tempDir(t), { WALLGATE_REGISTRY_IMPORT_MAX_BYTES: String(LARGE_MAX_BYTES), WALLGATE_REGISTRY_IMPORT_MAX_ROWS: '2000' });
  const login = await fetch(`${gw.baseUrl}/api/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'admin', password: gw.adminPassword }) });
  const token = ((await login.json()) as { token: string }).token;
  const send = async (body: Readable, type: string, mode: string) => {
    const res = await fetch(`${gw.baseUrl}/api/sources/import?mode=${mode}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': type },
      body: Readable.toWeb(body) as ReadableStream,
      duplex: 'half',
    } as RequestInit).catch((err: Error) => ({ status: 0, text: async () => err.message }));
    return { status: res.status, body: await res.text() };
  };
  // Warm up (first import, JIT, pools), then take idle and reset the kernel's peak.
  t.equal((await send(streamed('id,name,departmentId,url\n', 'w,n,root,rtsp://10.9.0.1/x\n', 16 * 1024), 'text/csv', 'keep-valid')).status, 200);
  await new Promise((r) => setTimeout(r, 500));
  const pid = gw.child.pid!;
  writeFileSync(`/proc/${pid}/clear_refs`, '5');
  const idle = rssOf(pid).now;
  const seen = new Map<number, number>();
  const { run: sendOne, settled } = oneAtATime(async (shape: { head: string; filler: string; type: string }, size: number, mode: string) => {
    const res = await send(streamed(shape.head, shape.filler, size), shape.type, mode);
    seen.set(res.status, (seen.get(res.status) ?? 0) + 1);
    // A dropped connection (0) is a refusal only from a gateway that is still there: one that died answers 0 too.
    const health = await fetch(`${gw.baseUrl}/healthz`).then(
      (r) => String(r.status),
      (err: Error) => err.message,
    );
    if (gw.child.exitCode !== null || gw.child.signalCode !== null || health !== '200') {
      throw new Error(`the gateway died on a ${size}-byte body of ${JSON.stringify(shape.filler)} (answered ${res.status}; exit ${gw.child.exitCode ?? gw.child.signalCode}; /healthz: ${health})`);
    }
    if (res.status !== 0 && !ANSWERS.has(res.status)) throw new Error(`answered ${res.status}: ${res.body.slice(0, 300)}`);
  });
  const shapes = [
    { head: `${COLUMNS.join(',')}\nbig,"`, filler: 'unclosed quoted field ', type: 'text/csv' },
    { head: 'id,name,departmentId,url\nbig,"', filler: 'a,\r\n', type: 'text/csv' },
    { head: '{"id":"big","name":"', filler: 'endless line ', type: 'application/x-ndjson' },
    { head: 'id,name,departmentId,url\n', filler: 'r,n,root,rtsp://10.9.0.1/x\n', type: 'text/csv' },
    { head: '', filler: '{}\n', type: 'application/x-ndjson' },
    // Rows of empty cells: each cell is one or three bytes of body but a whole string to the parser.
    { head: 'id,name,departmentId,url\n', filler: ',', type: 'text/csv' },
    { head: 'id,name,departmentId,url\n', filler: '"",', type: 'text/csv' },
    { head: 'id,name,departmentId,url\r', filler: '\r', type: 'text/csv' },
  ];
  // Every shape once at the largest size the gateway reads whole, before the random ones, which a short time budget may cut.
  for (const shape of shapes) await sendOne(shape, LARGE_MAX_BYTES - shape.head.length, 'all-or-nothing');
  const runs = await checkProperty(
    fc.asyncProperty(
      fc.constantFrom(...shapes),
      fc.integer({ min: 64 * 1024, max: 2 * LARGE_MAX_BYTES }),
      fc.constantFrom('all-or-nothing', 'keep-valid'),
      sendOne,
    ),
    fuzzParameters(30),
  );
  await settled();
  const grew = Math.round((rssOf(pid).peak - idle) / 1024);
  t.ok(runs > 0, `${shapes.length} + ${runs} bodies of up to ${(2 * LARGE_MAX_BYTES) / 1024 / 1024} MB (${JSON.stringify(Object.fromEntries(seen))})`);
  t.ok(grew < 50, `the gateway's RSS peaked ${grew} MB above idle (${(idle / 1024).toFixed(0)} MB)`);
  t.equal((await fetch(`${gw.baseUrl}/healthz`)).status, 200, 'the gateway is still up');
  gw.child.kill('SIGTERM');
  await gw.exited;
});

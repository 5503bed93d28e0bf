import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import fc from 'fast-check';
import t from 'tap';
import { camera, smallTree, startGateway, type TestGateway } from '../helpers/gateway.js';
import { checkProperty, fuzzParameters, IMPORT_ANSWERS as ANSWERS, oneAtATime, SOURCE_COLUMNS as COLUMNS } from '../helpers/fuzz.js';

/**
 * The camera importers, fuzzed through the import route: whatever bytes arrive, the gateway answers
 * with a report or a coded error (never a 5xx, never a crash), an all-or-nothing import that is
 * refused leaves the registry exactly as it was, and memory stays near where it started.
 */

const IMPORT_MAX_BYTES = 4 * 1024 * 1024;
const IMPORT_MAX_ROWS = 500;
const DEPARTMENTS = ['root', 'city', 'countyA', 'townA', 'countyB'];

/** The registry as rows, hashed: equal hashes mean nothing was written. */
async function registryState(gw: TestGateway): Promise<{ count: number; hash: string }> {
  const page = await gw.store.sources.list({ ranges: [['/', '0']], limit: 100_000 });
  const hash = createHash('sha256');
  for (const s of page.items) hash.update(JSON.stringify({ ...s, seq: 0 }));
  return { count: page.items.length, hash: hash.digest('hex') };
}

async function postImport(gw: TestGateway, body: Buffer | Readable, type: string, mode: string) {
  const res = await gw.http.inject({
    method: 'POST',
    url: `/api/sources/import?mode=${mode}`,
    headers: { authorization: `Bearer ${gw.adminToken}`, 'content-type': type },
    payload: body,
  });
  let json: any;
  try {
    json = JSON.parse(res.body);
  } catch {
    json = undefined;
  }
  return { status: res.statusCode, json, body: res.body };
}

/** Strange values a hand-made sheet or a hostile file puts in a cell. */
const oddValue = fc.oneof(
  fc.constantFrom('', ' ', '"', '""', '"a"b', '\r', '\n', '\r\n', ',', ';', '\u0000', '\uFEFF', '=cmd|\' /C calc\'!A0', '-1', 'NaN', '1e309', 'true', 'null', '{}', '[]'),
  fc.constantFrom('file:///etc/passwd', 'rtsp://u:p@10.0.0.1/x', 'http://0.0.0.0:1/a.m3u8', 'concat:a|b', '-i', 'rtsp://[::1', 'rtsp://10.1.0.1:99999/x'),
  fc.string({ maxLength: 40 }),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.nat({ max: 3000 }).map((n) => 'x'.repeat(n)),
);

const validRow = fc.record({
  id: fc.constantFrom('f1', 'f2', 'f3', 'f4', 'f5', 'f6', 'f7', 'f8', 'seed1', 'seed2'),
  departmentId: fc.constantFrom(...DEPARTMENTS),
  name: fc.string({ minLength: 1, maxLength: 20 }).filter((s) => s.trim().length > 0 && !/[\u0000-\u001f\u007f]/.test(s)),
  host: fc.integer({ min: 1, max: 250 }),
});

/** Valid rows, some of them spoiled: a field replaced by an odd value, or dropped, or an unknown one added. */
const nearValidRows = fc.array(
  fc.tuple(
    validRow,
    fc.option(fc.tuple(fc.constantFrom(...COLUMNS, 'bogus'), fc.oneof(oddValue, fc.constant(undefined))), { freq: 2 }),
  ).map(([r, spoil]) => {
    const row: Record<string, unknown> = { id: r.id, name: r.name, departmentId: r.departmentId, url: `rtsp://10.9.0.${r.host}:554/live` };
    if (spoil) {
      const [column, value] = spoil;
      if (value === undefined) delete row[column];
      else row[column] = value;
    }
    return row;
  }),
  { minLength: 1, maxLength: 30 },
);

const csvCell = (v: unknown) => {
  const s = v === undefined || v === null ? '' : String(v);
  return /[",\r\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
};

function toCsv(rows: Record<string, unknown>[], eol: string): string {
  const columns = [...new Set(rows.flatMap((r) => Object.keys(r)))];
  return [columns.join(','), ...rows.map((r) => columns.map((c) => csvCell(r[c])).join(','))].join(eol) + eol;
}

t.test('the importers never crash, answer every body with a report or a code, and an all-or-nothing refusal writes nothing', async (t) => {
  const gw = await startGateway(t, { registry: { importMaxBytes: IMPORT_MAX_BYTES, importMaxRows: IMPORT_MAX_ROWS } });
  await smallTree(gw);
  for (const id of ['seed1', 'seed2']) {
    const res = await gw.api('POST', '/api/sources', { token: gw.adminToken, body: camera(id, 'countyA', { username: 'u', password: 'p4ss' }) });
    if (res.status !== 201) throw new Error(res.body);
  }
  const seen = new Map<number, number>();
  const count = (status: number) => seen.set(status, (seen.get(status) ?? 0) + 1);

  const { run: check, settled } = oneAtATime(async (body: Buffer | Readable, type: string, mode: string) => {
    const before = mode === 'all-or-nothing' ? await registryState(gw) : null;
    const res = await postImport(gw, body, type, mode);
    count(res.status);
    if (!ANSWERS.has(res.status)) throw new Error(`answered ${res.status}: ${res.body.slice(0, 300)}`);
    if (res.status !== 200 && !/^GW_ERR_/.test(String(res.json?.code))) throw new Error(`a refusal without a code: ${res.body.slice(0, 300)}`);
    if (before) {
      const after = await registryState(gw);
      if (res.status === 200 && res.json.rejected !== 0) throw new Error(`all-or-nothing applied with ${res.json.rejected} rejected rows`);
      if (res.status !== 200 && (after.count !== before.count || after.hash !== before.hash)) {
        throw new Error(`a refused all-or-nothing import wrote: ${before.count} sources before, ${after.count} after`);
      }
    }
    if (res.status === 200) {
      const r = res.json;
      if (r.created + r.updated + r.unchanged + r.rejected > r.rows) throw new Error(`the report does not add up: ${JSON.stringify(r)}`);
    }
  });

  const bytes = fc.oneof(
    fc.uint8Array({ maxLength: 2048 }).map((a) => Buffer.from(a)),
    fc.string({ unit: 'binary', maxLength: 2048 }).map((s) => Buffer.from(s)),
    // Bytes that look like the formats: a header or a JSON object start, then anything.
    fc.tuple(fc.constantFrom(`${COLUMNS.join(',')}\n`, 'id,name,departmentId,url\r\n', '{"id":', '\uFEFFid,name\n', ''), fc.string({ unit: 'grapheme', maxLength: 1024 })).map(([h, s]) => Buffer.from(h + s)),
  );
  const type = fc.constantFrom('text/csv', 'application/x-ndjson', 'text/csv; charset=utf-8', 'application/json', 'text/plain');
  const mode = fc.constantFrom('all-or-nothing', 'keep-valid');

  const arbitrary = await checkProperty(
    fc.asyncProperty(bytes, type, mode, async (b, ty, m) => {
      await check(b, ty, m);
    }),
    fuzzParameters(3000),
  );
  t.ok(arbitrary > 0, `${arbitrary} arbitrary bodies`);

  const nearValid = await checkProperty(
    fc.asyncProperty(nearValidRows, fc.constantFrom('csv', 'ndjson'), fc.constantFrom('\n', '\r\n'), mode, async (rows, format, eol, m) => {
      const body = format === 'csv' ? toCsv(rows, eol) : rows.map((r) => JSON.stringify(r)).join(eol) + eol;
      await check(Buffer.from(body), format === 'csv' ? 'text/csv' : 'application/x-ndjson', m);
    }),
    fuzzParameters(3000),
  );
  await settled();
  t.ok(nearValid > 0, `${nearValid} near-valid files`);
  t.ok((seen.get(200) ?? 0) > 0 && (seen.get(422) ?? 0) > 0, `both accepted and refused imports were tried (${JSON.stringify(Object.fromEntries(seen))})`);

  t.equal((await gw.api('GET', '/healthz')).status, 200, 'the gateway is still up');
});

import { Readable } from 'node:stream';
import t from 'tap';
import { csvRecords, csvRows, MAX_CSV_ROW_CELLS, MAX_CSV_ROW_CHARS } from '../../../gateway/src/registry/import-parse.js';

/** An import row with both of its shapes' fields optional, for comparing. */
type Row = { line: number; value?: Record<string, unknown>; error?: string };

const collect = async (text: string | string[]): Promise<Row[]> => {
  const rows: Row[] = [];
  for await (const row of csvRows(Readable.from([text].flat().map((s) => Buffer.from(s))))) rows.push(row);
  return rows;
};

/** A body of `head` then `filler` up to `bytes`, pulled as the parser asks; `sent` says how much it took. */
const streamedBody = (head: string, filler: string, bytes: number) => {
  let sent = 0;
  const piece = filler.repeat(Math.ceil(16_384 / filler.length));
  const stream = new Readable({
    read() {
      if (sent === 0) this.push(head);
      if (sent >= bytes) return void this.push(null);
      sent += piece.length;
      this.push(piece);
    },
  });
  return { stream, sent: () => sent };
};

t.test('CRLF files: rows after a multi-line row keep their own line numbers', async (t) => {
  const lines = ['id,name,url', 'a1,"two', 'lines",rtsp://10.0.0.1/a', 'a2,plain,rtsp://10.0.0.2/a', '', 'a3,"three', 'whole', 'lines",rtsp://10.0.0.3/a', 'a4,last,rtsp://10.0.0.4/a'];
  for (const eol of ['\r\n', '\n', '\r']) {
    const rows = await collect(lines.join(eol) + eol);
    t.same(
      rows.map((r) => [r.line, r.value?.id]),
      [
        [2, 'a1'],
        [4, 'a2'],
        [6, 'a3'],
        [9, 'a4'],
      ],
      `line ends ${JSON.stringify(eol)}`,
    );
    t.equal(rows[0]!.value!.name, `two${eol}lines`, 'a quoted line break is kept as written');
  }
});

t.test('the same rows whatever the chunking', async (t) => {
  const text = '\ufeffid,name,url\r\nb1,"Gate ""North""",rtsp://10.0.0.1/a\r\nb2,"x\r\ny",rtsp://10.0.0.2/a\r\nb3,Cam "A" gate,rtsp://10.0.0.3/a\r\n';
  const whole = await collect(text);
  t.same(
    whole.map((r) => [r.line, r.value]),
    [
      [2, { id: 'b1', name: 'Gate "North"', url: 'rtsp://10.0.0.1/a' }],
      [3, { id: 'b2', name: 'x\r\ny', url: 'rtsp://10.0.0.2/a' }],
      [5, { id: 'b3', name: 'Cam "A" gate', url: 'rtsp://10.0.0.3/a' }],
    ],
  );
  for (let size = 1; size <= 7; size++) {
    const chunks: string[] = [];
    for (let i = 0; i < text.length; i += size) chunks.push(text.slice(i, i + size));
    t.same(await collect(chunks), whole, `in chunks of ${size}`);
  }
});

t.test('bad rows are reported at the line they start on, and reading goes on', async (t) => {
  const rows = await collect(['id,name,url', 'c1,"closed"badly,rtsp://10.0.0.1/a', 'c2,too,many,cells', 'c3,ok,rtsp://10.0.0.3/a', 'c4,"never closed,rtsp://x', 'c5,swallowed,rtsp://10.0.0.5/a'].join('\r\n'));
  t.same(
    rows.map((r) => [r.line, r.error ?? r.value?.id]),
    [
      [2, 'bad CSV quoting: a quoted field is not closed properly (double a quote inside quotes)'],
      [3, 'wrong number of columns for the header'],
      [4, 'c3'],
      [5, 'bad CSV quoting: a quoted field is not closed (double a quote inside quotes)'],
    ],
  );
});

t.test('a row past the limit ends the import at once, naming its line', async (t) => {
  let pulled = 0;
  const quarterMb = 'x'.repeat(256 * 1024);
  // An endless body: the parser must give up without reading much past the limit.
  const body = new Readable({
    read() {
      pulled++;
      this.push(pulled === 1 ? 'id,name,url\r\nd1,ok,rtsp://10.0.0.1/a\r\nd2,"open' : quarterMb);
    },
  });
  const seen: Row[] = [];
  const err = await (async () => {
    for await (const row of csvRows(body)) seen.push(row);
  })().catch((e: unknown) => e);
  t.match(err, { code: 'GW_ERR_PAYLOAD_TOO_LARGE', message: new RegExp(`^line 3: a CSV row longer than ${MAX_CSV_ROW_CHARS} characters \\(is a quoted field never closed\\?\\)`) });
  t.ok(pulled <= 3, `stopped after ${pulled} chunks`);
  t.same(seen.map((r) => r.value?.id), ['d1']);

  const unquoted = await (async () => {
    for await (const _ of csvRows(Readable.from(['id,name\n', 'e1,' + 'y'.repeat(MAX_CSV_ROW_CHARS)]))) void _;
  })().catch((e: unknown) => e);
  t.match(unquoted, { code: 'GW_ERR_PAYLOAD_TOO_LARGE', message: /^line 2: a CSV row longer than/ }, 'an unquoted row is bounded too');
});

t.test('a row of empty cells is bounded too: its commas and quotes count, and so do its cells', async (t) => {
  const oneMb = 1024 * 1024;
  for (const [what, filler] of [
    ['commas', ','],
    ['empty quoted cells', '"",'],
  ] as const) {
    const body = streamedBody('id,name,url\r\nh1,ok,rtsp://10.0.0.1/a\r\n', filler, oneMb);
    const started = performance.now();
    const err = await (async () => {
      for await (const _ of csvRows(body.stream)) void _;
    })().catch((e: unknown) => e);
    const ms = performance.now() - started;
    t.match(err, { code: 'GW_ERR_PAYLOAD_TOO_LARGE', message: new RegExp(`^line 3: a CSV row of more than ${MAX_CSV_ROW_CELLS} cells; nothing was imported$`) }, `1 MB of ${what} is refused, naming the line`);
    t.ok(body.sent() < oneMb, `${what}: refused after ${body.sent()} of ${oneMb} bytes, in ${ms.toFixed(0)} ms`);
  }
  // Without the cell limit, the characters still bound the row: three of them for each "",
  const records = async (text: string) => {
    const seen: unknown[] = [];
    for await (const record of csvRecords(Readable.from([text]), 300, Infinity)) seen.push(record);
    return seen;
  };
  await t.rejects(records('a\n' + '"",'.repeat(101)), { code: 'GW_ERR_PAYLOAD_TOO_LARGE', message: /^line 2: a CSV row longer than 300 characters/ }, 'quotes and commas count');
  await t.rejects(records('a\n"' + '""'.repeat(150) + '"'), { message: /^line 2: a CSV row longer than 300 characters/ }, 'a doubled quote counts twice');
  t.same(await records(`a\n${'"",'.repeat(99)}""\n`), [{ line: 1, cells: ['a'] }, { line: 2, cells: Array(100).fill('') }], 'a row of exactly 300 characters is read');
  t.same(
    await collect(['id,name,url', ','.repeat(MAX_CSV_ROW_CELLS - 1), 'h3,ok,rtsp://10.0.0.3/a'].join('\n')),
    [
      { line: 2, error: 'wrong number of columns for the header' },
      { line: 3, value: { id: 'h3', name: 'ok', url: 'rtsp://10.0.0.3/a' } },
    ],
    `a row of ${MAX_CSV_ROW_CELLS} cells is still a row, reported as one`,
  );
});

t.test('a broken row leaves nothing behind for the next row', async (t) => {
  const rows = await collect('id,name,url\n"h"x,y,rtsp://10.0.0.1/a\nh2,ok,rtsp://10.0.0.2/a\n');
  t.same(rows.map((r) => [r.line, r.error ?? r.value?.id]), [
    [2, 'bad CSV quoting: a quoted field is not closed properly (double a quote inside quotes)'],
    [3, 'h2'],
  ]);
});

t.test('cells an export neutralised read back as stored; a password is taken as written', async (t) => {
  const rows = await collect(["id,name,address,password,url", "f1,'=HYPERLINK(1),'-1 floor,'=pw,rtsp://10.0.0.1/a", "f2,'plain quote,x,y,rtsp://10.0.0.2/a"].join('\n'));
  t.same(rows[0]!.value, { id: 'f1', name: '=HYPERLINK(1)', address: '-1 floor', password: "'=pw", url: 'rtsp://10.0.0.1/a' });
  t.equal(rows[1]!.value!.name, "'plain quote", 'a quote before anything else is text');
});

t.test('the header: unknown columns by number, a bad header refused', async (t) => {
  await t.rejects(collect('id,name,colour\n1,a,red\n'), { code: 'GW_ERR_VALIDATION', message: /column 3 is not a field/ });
  await t.rejects(collect('id,"name\n'), { code: 'GW_ERR_VALIDATION', message: /CSV header: bad CSV quoting/ });
  await t.rejects(collect('id,ID\n'), { message: /named twice/ });
  t.same(await collect('\n\nid,name\n\n\ng1,x\n'), [{ line: 6, value: { id: 'g1', name: 'x' } }], 'blank lines are skipped but counted');
});

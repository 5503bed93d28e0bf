import type { Readable } from 'node:stream';
import { parse as parseCsv, type CsvError } from 'csv-parse';
import { GatewayError } from '../errors.js';
import type { ImportInput } from './service.js';
import { SOURCE_INPUT_FIELDS } from './source-input.js';

export type ImportFormat = 'ndjson' | 'csv';

/** Longest NDJSON line: a source is a few hundred characters, and an unbounded line would be held whole. */
const MAX_LINE_CHARS = 65_536;

/** NDJSON rows as they stream in: one object a line, blank lines skipped, each numbered by its line. */
export async function* ndjsonRows(body: Readable): AsyncGenerator<ImportInput> {
  body.setEncoding('utf8');
  let pending = '';
  let line = 0;
  /** Set while skipping the rest of an over-long line. */
  let skipping = false;
  const parseLine = (text: string): ImportInput | null => {
    line++;
    if (text.length > MAX_LINE_CHARS) return { line, error: `line longer than ${MAX_LINE_CHARS} characters` };
    const t = text.endsWith('\r') ? text.slice(0, -1) : text;
    if (!t.trim()) return null;
    try {
      const value: unknown = JSON.parse(t);
      if (typeof value !== 'object' || value === null || Array.isArray(value)) return { line, error: 'expected a JSON object' };
      return { line, value: value as Record<string, unknown> };
    } catch (err) {
      // JSON.parse's message may quote the row, and the row may hold a password.
      return { line, error: `not valid JSON (${(err as Error).name})` };
    }
  };
  for await (const chunk of body as AsyncIterable<string>) {
    // Only the new chunk is searched for line ends: what is pending has none.
    let start = 0;
    let nl: number;
    while ((nl = chunk.indexOf('\n', start)) >= 0) {
      if (skipping) {
        skipping = false;
      } else {
        const row = parseLine(pending + chunk.slice(start, nl));
        if (row) yield row;
      }
      pending = '';
      start = nl + 1;
    }
    if (skipping) continue;
    pending += chunk.slice(start);
    if (pending.length > MAX_LINE_CHARS) {
      yield { line: ++line, error: `line longer than ${MAX_LINE_CHARS} characters` };
      pending = '';
      skipping = true;
    }
  }
  if (pending && !skipping) {
    const row = parseLine(pending);
    if (row) yield row;
  }
}

/** The columns an import may name: canonical field names, and other spellings people use for them. */
export interface ImportColumns {
  fields: readonly string[];
  aliases: Record<string, string>;
}

export const SOURCE_COLUMNS: ImportColumns = {
  fields: SOURCE_INPUT_FIELDS,
  aliases: { department: 'departmentId', department_id: 'departmentId', sub_url: 'subUrl' },
};

/**
 * CSV rows: a header names the columns (the source fields, case-insensitive); empty cells are absent.
 * A row csv-parse cannot read (bad quoting, wrong column count) becomes an error row and the rest go on.
 */
export async function* csvRows(body: Readable, accepted: ImportColumns = SOURCE_COLUMNS): AsyncGenerator<ImportInput> {
  const byLower = new Map<string, string>(accepted.fields.map((f) => [f.toLowerCase(), f]));
  for (const [alias, field] of Object.entries(accepted.aliases)) byLower.set(alias, field);
  const skipped: ImportInput[] = [];
  let columns: string[] = [];
  const parser = body.pipe(
    parseCsv({
      bom: true,
      info: true,
      skip_empty_lines: true,
      skip_records_with_error: true,
      // A stray quote inside an unquoted field (Cam "A" gate) is common in hand-made sheets and harmless.
      relax_quotes: true,
      raw: true,
      columns: (header: string[]) => {
        columns = header.map((h, i) => {
          const name = byLower.get(h.trim().toLowerCase());
          if (!name) {
            // A file without a header would put a row here, URL and password included: name the column by number only.
            throw new GatewayError('GW_ERR_VALIDATION', `CSV header: column ${i + 1} is not a field; the first line must name the columns (${accepted.fields.join(', ')})`);
          }
          return name;
        });
        if (new Set(columns).size !== columns.length) throw new GatewayError('GW_ERR_VALIDATION', 'CSV header: a column is named twice');
        return columns;
      },
      on_skip: (err: CsvError | undefined) => {
        if (!err) return;
        const e = err as CsvError & { lines?: number };
        skipped.push({ line: e.lines ?? 0, error: csvReason(e.code) });
      },
    }),
  );
  body.on('error', (err) => parser.destroy(err));
  type Parsed = { record: Record<string, string>; info: { lines: number }; raw: string };
  for await (const { record, info, raw } of parser as AsyncIterable<Parsed>) {
    while (skipped.length) yield skipped.shift()!;
    const value: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(record)) if (v !== '') value[k] = v;
    // info.lines is where the row ends; a quoted field may span lines, and people look for where it starts.
    const spanned = raw.replace(/\r?\n$/, '').split('\n').length - 1;
    yield { line: info.lines - spanned, value };
  }
  while (skipped.length) yield skipped.shift()!;
}

/** A reason in words, without csv-parse's message (which quotes the row). */
function csvReason(code: string): string {
  switch (code) {
    case 'CSV_INVALID_CLOSING_QUOTE':
    case 'CSV_QUOTE_NOT_CLOSED':
      return 'bad CSV quoting: a quoted field is not closed properly (double a quote inside quotes)';
    case 'INVALID_OPENING_QUOTE':
    case 'CSV_INVALID_OPENING_QUOTE':
      return 'bad CSV quoting: a quote inside an unquoted field (quote the field and double the quote)';
    case 'CSV_RECORD_INCONSISTENT_COLUMNS':
    case 'CSV_RECORD_INCONSISTENT_FIELDS_LENGTH':
    case 'CSV_RECORD_DONT_MATCH_COLUMNS_LENGTH':
      return 'wrong number of columns for the header';
    default:
      return `unreadable CSV row (${code})`;
  }
}

export function importRows(format: ImportFormat, body: Readable, columns: ImportColumns = SOURCE_COLUMNS): AsyncGenerator<ImportInput> {
  return format === 'csv' ? csvRows(body, columns) : ndjsonRows(body);
}

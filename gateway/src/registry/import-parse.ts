import type { Readable } from 'node:stream';
import { GatewayError, reasoned } from '../errors.js';
import { csvValue } from '../lib/csv.js';
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
 * Longest CSV row, in characters as written (delimiters, quotes and quoted line breaks count; the
 * line end does not). Nothing longer is buffered: a quoted field that never closes would otherwise
 * hold the whole body (300 MB streamed took 777 MB of RSS).
 */
export const MAX_CSV_ROW_CHARS = 65_536;

/**
 * Most cells in a CSV row. An empty cell costs the parser a string slot however few characters it
 * took, and no importer has anywhere near this many columns.
 */
export const MAX_CSV_ROW_CELLS = 1_024;

type CsvRecord = { line: number; cells: string[] } | { line: number; error: string };

const BAD_CLOSING_QUOTE = 'bad CSV quoting: a quoted field is not closed properly (double a quote inside quotes)';

/**
 * RFC 4180 records as they stream in, each numbered by the line it starts on (CRLF, LF or CR line
 * ends). A quote opens a quoted field only at the field's start; elsewhere it is text, as hand-made
 * sheets write Cam "A" gate. A bad row becomes an error record and reading goes on at the next line;
 * a row past maxRowChars ends the import, since after an unclosed quote no later line can be trusted.
 */
export async function* csvRecords(body: Readable, maxRowChars = MAX_CSV_ROW_CHARS, maxRowCells = MAX_CSV_ROW_CELLS): AsyncGenerator<CsvRecord> {
  body.setEncoding('utf8');
  const plainStop = /[,\r\n]/g;
  const quotedStop = /["\r\n]/g;
  /** The physical line being read, and the one the current row started on. */
  let line = 1;
  let rowLine = 1;
  let cells: string[] = [];
  /** The row's characters as written before the current field, delimiters and quotes included. */
  let cellChars = 0;
  let field = '';
  /** Whether the row, and the current field, had a quoted field (a row of one "" is not blank). */
  let quoted = false;
  let fieldQuoted = false;
  /** 'quote': a quote seen inside a quoted field, which the next character explains; 'bad': the rest of a broken row. */
  let state: 'start' | 'plain' | 'quoted' | 'quote' | 'bad' = 'start';
  let error: string | null = null;
  let afterCr = false;
  let first = true;
  const out: CsvRecord[] = [];

  const checkRowChars = () => {
    if (cellChars + field.length > maxRowChars) {
      const hint = state === 'quoted' ? ' (is a quoted field never closed?)' : '';
      throw reasoned('GW_ERR_PAYLOAD_TOO_LARGE', 'csvRowChars', { line: rowLine, limit: maxRowChars }, `line ${rowLine}: a CSV row longer than ${maxRowChars} characters${hint}; nothing was imported`);
    }
  };
  const append = (text: string) => {
    field += text;
    checkRowChars();
  };
  /** Ends the current field; `delimited` when a comma ended it, which belongs to the row too. */
  const endField = (delimited: boolean) => {
    if (cells.length >= maxRowCells) {
      throw reasoned('GW_ERR_PAYLOAD_TOO_LARGE', 'csvRowCells', { line: rowLine, limit: maxRowCells }, `line ${rowLine}: a CSV row of more than ${maxRowCells} cells; nothing was imported`);
    }
    cells.push(field);
    cellChars += field.length + (fieldQuoted ? 2 : 0) + (delimited ? 1 : 0);
    field = '';
    fieldQuoted = false;
    state = 'start';
    checkRowChars();
  };
  const endRow = () => {
    if (state !== 'bad') endField(false);
    if (error) out.push({ line: rowLine, error });
    else if (cells.length > 1 || cells[0] !== '' || quoted) out.push({ line: rowLine, cells });
    cells = [];
    // A broken row leaves what it had read of its field here.
    field = '';
    cellChars = 0;
    quoted = false;
    fieldQuoted = false;
    error = null;
    state = 'start';
    rowLine = line;
  };

  for await (let chunk of body as AsyncIterable<string>) {
    if (first) {
      first = false;
      if (chunk.charCodeAt(0) === 0xfeff) chunk = chunk.slice(1);
    }
    let i = 0;
    while (i < chunk.length) {
      const c = chunk[i]!;
      if (c === '\n' && afterCr) {
        // The second half of a CRLF, already counted and already ending the row if it was outside quotes.
        afterCr = false;
        if (state === 'quoted') append(c);
        i++;
        continue;
      }
      afterCr = false;
      if (state === 'plain' || state === 'quoted' || state === 'bad') {
        // Take the run up to the next character that matters in one slice.
        const stop = state === 'quoted' ? quotedStop : plainStop;
        stop.lastIndex = i;
        const found = stop.exec(chunk);
        const end = found ? found.index : chunk.length;
        if (end > i && state !== 'bad') append(chunk.slice(i, end));
        i = end;
        if (!found) break;
        const s = chunk[i]!;
        i++;
        if (s === '\r' || s === '\n') {
          line++;
          afterCr = s === '\r';
          if (state === 'quoted') append(s);
          else endRow();
        } else if (s === '"') {
          state = 'quote';
        } else if (state === 'plain') {
          endField(true);
        }
        continue;
      }
      i++;
      if (state === 'quote') {
        if (c === '"') {
          // A doubled quote is one character of the field and two of the row.
          cellChars++;
          append(c);
          state = 'quoted';
          continue;
        }
        if (c !== ',' && c !== '\r' && c !== '\n') {
          error = BAD_CLOSING_QUOTE;
          state = 'bad';
          continue;
        }
        // The quoted field ended; the delimiter or line end is handled as at a field's start.
        state = 'start';
      }
      // At the start of a field.
      if (c === '"') {
        state = 'quoted';
        quoted = true;
        fieldQuoted = true;
      } else if (c === ',') {
        endField(true);
      } else if (c === '\r' || c === '\n') {
        line++;
        afterCr = c === '\r';
        endRow();
      } else {
        state = 'plain';
        append(c);
      }
    }
    // Handed out between chunks, so the consumer's pace holds the body back.
    while (out.length) yield out.shift()!;
  }
  if (state === 'quoted') {
    out.push({ line: rowLine, error: 'bad CSV quoting: a quoted field is not closed (double a quote inside quotes)' });
  } else if (state !== 'start' || cells.length > 0 || error) {
    endRow();
  }
  while (out.length) yield out.shift()!;
}

/**
 * CSV rows: a header names the columns (the source fields, case-insensitive); empty cells are absent.
 * A row that cannot be read (bad quoting, wrong column count) becomes an error row and the rest go on.
 * A cell the export neutralised against spreadsheet formulas ('=…) reads back as stored; a password is
 * taken as written, since exports never carry one.
 */
export async function* csvRows(body: Readable, accepted: ImportColumns = SOURCE_COLUMNS): AsyncGenerator<ImportInput> {
  const byLower = new Map<string, string>(accepted.fields.map((f) => [f.toLowerCase(), f]));
  for (const [alias, field] of Object.entries(accepted.aliases)) byLower.set(alias, field);
  let columns: string[] | null = null;
  for await (const record of csvRecords(body)) {
    if (!columns) {
      if ('error' in record) throw new GatewayError('GW_ERR_VALIDATION', `CSV header: ${record.error}`);
      columns = record.cells.map((h, i) => {
        const name = byLower.get(h.trim().toLowerCase());
        if (!name) {
          // A file without a header would put a row here, URL and password included: name the column by number only.
          throw new GatewayError('GW_ERR_VALIDATION', `CSV header: column ${i + 1} is not a field; the first line must name the columns (${accepted.fields.join(', ')})`);
        }
        return name;
      });
      if (new Set(columns).size !== columns.length) throw new GatewayError('GW_ERR_VALIDATION', 'CSV header: a column is named twice');
      continue;
    }
    if ('error' in record) {
      yield record;
      continue;
    }
    if (record.cells.length !== columns.length) {
      yield { line: record.line, error: 'wrong number of columns for the header' };
      continue;
    }
    const value: Record<string, unknown> = {};
    record.cells.forEach((cell, i) => {
      const name = columns![i]!;
      if (cell !== '') value[name] = name === 'password' ? cell : csvValue(cell);
    });
    yield { line: record.line, value };
  }
}

export function importRows(format: ImportFormat, body: Readable, columns: ImportColumns = SOURCE_COLUMNS): AsyncGenerator<ImportInput> {
  return format === 'csv' ? csvRows(body, columns) : ndjsonRows(body);
}

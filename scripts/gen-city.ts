/**
 * Prints (or writes) the synthetic city of gateway/src/registry/city.ts as an import file.
 *
 *   npm run gen:city -- --size 70000 [--format ndjson|csv] [--out FILE] [--departments FILE]
 *
 * --departments FILE writes the departments as a JSON array of POST /api/departments bodies, parents
 * first (create them in array order; 'root' already exists). The sources go to --out or stdout,
 * NDJSON by default or CSV with the export columns plus password (tags joined with ';').
 */
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { csvCell } from '../gateway/src/lib/csv.js';
import { generateCity } from '../gateway/src/registry/city.js';

/** The export's columns (gateway/src/http/routes/sources.ts CSV_COLUMNS) with password after username. */
const CSV_COLUMNS = ['id', 'name', 'departmentId', 'level', 'address', 'url', 'subUrl', 'protocol', 'username', 'password', 'codec', 'lat', 'lon', 'tags', 'enabled'];

function fail(message: string): never {
  process.stderr.write(`gen-city: ${message}\nusage: npm run gen:city -- --size N [--format ndjson|csv] [--out FILE] [--departments FILE]\n`);
  process.exit(2);
}

let values;
try {
  ({ values } = parseArgs({
    options: {
      size: { type: 'string', default: '70000' },
      format: { type: 'string', default: 'ndjson' },
      out: { type: 'string' },
      departments: { type: 'string' },
    },
    strict: true,
  }));
} catch (err) {
  fail((err as Error).message);
}
const size = Number(values.size);
if (!Number.isInteger(size) || size < 0 || size > 1_000_000) fail('--size: expected an integer from 0 to 1000000');
const format = values.format;
if (format !== 'ndjson' && format !== 'csv') fail('--format: expected ndjson or csv');

const city = generateCity(size);

if (values.departments) {
  const bodies = [...city.departments]
    .sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))
    .map(({ id, name, parentId, level }) => ({ id, name, parentId, level }));
  writeFileSync(values.departments, JSON.stringify(bodies, null, 2) + '\n');
}

const lines =
  format === 'csv'
    ? [CSV_COLUMNS.join(','), ...city.sources.map((s) => CSV_COLUMNS.map((c) => csvCell(s[c])).join(','))]
    : city.sources.map((s) => JSON.stringify(s));
const text = lines.length ? lines.join('\n') + '\n' : '';

if (values.out) writeFileSync(values.out, text);
else {
  process.stdout.on('error', (err: NodeJS.ErrnoException) => process.exit(err.code === 'EPIPE' ? 0 : 1));
  process.stdout.write(text);
}
process.stderr.write(
  `gen-city: ${city.sources.length} sources (${format})${values.out ? ` to ${values.out}` : ''}, ${city.departments.length} departments${values.departments ? ` to ${values.departments}` : ' (not written; use --departments FILE)'}\n`,
);

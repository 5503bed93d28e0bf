import { readFileSync } from 'node:fs';
import t from 'tap';
import { errorCodes } from '../../gateway/src/errors.js';

t.test('every error code is documented with its status in docs/errors.md, and nothing else is', async (t) => {
  const doc = readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8');
  const rows = [...doc.matchAll(/^\| `(GW_ERR_[A-Z_]+)` \| (\d{3}) \|/gm)].map((m) => [m[1], Number(m[2])]);
  t.same(Object.fromEntries(rows), errorCodes);
});

import t from 'tap';
import { csvCell, csvValue } from '../../../gateway/src/lib/csv.js';

t.test('cells a spreadsheet would run as formulas are written as text (OWASP)', async (t) => {
  for (const start of ['=', '+', '-', '@', '\t', '\r']) {
    const text = `${start}cmd|' /C calc'!A0`;
    const cell = csvCell(text);
    const unquoted = cell.startsWith('"') ? cell.slice(1, -1).replace(/""/g, '"') : cell;
    t.equal(unquoted, `'${text}`, `a cell starting with ${JSON.stringify(start)} gets a quote in front`);
    t.equal(csvValue(unquoted), text, 'and reads back as it was');
  }
  t.equal(csvCell('=HYPERLINK("http://x","y")'), `"'=HYPERLINK(""http://x"",""y"")"`);
  t.equal(csvCell(['=a', 'b']), "'=a;b", 'a list is one cell');
  t.equal(csvCell(-33.5), '-33.5', 'a number stays a number');
  t.equal(csvCell('Gate 1'), 'Gate 1');
  t.equal(csvCell('a,b'), '"a,b"');
  t.equal(csvCell(null), '');
  t.equal(csvValue("'plain"), "'plain", 'a quote before ordinary text is kept');
});

t.test('every stored text reads back exactly after an export and an import', async (t) => {
  const cases: [stored: string, written: string][] = [
    ['=1', "'=1"],
    ["'=1", "''=1"],
    ["''=1", "'''=1"],
    ["'plain", "'plain"],
    ['-3', "'-3"],
    ["'-3", "''-3"],
    ["'", "'"],
    ["''", "''"],
    ['plain', 'plain'],
  ];
  for (const [stored, written] of cases) {
    t.equal(csvCell(stored), written, `${JSON.stringify(stored)} is written ${JSON.stringify(written)}`);
    t.equal(csvValue(csvCell(stored)), stored, `${JSON.stringify(stored)} reads back as stored`);
  }
  t.equal(csvCell(-3), '-3', 'the number -3 is written as a number');
});

/**
 * CSV cells for files people open in Excel or WPS. It imports nothing: the player writes its CSV
 * downloads with it too.
 */

/**
 * A spreadsheet runs a cell that starts with one of [=+-@\t\r] as a formula (=HYPERLINK(...),
 * =cmd|' /C calc'!A0); tab and carriage return are on OWASP's list because some programs drop them
 * and read what follows. The export puts a quote in front of such text, and also of text that is
 * quotes then such a character (a stored '=1 is written ''=1): the import strips one quote from
 * exactly these, so every stored value reads back as it was.
 */
const NEUTRALISED = /^'*[=+\-@\t\r]/;

/** The quote OWASP's rule puts in front of such a cell: the spreadsheet shows it as text. */
const NEUTRALISER = "'";

/**
 * One CSV cell: text that a spreadsheet would run as a formula is prefixed with a quote, and the
 * cell is quoted when it holds a delimiter. Numbers are written as they are (-33.5 is a number, not a
 * formula); arrays become `a;b`.
 */
export function csvCell(v: unknown): string {
  if (v === null || v === undefined) return '';
  let s = Array.isArray(v) ? v.join(';') : String(v);
  if (typeof v !== 'number' && NEUTRALISED.test(s)) s = NEUTRALISER + s;
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** The inverse for an import: any text cell the export wrote reads back exactly as it was stored. */
export function csvValue(cell: string): string {
  return cell.startsWith(NEUTRALISER) && NEUTRALISED.test(cell.slice(1)) ? cell.slice(1) : cell;
}

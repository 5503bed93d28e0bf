import { XMLBuilder, XMLParser } from 'fast-xml-parser';
import iconv from 'iconv-lite';

/**
 * MANSCDP bodies (GB/T 28181 A.2): the XML of Query, Control, Response and Notify messages. They come
 * from devices on the network, so the parser is bounded and never expands an entity a document
 * defines: a DOCTYPE (where entities and external references are declared) is refused before parsing.
 */

export class ManscdpError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ManscdpError';
  }
}

export interface Manscdp {
  root: string;
  cmdType: string;
  /** The sequence number that pairs a response with its query; null when missing or not a number. */
  sn: number | null;
  deviceId: string | null;
  /** The root element's children: text stays text (ids keep their leading zeros), lists of Item are arrays. */
  body: Record<string, unknown>;
}

/** Element names that repeat in MANSCDP lists (DeviceList, RecordList, Alarm lists, Info): always arrays, even with one. */
const LIST_ELEMENTS = new Set(['Item']);
const MAX_DEPTH = 16;

const parser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: '@_',
  parseTagValue: false,
  parseAttributeValue: false,
  trimValues: true,
  // The five predefined entities only: a DOCTYPE never reaches the parser.
  processEntities: true,
  htmlEntities: false,
  ignoreDeclaration: true,
  ignorePiTags: true,
  maxNestedTags: MAX_DEPTH,
  isArray: (name) => LIST_ELEMENTS.has(name),
});

const GB_CHARSETS = new Set(['gb2312', 'gbk', 'gb18030', 'gb_2312-80', 'cp936']);

/** The charset the XML declaration names, read from the raw bytes (the declaration is ASCII in every charset we take). */
function declaredEncoding(body: Buffer): string | null {
  // A UTF-8 byte-order mark reads as three Latin-1 characters here.
  const head = body.subarray(0, 200).toString('latin1').replace(/^\xEF\xBB\xBF/, '');
  const decl = /^\s*<\?xml\b[^?]*?\bencoding\s*=\s*["']([A-Za-z0-9_.:-]{1,40})["']/.exec(head);
  return decl ? decl[1]!.toLowerCase() : null;
}

/** Decodes a body by its declaration: GB2312/GBK/GB18030 as GB 18030 (a superset of both), anything else as UTF-8. */
export function decodeManscdp(body: Buffer): string {
  const encoding = declaredEncoding(body);
  if (encoding && GB_CHARSETS.has(encoding)) return iconv.decode(body, 'gb18030');
  const text = body.toString('utf8');
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}

export function parseManscdp(body: Buffer, maxBytes: number): Manscdp {
  if (body.length > maxBytes) throw new ManscdpError(`XML body of ${body.length} bytes is over the ${maxBytes}-byte limit`);
  const text = decodeManscdp(body);
  if (/<!(DOCTYPE|ENTITY)/i.test(text)) throw new ManscdpError('XML with a DOCTYPE or ENTITY declaration is refused');
  let doc: Record<string, unknown>;
  try {
    doc = parser.parse(text, true) as Record<string, unknown>;
  } catch (err) {
    throw new ManscdpError(`malformed XML: ${(err as Error).message.slice(0, 200)}`);
  }
  const roots = Object.keys(doc);
  if (roots.length !== 1) throw new ManscdpError(roots.length ? `expected one root element, found ${roots.length}` : 'no root element');
  const root = roots[0]!;
  const content = doc[root];
  if (!content || typeof content !== 'object' || Array.isArray(content)) throw new ManscdpError(`<${root}> has no elements`);
  const fields = content as Record<string, unknown>;
  const cmdType = text1(fields.CmdType);
  if (!cmdType) throw new ManscdpError(`<${root}> has no CmdType`);
  const sn = text1(fields.SN);
  return {
    root,
    cmdType,
    sn: sn !== null && /^\d{1,15}$/.test(sn) ? Number(sn) : null,
    deviceId: text1(fields.DeviceID),
    body: fields,
  };
}

/** An element's text when it is a single text element; null otherwise (missing, repeated, or with children). */
export function text1(v: unknown): string | null {
  if (typeof v === 'string') return v;
  if (v && typeof v === 'object' && !Array.isArray(v) && typeof (v as Record<string, unknown>)['#text'] === 'string') return (v as Record<string, string>)['#text']!;
  return null;
}

/** A list element's items (DeviceList/Item): always an array, empty when absent. */
export function items(list: unknown): Record<string, unknown>[] {
  if (!list || typeof list !== 'object') return [];
  const it = (list as Record<string, unknown>).Item;
  return Array.isArray(it) ? it.filter((i): i is Record<string, unknown> => !!i && typeof i === 'object') : [];
}

const builder = new XMLBuilder({ ignoreAttributes: false, attributeNamePrefix: '@_', format: true, indentBy: '', suppressEmptyNode: false });

/**
 * A MANSCDP body. Fields keep their order (CmdType, SN, DeviceID first, as devices expect); arrays
 * repeat their element, keys starting with "@_" are attributes. GB2312 by default: most devices
 * declare and expect it (GB 18030, its superset, encodes the text).
 */
export function buildManscdp(root: 'Query' | 'Control' | 'Response' | 'Notify', fields: Record<string, unknown>, encoding: 'GB2312' | 'UTF-8' = 'GB2312'): Buffer {
  const xml = `<?xml version="1.0" encoding="${encoding}"?>\n${builder.build({ [root]: fields }) as string}`;
  return encoding === 'UTF-8' ? Buffer.from(xml, 'utf8') : iconv.encode(xml, 'gb18030');
}

/** Text a device reports (names, addresses, firmware), bounded and without control characters before it is stored or shown. */
export function printableText(s: string, max: number): string {
  return [...s.replace(/\p{Cc}/gu, ' ').trim()].slice(0, max).join('');
}

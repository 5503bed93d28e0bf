import t from 'tap';
import { decodeFrame, encodeFrame, escapeJt, FrameSplitter, JtParseError, PIECE_OVERHEAD_BYTES, SERIES_OVERHEAD_BYTES, SubpackageAssembler, unescapeJt, xorChecksum, type JtMessage } from '../../../gateway/src/jt/protocol/frame.js';
import { decodeAuthentication, decodeGeneralResponse, decodeRegistration, JT_MSG } from '../../../gateway/src/jt/protocol/messages.js';
import { heapAndBuffersAfterGc } from '../../helpers/fuzz.js';

/** The reference's vectors (jt808.md §5) are written with spaces; the wire has none. */
const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');
/** A wire frame → its unescaped content without the flags, as FrameSplitter hands decodeFrame. */
const inner = (wire: Buffer) => unescapeJt(wire.subarray(1, wire.length - 1));

const V1 = hex('7E 0200 0026 011223344550 0000 00000001 00000002 00BA7F0E 07E4F11C 0028 003C 0000 180715101010 01 04 00000064 02 02 0037 AB 7E');
const V2 = hex('7E0100002D000123456789000A002800323132333400736D616C6C6368693132330000000000000000004348493132330001D4C14131323334358A7E');
const V3 = hex(
  '7E010040540100000000000123456789000A002800323132333400000000000000736D616C6C6368693132330000000000000000000000000000000000000043484931323300000000000000000000000000000000000000000000000001D4C1413132333435B27E',
);
const V4 = hex('7E010200090123456789003039343536313231313131BE7E');
const V6 = hex('7E80010005012345678900000A0064020000617E');
const V7 = hex('7E00020000012345678900000A817E');
const V8 = hex('7E 0002 0000 040021679287 002B 7D02 7E');

t.test('V1: a 2013 0x0200 frame header and checksum', async (t) => {
  const m = decodeFrame(inner(V1));
  t.same(m.header, { msgId: JT_MSG.LOCATION, edition: '2013', protocolVersion: 0, phone: '011223344550', sim: '11223344550', serial: 0, encryption: 0, packet: null });
  t.equal(m.body.length, 0x26);
  t.equal(xorChecksum(inner(V1), 0, inner(V1).length - 1), 0xab);
  t.same(encodeFrame({ msgId: 0x0200, edition: '2013', phone: '11223344550', serial: 0 }, m.body), V1, 're-encodes to the same bytes');
});

t.test('V2: a 2013 registration', async (t) => {
  const m = decodeFrame(inner(V2));
  t.same(m.header, { msgId: JT_MSG.REGISTER, edition: '2013', protocolVersion: 0, phone: '000123456789', sim: '123456789', serial: 10, encryption: 0, packet: null });
  t.same(decodeRegistration(m.body, m.header.edition), { province: 40, city: 50, manufacturer: '1234', model: 'smallchi123', terminalId: 'CHI123', plateColor: 1, plate: '粤A12345', edition: '2013' });
  t.same(encodeFrame({ msgId: 0x0100, edition: '2013', phone: '123456789', serial: 10 }, m.body), V2);
});

t.test('V3: a 2019 registration: bit 14, version byte, BCD[10] phone', async (t) => {
  const m = decodeFrame(inner(V3));
  t.same(m.header, { msgId: JT_MSG.REGISTER, edition: '2019', protocolVersion: 1, phone: '00000000000123456789', sim: '123456789', serial: 10, encryption: 0, packet: null });
  t.equal(m.body.length, 84);
  t.same(decodeRegistration(m.body, m.header.edition), { province: 40, city: 50, manufacturer: '1234', model: 'smallchi123', terminalId: 'CHI123', plateColor: 1, plate: '粤A12345', edition: '2019' });
  t.same(encodeFrame({ msgId: 0x0100, edition: '2019', phone: '123456789', serial: 10 }, m.body), V3);
});

t.test('V4: a 2013 authentication', async (t) => {
  const m = decodeFrame(inner(V4));
  t.same(m.header, { msgId: JT_MSG.AUTH, edition: '2013', protocolVersion: 0, phone: '012345678900', sim: '12345678900', serial: 12345, encryption: 0, packet: null });
  t.same(decodeAuthentication(m.body, '2013'), { authCode: '456121111', imei: null, softwareVersion: null });
});

t.test('V6: a platform general response', async (t) => {
  const m = decodeFrame(inner(V6));
  t.same(m.header, { msgId: JT_MSG.PLATFORM_RESPONSE, edition: '2013', protocolVersion: 0, phone: '012345678900', sim: '12345678900', serial: 10, encryption: 0, packet: null });
  t.same(decodeGeneralResponse(m.body), { serial: 100, msgId: 0x0200, result: 0 });
});

t.test('V7 and V8: heartbeats, V8 with a 0x7E checksum sent escaped', async (t) => {
  const v7 = decodeFrame(inner(V7));
  t.same(v7.header, { msgId: JT_MSG.HEARTBEAT, edition: '2013', protocolVersion: 0, phone: '012345678900', sim: '12345678900', serial: 10, encryption: 0, packet: null });
  t.equal(v7.body.length, 0);
  const v8 = decodeFrame(inner(V8));
  t.same(v8.header, { msgId: JT_MSG.HEARTBEAT, edition: '2013', protocolVersion: 0, phone: '040021679287', sim: '40021679287', serial: 0x2b, encryption: 0, packet: null });
  t.equal(inner(V8).at(-1), 0x7e);
  t.same(encodeFrame({ msgId: 0x0002, edition: '2013', phone: '040021679287', serial: 0x2b }, Buffer.alloc(0)), V8, 'the check byte is escaped on the way out');
});

t.test('V9: escaping both ways', async (t) => {
  t.same(escapeJt(hex('30 7E 08 7D 55')), hex('30 7D02 08 7D01 55'));
  t.same(unescapeJt(hex('30 7D02 08 7D01 55')), hex('30 7E 08 7D 55'));
  const plain = hex('010203');
  t.equal(unescapeJt(plain), plain, 'nothing to unescape: the same buffer, no copy');
});

t.test('bad escapes, checksums, lengths and headers throw JtParseError of their kind', async (t) => {
  const kind = (f: () => unknown) => {
    try {
      f();
    } catch (err) {
      return err instanceof JtParseError ? err.kind : `not a JtParseError: ${String(err)}`;
    }
    return 'no error';
  };
  t.equal(kind(() => unescapeJt(hex('30 7D03 08'))), 'escape');
  t.equal(kind(() => unescapeJt(hex('30 7D'))), 'escape', 'an escape at the very end');
  const v7 = Buffer.from(inner(V7));
  v7[v7.length - 1] = v7.at(-1)! ^ 1;
  t.equal(kind(() => decodeFrame(v7)), 'checksum');
  t.equal(kind(() => decodeFrame(hex('0002'))), 'truncated');
  t.equal(kind(() => decodeFrame(inner(V7).subarray(0, 10))), 'truncated');
  // V7 with a body length of 5 and a fixed check byte: the length lies.
  const lying = Buffer.from(inner(V7));
  lying.writeUInt16BE(5, 2);
  lying[lying.length - 1] = xorChecksum(lying, 0, lying.length - 1);
  t.equal(kind(() => decodeFrame(lying)), 'length');
  const notBcd = Buffer.from(inner(V7));
  notBcd[4] = 0xab;
  notBcd[notBcd.length - 1] = xorChecksum(notBcd, 0, notBcd.length - 1);
  t.equal(kind(() => decodeFrame(notBcd)), 'header');
});

t.test('subpackaged and 2019 frames round-trip; the phone is padded', async (t) => {
  const body = Buffer.from([0x7e, 0x7d, 1, 2, 3]);
  for (const edition of ['2013', '2019'] as const) {
    const wire = encodeFrame({ msgId: 0x0801, edition, phone: '13800138000', serial: 65_535, protocolVersion: 1, packet: { total: 3, index: 2 } }, body);
    t.equal(wire.indexOf(0x7e, 1), wire.length - 1, 'no flag inside the frame');
    const m = decodeFrame(inner(wire));
    t.same(m.header, { msgId: 0x0801, edition, protocolVersion: edition === '2019' ? 1 : 0, phone: '13800138000'.padStart(edition === '2019' ? 20 : 12, '0'), sim: '13800138000', serial: 65_535, encryption: 0, packet: { total: 3, index: 2 } });
    t.same(m.body, body);
  }
  t.throws(() => encodeFrame({ msgId: 1, edition: '2013', phone: '1234567890123', serial: 0 }, Buffer.alloc(0)), /13 digits/);
  t.throws(() => encodeFrame({ msgId: 1, edition: '2013', phone: '1', serial: 0 }, Buffer.alloc(1024)), /subpackages/);
});

function splitter(maxFrameBytes = 4096) {
  const messages: JtMessage[] = [];
  const errors: [string, number][] = [];
  const s = new FrameSplitter({ maxFrameBytes, onMessage: (m) => messages.push(m), onError: (k, n) => errors.push([k, n]) });
  return { s, messages, errors };
}

t.test('FrameSplitter: frames back to back, split anywhere, with junk between', async (t) => {
  const stream = Buffer.concat([hex('0102'), V1, V2, hex('7E'), V3, hex('AABB'), V4, V6, V7, V8]);
  for (const step of [1, 3, 7, 64, stream.length]) {
    const { s, messages, errors } = splitter();
    for (let at = 0; at < stream.length; at += step) s.push(stream.subarray(at, at + step));
    t.same(
      messages.map((m) => [m.header.msgId, m.header.serial]),
      [
        [0x0200, 0],
        [0x0100, 10],
        [0x0100, 10],
        [0x0102, 12345],
        [0x8001, 10],
        [0x0002, 10],
        [0x0002, 0x2b],
      ],
      `chunks of ${step}`,
    );
    // The junk before the first flag is garbage (reported piece by piece); the junk between V3 and V4 reads as a short frame.
    const total = (kind: string) => errors.filter(([k]) => k === kind).reduce((n, [, b]) => n + b, 0);
    t.same([total('garbage'), total('truncated'), errors.length - errors.filter(([k]) => k === 'garbage').length], [2, 2, 1]);
    t.equal(s.buffered, 0);
  }
});

t.test('FrameSplitter: a frame over maxFrameBytes is dropped and the next one taken', async (t) => {
  const { s, messages, errors } = splitter(64);
  s.push(hex('7E'));
  for (let i = 0; i < 100; i++) {
    s.push(Buffer.alloc(50, 0x11));
    t.ok(s.buffered <= 64);
  }
  s.push(V7);
  t.same(errors, [['oversize', 5000]]);
  t.equal(messages.length, 1);
});

/** The pieces of one body as a terminal sends them: consecutive serials from `serial`, packet numbers from 1. */
function pieces(body: Buffer, size: number, serial: number, sim = '13800138000', edition: '2013' | '2019' = '2013'): JtMessage[] {
  const total = Math.ceil(body.length / size);
  return Array.from({ length: total }, (_, i) =>
    decodeFrame(inner(encodeFrame({ msgId: 0x0801, edition, phone: sim, serial: serial + i, packet: { total, index: i + 1 } }, body.subarray(i * size, (i + 1) * size)))),
  );
}

t.test('SubpackageAssembler: pieces in any order, duplicates, serials wrapping', async (t) => {
  const a = new SubpackageAssembler({ maxBytes: 1 << 20, timeoutMs: 1000 });
  const body = Buffer.from(Array.from({ length: 2500 }, (_, i) => i & 0xff));
  const p = pieces(body, 1000, 65_535, '13800138000', '2019');
  t.equal(a.push(p[2]!), null);
  t.equal(a.push(p[0]!), null);
  t.equal(a.push(p[0]!), null, 'a piece sent twice');
  t.equal(a.pending, 1);
  const whole = a.push(p[1]!);
  t.same(whole?.header, { ...p[0]!.header, serial: 65_535, packet: null });
  t.same(whole?.body, body);
  t.equal(a.pending, 0);
  t.equal(a.buffered, 0);
  const single = pieces(Buffer.from('x'), 10, 5)[0]!;
  t.same(a.push(single), { header: { ...single.header, packet: null }, body: single.body }, 'a series of one');
  const plain = decodeFrame(inner(V7));
  t.equal(a.push(plain), plain, 'a message never split passes through');
});

t.test('SubpackageAssembler: a series that never completes is swept; limits drop the oldest', async (t) => {
  let now = 0;
  const a = new SubpackageAssembler({ maxBytes: 4000, timeoutMs: 1000, maxSeries: 2, clock: () => now });
  a.push(pieces(Buffer.alloc(300), 100, 1)[0]!);
  t.equal(a.buffered, SERIES_OVERHEAD_BYTES + 100 + PIECE_OVERHEAD_BYTES, 'the body, the piece and the series each counted');
  now = 999;
  t.equal(a.sweep(), 0);
  now = 1000;
  t.equal(a.sweep(), 1);
  t.equal(a.pending, 0);
  t.equal(a.buffered, 0);
  // Three series, room for two: the first goes, and coming back it pushes out the next oldest.
  for (const serial of [100, 200, 300]) a.push(pieces(Buffer.alloc(300), 100, serial)[0]!);
  t.equal(a.pending, 2);
  t.equal(a.push(pieces(Buffer.alloc(300), 100, 100)[1]!), null);
  t.equal(a.dropped, 3);
  // Over maxBytes: series dropped oldest first until it fits.
  const big = pieces(Buffer.alloc(3000), 1000, 1000);
  a.push(big[0]!);
  a.push(big[1]!);
  t.equal(a.buffered, SERIES_OVERHEAD_BYTES + 2 * (1000 + PIECE_OVERHEAD_BYTES));
  t.equal(a.pending, 1);
  t.equal(a.dropped, 5);
  // push sweeps on its own once the timeout has passed.
  now = 5000;
  a.push(pieces(Buffer.alloc(300), 100, 7)[0]!);
  t.equal(a.pending, 1);
});

/** A piece of an empty-bodied series as long as a header can announce, as the splitter hands it on. */
function emptyPiece(serial: number, total: number, index: number): JtMessage {
  return decodeFrame(inner(encodeFrame({ msgId: 0x0801, edition: '2013', phone: '13800138000', serial, packet: { total, index } }, Buffer.alloc(0))));
}

t.test('SubpackageAssembler: 16 series announcing 65,535 empty pieces hold next to nothing; what is held is what buffered says', async (t) => {
  // As the 808 service builds it per connection.
  const a = new SubpackageAssembler({ maxBytes: 1_048_576, timeoutMs: 30_000, maxSeries: 16 });
  const before = await heapAndBuffersAfterGc();
  for (let s = 0; s < 16; s++) a.push(emptyPiece(s * 1000, 65_535, 1));
  const growth = (await heapAndBuffersAfterGc()) - before;
  t.ok(growth < 64 * 1024, `16 pieces held ${(growth / 1024).toFixed(0)} kB`);
  t.equal(a.pending, 0, 'a total no maxBytes could hold is refused on its first piece');
  t.equal(a.dropped, 16);

  // Series that can fit: the heap they take is what buffered counts, empty bodies included.
  const b = new SubpackageAssembler({ maxBytes: 1_048_576, timeoutMs: 30_000, maxSeries: 16 });
  const total = Math.floor((1_048_576 - SERIES_OVERHEAD_BYTES) / PIECE_OVERHEAD_BYTES);
  const start = await heapAndBuffersAfterGc();
  for (let s = 0; s < 4; s++) for (let index = 1; index <= 400; index++) b.push(emptyPiece(s * 1000 + index - 1, total, index));
  const held = (await heapAndBuffersAfterGc()) - start;
  t.equal(b.pending, 4);
  t.equal(b.buffered, 4 * SERIES_OVERHEAD_BYTES + 1600 * PIECE_OVERHEAD_BYTES);
  t.ok(held <= b.buffered, `1,600 empty pieces hold ${(held / 1024).toFixed(0)} kB; buffered says ${(b.buffered / 1024).toFixed(0)} kB`);
  // The largest total allowed still completes.
  const c = new SubpackageAssembler({ maxBytes: 1_048_576, timeoutMs: 30_000 });
  let whole: JtMessage | null = null;
  for (let index = 1; index <= total; index++) whole = c.push(emptyPiece(index - 1, total, index));
  t.equal(whole?.header.serial, 0);
  t.equal(c.buffered, 0);
  t.equal(c.push(emptyPiece(0, total + 1, 1)), null);
  t.equal(c.dropped, 1, 'one more piece than maxBytes holds is refused');
});

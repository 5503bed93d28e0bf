import t from 'tap';
import {
  SIP_MAX_HEADERS,
  SIP_MAX_HEADER_LINE_BYTES,
  SIP_MAX_START_LINE_BYTES,
  SipParseError,
  header,
  headers,
  parseCSeq,
  parseNameAddr,
  parseSipMessage,
  parseVia,
  serializeSipMessage,
  sipUser,
  type SipRequest,
} from '../../../gateway/src/gb28181/sip/message.js';

/** The REGISTER example of shared/design/protocols/gb28181.md §2, as a device sends it. */
const REGISTER = [
  'REGISTER sip:34020000002000000001@3402000000 SIP/2.0',
  'Via: SIP/2.0/UDP 192.0.2.10:5060;rport;branch=z9hG4bK1a2b3c',
  'From: <sip:34020000001320000001@3402000000>;tag=4711',
  'To: <sip:34020000001320000001@3402000000>',
  'Call-ID: 8c1e7f@192.0.2.10',
  'CSeq: 1 REGISTER',
  'Contact: <sip:34020000001320000001@192.0.2.10:5060>',
  'Max-Forwards: 70',
  'Expires: 3600',
  'Content-Length: 0',
  '',
  '',
].join('\r\n');

const wire = (lines: string[], body = '') => Buffer.from(lines.join('\r\n') + '\r\n\r\n' + body);

t.test('the reference REGISTER parses into its parts and serializes back byte for byte', async (t) => {
  const m = parseSipMessage(Buffer.from(REGISTER));
  t.equal(m.type, 'request');
  const req = m as SipRequest;
  t.equal(req.method, 'REGISTER');
  t.equal(req.uri, 'sip:34020000002000000001@3402000000');
  t.equal(header(m, 'call-id'), '8c1e7f@192.0.2.10', 'lookups ignore case');
  t.equal(header(m, 'i'), '8c1e7f@192.0.2.10', 'and take compact names');
  t.equal(header(m, 'Expires'), '3600');
  t.equal(req.body.length, 0);
  t.equal(serializeSipMessage(m).toString(), REGISTER);

  const via = parseVia(header(m, 'Via')!);
  t.same(via, { transport: 'UDP', host: '192.0.2.10', port: 5060, branch: 'z9hG4bK1a2b3c', rport: true, received: null, params: { rport: '', branch: 'z9hG4bK1a2b3c' } });
  const from = parseNameAddr(header(m, 'From')!);
  t.same(from, { display: null, uri: 'sip:34020000001320000001@3402000000', user: '34020000001320000001', host: '3402000000', port: null, tag: '4711', params: { tag: '4711' } });
  t.equal(parseNameAddr(header(m, 'Contact')!).port, 5060);
  t.same(parseCSeq(header(m, 'CSeq')!), { seq: 1, method: 'REGISTER' });
  t.equal(sipUser(req.uri), '34020000002000000001');
});

t.test('a response with a body round-trips and Content-Length is written from the body', async (t) => {
  const sdp = 'v=0\r\no=34020000001320000001 0 0 IN IP4 192.0.2.10\r\ns=Play\r\n';
  const m = parseSipMessage(wire(['SIP/2.0 200 OK', 'Via: SIP/2.0/TCP 198.51.100.5:5060;branch=z9hG4bKx;received=203.0.113.7;rport=40000', 'Content-Type: APPLICATION/SDP', `Content-Length: ${Buffer.byteLength(sdp)}`], sdp));
  t.equal(m.type, 'response');
  if (m.type !== 'response') return;
  t.equal(m.status, 200);
  t.equal(m.reason, 'OK');
  t.equal(m.body.toString(), sdp);
  const again = parseSipMessage(serializeSipMessage({ ...m, headers: m.headers.filter(([n]) => n !== 'Content-Length') }));
  t.same(again, m, 'serializing adds the Content-Length it needs');
  const via = parseVia(header(m, 'via')!);
  t.equal(via.rport, 40000);
  t.equal(via.received, '203.0.113.7');
  t.equal(via.transport, 'TCP');
  const spaced = parseSipMessage(wire(['SIP/2.0 401 Unauthorized Here', 'Content-Length: 0']));
  t.equal(spaced.type === 'response' ? spaced.reason : null, 'Unauthorized Here', 'the reason phrase keeps its spaces');
});

t.test('compact names, folded lines, LF-only ends, several Vias on a line, leading blank lines', async (t) => {
  const text = '\r\n\nMESSAGE sip:34020000002000000001@3402000000 SIP/2.0\nv: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKa, SIP/2.0/UDP 10.0.0.2:5062;branch=z9hG4bKb\nf: "Cam 1" <sip:34020000001320000001@3402000000>;tag=1\nt: sip:34020000002000000001@3402000000\ni: abc\nCSeq: 20\n  MESSAGE\nc: Application/MANSCDP+xml\nl: 4\n\n<a/>';
  const m = parseSipMessage(Buffer.from(text));
  t.same(headers(m, 'Via'), ['SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKa', 'SIP/2.0/UDP 10.0.0.2:5062;branch=z9hG4bKb'], 'each Via is its own entry, top first');
  t.same(m.headers.map(([n]) => n), ['Via', 'Via', 'From', 'To', 'Call-ID', 'CSeq', 'Content-Type', 'Content-Length'], 'compact names become full names');
  t.same(parseCSeq(header(m, 'CSeq')!), { seq: 20, method: 'MESSAGE' }, 'a folded line joins its header');
  t.equal(m.body.toString(), '<a/>');
  const from = parseNameAddr(header(m, 'From')!);
  t.equal(from.display, 'Cam 1');
  t.equal(from.tag, '1');
  const to = parseNameAddr(header(m, 'To')!);
  t.equal(to.user, '34020000002000000001', 'a bare URI is a name-addr too');
  t.equal(to.tag, null);
});

t.test('Content-Length: a short body is an error, extra bytes are ignored, no header means the rest', async (t) => {
  const head = ['MESSAGE sip:a@b SIP/2.0', 'Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKa'];
  t.throws(() => parseSipMessage(wire([...head, 'Content-Length: 10'], 'short')), SipParseError);
  t.equal(parseSipMessage(wire([...head, 'Content-Length: 3'], 'abcdef')).body.toString(), 'abc');
  t.equal(parseSipMessage(wire(head, 'abcdef')).body.toString(), 'abcdef');
  t.throws(() => parseSipMessage(wire([...head, 'Content-Length: -1'])), /invalid Content-Length/);
  t.throws(() => parseSipMessage(wire([...head, 'Content-Length: 1', 'l: 2'], 'ab')), /more than one Content-Length/);
  t.throws(() => parseSipMessage(wire([...head, 'Content-Length: 2', 'l: 2'], 'ab')), /more than one Content-Length/, 'even when they agree');
});

t.test('limits and malformed input throw SipParseError naming the problem', async (t) => {
  const head = ['OPTIONS sip:a@b SIP/2.0'];
  t.throws(() => parseSipMessage(Buffer.alloc(70_000, 0x41)), /exceeds the limit of 65536/);
  t.throws(() => parseSipMessage(wire([...head, 'X: y']), 10), /exceeds the limit of 10/);
  t.throws(() => parseSipMessage(wire([...head, ...Array.from({ length: SIP_MAX_HEADERS + 1 }, (_, i) => `X-${i}: v`)])), /more than 64 headers/);
  const full = parseSipMessage(wire([...head, ...Array.from({ length: SIP_MAX_HEADERS }, (_, i) => `X-${i}: v`)]));
  t.same(parseSipMessage(serializeSipMessage(full)).headers.length, SIP_MAX_HEADERS + 1, 'exactly the limit is fine, and reads back with the Content-Length written');
  t.throws(() => parseSipMessage(wire([...head, `X: ${'a'.repeat(SIP_MAX_HEADER_LINE_BYTES)}`])), /header line longer/);
  t.throws(() => parseSipMessage(wire([...head, 'X: a', ...Array.from({ length: 10 }, () => ` ${'b'.repeat(500)}`)])), /header X longer/, 'folding cannot dodge the line limit');
  t.throws(() => parseSipMessage(wire([`OPTIONS sip:${'a'.repeat(SIP_MAX_START_LINE_BYTES)} SIP/2.0`])), /start line longer/);
  t.throws(() => parseSipMessage(Buffer.from('OPTIONS sip:a@b SIP/2.0\r\nVia: x\r\n')), /no end of line/, 'headers must end with an empty line');
  t.throws(() => parseSipMessage(Buffer.from('\r\n\r\n')), /empty message/);
  t.throws(() => parseSipMessage(wire([...head, 'X: a\rVia: b'])), /stray CR/, 'a bare CR cannot hide a header inside a value');
  for (const start of ['HELLO', 'OPTIONS sip:a@b HTTP/1.1', 'OPTIONS  SIP/2.0', 'SIP/2.0 99 Low', 'SIP/2.0 700 High', 'OPT IONS sip:a SIP/2.0', 'GET / HTTP/1.1']) {
    t.throws(() => parseSipMessage(wire([start])), SipParseError, start);
  }
  for (const line of [': novalue', 'No colon', ' folded first', 'Bad Name: x']) {
    t.throws(() => parseSipMessage(wire([...head, line])), SipParseError, line);
  }
});

t.test('the helpers refuse what they cannot read and accept the forms devices use', async (t) => {
  t.throws(() => parseVia('SIP/2.0 10.0.0.1'), SipParseError);
  t.throws(() => parseVia('SIP/2.0/UDP 10.0.0.1:99999'), /bad port/);
  t.same(parseVia('SIP / 2.0 / udp [2001:db8::1]:5070 ; branch=z9hG4bKq').host, '[2001:db8::1]');
  t.equal(parseVia('SIP/2.0/UDP 10.0.0.1').port, null);
  t.throws(() => parseCSeq('x REGISTER'), SipParseError);
  t.throws(() => parseCSeq('99999999999 REGISTER'), SipParseError);
  t.throws(() => parseNameAddr('<sip:a@b'), SipParseError);
  t.throws(() => parseNameAddr('<http://x>'), SipParseError);
  t.same(parseNameAddr('<sip:34020000001320000001@192.0.2.10:5060;transport=tcp>;expires=3600').params, { expires: '3600' });
  t.equal(sipUser('<sip:34020000001320000001@192.0.2.10>'), '34020000001320000001');
  t.equal(sipUser('sip:3402000000'), null);
  t.equal(sipUser('tel:123'), null);
  t.throws(() => serializeSipMessage({ type: 'request', method: 'MESSAGE', uri: 'sip:a@b', headers: [['Subject', 'x\r\nVia: evil']], body: Buffer.alloc(0) }), /line break/);
});

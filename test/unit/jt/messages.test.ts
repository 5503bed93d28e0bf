import t from 'tap';
import { decodeFrame, encodeFrame, JtParseError, unescapeJt } from '../../../gateway/src/jt/protocol/frame.js';
import {
  decodeAuthentication,
  decodeGeneralResponse,
  decodeLiveControl,
  decodeLiveRequest,
  decodeLiveStatus,
  decodeQueryTimeReply,
  decodeRegistration,
  decodeRegistrationReply,
  decodeResendRequest,
  encodeAuthentication,
  encodeGeneralResponse,
  encodeLiveControl,
  encodeLiveRequest,
  encodeLiveStatus,
  encodeQueryTimeReply,
  encodeRegistration,
  encodeRegistrationReply,
  encodeResendRequest,
  JT_MSG,
} from '../../../gateway/src/jt/protocol/messages.js';

/** The kind of JtParseError `f` throws ('none' or 'other' otherwise). */
function kindOf(f: () => unknown): string {
  try {
    f();
  } catch (err) {
    return err instanceof JtParseError ? err.kind : `other: ${String(err)}`;
  }
  return 'none';
}

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const inner = (wire: Buffer) => unescapeJt(wire.subarray(1, wire.length - 1));

t.test('V5: a 2019 authentication body', async (t) => {
  const v5 = hex('05 3435363132 313233343536373839306162636465 76322E302E30' + '00'.repeat(14));
  const a = decodeAuthentication(v5, '2019');
  t.same(a, { authCode: '45612', imei: '1234567890abcde', softwareVersion: 'v2.0.0' });
  t.same(encodeAuthentication(a, '2019'), v5);
  t.same(decodeAuthentication(hex('05 3435363132'), '2019'), { authCode: '45612', imei: null, softwareVersion: null }, 'a terminal that stops after the code');
  t.same(encodeAuthentication({ authCode: '456121111', imei: null, softwareVersion: null }, '2013'), Buffer.from('456121111'));
});

t.test('M3/M4: 0x9101 body and frame', async (t) => {
  const m3 = hex('09 3132372E302E302E31 0760 0000 01 01 01');
  const r = decodeLiveRequest(m3);
  t.same(r, { ip: '127.0.0.1', tcpPort: 1888, udpPort: 0, channel: 1, dataType: 1, stream: 1 });
  t.same(encodeLiveRequest(r), m3);
  const m4 = hex('7E 9101 0011 012345679810 0001 093132372E302E302E31076000000101 01 4C 7E');
  const m = decodeFrame(inner(m4));
  t.same(m.header, { msgId: JT_MSG.LIVE_REQUEST, edition: '2013', protocolVersion: 0, phone: '012345679810', sim: '12345679810', serial: 1, encryption: 0, packet: null });
  t.same(decodeLiveRequest(m.body), r);
  t.same(encodeFrame({ msgId: JT_MSG.LIVE_REQUEST, edition: '2013', phone: '012345679810', serial: 1 }, encodeLiveRequest(r)), m4);
});

t.test('M5: 0x9102 frame', async (t) => {
  const m5 = hex('7E 9102 0004 012345679810 0001 01 01 00 00 1E 7E');
  const m = decodeFrame(inner(m5));
  t.equal(m.header.msgId, JT_MSG.LIVE_CONTROL);
  t.equal(m.header.serial, 1);
  const c = decodeLiveControl(m.body);
  t.same(c, { channel: 1, command: 1, closeType: 0, stream: 0 });
  t.same(encodeFrame({ msgId: JT_MSG.LIVE_CONTROL, edition: '2013', phone: '12345679810', serial: 1 }, encodeLiveControl(c)), m5);
  t.equal(kindOf(() => decodeLiveControl(hex('01 07 00 00'))), 'value', 'a command that does not exist');
});

t.test('0x9105, general responses, registration replies, 0x8003, 0x8004', async (t) => {
  t.same(encodeLiveStatus({ channel: 2, lossPct: 12.7 }), hex('02 0C'));
  t.same(decodeLiveStatus(hex('02 0C')), { channel: 2, lossPct: 12 });
  t.same(encodeGeneralResponse({ serial: 100, msgId: 0x0200, result: 0 }), hex('0064 0200 00'));
  t.same(decodeGeneralResponse(hex('0064 0200 04')), { serial: 100, msgId: 0x0200, result: 4 });
  t.same(encodeRegistrationReply({ serial: 10, result: 0, authCode: 'AB12' }), hex('000A 00 41423132'));
  t.same(decodeRegistrationReply(hex('000A 00 41423132')), { serial: 10, result: 0, authCode: 'AB12' });
  t.same(encodeRegistrationReply({ serial: 10, result: 4, authCode: 'ignored' }), hex('000A 04'), 'the code only on success');
  t.same(decodeRegistrationReply(hex('000A 04')), { serial: 10, result: 4, authCode: null });
  t.same(encodeResendRequest({ firstSerial: 7, ids: [2, 5] }, '2013'), hex('0007 02 0002 0005'), '2013: count is a BYTE');
  t.same(encodeResendRequest({ firstSerial: 7, ids: [2, 5] }, '2019'), hex('0007 0002 0002 0005'), '2019: count is a WORD');
  t.same(decodeResendRequest(hex('0007 0002 0002 0005'), '2019'), { firstSerial: 7, ids: [2, 5] });
  const now = Date.UTC(2024, 4, 6, 7, 8, 9);
  t.same(encodeQueryTimeReply(now), hex('240506070809'), 'UTC, not GMT+8');
  t.equal(decodeQueryTimeReply(encodeQueryTimeReply(now)), now);
});

t.test('registration round trips in all three editions; 2011 told from 2013 by length', async (t) => {
  const r = { province: 44, city: 100, manufacturer: 'ABCDE', model: 'M1', terminalId: 'T000001', plateColor: 2, plate: '粤B12345' };
  for (const edition of ['2011', '2013', '2019'] as const) {
    const body = encodeRegistration(r, edition);
    t.same(decodeRegistration(body, edition === '2019' ? '2019' : '2013'), { ...r, edition }, edition);
  }
  t.equal(kindOf(() => decodeRegistration(Buffer.alloc(10), '2013')), 'truncated');
  t.throws(() => encodeRegistration({ ...r, model: 'x'.repeat(21) }, '2013'), /model/);
});

t.test('short bodies throw truncated', async (t) => {
  for (const f of [() => decodeGeneralResponse(hex('0001')), () => decodeLiveRequest(hex('09 3132')), () => decodeLiveStatus(hex('01')), () => decodeAuthentication(hex('09 31'), '2019')]) {
    t.equal(kindOf(f), 'truncated');
  }
});

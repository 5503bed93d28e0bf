import fc from 'fast-check';
import iconv from 'iconv-lite';
import t from 'tap';
import { buildManscdp, items, ManscdpError, parseManscdp, text1 } from '../../../gateway/src/gb28181/xml.js';
import { fuzzParameters } from '../../helpers/fuzz.js';

const MAX = 65_536;

t.test('a GB2312 catalog answer decodes by its declaration: ids keep their zeros, one Item is still a list', async (t) => {
  const xml = `<?xml version="1.0" encoding="GB2312"?>
<Response>
<CmdType>Catalog</CmdType>
<SN>017430</SN>
<DeviceID>34020000001110000001</DeviceID>
<SumNum>1</SumNum>
<DeviceList Num="1">
<Item>
<DeviceID>00020000001310000001</DeviceID>
<Name>东门 &amp; 北门</Name>
<Longitude>116.397</Longitude>
<Status>ON</Status>
</Item>
</DeviceList>
</Response>`;
  const m = parseManscdp(iconv.encode(xml, 'gb2312'), MAX);
  t.match(m, { root: 'Response', cmdType: 'Catalog', sn: 17430, deviceId: '34020000001110000001' });
  const list = items(m.body.DeviceList);
  t.equal(list.length, 1);
  t.equal(list[0]!.DeviceID, '00020000001310000001', 'a leading-zero id stays text');
  t.equal(list[0]!.Name, '东门 & 北门', 'GB2312 bytes and the predefined entity decoded');
  t.equal(list[0]!.Longitude, '116.397', 'numbers stay text: the reader decides');
  t.equal(text1(m.body.SumNum), '1');
});

t.test('GBK and GB18030 declarations decode as GB 18030; no declaration or UTF-8 as UTF-8, BOM or not', async (t) => {
  for (const enc of ['GBK', 'gb18030', 'GB2312']) {
    const body = iconv.encode(`<?xml version="1.0" encoding="${enc}"?><Notify><CmdType>Keepalive</CmdType><SN>1</SN><DeviceID>1</DeviceID><Info>𠀀镕</Info></Notify>`, 'gb18030');
    t.equal(parseManscdp(body, MAX).body.Info, '𠀀镕', enc);
  }
  const utf8 = Buffer.from(`<?xml version='1.0' encoding='UTF-8'?><Notify><CmdType>Keepalive</CmdType><SN>2</SN><Name>南站</Name></Notify>`);
  t.equal(parseManscdp(utf8, MAX).body.Name, '南站');
  t.equal(parseManscdp(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), utf8]), MAX).body.Name, '南站', 'with a BOM');
  t.equal(parseManscdp(Buffer.from('<Notify><CmdType>Keepalive</CmdType><SN>x</SN></Notify>'), MAX).sn, null, 'an SN that is not a number is null');
});

t.test('refused: DOCTYPE and ENTITY (before parsing), oversize bodies, malformed XML, no CmdType, two roots', async (t) => {
  const refused: [string | Buffer, RegExp][] = [
    ['<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaa">]><Query><CmdType>&a;</CmdType></Query>', /DOCTYPE or ENTITY/],
    ['<?xml version="1.0"?><!DOCTYPE r SYSTEM "file:///etc/passwd"><Query><CmdType>x</CmdType></Query>', /DOCTYPE or ENTITY/],
    ['<Query><CmdType>x</CmdType><!entity b "c"></Query>', /DOCTYPE or ENTITY/],
    [Buffer.alloc(MAX + 1, 0x20), /over the 65536-byte limit/],
    ['<Query><CmdType>Catalog</CmdType>', /malformed XML/],
    ['<Query><CmdType>Catalog</Cmd></Query>', /malformed XML/],
    ['not xml at all', /malformed XML/],
    ['<Query><SN>1</SN></Query>', /no CmdType/],
    ['<Query><CmdType>a</CmdType></Query><Query><CmdType>b</CmdType></Query>', /malformed XML: Multiple possible root/],
    ['', /malformed XML/],
    [`<a>${'<b>'.repeat(40)}${'</b>'.repeat(40)}</a>`, /malformed XML/],
    ['<Query><CmdType>x</CmdType><__proto__><polluted>1</polluted></__proto__></Query>', /malformed XML/],
  ];
  for (const [body, why] of refused) {
    t.throws(() => parseManscdp(Buffer.isBuffer(body) ? body : Buffer.from(body), MAX), { name: 'ManscdpError', message: why }, String(body).slice(0, 60));
  }
  t.equal(({} as Record<string, unknown>).polluted, undefined);
});

t.test('buildManscdp writes GB2312 by default with the fields in order, escaped, lists repeated; it reads back', async (t) => {
  const body = buildManscdp('Response', {
    CmdType: 'Catalog',
    SN: 7,
    DeviceID: '34020000002000000001',
    SumNum: 2,
    DeviceList: { '@_Num': 2, Item: [{ DeviceID: '00000000001310000001', Name: '西门<1>' }, { DeviceID: '00000000001310000002', Name: 'A & B' }] },
  });
  const text = iconv.decode(body, 'gb18030');
  t.match(text, /^<\?xml version="1.0" encoding="GB2312"\?>\n<Response>\n<CmdType>Catalog<\/CmdType>\n<SN>7<\/SN>\n<DeviceID>/);
  t.ok(body.includes(iconv.encode('西门', 'gb2312')), 'the name is in GB2312 bytes');
  t.match(text, /西门&lt;1&gt;/);
  const back = parseManscdp(body, MAX);
  t.same(items(back.body.DeviceList).map((i) => i.Name), ['西门<1>', 'A & B']);
  t.equal(back.sn, 7);
  const utf8 = buildManscdp('Query', { CmdType: 'DeviceInfo', SN: 1, DeviceID: '34020000001320000001' }, 'UTF-8');
  t.match(utf8.toString('utf8'), /^<\?xml version="1.0" encoding="UTF-8"\?>\n<Query>/);
});

t.test('any bytes either parse or are refused with a ManscdpError, never another error', async (t) => {
  const fragments = fc.constantFrom('<Query>', '</Query>', '<CmdType>', '</CmdType>', 'Catalog', '<Item>', '</Item>', '<DeviceList Num="1">', '</DeviceList>', '&amp;', '&lt;', '&#x41;', '<!--', '-->', '<![CDATA[', ']]>', '<?xml version="1.0" encoding="GB2312"?>', '<!DOCTYPE', '"', "'", '=', '<', '>', '/', '\u0000', '中');
  const xmlish = fc.array(fc.oneof(fragments, fc.string({ maxLength: 8 })), { maxLength: 60 }).map((parts) => Buffer.from(parts.join('')));
  const bytes = fc.uint8Array({ maxLength: 400 }).map((a) => Buffer.from(a));
  const wrapped = xmlish.map((b) => Buffer.concat([Buffer.from('<Query><CmdType>Catalog</CmdType>'), b, Buffer.from('</Query>')]));
  const texts = fc.string({ maxLength: 40 }).map((s) => Buffer.from(`<Query><CmdType>Catalog</CmdType><Name>${s}</Name></Query>`));
  let parsed = 0;
  fc.assert(
    fc.property(fc.oneof(xmlish, bytes, wrapped, texts), (body) => {
      try {
        parseManscdp(body, 4_096);
        parsed++;
      } catch (err) {
        if (!(err instanceof ManscdpError)) throw err;
      }
    }),
    fuzzParameters(3_000),
  );
  t.pass(`${parsed} of the inputs parsed, the rest were refused with a ManscdpError`);
});

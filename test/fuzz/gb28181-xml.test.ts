import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import fc from 'fast-check';
import iconv from 'iconv-lite';
import t from 'tap';
import { CatalogImporter } from '../../gateway/src/gb28181/catalog.js';
import { GbDirectory } from '../../gateway/src/gb28181/directory.js';
import { buildManscdp, ManscdpError, parseManscdp } from '../../gateway/src/gb28181/xml.js';
import { NetworkPolicy } from '../../gateway/src/lib/cidr.js';
import { CredentialSealer } from '../../gateway/src/registry/credentials.js';
import { Registry } from '../../gateway/src/registry/service.js';
import { SqliteStore } from '../../gateway/src/store/sqlite/index.js';
import { checkProperty, fuzzParameters, heapAfterGc, oneAtATime } from '../helpers/fuzz.js';
import { tempDir } from '../helpers/gateway.js';

/**
 * Random and mutated MANSCDP bodies (catalog answers in GB2312, keepalives, device info, entity
 * tricks) fed to the XML reader and, when it accepts them, to the catalog importer against a real
 * registry, for a fixed few seconds (FUZZ_MS raises it): only ManscdpError leaves the reader, the
 * importer never throws on what the reader accepts, and the heap does not grow.
 */
const MAX_BYTES = 65_536;
const PLATFORM = '34020000002000000001';

const item = (i: number) => ({
  DeviceID: `3402000000131${String(i).padStart(7, '0')}`,
  Name: `路口摄像机${i}`,
  Manufacturer: 'Dahua',
  Parental: 0,
  ParentID: `${PLATFORM}/34020000002150000001`,
  Status: 'ON',
  Longitude: '117.2',
  Latitude: '31.8',
});
const SEEDS = [
  buildManscdp('Response', {
    CmdType: 'Catalog',
    SN: 7,
    DeviceID: PLATFORM,
    SumNum: 4,
    DeviceList: { '@_Num': 4, Item: [{ DeviceID: '34020000002150000001', Name: '分局' }, { DeviceID: '340200', Name: '合肥' }, item(1), item(2)] },
  }),
  buildManscdp('Notify', { CmdType: 'Keepalive', SN: 43, DeviceID: PLATFORM, Status: 'OK' }),
  buildManscdp('Response', { CmdType: 'DeviceInfo', SN: 9, DeviceID: PLATFORM, DeviceName: '平台', Manufacturer: 'Hik', Result: 'OK' }, 'UTF-8'),
  Buffer.from('<?xml version="1.0" encoding="UTF-8"?><Notify><CmdType>Catalog</CmdType><SN>1</SN><DeviceID>34020000002000000001</DeviceID><SumNum>1</SumNum><DeviceList Num="1"><Item><DeviceID>34020000001310000009</DeviceID><Event>ADD</Event><Name>a&amp;b&lt;c</Name></Item></DeviceList></Notify>'),
];
const BITS = ['<', '>', '</', '/>', '&', '&amp;', '&lt;', '&#x26;', '&#38;', '&lolz;', '<!DOCTYPE x [<!ENTITY lolz "lol">]>', '<!ENTITY', '<![CDATA[x]]>', '<!--', '-->', '<?xml version="1.0" encoding="GBK"?>', 'encoding="UTF-8"', '<Item>', '</Item>', '<DeviceList>', '<SumNum>99999999</SumNum>', '<SN>', '__proto__', 'constructor', '<Item><DeviceID>34020000001310000001</DeviceID></Item>', '\u0000', '\uFFFD'];

const mutated = fc
  .tuple(
    fc.constantFrom(...SEEDS),
    fc.array(
      fc.oneof(
        fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }),
        fc.record({ kind: fc.constant('cut' as const), at: fc.nat(), length: fc.integer({ min: 1, max: 60 }) }),
        fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), text: fc.constantFrom(...BITS) }),
        fc.record({ kind: fc.constant('repeat' as const), at: fc.nat(), length: fc.integer({ min: 1, max: 200 }), times: fc.integer({ min: 2, max: 300 }) }),
        fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
      ),
      { minLength: 1, maxLength: 5 },
    ),
  )
  .map(([seed, edits]) => {
    let b = Buffer.from(seed);
    for (const e of edits) {
      const at = e.at % (b.length + 1);
      if (e.kind === 'flip' && b.length > 0) b[at % b.length] = e.byte;
      else if (e.kind === 'cut') b = Buffer.concat([b.subarray(0, at), b.subarray(at + e.length)]);
      else if (e.kind === 'insert') b = Buffer.concat([b.subarray(0, at), iconv.encode(e.text, 'gb18030'), b.subarray(at)]);
      else if (e.kind === 'repeat') b = Buffer.concat([b.subarray(0, at), ...Array.from({ length: e.times }, () => b.subarray(at, at + e.length)), b.subarray(at)]);
      else if (e.kind === 'truncate') b = b.subarray(0, at);
    }
    return b.subarray(0, MAX_BYTES + 1_000);
  });
const anyInput = fc.oneof({ arbitrary: mutated, weight: 8 }, { arbitrary: fc.uint8Array({ maxLength: 2_000 }).map((a) => Buffer.from(a)), weight: 1 });

t.test('mutated MANSCDP: only ManscdpError leaves the reader; the importer takes whatever it accepts; the heap stays flat', async (t) => {
  const store = SqliteStore.open(join(tempDir(t), 'fuzz.db'));
  t.teardown(() => store.close());
  await store.departments.create({ id: 'root', name: 'Root', parentId: null, level: 'national', path: '/root/' }, 1);
  const sealer = new CredentialSealer(randomBytes(32));
  const registry = new Registry(store, sealer, new NetworkPolicy({ allow: [], deny: [] }), async () => []);
  await registry.init();
  const quiet = { info: () => undefined, warn: () => undefined };
  const directory = new GbDirectory({ store, sealer, registry, refusedListSize: 10, log: quiet });
  await directory.create({ id: 'a', username: 'admin', ip: '-', scopes: ['root'] }, { id: PLATFORM, name: 'P', departmentId: 'root', password: 'pass1234' });
  const importer = new CatalogImporter({ store, registry, directory, timeoutMs: 50, maxChannels: 500, log: quiet });
  t.teardown(() => importer.close());

  // Warm up (compiled code, prepared statements) before the heap is measured.
  for (const seed of SEEDS) parseManscdp(seed, MAX_BYTES);
  const heapBefore = heapAfterGc();
  let accepted = 0;
  let applied = 0;
  let sn = 0;
  const { run, settled } = oneAtATime(async (input: Buffer) => {
    let m;
    try {
      m = parseManscdp(input, MAX_BYTES);
    } catch (err) {
      if (err instanceof ManscdpError) return;
      throw err;
    }
    accepted++;
    if (m.cmdType !== 'Catalog') return;
    // Each accepted answer under a fresh SN the importer is waiting for, so it is applied (complete or at its timeout).
    const mine = ++sn;
    const done = importer.begin(PLATFORM, mine);
    importer.accept(PLATFORM, { ...m, sn: mine });
    await done;
    applied++;
  });
  const runs = await checkProperty(fc.asyncProperty(anyInput, run), fuzzParameters(100_000, 4_000));
  await settled();
  t.ok(runs > 200, `${runs} inputs, ${accepted} accepted by the reader, ${applied} catalogs applied`);
  t.ok(accepted > 0 && applied > 0, 'some inputs got through to the registry');
  const growth = heapAfterGc() - heapBefore;
  t.ok(growth < 20 * 1024 * 1024, `heap grew ${(growth / 1048576).toFixed(1)} MB (under 20 MB)`);
});

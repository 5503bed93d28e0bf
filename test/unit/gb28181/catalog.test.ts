import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { CatalogImporter, REMOVED_TAG } from '../../../gateway/src/gb28181/catalog.js';
import { GbDirectory } from '../../../gateway/src/gb28181/directory.js';
import { buildManscdp, parseManscdp } from '../../../gateway/src/gb28181/xml.js';
import { NetworkPolicy } from '../../../gateway/src/lib/cidr.js';
import { CredentialSealer } from '../../../gateway/src/registry/credentials.js';
import { Registry, type Actor } from '../../../gateway/src/registry/service.js';
import { SqliteStore } from '../../../gateway/src/store/sqlite/index.js';
import { tempDir } from '../../helpers/gateway.js';

const admin: Actor = { id: 'a', username: 'admin', ip: '127.0.0.1', scopes: ['root'] };
const PLATFORM = '34020000002000000001';
const OTHER = '34020000002000000002';
const channelId = (i: number) => `3402000000131${String(i).padStart(7, '0')}`;
const GROUP_A = '34020000002150000001';
const GROUP_B = '34020000002160000002';

async function setup(t: Test, opts: { timeoutMs?: number; maxChannels?: number } = {}) {
  const store = SqliteStore.open(join(tempDir(t), 'catalog.db'));
  t.teardown(() => store.close());
  await store.departments.create({ id: 'root', name: 'Root', parentId: null, level: 'national', path: '/root/' }, 1);
  await store.departments.create({ id: 'police', name: 'Police', parentId: 'root', level: 'city', path: '/root/police/' }, 1);
  await store.departments.create({ id: 'water', name: 'Water', parentId: 'root', level: 'city', path: '/root/water/' }, 1);
  const sealer = new CredentialSealer(randomBytes(32));
  const registry = new Registry(store, sealer, new NetworkPolicy({ allow: [], deny: [] }), async () => []);
  await registry.init();
  const warnings: string[] = [];
  const log = { info: () => undefined, warn: (_o: object, m: string) => void warnings.push(m) };
  const directory = new GbDirectory({ store, sealer, registry, refusedListSize: 10, log });
  await directory.create(admin, { id: PLATFORM, name: 'Police platform', departmentId: 'police', password: 'pass1234' });
  await directory.create(admin, { id: OTHER, name: 'Water platform', departmentId: 'water', password: 'pass1234' });
  const importer = new CatalogImporter({ store, registry, directory, timeoutMs: opts.timeoutMs ?? 60_000, maxChannels: opts.maxChannels ?? 20_000, log });
  t.teardown(() => importer.close());
  return { store, registry, directory, importer, warnings };
}

type Item = Record<string, unknown>;
const channel = (i: number, extra: Item = {}): Item => ({
  DeviceID: channelId(i),
  Name: `路口摄像机${i}号`,
  Manufacturer: 'Hikvision',
  Model: 'DS-2DE',
  CivilCode: '340200',
  Address: `长江路 ${i} 号`,
  Parental: 0,
  ParentID: i % 2 ? GROUP_B : GROUP_A,
  Status: i % 10 === 0 ? 'OFF' : 'ON',
  Longitude: (117 + i / 10_000).toFixed(6),
  Latitude: (31 + i / 10_000).toFixed(6),
  ...extra,
});
const directoryItems = (): Item[] => [
  { DeviceID: GROUP_A, Name: '城区分局', ParentID: PLATFORM },
  { DeviceID: GROUP_B, Name: '交警支队', ParentID: `${PLATFORM}/${GROUP_A}`, BusinessGroupID: GROUP_A },
];

/** Sends a catalog the way a platform does: GB2312 MESSAGEs of `perMessage` items sharing one SN, through the XML reader. */
function send(importer: CatalogImporter, deviceId: string, sn: number, all: Item[], perMessage: number) {
  for (let i = 0; i < Math.max(all.length, 1); i += perMessage) {
    const part = all.slice(i, i + perMessage);
    const body = buildManscdp('Response', { CmdType: 'Catalog', SN: sn, DeviceID: deviceId, SumNum: all.length, ...(part.length ? { DeviceList: { '@_Num': part.length, Item: part } } : {}) });
    importer.accept(deviceId, parseManscdp(body, 4 * 1024 * 1024));
  }
}

const channelsOf = async (registry: Registry) => {
  const out = new Map<string, Awaited<ReturnType<Registry['getSource']>>>();
  for await (const r of registry.iterateSources(admin, { protocol: 'gb28181' })) out.set(r.id, r);
  return out;
};

t.test('1,000 channels over several GB2312 messages become sources in group departments; a second catalog renames one and removes another', async (t) => {
  const { registry, importer, store } = await setup(t);
  const catalog = [...directoryItems(), ...Array.from({ length: 1_000 }, (_, i) => channel(i))];
  const done = importer.begin(PLATFORM, 17);
  send(importer, PLATFORM, 17, catalog, 90);
  const counts = await done;
  t.match(counts, { complete: true, sumNum: 1_002, received: 1_002, created: 1_000, channels: 1_000, removed: 0, departments: { created: 2 }, skipped: { foreign: 0, invalid: 0 } });

  const groupA = registry.departments.get(`gb-${GROUP_A}`)!;
  const groupB = registry.departments.get(`gb-${GROUP_B}`)!;
  t.match(groupA, { name: '城区分局', parentId: 'police', level: 'county', path: `/root/police/gb-${GROUP_A}/` }, 'a 215 group below the platform\'s department, one level down');
  t.match(groupB, { name: '交警支队', parentId: `gb-${GROUP_A}`, level: 'township' }, 'a 216 organisation below its group');

  const sources = await channelsOf(registry);
  t.equal(sources.size, 1_000);
  const c7 = sources.get(channelId(7))!;
  t.match(c7, {
    name: '路口摄像机7号',
    departmentId: `gb-${GROUP_B}`,
    protocol: 'gb28181',
    url: `gb28181://${PLATFORM}/${channelId(7)}`,
    subUrl: null,
    codec: 'unknown',
    address: '长江路 7 号',
    lat: 31.0007,
    lon: 117.0007,
    enabled: true,
    health: 'online',
    username: null,
    hasPassword: false,
  });
  t.same(c7.tags, ['gb28181', 'Hikvision']);
  t.match(sources.get(channelId(10)), { health: 'offline', healthCode: 'GW_ERR_CAMERA_UNREACHABLE', healthParams: { reason: 'deviceOffline', device: PLATFORM } }, 'Status OFF');
  t.equal((await registry.listSources(admin, { q: '路口摄像机7号', limit: 5 })).items[0]?.id, channelId(7), 'found by text search like any camera');
  t.equal((await store.gb.getDevice(PLATFORM))?.channelCount, 1_000);

  // The next catalog: channel 3 renamed, channel 5 gone, group A renamed, channel 10 back ON.
  const next = catalog.filter((i) => i.DeviceID !== channelId(5)).map((i) => {
    if (i.DeviceID === channelId(3)) return { ...i, Name: '新名字' };
    if (i.DeviceID === GROUP_A) return { ...i, Name: '城区分局（新）' };
    if (i.DeviceID === channelId(10)) return { ...i, Status: 'ON' };
    return i;
  });
  const again = importer.begin(PLATFORM, 18);
  send(importer, PLATFORM, 18, next, 250);
  t.match(await again, { complete: true, created: 0, updated: 1, removed: 1, unchanged: 998, channels: 999, departments: { created: 0, updated: 1 } });
  const after = await channelsOf(registry);
  t.equal(after.get(channelId(3))?.name, '新名字');
  t.equal(after.get(channelId(3))?.version, 2);
  t.match(after.get(channelId(5)), { enabled: false }, 'a vanished channel stays, disabled');
  t.ok(after.get(channelId(5))?.tags.includes(REMOVED_TAG), `and tagged ${REMOVED_TAG}`);
  t.equal(after.get(channelId(10))?.health, 'online');
  t.equal(registry.departments.get(`gb-${GROUP_A}`)?.name, '城区分局（新）');

  // It comes back: enabled again, the tag gone.
  const back = importer.begin(PLATFORM, 19);
  send(importer, PLATFORM, 19, catalog, 500);
  t.match(await back, { removed: 0, channels: 1_000 });
  const restored = (await channelsOf(registry)).get(channelId(5))!;
  t.equal(restored.enabled, true);
  t.notOk(restored.tags.includes(REMOVED_TAG));
});

t.test('a channel id registered from another device or by hand is not taken over', async (t) => {
  const { registry, importer, warnings } = await setup(t);
  const first = importer.begin(OTHER, 1);
  send(importer, OTHER, 1, [channel(1)], 10);
  t.match(await first, { created: 1 });
  await registry.createSource(admin, { id: channelId(2), name: 'By hand', departmentId: 'police', url: 'rtsp://10.0.0.2/live' });
  const mine = importer.begin(PLATFORM, 2);
  send(importer, PLATFORM, 2, [channel(1), channel(2), channel(3)], 10);
  t.match(await mine, { created: 1, skipped: { foreign: 2 }, channels: 1 });
  const all = await channelsOf(registry);
  t.equal(all.get(channelId(1))?.url, `gb28181://${OTHER}/${channelId(1)}`, 'still the first device\'s');
  t.equal((await registry.getSource(admin, channelId(2))).protocol, 'rtsp');
  t.ok(warnings.some((w) => /not taken over/.test(w)), 'logged');
});

t.test('an answer cut short by the timeout is applied without removing anything', async (t) => {
  const { registry, importer } = await setup(t, { timeoutMs: 200 });
  const full = importer.begin(PLATFORM, 1);
  send(importer, PLATFORM, 1, [channel(1), channel(2)], 10);
  await full;
  const partial = importer.begin(PLATFORM, 2);
  const body = buildManscdp('Response', { CmdType: 'Catalog', SN: 2, DeviceID: PLATFORM, SumNum: 3, DeviceList: { Item: [channel(3)] } });
  importer.accept(PLATFORM, parseManscdp(body, 65_536));
  t.match(await partial, { complete: false, received: 1, sumNum: 3, created: 1, removed: 0, channels: 3 });
  t.equal([...(await channelsOf(registry)).values()].filter((s) => s.enabled).length, 3);
});

t.test('a platform that repeats items is not complete until SumNum distinct items arrived, so nothing is removed early', async (t) => {
  const { registry, importer } = await setup(t, { timeoutMs: 300 });
  const first = importer.begin(PLATFORM, 1);
  send(importer, PLATFORM, 1, [channel(1), channel(2), channel(3)], 10);
  await first;
  const again = importer.begin(PLATFORM, 2);
  // SumNum 3, but the first message repeats channel 1: three items received, two distinct.
  const body = buildManscdp('Response', { CmdType: 'Catalog', SN: 2, DeviceID: PLATFORM, SumNum: 3, DeviceList: { Item: [channel(1), channel(1), channel(2)] } });
  importer.accept(PLATFORM, parseManscdp(body, 65_536));
  t.match(await again, { complete: false, removed: 0 }, 'still waiting for the third: the timeout applies it without removals');
  t.equal([...(await channelsOf(registry)).values()].filter((s) => s.enabled).length, 3, 'channel 3 was not removed');
});

t.test('maxChannels bounds what one device brings; a list cut short removes nothing', async (t) => {
  const { importer } = await setup(t, { maxChannels: 5 });
  const done = importer.begin(PLATFORM, 1);
  send(importer, PLATFORM, 1, Array.from({ length: 8 }, (_, i) => channel(i)), 3);
  t.match(await done, { created: 5, removed: 0, skipped: { overLimit: 3 } });
});

t.test('SumNum 0 is a device with no channels left; bad items are counted, not fatal', async (t) => {
  const { importer, registry } = await setup(t);
  const first = importer.begin(PLATFORM, 1);
  send(importer, PLATFORM, 1, [channel(1), { DeviceID: 'not-an-id', Name: 'x' }, { Name: 'no id' }, channel(2, { Name: 'bad\u0000name', Longitude: 'east', Latitude: '91' })], 10);
  const counts = await first;
  t.match(counts, { created: 2, skipped: { invalid: 1 } });
  t.match((await channelsOf(registry)).get(channelId(2)), { name: 'bad name', lat: null, lon: null });
  const empty = importer.begin(PLATFORM, 2);
  send(importer, PLATFORM, 2, [], 10);
  t.match(await empty, { complete: true, removed: 2, channels: 0 });
});

t.test('NOTIFY events: ADD and UPDATE upsert, DEL removes, ON and OFF set health', async (t) => {
  const { importer, registry } = await setup(t);
  const first = importer.begin(PLATFORM, 1);
  send(importer, PLATFORM, 1, [channel(1), channel(2)], 10);
  await first;
  const counts = await importer.applyNotify(PLATFORM, [
    { ...channel(3), Event: 'ADD' },
    { ...channel(1), Name: '改名', Event: 'UPDATE' },
    { DeviceID: channelId(2), Event: 'DEL' },
    { DeviceID: channelId(1), Event: 'OFF' },
  ]);
  t.match(counts, { created: 1, updated: 1, removed: 1 });
  const all = await channelsOf(registry);
  t.match(all.get(channelId(1)), { name: '改名', health: 'offline' });
  t.match(all.get(channelId(2)), { enabled: false });
  t.ok(all.get(channelId(3)));
  t.same((await importer.channelIds(PLATFORM)).sort(), [channelId(1), channelId(2), channelId(3)]);
});

t.test('a department admin sees only the channels of their platform', async (t) => {
  const { importer, registry } = await setup(t);
  const a = importer.begin(PLATFORM, 1);
  send(importer, PLATFORM, 1, [...directoryItems(), channel(1), channel(2)], 10);
  const b = importer.begin(OTHER, 1);
  send(importer, OTHER, 1, [channel(3)], 10);
  await Promise.all([a, b]);
  const water: Actor = { id: 'w', username: 'water', ip: '-', scopes: ['water'] };
  t.same((await registry.listSources(water, { protocol: 'gb28181', limit: 10 })).items.map((s) => s.id), [channelId(3)]);
});

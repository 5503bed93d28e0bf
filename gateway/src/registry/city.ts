import type { DepartmentRecord, Level, Store } from '../store/types.js';
import type { ImportInput, Registry } from './service.js';

/**
 * A synthetic but realistic city: a province, a city, five agencies, their county branches and
 * township units, and cameras at sites with GB/T 28181-style ids, NVR credentials shared per unit,
 * and URLs in private address space that point at nothing. Deterministic for a given size and seed.
 * Used by the demo mode, scripts/gen-city.ts and the registry benchmark.
 */

export type CityDepartment = Omit<DepartmentRecord, 'createdAt' | 'updatedAt'>;

const AGENCIES = [
  { key: 'ps', name: '公安局', unit: '派出所', industry: '00', share: 0.5 },
  { key: 'tr', name: '交通运输局', unit: '交通管理站', industry: '08', share: 0.2 },
  { key: 'um', name: '城市管理局', unit: '城管中队', industry: '06', share: 0.15 },
  { key: 'em', name: '应急管理局', unit: '应急管理站', industry: '04', share: 0.08 },
  { key: 'wa', name: '水务局', unit: '水务所', industry: '05', share: 0.07 },
];
const COUNTIES = ['东城区', '西城区', '南湖区', '北山区', '高新区', '临港区', '江北县', '青山县'];
const TOWNS = ['城关', '新华', '长安', '和平', '永安', '龙泉', '清河', '桃源'];
const ROADS = ['解放路', '人民路', '中山路', '建设路', '长江路', '黄河路', '胜利路', '文化路', '江滨大道', '环城北路', '学府路', '工业大道'];
const SPOTS = ['交叉口', '公交站', '学校门口', '医院门口', '广场', '桥头', '隧道口', '地铁站', '加油站', '农贸市场'];
const KINDS = ['枪机', '球机', '半球', '全景'];
const TAGS = ['路口', '高点', '重点区域', '学校', '医院', '桥梁', '隧道', '人员密集'];

/** A small seeded generator (mulberry32): the same city every time. */
export function prng(seed: number) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface City {
  departments: CityDepartment[];
  sources: Record<string, unknown>[];
}

export function generateCity(size: number, rootId = 'root', seed = 2026): City {
  const rnd = prng(seed);
  const pick = <T>(list: readonly T[]): T => list[Math.floor(rnd() * list.length)]!;
  const rootPath = `/${rootId}/`;
  const dep = (id: string, name: string, parent: CityDepartment | null, level: Level): CityDepartment => ({
    id,
    name,
    parentId: parent?.id ?? rootId,
    level,
    path: `${parent?.path ?? rootPath}${id}/`,
  });
  const province = dep('p32', '江东省', null, 'province');
  const city = dep('c3201', '临江市', province, 'city');
  const departments: CityDepartment[] = [province, city];
  const units: { dep: CityDepartment; agency: (typeof AGENCIES)[number]; county: number; weight: number }[] = [];
  for (const agency of AGENCIES) {
    const bureau = dep(`c3201-${agency.key}`, `临江市${agency.name}`, city, 'city');
    departments.push(bureau);
    COUNTIES.forEach((county, ci) => {
      const branch = dep(`${bureau.id}-${ci + 1}`, `${county}${agency.name.replace('局', '分局')}`, bureau, 'county');
      departments.push(branch);
      const towns = agency.key === 'ps' ? 8 : 4;
      for (let ti = 0; ti < towns; ti++) {
        const unit = dep(`${branch.id}-${ti + 1}`, `${county}${TOWNS[ti]}${agency.unit}`, branch, 'township');
        departments.push(unit);
        units.push({ dep: unit, agency, county: ci, weight: agency.share / (COUNTIES.length * towns) });
      }
    });
  }

  const sources: Record<string, unknown>[] = [];
  let made = 0;
  units.forEach((u, ui) => {
    const count = ui === units.length - 1 ? size - made : Math.round(size * u.weight);
    const password = `Nvr@${Math.floor(rnd() * 1e8).toString(36)}`;
    const subnet = `10.${(ui >> 6) + 16}.${(ui & 63) * 4 + 1}`;
    for (let i = 0; i < count && made < size; i++, made++) {
      const county = COUNTIES[u.county]!;
      const road = pick(ROADS);
      const spot = pick(SPOTS);
      const region = `3201${String(u.county + 2).padStart(2, '0')}${String((ui % 90) + 10)}`;
      const id = `${region}${u.agency.industry}132${String(made).padStart(7, '0')}`;
      const host = `${subnet}.${(i % 250) + 2}`;
      const dahua = rnd() < 0.3;
      const channel = Math.floor(i / 250) + 1;
      const path = dahua ? `/cam/realmonitor?channel=${channel}&subtype=` : `/Streaming/Channels/${channel}0`;
      const codecRoll = rnd();
      sources.push({
        id,
        name: `${county}${road}${spot}-${(i % 9) + 1}号${pick(KINDS)}`,
        departmentId: u.dep.id,
        level: 'site',
        address: `临江市${county}${road}${Math.floor(rnd() * 900) + 1}号`,
        url: `rtsp://${host}:554${path}${dahua ? '0' : '1'}`,
        subUrl: `rtsp://${host}:554${path}${dahua ? '1' : '2'}`,
        username: 'admin',
        password,
        codec: codecRoll < 0.7 ? 'h264' : codecRoll < 0.95 ? 'h265' : 'unknown',
        lat: Math.round((32.05 + (rnd() - 0.5) * 0.6) * 1e6) / 1e6,
        lon: Math.round((118.78 + (rnd() - 0.5) * 0.6) * 1e6) / 1e6,
        tags: rnd() < 0.6 ? [pick(TAGS)] : [],
        enabled: rnd() > 0.02,
      });
    }
  });
  return { departments, sources };
}

/** Demo mode: fills an empty registry with a city of `size` cameras, as the system. */
export async function seedDemoCity(store: Store, registry: Registry, size: number): Promise<void> {
  if (size === 0 || (await store.sources.list({ ranges: [['/', '0']], limit: 1 })).items.length) return;
  const city = generateCity(size);
  const now = Date.now();
  for (const d of city.departments) if (!registry.departments.get(d.id)) await store.departments.create(d, now);
  await registry.init();
  async function* rows(): AsyncGenerator<ImportInput> {
    let line = 0;
    for (const value of city.sources) yield { line: ++line, value };
  }
  await registry.importSources({ id: 'system', username: 'system', ip: '-', scopes: ['root'] }, rows(), 'keep-valid', size);
}

/** The simulator's clips, in the mix a real estate has: mostly 1 s GOP H.264, some 2 s, some 1080p, a few H.265. */
const LIVE_CLIPS = ['h264-720p-1s', 'h264-720p-1s', 'h264-720p-2s', 'h264-1080p-1s', 'h264-720p-1s', 'h264-1080p-2s'] as const;

/**
 * Registers cameras served by a camera simulator, so a first look shows live video. The simulator
 * serves any "/auto/<clip>/<name>" path; every twelfth camera is H.265, which exercises the transcode.
 */
export async function seedLiveCameras(store: Store, registry: Registry, base: string, count: number): Promise<void> {
  if (!base || count === 0 || (await store.sources.get('live-001'))) return;
  if (!registry.departments.get('demo-live')) {
    await store.departments.create({ id: 'demo-live', name: '演示实时摄像机 Live demo cameras', parentId: 'root', level: 'city', path: '/root/demo-live/' }, Date.now());
    await registry.init();
  }
  async function* rows(): AsyncGenerator<ImportInput> {
    for (let i = 1; i <= count; i++) {
      const id = `live-${String(i).padStart(3, '0')}`;
      const clip = i % 12 === 0 ? 'h265-720p-1s' : LIVE_CLIPS[i % LIVE_CLIPS.length]!;
      yield {
        line: i,
        value: {
          id,
          name: `实时 ${i} Live ${clip}`,
          departmentId: 'demo-live',
          url: `${base.replace(/\/$/, '')}/auto/${clip}/${id}`,
          codec: clip.startsWith('h265') ? 'h265' : 'h264',
          tags: ['demo', 'live'],
        },
      };
    }
  }
  await registry.importSources({ id: 'system', username: 'system', ip: '-', scopes: ['root'] }, rows(), 'keep-valid', count);
}

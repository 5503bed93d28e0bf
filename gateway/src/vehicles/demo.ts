import { prng } from '../registry/city.js';
import type { ImportInput, Registry } from '../registry/service.js';
import type { HazardClass, VehicleCategory } from './model.js';
import type { VehicleActor, VehicleService } from './service.js';

/**
 * The demo fleet: the city's "two passenger, one dangerous" vehicles (scheduled coaches, tourist
 * buses and dangerous-goods trucks), deterministic for a given size, so the simulators (their
 * JT/T 808 terminals, scripts/jt-sim.ts, and a forwarding platform's feed, scripts/vehicle-sim.ts)
 * know the same SIMs and plates without reading them from the gateway.
 */

/** The demo city's centre (临江市, see registry/city.ts). */
export const DEMO_CENTRE = { lat: 32.05, lon: 118.78 };

export const DEMO_TRANSPORT = 'demo-transport';
const SECTIONS: { id: string; name: string; category: VehicleCategory; share: number }[] = [
  { id: 'demo-transport-coach', name: '客运管理科 Coaches', category: 'passenger', share: 0.42 },
  { id: 'demo-transport-tour', name: '旅游客运科 Tourist buses', category: 'tourist', share: 0.28 },
  { id: 'demo-transport-hazmat', name: '危货运输科 Dangerous goods', category: 'dangerous-goods', share: 0.3 },
];
const COMPANIES: Record<VehicleCategory, string[]> = {
  passenger: ['临江长途客运集团', '江北城际客运公司', '青山客运有限公司', '南湖快客公司'],
  tourist: ['临江旅游客运公司', '山水假日旅游巴士', '金陵观光车队'],
  'dangerous-goods': ['临江化工物流公司', '中油危货运输', '长江危化品储运', '江北燃气运输'],
};
const CHANNELS: Record<VehicleCategory, string[]> = {
  passenger: ['前方道路 front road', '驾驶员 driver', '车厢 cabin', '车门 door'],
  tourist: ['前方道路 front road', '驾驶员 driver', '车厢 cabin', '车门 door'],
  'dangerous-goods': ['前方道路 front road', '驾驶员 driver', '罐体 cargo tank', '车尾 rear'],
};
const CARGO: { hazardClass: HazardClass; unNumber: string; description: string }[] = [
  { hazardClass: '3', unNumber: 'UN1203', description: '汽油 petrol' },
  { hazardClass: '3', unNumber: 'UN1202', description: '柴油 diesel' },
  { hazardClass: '2.1', unNumber: 'UN1075', description: '液化石油气 LPG' },
  { hazardClass: '8', unNumber: 'UN1789', description: '盐酸 hydrochloric acid' },
  { hazardClass: '6.1', unNumber: 'UN1230', description: '甲醇 methanol' },
];
/** Plate letters after the city code (no I or O). */
const PLATE_LETTERS = 'ABCDEFGHJKLMNPQRSTUVWXYZ';

export interface DemoVehicle {
  id: string;
  plate: string;
  category: VehicleCategory;
  departmentId: string;
  company: string;
  cargo: (typeof CARGO)[number] | null;
  terminalId: string;
  sim: string;
  channels: { channel: number; name: string; sourceId: string }[];
}

export function generateFleet(count: number, seed = 826): DemoVehicle[] {
  const rnd = prng(seed);
  const fleet: DemoVehicle[] = [];
  for (let i = 0; i < count; i++) {
    const roll = rnd();
    const section = roll < SECTIONS[0]!.share ? SECTIONS[0]! : roll < SECTIONS[0]!.share + SECTIONS[1]!.share ? SECTIONS[1]! : SECTIONS[2]!;
    const id = `veh-${String(i + 1).padStart(5, '0')}`;
    // Unique by construction: the index in base 34 (letters without I and O, and digits) over five places.
    let n = i;
    let tail = '';
    for (let k = 0; k < 4; k++) {
      tail = String(n % 10) + tail;
      n = Math.floor(n / 10);
    }
    const plate = `苏A${PLATE_LETTERS[n % PLATE_LETTERS.length]}${tail}`;
    fleet.push({
      id,
      plate,
      category: section.category,
      departmentId: section.id,
      company: COMPANIES[section.category][Math.floor(rnd() * COMPANIES[section.category].length)]!,
      cargo: section.category === 'dangerous-goods' ? CARGO[Math.floor(rnd() * CARGO.length)]! : null,
      terminalId: `T${String(100000 + i)}`,
      sim: `1440${String(1000000 + i).padStart(7, '0')}`,
      channels: CHANNELS[section.category].map((name, c) => ({ channel: c + 1, name, sourceId: `${id}-ch${c + 1}` })),
    });
  }
  return fleet;
}

/**
 * Demo mode: registers the fleet (departments, each channel as a JT/T 1078 camera source, the vehicles), a
 * school zone and a reservoir that dangerous goods may not enter, and a rule that puts a vehicle's
 * cameras on the demo wall's third monitor on a serious alarm.
 */
export async function seedDemoFleet(registry: Registry, vehicles: VehicleService, count: number, rootDepartment: string): Promise<void> {
  if (count === 0 || vehicles.size > 0) return;
  const actor: VehicleActor = { id: 'system', username: 'system', ip: '-', scopes: [rootDepartment], roles: ['admin'] };
  if (!registry.departments.get(DEMO_TRANSPORT)) {
    await registry.createDepartment(actor, { id: DEMO_TRANSPORT, name: '临江市交通运输局 Transport bureau', parentId: rootDepartment, level: 'city' });
  }
  for (const s of SECTIONS) {
    if (!registry.departments.get(s.id)) await registry.createDepartment(actor, { id: s.id, name: s.name, parentId: DEMO_TRANSPORT, level: 'county' });
  }
  const fleet = generateFleet(count);
  async function* sources(): AsyncGenerator<ImportInput> {
    let line = 0;
    for (const v of fleet) {
      for (const c of v.channels) {
        // Played from the vehicle's own terminal over JT/T 1078 (scripts/jt-sim.ts in the demo), the sub-stream for small tiles.
        const url = `jt1078://${v.id}/${c.channel}`;
        yield { line: ++line, value: { id: c.sourceId, name: `${v.plate} ${c.name}`, departmentId: v.departmentId, level: 'site', url, subUrl: `${url}?stream=1`, codec: 'h264', tags: ['vehicle'] } };
      }
    }
  }
  await registry.importSources(actor, sources(), 'keep-valid', count * 8);
  async function* rows(): AsyncGenerator<ImportInput> {
    let line = 0;
    for (const v of fleet) {
      yield {
        line: ++line,
        value: {
          id: v.id,
          plate: v.plate,
          category: v.category,
          ...(v.cargo ? { hazardClass: v.cargo.hazardClass, unNumber: v.cargo.unNumber, cargo: v.cargo.description } : {}),
          company: v.company,
          departmentId: v.departmentId,
          terminalId: v.terminalId,
          sim: v.sim,
          channels: v.channels,
        },
      };
    }
  }
  await vehicles.importVehicles(actor, rows(), 'keep-valid', count);
  const { lat, lon } = DEMO_CENTRE;
  await vehicles.putGeofence(actor, null, {
    id: 'demo-school-zone',
    name: '实验小学 school zone',
    departmentId: DEMO_TRANSPORT,
    shape: { kind: 'circle', center: [lon + 0.01, lat + 0.01], radiusM: 800 },
    rules: [{ forbid: 'enter', categories: ['dangerous-goods'], severity: 'high' }],
  }, null);
  await vehicles.putGeofence(actor, null, {
    id: 'demo-reservoir',
    name: '青山水库 reservoir',
    departmentId: DEMO_TRANSPORT,
    shape: { kind: 'polygon', points: [[lon - 0.12, lat + 0.08], [lon - 0.06, lat + 0.09], [lon - 0.05, lat + 0.04], [lon - 0.11, lat + 0.03]] },
    rules: [{ forbid: 'enter', categories: ['dangerous-goods'], severity: 'critical' }],
  }, null);
  try {
    await vehicles.putLinkageRule(actor, null, {
      id: 'demo-alarm-to-wall',
      name: '严重告警上墙 serious alarms to the wall',
      departmentId: DEMO_TRANSPORT,
      match: { minSeverity: 'high' },
      wallId: 'demo-wall',
      tileIds: ['s3-1', 's3-2', 's3-3', 's3-4'],
      priority: 50,
      holdSec: 120,
    }, null);
  } catch {
    // No demo wall (no live cameras): the vehicles work without the rule.
  }
}

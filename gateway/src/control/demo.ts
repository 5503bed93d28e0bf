import type { Registry } from '../registry/service.js';
import type { ControlActor, WallService } from './walls.js';

const SEEDER: ControlActor = { id: 'system', username: 'system', ip: '-', scopes: [], roles: ['admin'] };

/**
 * The demo's wall, on a first start with live demo cameras: 2×2 monitors of four tiles, fifteen live
 * cameras, and a tour over the rest on the last tile, so a fresh install shows a working wall.
 */
export async function seedDemoWall(walls: WallService, registry: Registry, rootDepartment: string): Promise<void> {
  const actor = { ...SEEDER, scopes: [rootDepartment] };
  if (walls.list(actor).length > 0) return;
  const live = (await registry.listSources(actor, { departmentId: 'demo-live', limit: 100 }).catch(() => ({ items: [] }))).items.filter((s) => s.codec !== 'h265');
  await walls.execute(actor, 'wall.create', {
    id: 'demo-wall',
    name: '指挥中心大屏 Command centre wall',
    departmentId: rootDepartment,
    screens: { rows: 2, cols: 2, width: 1920, height: 1080 },
    layout: '4',
  });
  let version = 1;
  const tiles = [1, 2, 3, 4].flatMap((s) => [1, 2, 3, 4].map((n) => `s${s}-${n}`));
  for (const [i, source] of live.slice(0, tiles.length - 1).entries()) {
    const ack = (await walls.execute(actor, 'tile.assign', { wallId: 'demo-wall', baseVersion: version, tileId: tiles[i], content: { kind: 'camera', cameraId: source.id } })) as { version: number };
    version = ack.version;
  }
  const rest = live.slice(tiles.length - 1).map((s) => s.id);
  if (rest.length > 0) {
    await walls.execute(actor, 'tour.start', { wallId: 'demo-wall', baseVersion: version, name: '轮巡 Demo tour', tileIds: [tiles[tiles.length - 1]], cameras: rest, dwellSec: 10 });
  }
}

import type { Test } from 'tap';
import type { BuildOptions } from '../../gateway/src/app.js';
import type { Config } from '../../gateway/src/config/schema.js';
import { SCREENS_2X2, startControlGateway, type ControlGateway } from './control.js';
import { camera, type DeepPartial } from './gateway.js';

export interface VehicleGateway extends ControlGateway {
  /** A feed account's token (role feed, whole tree). */
  feedToken: string;
  /** Registers a vehicle through the admin; throws unless 201. */
  addVehicle(body: Record<string, unknown>): Promise<Record<string, any>>;
  /** Sends positions through the REST feed and returns its outcome. */
  positions(items: unknown[]): Promise<Record<string, any>>;
  alarms(items: unknown[]): Promise<Record<string, any>>;
}

/** A SIM of its own for a test vehicle (a SIM is at most one vehicle's): 144 and eight digits from its id. */
export function simFor(id: string): string {
  let h = 0x811c9dc5;
  for (const ch of Buffer.from(id)) h = Math.imul(h ^ ch, 0x01000193) >>> 0;
  return `144${String(h % 100_000_000).padStart(8, '0')}`;
}

/** A vehicle with `channels` camera sources registered in `departmentId`, named `<id>-ch<n>`. */
export function vehicleBody(id: string, plate: string, departmentId: string, extra: Record<string, unknown> = {}, channels = 3) {
  return {
    id,
    plate,
    category: 'passenger',
    company: '临江长途客运集团',
    departmentId,
    terminalId: `T${id.replace(/\W/g, '')}`,
    sim: simFor(id),
    channels: Array.from({ length: channels }, (_, i) => ({ channel: i + 1, name: ['front road', 'driver', 'cabin', 'cargo'][i % 4], sourceId: `${id}-ch${i + 1}` })),
    ...extra,
  };
}

/**
 * The control gateway (small tree, cameras a1..b1, listening on loopback) with a wall "alarm-wall"
 * (2×2 monitors of 4 tiles, in the city department) and a feed account.
 */
export async function startVehicleGateway(t: Test, overrides: DeepPartial<Config> = {}, opts: BuildOptions = {}): Promise<VehicleGateway> {
  const gw = await startControlGateway(t, overrides, opts);
  await gw.createWall({ id: 'alarm-wall', name: '告警大屏 Alarm wall', departmentId: 'city', screens: SCREENS_2X2, layout: '4' });
  const feedToken = await gw.userToken('feed', ['feed'], ['root']);
  const addVehicle = async (body: Record<string, unknown>) => {
    const channels = (body.channels as { sourceId: string }[] | undefined) ?? [];
    for (const c of channels) {
      const res = await gw.api('POST', '/api/sources', { token: gw.adminToken, body: camera(c.sourceId, body.departmentId as string) });
      if (res.status !== 201 && res.status !== 409) throw new Error(`source ${c.sourceId}: ${res.body}`);
    }
    const res = await gw.api('POST', '/api/vehicles', { token: gw.adminToken, body });
    if (res.status !== 201) throw new Error(`vehicle ${body.id}: ${res.body}`);
    return res.json;
  };
  const feed = (path: string, key: string) => async (items: unknown[]) => {
    const res = await gw.api('POST', path, { token: feedToken, body: { [key]: items } });
    if (res.status !== 200) throw new Error(`${path}: ${res.body}`);
    return res.json;
  };
  return Object.assign(gw, { feedToken, addVehicle, positions: feed('/api/feed/positions', 'positions'), alarms: feed('/api/feed/alarms', 'alarms') });
}

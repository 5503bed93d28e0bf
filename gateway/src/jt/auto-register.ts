import { GatewayError } from '../errors.js';
import type { Registry } from '../registry/service.js';
import { jtUrl } from '../registry/url-policy.js';
import type { VehicleActor } from '../vehicles/context.js';
import { PLATE_COLOR_CODES } from '../vehicles/model.js';
import type { VehicleService } from '../vehicles/service.js';
import type { JtAutoRegistrar } from './service.js';
import type { Registration } from './protocol/messages.js';

/** What an auto-registered vehicle is until an admin says otherwise. */
const AUTO_COMPANY = '待登记 auto-registered';

/**
 * jt808.autoRegister: an unknown terminal becomes a vehicle in the configured department, with
 * `channels` JT/T 1078 channel sources (jt1078://<vehicle>/<n>, sub-stream ?stream=1), written as
 * the system in that department's name. Its plate must be one the registry takes; a terminal that
 * sends a VIN in its place is refused (reason 'plate') and listed for an admin to register by hand.
 * One registration per SIM at a time (a terminal that retries before the answer waits for the first
 * one's vehicle), and at most `maxPerHour` vehicles an hour: any host can send 0x0100 with a made-up SIM.
 */
export function autoRegistrar(opts: {
  registry: Registry;
  vehicles: Pick<VehicleService, 'create'>;
  departmentId: string;
  channels: number;
  maxPerHour: number;
  clock?: () => number;
}): JtAutoRegistrar {
  const actor: VehicleActor = { id: 'system', username: 'system', ip: '-', scopes: [opts.departmentId], roles: ['admin'] };
  const clock = opts.clock ?? Date.now;
  const inFlight = new Map<string, Promise<string>>();
  /** When each vehicle of the last hour was registered, oldest first. */
  const recent: number[] = [];
  return {
    register(sim: string, reg: Registration): Promise<string> {
      const running = inFlight.get(sim);
      if (running) return running;
      const now = clock();
      while (recent.length && recent[0]! <= now - 3_600_000) recent.shift();
      if (recent.length >= opts.maxPerHour) return Promise.reject(new AutoRegisterLimit(opts.maxPerHour));
      recent.push(now);
      const p = create(sim, reg).finally(() => inFlight.delete(sim));
      inFlight.set(sim, p);
      return p;
    },
  };

  async function create(sim: string, reg: Registration): Promise<string> {
    const vehicleId = `jt-${sim}`;
    // The registry wants 11 to 20 digits; terminals are matched with their leading zeros stripped, so padding changes nothing.
    const vehicleSim = sim.padStart(11, '0');
    const channels = [];
    for (let n = 1; n <= opts.channels; n++) {
      const sourceId = `${vehicleId}-ch${n}`;
      try {
        await opts.registry.createSource(actor, { id: sourceId, name: `${reg.plate || sim} ch${n}`, departmentId: opts.departmentId, url: jtUrl(vehicleId, n), subUrl: jtUrl(vehicleId, n, true) });
      } catch (err) {
        // Left by an attempt whose vehicle was refused (its plate): the camera is the same.
        if (!(err instanceof GatewayError && err.code === 'GW_ERR_CONFLICT')) throw err;
      }
      channels.push({ channel: n, name: `channel ${n}`, sourceId });
    }
    const terminalId = reg.terminalId.replace(/[^A-Za-z0-9]/g, '').slice(0, 30);
    const entry = await opts.vehicles.create(actor, {
      id: vehicleId,
      plate: reg.plate,
      ...(PLATE_COLOR_CODES[reg.plateColor] ? { plateColor: PLATE_COLOR_CODES[reg.plateColor] } : {}),
      category: 'passenger',
      company: AUTO_COMPANY,
      departmentId: opts.departmentId,
      ...(terminalId ? { terminalId } : {}),
      sim: vehicleSim,
      channels,
    });
    return entry.vehicle.id;
  }
}

/** jt808.autoRegister.maxPerHour reached. */
export class AutoRegisterLimit extends Error {
  constructor(limit: number) {
    super(`auto-registration paused: ${limit} vehicles registered within the last hour (jt808.autoRegister.maxPerHour)`);
    this.name = 'AutoRegisterLimit';
  }
}

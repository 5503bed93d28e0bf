import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { deflateSync } from 'node:zlib';
import type { Page } from 'playwright-core';
import type { Test } from 'tap';
import type { BuildOptions } from '../../gateway/src/app.js';
import type { Config } from '../../gateway/src/config/schema.js';
import { startPlayerGateway } from './browser.js';
import type { DeepPartial } from './gateway.js';
import { simFor } from './vehicles.js';
import type { StreamingGateway } from './streams.js';

/** The department the test fleet, its cameras, its wall and its regulators belong to. */
export const FLEET = 'transport';

export interface RegulatorGateway extends StreamingGateway {
  /** Registers a vehicle through the admin; throws unless 201. */
  addVehicle(body: Record<string, unknown>): Promise<Record<string, any>>;
  /** Feeds positions (admin token, which may feed); throws unless every one was accepted. */
  positions(items: Array<Record<string, unknown>>): Promise<Record<string, any>>;
  /** Feeds alarm reports and returns the outcome ({raised: [id], ...}). */
  alarms(items: Array<Record<string, unknown>>): Promise<Record<string, any>>;
}

/** A player gateway (English pages unless told) with the fleet's department under root. */
export async function startRegulatorGateway(t: Test, config: Omit<DeepPartial<Config>, 'streams'> = {}, opts: BuildOptions = {}): Promise<RegulatorGateway> {
  const gw = await startPlayerGateway(t, {}, { ...config, player: { language: 'en', ...config.player } }, opts);
  const dept = await gw.api('POST', '/api/departments', { token: gw.adminToken, body: { id: FLEET, name: '交通运输局 Transport bureau', parentId: 'root', level: 'city' } });
  if (dept.status !== 201) throw new Error(`department: ${dept.body}`);
  const post = async (path: string, body: unknown, want = 200) => {
    const res = await gw.api('POST', path, { token: gw.adminToken, body });
    if (res.status !== want) throw new Error(`${path}: ${res.status} ${res.body}`);
    return res.json;
  };
  return Object.assign(gw, {
    addVehicle: (body: Record<string, unknown>) => post('/api/vehicles', body, 201),
    positions: async (items: Array<Record<string, unknown>>) => {
      const out = await post('/api/feed/positions', { positions: items });
      if (out.accepted !== items.length) throw new Error(`positions: ${JSON.stringify(out)}`);
      return out;
    },
    alarms: (items: Array<Record<string, unknown>>) => post('/api/feed/alarms', { alarms: items }),
  });
}

/** A vehicle of the fleet; `channels` are camera source ids, in channel order. */
export function fleetVehicle(id: string, plate: string, category: string, company: string, channels: string[] = [], extra: Record<string, unknown> = {}) {
  const names = ['front road', 'driver', 'cabin', 'cargo'];
  return {
    id,
    plate,
    category,
    company,
    departmentId: FLEET,
    terminalId: `T${id.replace(/\W/g, '')}`,
    sim: simFor(id),
    channels: channels.map((sourceId, i) => ({ channel: i + 1, name: names[i % names.length], sourceId })),
    ...extra,
  };
}

/** A position of `vehicleId`, reported now. */
export const positionOf = (vehicleId: string, lat: number, lon: number, speed = 42) => ({ vehicleId, lat, lon, speed, heading: 90, at: Date.now() });

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(buf: Buffer): number {
  let c = 0xffffffff;
  for (const byte of buf) c = CRC_TABLE[(c ^ byte) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** A one-colour PNG, written by hand: the test needs a real image and no image library. */
export function solidPng(width: number, height: number, [r, g, b]: [number, number, number]): Buffer {
  const chunk = (type: string, data: Buffer) => {
    const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
    const out = Buffer.alloc(body.length + 8);
    out.writeUInt32BE(data.length, 0);
    body.copy(out, 4);
    out.writeUInt32BE(crc32(body), body.length + 4);
    return out;
  };
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header.set([8, 2, 0, 0, 0], 8); // 8-bit RGB, no interlace
  const row = Buffer.alloc(1 + width * 3);
  for (let x = 0; x < width; x++) row.set([r, g, b], 1 + x * 3);
  const pixels = Buffer.concat(Array.from({ length: height }, () => row));
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', header), chunk('IDAT', deflateSync(pixels)), chunk('IEND', Buffer.alloc(0))]);
}

export interface TileServer {
  /** The URL template for player.map.tileUrl. */
  template: string;
  /** The tile paths asked for, in order. */
  requests: string[];
}

/** A map tile server on loopback: every /{z}/{x}/{y}.png is the same 256×256 tile. */
export async function startTileServer(t: Test): Promise<TileServer> {
  const tile = solidPng(256, 256, [40, 60, 90]);
  const requests: string[] = [];
  const server = createServer((req, res) => {
    if (!/^\/\d+\/\d+\/\d+\.png$/.test(req.url ?? '')) {
      res.writeHead(404).end();
      return;
    }
    requests.push(req.url!);
    res.writeHead(200, { 'content-type': 'image/png', 'content-length': tile.length, 'cache-control': 'no-store' }).end(tile);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const { port } = server.address() as AddressInfo;
  return { template: `http://127.0.0.1:${port}/{z}/{x}/{y}.png`, requests };
}

/** The text of every element matching `selector`, as the page shows it. */
export const texts = (page: Page, selector: string) => page.locator(selector).allInnerTexts();

/** The vehicle ids of the list's rows, top to bottom. */
export const listedVehicles = (page: Page) => page.evaluate<string[]>(`Array.from(document.querySelectorAll('tr[data-vehicle]')).map((r) => r.dataset.vehicle)`);

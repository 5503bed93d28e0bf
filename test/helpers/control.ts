import { Ajv } from 'ajv';
import type { Test } from 'tap';
import type { BuildOptions } from '../../gateway/src/app.js';
import type { Config } from '../../gateway/src/config/schema.js';
import { ControlClient, type ControlClientOptions } from '../../scripts/sim/control-client.js';
import { camera, smallTree, startGateway, type DeepPartial, type TestGateway } from './gateway.js';

export interface ControlGateway extends TestGateway {
  /** ws://127.0.0.1:<port>/api/control */
  wsUrl: string;
  /** A connected client, closed at teardown. */
  client(token: string | null, o?: ControlClientOptions): Promise<ControlClient>;
  /** Creates a wall through the admin and returns its id. */
  createWall(body: Record<string, unknown>): Promise<string>;
}

/**
 * A gateway listening on a loopback port, with the small department tree and cameras
 * a1, a2, a3 (county A, a1 with a sub-stream), b1 (county B).
 */
export async function startControlGateway(t: Test, overrides: DeepPartial<Config> = {}, opts: BuildOptions = {}): Promise<ControlGateway> {
  const gw = await startGateway(t, overrides, opts);
  await smallTree(gw);
  for (const [id, dep, extra] of [
    ['a1', 'countyA', { subUrl: 'rtsp://10.1.0.9:554/sub' }],
    ['a2', 'countyA', {}],
    ['a3', 'townA', {}],
    ['b1', 'countyB', {}],
  ] as const) {
    const res = await gw.api('POST', '/api/sources', { token: gw.adminToken, body: camera(id, dep, extra) });
    if (res.status !== 201) throw new Error(`camera ${id}: ${res.body}`);
  }
  const base = await gw.http.listen({ port: 0, host: '127.0.0.1' });
  const wsUrl = `${base.replace('http', 'ws')}${gw.config.control.path}`;
  const client = async (token: string | null, o?: ControlClientOptions) => {
    const c = await ControlClient.connect(wsUrl, token, o);
    t.teardown(() => c.close());
    return c;
  };
  const createWall = async (body: Record<string, unknown>) => {
    const res = await gw.api('POST', '/api/walls', { token: gw.adminToken, body });
    if (res.status !== 201) throw new Error(`wall: ${res.body}`);
    return res.json.wall.id as string;
  };
  return Object.assign(gw, { wsUrl, client, createWall });
}

export const SCREENS_2X2 = { rows: 2, cols: 2, width: 1920, height: 1080 };

/** One tile assignment of a burst, with the wall version its ack carried (null: never acknowledged). */
export interface SentAssignment {
  tile: string;
  camera: string;
  version: number | null;
}

/**
 * Nothing acknowledged is lost: each tile holds its last acknowledged assignment, or one sent after it
 * (a change written but cut off before its ack went out).
 */
export function checkAcknowledgedTiles(t: Test, wall: { tiles: Record<string, { v: number; content: { cameraId?: string } }> }, sent: SentAssignment[], tiles: string[]) {
  for (const tile of tiles) {
    const jobs = sent.filter((j) => j.tile === tile);
    let lastIndex = jobs.length - 1;
    while (jobs[lastIndex]!.version === null) lastIndex--;
    const last = jobs[lastIndex]!;
    const stored = wall.tiles[tile]!;
    if (stored.v === last.version) t.equal(stored.content.cameraId, last.camera, `${tile} shows ${last.camera}, acknowledged at version ${last.version}`);
    else {
      t.ok(stored.v > last.version!, `${tile} changed after its last acknowledged assignment (version ${stored.v} > ${last.version})`);
      t.ok(jobs.slice(lastIndex + 1).some((j) => j.camera === stored.content.cameraId), `${tile} shows a later assignment`);
    }
  }
}

/**
 * The gateway's published schema of each message it sends (/api/control/schema.json, serverMessages):
 * returns what is wrong with a message, or null when it fits the schema of its type. A type the
 * document does not describe is wrong too.
 */
export async function serverMessageCheck(gw: TestGateway): Promise<{ types: string[]; problem(m: { type: string }): string | null }> {
  const res = await gw.api('GET', '/api/control/schema.json');
  if (res.status !== 200) throw new Error(`control schema: ${res.status} ${res.body}`);
  const schemas = res.json.serverMessages as Record<string, object>;
  const ajv = new Ajv({ allErrors: true, strict: false });
  const validators = new Map(Object.entries(schemas).map(([type, schema]) => [type, ajv.compile(schema)]));
  return {
    types: [...validators.keys()],
    problem(m) {
      const { type } = m;
      const validate = validators.get(type);
      if (!validate) return `the server sent "${type}", which the schema does not describe`;
      return validate(m) ? null : `${type} does not fit its schema: ${ajv.errorsText(validate.errors)}\n${JSON.stringify(m).slice(0, 600)}`;
    },
  };
}

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import type { Test } from 'tap';
import { buildGateway, type BuildOptions, type Gateway } from '../../gateway/src/app.js';
import { defaultConfig } from '../../gateway/src/config/load.js';
import type { Config } from '../../gateway/src/config/schema.js';

export type DeepPartial<T> = { [K in keyof T]?: T[K] extends object ? (T[K] extends unknown[] ? T[K] : DeepPartial<T[K]>) : T[K] };

function merge<T>(base: T, over: DeepPartial<T> | undefined): T {
  if (!over) return base;
  const out: Record<string, unknown> = { ...(base as Record<string, unknown>) };
  for (const [k, v] of Object.entries(over)) {
    const b = out[k];
    out[k] = v && typeof v === 'object' && !Array.isArray(v) && b && typeof b === 'object' ? merge(b, v as never) : v;
  }
  return out as T;
}

export function tempDir(t: Test, prefix = 'wallgate-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export interface TestGateway extends Gateway {
  config: Config;
  /** Every log line written during the test, as text. */
  logs: string[];
  adminToken: string;
  /** Logs in and returns the bearer token. */
  login(username: string, password: string): Promise<string>;
  /** Creates a user with the admin token and returns a token for them. */
  userToken(username: string, roles: string[], scopes: string[]): Promise<string>;
  api(method: string, url: string, opts?: { token?: string | null; body?: unknown; headers?: Record<string, string>; payload?: string }): Promise<{
    status: number;
    json: any;
    body: string;
    headers: Record<string, unknown>;
  }>;
}

export const TEST_PASSWORD = 'correct horse battery';

/**
 * A block of RTP ports for one test gateway's GB receivers, below the kernel's ephemeral range
 * (32768+) so no outgoing connection holds one; gateways running beside each other draw different
 * blocks, and a port something else holds is skipped by the driver.
 */
export function rtpPortRange(size = 50): { portMin: number; portMax: number } {
  const blocks = Math.floor((32_000 - 20_000) / size);
  const portMin = 20_000 + Math.floor(Math.random() * blocks) * size;
  return { portMin, portMax: portMin + size - 1 };
}

/**
 * A gateway on a fresh temporary data dir, closed at teardown; HTTP through inject (no port). A node
 * joining a cluster whose store another node created has no first-start admin: `joining` gives it the
 * admin token the first node signed in with (valid on every node, since they share keys and store).
 */
export async function startGateway(t: Test, overrides?: DeepPartial<Config>, opts: BuildOptions = {}, joining?: { adminToken: string }): Promise<TestGateway> {
  const logs: string[] = [];
  const logStream = new Writable({
    write(chunk, _enc, done) {
      logs.push(String(chunk));
      done();
    },
  });
  // Tests run in parallel: the RTMP ingest, the SIP server and the JT/T 808 and 1078 listeners take whatever loopback port is free.
  const testDefaults: DeepPartial<Config> = {
    dataDir: tempDir(t),
    log: { level: 'info' },
    streams: { flv: { rtmpPort: 0, rtmpHost: '127.0.0.1' } },
    gb28181: { host: '127.0.0.1', port: 0, media: { host: '127.0.0.1', ...rtpPortRange() } },
    jt808: { host: '127.0.0.1', port: 0 },
    jt1078: { host: '127.0.0.1', port: 0 },
  };
  const config = merge(merge(defaultConfig(), testDefaults), overrides);
  const gw = await buildGateway(config, { logStream, checkResponses: true, ...opts });
  t.teardown(() => gw.close());

  const api: TestGateway['api'] = async (method, url, o = {}) => {
    const headers: Record<string, string> = { ...(o.headers ?? {}) };
    if (o.token) headers.authorization = `Bearer ${o.token}`;
    const res = await gw.http.inject({
      method: method as never,
      url,
      headers,
      ...(o.body !== undefined ? { payload: o.body as object } : o.payload !== undefined ? { payload: o.payload } : {}),
    });
    let json: unknown;
    try {
      json = JSON.parse(res.body);
    } catch {
      json = undefined;
    }
    return { status: res.statusCode, json, body: res.body, headers: res.headers };
  };
  const login = async (username: string, password: string) => {
    const res = await api('POST', '/api/auth/login', { body: { username, password } });
    if (res.status !== 200) throw new Error(`login ${username} failed: ${res.body}`);
    return res.json.token as string;
  };
  const adminToken = joining ? joining.adminToken : await login(gw.bootstrapAdmin!.username, gw.bootstrapAdmin!.password);
  const userToken = async (username: string, roles: string[], scopes: string[]) => {
    const res = await api('POST', '/api/users', { token: adminToken, body: { username, password: TEST_PASSWORD, roles, scopes } });
    if (res.status !== 201) throw new Error(`create user ${username}: ${res.body}`);
    return login(username, TEST_PASSWORD);
  };
  return Object.assign(gw, { config, logs, adminToken, login, userToken, api });
}

/** A small two-county tree under root: city → countyA (→ townA), countyB. */
export async function smallTree(gw: TestGateway): Promise<void> {
  for (const d of [
    { id: 'city', name: 'City', parentId: 'root', level: 'city' },
    { id: 'countyA', name: 'County A', parentId: 'city', level: 'county' },
    { id: 'townA', name: 'Town A', parentId: 'countyA', level: 'township' },
    { id: 'countyB', name: 'County B', parentId: 'city', level: 'county' },
  ]) {
    const res = await gw.api('POST', '/api/departments', { token: gw.adminToken, body: d });
    if (res.status !== 201) throw new Error(`department ${d.id}: ${res.body}`);
  }
}

export function camera(id: string, departmentId: string, extra: Record<string, unknown> = {}) {
  return { id, name: `Camera ${id}`, departmentId, url: `rtsp://10.1.0.${(id.length % 200) + 1}:554/stream1`, ...extra };
}

/**
 * The demo: a camera simulator and the gateway on its embedded defaults, with a synthetic city of
 * registered cameras, a few dozen live ones served by the simulator, 826 monitored vehicles whose
 * own JT/T 808 terminals (scripts/jt-sim.ts) connect to the gateway, drive their routes, raise
 * alarms and stream their channels over JT/T 1078 when asked, and a department's GB/T 28181
 * platform (scripts/gb-sim.ts: 300 channels, 30 of them live) registering to the gateway's SIP
 * server on a free port. (scripts/vehicle-sim.ts, the REST/WebSocket feed of a platform that
 * forwards its vehicles' data, still works against the same fleet, in place of the terminals.)
 *
 *   npm run demo            (installs, builds, then runs this)
 *
 * All run as children of this process; Ctrl-C stops the gateway (gracefully) and then the simulators.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const simPort = process.env.WALLGATE_DEMO_SIM_PORT ?? '8554';
const dataDir = process.env.WALLGATE_DATA_DIR ?? 'data';

/** The urban-management bureau's video platform (a type-200 id), in that bureau's department of the demo city. */
const GB_PLATFORM = { id: '32010000062000000001', name: '临江市城市管理局视频平台', departmentId: 'c3201-um', channels: 300, live: 30 };
/** Wall tiles that show GB channels once the platform's catalog is in (first start only, as the wall is seeded then). */
const GB_TILES = ['s1-3', 's1-4'];

// The simulator's port is the demo's setting, not the gateway's, which refuses WALLGATE_* names it does not know.
const { WALLGATE_DEMO_SIM_PORT: _simPort, ...inherited } = process.env;

function start(args: string[], env: Record<string, string>, onLine?: (line: string) => void, onErrLine?: (line: string) => void): ChildProcess {
  const child = spawn(process.execPath, args, { cwd: root, env: { ...inherited, ...env }, stdio: ['ignore', 'pipe', onErrLine ? 'pipe' : 'inherit'] });
  const lines = (write: (d: string) => void, each?: (line: string) => void) => {
    let buf = '';
    return (d: string) => {
      write(d);
      buf += d;
      const parts = buf.split('\n');
      buf = parts.pop() ?? '';
      for (const l of parts) each?.(l);
    };
  };
  child.stdout!.setEncoding('utf8').on('data', lines((d) => process.stdout.write(d), onLine));
  child.stderr?.setEncoding('utf8').on('data', lines((d) => process.stderr.write(d), onErrLine));
  return child;
}

/** A port free for both UDP and TCP on every address, as the SIP server binds both. */
async function freeSipPort(): Promise<number> {
  for (let attempt = 0; ; attempt++) {
    const tcp = createServer();
    await new Promise<void>((resolve, reject) => tcp.once('error', reject).listen(0, '0.0.0.0', () => resolve()));
    const port = (tcp.address() as AddressInfo).port;
    const udp = createSocket('udp4');
    const free = await new Promise<boolean>((resolve) => {
      udp.once('error', () => resolve(false));
      udp.bind(port, '0.0.0.0', () => resolve(true));
    });
    await new Promise<void>((r) => tcp.close(() => r()));
    if (free) {
      await new Promise<void>((r) => udp.close(() => r()));
      return port;
    }
    if (attempt > 20) throw new Error('no port free for both UDP and TCP');
  }
}

const gbPort = process.env.WALLGATE_GB28181_PORT ?? String(await freeSipPort());
/** The JT/T 808 port the terminals connect to (the gateway's default unless set). */
const jtPort = process.env.WALLGATE_JT808_PORT ?? '7611';

const sim = start(['--import', 'tsx', 'scripts/camera-sim.ts', '--port', simPort, '--control-port', '0', '--cameras', '0'], {}, (line) => {
  const m = /"rtsp":"(rtsp:\/\/[^"]+)"/.exec(line);
  if (m && !gateway) startGateway(m[1]!);
});
let gateway: ChildProcess | null = null;
let terminals: ChildProcess | null = null;
let gbSim: ChildProcess | null = null;
/** Printed by the gateway on its first start only (to stderr); the demo signs in with it to admit its GB platform. */
let adminPassword: string | null = null;

function startGateway(rtsp: string) {
  const env = { WALLGATE_DEMO_ENABLED: 'true', WALLGATE_DEMO_LIVE_CAMERA_BASE: rtsp, WALLGATE_GB28181_PORT: gbPort, WALLGATE_JT808_PORT: jtPort };
  gateway = start(
    ['dist/main.js'],
    env,
    (line) => {
      const m = /"address":"(https?:\/\/[^"]+)".*"msg":"wallgate listening"/.exec(line);
      if (m && !terminals) {
        const address = m[1]!.replace('0.0.0.0', '127.0.0.1');
        startTerminals();
        startGbPlatform(address).catch((err: unknown) => process.stderr.write(`demo: the GB/T 28181 platform did not start: ${(err as Error).message}\n`));
      }
    },
    (line) => {
      adminPassword ??= /created admin user "admin" with password (\S+)/.exec(line)?.[1] ?? null;
    },
  );
  gateway.on('exit', (code) => {
    sim.kill('SIGTERM');
    terminals?.kill('SIGTERM');
    gbSim?.kill('SIGTERM');
    process.exitCode = code ?? 1;
  });
}

/**
 * The department's GB platform: admitted once, on the first start, through the REST API as the
 * admin (its password kept in the data directory like the vehicle feed's), its catalog then put
 * two live channels on the demo wall; later starts find the device admitted and only run the simulator.
 */
async function startGbPlatform(address: string) {
  const file = join(dataDir, 'demo-gb.json');
  let token: string | null = null;
  let password: string;
  if (existsSync(file)) {
    password = (JSON.parse(readFileSync(file, 'utf8')) as { password: string }).password;
  } else {
    if (!adminPassword) throw new Error(`${file} is missing and this is not the gateway's first start: admit ${GB_PLATFORM.id} in the admin page and put its password in ${file} as {"password": "…"}`);
    token = await signIn(address, adminPassword);
    password = `Gb-${randomBytes(12).toString('base64url')}`;
    await api(address, token, 'POST', '/api/gb28181/devices', { id: GB_PLATFORM.id, name: GB_PLATFORM.name, departmentId: GB_PLATFORM.departmentId, password, streamMode: 'udp' });
    writeFileSync(file, JSON.stringify({ deviceId: GB_PLATFORM.id, password }) + '\n', { mode: 0o600 });
  }
  const args = ['--server', `127.0.0.1:${gbPort}`, '--platform', GB_PLATFORM.id, '--channels', String(GB_PLATFORM.channels), '--live', String(GB_PLATFORM.live)];
  gbSim = start(['--import', 'tsx', 'scripts/gb-sim.ts', ...args], { GB_SIM_PASSWORD: password }, (line) => {
    if (token && /"registered":1\b/.test(line)) void gbChannelsOnWall(address, token).catch((err: unknown) => process.stderr.write(`demo: GB channels not put on the wall: ${(err as Error).message}\n`));
  });
}

async function gbChannelsOnWall(address: string, token: string) {
  const deadline = Date.now() + 60_000;
  while (((await api(address, token, 'GET', `/api/gb28181/devices/${GB_PLATFORM.id}`)) as { channelCount: number }).channelCount < GB_PLATFORM.channels) {
    if (Date.now() > deadline) throw new Error('the catalog did not arrive within 60 s');
    await new Promise((r) => setTimeout(r, 1000));
  }
  let { version } = ((await api(address, token, 'GET', '/api/walls/demo-wall')) as { wall: { version: number } }).wall;
  for (const [i, tileId] of GB_TILES.entries()) {
    const cameraId = `${GB_PLATFORM.id.slice(0, 10)}1310${String(i + 1).padStart(6, '0')}`;
    ({ version } = (await api(address, token, 'PUT', `/api/walls/demo-wall/tiles/${tileId}`, { baseVersion: version, content: { kind: 'camera', cameraId } })) as { version: number });
  }
}

async function signIn(address: string, password: string): Promise<string> {
  return ((await api(address, null, 'POST', '/api/auth/login', { username: 'admin', password })) as { token: string }).token;
}

async function api(address: string, token: string | null, method: string, path: string, body?: unknown): Promise<unknown> {
  const res = await fetch(address + path, {
    method,
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body ? { 'content-type': 'application/json' } : {}) },
    ...(body ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${text.slice(0, 300)}`);
  return text ? JSON.parse(text) : null;
}

/**
 * The vehicles' terminals over JT/T 808 (the gateway knows them by the SIMs of the demo fleet). Their
 * auth codes are kept in the data directory, so on later starts they only authenticate.
 */
function startTerminals() {
  const args = ['--server', `127.0.0.1:${jtPort}`, '--vehicles', process.env.WALLGATE_DEMO_VEHICLES ?? '826', '--auth-codes', join(dataDir, 'demo-jt-auth.json')];
  terminals = start(['--import', 'tsx', 'scripts/jt-sim.ts', ...args], {});
}

sim.on('exit', (code) => {
  if (!gateway) {
    process.stderr.write(`demo: the camera simulator exited (${code}); is port ${simPort} taken? Set WALLGATE_DEMO_SIM_PORT.\n`);
    process.exit(1);
  }
});
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    gbSim?.kill('SIGTERM');
    if (gateway && gateway.exitCode === null) gateway.kill('SIGTERM');
    else sim.kill('SIGTERM');
  });
}

/**
 * The demo: a camera simulator and the gateway on its embedded defaults, with a synthetic city of
 * registered cameras, a few dozen live ones served by the simulator, and 826 monitored vehicles
 * driven by the vehicle simulator (their channels served by the camera simulator too).
 *
 *   npm run demo            (installs, builds, then runs this)
 *
 * All run as children of this process; Ctrl-C stops the gateway (gracefully) and then the simulators.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const simPort = process.env.WALLGATE_DEMO_SIM_PORT ?? '8554';

// The simulator's port is the demo's setting, not the gateway's, which refuses WALLGATE_* names it does not know.
const { WALLGATE_DEMO_SIM_PORT: _simPort, ...inherited } = process.env;

function start(args: string[], env: Record<string, string>, onLine?: (line: string) => void): ChildProcess {
  const child = spawn(process.execPath, args, { cwd: root, env: { ...inherited, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
  let buf = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => {
    process.stdout.write(d);
    buf += d;
    const lines = buf.split('\n');
    buf = lines.pop() ?? '';
    for (const l of lines) onLine?.(l);
  });
  return child;
}

const sim = start(['--import', 'tsx', 'scripts/camera-sim.ts', '--port', simPort, '--control-port', '0', '--cameras', '0'], {}, (line) => {
  const m = /"rtsp":"(rtsp:\/\/[^"]+)"/.exec(line);
  if (m && !gateway) startGateway(m[1]!);
});
let gateway: ChildProcess | null = null;
let vehicles: ChildProcess | null = null;

function startGateway(rtsp: string) {
  gateway = start(['dist/main.js'], { WALLGATE_DEMO_ENABLED: 'true', WALLGATE_DEMO_LIVE_CAMERA_BASE: rtsp }, (line) => {
    const m = /"address":"(https?:\/\/[^"]+)".*"msg":"wallgate listening"/.exec(line);
    if (m && !vehicles) startVehicles(m[1]!.replace('0.0.0.0', '127.0.0.1'));
  });
  gateway.on('exit', (code) => {
    sim.kill('SIGTERM');
    vehicles?.kill('SIGTERM');
    process.exitCode = code ?? 1;
  });
}

/** The vehicle platform, as the feed account the gateway created in demo mode. */
function startVehicles(address: string) {
  const dataDir = process.env.WALLGATE_DATA_DIR ?? 'data';
  vehicles = start(['--import', 'tsx', 'scripts/vehicle-sim.ts', '--gateway', address, '--credentials', `${dataDir}/demo-feed.json`, '--vehicles', process.env.WALLGATE_DEMO_VEHICLES ?? '826'], {});
}

sim.on('exit', (code) => {
  if (!gateway) {
    process.stderr.write(`demo: the camera simulator exited (${code}); is port ${simPort} taken? Set WALLGATE_DEMO_SIM_PORT.\n`);
    process.exit(1);
  }
});
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    if (gateway && gateway.exitCode === null) gateway.kill('SIGTERM');
    else sim.kill('SIGTERM');
  });
}

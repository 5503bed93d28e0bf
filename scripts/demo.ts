/**
 * The demo: a camera simulator and the gateway on its embedded defaults, with a synthetic city of
 * registered cameras and a few dozen live ones served by the simulator.
 *
 *   npm run demo            (installs, builds, then runs this)
 *
 * Both run as children of this process; Ctrl-C stops the gateway (gracefully) and then the simulator.
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

function startGateway(rtsp: string) {
  gateway = start(['dist/main.js'], { WALLGATE_DEMO_ENABLED: 'true', WALLGATE_DEMO_LIVE_CAMERA_BASE: rtsp });
  gateway.on('exit', (code) => {
    sim.kill('SIGTERM');
    process.exitCode = code ?? 1;
  });
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

import { spawn, type ChildProcess } from 'node:child_process';
import type { Test } from 'tap';

const root = new URL('../../', import.meta.url).pathname;

export interface GatewayProcess {
  child: ChildProcess;
  baseUrl: string;
  /** The one-time admin password, when this start created the admin. */
  adminPassword: string | null;
  stdout: string[];
  stderr: string[];
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Runs the real entry point (main.ts) as a child on a loopback port it picks; killed at teardown if still alive. */
export async function spawnGateway(t: Test, dataDir: string, env: Record<string, string> = {}): Promise<GatewayProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'gateway/src/main.ts'], {
    cwd: root,
    env: {
      ...process.env,
      WALLGATE_DATA_DIR: dataDir,
      WALLGATE_SERVER_HOST: '127.0.0.1',
      WALLGATE_SERVER_PORT: '0',
      WALLGATE_STREAMS_FLV_RTMP_HOST: '127.0.0.1',
      WALLGATE_STREAMS_FLV_RTMP_PORT: '0',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const stdout: string[] = [];
  const stderr: string[] = [];
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  );
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  child.stderr!.setEncoding('utf8').on('data', (d: string) => stderr.push(d));
  const baseUrl = await new Promise<string>((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new Error(`gateway did not start: ${stderr.join('')}`)), 30_000);
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      stdout.push(d);
      buf += d;
      const m = /"address":"(http:\/\/[^"]+)"/.exec(buf);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
    void exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`gateway exited: ${stderr.join('')}`));
    });
  });
  const pw = /with password (\S+)/.exec(stderr.join(''));
  return { child, baseUrl, adminPassword: pw ? pw[1]! : null, stdout, stderr, exited };
}

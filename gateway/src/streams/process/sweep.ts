import { readdir, readFile } from 'node:fs/promises';
import { INSTANCE_ENV } from './ffmpeg-process.js';

/** The pids of live processes carrying this instance's marker in their environment (readable only by the same user). */
export async function markedProcesses(instanceId: string): Promise<number[]> {
  const marker = Buffer.from(`${INSTANCE_ENV}=${instanceId}\0`);
  const pids: number[] = [];
  for (const entry of await readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    const environ = await readFile(`/proc/${entry}/environ`).catch(() => null);
    if (environ?.includes(marker)) pids.push(Number(entry));
  }
  return pids;
}

/**
 * Kills ffmpeg processes a previous gateway on the same data directory left behind when it died
 * hard (SIGKILL, OOM, power): they would keep pulling cameras nobody watches. Run before this
 * gateway spawns anything, so every marked process found is an orphan.
 */
export async function sweepOrphans(instanceId: string): Promise<number[]> {
  const killed: number[] = [];
  for (const pid of await markedProcesses(instanceId)) {
    try {
      process.kill(pid, 'SIGKILL');
      killed.push(pid);
    } catch {
      // exited meanwhile
    }
  }
  return killed;
}

/**
 * What every benchmark needs around its measurements: progress on stderr, temp dirs and child
 * processes that go whatever happens (success, error, Ctrl-C), and a guard against hanging forever.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const log = (msg: string) => process.stderr.write(`bench: ${msg}\n`);
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const children = new Set<ChildProcess>();
const tempDirs: string[] = [];

/** Kills every tracked child still running and removes the temp dirs; safe to call again. */
export function cleanup() {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  children.clear();
  for (const d of tempDirs.splice(0)) rmSync(d, { recursive: true, force: true });
}

/** Killed at exit if still running. */
export function track<T extends ChildProcess>(child: T): T {
  children.add(child);
  return child;
}

export function tempDir(prefix: string) {
  const d = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.push(d);
  return d;
}

/** Installs the exit cleanup and a guard that gives up after guardMs; returns the guard to clear. */
export function installHarness(guardMs: number): NodeJS.Timeout {
  process.on('exit', cleanup);
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => process.exit(130));
  return setTimeout(() => {
    log(`gave up after ${guardMs / 60_000} minutes`);
    process.exit(1);
  }, guardMs);
}

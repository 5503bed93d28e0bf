import { Readable } from 'node:stream';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import fc from 'fast-check';

/**
 * How long and how hard each property runs: at most `runs` inputs and at most the time budget,
 * whichever ends first, so CI spends a fixed time (the suite's whole run has a time limit: a few
 * seconds a property; a pure parser gets through tens of thousands of inputs in them). FUZZ_MS and
 * FUZZ_RUNS raise them for a longer hunt; FUZZ_SEED (with the path fast-check prints) replays a failure.
 */
export function fuzzParameters<T>(defaultRuns: number, defaultMs = 8_000): fc.Parameters<T> {
  const ms = Number(process.env.FUZZ_MS ?? defaultMs);
  const runs = Number(process.env.FUZZ_RUNS ?? defaultRuns);
  const seed = process.env.FUZZ_SEED;
  return {
    numRuns: runs,
    interruptAfterTimeLimit: ms,
    // A budget that ends the run is not a failure; a counterexample found before it is.
    markInterruptAsFailure: false,
    // Shrinking a failure against a live gateway can take long; its seed and path reproduce it anyway.
    endOnFailure: true,
    ...(seed !== undefined ? { seed: Number(seed), path: process.env.FUZZ_PATH } : {}),
  };
}

/**
 * Runs `step` one call at a time. When the time budget ends, fast-check abandons the run in flight
 * without waiting for it, so the next run (or the next property, or the final checks) would start
 * while its request is still being answered and see that answer as its own. Each call here waits for
 * the one before to finish, and `settled` waits for the last and throws the first failure of any.
 */
export function oneAtATime<A extends unknown[]>(step: (...args: A) => Promise<void>) {
  let last: Promise<void> = Promise.resolve();
  /** The first failure of any call, abandoned ones included: `settled` rethrows it. */
  let failure: unknown = null;
  const run = (...args: A): Promise<void> => {
    const next = last.then(() => step(...args));
    last = next.catch((err: unknown) => void (failure ??= err));
    return next;
  };
  const settled = async () => {
    await last;
    if (failure) throw failure;
  };
  return { run, settled };
}

/** Runs a property and returns how many inputs it tried (fast-check's report; a failure throws with its seed). */
export async function checkProperty<Ts>(property: fc.IAsyncPropertyWithHooks<Ts>, params: fc.Parameters<Ts>): Promise<number> {
  const details = await fc.check(property, params);
  if (details.failed) {
    const cause = details.errorInstance instanceof Error ? details.errorInstance.message : String(details.errorInstance);
    throw new Error(`${fc.defaultReportMessage(details) ?? 'property failed'}\nGot: ${cause}`);
  }
  return details.numRuns;
}

/** The columns of a camera import (README), in the export's order. */
export const SOURCE_COLUMNS = ['id', 'name', 'departmentId', 'level', 'address', 'url', 'subUrl', 'protocol', 'username', 'password', 'codec', 'lat', 'lon', 'tags', 'enabled'];

/** Statuses an import may answer with: a report, or bad input named by its code. */
export const IMPORT_ANSWERS = new Set([200, 400, 413, 415, 422]);

/** A body streamed in pieces, so a large one is never held whole by the test itself. */
export function streamed(head: string, filler: string, bytes: number): Readable {
  let sent = 0;
  const chunk = Buffer.from(filler.repeat(Math.ceil(65_536 / filler.length)));
  return new Readable({
    read() {
      if (sent === 0) this.push(head);
      if (sent >= bytes) return void this.push(null);
      const piece = chunk.subarray(0, Math.min(chunk.length, bytes - sent));
      sent += piece.length;
      this.push(piece);
    },
  });
}


/** A full collection now (the flag is set at run time, so tap needs no --expose-gc). */
function collectGarbage(): void {
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
}

/** The V8 heap after a full collection, at once: cheap enough to take inside a property. */
export function heapAfterGc(): number {
  collectGarbage();
  return process.memoryUsage().heapUsed;
}

/**
 * The process's memory after a full collection. Buffers' memory is freed by a background task after
 * the collection that finds them dead: it is given time, then collected again.
 */
export async function memoryAfterGc(): Promise<NodeJS.MemoryUsage> {
  collectGarbage();
  await new Promise((r) => setTimeout(r, 200));
  collectGarbage();
  return process.memoryUsage();
}

/** The V8 heap and the memory behind Buffers, after a full collection: what a parser holding input would grow. */
export async function heapAndBuffersAfterGc(): Promise<number> {
  const m = await memoryAfterGc();
  return m.heapUsed + m.arrayBuffers;
}

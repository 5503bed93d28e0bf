/**
 * The order in which the gateway lets go of things, from the design: nothing new comes in, then the
 * long-lived readers go, then the sessions and their processes, then the requests already in flight
 * finish (they may still write), then queued writes are drained, and the store closes last.
 */
export const PHASES = ['accepting', 'readers', 'sessions', 'requests', 'writes', 'store'] as const;
export type Phase = (typeof PHASES)[number];

type StepLog = { error(o: object, m: string): void };

interface Step {
  name: string;
  close: () => unknown;
}

/** Thrown into a start that a shutdown overtook: whatever it opened is being closed. */
export class StartAborted extends Error {
  constructor(where: string) {
    super(`shutdown began while the gateway was starting (at ${where})`);
    this.name = 'StartAborted';
  }
}

/**
 * The one owner of the gateway's start and shutdown. Every resource registers its close the moment
 * it exists, so a start that fails half-way and a SIGTERM run the same code: each close in its
 * phase, every one attempted whatever the others did, the errors gathered and thrown together at
 * the end. Within a phase, what was opened last closes first.
 */
export class Lifecycle {
  private readonly steps = new Map<Phase, Step[]>(PHASES.map((p) => [p, []]));
  private closing: Promise<void> | null = null;
  /** The phase the shutdown has reached; a resource registered for an earlier one is closed at once. */
  private reached = -1;
  private readonly lateCloses: Promise<unknown>[] = [];
  private readonly errors: Error[] = [];

  private log: StepLog = { error: () => undefined };

  /** Where a failed step is reported; the gateway's logger exists only part-way through the start. */
  setLog(log: StepLog): void {
    this.log = log;
  }

  /** True once shutdown has begun. */
  get stopping(): boolean {
    return this.closing !== null;
  }

  /**
   * Registers how to close a resource that was just opened. A start that a shutdown has overtaken
   * gets its resource closed (now, if the shutdown is past its phase) and a StartAborted thrown.
   */
  own(phase: Phase, name: string, close: () => unknown): void {
    const step = { name, close };
    if (!this.closing) {
      this.steps.get(phase)!.push(step);
      return;
    }
    if (PHASES.indexOf(phase) > this.reached) this.steps.get(phase)!.push(step);
    else this.lateCloses.push(this.run(step));
    throw new StartAborted(name);
  }

  /** Stops a start at a step boundary once shutdown has begun. */
  checkpoint(where: string): void {
    if (this.closing) throw new StartAborted(where);
  }

  /** Idempotent: every caller gets the same shutdown. Rejects with an AggregateError naming each step that failed. */
  close(): Promise<void> {
    return (this.closing ??= this.closeAll());
  }

  private async closeAll(): Promise<void> {
    for (const [i, phase] of PHASES.entries()) {
      this.reached = i;
      const steps = this.steps.get(phase)!;
      // Read as it goes: a start racing the shutdown may still register into a phase not yet reached.
      while (steps.length) await this.run(steps.pop()!);
    }
    await Promise.all(this.lateCloses);
    if (this.errors.length) {
      throw new AggregateError(this.errors, `shutdown: ${this.errors.map((e) => e.message).join('; ')}`);
    }
  }

  private async run(step: Step): Promise<void> {
    try {
      await step.close();
    } catch (err) {
      const error = new Error(`${step.name}: ${(err as Error)?.message ?? String(err)}`, { cause: err });
      this.errors.push(error);
      this.log.error({ step: step.name, err: (err as Error)?.message ?? String(err) }, 'shutdown step failed');
    }
  }
}

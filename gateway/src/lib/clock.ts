/** A pending timer, opaque: only the clock that made it can clear it. */
export type TimerHandle = { readonly __timer: unique symbol } | object;

/**
 * Time as a state machine sees it. Injected so its tests can step through start timeouts, stalls
 * and backoff in microseconds instead of waiting for them.
 */
export interface Clock {
  now(): number;
  /** Timers never keep the process alive: whoever owns one clears it on close. */
  setTimeout(fn: () => void, ms: number): TimerHandle;
  clearTimeout(timer: TimerHandle): void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms).unref(),
  clearTimeout: (timer) => clearTimeout(timer as NodeJS.Timeout),
};

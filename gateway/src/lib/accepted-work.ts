import { GatewayError } from '../errors.js';

/**
 * The commands a service accepted and has not finished, and the writes nobody awaits: what its
 * close() waits for before the store may close, so nothing acknowledged is lost on SIGTERM.
 */
export class AcceptedWork {
  private closed = false;
  private readonly inFlight = new Set<Promise<unknown>>();

  get isClosed(): boolean {
    return this.closed;
  }

  /** Runs one command unless the service is closing. */
  accept<T>(work: () => Promise<T>): Promise<T> {
    if (this.closed) return Promise.reject(new GatewayError('GW_ERR_UNAVAILABLE', 'the gateway is shutting down'));
    return this.track(work());
  }

  /** A write nobody awaits (a pop-up's outcome, an automatic close): drain() still waits for it. */
  track<T>(p: Promise<T>): Promise<T> {
    this.inFlight.add(p);
    const forget = () => void this.inFlight.delete(p);
    p.then(forget, forget);
    return p;
  }

  /** Refuses new commands, then resolves once everything accepted or tracked has settled. */
  async drain(): Promise<void> {
    this.closed = true;
    // A settling command may track more work (an alarm's pop-up): wait until none is left.
    while (this.inFlight.size) await Promise.allSettled([...this.inFlight]);
  }
}

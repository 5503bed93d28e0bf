import { GatewayError, reasoned } from '../errors.js';

/**
 * How many imports (sources and vehicles alike) run at once. Each holds its parsed rows until its one
 * transaction, so the bound on them is a bound on memory; one past it is refused at once rather than
 * queued, since a queued request would still be streaming its body at the gateway.
 */
export class ImportSlots {
  private inProgress = 0;

  constructor(private readonly max: number) {}

  /** Imports under way now (the metrics show it, so an admin sees why one more is refused). */
  get running(): number {
    return this.inProgress;
  }

  async run<T>(work: () => Promise<T>): Promise<T> {
    if (this.inProgress >= this.max) {
      throw reasoned('GW_ERR_IMPORT_BUSY', 'imports', { limit: this.max }, `${this.max} import${this.max === 1 ? ' is' : 's are'} already running (registry.importMaxConcurrent); send this one when one has finished`);
    }
    this.inProgress++;
    try {
      return await work();
    } finally {
      this.inProgress--;
    }
  }
}

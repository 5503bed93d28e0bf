/**
 * Cellular data a vehicle's video may use per day (jt1078.dailyBudgetBytes): every media byte its
 * terminal sends is counted, the channels it watches or not, since the operator pays for them all.
 * Past the budget its channels fall back to the sub-stream and close early once unwatched
 * (channel-link.ts, play-driver.ts). The count is kept in memory and starts again each day on the
 * gateway's clock; a restart forgets it, which errs on the side of showing video.
 */
export class JtBudget {
  private day = '';
  private readonly used = new Map<string, number>();
  private readonly listeners = new Set<(vehicleId: string) => void>();

  constructor(
    private readonly dailyBytes: number,
    private readonly now: () => number = Date.now,
  ) {}

  get enabled(): boolean {
    return this.dailyBytes > 0;
  }

  /** Counts bytes the vehicle's terminal sent; tells the listeners the moment it goes past the budget. */
  count(vehicleId: string, bytes: number): void {
    if (!this.enabled) return;
    this.rollOver();
    const before = this.used.get(vehicleId) ?? 0;
    const after = before + bytes;
    this.used.set(vehicleId, after);
    if (before <= this.dailyBytes && after > this.dailyBytes) for (const cb of this.listeners) cb(vehicleId);
  }

  /** Bytes counted today. */
  usedToday(vehicleId: string): number {
    this.rollOver();
    return this.used.get(vehicleId) ?? 0;
  }

  over(vehicleId: string): boolean {
    return this.enabled && this.usedToday(vehicleId) > this.dailyBytes;
  }

  /** Called with the vehicle that just went past its budget; returns the unsubscribe. */
  onOver(cb: (vehicleId: string) => void): () => void {
    this.listeners.add(cb);
    return () => this.listeners.delete(cb);
  }

  /** A new day starts every vehicle afresh (and bounds the map by the vehicles heard from in a day). */
  private rollOver() {
    const day = new Date(this.now()).toDateString();
    if (day === this.day) return;
    this.day = day;
    this.used.clear();
  }
}

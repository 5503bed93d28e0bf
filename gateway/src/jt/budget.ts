/**
 * Cellular data a vehicle's video may use per day (jt1078.dailyBudgetBytes): every media byte the
 * media server takes from its terminal is counted (media/server.ts: packets of a channel asked for,
 * from its pinned source; anything else may be anyone's, so it is dropped and not counted).
 * Past the budget its channels fall back to the sub-stream and close early once unwatched
 * (channel-link.ts, play-driver.ts). The count is kept in memory and starts again each day on the
 * gateway's clock; a restart forgets it, which errs on the side of showing video.
 */
export class JtBudget {
  /** Today on the gateway's clock, [start, end) in ms: worked out once a day, not per media packet. */
  private dayStart = 0;
  private dayEnd = 0;
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
    const now = this.now();
    if (now >= this.dayStart && now < this.dayEnd) return;
    const d = new Date(now);
    this.dayStart = new Date(d.getFullYear(), d.getMonth(), d.getDate()).getTime();
    this.dayEnd = new Date(d.getFullYear(), d.getMonth(), d.getDate() + 1).getTime();
    this.used.clear();
  }
}

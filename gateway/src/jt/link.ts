/**
 * What JT/T 1078 live view (the media server and the play driver) needs of the JT/T 808 service,
 * kept apart so the stream engine's driver context can name it without importing the service and
 * everything behind it (as gb28181/play-link.ts does for GB/T 28181).
 */

/** A vehicle's terminal as the JT/T 808 service knows it now. */
export interface JtTerminalState {
  vehicleId: string;
  /** The phone/SIM number as the terminal sends it, leading zeros stripped (the 1078 packets carry it too). */
  sim: string;
  /** Header edition of its JT/T 808 frames; a 2019 terminal's 1078 packets carry a BCD[10] SIM. */
  edition: '2013' | '2019';
  /** Connected and authenticated now. */
  online: boolean;
  /** When it was last connected and authenticated (ms since the epoch); null if never since the gateway started. */
  lastSeenAt: number | null;
  /** When its link was lost (ms since the epoch); null while online or never seen. */
  offlineSince: number | null;
  /** The local address its JT/T 808 connection reached: what 0x9101 tells it to send media to, unless jt1078.publicAddress is set. */
  localAddress: string | null;
}

/** A platform command the terminal did not take: no answer in time, a result other than 0, or no link. */
export class JtCommandError extends Error {
  constructor(
    readonly kind: 'offline' | 'timeout' | 'result',
    message: string,
    /** The terminal's 0x0001 result (1 failure, 2 message error, 3 not supported) for kind 'result'. */
    readonly result: number | null = null,
  ) {
    super(message);
    this.name = 'JtCommandError';
  }
}

export interface JtLink {
  /** The terminal of this vehicle, or null for a vehicle without a terminal the service knows. */
  terminal(vehicleId: string): JtTerminalState | null;
  /** The vehicle a SIM belongs to (leading zeros stripped before comparing), or null: media from it is refused. */
  vehicleBySim(sim: string): string | null;
  /**
   * Sends a platform command over the terminal's JT/T 808 link, in its edition, with the next
   * serial, and resolves once its general response (0x0001) says 0. Rejects with JtCommandError.
   */
  command(vehicleId: string, msgId: number, body: Buffer): Promise<void>;
  /**
   * Calls back when the vehicle's terminal link comes up (true) or goes down (false); returns the
   * unsubscribe. `replaced` true (with online true, no false before it): a new connection of the
   * terminal replaced its link, which stayed up. Whatever the old connection was asked to keep doing
   * (an open 0x9101 live view) the terminal no longer does: ask again. Commands still awaiting their
   * answer on the old connection are rejected 'offline' just before, while terminal() already says online.
   */
  onLinkChange(vehicleId: string, cb: (online: boolean, replaced?: boolean) => void): () => void;
  readonly log: { info(o: object, m: string): void; warn(o: object, m: string): void };
}

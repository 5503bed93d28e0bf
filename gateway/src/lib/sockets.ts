import type { Duplex } from 'node:stream';

function destroyOnError(this: Duplex) {
  this.destroy();
}

/**
 * Node takes its own error listener off a socket before emitting `upgrade`: a client resetting the
 * connection then (or a refusal written to a reset socket) raises an ECONNRESET nobody hears, which
 * ends the process. Every upgrade handler calls this first; calling it again adds nothing.
 */
export function guardSocket(socket: Duplex): void {
  if (!socket.listeners('error').includes(destroyOnError)) socket.on('error', destroyOnError);
}

/**
 * Closed, or (an upgrading socket only) half-closed by the client. Node stops watching an upgrading
 * socket's end, so there the client's FIN is the only sign it left; an ordinary HTTP client may
 * half-close after sending its request (HTTP allows it) and still wait for the answer.
 */
const isGone = (socket: Duplex, upgrade: boolean) => socket.destroyed || (upgrade && socket.readableEnded);

/**
 * Waits for `work` while the client stays connected: null as soon as its socket closes (or, for an
 * upgrading socket, the client ends its side; work's later outcome, a rejection included, is then
 * dropped), `{ value }` once work resolves with the client still there. Lets a request waiting for a
 * starting camera give its reader back the moment its client goes, instead of when the start ends.
 * The caller closes a gone socket.
 */
export function whileConnected<T>(socket: Duplex, work: Promise<T>, opts: { upgrade?: boolean } = {}): Promise<{ value: T } | null> {
  const upgrade = opts.upgrade ?? false;
  return new Promise((resolve, reject) => {
    const gone = () => resolve(null);
    const stopWatching = () => {
      socket.off('close', gone);
      socket.off('end', gone);
    };
    work.then(
      (value) => {
        stopWatching();
        resolve(isGone(socket, upgrade) ? null : { value });
      },
      (err: unknown) => {
        stopWatching();
        reject(err);
      },
    );
    if (isGone(socket, upgrade)) return gone();
    socket.once('close', gone);
    if (upgrade) socket.once('end', gone);
  });
}

/**
 * The sockets a server keeps past an ordinary response (upgrades, hijacked streams), so its shutdown
 * reaches them. Node hands an upgraded socket over and stops tracking it, so
 * `closeAllConnections()` never ends it, yet `server.close()` waits for it; and a client that does
 * not read never answers a polite close (ws would wait its 30 s closeTimeout).
 */
export class HeldSockets {
  private readonly sockets = new Set<Duplex>();

  add(socket: Duplex): void {
    if (socket.destroyed || this.sockets.has(socket)) return;
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
  }

  get size(): number {
    return this.sockets.size;
  }

  /** Gives the sockets up to graceMs to close after the caller's polite close, then destroys the rest. */
  async drain(graceMs: number): Promise<void> {
    if (this.sockets.size > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, graceMs);
        const pending = [...this.sockets];
        let open = pending.length;
        for (const s of pending)
          s.once('close', () => {
            if (--open === 0) (clearTimeout(timer), resolve());
          });
      });
    }
    for (const s of [...this.sockets]) s.destroy();
  }
}

/** "::ffff:10.0.0.1" (an IPv4 peer of a dual-stack socket) → "10.0.0.1", so one peer has one key and reads as others saw it. */
export function plainAddress(address: string | undefined): string {
  return (address ?? '').replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/, '');
}

/**
 * The open connections of a listener, in all and per peer address, against two caps: a listener
 * whose connections hold buffers until they prove themselves (a JT/T 808 terminal authenticating, a
 * 1078 media link sending its first packet) is not filled by one host or by many.
 */
export class ConnectionCaps {
  private readonly perAddress = new Map<string, number>();
  private total = 0;

  constructor(private readonly caps: { max: number; maxPerAddress: number }) {}

  get size(): number {
    return this.total;
  }

  /** Counts one more connection from `address`, or returns false (and counts nothing) past a cap. */
  admit(address: string): boolean {
    const from = this.perAddress.get(address) ?? 0;
    if (this.total >= this.caps.max || from >= this.caps.maxPerAddress) return false;
    this.perAddress.set(address, from + 1);
    this.total++;
    return true;
  }

  /** One connection `admit` counted has closed. */
  release(address: string): void {
    const left = (this.perAddress.get(address) ?? 1) - 1;
    if (left > 0) this.perAddress.set(address, left);
    else this.perAddress.delete(address);
    this.total--;
  }
}

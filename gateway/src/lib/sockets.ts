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

/** Closed, or (an upgrading socket, which Node no longer ends for us) half-closed by the client. */
const isGone = (socket: Duplex) => socket.destroyed || socket.readableEnded;

/**
 * Waits for `work` while the client stays connected: null as soon as its socket closes or the client
 * ends its side (work's later outcome, a rejection included, is then dropped), `{ value }` once work
 * resolves with the client still there. Lets a request waiting for a starting camera give its reader
 * back the moment its client goes, instead of when the start ends. The caller closes a gone socket.
 */
export function whileConnected<T>(socket: Duplex, work: Promise<T>): Promise<{ value: T } | null> {
  return new Promise((resolve, reject) => {
    const gone = () => resolve(null);
    const stopWatching = () => {
      socket.off('close', gone);
      socket.off('end', gone);
    };
    work.then(
      (value) => {
        stopWatching();
        resolve(isGone(socket) ? null : { value });
      },
      (err: unknown) => {
        stopWatching();
        reject(err);
      },
    );
    if (isGone(socket)) return gone();
    socket.once('close', gone);
    socket.once('end', gone);
  });
}

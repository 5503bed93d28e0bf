import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocket, WebSocketServer, type RawData } from 'ws';
import { guardSocket, HeldSockets } from '../lib/sockets.js';

/** What a viewer may send up a proxied WS-FLV socket: FLV viewers send nothing, so a little is plenty. */
const CLIENT_MAX_PAYLOAD = 64 * 1024;
/** The owner sends FLV tags; one tag of a 4K keyframe fits easily. */
const UPSTREAM_MAX_PAYLOAD = 16 * 1024 * 1024;
const HANDSHAKE_TIMEOUT_MS = 10_000;
const SHUTDOWN_GRACE_MS = 1_000;

/** Close codes a peer may send (1005, 1006 and 1015 only describe what happened locally). */
const sendable = (code: number) => (code >= 1000 && code <= 1014 && code !== 1004 && code !== 1005 && code !== 1006) || (code >= 3000 && code <= 4999);

/**
 * WS-FLV through a node that does not pull the camera: the viewer's WebSocket is answered only once
 * the owner has accepted the same URL, then each side's messages are passed to the other and either
 * side's close closes both. A viewer that does not read is cut, as the owner would cut it.
 */
export class WsProxy {
  private readonly wss = new WebSocketServer({ noServer: true, maxPayload: CLIENT_MAX_PAYLOAD, perMessageDeflate: false });
  private readonly held = new HeldSockets();
  private readonly pairs = new Set<{ client: WebSocket | null; upstream: WebSocket }>();
  private closing = false;
  /** Viewers cut for not reading, for the metrics. */
  slowViewersCut = 0;

  constructor(private readonly maxBufferedBytes: number) {}

  get size(): number {
    return this.pairs.size;
  }

  /**
   * With `unreachable`, an owner that cannot be connected to at all (its process is gone, its port
   * refuses) is reported there instead of refused, with the viewer's socket left untouched, so the
   * caller can route the viewer again.
   */
  proxy(req: IncomingMessage, socket: Duplex, head: Buffer, target: string, unreachable?: () => void): void {
    guardSocket(socket);
    if (this.closing) return void socket.destroy();
    this.held.add(socket);
    const upstream = new WebSocket(target, { perMessageDeflate: false, handshakeTimeout: HANDSHAKE_TIMEOUT_MS, maxPayload: UPSTREAM_MAX_PAYLOAD, followRedirects: false });
    const pair: { client: WebSocket | null; upstream: WebSocket } = { client: null, upstream };
    this.pairs.add(pair);
    const refuse = (status: number, message: string) => {
      this.pairs.delete(pair);
      if (!socket.destroyed) socket.end(`HTTP/1.1 ${status} ${message}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`);
    };
    upstream.on('error', (err: NodeJS.ErrnoException) => {
      upstream.terminate();
      if (pair.client) return;
      if (unreachable && err.code === 'ECONNREFUSED' && this.pairs.delete(pair)) {
        socket.off('close', leftEarly);
        return unreachable();
      }
      refuse(502, 'GW_ERR_UNAVAILABLE');
    });
    // The owner's refusal (401, 503 and its code) is the viewer's refusal.
    upstream.on('unexpected-response', (_req, res) => {
      res.resume();
      refuse(res.statusCode ?? 502, /^GW_ERR_[A-Z_]+$/.test(res.statusMessage ?? '') ? res.statusMessage! : 'GW_ERR_UNAVAILABLE');
      upstream.terminate();
    });
    // The viewer left while the owner was being asked.
    const leftEarly = () => {
      if (!pair.client) {
        this.pairs.delete(pair);
        upstream.terminate();
      }
    };
    socket.once('close', leftEarly);
    upstream.on('open', () => {
      if (socket.destroyed || socket.readableEnded) {
        socket.destroy();
        return;
      }
      this.wss.handleUpgrade(req, socket, head, (client) => {
        socket.off('close', leftEarly);
        pair.client = client;
        this.pipe(pair, client, upstream);
      });
    });
  }

  private pipe(pair: { client: WebSocket | null; upstream: WebSocket }, client: WebSocket, upstream: WebSocket) {
    client.on('error', () => client.terminate());
    upstream.on('message', (data: RawData, isBinary) => {
      if (client.readyState !== WebSocket.OPEN) return;
      if (client.bufferedAmount > this.maxBufferedBytes) {
        this.slowViewersCut++;
        client.terminate();
        upstream.terminate();
        return;
      }
      client.send(data, { binary: isBinary });
    });
    client.on('message', (data: RawData, isBinary) => {
      if (upstream.readyState === WebSocket.OPEN) upstream.send(data, { binary: isBinary });
    });
    const closeOther = (other: WebSocket) => (code: number, reason: Buffer) => {
      this.pairs.delete(pair);
      if (other.readyState === WebSocket.OPEN) other.close(sendable(code) ? code : 1000, reason);
      else if (other.readyState === WebSocket.CONNECTING) other.terminate();
    };
    client.once('close', closeOther(upstream));
    upstream.once('close', closeOther(client));
    if (upstream.readyState !== WebSocket.OPEN) closeOther(client)(1011, Buffer.from('GW_ERR_UNAVAILABLE'));
  }

  /** Closes every proxied viewer politely, then destroys what is left a second later. */
  async close(): Promise<void> {
    this.closing = true;
    for (const { client, upstream } of this.pairs) {
      if (client?.readyState === WebSocket.OPEN) client.close(1001, 'gateway shutting down');
      upstream.terminate();
    }
    await this.held.drain(SHUTDOWN_GRACE_MS);
    this.pairs.clear();
    this.wss.close();
  }
}

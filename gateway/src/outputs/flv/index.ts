import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { WebSocket, WebSocketServer } from 'ws';
import { GatewayError } from '../../errors.js';
import { guardSocket, HeldSockets, whileConnected } from '../../lib/sockets.js';
import type { FlvTag, SessionState } from '../../streams/types.js';
import { grantFor, STREAM_PARAMS, type LiveStream, type ReaderSource, type StreamLease, type StreamTokenVerifier } from '../stream-access.js';
import { broadcastTag, createBroadcast, flvMessage, type NmsBroadcast, type NmsSubscriber } from './nms.js';

export interface FlvOptions {
  engine: ReaderSource;
  tokens: StreamTokenVerifier;
  /** A viewer this far behind is cut off rather than buffered without end. */
  maxBufferedBytes: number;
  /** Bytes queued for all viewers together; past it the viewers furthest behind are cut off first. */
  maxBufferedBytesTotal: number;
}

/** Where a viewer's bytes go: a WebSocket or a chunked HTTP response. */
interface Sink {
  buffered(): number;
  write(buf: Buffer): void;
  /** `abort`: drop what is queued rather than wait for a viewer that is not reading. */
  end(reason: string, abort: boolean): void;
}

interface FlvViewer extends NmsSubscriber {
  buffered(): number;
  end(reason: string, abort: boolean): void;
}

/** How often the bytes queued for all viewers together are added up (each viewer's own is checked on every write). */
const TOTAL_CHECK_MS = 250;

const isDecoderConfig = (tag: FlvTag) => tag.header || tag.type === 18;

/**
 * A session's FLV fan-out, created when its first FLV viewer arrives and dropped with its last, so a
 * session watched only over HLS pays nothing for FLV. node-media-server's BroadcastServer holds the
 * decoder configuration and fans out live tags; a joining viewer's GOP comes from the session's one
 * cached copy. One listener on the session's state ends every viewer when the session closes.
 */
class SessionFanout {
  readonly broadcast: NmsBroadcast;
  readonly viewers = new Set<FlvViewer>();
  /** Decoder configuration goes through node-media-server, which keeps it for joining viewers; media tags are built once and sent to each viewer. */
  private readonly onTag = (tag: FlvTag) => {
    if (isDecoderConfig(tag)) return broadcastTag(this.broadcast, tag.type, tag.timestamp, tag.data);
    if (this.viewers.size === 0) return;
    const message = flvMessage(tag.type, tag.timestamp, tag.data);
    for (const viewer of this.viewers) viewer.sendBuffer(message);
  };
  private readonly onState = (state: SessionState) => {
    if (state === 'closed') for (const v of [...this.viewers]) v.end('stream closed', false);
  };

  constructor(readonly session: LiveStream) {
    this.broadcast = createBroadcast(`/pull/${session.id}`, session.headers.has('8'));
    for (const tag of session.joinTags()) if (isDecoderConfig(tag)) this.onTag(tag);
    session.on('tag', this.onTag);
    session.on('state', this.onState);
  }

  /** The FLV header and decoder configuration from node-media-server, then the cached GOP, then live tags. */
  join(viewer: FlvViewer) {
    this.viewers.add(viewer);
    this.broadcast.postPlay(viewer);
    for (const tag of this.session.joinTags()) if (!isDecoderConfig(tag)) viewer.sendBuffer(flvMessage(tag.type, tag.timestamp, tag.data));
  }

  detach() {
    this.session.off('tag', this.onTag);
    this.session.off('state', this.onState);
  }
}

/** How long a viewer has to take its close at shutdown before its socket is destroyed. */
const SHUTDOWN_GRACE_MS = 1_000;

const PATH = /^\/streams\/([^/]+)\/([^/]+)\/([^/]+)\/live\.flv$/;

export class FlvOutput {
  private readonly fanouts = new Map<LiveStream, SessionFanout>();
  private readonly viewers = new Set<FlvViewer>();
  private totalCheck: NodeJS.Timeout | null = null;
  private readonly wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: 1024 });
  /** Every WS-FLV socket from its upgrade on (waiting for a camera or playing) and every playing HTTP-FLV socket. */
  private readonly held = new HeldSockets();
  private nextId = 0;

  /** Viewers cut off for being too far behind, on their own or together. */
  slowViewersCut = 0;

  constructor(private readonly opts: FlvOptions) {}

  /** Past the total, the viewers with the most queued go first, until the rest fit. */
  private checkTotal() {
    let total = 0;
    for (const v of this.viewers) total += v.buffered();
    if (total <= this.opts.maxBufferedBytesTotal) return;
    for (const v of [...this.viewers].sort((a, b) => b.buffered() - a.buffered())) {
      if (total <= this.opts.maxBufferedBytesTotal) break;
      total -= v.buffered();
      this.slowViewersCut++;
      v.end('viewer too slow (streams.flv.maxBufferedBytesTotal)', true);
    }
  }

  /** A reader on the camera the token grants, which may still be starting. */
  private async lease(params: { camera: string; profile: string; token: string }): Promise<StreamLease> {
    const grant = grantFor(this.opts.tokens, params);
    if (grant.expiresAt < Date.now()) throw new GatewayError('GW_ERR_UNAUTHENTICATED', 'the stream token expired; ask for a new stream URL');
    return this.opts.engine.addReader({ cameraId: grant.cameraId, profile: grant.profile, kind: 'flv', userId: grant.userId });
  }

  /**
   * A reader on the camera once its video is live, or null when the client left while it started
   * (the reader is then let go at once, not when the start ends, so the session can linger and close).
   */
  private async liveLease(params: { camera: string; profile: string; token: string }, client: Duplex): Promise<StreamLease | null> {
    const lease = await this.lease(params);
    let live: { value: void } | null;
    try {
      live = await whileConnected(client, lease.live());
    } catch (e) {
      lease.release();
      throw e;
    }
    if (live) return lease;
    lease.release();
    return null;
  }

  /** Plays a live lease into a sink until either side ends. */
  private play(lease: StreamLease, sink: Sink, onEnd: (cb: () => void) => void) {
    const session = lease.session;
    let fanout = this.fanouts.get(session);
    if (!fanout) {
      fanout = new SessionFanout(session);
      this.fanouts.set(session, fanout);
    }
    const f = fanout;
    let ended = false;
    const viewer: FlvViewer = {
      id: `flv-${++this.nextId}`,
      ip: '',
      protocol: 'flv',
      streamPath: `/pull/${session.id}`,
      streamQuery: {},
      endTime: 0,
      sendBuffer: (buf) => {
        if (ended) return;
        if (sink.buffered() > this.opts.maxBufferedBytes) {
          this.slowViewersCut++;
          stop('viewer too slow (streams.flv.maxBufferedBytes)', true);
          return;
        }
        sink.write(buf);
        session.countSent(buf.length);
      },
      close: () => stop('closed', false),
      buffered: () => (ended ? 0 : sink.buffered()),
      end: (reason, abort) => stop(reason, abort),
    };
    const stop = (reason: string, abort: boolean) => {
      if (ended) return;
      ended = true;
      f.broadcast.donePlay(viewer);
      f.viewers.delete(viewer);
      this.viewers.delete(viewer);
      if (f.viewers.size === 0) {
        f.detach();
        if (this.fanouts.get(session) === f) this.fanouts.delete(session);
      }
      if (this.viewers.size === 0 && this.totalCheck) {
        clearInterval(this.totalCheck);
        this.totalCheck = null;
      }
      lease.release();
      sink.end(reason, abort);
    };
    this.viewers.add(viewer);
    if (!this.totalCheck) {
      this.totalCheck = setInterval(() => this.checkTotal(), TOTAL_CHECK_MS);
      this.totalCheck.unref();
    }
    f.join(viewer);
    onEnd(() => stop('viewer left', false));
  }

  routes = async (app: FastifyInstance) => {
    app.get<{ Params: { camera: string; profile: string; token: string } }>(
      '/streams/:camera/:profile/:token/live.flv',
      {
        schema: {
          params: STREAM_PARAMS,
          description: 'HTTP-FLV, live until the viewer leaves; the same URL upgraded to a WebSocket is WS-FLV. The stream token in the path is the credential',
          response: { 200: { description: 'FLV tags, from the latest keyframe', content: { 'video/x-flv': { schema: { type: 'string', format: 'binary' } } } } },
        },
      },
      async (req, reply) => {
        const lease = await this.liveLease(req.params, req.raw.socket);
        reply.hijack();
        if (!lease) {
          req.raw.socket.destroy();
          return;
        }
        this.held.add(req.raw.socket);
        const res = reply.raw;
        res.writeHead(200, { 'content-type': 'video/x-flv', 'cache-control': 'no-cache, no-store', connection: 'close' });
        this.play(
          lease,
          { buffered: () => res.writableLength, write: (b) => res.write(b), end: (_reason, abort) => (abort ? res.destroy() : res.end()) },
          (cb) => res.on('close', cb),
        );
      },
    );
  };

  /** WS-FLV: the same URL as HTTP-FLV, upgraded. Returns false when the path is not ours. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): boolean {
    guardSocket(socket);
    const m = PATH.exec((req.url ?? '').split('?')[0]!);
    if (!m) return false;
    this.held.add(socket);
    const reject = (status: number, message: string) => {
      if (!socket.destroyed) socket.end(`HTTP/1.1 ${status} ${message}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`);
    };
    let params: { camera: string; profile: string; token: string };
    try {
      params = { camera: decodeURIComponent(m[1]!), profile: decodeURIComponent(m[2]!), token: m[3]! };
    } catch {
      reject(400, 'GW_ERR_VALIDATION');
      return true;
    }
    // The handshake completes once the token and the reader are granted, before the camera is live:
    // a browser opens one WebSocket to a host at a time (RFC 6455 4.1), so a handshake held through a
    // cold start would queue every other tile of the screen behind that camera's start.
    this.lease(params)
      .then((lease) => {
        if (socket.destroyed || socket.readableEnded) {
          lease.release();
          socket.destroy();
          return;
        }
        let upgraded = false;
        // A client that leaves during the handshake never reaches the callback below.
        socket.once('close', () => {
          if (!upgraded) lease.release();
        });
        this.wss.handleUpgrade(req, socket, head, (ws) => {
          upgraded = true;
          ws.on('error', () => ws.terminate());
          // Leaving while the camera starts lets the reader go at once.
          const leftEarly = () => lease.release();
          ws.once('close', leftEarly);
          lease.live().then(
            () => {
              ws.off('close', leftEarly);
              if (ws.readyState !== WebSocket.OPEN) return lease.release();
              this.play(
                lease,
                {
                  buffered: () => ws.bufferedAmount,
                  write: (b) => ws.send(b),
                  // A viewer that is not reading would not read a close frame either: its queue goes at once.
                  end: (reason, abort) => (ws.readyState === WebSocket.OPEN && !abort ? ws.close(1000, reason) : ws.terminate()),
                },
                (cb) => ws.on('close', cb),
              );
            },
            (e: unknown) => {
              lease.release();
              // Why the camera did not start, as the HTTP refusal would have said it (1011: the server could not serve).
              if (ws.readyState === WebSocket.OPEN) ws.close(1011, (e instanceof GatewayError ? e : new GatewayError('GW_ERR_INTERNAL', 'internal error')).code);
            },
          );
        });
      })
      .catch((e: unknown) => {
        const err = e instanceof GatewayError ? e : new GatewayError('GW_ERR_INTERNAL', 'internal error');
        reject(err.statusCode, err.code);
      });
    return true;
  }

  /** Ends every viewer politely, then, a second later, destroys what is left: viewers that do not read and upgrades still waiting for a camera. */
  async close(): Promise<void> {
    for (const v of [...this.viewers]) v.end('gateway shutting down', false);
    await this.held.drain(SHUTDOWN_GRACE_MS);
    this.wss.close();
  }
}

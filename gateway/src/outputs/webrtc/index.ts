import { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { GatewayError, ValidationError, reasoned } from '../../errors.js';
import { whileConnected } from '../../lib/sockets.js';
import { grantFor, STREAM_PARAMS, type LiveStream, type ReaderSource, type StreamGrant, type StreamLease, type StreamTokenVerifier } from '../stream-access.js';
import { RtpFeed } from './feed.js';
import { WhepPeer, type JoinTimings, type WebRtcConfig } from './peer.js';
import { checkOffer, parseSdpFragment } from './sdp.js';

export interface WebRtcOptions {
  engine: ReaderSource;
  tokens: StreamTokenVerifier;
  config: WebRtcConfig;
  log: { info(o: object, m: string): void; warn(o: object, m: string): void };
}

const CORS = {
  'access-control-allow-origin': '*',
  'access-control-expose-headers': 'Location, ETag, Link, Accept-Patch',
};

/** An answer without a body. */
const NO_CONTENT = { type: 'null', description: 'No content' } as const;
const CAMERA_PARAM = { type: 'object', required: ['camera'], properties: { camera: STREAM_PARAMS.properties.camera } } as const;
const RESOURCE_PARAMS = {
  type: 'object',
  required: ['camera', 'resource'],
  properties: { camera: STREAM_PARAMS.properties.camera, resource: { type: 'string', pattern: '^[A-Za-z0-9_-]{22}$' } },
} as const;

/** The bearer token of a WHEP request; WHEP clients send it in Authorization (RFC 9725 §4.1). */
function bearer(req: FastifyRequest): string {
  const m = /^Bearer ([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)$/.exec(req.headers.authorization ?? '');
  if (!m) throw new GatewayError('GW_ERR_UNAUTHENTICATED', 'send the stream token from POST /api/streams/:camera/view as "Authorization: Bearer <token>"');
  return m[1]!;
}

/** The address the request arrived on, as IPv4 when it is an IPv4-mapped IPv6 address. */
function localAddressOf(req: FastifyRequest): string | null {
  const a = req.raw.socket.localAddress;
  if (!a) return null;
  return a.startsWith('::ffff:') ? a.slice(7) : a;
}

/**
 * WebRTC viewers over WHEP: each peer is a reader of the camera's session, fed from the session's
 * one RTP packetization, and joins on the cached GOP so its first packet is a keyframe.
 */
export class WebRtcOutput extends EventEmitter<{ joined: [JoinTimings] }> {
  private readonly peers = new Map<string, WhepPeer>();
  private readonly feeds = new Map<LiveStream, RtpFeed>();
  private readonly perCamera = new Map<string, number>();
  /** Offers admitted but not yet answered count against the caps too, so a burst cannot overshoot them. */
  private pending = 0;

  constructor(private readonly opts: WebRtcOptions) {
    super();
  }

  get peerCount() {
    return this.peers.size;
  }

  /** Peers and where each join's time went, for diagnostics and the benchmark. */
  list() {
    return [...this.peers.values()].map((p) => ({
      id: p.id,
      cameraId: p.cameraId,
      userId: p.userId,
      state: p.pc.connectionState,
      sendPath: p.sendPath,
      packetsSent: p.packetsSent,
      bytesSent: p.bytesSent,
      timings: p.timings,
    }));
  }

  private admit(cameraKey: string) {
    const cfg = this.opts.config;
    if (this.peers.size + this.pending >= cfg.maxPeers) {
      throw reasoned('GW_ERR_CAPACITY', 'webrtcPeers', { limit: cfg.maxPeers }, `the gateway is serving its maximum of ${cfg.maxPeers} WebRTC viewers (streams.webrtc.maxPeers)`);
    }
    if ((this.perCamera.get(cameraKey) ?? 0) >= cfg.maxPeersPerCamera) {
      throw new GatewayError(
        'GW_ERR_CAPACITY',
        `this camera has its maximum of ${cfg.maxPeersPerCamera} WebRTC viewers (streams.webrtc.maxPeersPerCamera)`,
      );
    }
  }

  private count(cameraKey: string, delta: number) {
    const n = (this.perCamera.get(cameraKey) ?? 0) + delta;
    if (n > 0) this.perCamera.set(cameraKey, n);
    else this.perCamera.delete(cameraKey);
  }

  private feedFor(session: LiveStream): RtpFeed {
    let feed = this.feeds.get(session);
    if (!feed) {
      const where = { camera: session.cameraId, profile: session.profile };
      let lastOverloadLog = 0;
      feed = new RtpFeed(
        session,
        () =>
          this.opts.log.warn(
            where,
            'the camera sends B-frames and every transcode slot is busy: WebRTC viewers may see frames out of order (streams.transcode.maxConcurrent)',
          ),
        () => {
          if (Date.now() - lastOverloadLog < 10_000) return;
          lastOverloadLog = Date.now();
          this.opts.log.warn({ ...where, peers: feed?.peers.size }, 'WebRTC fan-out overloaded: dropped a second of video; viewers resume at the next keyframe');
        },
      );
      this.feeds.set(session, feed);
    }
    return feed;
  }

  private async create(grant: StreamGrant, offerText: string, localAddress: string | null, client: Duplex): Promise<{ peer: WhepPeer; answer: string }> {
    const offer = checkOffer(offerText);
    const cameraKey = `${grant.cameraId}\u0000${grant.profile}`;
    this.admit(cameraKey);
    this.count(cameraKey, 1);
    this.pending++;
    let lease: StreamLease | null = null;
    let peer: WhepPeer | null = null;
    try {
      lease = await this.opts.engine.addReader({
        cameraId: grant.cameraId,
        profile: grant.profile,
        kind: 'webrtc',
        userId: grant.userId,
        onClose: (err) => peer?.close(err.message),
      });
      const session = lease.session;
      const feed = this.feedFor(session);
      peer = new WhepPeer({
        cameraId: grant.cameraId,
        userId: grant.userId,
        lease,
        feed,
        config: this.opts.config,
        localAddress,
        onJoined: (p) => this.emit('joined', p.timings),
        onClosed: (p, reason) => {
          this.peers.delete(p.id);
          this.count(cameraKey, -1);
          if (feed.peers.size === 0 && this.feeds.get(session) === feed) {
            feed.detach();
            this.feeds.delete(session);
          }
          this.opts.log.info({ peer: p.id, camera: p.cameraId, reason, timings: p.timings }, 'WebRTC viewer left');
        },
      });
      // Negotiation runs while a cold camera starts; the answer waits for both, so a camera that
      // cannot start is reported here as an error instead of a peer that never gets video. A client
      // that leaves meanwhile gives its reader back at once.
      const joined = await whileConnected(client, Promise.all([peer.answer(offer), lease.live()]));
      if (!joined) throw new GatewayError('GW_ERR_STREAM_CLOSED', 'the viewer left before the stream started');
      const [answer] = joined.value;
      if (peer.closed) throw new GatewayError('GW_ERR_STREAM_CLOSED', 'the stream closed while the viewer connected');
      this.peers.set(peer.id, peer);
      return { peer, answer };
    } catch (e) {
      if (peer) peer.close(e instanceof GatewayError ? e.message : 'start failed');
      else {
        this.count(cameraKey, -1);
        lease?.release();
      }
      if (e instanceof GatewayError) throw e;
      // werift rejects an offer it cannot negotiate with a plain Error.
      throw new ValidationError([{ field: 'offer', message: (e as Error).message }]);
    } finally {
      this.pending--;
    }
  }

  /** The peer a WHEP resource URL names, for the holder of the token that created it. */
  private peerFor(req: FastifyRequest<{ Params: { camera: string; resource: string } }>): WhepPeer {
    const grant = this.opts.tokens.verify(bearer(req));
    if (!grant) throw new GatewayError('GW_ERR_UNAUTHENTICATED', 'the stream token is not valid');
    const peer = this.peers.get(req.params.resource);
    if (!peer || peer.cameraId !== req.params.camera || peer.userId !== grant.userId) {
      throw new GatewayError('GW_ERR_NOT_FOUND', 'no such WHEP session');
    }
    return peer;
  }

  routes = async (app: FastifyInstance) => {
    const cfg = this.opts.config;
    app.addContentTypeParser(['application/sdp', 'application/trickle-ice-sdpfrag'], { parseAs: 'string', bodyLimit: cfg.maxOfferBytes }, (_req, body, done) =>
      done(null, body),
    );
    app.addHook('onSend', async (req, reply) => {
      if (req.url.startsWith('/whep/')) reply.headers(CORS);
    });

    const preflight = (url: string, methods: string, headers: string, accepts: Record<string, string>) =>
      app.options(url, { schema: { params: url.includes(':resource') ? RESOURCE_PARAMS : CAMERA_PARAM, description: 'CORS preflight', response: { 204: NO_CONTENT } } }, async (_req, reply) =>
        reply
          .code(204)
          .headers({ 'access-control-allow-methods': methods, 'access-control-allow-headers': headers, 'access-control-max-age': '600', ...accepts })
          .send(),
      );
    preflight('/whep/:camera', 'POST, OPTIONS', 'Authorization, Content-Type', { 'accept-post': 'application/sdp' });
    preflight('/whep/:camera/:resource', 'PATCH, DELETE, OPTIONS', 'Authorization, Content-Type, If-Match', {
      'accept-patch': 'application/trickle-ice-sdpfrag',
    });

    app.post<{ Params: { camera: string }; Querystring: { profile?: 'main' | 'sub'; wgr?: number; token?: string } }>(
      '/whep/:camera',
      {
        bodyLimit: cfg.maxOfferBytes,
        schema: {
          params: CAMERA_PARAM,
          querystring: {
            type: 'object',
            properties: {
              profile: STREAM_PARAMS.properties.profile,
              // Cluster mode: how many times another node sent this offer on (307 to the camera's owner).
              wgr: { type: 'integer', minimum: 0, maximum: 99 },
              // Cluster mode: the stream token, put in the redirect by the node that sent the offer on,
              // since a browser drops Authorization when it follows a redirect to another origin.
              token: STREAM_PARAMS.properties.token,
            },
            additionalProperties: false,
          },
          description: 'WHEP (RFC 9725): an SDP offer in, the answer out; the bearer token is a stream token from POST /api/streams/{cameraId}/view',
          security: [{ bearer: [] }],
          body: { content: { 'application/sdp': { schema: { type: 'string', description: 'the SDP offer' } } } },
          response: {
            201: {
              description: 'the SDP answer; Location names the session for PATCH and DELETE',
              headers: { location: { type: 'string' }, etag: { type: 'string' } },
              content: { 'application/sdp': { schema: { type: 'string' } } },
            },
          },
        },
      },
      async (req, reply) => {
        if (!cfg.enabled) throw new GatewayError('GW_ERR_UNAVAILABLE', 'WebRTC is off (streams.webrtc.enabled); use HLS or WS-FLV');
        const token = req.query.token && !req.headers.authorization ? req.query.token : bearer(req);
        const claimed = this.opts.tokens.verify(token);
        const grant = grantFor(this.opts.tokens, { camera: req.params.camera, profile: req.query.profile ?? claimed?.profile ?? 'main', token });
        if (grant.expiresAt < Date.now()) throw new GatewayError('GW_ERR_UNAUTHENTICATED', 'the stream token expired; ask for a new stream URL');
        if (req.headers['content-type']?.split(';')[0]?.trim() !== 'application/sdp') {
          throw new GatewayError('GW_ERR_UNSUPPORTED_MEDIA_TYPE', 'a WHEP offer is sent as Content-Type: application/sdp');
        }
        if (typeof req.body !== 'string' || req.body.length === 0) throw new ValidationError([{ field: 'offer', message: 'is empty' }]);
        const { peer, answer } = await this.create(grant, req.body, localAddressOf(req), req.raw.socket);
        const links = cfg.iceServers.map((s) =>
          s.username
            ? `<${s.urls}>; rel="ice-server"; username="${s.username}"; credential="${s.credential ?? ''}"; credential-type="password"`
            : `<${s.urls}>; rel="ice-server"`,
        );
        reply
          .code(201)
          .headers({
            'content-type': 'application/sdp',
            location: `/whep/${encodeURIComponent(grant.cameraId)}/${peer.id}`,
            etag: peer.etag,
            'accept-patch': 'application/trickle-ice-sdpfrag',
            'cache-control': 'no-store',
          });
        if (links.length) reply.header('link', links);
        return answer;
      },
    );

    app.patch<{ Params: { camera: string; resource: string } }>(
      '/whep/:camera/:resource',
      {
        bodyLimit: cfg.maxOfferBytes,
        schema: {
          params: RESOURCE_PARAMS,
          description: 'trickle ICE: more candidates for the session',
          security: [{ bearer: [] }],
          body: { content: { 'application/trickle-ice-sdpfrag': { schema: { type: 'string' } } } },
          response: { 204: NO_CONTENT },
        },
      },
      async (req, reply) => {
        const peer = this.peerFor(req);
        if (req.headers['content-type']?.split(';')[0]?.trim() !== 'application/trickle-ice-sdpfrag') {
          throw new GatewayError('GW_ERR_UNSUPPORTED_MEDIA_TYPE', 'trickle ICE is sent as Content-Type: application/trickle-ice-sdpfrag');
        }
        const ifMatch = req.headers['if-match'];
        if (ifMatch && ifMatch !== '*' && ifMatch !== peer.etag) {
          throw new GatewayError('GW_ERR_VERSION_CONFLICT', 'If-Match does not name this WHEP session');
        }
        const fragment = parseSdpFragment(typeof req.body === 'string' ? req.body : '');
        if (fragment.ufrag && !peer.pc.remoteDescription?.sdp.includes(`a=ice-ufrag:${fragment.ufrag}`)) {
          throw new ValidationError([{ field: 'ice-ufrag', message: 'ICE restarts are not supported; start a new WHEP session' }]);
        }
        for (const candidate of fragment.candidates) {
          await peer.addCandidate(candidate, fragment.mid).catch(() => {
            throw new ValidationError([{ field: 'candidate', message: `not a usable ICE candidate: ${candidate.slice(0, 80)}` }]);
          });
        }
        return reply.code(204).send();
      },
    );

    app.delete<{ Params: { camera: string; resource: string } }>(
      '/whep/:camera/:resource',
      { schema: { params: RESOURCE_PARAMS, description: 'hangs up', security: [{ bearer: [] }], response: { 200: { ...NO_CONTENT, description: 'the session ended' } } } }, async (req, reply) => {
      this.peerFor(req).close('the viewer hung up (DELETE)');
      return reply.code(200).send();
    });
  };

  close() {
    for (const peer of [...this.peers.values()]) peer.close('the gateway is shutting down');
  }
}

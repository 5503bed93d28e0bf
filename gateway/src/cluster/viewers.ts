import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { GatewayError } from '../errors.js';
import type { StreamTokenVerifier } from '../outputs/stream-access.js';
import { OwnedElsewhere } from './ownership.js';
import type { WsProxy } from './proxy.js';
import { forwardUrl, hopsOf, type ViewerRouter } from './routing.js';

/** The stream routes a viewer may be sent on from, with where each names its camera and token. */
const STREAM_ROUTES: Record<string, (req: FastifyRequest) => { camera: string; token: string | null }> = {
  'GET /streams/:camera/:profile/:token/:file': (req) => {
    const p = req.params as { camera: string; token: string };
    return { camera: p.camera, token: p.token };
  },
  'GET /streams/:camera/:profile/:token/live.flv': (req) => {
    const p = req.params as { camera: string; token: string };
    return { camera: p.camera, token: p.token };
  },
  'POST /whep/:camera': (req) => ({
    camera: (req.params as { camera: string }).camera,
    token: /^Bearer (\S+)$/.exec(req.headers.authorization ?? '')?.[1] ?? null,
  }),
};

function withToken(pathAndQuery: string, token: string): string {
  const url = new URL(pathAndQuery, 'http://x');
  url.searchParams.set('token', token);
  return url.pathname + url.search;
}

const FLV_PATH = /^\/streams\/([^/]+)\/([^/]+)\/([^/]+)\/live\.flv$/;

/**
 * Cluster viewer routing (cluster.viewerRouting redirect): HLS, HTTP-FLV and WHEP requests that reach a
 * node which does not pull the camera get 307 to the owner's same URL (the stream token is valid on
 * every node: they share secrets.tokenKey); WS-FLV is proxied to the owner. Only a request whose
 * token is good for its camera is routed: a forged one is refused here and takes no lease. A page
 * from one node reads another node's stream answers through the cluster's CORS (http/cors.ts), which
 * names only the cluster's own origins.
 * Returns the upgrade handler for WS-FLV: true when it took the socket.
 */
export function installViewerRouting(
  http: FastifyInstance,
  opts: {
    router: ViewerRouter;
    tokens: StreamTokenVerifier;
    proxy: WsProxy;
    /** The FLV output's own upgrade handler, for a WS-FLV viewer this node serves. */
    serveFlv: (req: IncomingMessage, socket: Duplex, head: Buffer) => void;
  },
): (req: IncomingMessage, socket: Duplex, head: Buffer) => boolean {
  const granted = (camera: string, token: string | null) => {
    const grant = token ? opts.tokens.verify(token) : null;
    // The output refuses it in its own words (401/403); it is not sent anywhere.
    return grant !== null && grant.cameraId === camera;
  };

  const sendOn = (req: FastifyRequest, reply: FastifyReply, to: string, token: string, hops: number) => {
    // A browser drops Authorization when it follows a redirect to another origin: a WHEP offer's token goes in the query.
    const sentOn = req.method === 'POST' ? withToken(req.url, token) : req.url;
    return reply.code(307).header('location', forwardUrl(to, sentOn, hops)).header('cache-control', 'no-store').send();
  };

  http.addHook('preHandler', async (req, reply) => {
    const key = `${req.method} ${req.routeOptions.url}`;
    const named = STREAM_ROUTES[key];
    if (!named) return;
    const { camera, token } = named(req);
    if (!granted(camera, token)) return;
    const hops = hopsOf(req.url);
    const route = await opts.router.route(camera, hops);
    if (route.serve) return;
    return sendOn(req, reply, route.to, token!, hops);
  });

  // The lease can move between route() and the pull's start (this node's last session of the camera
  // closed and let it go, and another node took it): the viewer is sent to the new owner, not refused.
  const fallback = http.errorHandler;
  http.addHook('onRoute', (route) => {
    const named = STREAM_ROUTES[`${String(route.method)} ${route.url}`];
    if (!named) return;
    const own = route.errorHandler ?? fallback;
    route.errorHandler = function (this: FastifyInstance, err, req, reply) {
      if (!(err instanceof OwnedElsewhere)) return own.call(this, err, req, reply);
      const { token } = named(req);
      const hops = hopsOf(req.url);
      let to: string;
      try {
        const route = opts.router.rerouted(err, hops);
        if (route.serve) return own.call(this, err, req, reply);
        to = route.to;
      } catch (moving) {
        return own.call(this, moving as FastifyError, req, reply);
      }
      return sendOn(req, reply, to, token!, hops);
    };
  });

  return (req, socket, head) => {
    const url = req.url ?? '';
    const m = FLV_PATH.exec(url.split('?')[0]!);
    if (!m) return false;
    let camera: string;
    try {
      camera = decodeURIComponent(m[1]!);
    } catch {
      return false;
    }
    // Not ours to judge: the FLV output refuses it as it would on one node.
    if (!granted(camera, m[3]!)) return false;
    const hops = hopsOf(url);
    // An owner that died still holds its lease, and may still be listed, for a few beats: its refused
    // connection sends the viewer round again (the router waits for the lease to lapse) until then.
    const giveUpAt = Date.now() + opts.router.rehomeMs;
    const attempt = () => {
      if (socket.destroyed || socket.readableEnded) return void socket.destroy();
      opts.router.route(camera, hops, giveUpAt).then(
        (route) => {
          if (route.serve) return opts.serveFlv(req, socket, head);
          const retry = Date.now() < giveUpAt ? () => void setTimeout(attempt, opts.router.heartbeatMs / 2) : undefined;
          opts.proxy.proxy(req, socket, head, forwardUrl(route.to.replace(/^http/, 'ws'), url, hops), retry);
        },
        (err: unknown) => {
          const e = err instanceof GatewayError ? err : new GatewayError('GW_ERR_INTERNAL', 'internal error');
          if (!socket.destroyed) socket.end(`HTTP/1.1 ${e.statusCode} ${e.code}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`);
        },
      );
    };
    attempt();
    return true;
  };
}

import type { FastifyInstance } from 'fastify';

/**
 * CORS for the cluster's own pages. A page opened on one node that fails over to another calls the
 * API and fetches stream URLs there: another origin, so the browser asks first (a preflight, since
 * it sends Authorization) and reads the answer only when the node names the page's origin. Only
 * origins `trusted` accepts (the live nodes' advertised URLs, control.allowedOrigins) are named;
 * any other gets no CORS header at all, and its browser keeps the answer from it. WHEP answers
 * its own preflights (any origin: its bearer is a stream token).
 */
export function clusterCors(app: FastifyInstance, trusted: (origin: string) => boolean): void {
  app.addHook('onRequest', async (req, reply) => {
    const origin = req.headers.origin;
    if (!origin || !/^\/(api|streams)\//.test(req.url)) return;
    if (!trusted(origin)) return;
    reply.header('access-control-allow-origin', origin);
    reply.header('vary', 'origin');
    reply.header('access-control-expose-headers', 'etag, location');
    if (req.method === 'OPTIONS' && req.headers['access-control-request-method']) {
      reply.header('access-control-allow-methods', 'GET, HEAD, POST, PUT, PATCH, DELETE');
      reply.header('access-control-allow-headers', 'authorization, content-type, if-match, accept');
      reply.header('access-control-max-age', '600');
      return reply.code(204).send();
    }
  });
}

/** The origin of a URL (scheme://host:port), or null. */
export function originOf(url: string): string | null {
  try {
    const u = new URL(url);
    return u.protocol === 'http:' || u.protocol === 'https:' ? u.origin : null;
  } catch {
    return null;
  }
}

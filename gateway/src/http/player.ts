import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import fastifyStatic from '@fastify/static';
import { Type } from '@sinclair/typebox';
import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import type { Config } from '../config/schema.js';

/** What every page needs before anyone signs in: no secret and nothing about the registry. */
export function uiSettings(player: Config['player']) {
  return {
    language: player.language,
    map: { tileUrl: player.map.tileUrl || null, attribution: player.map.attribution, maxZoom: player.map.maxZoom, centre: player.map.centre },
  };
}

/**
 * The pages' security policy: scripts only from the gateway (no inline script, so an injected string
 * cannot run), media from the gateway and the players' blobs, images also from the map server, and no
 * framing. Leaflet positions its tiles with style attributes, hence the inline styles.
 */
export function contentSecurityPolicy(tileUrl: string, nodeOrigins: readonly string[] = []): string {
  const tileOrigin = tileSourceOf(tileUrl);
  // Cluster mode: the other nodes a page may fail over to (http and the matching ws origin of each).
  const nodes = nodeOrigins.flatMap((o) => [o, o.replace(/^http/, 'ws')]).map((o) => ` ${o}`).join('');
  return [
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self' 'unsafe-inline'",
    `img-src 'self' data: blob:${tileOrigin}`,
    `media-src 'self' blob:${nodes}`,
    "worker-src 'self' blob:",
    `connect-src 'self'${nodes}`,
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
  ].join('; ');
}

/**
 * The CSP source of a tile URL template: its origin, with a `{s}` subdomain placeholder
 * (a.tile…, b.tile…) as a wildcard. A path on the gateway needs nothing beyond 'self'.
 */
function tileSourceOf(tileUrl: string): string {
  const m = /^(https?):\/\/([^/?#]+)/.exec(tileUrl);
  if (!m) return '';
  const host = m[2]!.replace(/\{s\}/g, '*');
  // Anything but a host name, wildcard and port here would let the template widen the policy.
  return /^[A-Za-z0-9.*-]+(:\d+)?$/.test(host) ? ` ${m[1]}://${host.toLowerCase()}` : '';
}

const UI_SETTINGS = Type.Object({
  language: Type.String({ description: 'the pages\' default language' }),
  map: Type.Object({
    tileUrl: Type.Union([Type.String(), Type.Null()]),
    attribution: Type.String(),
    maxZoom: Type.Integer(),
    centre: Type.Unknown({ description: 'where the map opens' }),
  }),
});

/** Serves the built player (player/ → dist/player) and the settings its pages start from. */
export async function playerRoutes(
  app: FastifyInstance,
  { player, log, connectOrigins = () => [] }: { player: Config['player']; log: FastifyBaseLogger; connectOrigins?: () => readonly string[] },
) {
  app.get('/api/ui', { schema: { response: { 200: UI_SETTINGS } } }, async () => uiSettings(player));
  if (!player.enabled) return;
  const root = resolve(player.dir);
  if (!existsSync(resolve(root, 'index.html'))) {
    log.warn({ dir: root }, 'the player is not built (npm run build:player): the gateway serves the API only');
    app.get('/', { schema: { response: { 503: { description: 'the player is not built', content: { 'text/plain': { schema: Type.String() } } } } } }, async (_req, reply) =>
      reply.status(503).type('text/plain; charset=utf-8').send('The player is not built: run "npm run build:player" (npm start does it).\n'),
    );
    return;
  }
  await app.register(fastifyStatic, {
    root,
    prefix: '/',
    index: ['index.html'],
    // Bundles carry a content hash in their names; pages must be fetched fresh to pick up new ones.
    setHeaders(res, path) {
      res.setHeader('x-content-type-options', 'nosniff');
      res.setHeader('referrer-policy', 'no-referrer');
      if (path.endsWith('.html')) {
        // Per page load: the cluster's nodes are those alive now.
        res.setHeader('content-security-policy', contentSecurityPolicy(player.map.tileUrl, connectOrigins()));
        res.setHeader('cache-control', 'no-cache');
      } else if (/\/assets\//.test(path)) {
        res.setHeader('cache-control', 'public, max-age=31536000, immutable');
      }
    },
    cacheControl: false,
  });
}

import { Type, type TObject } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import type { Guards } from '../../auth/plugin.js';
import type { Principal } from '../../auth/users.js';
import type { TileStatus, WallView } from '../../control/model.js';
import { messageSchemas, type MessageType } from '../../control/protocol.js';
import { PERMISSION, type WallService } from '../../control/walls.js';
import { checkedBy } from './shared.js';

export interface WallRouteOptions {
  walls: WallService;
  guards: Guards;
  statusOf(wall: WallView): Record<string, TileStatus>;
}

/**
 * The control protocol over REST, for scripts and integrations: each route is one message type,
 * its payload the body plus the path's ids, and the answer the WebSocket's ack payload.
 */
const ROUTES: { method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE'; url: string; type: MessageType; created?: boolean }[] = [
  { method: 'GET', url: '/api/walls', type: 'walls.list' },
  { method: 'POST', url: '/api/walls', type: 'wall.create', created: true },
  { method: 'PATCH', url: '/api/walls/:wallId', type: 'wall.rename' },
  { method: 'DELETE', url: '/api/walls/:wallId', type: 'wall.delete' },
  { method: 'PUT', url: '/api/walls/:wallId/layout', type: 'layout.set' },
  { method: 'PUT', url: '/api/walls/:wallId/tiles/:tileId', type: 'tile.assign' },
  { method: 'POST', url: '/api/walls/:wallId/locks', type: 'lock' },
  { method: 'POST', url: '/api/walls/:wallId/locks/release', type: 'unlock' },
  { method: 'POST', url: '/api/walls/:wallId/locks/break', type: 'lock.break' },
  { method: 'POST', url: '/api/walls/:wallId/tours', type: 'tour.start', created: true },
  { method: 'DELETE', url: '/api/walls/:wallId/tours/:tourId', type: 'tour.stop' },
  { method: 'GET', url: '/api/walls/:wallId/presets', type: 'presets.list' },
  { method: 'POST', url: '/api/walls/:wallId/presets', type: 'preset.save', created: true },
  { method: 'POST', url: '/api/walls/:wallId/presets/:presetId/recall', type: 'preset.recall' },
  { method: 'DELETE', url: '/api/walls/:wallId/presets/:presetId', type: 'preset.delete' },
  { method: 'POST', url: '/api/walls/:wallId/plans', type: 'plan.save', created: true },
  { method: 'POST', url: '/api/walls/:wallId/plans/revert', type: 'plan.revert' },
  { method: 'POST', url: '/api/walls/:wallId/plans/:planId/activate', type: 'plan.activate' },
  { method: 'DELETE', url: '/api/walls/:wallId/plans/:planId', type: 'plan.delete' },
  { method: 'DELETE', url: '/api/walls/:wallId/popups/:popupId', type: 'popup.dismiss' },
];

/**
 * A route's request schemas, cut from its message's schema: the path's ids are the params, the rest
 * is the body. The WebSocket checks the whole message against the same schema, so the two cannot
 * disagree. (No response schemas: fastify's compiled serializer escapes Chinese text character by
 * character, measured slower than JSON.stringify, and would silently drop a field it did not list.)
 */
export function routeSchemas(route: { method: string; url: string; type: MessageType }) {
  const message = messageSchemas[route.type] as TObject;
  const ids = [...route.url.matchAll(/:(\w+)/g)].map((m) => m[1]!);
  return {
    ...(ids.length ? { params: Type.Pick(message, ids) } : {}),
    ...(route.method === 'GET' ? {} : { body: Type.Omit(message, ids) }),
  };
}

export async function wallRoutes(app: FastifyInstance, o: WallRouteOptions) {
  for (const route of ROUTES) {
    const parts = routeSchemas(route);
    app.route<{ Params: Record<string, string>; Body: unknown }>({
      method: route.method,
      url: route.url,
      onRequest: o.guards.require(PERMISSION[route.type]),
      ...(Object.keys(parts).length ? checkedBy(parts) : {}),
      handler: async (req, reply) => {
        const body = req.body && typeof req.body === 'object' && !Array.isArray(req.body) ? req.body : {};
        const result = await o.walls.execute(req.principal as Principal, route.type, { ...body, ...req.params });
        if (route.created) reply.status(201);
        return result;
      },
    });
  }

  app.get<{ Params: { wallId: string } }>(
    '/api/walls/:wallId',
    { onRequest: o.guards.require('walls:read'), ...checkedBy({ params: messageSchemas.subscribe }) },
    async (req) => {
      const wall = o.walls.snapshot(req.principal as Principal, req.params.wallId);
      return { wall, status: o.statusOf(wall) };
    },
  );
}

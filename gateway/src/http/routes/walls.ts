import { Type, type TObject, type TSchema } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import type { Guards } from '../../auth/plugin.js';
import type { Principal } from '../../auth/users.js';
import type { TileStatus, WallView } from '../../control/model.js';
import { PRESET_VIEW, TILE_STATUSES, WALL_VIEW } from '../../control/messages.js';
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
const ROUTES: readonly { method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE'; url: string; type: MessageType; created?: boolean }[] = [
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
 * disagree.
 */
export function routeSchemas(route: { method: string; url: string; type: MessageType }) {
  const message = messageSchemas[route.type] as TObject;
  const ids = [...route.url.matchAll(/:(\w+)/g)].map((m) => m[1]!);
  return {
    ...(ids.length ? { params: Type.Pick(message, ids) } : {}),
    ...(route.method === 'GET' ? {} : { body: Type.Omit(message, ids) }),
  };
}

// What each message answers (the WebSocket's ack payload); the wall is control/messages.ts's, as wall.snapshot sends it.
const CHANGED = Type.Object({ version: Type.Integer({ description: 'the wall\'s version after the change; the change itself reaches subscribers as wall.deltas' }) });
const DELETED = Type.Object({ deleted: Type.String() });
const PRESET = Type.Object({ id: Type.String(), kind: Type.Union([Type.Literal('preset'), Type.Literal('plan')]), name: Type.String(), priority: Type.Integer() });
const ACKS: Record<Exclude<MessageType, 'subscribe' | 'unsubscribe'>, TSchema> = {
  'walls.list': Type.Object({
    walls: Type.Array(Type.Object({ id: Type.String(), name: Type.String(), departmentId: Type.String(), screens: WALL_VIEW.properties.screens, tiles: Type.Integer(), plan: WALL_VIEW.properties.plan })),
  }),
  'wall.create': Type.Object({ wall: WALL_VIEW }),
  'wall.rename': CHANGED,
  'wall.delete': DELETED,
  'layout.set': CHANGED,
  'tile.assign': CHANGED,
  lock: CHANGED,
  unlock: CHANGED,
  'lock.break': Type.Composite([CHANGED, Type.Object({ broken: Type.Array(Type.Unknown(), { description: 'the locks broken: whose, on which tile' }) })]),
  'tour.start': Type.Composite([CHANGED, Type.Object({ tourId: Type.String() })]),
  'tour.stop': CHANGED,
  'presets.list': Type.Object({
    presets: Type.Array(PRESET_VIEW),
  }),
  'preset.save': PRESET,
  'preset.recall': CHANGED,
  'preset.delete': DELETED,
  'plan.save': PRESET,
  'plan.activate': CHANGED,
  'plan.revert': CHANGED,
  'plan.delete': DELETED,
  'popup.dismiss': CHANGED,
};

export async function wallRoutes(app: FastifyInstance, o: WallRouteOptions) {
  for (const route of ROUTES) {
    const parts = routeSchemas(route);
    app.route<{ Params: Record<string, string>; Body: unknown }>({
      method: route.method,
      url: route.url,
      onRequest: o.guards.require(PERMISSION[route.type]),
      ...checkedBy(parts, { response: { [route.created ? 201 : 200]: ACKS[route.type as keyof typeof ACKS] } }),
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
    {
      onRequest: o.guards.require('walls:read'),
      ...checkedBy(
        { params: messageSchemas.subscribe },
        { response: { 200: Type.Object({ wall: WALL_VIEW, status: TILE_STATUSES }) } },
      ),
    },
    async (req) => {
      const wall = o.walls.snapshot(req.principal as Principal, req.params.wallId);
      return { wall, status: o.statusOf(wall) };
    },
  );
}

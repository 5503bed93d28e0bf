import type { FastifyInstance, FastifyReply } from 'fastify';
import { Type } from '@sinclair/typebox';
import type { Guards } from '../../auth/plugin.js';
import type { Principal } from '../../auth/users.js';
import { GatewayError, ValidationError, reasoned } from '../../errors.js';
import type { Registry } from '../../registry/service.js';
import { STREAM_PARAMS, grantFor, type StreamTokenVerifier } from '../../outputs/stream-access.js';
import type { Snapshot, Snapshotter } from '../../snapshots/types.js';

export interface SnapshotRouteOptions {
  registry: Registry;
  snapshots: Snapshotter;
  guards: Guards;
  /** streams.snapshots.maxWidth */
  maxWidth: number;
  /** How long a browser may reuse a picture (Cache-Control max-age). */
  maxAgeSec: number;
  /**
   * Cluster mode: the picture of a camera this node pulls, for another node asking on behalf of its
   * caller, at a stream URL (the stream token names the camera, profile and user). Answered by this
   * node's own engine only, never sent on.
   */
  forOtherNodes?: { local: Snapshotter; tokens: StreamTokenVerifier };
}

const CAMERA_ID = Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$' });
const WIDTH = Type.Integer({ minimum: 16, maximum: 7680, description: 'Output width; the height keeps the aspect ratio (even). Never scaled up.' });
const IF_LIVE = Type.Union([Type.Literal('1'), Type.Literal('0'), Type.Literal('true'), Type.Literal('false')], {
  description: '1: only from a stream already live; 204 and nothing started otherwise (thumbnails)',
});

interface Query {
  profile?: 'main' | 'sub';
  width?: number;
  ifLive?: '1' | '0' | 'true' | 'false';
}

/** A camera's current picture, scoped and admitted like a viewing of it. */
export async function snapshotRoutes(app: FastifyInstance, o: SnapshotRouteOptions) {
  app.get<{ Params: { cameraId: string }; Querystring: Query }>(
    '/api/streams/:cameraId/snapshot.jpg',
    {
      onRequest: o.guards.require('streams:view'),
      schema: {
        params: Type.Object({ cameraId: CAMERA_ID }),
        querystring: Type.Object(
          {
            profile: Type.Optional(Type.Union([Type.Literal('main'), Type.Literal('sub')], { description: 'sub: the sub-stream (or the main stream when that is what plays)' })),
            width: Type.Optional(WIDTH),
            ifLive: Type.Optional(IF_LIVE),
          },
          { additionalProperties: false },
        ),
        response: {
          200: {
            description: 'The picture. Last-Modified is when its keyframe arrived.',
            content: { 'image/jpeg': { schema: { type: 'string', format: 'binary' } } },
          },
          204: { description: 'ifLive=1 and the camera is not live: nothing was started.', type: 'null' },
          // 4xx and 5xx: the shared Error schema (http/openapi.ts).
        },
        description:
          'Refused with GW_ERR_VALIDATION, GW_ERR_UNAUTHENTICATED, GW_ERR_FORBIDDEN, GW_ERR_NOT_FOUND, GW_ERR_CONFLICT (disabled) or GW_ERR_USER_QUOTA; ' +
          'fails with GW_ERR_CAPACITY, GW_ERR_CAMERA_*, GW_ERR_STREAM_TIMEOUT, GW_ERR_UNAVAILABLE or GW_ERR_INTERNAL, as a viewing would.',
      },
    },
    async (req, reply) => {
      const actor = req.principal as Principal;
      const { width } = req.query;
      checkWidth(width, o.maxWidth);
      // Scope first: a camera outside the user's departments answers like a missing one.
      const source = await o.registry.getSource(actor, req.params.cameraId);
      if (!source.enabled) throw reasoned('GW_ERR_CONFLICT', 'disabled', { camera: source.id }, `camera "${source.id}" is disabled`);
      const snapshot = await o.snapshots.take({
        cameraId: source.id,
        profile: req.query.profile ?? 'main',
        ...(width !== undefined ? { width } : {}),
        userId: actor.id,
        ifLive: isLive(req.query.ifLive),
      });
      return sendPicture(reply, snapshot, o.maxAgeSec);
    },
  );

  const other = o.forOtherNodes;
  if (!other) return;
  app.get<{ Params: { camera: string; profile: 'main' | 'sub'; token: string }; Querystring: Omit<Query, 'profile'> }>(
    '/streams/:camera/:profile/:token/snapshot.jpg',
    {
      schema: {
        hide: true,
        params: STREAM_PARAMS,
        querystring: Type.Object({ width: Type.Optional(WIDTH), ifLive: Type.Optional(IF_LIVE) }, { additionalProperties: false }),
      },
    },
    async (req, reply) => {
      // The token was issued after the asking node's scope check (or for its alarm evidence): a viewing's grant.
      const grant = grantFor(other.tokens, req.params);
      if (grant.expiresAt < Date.now()) throw new GatewayError('GW_ERR_UNAUTHENTICATED', 'the stream token has expired; ask for a new stream URL');
      const { width } = req.query;
      checkWidth(width, o.maxWidth);
      const snapshot = await other.local.take({
        cameraId: grant.cameraId,
        profile: grant.profile,
        ...(width !== undefined ? { width } : {}),
        userId: grant.userId,
        ifLive: isLive(req.query.ifLive),
      });
      return sendPicture(reply, snapshot, o.maxAgeSec);
    },
  );
}

function checkWidth(width: number | undefined, maxWidth: number) {
  if (width !== undefined && width > maxWidth) {
    throw new ValidationError([{ field: 'querystring.width', message: `must be at most ${maxWidth} (streams.snapshots.maxWidth)` }]);
  }
}

const isLive = (v: Query['ifLive']) => v === '1' || v === 'true';

/** The picture, with its size and time for a node that passes it on (x-picture-*). */
function sendPicture(reply: FastifyReply, snapshot: Snapshot | null, maxAgeSec: number) {
  if (!snapshot) return reply.code(204).send();
  return reply
    .type('image/jpeg')
    .header('cache-control', `private, max-age=${maxAgeSec}`)
    .header('last-modified', new Date(snapshot.takenAt).toUTCString())
    .header('x-picture-width', String(snapshot.width))
    .header('x-picture-height', String(snapshot.height))
    .header('x-picture-taken-at', String(snapshot.takenAt))
    .send(snapshot.jpeg);
}

import type { FastifyInstance, FastifyRequest } from 'fastify';
import { Type } from '@sinclair/typebox';
import type { StreamTokens } from '../../auth/stream-tokens.js';
import type { Guards } from '../../auth/plugin.js';
import type { Principal } from '../../auth/users.js';
import { GatewayError, reasoned } from '../../errors.js';
import type { Registry } from '../../registry/service.js';
import type { StreamManager } from '../../streams/manager.js';
import type { RtmpIngest } from '../../streams/sources/rtmp-ingest.js';
import { pushStreamName } from '../../registry/url-policy.js';
import type { AuditEntry } from '../../store/types.js';
import { ERROR_PARAMS, NO_BODY, NO_CONTENT, orNull } from './shared.js';

export interface StreamRouteOptions {
  registry: Registry;
  streams: StreamManager;
  tokens: StreamTokens;
  ingest: RtmpIngest | null;
  guards: Guards;
  audit(entry: Omit<AuditEntry, 'seq'>): Promise<void>;
  /** STUN/TURN servers for browsers' WebRTC, given with each viewing (signed-in users only). */
  iceServers: ReadonlyArray<{ urls: string; username?: string; credential?: string }>;
  /**
   * Cluster mode: resolves once the camera's lease no longer names a node that died (ViewerRouter.settled).
   * The answer waits for it, so the player's first-frame deadline starts when the camera can be placed.
   */
  settle?(cameraId: string): Promise<void>;
}

const actorOf = (req: FastifyRequest) => req.principal as Principal;
const CAMERA_ID = Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$' });
const PROFILE = Type.Union([Type.Literal('main'), Type.Literal('sub')]);

const viewing = Type.Object({
  camera: Type.Object({ id: Type.String(), name: Type.String() }),
  profile: PROFILE,
  expiresAt: Type.String({ format: 'date-time' }),
  hls: Type.String({ description: 'the HLS playlist' }),
  flv: Type.String({ description: 'HTTP-FLV' }),
  wsFlv: Type.String({ description: 'WS-FLV: the same path over a WebSocket' }),
  whep: Type.String({ description: 'WebRTC: POST an SDP offer here with "Authorization: Bearer <token>"' }),
  iceServers: Type.Array(Type.Object({ urls: Type.String(), username: Type.Optional(Type.String()), credential: Type.Optional(Type.String()) })),
  token: Type.String({ description: 'the stream token in the URLs above' }),
});
const sessionSummary = Type.Object({
  id: Type.String({ format: 'uuid' }),
  cameraId: Type.String(),
  cameraName: Type.String(),
  profile: PROFILE,
  state: Type.Union(['idle', 'starting', 'ready', 'lingering', 'retrying', 'closed'].map((st) => Type.Literal(st))),
  readers: Type.Record(Type.String(), Type.Integer(), { description: 'viewers by output (hls, flv, webrtc) and tour pre-warm holds' }),
  bitrateKbps: Type.Number(),
  uptimeMs: Type.Number(),
  restarts: Type.Integer(),
  inputCodec: orNull(Type.String()),
  resolution: orNull(Type.String()),
  transcoding: Type.Boolean(),
  pid: orNull(Type.Integer()),
  retryInMs: orNull(Type.Number()),
  lastError: orNull(Type.Object({ code: Type.String(), message: Type.String(), params: Type.Optional(ERROR_PARAMS) })),
});

/** Starting a viewing hands out stream URLs; admins list and stop live sessions in their scope. */
export async function streamRoutes(app: FastifyInstance, o: StreamRouteOptions) {
  app.post<{ Params: { cameraId: string }; Querystring: { profile?: 'main' | 'sub' } }>(
    '/api/streams/:cameraId/view',
    {
      onRequest: o.guards.require('streams:view'),
      schema: {
        params: Type.Object({ cameraId: CAMERA_ID }),
        querystring: Type.Object({ profile: Type.Optional(PROFILE) }, { additionalProperties: false }),
        body: NO_BODY,
        response: { 200: viewing },
      },
    },
    async (req) => {
      const actor = actorOf(req);
      // Scope first: a camera outside the user's departments answers like a missing one.
      const source = await o.registry.getSource(actor, req.params.cameraId);
      if (!source.enabled) throw reasoned('GW_ERR_CONFLICT', 'disabled', { camera: source.id }, `camera "${source.id}" is disabled`);
      const profile = req.query.profile === 'sub' && source.subUrl ? 'sub' : 'main';
      // Redis away: the stream request reports it in its own words; the URLs are still good.
      await o.settle?.(source.id).catch((err: Error) => req.log.warn({ camera: source.id, err: err.message }, 'could not look at the camera lease before the view answer'));
      const { token, expiresAt } = o.tokens.issue({ userId: actor.id, cameraId: source.id, profile });
      const base = `/streams/${encodeURIComponent(source.id)}/${profile}/${token}`;
      return {
        camera: { id: source.id, name: source.name },
        profile,
        expiresAt: new Date(expiresAt).toISOString(),
        hls: `${base}/index.m3u8`,
        flv: `${base}/live.flv`,
        wsFlv: `${base}/live.flv`,
        // WHEP clients POST their offer here with "Authorization: Bearer <token>".
        whep: `/whep/${encodeURIComponent(source.id)}${profile === 'sub' ? '?profile=sub' : ''}`,
        iceServers: o.iceServers,
        token,
      };
    },
  );

  app.post<{ Params: { cameraId: string }; Querystring: { ttlSec?: number } }>(
    '/api/sources/:cameraId/publish-url',
    {
      onRequest: o.guards.require('sources:write'),
      schema: {
        params: Type.Object({ cameraId: CAMERA_ID }),
        querystring: Type.Object({ ttlSec: Type.Optional(Type.Integer({ minimum: 60, maximum: 30 * 86_400 })) }, { additionalProperties: false }),
        body: NO_BODY,
        response: { 200: Type.Object({ url: Type.String({ description: 'the RTMP URL to publish to, signed' }), expiresAt: Type.String({ format: 'date-time' }) }) },
      },
    },
    async (req) => {
      const actor = actorOf(req);
      const source = await o.registry.getSource(actor, req.params.cameraId);
      const name = source.protocol === 'rtmp-push' ? pushStreamName(source.url) : null;
      if (!name) throw reasoned('GW_ERR_CONFLICT', 'notPush', { camera: source.id }, `camera "${source.id}" is pulled, not pushed (its protocol is ${source.protocol})`);
      if (!o.ingest) throw reasoned('GW_ERR_CONFLICT', 'ingestOff', {}, 'the RTMP ingest is off (streams.flv.rtmpEnabled)');
      const ttlSec = req.query.ttlSec ?? 86_400;
      const { url, expiresAt } = o.ingest.publishUrl(req.hostname.replace(/:\d+$/, ''), name, ttlSec);
      await o.audit({
        at: Date.now(),
        actor: actor.username,
        actorIp: actor.ip,
        action: 'source.publish-url',
        target: source.id,
        outcome: 'ok',
        detail: { ttlSec },
        scopePath: source.deptPath,
      });
      return { url, expiresAt: new Date(expiresAt).toISOString() };
    },
  );

  const inScope = (actor: Principal) => {
    const ranges = o.registry.departments.rangesFor(actor.scopes);
    return (departmentId: string) => o.registry.departments.within(departmentId, ranges);
  };

  app.get('/api/streams', { onRequest: o.guards.require('streams:admin'), schema: { response: { 200: Type.Object({ items: Type.Array(sessionSummary) }) } } }, async (req) => {
    const allowed = inScope(actorOf(req));
    return { items: o.streams.list((s) => allowed(s.source.departmentId)) };
  });

  app.delete<{ Params: { sessionId: string } }>(
    '/api/streams/:sessionId',
    {
      onRequest: o.guards.require('streams:admin'),
      schema: { params: Type.Object({ sessionId: Type.String({ pattern: '^[0-9a-f-]{36}$' }) }), response: { 204: NO_CONTENT } },
    },
    async (req, reply) => {
      const actor = actorOf(req);
      const session = o.streams.get(req.params.sessionId);
      if (!session || !inScope(actor)(session.source.departmentId)) throw new GatewayError('GW_ERR_NOT_FOUND', 'stream session not found');
      await o.streams.stop(session.id, `stopped by ${actor.username}`);
      await o.audit({
        at: Date.now(),
        actor: actor.username,
        actorIp: actor.ip,
        action: 'stream.stop',
        target: session.cameraId,
        outcome: 'ok',
        detail: { sessionId: session.id, profile: session.profile },
        scopePath: session.source.deptPath,
      });
      return reply.code(204).send();
    },
  );
}

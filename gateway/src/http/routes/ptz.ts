import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import type { Guards } from '../../auth/plugin.js';
import type { Principal } from '../../auth/users.js';
import { commandOf, PTZ_REQUEST, PTZ_STATE, type PtzRequest } from '../../ptz/command.js';
import type { PtzService } from '../../ptz/service.js';
import { checkedBy, NO_BODY } from './shared.js';

export interface PtzRouteOptions {
  ptz: PtzService;
  guards: Guards;
}

const PARAMS = Type.Object({ cameraId: Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$' }) }, { additionalProperties: false });
const REFUSALS =
  'Refused with GW_ERR_VALIDATION, GW_ERR_UNAUTHENTICATED, GW_ERR_FORBIDDEN (ptz:control; walls:break-lock to take over), GW_ERR_NOT_FOUND (also a camera outside your departments)';

const describedAs = <T extends { schema: object }>(route: T, description: string): T => ({ ...route, schema: { ...route.schema, description } });

/** PTZ of a camera over REST; the control WebSocket's `ptz` message does the same and answers alike. */
export async function ptzRoutes(app: FastifyInstance, o: PtzRouteOptions) {
  app.get<{ Params: { cameraId: string } }>(
    '/api/cameras/:cameraId/ptz',
    {
      onRequest: o.guards.require('ptz:control'),
      schema: { params: PARAMS, response: { 200: PTZ_STATE }, description: `Whether the camera can be steered and who controls it. ${REFUSALS}.` },
    },
    async (req) => o.ptz.state(req.principal as Principal, req.params.cameraId),
  );
  app.post<{ Params: { cameraId: string }; Body: PtzRequest }>(
    '/api/cameras/:cameraId/ptz',
    {
      onRequest: o.guards.require('ptz:control'),
      // Checked as the control message is (no coercion, no unknown fields), so both are judged alike.
      ...describedAs(
        checkedBy({ params: PARAMS, body: PTZ_REQUEST }, { response: { 200: PTZ_STATE } }),
        'Sends a PTZ command: a move runs until a stop. Takes control of the camera for gb28181.ptz.leaseMs after the command. ' +
          `${REFUSALS}, GW_ERR_UNSUPPORTED (reason ptz: not a GB/T 28181 channel), GW_ERR_LOCKED (reason ptz: another user controls it), ` +
          'GW_ERR_RATE_LIMITED (gb28181.ptz.commandsPerSec); fails with GW_ERR_UNAVAILABLE (no GB/T 28181 service) or the device\'s GW_ERR_CAMERA_UNREACHABLE.',
      ),
    },
    async (req) => {
      return o.ptz.command(req.principal as Principal, req.params.cameraId, commandOf(req.body), req.body.takeover ?? false);
    },
  );
  app.delete<{ Params: { cameraId: string } }>(
    '/api/cameras/:cameraId/ptz',
    {
      onRequest: o.guards.require('ptz:control'),
      schema: {
        params: PARAMS,
        body: NO_BODY,
        response: { 200: PTZ_STATE },
        description: `Gives control of the camera back before the lease ends; another user's control stays (the answer says whose). ${REFUSALS}.`,
      },
    },
    async (req) => o.ptz.release(req.principal as Principal, req.params.cameraId),
  );
}

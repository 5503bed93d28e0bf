import { Type, type Static } from '@sinclair/typebox';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Guards } from '../../auth/plugin.js';
import type { Principal } from '../../auth/users.js';
import type { JtDirectory } from '../../jt/directory.js';
import { literals } from '../../lib/schema-check.js';
import { JT_REFUSAL_REASONS } from '../../store/types.js';
import { NO_CONTENT, orNull } from './shared.js';

export interface JtRoutesOptions {
  directory: JtDirectory;
  guards: Guards;
}

const EDITION = literals(['2011', '2013', '2019'] as const);
const SENT = {
  plate: Type.String({ description: 'the plate (or VIN) the terminal sent in its registration' }),
  plateColor: Type.Integer({ description: 'JT/T 697.7 plate colour code: 0 none, 1 blue, 2 yellow, 3 black, 4 white, 9 other' }),
  terminalId: Type.String(),
  manufacturer: Type.String(),
  model: Type.String(),
};
const TERMINAL_VIEW = Type.Object({
  sim: Type.String({ description: 'the phone/SIM number, leading zeros stripped' }),
  vehicleId: Type.String(),
  plate: Type.String({ description: "the vehicle's plate" }),
  departmentId: Type.String(),
  departmentName: Type.String(),
  online: Type.Boolean({ description: 'connected and authenticated now' }),
  since: orNull(Type.String({ format: 'date-time', description: 'online: when it authenticated; offline: when its link was last seen' })),
  edition: EDITION,
  address: orNull(Type.String({ description: 'address:port of its connection' })),
  terminalId: SENT.terminalId,
  manufacturer: SENT.manufacturer,
  model: SENT.model,
  registeredAt: Type.String({ format: 'date-time' }),
  lastSeenAt: orNull(Type.String({ format: 'date-time' })),
  counters: Type.Object(
    { frames: Type.Integer(), positions: Type.Integer(), alarms: Type.Integer(), errors: Type.Integer() },
    { description: 'of its current connection: frames received, position reports, alarm changes raised or cleared, frames refused' },
  ),
});
const REFUSAL_VIEW = Type.Object({
  sim: Type.String(),
  address: Type.String({ description: 'the address the attempts came from' }),
  reason: literals(JT_REFUSAL_REASONS),
  ...SENT,
  firstAt: Type.String({ format: 'date-time' }),
  lastAt: Type.String({ format: 'date-time' }),
  count: Type.Integer(),
});
const refusedQuery = Type.Object({ limit: Type.Integer({ minimum: 1, maximum: 1000, default: 200 }) }, { additionalProperties: false });
const REFUSED_PARAMS = Type.Object({ sim: Type.String({ minLength: 1, maxLength: 20 }) }, { additionalProperties: false });

/**
 * JT/T 808 administration: the terminals that registered (with their link now) and the refused
 * ones. Scoped by the vehicle's department; refusals of SIMs no vehicle has only for whole-system scopes.
 */
export async function jtRoutes(app: FastifyInstance, o: JtRoutesOptions) {
  const { directory, guards } = o;
  const actor = (req: FastifyRequest) => req.principal as Principal;

  app.get(
    '/api/jt808/terminals',
    {
      onRequest: guards.require('vehicles:read'),
      schema: { response: { 200: Type.Object({ items: Type.Array(TERMINAL_VIEW) }) }, description: 'JT/T 808 terminals of vehicles in your departments, online ones first, with their link now.' },
    },
    async (req) => ({ items: await directory.terminals(actor(req)) }),
  );

  app.delete<{ Params: Static<typeof REFUSED_PARAMS> }>(
    '/api/jt808/terminals/:sim',
    {
      onRequest: guards.require('vehicles:write'),
      schema: {
        params: REFUSED_PARAMS,
        response: { 204: NO_CONTENT },
        description:
          "Resets a terminal's registration: its auth code is forgotten and its link ends; its next registration (0x0100) gets a new code. While a code exists, a registration of a vehicle without a terminal id is refused (0x8100 result 3).",
      },
    },
    async (req, reply) => {
      await directory.forgetTerminal(actor(req), req.params.sim);
      return reply.status(204).send();
    },
  );

  app.get<{ Querystring: Static<typeof refusedQuery> }>(
    '/api/jt808/refused',
    {
      onRequest: guards.require('vehicles:read'),
      schema: {
        querystring: refusedQuery,
        response: { 200: Type.Object({ items: Type.Array(REFUSAL_VIEW) }) },
        description:
          'Refused terminals, most recent first, with what they sent: unknown SIMs (shown when your scope is the whole system) and terminals of your vehicles that failed authentication. Register one as a vehicle (POST /api/vehicles with its SIM) to let it in.',
      },
    },
    async (req) => ({ items: (await directory.refusals(actor(req), req.query.limit)).map((r) => directory.refusalView(r)) }),
  );

  app.delete<{ Params: Static<typeof REFUSED_PARAMS> }>(
    '/api/jt808/refused/:sim',
    { onRequest: guards.require('vehicles:write'), schema: { params: REFUSED_PARAMS, response: { 204: NO_CONTENT }, description: 'Forgets the refused attempts of one SIM that you can see.' } },
    async (req, reply) => {
      await directory.forgetRefusals(actor(req), req.params.sim);
      return reply.status(204).send();
    },
  );
}

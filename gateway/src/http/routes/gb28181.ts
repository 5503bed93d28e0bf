import { Type, type Static } from '@sinclair/typebox';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Guards } from '../../auth/plugin.js';
import type { Principal } from '../../auth/users.js';
import { reasoned } from '../../errors.js';
import { GB_DEVICE_CREATE, GB_DEVICE_PATCH, GB_ID_PATTERN, GB_RULE_CREATE, type GbDirectory } from '../../gb28181/directory.js';
import type { GbLink } from '../../gb28181/link.js';
import { literals } from '../../lib/schema-check.js';
import { GB_REFUSAL_REASONS, GB_STREAM_MODES } from '../../store/types.js';
import { checkedBy, NO_BODY, NO_CONTENT, orNull } from './shared.js';

export interface GbRoutesOptions {
  directory: GbDirectory;
  guards: Guards;
  pageSizeMax: number;
  /** The live SIP side, for the queries that reach a device; without it those answer 503. */
  link?: GbLink | null;
}

const time = (description?: string) => orNull(Type.String({ format: 'date-time', ...(description ? { description } : {}) }));
const DEVICE_VIEW = Type.Object({
  id: Type.String(),
  name: Type.String(),
  departmentId: Type.String(),
  departmentName: Type.String(),
  streamMode: literals(GB_STREAM_MODES),
  origin: literals(['admin', 'rule'] as const),
  ruleId: orNull(Type.String()),
  enabled: Type.Boolean(),
  hasPassword: Type.Boolean({ description: 'whether a digest password is stored (it is never returned)' }),
  online: Type.Boolean(),
  transport: orNull(literals(['udp', 'tcp'] as const)),
  address: orNull(Type.String({ description: 'where its SIP messages come from' })),
  port: orNull(Type.Integer()),
  registeredAt: time(),
  expiresAt: time('when its registration runs out unless refreshed'),
  lastKeepaliveAt: time(),
  manufacturer: orNull(Type.String()),
  model: orNull(Type.String()),
  firmware: orNull(Type.String()),
  channelCount: Type.Integer({ description: 'its channels in the registry after the last catalog' }),
  catalogAt: time(),
  createdAt: Type.String({ format: 'date-time' }),
  updatedAt: Type.String({ format: 'date-time' }),
});
const DEVICE_PAGE = Type.Object({ items: Type.Array(DEVICE_VIEW), nextCursor: orNull(Type.String()) });
const RULE_VIEW = Type.Object({
  id: Type.String(),
  prefix: Type.String(),
  departmentId: Type.String(),
  departmentName: Type.String(),
  streamMode: literals(GB_STREAM_MODES),
  createdAt: Type.String({ format: 'date-time' }),
});
const REFUSAL_VIEW = Type.Object({
  deviceId: Type.String(),
  address: Type.String({ description: 'address:port the attempt came from' }),
  reason: literals(GB_REFUSAL_REASONS),
  firstAt: Type.String({ format: 'date-time' }),
  lastAt: Type.String({ format: 'date-time' }),
  count: Type.Integer(),
});
const ANSWER = Type.Object({ deviceId: Type.String(), answer: Type.Record(Type.String(), Type.String(), { description: "the device's answer, element name → text" }) });

const DEVICE_PARAMS = Type.Object({ id: Type.String({ pattern: GB_ID_PATTERN }) }, { additionalProperties: false });
const RULE_PARAMS = Type.Object({ id: Type.String({ minLength: 1, maxLength: 64 }) }, { additionalProperties: false });
const REFUSED_PARAMS = Type.Object({ deviceId: Type.String({ minLength: 1, maxLength: 64 }) }, { additionalProperties: false });
const listQuery = (max: number) =>
  Type.Object(
    {
      departmentId: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
      cursor: Type.Optional(Type.String({ maxLength: 1000 })),
      limit: Type.Integer({ minimum: 1, maximum: max, default: 100 }),
    },
    { additionalProperties: false },
  );
const refusedQuery = Type.Object({ limit: Type.Integer({ minimum: 1, maximum: 1000, default: 200 }) }, { additionalProperties: false });

const SCOPED = 'A device outside your departments answers GW_ERR_NOT_FOUND like a missing one.';
const LIVE = 'Fails with GW_ERR_UNAVAILABLE when the GB/T 28181 service is not running, GW_ERR_CAMERA_UNREACHABLE when the device is offline or does not answer.';

/**
 * GB/T 28181 administration: the devices allowed to register (and their presence), the admission
 * rules, the refused attempts, and queries to a live device. Department-scoped like sources.
 */
export async function gbRoutes(app: FastifyInstance, o: GbRoutesOptions) {
  const { directory, guards } = o;
  const actor = (req: FastifyRequest) => req.principal as Principal;
  const live = (): GbLink => {
    if (!o.link) throw reasoned('GW_ERR_UNAVAILABLE', 'gb28181Off', {}, 'the GB/T 28181 service is not running (gb28181.enabled)');
    return o.link;
  };

  app.get<{ Querystring: Static<ReturnType<typeof listQuery>> }>(
    '/api/gb28181/devices',
    { onRequest: guards.require('sources:read'), schema: { querystring: listQuery(o.pageSizeMax), response: { 200: DEVICE_PAGE }, description: 'GB/T 28181 devices and platforms in your departments, with their presence.' } },
    async (req) => {
      const page = await directory.list(actor(req), req.query);
      return { items: page.items.map((d) => directory.view(d)), nextCursor: page.nextCursor };
    },
  );

  app.post<{ Body: Static<typeof GB_DEVICE_CREATE> }>(
    '/api/gb28181/devices',
    {
      onRequest: guards.require('sources:write'),
      ...checkedBy({ body: GB_DEVICE_CREATE }, { response: { 201: DEVICE_VIEW } }),
    },
    async (req, reply) => {
      const device = await directory.create(actor(req), req.body);
      return reply.status(201).header('location', `/api/gb28181/devices/${device.id}`).send(directory.view(device));
    },
  );

  app.get<{ Params: Static<typeof DEVICE_PARAMS> }>(
    '/api/gb28181/devices/:id',
    { onRequest: guards.require('sources:read'), schema: { params: DEVICE_PARAMS, response: { 200: DEVICE_VIEW }, description: SCOPED } },
    async (req) => directory.view(await directory.get(actor(req), req.params.id)),
  );

  app.patch<{ Params: Static<typeof DEVICE_PARAMS>; Body: Static<typeof GB_DEVICE_PATCH> }>(
    '/api/gb28181/devices/:id',
    { onRequest: guards.require('sources:write'), ...checkedBy({ params: DEVICE_PARAMS, body: GB_DEVICE_PATCH }, { response: { 200: DEVICE_VIEW } }) },
    async (req) => directory.view(await directory.update(actor(req), req.params.id, req.body)),
  );

  app.delete<{ Params: Static<typeof DEVICE_PARAMS> }>(
    '/api/gb28181/devices/:id',
    {
      onRequest: guards.require('sources:write'),
      schema: { params: DEVICE_PARAMS, response: { 204: NO_CONTENT }, description: `The device can no longer register; its channels stay in the registry. ${SCOPED}` },
    },
    async (req, reply) => {
      await directory.delete(actor(req), req.params.id);
      return reply.status(204).send();
    },
  );

  app.post<{ Params: Static<typeof DEVICE_PARAMS> }>(
    '/api/gb28181/devices/:id/catalog',
    {
      onRequest: guards.require('sources:write'),
      schema: {
        params: DEVICE_PARAMS,
        body: NO_BODY,
        response: { 200: Type.Object({ deviceId: Type.String(), channels: Type.Integer() }) },
        description: `Queries the device's catalog now and answers once it is in the registry. ${SCOPED} ${LIVE}`,
      },
    },
    async (req) => {
      const device = await directory.get(actor(req), req.params.id);
      const { channels } = await live().queryCatalog(device.id);
      return { deviceId: device.id, channels };
    },
  );

  for (const [path, ask, what] of [
    ['info', (l: GbLink, id: string) => l.queryDeviceInfo(id), 'DeviceInfo (name, manufacturer, model, firmware, channels)'],
    ['status', (l: GbLink, id: string) => l.queryDeviceStatus(id), 'DeviceStatus (online, encoding, recording, time, alarms)'],
  ] as const) {
    app.get<{ Params: Static<typeof DEVICE_PARAMS> }>(
      `/api/gb28181/devices/:id/${path}`,
      { onRequest: guards.require('sources:read'), schema: { params: DEVICE_PARAMS, response: { 200: ANSWER }, description: `Asks the device for its ${what}. ${SCOPED} ${LIVE}` } },
      async (req) => {
        const device = await directory.get(actor(req), req.params.id);
        return { deviceId: device.id, answer: await ask(live(), device.id) };
      },
    );
  }

  app.get(
    '/api/gb28181/rules',
    { onRequest: guards.require('sources:read'), schema: { response: { 200: Type.Object({ items: Type.Array(RULE_VIEW) }) }, description: 'Admission rules for departments in your scope.' } },
    async (req) => ({ items: (await directory.listRules(actor(req))).map((r) => directory.ruleView(r)) }),
  );

  app.post<{ Body: Static<typeof GB_RULE_CREATE> }>(
    '/api/gb28181/rules',
    { onRequest: guards.require('sources:write'), ...checkedBy({ body: GB_RULE_CREATE }, { response: { 201: RULE_VIEW } }) },
    async (req, reply) => reply.status(201).send(directory.ruleView(await directory.createRule(actor(req), req.body))),
  );

  app.delete<{ Params: Static<typeof RULE_PARAMS> }>(
    '/api/gb28181/rules/:id',
    { onRequest: guards.require('sources:write'), schema: { params: RULE_PARAMS, response: { 204: NO_CONTENT }, description: 'Devices the rule admitted stay.' } },
    async (req, reply) => {
      await directory.deleteRule(actor(req), req.params.id);
      return reply.status(204).send();
    },
  );

  app.get<{ Querystring: Static<typeof refusedQuery> }>(
    '/api/gb28181/refused',
    {
      onRequest: guards.require('sources:read'),
      schema: {
        querystring: refusedQuery,
        response: { 200: Type.Object({ items: Type.Array(REFUSAL_VIEW) }) },
        description: 'Refused registration attempts, most recent first: of known devices in your departments, and of unknown ids when your scope is the whole system.',
      },
    },
    async (req) => ({ items: (await directory.refusals(actor(req), req.query.limit)).map((r) => directory.refusalView(r)) }),
  );

  app.delete<{ Params: Static<typeof REFUSED_PARAMS> }>(
    '/api/gb28181/refused/:deviceId',
    { onRequest: guards.require('sources:write'), schema: { params: REFUSED_PARAMS, response: { 204: NO_CONTENT }, description: 'Forgets the refused attempts of one id.' } },
    async (req, reply) => {
      await directory.forgetRefusals(actor(req), req.params.deviceId);
      return reply.status(204).send();
    },
  );
}

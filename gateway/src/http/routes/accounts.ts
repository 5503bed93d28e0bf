import { Type, type Static } from '@sinclair/typebox';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Guards } from '../../auth/plugin.js';
import { allows, PERMISSIONS, type Permission } from '../../auth/roles.js';
import type { Principal, UsersService } from '../../auth/users.js';
import type { PathRange, Store } from '../../store/types.js';
import { NO_BODY, NO_CONTENT, orNull, TOKEN } from './shared.js';

const loginBody = Type.Object(
  { username: Type.String({ minLength: 1, maxLength: 64 }), password: Type.String({ minLength: 1, maxLength: 256 }) },
  { additionalProperties: false },
);
const passwordBody = Type.Object(
  { currentPassword: Type.String({ maxLength: 256 }), newPassword: Type.String({ maxLength: 256 }) },
  { additionalProperties: false },
);
const userBody = Type.Object(
  {
    username: Type.Optional(Type.String()),
    displayName: Type.Optional(Type.String()),
    password: Type.Optional(Type.String()),
    roles: Type.Optional(Type.Array(Type.String())),
    scopes: Type.Optional(Type.Array(Type.String())),
    disabled: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);
const auditQuery = Type.Object(
  {
    before: Type.Optional(Type.Integer({ minimum: 1 })),
    limit: Type.Integer({ minimum: 1, maximum: 1000, default: 100 }),
    actor: Type.Optional(Type.String({ maxLength: 64 })),
    action: Type.Optional(Type.String({ maxLength: 64 })),
  },
  { additionalProperties: false },
);
const idParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 64 }) });

const userView = Type.Object({
  id: Type.String(),
  username: Type.String(),
  displayName: Type.String(),
  roles: Type.Array(Type.String()),
  scopes: Type.Array(Type.String(), { description: 'department ids: the subtrees the user sees' }),
  disabled: Type.Boolean(),
  createdAt: Type.String({ format: 'date-time' }),
  updatedAt: Type.String({ format: 'date-time' }),
});
const me = Type.Object({
  id: Type.String(),
  username: Type.String(),
  displayName: Type.String(),
  roles: Type.Array(Type.String()),
  scopes: Type.Array(Type.String()),
  permissions: Type.Array(Type.String(), { description: 'what the pages may offer; the gateway still checks every request' }),
});
const auditPage = Type.Object({
  items: Type.Array(
    Type.Object({
      seq: Type.Integer(),
      at: Type.String({ format: 'date-time' }),
      actor: Type.String(),
      actorIp: Type.String(),
      action: Type.String(),
      target: Type.String(),
      outcome: Type.Union([Type.Literal('ok'), Type.Literal('denied'), Type.Literal('failed')]),
      detail: Type.Record(Type.String(), Type.Unknown()),
      scopePath: orNull(Type.String()),
    }),
  ),
  next: orNull(Type.Integer({ description: 'send as `before` for the next page' })),
});

export interface AccountRoutesOptions {
  users: UsersService;
  store: Store;
  guards: Guards;
  /** Department subtrees of a scope, to show an auditor the events of their departments only. */
  scopeRanges: (scopes: string[]) => PathRange[];
}

/** Login, the signed-in user, user management and the audit log. */
export async function accountRoutes(app: FastifyInstance, { users, store, guards, scopeRanges }: AccountRoutesOptions) {
  const actor = (req: FastifyRequest) => req.principal as Principal;

  app.post<{ Body: Static<typeof loginBody> }>('/api/auth/login', { schema: { body: loginBody, response: { 200: Type.Composite([TOKEN, Type.Object({ user: userView })]) } } }, async (req) =>
    users.login(req.body.username, req.body.password, req.ip),
  );

  app.get('/api/auth/me', { onRequest: guards.signedIn, schema: { response: { 200: me } } }, async (req) => {
    const p = actor(req);
    // The pages show only what the user may do; the gateway still checks every request.
    const permissions = (Object.keys(PERMISSIONS) as Permission[]).filter((perm) => allows(p.roles, perm));
    return { id: p.id, username: p.username, displayName: p.displayName, roles: p.roles, scopes: p.scopes, permissions };
  });

  app.post('/api/auth/renew', { onRequest: guards.signedIn, schema: { body: NO_BODY, response: { 200: TOKEN } } }, async (req) => users.renew(actor(req)));

  app.post('/api/auth/logout', { onRequest: guards.signedIn, schema: { body: NO_BODY, response: { 204: NO_CONTENT } } }, async (req, reply) => {
    await users.logout(actor(req));
    return reply.status(204).send();
  });

  app.post('/api/auth/logout-all', { onRequest: guards.signedIn, schema: { body: NO_BODY, response: { 204: NO_CONTENT } } }, async (req, reply) => {
    await users.logoutEverywhere(actor(req));
    return reply.status(204).send();
  });

  app.post<{ Body: Static<typeof passwordBody> }>(
    '/api/auth/password',
    { onRequest: guards.signedIn, schema: { body: passwordBody, response: { 200: TOKEN } } },
    async (req) => users.changeOwnPassword(actor(req), req.body.currentPassword, req.body.newPassword),
  );

  app.get('/api/users', { onRequest: guards.require('users:read'), schema: { response: { 200: Type.Object({ items: Type.Array(userView) }) } } }, async (req) => ({
    items: (await users.list(actor(req))).map((u) => users.view(u)),
  }));

  app.post<{ Body: Static<typeof userBody> }>(
    '/api/users',
    { onRequest: guards.require('users:write'), schema: { body: userBody, response: { 201: userView } } },
    async (req, reply) => reply.status(201).send(users.view(await users.create(actor(req), req.body))),
  );

  app.patch<{ Params: Static<typeof idParams>; Body: Static<typeof userBody> }>(
    '/api/users/:id',
    { onRequest: guards.require('users:write'), schema: { params: idParams, body: userBody, response: { 200: userView } } },
    async (req) => users.view(await users.update(actor(req), req.params.id, req.body)),
  );

  app.post<{ Params: Static<typeof idParams> }>(
    '/api/users/:id/sessions/revoke',
    { onRequest: guards.require('users:write'), schema: { params: idParams, body: NO_BODY, response: { 204: NO_CONTENT } } },
    async (req, reply) => {
      await users.revokeSessions(actor(req), req.params.id);
      return reply.status(204).send();
    },
  );

  app.get<{ Querystring: Static<typeof auditQuery> }>(
    '/api/audit',
    { onRequest: guards.require('audit:read'), schema: { querystring: auditQuery, response: { 200: auditPage } } },
    async (req) => {
      const ranges = scopeRanges(actor(req).scopes);
      // Events of the whole system (bootstrap, logins of unknown names) are for auditors of the whole tree.
      const includeSystem = ranges.some(([from]) => from.split('/').length === 3);
      const items = await store.audit.list({ ...req.query, ranges, includeSystem });
      const last = items[items.length - 1];
      return {
        items: items.map((e) => ({ ...e, at: new Date(e.at).toISOString() })),
        next: items.length === req.query.limit && last ? last.seq : null,
      };
    },
  );
}

import { Type, type Static } from '@sinclair/typebox';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Guards } from '../../auth/plugin.js';
import type { Principal } from '../../auth/users.js';
import type { Registry } from '../../registry/service.js';
import { LEVELS } from '../../store/types.js';
import { NO_CONTENT, orNull } from './shared.js';

const DEPARTMENT_ID = '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$';
const level = Type.Union(LEVELS.map((l) => Type.Literal(l)));
const name = Type.String({ minLength: 1, maxLength: 100, pattern: '^[^\\u0000-\\u001f]+$' });
const createBody = Type.Object(
  { id: Type.String({ pattern: DEPARTMENT_ID }), name, parentId: Type.String({ minLength: 1 }), level },
  { additionalProperties: false },
);
const updateBody = Type.Object(
  { name: Type.Optional(name), parentId: Type.Optional(Type.String({ minLength: 1 })), level: Type.Optional(level) },
  { additionalProperties: false },
);
const idParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 64 }) });

const counts = Type.Object({ total: Type.Integer(), online: Type.Integer(), offline: Type.Integer() });
const departmentNode = Type.Recursive(
  (node) =>
    Type.Object({
      id: Type.String(),
      name: Type.String(),
      level,
      parentId: orNull(Type.String()),
      ownCounts: counts,
      counts: Type.Object({ ...counts.properties }, { description: 'its sources and those of the departments below' }),
      children: Type.Array(node),
    }),
  { $id: 'DepartmentNode' },
);
const department = Type.Object({
  id: Type.String(),
  name: Type.String(),
  parentId: orNull(Type.String()),
  level,
  path: Type.String({ description: 'the ids from the root, "/root/child/"' }),
  createdAt: Type.Integer({ description: 'ms since the epoch' }),
  updatedAt: Type.Integer({ description: 'ms since the epoch' }),
});

export async function departmentRoutes(app: FastifyInstance, { registry, guards }: { registry: Registry; guards: Guards }) {
  const actor = (req: FastifyRequest) => req.principal as Principal;

  app.get('/api/departments', { onRequest: guards.require('departments:read'), schema: { response: { 200: Type.Object({ items: Type.Array(departmentNode) }) } } }, async (req) => ({
    items: await registry.departmentForest(actor(req)),
  }));

  app.post<{ Body: Static<typeof createBody> }>(
    '/api/departments',
    { onRequest: guards.require('departments:write'), schema: { body: createBody, response: { 201: department } } },
    async (req, reply) => reply.status(201).send(await registry.createDepartment(actor(req), req.body)),
  );

  app.patch<{ Params: Static<typeof idParams>; Body: Static<typeof updateBody> }>(
    '/api/departments/:id',
    { onRequest: guards.require('departments:write'), schema: { params: idParams, body: updateBody, response: { 200: department } } },
    async (req) => registry.updateDepartment(actor(req), req.params.id, req.body),
  );

  app.delete<{ Params: Static<typeof idParams> }>(
    '/api/departments/:id',
    { onRequest: guards.require('departments:write'), schema: { params: idParams, response: { 204: NO_CONTENT } } },
    async (req, reply) => {
      await registry.deleteDepartment(actor(req), req.params.id);
      return reply.status(204).send();
    },
  );
}

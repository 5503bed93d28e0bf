import { Type, type Static } from '@sinclair/typebox';
import { literals } from '../../lib/schema-check.js';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Guards } from '../../auth/plugin.js';
import type { Principal } from '../../auth/users.js';
import { importRows } from '../../registry/import-parse.js';
import type { ImportSlots } from '../../registry/import-slots.js';
import type { ImportMode, Registry, SourceView } from '../../registry/service.js';
import { HEALTH, LEVELS, PROTOCOLS } from '../../store/types.js';
import { SOURCE_INPUT } from '../../registry/source-input.js';
import { acceptImportBodies, checkedBy, ERROR_PARAMS, etag, IMPORT_REJECTED, IMPORT_REPORT, ifMatch, importFormat, NO_CONTENT, orNull, parseBbox, sendExport, STREAMED_IMPORT, streamedImport } from './shared.js';


const listQuery = (pageSizeMax: number) =>
  Type.Object(
    {
      departmentId: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
      level: Type.Optional(literals(LEVELS)),
      protocol: Type.Optional(literals(PROTOCOLS)),
      tag: Type.Optional(Type.String({ minLength: 1, maxLength: 32 })),
      health: Type.Optional(literals(HEALTH)),
      enabled: Type.Optional(Type.Boolean()),
      q: Type.Optional(Type.String({ maxLength: 100 })),
      bbox: Type.Optional(Type.String({ description: 'minLon,minLat,maxLon,maxLat' })),
      cursor: Type.Optional(Type.String({ maxLength: 1000 })),
      limit: Type.Integer({ minimum: 1, maximum: pageSizeMax, default: 100 }),
    },
    { additionalProperties: false },
  );
type ListQuery = Static<ReturnType<typeof listQuery>>;

const exportQuery = Type.Object(
  {
    format: literals(['ndjson', 'csv'] as const),
    departmentId: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
    level: Type.Optional(literals(LEVELS)),
    protocol: Type.Optional(literals(PROTOCOLS)),
    tag: Type.Optional(Type.String({ minLength: 1, maxLength: 32 })),
    health: Type.Optional(literals(HEALTH)),
    q: Type.Optional(Type.String({ maxLength: 100 })),
  },
  { additionalProperties: false },
);

const importQuery = Type.Object(
  { mode: literals(['all-or-nothing', 'keep-valid']) },
  { additionalProperties: false },
);

/** The shape of a source in responses (written with JSON.stringify: see http/openapi.ts). */
export const sourceView = Type.Object({
  id: Type.String(),
  name: Type.String(),
  departmentId: Type.String(),
  departmentName: Type.String(),
  level: Type.String(),
  address: Type.String(),
  url: Type.String(),
  subUrl: orNull(Type.String()),
  protocol: Type.String(),
  username: orNull(Type.String()),
  hasPassword: Type.Boolean(),
  codec: Type.String(),
  lat: orNull(Type.Number()),
  lon: orNull(Type.Number()),
  tags: Type.Array(Type.String()),
  enabled: Type.Boolean(),
  health: Type.Object({
    state: Type.String(),
    error: orNull(Type.String({ description: "the English message of the failure that made the camera offline" })),
    code: orNull(Type.String({ description: 'its GW_ERR_* code (docs/errors.md); null when online or recorded before the gateway kept it' })),
    params: orNull({ ...ERROR_PARAMS, description: '`reason` and the values a client words the failure from in its own language' }),
    since: orNull(Type.String()),
  }),
  version: Type.Integer(),
  createdAt: Type.String(),
  updatedAt: Type.String(),
});
export const sourcePage = Type.Object({ items: Type.Array(sourceView), nextCursor: orNull(Type.String()) });

const idParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 64 }) });
type IdParams = Static<typeof idParams>;
/** Field checks happen in one place (registry/source-input.ts) for REST and import alike; its schema describes them. */
const sourceBody = SOURCE_INPUT;

const CSV_COLUMNS = ['id', 'name', 'departmentId', 'level', 'address', 'url', 'subUrl', 'protocol', 'username', 'codec', 'lat', 'lon', 'tags', 'enabled'] as const;

/** An exported row: a source's fields as an import takes them. */
const exported = Type.Pick(SOURCE_INPUT, CSV_COLUMNS);

export interface SourceRoutesOptions {
  registry: Registry;
  guards: Guards;
  pageSizeMax: number;
  importMaxRows: number;
  importMaxBytes: number;
  importSlots: ImportSlots;
}

export async function sourceRoutes(app: FastifyInstance, opts: SourceRoutesOptions) {
  const { registry, guards } = opts;
  const actor = (req: FastifyRequest) => req.principal as Principal;
  const send = (reply: FastifyReply, view: SourceView, status = 200) => reply.status(status).header('etag', etag(view.version)).send(view);

  acceptImportBodies(app);

  app.get<{ Querystring: ListQuery }>(
    '/api/sources',
    { onRequest: guards.require('sources:read'), schema: { querystring: listQuery(opts.pageSizeMax), response: { 200: sourcePage } } },
    async (req) => {
      const { bbox, ...rest } = req.query;
      const page = await registry.listSources(actor(req), { ...rest, bbox: parseBbox(bbox) });
      return { items: page.items.map((r) => registry.view(r)), nextCursor: page.nextCursor };
    },
  );

  app.post<{ Body: Record<string, unknown> }>(
    '/api/sources',
    { onRequest: guards.require('sources:write'), ...checkedBy({}, { body: sourceBody, response: { 201: sourceView } }) },
    async (req, reply) => {
      const record = await registry.createSource(actor(req), req.body);
      return send(reply.header('location', `/api/sources/${encodeURIComponent(record.id)}`), registry.view(record), 201);
    },
  );

  app.post<{ Querystring: Static<typeof importQuery> }>(
    '/api/sources/import',
    { onRequest: guards.require('sources:write'), schema: { querystring: importQuery, body: STREAMED_IMPORT('source'), response: { 200: IMPORT_REPORT, 422: IMPORT_REJECTED } } },
    async (req, reply) => {
      const format = importFormat(req);
      const report = await streamedImport(req, opts.importSlots, opts.importMaxBytes, (body) =>
        registry.importSources(actor(req), importRows(format, body), req.query.mode as ImportMode, opts.importMaxRows),
      );
      if (!report.applied) {
        return reply.status(422).send({ code: 'GW_ERR_IMPORT_REJECTED', message: `${report.rejected} of ${report.rows} rows rejected; nothing was imported (mode all-or-nothing)`, params: { reason: 'rows', rejected: report.rejected, rows: report.rows }, report });
      }
      return report;
    },
  );

  app.get<{ Querystring: Static<typeof exportQuery> }>(
    '/api/sources/export',
    {
      onRequest: guards.require('sources:export'),
      schema: {
        querystring: exportQuery,
        response: {
          200: {
            description: 'every source in scope that matches, streamed: the URLs without credentials, so the file re-imports as it is',
            content: { 'application/x-ndjson': { schema: exported }, 'text/csv': { schema: Type.String() } },
          },
        },
      },
    },
    async (req, reply) => {
      const { format, ...filters } = req.query;
      const principal = actor(req);
      // Fail before the first byte for a department the user cannot see.
      if (filters.departmentId) await registry.listSources(principal, { ...filters, limit: 1 });
      async function* rows() {
        let count = 0;
        for await (const r of registry.iterateSources(principal, filters)) {
          count++;
          // The exported URL carries no credentials at all, not even masked: it must re-import as it is.
          yield { ...registry.view(r), url: r.url, subUrl: r.subUrl };
        }
        req.log.info({ count, format }, 'sources exported');
      }
      return sendExport(reply, 'sources', format, CSV_COLUMNS, rows());
    },
  );

  app.get<{ Params: IdParams }>(
    '/api/sources/:id',
    { onRequest: guards.require('sources:read'), schema: { params: idParams, response: { 200: sourceView } } },
    async (req, reply) => send(reply, registry.view(await registry.getSource(actor(req), req.params.id))),
  );

  for (const method of ['PUT', 'PATCH'] as const) {
    app.route<{ Params: IdParams; Body: Record<string, unknown> }>({
      method,
      url: '/api/sources/:id',
      onRequest: guards.require('sources:write'),
      ...checkedBy({ params: idParams }, { body: sourceBody, response: { 200: sourceView } }),
      handler: async (req, reply) => {
        const version = ifMatch(req, true)!;
        const record = await registry.updateSource(actor(req), req.params.id, req.body, version, method === 'PATCH');
        return send(reply, registry.view(record));
      },
    });
  }

  app.delete<{ Params: IdParams }>(
    '/api/sources/:id',
    { onRequest: guards.require('sources:write'), schema: { params: idParams, response: { 204: NO_CONTENT } } },
    async (req, reply) => {
      await registry.deleteSource(actor(req), req.params.id, ifMatch(req, false));
      return reply.status(204).send();
    },
  );
}

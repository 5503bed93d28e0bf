import { Readable, Transform } from 'node:stream';
import { Type, type TSchema } from '@sinclair/typebox';
import type { FastifyInstance, FastifyReply, FastifyRequest, FastifySchema, FastifySchemaCompiler } from 'fastify';
import { GatewayError, ValidationError, reasoned } from '../../errors.js';
import { csvCell } from '../../lib/csv.js';
import { orNull, schemaCheck } from '../../lib/schema-check.js';
import type { ImportFormat } from '../../registry/import-parse.js';
import type { ImportSlots } from '../../registry/import-slots.js';

/** Helpers the REST routes share: request checks, bounding boxes, optimistic concurrency, and streamed import bodies. */

type RequestPart = 'body' | 'params' | 'querystring';

/**
 * Route options that check a request's parts with the compiled TypeBox checks the control protocol
 * and the vehicle feed use on the WebSocket (schemaCheck: no type coercion, no unknown fields), so a
 * REST call and the same message are judged alike. A refusal is a 400 GW_ERR_VALIDATION naming each
 * field: a body's fields as they are, the others under their part (`params.wallId`). No body is {}.
 * `described` parts are only documented: the service checks them itself (a source's fields).
 */
export function checkedBy(parts: Partial<Record<RequestPart, TSchema>>, described: Partial<Record<RequestPart, TSchema>> & { response?: Record<string, unknown> } = {}) {
  const checks = new Map(Object.entries(parts).map(([part, schema]) => [part, schemaCheck(schema)]));
  // The checks are compiled here from the TypeBox schemas themselves; fastify is given the schemas to describe the route.
  const validatorCompiler: FastifySchemaCompiler<FastifySchema> = ({ httpPart }) => {
    const check = checks.get(httpPart ?? '');
    if (!check) {
      if (httpPart && httpPart in described) return (data: unknown) => ({ value: httpPart === 'body' && (data === null || data === undefined) ? {} : data });
      throw new Error(`no check for the request's ${httpPart}`);
    }
    return (data: unknown) => {
      const value = httpPart === 'body' && (data === null || data === undefined) ? {} : data;
      const issues = check.issues(value, httpPart === 'body' ? '' : httpPart);
      // A body that is not an object at all is named as the error handler names it.
      const named = issues.map((i) => (httpPart === 'body' && i.field === 'payload' ? { ...i, field: '(body)' } : i));
      return named.length ? { error: new ValidationError(named) } : { value };
    };
  };
  return { schema: { ...described, ...parts } as FastifySchema, validatorCompiler };
}

/** "minLon,minLat,maxLon,maxLat" from a query string. */
export function parseBbox(text: string | undefined): { minLat: number; minLon: number; maxLat: number; maxLon: number } | undefined {
  if (text === undefined) return undefined;
  const n = text.split(',').map(Number);
  const [minLon, minLat, maxLon, maxLat] = n;
  if (n.length !== 4 || n.some((x) => !Number.isFinite(x)) || minLon! > maxLon! || minLat! > maxLat!) {
    throw new ValidationError([{ field: 'querystring.bbox', message: 'expected minLon,minLat,maxLon,maxLat with min <= max' }]);
  }
  return { minLat: minLat!, minLon: minLon!, maxLat: maxLat!, maxLon: maxLon! };
}

/** The version a client read, from If-Match ("3", W/"3" or 3). */
export function ifMatch(req: FastifyRequest, required: boolean): number | undefined {
  const h = req.headers['if-match'];
  if (h === undefined) {
    if (!required) return undefined;
    throw new GatewayError('GW_ERR_PRECONDITION_REQUIRED', 'If-Match: send the ETag (version) you read, so a concurrent change is not overwritten');
  }
  const m = /^(?:W\/)?"?(\d+)"?$/.exec(String(h).trim());
  if (!m) throw new ValidationError([{ field: 'If-Match', message: 'expected the ETag you read, e.g. "3"' }]);
  return Number(m[1]);
}

export const etag = (version: number) => `"${version}"`;

/** Counts body bytes and stops a stream past the import limit, since a streamed body bypasses fastify's bodyLimit. */
export function limitBytes(max: number) {
  let seen = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, done) {
      seen += chunk.length;
      if (seen > max) done(reasoned('GW_ERR_PAYLOAD_TOO_LARGE', 'importBytes', { limit: max }, `import body over ${max} bytes (registry.importMaxBytes)`));
      else done(null, chunk);
    },
  });
}

/** The import format from the Content-Type, or a 415 naming the accepted ones. */
export function importFormat(req: FastifyRequest): ImportFormat {
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (type === 'text/csv') return 'csv';
  if (type.endsWith('ndjson')) return 'ndjson';
  throw new GatewayError('GW_ERR_UNSUPPORTED_MEDIA_TYPE', 'Content-Type: send application/x-ndjson or text/csv');
}

/** Import bodies are streamed row by row, never buffered whole. */
export function acceptImportBodies(app: FastifyInstance) {
  app.addContentTypeParser(['application/x-ndjson', 'application/ndjson', 'text/csv'], (_req, payload, done) => done(null, payload));
}

/**
 * Runs an import on its streamed body, within the import slots and the byte limit. An import refused
 * part-way (too many at once, a body or row too large) is answered at once and nothing more of its
 * body is read: the connection is not closed under the client, which would then lose the answer, and
 * it ends at the server's keep-alive timeout if the client goes on sending.
 */
export async function streamedImport<T>(req: FastifyRequest, slots: ImportSlots, maxBytes: number, work: (body: Readable) => Promise<T>): Promise<T> {
  return slots.run(() => {
    const raw = req.body as Readable;
    const body = raw.pipe(limitBytes(maxBytes));
    raw.on('error', (err) => body.destroy(err));
    return work(body);
  });
}

export type ExportFormat = 'csv' | 'ndjson';

/** The response of an export route, for its schema: the file, in the format asked for. */
export const exportResponse = {
  200: {
    description: 'The file, streamed row by row: CSV with a header line, or one JSON object a line with the same fields.',
    content: { 'text/csv': { schema: { type: 'string' } }, 'application/x-ndjson': { schema: { type: 'string' } } },
  },
};

/**
 * Streams an export as a download, written as the rows are read: CSV (a header, then every cell
 * through csvCell, so text a spreadsheet would run as a formula is neutralised) or NDJSON, both with
 * the same fields.
 */
export function sendExport(reply: FastifyReply, name: string, format: ExportFormat, columns: readonly string[], rows: AsyncIterable<Record<string, unknown>>) {
  async function* lines() {
    if (format === 'csv') yield columns.join(',') + '\n';
    for await (const row of rows) {
      yield format === 'csv' ? columns.map((c) => csvCell(row[c])).join(',') + '\n' : JSON.stringify(Object.fromEntries(columns.map((c) => [c, row[c]]))) + '\n';
    }
  }
  reply.header('content-type', format === 'csv' ? 'text/csv; charset=utf-8' : 'application/x-ndjson').header('content-disposition', `attachment; filename="${name}.${format}"`);
  return reply.send(Readable.from(lines()));
}

// ---- what the routes answer, for the API's document (http/openapi.ts) ----

export { ERROR_PARAMS } from '../../errors.js';
/** An answer without a body (204, or a 200 with none). */
export const NO_CONTENT = Type.Null({ description: 'No content' });
/**
 * The body of an action that takes none. Keyed by media type, so a request without a body is not
 * checked at all; one sent as JSON must be an empty object.
 */
export const NO_BODY = { content: { 'application/json': { schema: Type.Object({}, { additionalProperties: false, description: 'no body, or an empty object' }) } } };
/** A body streamed to the handler (an import): fastify does not read it, the import checks each row. */
export const STREAMED_IMPORT = (what: string) => ({
  content: {
    'application/x-ndjson': { schema: { description: `one ${what} per line, as JSON` } },
    'text/csv': { schema: { description: `a header line of field names, then one ${what} per line` } },
  },
});
/** A signed token and when it ends. */
export const TOKEN = Type.Object({ token: Type.String(), expiresAt: Type.String({ format: 'date-time' }) });
/** Rows of an import refused, each by line and field. */
export const IMPORT_REPORT = Type.Object({
  mode: Type.Union([Type.Literal('all-or-nothing'), Type.Literal('keep-valid')]),
  applied: Type.Boolean(),
  rows: Type.Integer(),
  created: Type.Integer(),
  updated: Type.Integer(),
  unchanged: Type.Optional(Type.Integer()),
  rejected: Type.Integer(),
  errors: Type.Array(Type.Object({ line: Type.Integer(), id: Type.Optional(Type.String()), field: Type.String(), message: Type.String() })),
});
/** An all-or-nothing import refused: nothing was written; the report lists every row. */
export const IMPORT_REJECTED = Type.Object({ code: Type.Literal('GW_ERR_IMPORT_REJECTED'), message: Type.String(), report: IMPORT_REPORT });
export { orNull };

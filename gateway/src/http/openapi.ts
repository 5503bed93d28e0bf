import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fastifySwagger from '@fastify/swagger';
import fastifySwaggerUi from '@fastify/swagger-ui';
import { FormatRegistry, Kind, Type, type TSchema } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import type { FastifyInstance, FastifySchema, RouteOptions } from 'fastify';
import { guardOf } from '../auth/plugin.js';
import { errorCodes, type ErrorCode } from '../errors.js';
import { ERROR_PARAMS } from './routes/shared.js';

/**
 * The REST API described for integrators: an OpenAPI 3.1 document generated from the routes' own
 * schemas (GET /docs/json), browsable at /docs, with the control WebSocket's message schemas linked.
 */

export const CONTROL_SCHEMA_URL = '/api/control/schema.json';

const CODES = Object.keys(errorCodes) as ErrorCode[];

const errorBody = (code: TSchema) =>
  Type.Object(
    {
      code,
      message: Type.String({ description: 'in English, for API users and logs' }),
      params: Type.Optional({ ...ERROR_PARAMS, description: '`reason` and the values a client words the error from in its own language (docs/errors.md, Parameters)' }),
      issues: Type.Optional(
        Type.Array(
          Type.Object({
            field: Type.String(),
            message: Type.String(),
            rule: Type.Optional(Type.String({ description: 'the JSON-schema keyword or check that failed (docs/errors.md, Refused fields)' })),
            params: Type.Optional(ERROR_PARAMS),
          }),
          { description: 'GW_ERR_VALIDATION: each field at fault' },
        ),
      ),
    },
    { description: 'A GW_ERR_* error; some add context (a version conflict carries `current`, a rejected import `report`, a held lock `lock`).' },
  );
/** Every error body: the shape docs/errors.md describes, its code one of gateway/src/errors.ts. */
export const ERROR_SCHEMA = { ...errorBody(Type.Unsafe<ErrorCode>({ type: 'string', enum: CODES })), $id: 'Error' };
/** The same, in the form the response check compiles. */
const ERROR_CHECK = errorBody(Type.Union(CODES.map((c) => Type.Literal(c))));
const errorRef = Type.Unsafe({ $ref: 'Error#' });


/**
 * The pages of /docs under their own policy: swagger-ui's bundle, stylesheet and the document all
 * come from the gateway; no inline script, no other origin. The player's pages keep theirs.
 */
export const DOCS_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  // swagger-ui's one inline <style> (its bundle adds it), allowed by its hash alone; the e2e test catches a new one.
  "style-src 'self' 'sha256-RL3ie0nH+Lzz2YNqQN83mnU0J1ot4QL7b99vMdIX99w='",
  "img-src 'self' data:",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

const errorTable = () =>
  ['| code | HTTP |', '| --- | --- |', ...CODES.map((c) => `| \`${c}\` | ${errorCodes[c]} |`)].join('\n');

const DESCRIPTION = `A video-wall streaming gateway: cameras and their departments, viewings (HLS, HTTP/WS-FLV, WebRTC WHEP), walls, vehicles and alarms.

Sign in with \`POST /api/auth/login\` and send the token as \`Authorization: Bearer <token>\`; each operation names the permission it needs (\`x-permission\`).
Stream URLs carry their own signed token (from \`POST /api/streams/{cameraId}/view\`).

The control WebSocket (\`/api/control\`) carries the same wall changes as the \`/api/walls\` routes, and vehicle positions and alarms:
its messages are described, one JSON Schema per type, at [${CONTROL_SCHEMA_URL}](${CONTROL_SCHEMA_URL}).

Every error has the body \`Error\` (\`{code, message, params}\`); docs/errors.md says when each code is given:

${errorTable()}`;

// The formats the response schemas name, for the response check (TypeBox knows none by itself).
if (!FormatRegistry.Has('date-time')) FormatRegistry.Set('date-time', (v) => /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/.test(v));
if (!FormatRegistry.Has('uuid')) FormatRegistry.Set('uuid', (v) => /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(v));

export interface OpenApiOptions {
  /** Every response checked against its route's schema before it is sent (tests): a mismatch is a 500. */
  checkResponses?: boolean;
}

/**
 * Registers the document and /docs. Called before any route: its onRoute hook gives each route the
 * shared error responses and, from its guard, the bearer scheme and the permission it needs.
 */
export async function registerOpenApi(app: FastifyInstance, o: OpenApiOptions) {
  app.addSchema(ERROR_SCHEMA);
  // Response schemas describe; JSON.stringify writes. fastify's compiled serializer would drop any
  // field a schema does not list and escapes Chinese text character by character (measured slower).
  app.setSerializerCompiler(({ schema, method, url, httpStatus }) => {
    const checked = (schema as { $ref?: string }).$ref === 'Error#' ? ERROR_CHECK : (schema as TSchema);
    if (!o.checkResponses || !checked[Kind]) return (data) => JSON.stringify(data);
    const check = TypeCompiler.Compile(checked);
    return (data) => {
      if (!check.Check(data)) {
        const first = check.Errors(data).First();
        throw new Error(`${method} ${url} ${httpStatus}: the response does not match its schema at ${first?.path || '/'}: ${first?.message}`);
      }
      return JSON.stringify(data);
    };
  });
  app.addHook('onRoute', (route) => describeRoute(route));
  await app.register(fastifySwagger, {
    openapi: {
      openapi: '3.1.0',
      info: { title: 'wallgate', version: packageVersion(), description: DESCRIPTION },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } } },
      'x-error-codes': errorCodes,
    } as never,
    // Shared schemas keep their $id as their name under components.schemas.
    refResolver: { buildLocalReference: (json, _base, _fragment, i) => String(json.$id ?? `def-${i}`) },
  });
  await app.register(fastifySwaggerUi, {
    routePrefix: '/docs',
    staticCSP: DOCS_CSP,
    // No badge from validator.swagger.io: the page reaches nothing but the gateway.
    uiConfig: { validatorUrl: null, deepLinking: true },
  });
}

/** The version in package.json, found from here whether the gateway runs from gateway/src or dist. */
function packageVersion(): string {
  for (let dir = dirname(fileURLToPath(import.meta.url)); dir !== dirname(dir); dir = dirname(dir)) {
    const file = join(dir, 'package.json');
    if (existsSync(file)) return String((JSON.parse(readFileSync(file, 'utf8')) as { version?: string }).version ?? '0.0.0');
  }
  return '0.0.0';
}

/**
 * The error responses every route shares, and who may call it. A copy: routes share schema objects
 * (checkedBy's parts, a params schema), which must keep only their own parts.
 */
function describeRoute(route: RouteOptions) {
  const given = (route.schema ?? {}) as FastifySchema & Record<string, unknown>;
  if (given.hide) return;
  const schema: Record<string, unknown> = { ...given };
  const permission = [route.onRequest ?? []]
    .flat()
    .map((h) => guardOf(h))
    .find((g) => g !== undefined);
  if (permission !== undefined) {
    schema.security ??= [{ bearer: [] }];
    if (permission) schema['x-permission'] = permission;
  }
  schema.response = { '4xx': errorRef, '5xx': errorRef, ...(given.response as object | undefined) };
  route.schema = schema;
}

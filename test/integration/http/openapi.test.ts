import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Validator } from '@seriousme/openapi-schema-validator';
import t from 'tap';
import { messageSchemas } from '../../../gateway/src/control/protocol.js';
import { errorCodes } from '../../../gateway/src/errors.js';
import { PtzControl } from '../../../gateway/src/ptz/control.js';
import { VehicleHub } from '../../../gateway/src/vehicles/hub.js';
import { startControlGateway } from '../../helpers/control.js';
import { camera, smallTree, startGateway, tempDir } from '../../helpers/gateway.js';

/** Routes left out of the document, each for a reason: pages and their assets are not API. */
const PLAYER = 'the player: its pages and bundles (@fastify/static)';
const DOCS = 'the documentation itself: swagger-ui, its assets and this document';
const HIDDEN = new Map([
  ['GET /', PLAYER],
  ['GET /*', PLAYER],
  ['GET /docs', DOCS],
  ['GET /docs/static/index.html', DOCS],
  ['GET /docs/static/swagger-initializer.js', DOCS],
  ['GET /docs/json', DOCS],
  ['GET /docs/yaml', DOCS],
  ['GET /docs/static/*', DOCS],
]);

const openapiPath = (url: string) => url.replace(/:(\w+)/g, '{$1}');
const hasSuccess = (response: Record<string, unknown> | undefined) => Object.keys(response ?? {}).some((s) => /^2/.test(s));

t.test('the OpenAPI document validates and describes every route with its request and response', async (t) => {
  // A built player, so its static routes are registered (and hidden) as in production.
  const player = tempDir(t);
  writeFileSync(join(player, 'index.html'), '<!doctype html><title>wallgate</title>');
  const gw = await startGateway(t, { player: { enabled: true, dir: player } });
  const res = await gw.api('GET', '/docs/json');
  t.equal(res.status, 200, res.body.slice(0, 300));
  const doc = res.json;
  const validator = new Validator();
  const result = await validator.validate(doc);
  t.same(result.errors, undefined, 'valid OpenAPI 3.1');
  t.ok(result.valid);

  const routes = gw.routes.filter((r) => r.method !== 'HEAD');
  t.ok(routes.length > 50, `${routes.length} routes walked`);
  for (const r of routes) {
    const name = `${r.method} ${r.url}`;
    const schema = (r.schema ?? {}) as Record<string, any>;
    if (schema.hide) {
      t.ok(HIDDEN.has(name), `${name} is hidden only for a reason`);
      continue;
    }
    const op = doc.paths?.[openapiPath(r.url)]?.[r.method.toLowerCase()];
    if (!t.ok(op, `${name} is in the document`)) continue;
    if (r.url.includes(':')) t.ok(schema.params, `${name}: its path parameters have a schema`);
    if (['POST', 'PUT', 'PATCH'].includes(r.method)) t.ok(schema.body, `${name}: its body has a schema (an empty object when it takes none)`);
    t.ok(hasSuccess(schema.response), `${name}: its answer has a schema`);
    t.ok(hasSuccess(op.responses), `${name}: its answer is in the document`);
    t.match(op.responses['4XX'], { content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } }, `${name}: its errors are the Error schema`);
  }

  // Every answer is checked against its schema in test gateways (checkResponses): a GET of each list
  // route, over data of each kind, proves those schemas true, so a page reading them finds what they say.
  await smallTree(gw);
  t.equal((await gw.api('POST', '/api/sources', { token: gw.adminToken, body: camera('c1', 'townA', { lat: 31.2, lon: 121.4, tags: ['gate'] }) })).status, 201);
  const lists = routes.filter((r) => r.method === 'GET' && r.url.startsWith('/api/') && !r.url.includes(':') && !r.url.endsWith('/export'));
  t.ok(lists.length >= 10, `${lists.length} list routes read`);
  // The audit log is the auditor's, not the admin's.
  const auditor = await gw.userToken('auditor1', ['auditor'], ['root']);
  for (const r of lists) {
    const answer = await gw.api('GET', r.url, { token: r.url === '/api/audit' ? auditor : gw.adminToken });
    t.equal(answer.status, 200, `GET ${r.url} answers as its schema says${answer.status === 200 ? '' : `: ${answer.body.slice(0, 200)}`}`);
  }

  t.same(doc.components.schemas.Error.properties.code.enum, Object.keys(errorCodes), 'the Error schema lists every GW_ERR_* code');
  t.same(doc['x-error-codes'], errorCodes, 'with its HTTP status');
  t.same(doc.components.securitySchemes.bearer, { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' });
  t.same(doc.paths['/api/sources'].get.security, [{ bearer: [] }], 'a guarded route names the bearer scheme');
  t.equal(doc.paths['/api/sources'].get['x-permission'], 'sources:read', 'and the permission it needs');
  t.notOk(doc.paths['/api/auth/login'].post.security, 'login needs no token');
});

t.test('the control protocol schema lists every message type the WebSocket accepts, with the payload it checks', async (t) => {
  const gw = await startControlGateway(t);
  const res = await gw.api('GET', '/api/control/schema.json');
  t.equal(res.status, 200, res.body.slice(0, 300));
  const doc = res.json;
  const documented = Object.keys(doc.$defs).sort();
  const hub = new VehicleHub(gw.vehicles, gw.config.vehicles.subscriptions);
  t.teardown(() => hub.close());
  const accepted = [...Object.keys(messageSchemas), ...Object.keys(hub.describe()), ...Object.keys(new PtzControl(gw.ptz).describe())].sort();
  t.same(documented, accepted, 'the walls\', the vehicle hub\'s and PTZ\'s message types, all of them');
  t.same(doc.oneOf.map((r: { $ref: string }) => r.$ref.replace('#/$defs/', '')).sort(), accepted, 'each one a branch of the schema');
  t.match(doc.$defs['wall.create'].properties.payload, { type: 'object', additionalProperties: false, required: ['name', 'departmentId', 'screens'] }, 'a payload is the schema the gateway checks');
  t.match(doc.$defs['positions.report'].properties.payload.properties.positions.items.anyOf[0].required, ['lat', 'lon', 'speed', 'heading', 'at'], 'a feed item\'s fields are described');
  t.ok(doc.description.length > 0);

  // The server accepts each documented type and checks its payload against the documented schema: an unknown field is refused by name.
  const client = await gw.client(gw.adminToken);
  for (const type of documented) {
    const reply = await client.request(type, { notAField: 1 });
    t.match(reply, { type: 'error', code: 'GW_ERR_VALIDATION', message: /notAField/ }, `${type}: accepted as a type, its payload checked`);
  }
  const unknown = await client.request('no.such.type', {});
  t.match(unknown, { type: 'error', code: 'GW_ERR_BAD_MESSAGE' }, 'a type not in the schema is not accepted');

  const docs = await gw.api('GET', '/docs/json');
  t.match(docs.json.info.description, '(/api/control/schema.json)', 'the API document links to it');
});

import { join, resolve } from 'node:path';
import Fastify, { LogController, type FastifyInstance } from 'fastify';
import type { DestinationStream } from 'pino';
import { guards } from './auth/plugin.js';
import { TokenService } from './auth/tokens.js';
import { UsersService } from './auth/users.js';
import type { Config } from './config/schema.js';
import { installErrorHandler } from './http/errors.js';
import { accountRoutes } from './http/routes/accounts.js';
import { departmentRoutes } from './http/routes/departments.js';
import { sourceRoutes } from './http/routes/sources.js';
import { NetworkPolicy } from './lib/cidr.js';
import { loadSecrets } from './lib/secrets.js';
import { seedDemoCity } from './registry/city.js';
import { CredentialSealer } from './registry/credentials.js';
import { Registry } from './registry/service.js';
import { dnsResolver, type Resolver } from './registry/url-policy.js';
import { SqliteStore } from './store/sqlite/index.js';
import type { Store } from './store/types.js';

export const ROOT_DEPARTMENT = 'root';

export interface BuildOptions {
  /** Where logs go (tests capture them); stdout by default. */
  logStream?: DestinationStream;
  /** Host name resolution for the network policy (tests inject a fake). */
  resolver?: Resolver;
}

export interface Gateway {
  http: FastifyInstance;
  store: Store;
  registry: Registry;
  users: UsersService;
  /** Set on a first start: the admin account and its one-time password. */
  bootstrapAdmin: { username: string; password: string } | null;
  /** Every route registered, for the test that walks them all. */
  routes: { method: string; url: string }[];
  close(): Promise<void>;
}

/** The composition root: builds and wires every module. It never listens; main.ts does. */
export async function buildGateway(config: Config, opts: BuildOptions = {}): Promise<Gateway> {
  const dataDir = resolve(config.dataDir);
  const { secrets } = loadSecrets(config.secrets.file || join(dataDir, 'secrets.json'), config.secrets);
  const store = SqliteStore.open(join(dataDir, 'wallgate.db'));

  const registry = new Registry(
    store,
    new CredentialSealer(secrets.credentialKey),
    new NetworkPolicy(config.registry.networks),
    opts.resolver ?? dnsResolver(config.registry.resolveTimeoutMs),
  );
  if ((await store.departments.all()).length === 0) {
    await store.departments.create({ id: ROOT_DEPARTMENT, name: 'All departments', parentId: null, level: 'national', path: `/${ROOT_DEPARTMENT}/` }, Date.now());
  }
  await registry.init();

  const users = new UsersService(
    store,
    new TokenService(secrets.tokenKey, config.auth.tokenTtlSec),
    {
      exists: (id) => !!registry.departments.get(id),
      within: (id, scopes) => registry.departments.within(id, registry.departments.rangesFor(scopes)),
      commonPath: (ids) => registry.departments.commonPath(ids),
    },
    config.auth,
  );
  const bootstrapAdmin = await users.bootstrap(config.auth.bootstrapAdmin, ROOT_DEPARTMENT);
  if (config.demo.enabled) await seedDemoCity(store, registry, config.demo.sources);

  const http = Fastify({
    logger: {
      level: config.log.level,
      redact: { paths: ['req.headers.authorization', 'req.headers.cookie', 'password', '*.password'], censor: '[redacted]' },
      ...(opts.logStream ? { stream: opts.logStream } : {}),
    },
    trustProxy: config.server.trustProxy,
    bodyLimit: config.server.bodyLimitBytes,
    forceCloseConnections: 'idle',
    // One line per request, written below; fastify's default is two, which costs as much as a registry page here.
    logController: new LogController({ disableRequestLogging: true }),
    return503OnClosing: true,
    ajv: { customOptions: { coerceTypes: true, removeAdditional: false, useDefaults: true, allErrors: true } },
  });
  const routes: Gateway['routes'] = [];
  http.addHook('onRoute', (r) => {
    for (const method of [r.method].flat()) routes.push({ method, url: r.url });
  });
  installErrorHandler(http);
  // Reads that succeed are logged at debug: a wall of operators browsing would otherwise drown the log.
  http.addHook('onResponse', async (req, reply) => {
    const level = req.method === 'GET' && reply.statusCode < 400 ? 'debug' : 'info';
    req.log[level](
      { method: req.method, url: req.url, status: reply.statusCode, ms: Math.round(reply.elapsedTime * 10) / 10, user: req.principal?.username },
      'request',
    );
  });
  // Responses finished during shutdown close their connection, so a keep-alive client does not hold the exit up.
  let shuttingDown = false;
  http.addHook('preClose', async () => {
    shuttingDown = true;
  });
  http.addHook('onSend', async (_req, reply) => {
    if (shuttingDown) reply.header('connection', 'close');
  });
  http.decorateRequest('principal', null);
  const g = guards(users);

  http.get('/healthz', async () => ({ status: 'ok' }));
  http.get('/readyz', async () => ({ status: 'ready', schemaVersion: await store.schemaVersion() }));
  await http.register(accountRoutes, { users, store, guards: g, scopeRanges: (scopes) => registry.departments.rangesFor(scopes) });
  await http.register(departmentRoutes, { registry, guards: g });
  await http.register(sourceRoutes, {
    registry,
    guards: g,
    pageSizeMax: config.registry.pageSizeMax,
    importMaxRows: config.registry.importMaxRows,
    importMaxBytes: config.registry.importMaxBytes,
  });

  let closing: Promise<void> | null = null;
  return {
    http,
    store,
    registry,
    users,
    bootstrapAdmin,
    routes,
    close: () =>
      (closing ??= (async () => {
        await http.close();
        await store.close();
      })()),
  };
}

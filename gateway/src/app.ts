import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { chmodSync, existsSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import Fastify, { LogController, type FastifyInstance, type FastifySchema } from 'fastify';
import { Type } from '@sinclair/typebox';
import type { DestinationStream } from 'pino';
import { guards } from './auth/plugin.js';
import { ClusterBus } from './cluster/bus.js';
import { ClusterLeader } from './cluster/leader.js';
import { ClusterNode } from './cluster/node.js';
import { WsProxy } from './cluster/proxy.js';
import { sharePrewarms } from './cluster/prewarm.js';
import { ViewerRouter } from './cluster/routing.js';
import { ClusterSnapshotter } from './cluster/snapshots.js';
import { installViewerRouting } from './cluster/viewers.js';
import { CatalogImporter } from './gb28181/catalog.js';
import { GbDirectory } from './gb28181/directory.js';
import { StreamTokens } from './auth/stream-tokens.js';
import { TokenService } from './auth/tokens.js';
import { UsersService } from './auth/users.js';
import type { Config } from './config/schema.js';
import { ConfigError, GatewayError, reasoned } from './errors.js';
import { seedDemoWall } from './control/demo.js';
import { enginePrewarmer, engineStatus, type EnginePrewarmer } from './control/engine.js';
import { serverMessageSchemas } from './control/messages.js';
import { ControlServer } from './control/server.js';
import { WallService } from './control/walls.js';
import { controlSchemaRoute, wallMessages } from './http/control-schema.js';
import { clusterCors, originOf } from './http/cors.js';
import { installErrorHandler } from './http/errors.js';
import { metricsRoutes } from './http/metrics.js';
import { registerOpenApi } from './http/openapi.js';
import { playerRoutes } from './http/player.js';
import { gbRoutes } from './http/routes/gb28181.js';
import { jtRoutes } from './http/routes/jt.js';
import { autoRegistrar } from './jt/auto-register.js';
import { JtDirectory } from './jt/directory.js';
import { JtFeed } from './jt/feed.js';
import { JtService } from './jt/service.js';
import { ptzRoutes } from './http/routes/ptz.js';
import { accountRoutes } from './http/routes/accounts.js';
import { clusterRoutes } from './http/routes/cluster.js';
import { departmentRoutes } from './http/routes/departments.js';
import { snapshotRoutes } from './http/routes/snapshots.js';
import { sourceRoutes } from './http/routes/sources.js';
import { streamRoutes } from './http/routes/streams.js';
import { vehicleRoutes } from './http/routes/vehicles.js';
import { vehicleServerMessageSchemas } from './vehicles/messages.js';
import { wallRoutes } from './http/routes/walls.js';
import { NetworkPolicy } from './lib/cidr.js';
import { Lifecycle } from './lib/lifecycle.js';
import { share } from './lib/peers.js';
import { loadSecrets } from './lib/secrets.js';
import { guardSocket } from './lib/sockets.js';
import { FlvOutput } from './outputs/flv/index.js';
import { routeNmsLogs } from './outputs/flv/nms.js';
import { HlsOutput } from './outputs/hls/index.js';
import { WebRtcOutput } from './outputs/webrtc/index.js';
import { PtzControl } from './ptz/control.js';
import { PtzService, type PtzSender } from './ptz/service.js';
import { seedDemoCity, seedLiveCameras } from './registry/city.js';
import { SnapshotService } from './snapshots/service.js';
import { CredentialSealer } from './registry/credentials.js';
import { ImportSlots } from './registry/import-slots.js';
import { Registry } from './registry/service.js';
import { dnsResolver, parseGbUrl, parseJtUrl, pushStreamName, type Resolver } from './registry/url-policy.js';
import type { Snapshotter } from './snapshots/types.js';
import { openStore } from './store/open.js';
import { StoreConflict, type SourceRecord, type Store } from './store/types.js';
import { StreamManager } from './streams/manager.js';
import { RtmpIngest } from './streams/sources/rtmp-ingest.js';
import type { SourceResolver } from './streams/types.js';
import { RtpPortPool } from './gb28181/media/receiver.js';
import { GbService } from './gb28181/service.js';
import { JtBudget } from './jt/budget.js';
import { JtChannels, JtLinkSlot } from './jt/channel-link.js';
import { JtMediaServer } from './jt/media/server.js';
import { seedDemoFleet } from './vehicles/demo.js';
import { VehicleHub } from './vehicles/hub.js';
import { VehicleService } from './vehicles/service.js';

export const ROOT_DEPARTMENT = 'root';

const resolvedFields = (r: SourceRecord) => ({
  cameraId: r.id,
  name: r.name,
  departmentId: r.departmentId,
  deptPath: r.deptPath,
  protocol: r.protocol,
  codec: r.codec,
  enabled: r.enabled,
});

/** Stream URLs carry a token in their path (a WHEP offer sent on by another node, in its query); the log drops it. */
const withoutStreamToken = (url: string) => url.replace(/^(\/streams\/[^/]+\/[^/]+\/)[^/?]+/, '$1***').replace(/([?&]token=)[^&]*/, '$1***');

export interface BuildOptions {
  /** Where logs go (tests capture them); stdout by default. */
  logStream?: DestinationStream;
  /** Host name resolution for the network policy (tests inject a fake). */
  resolver?: Resolver;
  /** The owner of start and shutdown; main.ts passes its own so a signal during the start reaches it. */
  lifecycle?: Lifecycle;
  /** Called once, on a first start, with the admin account just created and its one-time password. */
  announceAdmin?: (admin: { username: string; password: string }) => void;
  /** Takes the alarms' pictures in place of the snapshot engine (tests inject a fake). */
  snapshotter?: Snapshotter;
  /** Check every response against its route's schema (tests): one that does not match is a 500. */
  checkResponses?: boolean;
  /**
   * Sends PTZ commands to GB/T 28181 devices in place of the GB service (tests inject a recording
   * fake). Without either, PTZ of a GB channel answers GW_ERR_UNAVAILABLE.
   */
  ptzSender?: PtzSender;
}

export interface Gateway {
  http: FastifyInstance;
  store: Store;
  registry: Registry;
  users: UsersService;
  streams: StreamManager;
  /** Pictures of cameras (GET /api/streams/<camera>/snapshot.jpg, alarm evidence). */
  snapshots: SnapshotService;
  /** The RTMP ingest for push cameras, when enabled. */
  ingest: RtmpIngest | null;
  /** The GB/T 28181 SIP server (registrar, queries, live view), when gb28181.enabled. */
  gb28181: GbService | null;
  /** The JT/T 1078 media server (vehicle channels' video), when jt808.enabled and jt1078.enabled. */
  jt1078: JtMediaServer | null;
  webrtc: WebRtcOutput;
  walls: WallService;
  /** What tours and alarm pop-ups pre-warm cameras through (in cluster mode, on the node that pulls them). */
  prewarmer: EnginePrewarmer;
  control: ControlServer;
  vehicles: VehicleService;
  /** GB/T 28181: who may register (devices, admission rules, refused attempts). */
  gbDirectory: GbDirectory;
  /** PTZ of cameras: leases, rate limit, audit (REST /api/cameras/:id/ptz, the control message ptz). */
  ptz: PtzService;
  /** GB/T 28181: catalog answers and notifications into the registry. */
  gbCatalog: CatalogImporter;
  /** The JT/T 808 server (vehicles' terminals: positions, alarms, commands), when jt808.enabled. */
  jt808: JtService | null;
  /** JT/T 808: registered and refused terminals, for the admin routes. */
  jtDirectory: JtDirectory;
  /** Set on a first start: the admin account and its one-time password. */
  bootstrapAdmin: { username: string; password: string } | null;
  /** This gateway as a node of the cluster (cluster.enabled); it joins once the HTTP server listens. */
  cluster: ClusterNode | null;
  /** Cluster mode: the nodes' message bus (walls, vehicles, cache invalidation) and the leader that runs the cluster's timers. */
  clusterBus: ClusterBus | null;
  clusterLeader: ClusterLeader | null;
  /** Every route registered, with its schema, for the tests that walk them all. */
  routes: { method: string; url: string; schema: FastifySchema | undefined }[];
  lifecycle: Lifecycle;
  /** Shuts down in the designed order (lib/lifecycle.ts); the same promise for every caller. */
  close(): Promise<void>;
}

/**
 * The composition root: builds and wires every module. It never listens; main.ts does. Each
 * resource is handed to the lifecycle as it is opened, so a step that throws closes what the steps
 * before it opened, and close() shuts down in the designed order (lib/lifecycle.ts).
 */
export async function buildGateway(config: Config, opts: BuildOptions = {}): Promise<Gateway> {
  const life = opts.lifecycle ?? new Lifecycle();
  try {
    return await build(config, opts, life);
  } catch (err) {
    await life.close().catch(() => undefined);
    throw err;
  }
}

async function build(config: Config, opts: BuildOptions, life: Lifecycle): Promise<Gateway> {
  const dataDir = resolve(config.dataDir);
  const secretsFile = config.secrets.file || join(dataDir, 'secrets.json');
  if (config.cluster.enabled && (!config.secrets.tokenKey || !config.secrets.credentialKey) && !existsSync(secretsFile)) {
    // Generating it here would give this node keys no other node has: their tokens and sealed passwords would not open here.
    throw new ConfigError([
      {
        field: 'secrets.file',
        message:
          `${secretsFile} does not exist, and in cluster mode a node does not generate keys of its own: ` +
          'start one gateway once without cluster mode to generate the file and copy it to every node, or set WALLGATE_SECRETS_TOKEN_KEY and WALLGATE_SECRETS_CREDENTIAL_KEY on every node',
      },
    ]);
  }
  const { secrets } = loadSecrets(secretsFile, config.secrets);
  // The HTTP logger is built later; the store's warnings (a PostgreSQL outage) before it exists wait for it.
  const storeLog = new DeferredLog();
  const store = await openStore(config, dataDir, storeLog);
  life.own('store', 'store', () => store.close());

  const sealer = new CredentialSealer(secrets.credentialKey);
  const registry = new Registry(
    store,
    sealer,
    new NetworkPolicy(config.registry.networks),
    opts.resolver ?? dnsResolver(config.registry.resolveTimeoutMs),
  );
  if ((await store.departments.all()).length === 0) {
    try {
      await store.departments.create({ id: ROOT_DEPARTMENT, name: 'All departments', parentId: null, level: 'national', path: `/${ROOT_DEPARTMENT}/` }, Date.now());
    } catch (err) {
      // Another node sharing the database created it first.
      if (!(err instanceof StoreConflict)) throw err;
    }
  }
  await registry.init();

  const cluster = config.cluster.enabled ? await clusterNode(config, life) : null;

  // Started (it listens) once everything behind it is built; the resolver reads it only when a pull starts.
  const ingest = config.streams.flv.rtmpEnabled
    ? new RtmpIngest({ host: config.streams.flv.rtmpHost, port: config.streams.flv.rtmpPort, key: secrets.tokenKey })
    : null;
  // Registered before the sessions, so it closes after them: the gateway's own pulls of pushed streams read from it.
  if (ingest) life.own('sessions', 'RTMP ingest', () => ingest.close());
  const resolver: SourceResolver = {
    async resolve(cameraId, profile) {
      const target = await registry.pullTarget(cameraId);
      if (!target) return null;
      const r = target.record;
      // Exactly one node pulls a camera: the pull starts only under its lease.
      await cluster?.ownership.acquire(r.id, r.deptPath);
      const sub = profile === 'sub' && r.subUrl !== null;
      if (r.protocol === 'rtmp-push') {
        if (!ingest) throw reasoned('GW_ERR_CONFLICT', 'ingestOff', {}, 'this is a push camera and the RTMP ingest is off (streams.flv.rtmpEnabled)');
        return { ...resolvedFields(r), profile: 'main', url: ingest.localPlayUrl(pushStreamName(r.url)!), credential: null };
      }
      return { ...resolvedFields(r), profile: sub ? 'sub' : 'main', url: sub ? r.subUrl! : r.url, credential: target.credential };
    },
    checkConnect: (host) => registry.connectAddresses(host),
    async setHealth(cameraId, health, failure) {
      // In cluster mode the write carries the pull's lease token: a node whose lease another took is refused.
      const fence = cluster?.ownership.writeFence(cameraId);
      if (!(await registry.setHealth(cameraId, health, failure, fence))) {
        http.log.warn({ camera: cameraId, fence }, 'health write refused: another node pulls this camera under a newer lease');
      }
    },
  };

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
  // Told now, not once the start completes: a start that fails or is stopped later has still created the account.
  if (bootstrapAdmin) opts.announceAdmin?.(bootstrapAdmin);
  if (config.demo.enabled) {
    await seedDemoCity(store, registry, config.demo.sources);
    life.checkpoint('demo city seeded');
    await seedLiveCameras(store, registry, config.demo.liveCameraBase, config.demo.liveCameras);
  }
  life.checkpoint('registry loaded');

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
    // Stream URLs carry a signed token as a path segment.
    routerOptions: { maxParamLength: 1024 },
    ajv: { customOptions: { coerceTypes: true, removeAdditional: false, useDefaults: true, allErrors: true } },
  });
  storeLog.attach(http.log);
  // Stopping to accept is the first thing shutdown does; the requests already in flight are waited for
  // (up to server.shutdownGraceMs) only after the readers and sessions have gone.
  let accepting = true;
  let httpClosed: Promise<void> | null = null;
  life.own('accepting', 'HTTP listener', async () => {
    accepting = false;
    httpClosed = http.close();
    // fastify closes the listener once its preClose hooks have run, a few turns from now.
    for (let turn = 0; turn < 100 && http.server.listening; turn++) await new Promise((r) => setImmediate(r));
  });
  life.own('requests', 'HTTP requests in flight', async () => {
    if (!httpClosed) return;
    const force = setTimeout(() => http.server.closeAllConnections(), config.server.shutdownGraceMs);
    try {
      await httpClosed;
    } finally {
      clearTimeout(force);
    }
  });
  const routes: Gateway['routes'] = [];
  http.addHook('onRoute', (r) => {
    // Read when asked: the document's own hook, which runs after this one, completes the schema.
    for (const method of [r.method].flat()) routes.push({ method, url: r.url, get schema() { return r.schema; } });
  });
  // Before any route: it describes each route as it is added, and its own /docs routes are walked too.
  await registerOpenApi(http, { checkResponses: opts.checkResponses });
  installErrorHandler(http);
  // Cluster mode: a page opened on one node may fail over to another, which must let it in (CORS, the
  // control WebSocket's Origin check, the pages' connect-src); only the nodes' own origins are trusted.
  // Every node seen since the start, not only the live ones: the page that fails over to this node came from one that just died.
  // Kept from every heartbeat round, so a node that was never asked anything still knows the dead one's origin.
  const seenOrigins = new Set<string>();
  const remember = (nodes: readonly { url: string }[]) => {
    for (const n of nodes) {
      const origin = originOf(n.url);
      if (origin && seenOrigins.size < 1_000) seenOrigins.add(origin);
    }
  };
  cluster?.on('nodes', remember);
  const nodeOrigins = (): string[] => {
    remember(cluster?.nodes() ?? []);
    return [...seenOrigins];
  };
  const trustedOrigin = (origin: string) => config.control.allowedOrigins.includes(origin) || nodeOrigins().includes(origin);
  if (cluster) clusterCors(http, trustedOrigin);
  const debugLogged = config.log.level === 'debug' || config.log.level === 'trace';
  // Reads that succeed are logged at debug: a wall of operators browsing would otherwise drown the log.
  http.addHook('onResponse', async (req, reply) => {
    const level = req.method === 'GET' && reply.statusCode < 400 ? 'debug' : 'info';
    // Segment and playlist fetches are most requests: skip building a line nobody will write.
    if (level === 'debug' && !debugLogged) return;
    req.log[level](
      { method: req.method, url: withoutStreamToken(req.url), status: reply.statusCode, ms: Math.round(reply.elapsedTime * 10) / 10, user: req.principal?.username },
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
  life.setLog(http.log);
  const gbDirectory = new GbDirectory({ store, sealer, registry, refusedListSize: config.gb28181.refusedListSize, log: http.log });
  const gbCatalog = new CatalogImporter({ store, registry, directory: gbDirectory, timeoutMs: config.gb28181.catalog.timeoutMs, maxChannels: config.gb28181.catalog.maxChannels, log: http.log });
  // Before the store closes: answers still being gathered are let go.
  life.own('writes', 'GB catalog imports', () => gbCatalog.close());
  routeNmsLogs((level, message) => (level === 'error' ? http.log.error({ nms: true }, message) : http.log.debug({ nms: true }, message)));
  // Built before the engine, whose GB channels play through it; it listens only at the end of the start.
  const gb = config.gb28181.enabled ? gbService(config, registry, gbDirectory, gbCatalog, http.log) : null;
  if (gb) gbDirectory.onRevoked = (deviceId) => gb.revoke(deviceId);
  const gbMedia = config.gb28181.media;
  const jt = config.jt808.enabled && config.jt1078.enabled ? jtMedia(config, http.log) : null;
  // Closes after the sessions (registered first): their drivers' 0x9102 close go out over the 808 link, which closes later still.
  if (jt) life.own('sessions', 'JT/T 1078 media server', () => jt.close());
  const streams = new StreamManager(config.streams, dataDir, resolver, http.log, {
    ...(gb ? { gb28181: { link: gb, media: gbMedia, ports: new RtpPortPool(gbMedia.portMin, gbMedia.portMax), ourId: config.gb28181.id } } : {}),
    ...(jt ? { jt1078: jt.driverContext } : {}),
  });
  life.own('sessions', 'stream sessions', () => streams.close());
  if (cluster) bindOwnership(cluster, streams, http);
  // Closes before the sessions (last registered, first closed): it hangs up every GB stream with BYE and stops
  // taking registrations; the GB drivers' own hang-ups then find their dialogs ended.
  if (gb) life.own('sessions', 'GB/T 28181 SIP server', () => gb.close());
  await streams.start();
  const streamTokens = new StreamTokens(secrets.tokenKey, config.streams.tokenTtlSec);
  const hls = new HlsOutput({
    engine: streams,
    tokens: streamTokens,
    viewerTimeoutMs: config.streams.hls.viewerTimeoutMs,
    waitMs: config.streams.startTimeoutMs,
  });
  life.own('readers', 'HLS viewers', () => hls.close());
  const flv = new FlvOutput({
    engine: streams,
    tokens: streamTokens,
    maxBufferedBytes: config.streams.flv.maxBufferedBytes,
    maxBufferedBytesTotal: config.streams.flv.maxBufferedBytesTotal,
  });
  life.own('readers', 'FLV viewers', () => flv.close());
  // Readers like a viewing: closed (its decoders stopped, its pulls let go) before the sessions.
  const snapshots = new SnapshotService(streams, config.streams);
  life.own('readers', 'snapshot decoders', () => snapshots.close());
  // In cluster mode a camera another node pulls is pictured there (its lease is there): see cluster/snapshots.ts.
  const pictures: Snapshotter = cluster
    ? new ClusterSnapshotter(snapshots, { cluster, tokens: streamTokens, timeoutMs: config.streams.startTimeoutMs + 2_000 })
    : snapshots;
  const webrtc = new WebRtcOutput({ engine: streams, tokens: streamTokens, config: config.streams.webrtc, log: http.log });
  life.own('readers', 'WebRTC peers', () => webrtc.close());
  const g = guards(users);
  const prewarmer = enginePrewarmer(streams, http.log);
  life.own('readers', 'tour pre-warm holds', () => prewarmer.close());
  const walls = new WallService(store, registry, config.control, prewarmer, http.log);
  // Tours stop and queued wall changes are written before the store closes.
  life.own('writes', 'walls', () => walls.close());
  const sync = cluster ? await clusterSync(config, cluster, life, http.log.child({ module: 'cluster' })) : null;
  if (sync) walls.joinCluster(sync.bus, sync.leader);
  if (sync) shareRegistry(registry, sync.bus, config.cluster.heartbeatMs, http.log);
  if (sync && gb) shareGbRevocations(gbDirectory, gb, sync.bus, http.log);
  if (sync && cluster) sharePrewarms(prewarmer, () => cluster.id, sync.bus, http.log);
  await walls.init();
  await sync?.leader.start();
  if (config.demo.enabled) await seedDemoWall(walls, registry, ROOT_DEPARTMENT);
  const control = new ControlServer(walls, users, engineStatus(streams), config.control, http.log);
  if (cluster) control.trustOrigin = trustedOrigin;
  life.own('readers', 'control connections', () => control.close());

  // Linkage: the vehicles module reaches the walls only through this interface and the events below.
  const vehicles = new VehicleService(
    store,
    registry,
    {
      show: (r) => walls.showPopup(r),
      clear: (id) => walls.clearPopup(id),
      checkTarget: (actor, wallId, tileIds) => walls.checkPopupTarget(actor, wallId, tileIds),
    },
    config.vehicles,
    http.log,
    Date.now,
    opts.snapshotter ?? pictures,
  );
  // Before the walls in the same phase (last registered closes first): an alarm's pop-up goes through them.
  life.own('writes', 'vehicles', () => vehicles.close());
  if (sync) vehicles.joinCluster(sync.bus, sync.leader);
  await vehicles.init();
  walls.on('popupEnded', (id) => vehicles.popupDismissed(id));
  // A pop-up whose alarm closed while the gateway was down comes off now.
  for (const { popup } of walls.popups()) if (!vehicles.hasPopup(popup.id)) await walls.clearPopup(popup.id);
  const vehicleHub = new VehicleHub(vehicles, config.vehicles.subscriptions);
  life.own('readers', 'vehicle subscriptions', () => vehicleHub.close());
  control.extend(vehicleHub);
  if (config.demo.enabled) {
    await seedDemoFleet(registry, vehicles, config.demo.vehicles, ROOT_DEPARTMENT);
    await demoFeedAccount(users, store, dataDir);
  }
  const jtDirectory = new JtDirectory({ store, registry, vehicles, refusedListSize: config.jt808.refusedListSize });
  const jt808 = config.jt808.enabled ? jtService(config, store, registry, vehicles, jtDirectory, http.log, life) : null;
  // Live view commands terminals through the 808 service, built only now that the vehicles exist.
  if (jt && jt808) jt.link.bind(jt808);
  jt?.bindVehicles(vehicles);
  // The GB service sends DeviceControl (opts.ptzSender first: tests record what is sent).
  const ptzSender: PtzSender | null = opts.ptzSender ?? gb;
  const ptz = new PtzService(registry, (e) => store.audit.append(e), ptzSender, config.gb28181.ptz);
  // After the control connections (readers), whose closing stops the cameras they left moving, and before the SIP server that sends the stops.
  life.own('sessions', 'PTZ automatic stops', () => ptz.close());
  const ptzControl = new PtzControl(ptz);
  control.extend(ptzControl);
  life.checkpoint('services started');
  if (cluster && gb) cluster.links.sources.gb = () => gb.onlineDevices();
  if (cluster && jt808) cluster.links.sources.jt = () => jt808.linkedVehicles();
  const router = cluster ? viewerRouter(cluster, store) : null;
  const routeFlv = router ? viewerRouting(router, http, streamTokens, (req, socket, head) => void flv.handleUpgrade(req, socket, head), config, life) : null;
  http.server.on('upgrade', (req, socket, head) => {
    guardSocket(socket);
    if (!accepting) return refuseUpgrade(socket);
    if (control.handleUpgrade(req, socket, head) || routeFlv?.(req, socket, head) || flv.handleUpgrade(req, socket, head)) return;
    socket.destroy();
  });

  http.get('/healthz', { schema: { response: { 200: Type.Object({ status: Type.Literal('ok') }) } } }, async () => ({ status: 'ok' as const }));
  http.get(
    '/readyz',
    { schema: { response: { 200: Type.Object({ status: Type.Literal('ready'), schemaVersion: Type.Integer({ description: 'the database migration applied last' }) }) } } },
    async () => ({ status: 'ready' as const, schemaVersion: await store.schemaVersion() }),
  );
  await http.register(accountRoutes, { users, store, guards: g, scopeRanges: (scopes) => registry.departments.rangesFor(scopes) });
  await http.register(departmentRoutes, { registry, guards: g });
  const importSlots = new ImportSlots(config.registry.importMaxConcurrent);
  await http.register(sourceRoutes, {
    registry,
    guards: g,
    pageSizeMax: config.registry.pageSizeMax,
    importMaxRows: config.registry.importMaxRows,
    importMaxBytes: config.registry.importMaxBytes,
    importSlots,
  });
  await http.register(streamRoutes, {
    registry,
    streams,
    tokens: streamTokens,
    ingest,
    guards: g,
    audit: (e) => store.audit.append(e),
    iceServers: config.streams.webrtc.iceServers,
    ...(router ? { settle: (cameraId: string) => router.settled(cameraId) } : {}),
  });
  await http.register(snapshotRoutes, {
    registry,
    snapshots: pictures,
    ...(cluster ? { forOtherNodes: { local: snapshots, tokens: streamTokens } } : {}),
    guards: g,
    maxWidth: config.streams.snapshots.maxWidth,
    maxAgeSec: Math.ceil(config.streams.snapshots.cacheMs / 1000),
  });
  await http.register(ptzRoutes, { ptz, guards: g });
  // The live link (device queries) is the GB service's; without it (gb28181.enabled off) those three routes answer 503.
  await http.register(gbRoutes, { directory: gbDirectory, guards: g, pageSizeMax: config.registry.pageSizeMax, link: gb });
  await http.register(jtRoutes, { directory: jtDirectory, guards: g });
  await http.register(wallRoutes, { walls, guards: g, statusOf: (wall) => control.statusOf(wall) });
  await http.register(vehicleRoutes, {
    vehicles,
    guards: g,
    pageSizeMax: config.vehicles.pageSizeMax,
    importMaxRows: config.vehicles.importMaxRows,
    importMaxBytes: config.registry.importMaxBytes,
    importSlots,
  });
  await http.register(hls.routes);
  await http.register(flv.routes);
  await http.register(webrtc.routes);
  await http.register(clusterRoutes, {
    cluster,
    streams,
    registry,
    guards: g,
    self: { id: config.cluster.nodeId || hostname(), url: config.cluster.advertiseUrl, startedAt: Date.now() - process.uptime() * 1000 },
  });
  await http.register(metricsRoutes(streams, webrtc, importSlots, snapshots, gb, jt808, jt?.server ?? null, cluster));
  await http.register(controlSchemaRoute, { messages: { ...wallMessages(), ...vehicleHub.describe(), ...ptzControl.describe() }, serverMessages: { ...serverMessageSchemas, ...vehicleServerMessageSchemas } });
  await http.register(playerRoutes, { player: config.player, log: http.log, connectOrigins: nodeOrigins });

  if (gb) {
    await markGbDevicesOffline(store, (deviceId) => gb.channelsOffline(deviceId));
    await gb.start();
  }
  await jt?.server.listen();
  await ingest?.start();
  await jt808?.start();

  return {
    http,
    store,
    registry,
    users,
    streams,
    snapshots,
    ingest,
    gb28181: gb,
    jt1078: jt?.server ?? null,
    webrtc,
    walls,
    prewarmer,
    control,
    vehicles,
    gbDirectory,
    ptz,
    gbCatalog,
    jt808,
    jtDirectory,
    bootstrapAdmin,
    cluster,
    clusterBus: sync?.bus ?? null,
    clusterLeader: sync?.leader ?? null,
    routes,
    lifecycle: life,
    close: () => life.close(),
  };
}

/**
 * The cluster node: connected to Redis before anything pulls. It leaves the cluster (its leases let go,
 * its heartbeat deleted) with the writes, after its sessions have stopped.
 */
async function clusterNode(config: Config, life: Lifecycle): Promise<ClusterNode> {
  // The gateway's logger is built later (bindOwnership hands it over); until then warnings go to stderr.
  const stderr = (_o: object, m: string) => void process.stderr.write(`wallgate: ${m}\n`);
  const node = await ClusterNode.open(config, { info: () => undefined, warn: stderr, error: stderr });
  life.own('writes', 'cluster node', () => node.close());
  return node;
}

/**
 * The control plane across nodes: the bus (its own Redis connections) and the leader (on the node's).
 * The leader steps down first when the gateway closes, so another node takes the tours at once; the
 * bus goes last, after the final changes are written and published.
 */
async function clusterSync(config: Config, node: ClusterNode, life: Lifecycle, log: FastifyInstance['log']): Promise<{ bus: ClusterBus; leader: ClusterLeader }> {
  const { redisUrl, keyPrefix: prefix, leaseMs, heartbeatMs } = config.cluster;
  const bus = await ClusterBus.open({ redisUrl, prefix, nodeId: () => node.id, log });
  life.own('store', 'cluster bus', () => bus.close());
  const leader = new ClusterLeader({ redis: node.redis, prefix, nodeId: () => node.id, leaseMs, heartbeatMs, log });
  life.own('accepting', 'cluster leader', () => leader.close());
  return { bus, leader };
}

/** Cluster mode: a department edit on one node reloads the tree on the others; source counts are read again after a heartbeat. */
function shareRegistry(registry: Registry, bus: ClusterBus, countsMaxAgeMs: number, log: FastifyInstance['log']) {
  registry.countsMaxAgeMs = countsMaxAgeMs;
  registry.onDepartmentsChanged = () => share(bus, 'registry.departments', {}, log);
  const reload = () => void registry.reloadDepartments().catch((err: Error) => log.error({ err: err.message }, 'department tree not reloaded from the store'));
  bus.subscribe('registry.departments', reload);
  bus.on('resync', reload);
}

/**
 * Cluster mode: a GB device deleted, disabled or given a new password on one node loses the
 * registration whichever node's SIP server holds it. A revocation sent while Redis was down is
 * missed, so on resync each node checks its registrations against the store.
 */
function shareGbRevocations(directory: GbDirectory, gb: GbService, bus: ClusterBus, log: FastifyInstance['log']) {
  directory.onRevoked = (deviceId) => {
    gb.revoke(deviceId);
    share(bus, 'gb.revoked', { deviceId }, log);
  };
  bus.subscribe('gb.revoked', (m) => {
    const deviceId = (m as { deviceId?: unknown } | null)?.deviceId;
    if (typeof deviceId !== 'string') return log.warn({ topic: 'gb.revoked' }, 'GB: malformed message from another node dropped');
    gb.revoke(deviceId);
  });
  bus.on('resync', () => void gb.recheckRegistrations().catch((err: Error) => log.error({ err: err.message }, 'GB registrations not checked against the store after a resync')));
}

/**
 * The node reports the engine's load, stops a camera's pulls when its lease is lost, lets a lease go
 * when the camera's last session ends, and joins the cluster once the HTTP server listens (its id and
 * URL may name a port known only then).
 */
function bindOwnership(cluster: ClusterNode, streams: StreamManager, http: FastifyInstance) {
  cluster.setLog(http.log.child({ module: 'cluster' }));
  cluster.measure(() => {
    const stats = streams.stats();
    let sessions = 0;
    for (const [state, n] of Object.entries(stats.sessions)) if (state !== 'closed') sessions += n;
    return { sessions, viewers: stats.readers, bytesOut: stats.bytesOut };
  });
  const pulls = (cameraId: string) => streams.list((s) => s.cameraId === cameraId);
  cluster.ownership.inUse = (cameraId) => pulls(cameraId).length > 0;
  cluster.ownership.onLost = (cameraId, reason) => {
    for (const s of pulls(cameraId)) streams.stop(s.id, reason).catch((err: Error) => http.log.warn({ camera: cameraId, session: s.id, err: err.message }, 'could not stop the pull of a lost camera lease'));
  };
  streams.on('closed', (session) => {
    if (pulls(session.cameraId).length) return;
    cluster.ownership.release(session.cameraId).catch((err: Error) => http.log.warn({ camera: session.cameraId, err: err.message }, 'could not release a camera lease'));
  });
  http.addHook('onListen', async () => {
    const address = http.server.address();
    if (address && typeof address === 'object') await cluster.start(address.port);
  });
}

/** Where a viewer of a camera is served in the cluster, with what placement needs to know of a camera. */
function viewerRouter(cluster: ClusterNode, store: Store): ViewerRouter {
  return new ViewerRouter(cluster, async (cameraId) => {
    const record = await store.sources.get(cameraId);
    if (!record) return null;
    // A GB channel's media comes to the node its device registered with; a vehicle channel's, to its 808 link's node.
    const gb = record.protocol === 'gb28181' ? parseGbUrl(record.url) : null;
    if (gb) return { deptPath: record.deptPath, linkNode: await cluster.links.nodeFor('gb', gb.deviceId), linkName: `GB device ${gb.deviceId}` };
    const jt = record.protocol === 'jt1078' ? parseJtUrl(record.url) : null;
    if (jt) return { deptPath: record.deptPath, linkNode: await cluster.links.nodeFor('jt', jt.vehicleId), linkName: `vehicle ${jt.vehicleId}'s JT/T 808 terminal` };
    return { deptPath: record.deptPath };
  });
}

/**
 * Viewers of a camera another node pulls are sent there: 307 for HLS and WHEP, WS-FLV proxied.
 * Registered before the stream routes, whose requests its hook routes.
 */
function viewerRouting(
  router: ViewerRouter,
  http: FastifyInstance,
  tokens: StreamTokens,
  serveFlv: (req: IncomingMessage, socket: Duplex, head: Buffer) => void,
  config: Config,
  life: Lifecycle,
) {
  const proxy = new WsProxy(config.streams.flv.maxBufferedBytes);
  life.own('readers', 'proxied WS-FLV viewers', () => proxy.close());
  return installViewerRouting(http, { router, tokens, proxy, serveFlv });
}

/**
 * The GB/T 28181 service with its registry side: a device that goes offline takes its channels'
 * health with it, with the reason (the tile and the admin pages say the device is offline).
 */
function gbService(config: Config, registry: Registry, directory: GbDirectory, catalog: CatalogImporter, log: FastifyInstance['log']): GbService {
  return new GbService({
    config: config.gb28181,
    directory,
    catalog,
    channels: {
      async deviceOffline(deviceId, failure) {
        await registry.setHealthMany((await catalog.channelIds(deviceId)).map((id) => ({ id, health: 'offline' as const, failure })));
      },
    },
    log: log.child({ module: 'gb28181' }),
  });
}

/**
 * JT/T 1078 live view: the channels vehicle channels' drivers attach to, the media port terminals
 * send to, and the data budget both count against. Built with the stream engine; the JT/T 808
 * service they command through is bound into the slot once it is built, after the vehicles.
 */
function jtMedia(config: Config, log: FastifyInstance['log']) {
  const jtLog = log.child({ module: 'jt1078' });
  const link = new JtLinkSlot(jtLog);
  let vehicles: VehicleService | null = null;
  const budget = new JtBudget(config.jt1078.dailyBudgetBytes);
  const channels = new JtChannels({ link, budget, publicAddress: config.jt1078.publicAddress, mediaPorts: (): { tcp: number; udp: number } => server.ports });
  const server = new JtMediaServer({ config: config.jt1078, link, channels, budget });
  return {
    link,
    server,
    driverContext: {
      channels,
      startTimeoutMs: config.jt1078.startTimeoutMs,
      overBudgetCloseAfterMs: config.jt1078.overBudgetCloseAfterMs,
      commandTimeoutMs: config.jt808.commandTimeoutMs,
      channelSource: (vehicleId: string, channel: number) => vehicles?.get(vehicleId)?.vehicle.channels.find((c) => c.channel === channel)?.sourceId ?? null,
    },
    /** The vehicles module, built after the engine: until then no vehicle channel plays. */
    bindVehicles(v: VehicleService) {
      vehicles = v;
    },
    async close() {
      await server.close();
      channels.close();
    },
  };
}

/**
 * The JT/T 808 server and the feed behind it. Both close with the writes, before the vehicle service
 * (last registered, first closed): the server stops taking reports, then the feed sends what it holds.
 */
function jtService(config: Config, store: Store, registry: Registry, vehicles: VehicleService, directory: JtDirectory, log: FastifyInstance['log'], life: Lifecycle): JtService {
  const jtLog = log.child({ module: 'jt808' });
  const feed = new JtFeed({ vehicles, flushMs: config.jt808.positionFlushMs, log: jtLog });
  life.own('writes', 'JT/T 808 feed', () => feed.close());
  const auto = config.jt808.autoRegister;
  const service = new JtService({
    config: config.jt808,
    store,
    vehicles,
    feed,
    directory,
    autoRegistrar: auto.enabled ? autoRegistrar({ registry, vehicles, departmentId: auto.departmentId, channels: auto.channels, maxPerHour: auto.maxPerHour }) : null,
    log: jtLog,
  });
  life.own('writes', 'JT/T 808 server', () => service.close());
  return service;
}

/**
 * Presence from before this start is stale: the SIP service remembers none of those registrations,
 * so a device shows offline until it registers again (its keepalives are refused until it does).
 */
async function markGbDevicesOffline(store: Store, channelsOffline: (deviceId: string) => Promise<void>) {
  // Every department path: "/" up to the character after it.
  const ranges = [['/', '0'] as const];
  let after: { path: string; id: string } | undefined;
  for (;;) {
    const page = await store.gb.listDevices({ ranges, after, limit: 500 });
    for (const d of page) {
      if (!d.online) continue;
      await store.gb.setPresence(d.id, { online: false, transport: d.transport, address: d.address, port: d.port, registeredAt: d.registeredAt, expiresAt: d.expiresAt, lastKeepaliveAt: d.lastKeepaliveAt }, Date.now());
      await channelsOffline(d.id);
    }
    const last = page[page.length - 1];
    if (!last || page.length < 500) return;
    after = { path: last.deptPath, id: last.id };
  }
}

/** An upgrade that arrives while the gateway shuts down: told so, and let go. */
function refuseUpgrade(socket: Duplex) {
  socket.end('HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
}

/**
 * Demo mode: an account for the vehicle simulator (role feed), its password kept in the data
 * directory beside the generated secrets, readable by the owner only.
 */
async function demoFeedAccount(users: UsersService, store: Store, dataDir: string) {
  const file = join(dataDir, 'demo-feed.json');
  const username = 'demo-feed';
  const exists = !!(await store.users.byUsername(username));
  if (exists && existsSync(file)) return;
  let password: string;
  if (exists) password = await users.resetPassword(username);
  else {
    password = `Feed-${randomBytes(18).toString('base64url')}`;
    const system = { id: 'system', username: 'system', displayName: 'system', roles: ['admin' as const], scopes: [ROOT_DEPARTMENT], ip: '-' };
    await users.create(system, { username, displayName: '车辆模拟器 Vehicle simulator', password, roles: ['feed'], scopes: [ROOT_DEPARTMENT] });
  }
  writeFileSync(file, JSON.stringify({ username, password }) + '\n', { mode: 0o600 });
  // The mode applies only when the file is created; an older file gets it too.
  chmodSync(file, 0o600);
}

/** A logger that holds its lines until the real one is attached (the store opens before the HTTP logger exists). */
class DeferredLog {
  private target: { warn(o: object, m: string): void } | null = null;
  private held: [object, string][] = [];
  warn(o: object, m: string) {
    if (this.target) this.target.warn(o, m);
    else if (this.held.length < 20) this.held.push([o, m]);
  }
  attach(target: { warn(o: object, m: string): void }) {
    this.target = target;
    for (const [o, m] of this.held) target.warn(o, m);
    this.held = [];
  }
}

import { Type } from '@sinclair/typebox';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Guards } from '../../auth/plugin.js';
import type { Principal } from '../../auth/users.js';
import type { Registry } from '../../registry/service.js';
import type { StreamManager } from '../../streams/manager.js';

/**
 * What the cluster view needs of the cluster node (cluster/node.ts, when cluster.enabled): its
 * live members with their load, and every camera lease in the cluster. Declared here, so the route
 * depends on the shape and not on the node's code.
 */
export interface NodeLoad {
  sessions: number;
  viewers: number;
  bytesOutPerSec: number;
  cpuPct: number;
}
export interface ClusterMember {
  id: string;
  url: string;
  startedAt: number;
  heartbeatAt: number;
  load: NodeLoad;
}
export interface CameraLeaseView {
  cameraId: string;
  nodeId: string;
  token: number;
  since: number;
}
export interface ClusterMembership {
  readonly id: string;
  readonly url: string;
  nodes(): ClusterMember[];
  readonly ownership: { leases(): Promise<CameraLeaseView[]>; held(): CameraLeaseView[] };
}

/**
 * This node's own load, for the single-node view: the rates are measured between two reads at
 * least a second apart (the first read measures from the process start), so no timer runs for it.
 */
export class LoadMeter {
  private last = { at: Date.now() - process.uptime() * 1000, bytesOut: 0, cpuMicros: 0 };
  private rates = { bytesOutPerSec: 0, cpuPct: 0 };

  constructor(private readonly streams: StreamManager) {}

  read(): NodeLoad {
    const stats = this.streams.stats();
    const now = Date.now();
    const cpu = process.cpuUsage();
    const cpuMicros = cpu.user + cpu.system;
    const elapsedMs = now - this.last.at;
    if (elapsedMs >= 1_000) {
      this.rates = {
        bytesOutPerSec: Math.max(0, Math.round(((stats.bytesOut - this.last.bytesOut) * 1000) / elapsedMs)),
        cpuPct: Math.round(((cpuMicros - this.last.cpuMicros) / 1000 / elapsedMs) * 1000) / 10,
      };
      this.last = { at: now, bytesOut: stats.bytesOut, cpuMicros };
    }
    const { closed: _closed, ...open } = stats.sessions;
    return { sessions: Object.values(open).reduce((a, b) => a + b, 0), viewers: stats.readers, ...this.rates };
  }
}

export interface ClusterRouteOptions {
  /** null: a single node (cluster.enabled off). */
  cluster: ClusterMembership | null;
  streams: StreamManager;
  registry: Registry;
  guards: Guards;
  /** This node's id and URL in single-node mode (the cluster's own otherwise). */
  self: { id: string; url: string; startedAt: number };
}

const LOAD = Type.Object({
  sessions: Type.Integer({ description: 'camera pulls open on the node' }),
  viewers: Type.Integer({ description: 'viewers over all its pulls' }),
  bytesOutPerSec: Type.Number({ description: 'bytes per second sent to viewers' }),
  cpuPct: Type.Number({ description: "the gateway process's CPU, percent of one core" }),
});
const PULLED = Type.Object({
  cameraId: Type.String(),
  name: Type.String({ description: 'the camera\'s name ("" when it is no longer in the registry)' }),
  since: Type.String({ format: 'date-time', description: 'when the node took the camera (its lease, or its pull in single-node mode)' }),
  token: Type.Union([Type.Integer(), Type.Null()], { description: 'the lease\'s fencing token (null in single-node mode)' }),
});
const NODE = Type.Object({
  id: Type.String(),
  url: Type.String({ description: "where viewers and the other nodes reach the node (cluster.advertiseUrl)" }),
  startedAt: Type.String({ format: 'date-time' }),
  heartbeatAt: Type.String({ format: 'date-time', description: 'its last heartbeat (now, in single-node mode)' }),
  load: LOAD,
  cameras: Type.Array(PULLED, { description: 'the cameras the node pulls, in the caller\'s departments' }),
  camerasElsewhere: Type.Integer({ description: "cameras it pulls outside the caller's departments (counted, not named)" }),
});
const CLUSTER_VIEW = Type.Object({
  mode: Type.Union([Type.Literal('single'), Type.Literal('cluster')]),
  nodeId: Type.String({ description: 'the node that answered' }),
  nodes: Type.Array(NODE, { description: 'the live nodes, by id' }),
});
const NODE_LIST = Type.Object({
  mode: Type.Union([Type.Literal('single'), Type.Literal('cluster')]),
  nodeId: Type.String({ description: 'the node that answered' }),
  nodes: Type.Array(Type.Object({ id: Type.String(), url: Type.String() }), { description: 'where the pages may reconnect when their node fails' }),
});

const iso = (ms: number) => new Date(ms).toISOString();
const NAME_CACHE_MS = 30_000;

/**
 * The cluster view (admins and auditors): every live node, its load and the cameras it pulls; and
 * the node list any signed-in page reads to fail over to another node.
 */
export async function clusterRoutes(app: FastifyInstance, o: ClusterRouteOptions) {
  const meter = new LoadMeter(o.streams);
  // A camera's name and department for leases (which carry only ids): read once per camera now and then, not on every refresh.
  const names = new Map<string, { at: number; name: string; departmentId: string | null }>();
  const describe = async (cameraId: string) => {
    const hit = names.get(cameraId);
    if (hit && Date.now() - hit.at < NAME_CACHE_MS) return hit;
    // The record only: opening the camera's sealed credential just to show its name would be needless work and exposure.
    const record = await o.registry.record(cameraId).catch(() => null);
    const entry = { at: Date.now(), name: record?.name ?? '', departmentId: record?.departmentId ?? null };
    if (names.size > 20_000) names.clear();
    names.set(cameraId, entry);
    return entry;
  };
  const inScope = (actor: Principal) => {
    const ranges = o.registry.departments.rangesFor(actor.scopes);
    return (departmentId: string | null) => departmentId !== null && o.registry.departments.within(departmentId, ranges);
  };

  app.get('/api/cluster', { onRequest: o.guards.require('cluster:read'), schema: { response: { 200: CLUSTER_VIEW } } }, async (req: FastifyRequest) => {
    const allowed = inScope(req.principal as Principal);
    if (!o.cluster) {
      const mine = new Map<string, { cameraId: string; name: string; since: number; departmentId: string }>();
      let elsewhere = 0;
      const now = Date.now();
      for (const s of o.streams.list()) {
        if (s.state === 'closed') continue;
        const departmentId = o.streams.get(s.id)?.source.departmentId ?? null;
        if (!allowed(departmentId)) {
          elsewhere++;
          continue;
        }
        // Main and sub are one camera to the cluster: the earliest pull is when the node took it.
        const since = now - s.uptimeMs;
        const seen = mine.get(s.cameraId);
        if (!seen || since < seen.since) mine.set(s.cameraId, { cameraId: s.cameraId, name: s.cameraName, since, departmentId: departmentId! });
      }
      const cameras = [...mine.values()].sort((a, b) => a.cameraId.localeCompare(b.cameraId)).map((c) => ({ cameraId: c.cameraId, name: c.name, since: iso(c.since), token: null }));
      return {
        mode: 'single' as const,
        nodeId: o.self.id,
        nodes: [{ id: o.self.id, url: o.self.url, startedAt: iso(o.self.startedAt), heartbeatAt: iso(now), load: meter.read(), cameras, camerasElsewhere: elsewhere }],
      };
    }
    const leases = await o.cluster.ownership.leases();
    const described = await Promise.all(leases.map(async (l) => ({ lease: l, ...(await describe(l.cameraId)) })));
    return {
      mode: 'cluster' as const,
      nodeId: o.cluster.id,
      nodes: o.cluster.nodes().map((n) => {
        const held = described.filter((d) => d.lease.nodeId === n.id);
        const shown = held.filter((d) => allowed(d.departmentId)).sort((a, b) => a.lease.cameraId.localeCompare(b.lease.cameraId));
        return {
          id: n.id,
          url: n.url,
          startedAt: iso(n.startedAt),
          heartbeatAt: iso(n.heartbeatAt),
          load: n.load,
          cameras: shown.map((d) => ({ cameraId: d.lease.cameraId, name: d.name, since: iso(d.lease.since), token: d.lease.token })),
          camerasElsewhere: held.length - shown.length,
        };
      }),
    };
  });

  app.get('/api/cluster/nodes', { onRequest: o.guards.signedIn, schema: { response: { 200: NODE_LIST } } }, async () => {
    if (!o.cluster) return { mode: 'single' as const, nodeId: o.self.id, nodes: [{ id: o.self.id, url: o.self.url }] };
    return { mode: 'cluster' as const, nodeId: o.cluster.id, nodes: o.cluster.nodes().map((n) => ({ id: n.id, url: n.url })) };
  });
}

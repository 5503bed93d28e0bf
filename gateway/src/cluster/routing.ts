import { createHash } from 'node:crypto';
import { connect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { GatewayError } from '../errors.js';
import type { ClusterNode, NodeInfo } from './node.js';
import { OwnedElsewhere } from './ownership.js';

/** The query parameter a node adds when it sends a viewer on: how many times the request was sent. */
export const HOP_PARAM = 'wgr';
/** A request sent on this many times is not sent again: the nodes disagree, and a loop must end. */
const MAX_HOPS = 2;

export type Route = { serve: true } | { serve: false; to: string };

/** A viewer waiting for a dead owner's lease looks again this long after Redis said it lapses (its TTL is whole ms). */
const LAPSE_MARGIN_MS = 2;
/** How long a look at whether a node's port refuses connections may take; one that does not answer counts as there. */
const PROBE_TIMEOUT_MS = 500;

/** What placement needs of a camera: the departments its cap counts against, and the node it must be pulled on, if any. */
export interface CameraPlace {
  deptPath: string;
  /**
   * A GB/T 28181 channel or JT/T 808 vehicle channel is pulled where its device's link is: that
   * node's id, or null when no node holds the link (then the camera cannot play anywhere).
   */
  linkNode?: string | null;
  /** Why a link-bound camera has no node (for the error). */
  linkName?: string;
}

/**
 * The weight of a node in placement: fewer sessions and fewer bytes out mean more new cameras. One
 * session, or half a megabyte a second out (one 4 Mbit/s stream), counts as one unit of load.
 */
export function nodeWeight(n: NodeInfo): number {
  return 1 / (1 + n.load.sessions + n.load.bytesOutPerSec / 500_000);
}

/**
 * Weighted rendezvous hashing: every node scores the camera by a hash of both, scaled by its weight
 * (-w / ln(h), h uniform in (0,1)); the best score wins. Every node computes the same answer from the
 * same list, a node that joins or leaves moves only the cameras that pick or picked it, and a loaded
 * node wins proportionally fewer.
 */
export function place(cameraId: string, nodes: NodeInfo[]): NodeInfo | null {
  let best: NodeInfo | null = null;
  let bestScore = -Infinity;
  for (const n of nodes) {
    const h = createHash('sha256').update(`${cameraId}\u0000${n.id}`).digest().readUIntBE(0, 6);
    const uniform = (h + 0.5) / 2 ** 48;
    const score = -nodeWeight(n) / Math.log(uniform);
    if (score > bestScore || (score === bestScore && best && n.id < best.id)) {
      best = n;
      bestScore = score;
    }
  }
  return best;
}

/**
 * Where a viewer of a camera is served. The owner (the lease holder) serves; with no owner, the node
 * placement picks takes the lease when asked, and any other node sends the viewer there. A request
 * already sent on once is served where it lands (taking the lease if nobody holds it), so two nodes
 * with different views of the cluster cannot bounce a viewer between them.
 */
export class ViewerRouter {
  /** Recent looks at whether a node's address refuses connections, by address. */
  private readonly probes = new Map<string, { at: number; refused: Promise<boolean> }>();

  constructor(
    private readonly node: ClusterNode,
    private readonly lookup: (cameraId: string) => Promise<CameraPlace | null>,
  ) {}

  /**
   * A lease whose owner stopped beating (it died: kill -9, a crash) outlives it by up to
   * cluster.leaseMs. A viewer who asks meanwhile waits here for it to lapse (woken when Redis's TTL of
   * it runs out) and is then placed, instead of being refused and left to its own retry backoff, which
   * would add seconds to every re-homed camera. The wait is bounded (rehomeMs from the first look): an
   * owner that is alive after all renews, and the viewer then gets GW_ERR_UNAVAILABLE as before.
   */
  async route(cameraId: string, hops: number, waitUntil = Date.now() + this.rehomeMs): Promise<Route> {
    for (;;) {
      const route = await this.routeOnce(cameraId, hops, Date.now() < waitUntil);
      if (!('lapsesInMs' in route)) return route;
      await sleep(Math.min(route.lapsesInMs + LAPSE_MARGIN_MS, Math.max(0, waitUntil - Date.now())));
    }
  }

  /**
   * Resolves once a viewer of the camera no longer has to wait for a dead node's lease: at once, unless
   * the lease names a node that is no longer listed or whose port refuses connections (killed a moment
   * ago, it stays listed for a few beats); then when Redis lets the lease go, within rehomeMs. The view
   * answer waits here: a player counts its first-frame deadline from the stream URLs, so a wait in the
   * stream request itself would eat the time the new owner has to start the camera.
   */
  async settled(cameraId: string): Promise<void> {
    const until = Date.now() + this.rehomeMs;
    for (;;) {
      if (!this.node.started || this.node.ownership.fence(cameraId) !== null) return;
      const owned = await this.node.ownership.ownerWithTtl(cameraId);
      if (!owned || owned.lease.nodeId === this.node.id) return;
      const owner = this.node.nodes().find((n) => n.id === owned.lease.nodeId);
      if (owner && !(await this.refusesConnections(owner.url))) return;
      const left = until - Date.now();
      if (left <= 0) return;
      await sleep(Math.min(owned.ttlMs + LAPSE_MARGIN_MS, left));
    }
  }

  /**
   * Whether a node's advertised address refuses connections: its process is gone though its heartbeat
   * has not expired yet. A node that accepts, or does not answer in time, counts as there. One look per
   * address serves every viewer asking within half a beat.
   */
  private refusesConnections(url: string): Promise<boolean> {
    const now = Date.now();
    const fresh = (p: { at: number }) => now - p.at < this.node.heartbeatMs / 2;
    const cached = this.probes.get(url);
    if (cached && fresh(cached)) return cached.refused;
    for (const [u, p] of this.probes) if (!fresh(p)) this.probes.delete(u);
    const refused = probe(url);
    this.probes.set(url, { at: now, refused });
    return refused;
  }

  private async routeOnce(cameraId: string, hops: number, mayWait: boolean): Promise<Route | { lapsesInMs: number }> {
    this.node.requireStarted();
    const ownership = this.node.ownership;
    // The common case, every HLS segment of a camera this node pulls: no round trip.
    if (ownership.fence(cameraId) !== null) return { serve: true };
    const owned = await ownership.ownerWithTtl(cameraId);
    const lease = owned?.lease ?? null;
    if (owned && owned.lease.nodeId !== this.node.id) {
      if (mayWait && !this.listed(owned.lease.nodeId)) return { lapsesInMs: owned.ttlMs };
      return this.sendTo(owned.lease.nodeId, cameraId, hops);
    }
    const camera = await this.lookup(cameraId);
    // An unknown camera is the output's to refuse (404), with its own words.
    if (!camera) return { serve: true };
    if (camera.linkNode !== undefined) {
      if (camera.linkNode === null) {
        throw new GatewayError('GW_ERR_UNAVAILABLE', `camera "${cameraId}" cannot play: no node holds the link of ${camera.linkName ?? 'its device'}`);
      }
      if (camera.linkNode !== this.node.id) return this.sendTo(camera.linkNode, cameraId, hops);
    } else if (!lease && hops === 0) {
      const placed = place(cameraId, this.node.nodes());
      if (placed && placed.id !== this.node.id) return { serve: false, to: placed.url };
    }
    try {
      await ownership.acquire(cameraId, camera.deptPath);
    } catch (err) {
      // Another node took it between the look and the take: that node serves.
      if (err instanceof OwnedElsewhere) return this.sendTo(err.lease.nodeId, cameraId, hops);
      throw err;
    }
    return { serve: true };
  }

  /** How long a viewer may wait for a camera whose owner died: its lease lapses within one lease of its last renewal, plus a beat's margin. */
  get rehomeMs(): number {
    return this.node.leaseMs + this.node.heartbeatMs;
  }

  get heartbeatMs(): number {
    return this.node.heartbeatMs;
  }

  private listed(nodeId: string): boolean {
    return this.node.nodes().some((n) => n.id === nodeId);
  }

  /**
   * Where a viewer goes whose pull was refused because another node took the camera after route()
   * said this node serves (its lease went when its last session closed, and another node took it).
   */
  rerouted(err: OwnedElsewhere, hops: number): Route {
    return this.sendTo(err.lease.nodeId, err.lease.cameraId, hops);
  }

  private sendTo(nodeId: string, cameraId: string, hops: number): Route {
    const owner = this.node.nodes().find((n) => n.id === nodeId);
    if (!owner || hops >= MAX_HOPS) {
      // Its owner has stopped beating (its lease lapses within cluster.leaseMs) or the nodes disagree.
      throw new GatewayError('GW_ERR_UNAVAILABLE', `camera "${cameraId}" is moving between nodes; try again in a few seconds`);
    }
    return { serve: false, to: owner.url };
  }
}

/** Whether a TCP connection to the URL's host and port is refused (nothing listens there). */
function probe(url: string): Promise<boolean> {
  let target: URL;
  try {
    target = new URL(url);
  } catch {
    return Promise.resolve(false);
  }
  const port = Number(target.port) || (target.protocol === 'https:' ? 443 : 80);
  return new Promise((resolve) => {
    const socket = connect({ host: target.hostname.replace(/^\[(.*)\]$/, '$1'), port });
    const done = (refused: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(refused);
    };
    const timer = setTimeout(() => done(false), PROBE_TIMEOUT_MS);
    socket.once('connect', () => done(false));
    // on, not once: an error after the answer must not go unhandled.
    socket.on('error', (err: NodeJS.ErrnoException) => done(err.code === 'ECONNREFUSED'));
  });
}

/** The same path and query on another node, one hop further. */
export function forwardUrl(base: string, pathAndQuery: string, hops: number): string {
  const url = new URL(pathAndQuery, 'http://x');
  url.searchParams.set(HOP_PARAM, String(hops + 1));
  return `${base}${url.pathname}${url.search}`;
}

/** How many times a request was sent on already (its hop parameter; 0 when absent or unreadable). */
export function hopsOf(pathAndQuery: string): number {
  const m = new RegExp(`[?&]${HOP_PARAM}=(\\d{1,2})(?:&|$)`).exec(pathAndQuery);
  return m ? Number(m[1]) : 0;
}

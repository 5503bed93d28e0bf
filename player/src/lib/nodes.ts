/**
 * The cluster's nodes, as a page opened straight from one of them sees them: where it talks to now
 * (the node it came from, until that node fails) and where it may go next. Behind one origin (nginx)
 * or on a single gateway there is no list, and everything stays relative to the page's own origin.
 *
 * Kept in sessionStorage, so a reloaded page keeps talking to the node it had moved to.
 */
const KEY = 'wallgate.nodes';
/** A window event: the page's control connection is open on another node than before. */
export const NODE_CHANGED = 'wallgate:node-changed';

interface NodesState {
  /** Origins of the cluster's nodes, in the gateway's order (by id). */
  origins: string[];
  /** The origin in use; the page's own when it is one of them. */
  current: string;
}

function read(): NodesState | null {
  try {
    const s = JSON.parse(sessionStorage.getItem(KEY) ?? 'null') as NodesState | null;
    return s && Array.isArray(s.origins) && typeof s.current === 'string' ? s : null;
  } catch {
    return null;
  }
}

function originOf(url: string): string | null {
  try {
    const u = new URL(url);
    return u.protocol === 'http:' || u.protocol === 'https:' ? u.origin : null;
  } catch {
    return null;
  }
}

/** What the REST paths and stream URLs are relative to: '' for the page's own origin, else another node's. */
export function apiBase(): string {
  const s = read();
  return s && s.current !== location.origin ? s.current : '';
}

/** A path of the gateway (/api/…, /streams/…) on the node in use; an absolute URL stays as it is. */
export function onNode(path: string): string {
  return path.startsWith('/') ? apiBase() + path : path;
}

/** The WebSocket URL of a path on the node in use. */
export function wsOnNode(path: string): string {
  const base = apiBase() || location.origin;
  return base.replace(/^http/, 'ws') + path;
}

/**
 * Takes the node list the gateway gave (GET /api/cluster/nodes). It is kept only when the page came
 * from one of the nodes: behind a proxy the nodes' own addresses are not the page's to use.
 */
export function learnNodes(answer: { mode: string; nodes: Array<{ url: string }> }): void {
  const origins = answer.nodes.map((n) => originOf(n.url)).filter((o): o is string => o !== null);
  const prior = read();
  if (answer.mode !== 'cluster' || !(origins.includes(location.origin) || (prior && origins.includes(prior.current)))) {
    if (!prior) return;
    // A list that no longer names where we are: back to the page's own origin.
    sessionStorage.removeItem(KEY);
    return;
  }
  const current = prior && origins.includes(prior.current) ? prior.current : location.origin;
  sessionStorage.setItem(KEY, JSON.stringify({ origins, current } satisfies NodesState));
}

/**
 * The node in use failed: moves to the next node of the list (wrapping around, so the page's own
 * node is tried again in its turn). Returns the new origin, or null without a list.
 */
export function nextNode(): string | null {
  const s = read();
  if (!s || s.origins.length < 2) return null;
  const at = s.origins.indexOf(s.current);
  const current = s.origins[(at + 1) % s.origins.length]!;
  sessionStorage.setItem(KEY, JSON.stringify({ ...s, current } satisfies NodesState));
  return current;
}

/** A viewing's stream URLs made absolute on the node that handed them out (wsFlv as a ws: URL). */
export function streamUrlsOnNode<T extends { hls: string; wsFlv: string; whep: string }>(urls: T): T {
  const ws = (u: string) => (/^wss?:/.test(u) ? u : /^https?:/.test(u) ? u.replace(/^http/, 'ws') : wsOnNode(u));
  return { ...urls, hls: onNode(urls.hls), wsFlv: ws(urls.wsFlv), whep: onNode(urls.whep) };
}

/**
 * The control WebSocket, as the pages use it: one connection per page that reconnects by itself
 * (backoff with jitter), requests matched to their replies, and walls followed by applying each
 * delta in version order (a gap means a missed message: subscribe again for a fresh snapshot).
 */
import { applyDelta, type TileStatus, type WallDelta, type WallView } from '../../../gateway/src/control/model.js';
import type { MessageType, Payload } from '../../../gateway/src/control/protocol.js';
import { api, refreshNodes } from './api.js';
import { apiBase, NODE_CHANGED, nextNode, wsOnNode } from './nodes.js';

const LIVENESS_EVERY_MS = 30_000;
const LIVENESS_TIMEOUT_MS = 10_000;

export type ConnectionState = 'connecting' | 'open' | 'closed';

export class ControlError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly body: Record<string, unknown>,
  ) {
    super(message);
  }
}

interface Pending {
  resolve(payload: unknown): void;
  reject(e: Error): void;
  timer: ReturnType<typeof setTimeout>;
}

type Listener = (payload: unknown) => void;

/** Messages beyond the wall protocol's table (vehicle subscriptions) are sent by name with a plain payload. */
type AnyType = MessageType | 'subscribe' | 'unsubscribe' | 'lock' | 'unlock' | 'ptz' | `vehicles.${string}` | `alarms.${string}` | `alarm.${string}`;
type PayloadOf<T extends AnyType> = T extends MessageType ? Payload<T> : Record<string, unknown>;

export class ControlConnection {
  private ws: WebSocket | null = null;
  private nextId = 1;
  private readonly pending = new Map<string, Pending>();
  private readonly listeners = new Map<string, Set<Listener>>();
  private readonly openHooks = new Set<() => void>();
  private readonly stateHooks = new Set<(s: ConnectionState) => void>();
  private attempt = 0;
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  private liveness: ReturnType<typeof setInterval> | undefined;
  private closedByUs = false;
  /** The node (apiBase) of the last connection that opened; null before the first. */
  private openedOn: string | null = null;
  state: ConnectionState = 'closed';

  constructor(
    private readonly token: () => string,
    private readonly path = '/api/control',
  ) {}

  connect(): void {
    this.closedByUs = false;
    this.setState('connecting');
    const url = wsOnNode(this.path);
    // A browser cannot set headers on the upgrade: the token rides as a subprotocol.
    const ws = new WebSocket(url, ['wallgate.v1', `bearer.${this.token()}`]);
    this.ws = ws;
    const node = apiBase();
    ws.onopen = () => {
      // A node may have joined or left since the list was read.
      if (this.attempt > 0) void refreshNodes();
      // Players waiting to retry against the node that failed try this one now.
      if (this.openedOn !== null && this.openedOn !== node) window.dispatchEvent(new Event(NODE_CHANGED));
      this.openedOn = node;
      this.attempt = 0;
      this.setState('open');
      for (const hook of this.openHooks) hook();
      // The server's pings are invisible to a page: a connection that died without a close (a cable,
      // a NAT) is found by asking something now and then, and replaced.
      clearInterval(this.liveness);
      this.liveness = setInterval(() => {
        this.request('walls.list', {}, LIVENESS_TIMEOUT_MS).catch((err: ControlError) => {
          if (err.code === 'TIMEOUT' && this.ws === ws) ws.close(4000, 'no answer');
        });
      }, LIVENESS_EVERY_MS);
    };
    ws.onmessage = (e) => this.receive(String(e.data));
    ws.onclose = (e) => {
      if (this.ws !== ws) return;
      this.ws = null;
      for (const [, p] of this.pending) {
        clearTimeout(p.timer);
        p.reject(new ControlError('DISCONNECTED', 'the connection to the gateway was lost', {}));
      }
      this.pending.clear();
      clearInterval(this.liveness);
      this.setState('closed');
      if (this.closedByUs) return;
      // 4001: the connection's token is no longer good. The page may hold a renewed one; if not, the
      // check goes to sign in. A refused upgrade (a revoked token) looks like a plain drop (1006): check too.
      if (e.code === 4001 || (this.attempt > 0 && this.attempt % 3 === 0)) void api('GET', '/api/auth/me').catch(() => {});
      // Two failures in a row: in a cluster, the next attempt goes to another node (nothing happens
      // without a node list: one gateway, or one origin behind a proxy, which fails over by itself).
      if (this.attempt >= 1) nextNode();
      // Capped low: a wall screen should be back within seconds of the gateway.
      const delay = Math.min(5_000, 500 * 2 ** this.attempt++) * (0.75 + Math.random() * 0.5);
      this.retryTimer = setTimeout(() => this.connect(), delay);
    };
  }

  close(): void {
    this.closedByUs = true;
    clearTimeout(this.retryTimer);
    clearInterval(this.liveness);
    this.ws?.close(1000);
  }

  /** Runs now if connected, and again after every reconnection (to subscribe again). */
  onOpen(hook: () => void): () => void {
    this.openHooks.add(hook);
    if (this.state === 'open') hook();
    return () => this.openHooks.delete(hook);
  }

  onState(hook: (s: ConnectionState) => void): void {
    this.stateHooks.add(hook);
  }

  on(type: string, listener: Listener): () => void {
    let set = this.listeners.get(type);
    if (!set) this.listeners.set(type, (set = new Set()));
    set.add(listener);
    return () => set.delete(listener);
  }

  request<R = Record<string, unknown>, T extends AnyType = AnyType>(type: T, payload: PayloadOf<T>, timeoutMs = 10_000): Promise<R> {
    const ws = this.ws;
    if (!ws || this.state !== 'open') return Promise.reject(new ControlError('DISCONNECTED', 'not connected to the gateway', {}));
    const id = `c${this.nextId++}`;
    return new Promise<R>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new ControlError('TIMEOUT', `no answer to ${type} within ${timeoutMs / 1000} s`, {}));
      }, timeoutMs);
      this.pending.set(id, { resolve: resolve as (p: unknown) => void, reject, timer });
      ws.send(JSON.stringify({ type, id, payload }));
    });
  }

  private setState(s: ConnectionState) {
    this.state = s;
    for (const hook of this.stateHooks) hook(s);
  }

  private receive(text: string) {
    let msg: { type: string; id?: string | null; payload?: unknown; code?: string; message?: string };
    try {
      msg = JSON.parse(text) as typeof msg;
    } catch {
      return;
    }
    const pending = msg.id ? this.pending.get(String(msg.id)) : undefined;
    if (pending && (msg.type === 'ack' || msg.type === 'error')) {
      this.pending.delete(String(msg.id));
      clearTimeout(pending.timer);
      if (msg.type === 'ack') pending.resolve(msg.payload);
      else pending.reject(new ControlError(msg.code ?? 'ERROR', msg.message ?? 'refused', msg as Record<string, unknown>));
      return;
    }
    for (const l of this.listeners.get(msg.type) ?? []) l(msg.payload);
  }
}

/**
 * A subscription kept for as long as it is wanted: asked on every (re)connection, since its answer
 * is the state as it is now and whatever was pushed while the connection was down is gone. A refusal
 * or a timeout (the rate limit, a busy gateway) is tried again with backoff, or the page would show
 * stale data without a word until the next reconnection; a lost connection stops the tries, and the
 * next open starts them again. `attempt` sends the request and takes its answer; it throws to fail.
 */
export class LiveSubscription {
  private running: Promise<void> | null = null;
  private stopped = false;
  private readonly offOpen: () => void;

  constructor(
    private readonly conn: ControlConnection,
    private readonly attempt: () => Promise<void>,
    /** Told of each failed attempt (`tries` from 1) and when the next one goes. */
    private readonly onFailure: (err: unknown, tries: number, retryInMs: number) => void = () => {},
  ) {
    this.offOpen = conn.onOpen(() => void this.refresh());
  }

  /** Subscribes again now, for a fresh answer; joins an attempt already under way. */
  refresh(): Promise<void> {
    this.running ??= this.run().finally(() => (this.running = null));
    return this.running;
  }

  stop(): void {
    this.stopped = true;
    this.offOpen();
  }

  private async run(): Promise<void> {
    for (let tries = 1; !this.stopped && this.conn.state === 'open'; tries++) {
      try {
        await this.attempt();
        return;
      } catch (e) {
        if ((e as ControlError).code === 'DISCONNECTED' || this.stopped) return;
        const delay = Math.min(10_000, 500 * 2 ** (tries - 1));
        this.onFailure(e, tries, delay);
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  }
}

export interface WallListing {
  id: string;
  name: string;
  screens: WallView['screens'];
  version: number;
}

/** The walls the user may see, by name. */
export async function listWalls(conn: ControlConnection): Promise<WallListing[]> {
  const { walls } = await conn.request<{ walls: WallListing[] }, 'walls.list'>('walls.list', {});
  return walls.sort((a, b) => a.name.localeCompare(b.name));
}

export interface WallChange {
  wall: WallView;
  /** Tiles whose content, stream, lock or place changed; every tile after a snapshot or a new layout. */
  tiles: Set<string>;
  /** The deltas applied (none for a snapshot), for a log of who changed what. */
  deltas: WallDelta[];
  snapshot: boolean;
}

/** One wall kept current over the connection: the snapshot, then every delta and status change. */
export class WallFollower {
  wall: WallView | null = null;
  readonly status = new Map<string, TileStatus>();
  presets: Array<{ id: string; kind: string; name: string; priority: number | null }> = [];
  private readonly offs: Array<() => void> = [];
  private readonly changeHooks = new Set<(c: WallChange) => void>();
  private readonly statusHooks = new Set<(tileIds: string[]) => void>();
  private readonly removedHooks = new Set<() => void>();
  private readonly subscription: LiveSubscription;
  private stopped = false;

  constructor(
    private readonly conn: ControlConnection,
    readonly wallId: string,
  ) {
    this.offs.push(
      conn.on('wall.deltas', (p) => this.deltas(p as { wallId: string; deltas: WallDelta[] })),
      conn.on('wall.status', (p) => this.statusChanged(p as { wallId: string; tiles: Record<string, TileStatus | null> })),
      conn.on('wall.snapshot', (p) => this.snapshot(p as { wall: WallView; status: Record<string, TileStatus> })),
      conn.on('wall.presets', (p) => {
        const { wallId, presets } = p as { wallId: string; presets: WallFollower['presets'] };
        if (wallId === this.wallId) this.presets = presets;
      }),
      conn.on('wall.removed', (p) => {
        if ((p as { wallId: string }).wallId !== this.wallId) return;
        this.wall = null;
        for (const hook of this.removedHooks) hook();
      }),
    );
    this.subscription = new LiveSubscription(conn, () => this.trySubscribe());
  }

  onChange(hook: (c: WallChange) => void): void {
    this.changeHooks.add(hook);
  }
  onStatus(hook: (tileIds: string[]) => void): void {
    this.statusHooks.add(hook);
  }
  onRemoved(hook: () => void): void {
    this.removedHooks.add(hook);
  }

  stop(): void {
    this.stopped = true;
    this.subscription.stop();
    for (const off of this.offs.splice(0)) off();
    if (this.conn.state === 'open') this.conn.request('unsubscribe', { wallId: this.wallId }).catch(() => {});
  }

  /**
   * Subscribes (again): the answer is the wall now, which replaces whatever was held. One at a time,
   * tried again until it answers, or the follower would ignore every delta.
   */
  subscribe(): Promise<void> {
    return this.subscription.refresh();
  }

  private async trySubscribe(): Promise<void> {
    let snap: { wall: WallView; status: Record<string, TileStatus> };
    try {
      snap = await this.conn.request('subscribe', { wallId: this.wallId });
    } catch (e) {
      // No such wall (or no longer in scope) is an answer, not a failure to try again.
      if ((e as ControlError).code !== 'GW_ERR_NOT_FOUND') throw e;
      if (this.stopped) return;
      this.wall = null;
      for (const hook of this.removedHooks) hook();
      return;
    }
    if (this.stopped) return;
    this.snapshot(snap);
    const { presets } = await this.conn.request<{ presets: WallFollower['presets'] }>('presets.list', { wallId: this.wallId });
    this.presets = presets;
  }

  private snapshot({ wall, status }: { wall: WallView; status: Record<string, TileStatus> }) {
    if (wall.id !== this.wallId) return;
    wall.popups ??= {};
    this.wall = wall;
    this.status.clear();
    for (const [id, s] of Object.entries(status)) this.status.set(id, s);
    this.emit({ wall, tiles: new Set(Object.keys(wall.tiles)), deltas: [], snapshot: true });
  }

  private deltas({ wallId, deltas }: { wallId: string; deltas: WallDelta[] }) {
    const wall = this.wall;
    if (wallId !== this.wallId || !wall) return;
    const tiles = new Set<string>();
    const applied: WallDelta[] = [];
    for (const d of deltas) {
      if (d.version <= wall.version) continue;
      if (!applyDelta(wall, d)) {
        void this.subscribe();
        return;
      }
      applied.push(d);
      if (d.regions) for (const id of Object.keys(wall.tiles)) tiles.add(id);
      for (const t of d.tiles ?? []) tiles.add(t.id);
      for (const c of d.changes ?? []) tiles.add(c.id);
      for (const p of d.popups ?? []) for (const id of Object.keys(p.tiles)) tiles.add(id);
    }
    if (applied.length > 0) this.emit({ wall, tiles, deltas: applied, snapshot: false });
  }

  private statusChanged({ wallId, tiles }: { wallId: string; tiles: Record<string, TileStatus | null> }) {
    if (wallId !== this.wallId) return;
    for (const [id, s] of Object.entries(tiles)) {
      if (s) this.status.set(id, s);
      else this.status.delete(id);
    }
    for (const hook of this.statusHooks) hook(Object.keys(tiles));
  }

  private emit(c: WallChange) {
    for (const hook of this.changeHooks) hook(c);
  }
}

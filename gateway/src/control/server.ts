import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocket, WebSocketServer, type RawData } from 'ws';
import { allows } from '../auth/roles.js';
import { GatewayError, errorBody, reasoned, type ErrorCode } from '../errors.js';
import { guardSocket, HeldSockets } from '../lib/sockets.js';
import type { TileStatus, WallDelta, WallView } from './model.js';
import { frame, type ServerMessage } from './messages.js';
import { isMessageType, validatePayload, type MessageType } from './protocol.js';
import { requirePermission, type ControlActor, type ControlConfig, type WallService } from './walls.js';
import type { StreamStatusSource } from './engine.js';

/** The subprotocol a client offers; a browser, which cannot set headers, adds `bearer.<token>` beside it. */
export const CONTROL_PROTOCOL = 'wallgate.v1';
const BEARER_PROTOCOL = 'bearer.';

interface Logger {
  info(o: object, m: string): void;
  warn(o: object, m: string): void;
  debug(o: object, m: string): void;
}

export interface ControlAuth {
  authenticate(token: string, ip: string): Promise<ControlActor | null>;
  /** The actor, or why the token no longer signs in (signed out, expired, account changed): the close reason at a heartbeat. */
  check(token: string, ip: string): Promise<ControlActor | { refused: string }>;
}

/** A token bucket: `perSecond` sustained, `burst` at once. */
class RateLimit {
  private tokens: number;
  private last = performance.now();
  constructor(
    private readonly perSecond: number,
    private readonly burst: number,
  ) {
    this.tokens = burst;
  }
  take(): boolean {
    const now = performance.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.perSecond);
    this.last = now;
    if (this.tokens < 1) return false;
    this.tokens--;
    return true;
  }
}

/** A connected client as an extension sees it. */
export interface ControlPeer {
  readonly actor: ControlActor;
  /** Sends a frame unless the client is too far behind or gone (then false: send the latest state later). */
  send(frame: Buffer): boolean;
}

/**
 * Messages beyond walls, on the same connection: the vehicles module's feed and subscriptions,
 * wired in app.ts. The extension checks its own permissions and scope on every message.
 */
export interface ControlExtension {
  handles(type: string): boolean;
  /** Resolves with the acknowledgement payload; throws a GatewayError to answer with an error. */
  handle(peer: ControlPeer, type: string, payload: unknown): unknown;
  /** May this actor connect for the extension's sake (a feed account that sees no walls)? */
  admits(actor: ControlActor): boolean;
  /** After the heartbeat re-read the actor: drop what it may no longer see. */
  rechecked(peer: ControlPeer): void;
  /** The peer fell behind, had frames held back, and has drained: send it what it missed. */
  resynced(peer: ControlPeer): void;
  closed(peer: ControlPeer): void;
}

class Connection implements ControlPeer {
  alive = true;
  /** Past the slow-client threshold: changes are held back, and a snapshot follows once it drains. */
  behindSince: number | null = null;
  /** The version each subscribed wall was last sent at. */
  readonly walls = new Map<string, number>();
  readonly rate: RateLimit;
  constructor(
    readonly ws: WebSocket,
    public actor: ControlActor,
    readonly token: string,
    config: ControlConfig,
  ) {
    this.rate = new RateLimit(config.rate.perSecond, config.rate.burst);
  }
  /** Set by the server, which knows the slow-client rules. */
  send: (frame: Buffer) => boolean = () => false;
}

interface PendingFlush {
  /** Versions and their JSON, in order. */
  deltas: { version: number; json: string }[];
  timer: NodeJS.Timeout | NodeJS.Immediate | null;
  lastFlush: number;
}


/** Clients pinged per turn of the event loop. */
const BEAT_SLICE = 100;

/**
 * The control WebSocket: authenticated at the upgrade, one `{type, id, payload}` envelope, an ack or
 * an error for every message, and each subscribed wall's deltas in version order. Changes to a wall
 * are batched into one frame per flush interval under load and serialised once for every client.
 */
export class ControlServer {
  private readonly wss: WebSocketServer;
  private readonly clients = new Set<Connection>();
  private readonly subscribers = new Map<string, Set<Connection>>();
  private readonly pending = new Map<string, PendingFlush>();
  /** Tiles changed since a wall's last flush ('all' after a new layout). */
  private readonly changedTiles = new Map<string, Set<string> | 'all'>();
  /** The last tile states sent per wall, so only changes go out. */
  private readonly sentStatus = new Map<string, Map<string, string>>();
  private readonly heartbeat: NodeJS.Timeout;
  private slowCheck: NodeJS.Timeout | null = null;
  private closed = false;
  /** Every control socket from its upgrade on, signed in or still being authenticated. */
  private readonly held = new HeldSockets();
  private readonly extensions: ControlExtension[] = [];

  constructor(
    private readonly walls: WallService,
    private readonly auth: ControlAuth,
    private readonly status: StreamStatusSource,
    private readonly config: ControlConfig,
    private readonly log: Logger,
  ) {
    this.wss = new WebSocketServer({
      noServer: true,
      clientTracking: false,
      // Over maxMessageBytes a message is answered with an error; far over it the connection is closed (1009) before it is buffered.
      maxPayload: config.maxMessageBytes * 4,
      perMessageDeflate: false,
      handleProtocols: (offered) => (offered.has(CONTROL_PROTOCOL) ? CONTROL_PROTOCOL : false),
    });
    walls.watchers = (wallId) => this.subscribers.get(wallId)?.size ?? 0;
    walls.on('delta', (d, json) => this.queueDelta(d, json));
    walls.on('removed', (wallId) => this.wallRemoved(wallId));
    walls.on('reset', (wallId) => this.wallReset(wallId));
    walls.on('presets', (wallId) => this.broadcast(wallId, frame({ type: 'wall.presets', payload: { wallId, presets: this.walls.presetRows(wallId) } })));
    status.onChange((cameraId) => this.cameraChanged(cameraId));
    this.heartbeat = setInterval(() => this.beat(), config.heartbeatMs);
    this.heartbeat.unref();
  }

  extend(extension: ControlExtension) {
    this.extensions.push(extension);
  }

  get connections(): number {
    return this.clients.size;
  }

  /** Takes the upgrade if it is for the control path; returns false otherwise. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): boolean {
    guardSocket(socket);
    if ((req.url ?? '').split('?')[0] !== this.config.path) return false;
    this.held.add(socket);
    const reject = (code: ErrorCode, message: string) => {
      const err = new GatewayError(code, message);
      this.log.info({ code, ip: req.socket.remoteAddress, origin: req.headers.origin }, 'control connection refused');
      if (socket.destroyed) return;
      const body = JSON.stringify({ code, message });
      socket.end(
        `HTTP/1.1 ${err.statusCode} ${code}\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
      );
    };
    if (this.closed) return (reject('GW_ERR_UNAVAILABLE', 'the gateway is shutting down'), true);
    const origin = req.headers.origin;
    if (origin && !this.originAllowed(origin, req.headers.host)) return (reject('GW_ERR_FORBIDDEN', `origin ${origin} is not allowed (control.allowedOrigins)`), true);
    const token = tokenOf(req);
    if (!token) return (reject('GW_ERR_UNAUTHENTICATED', `sign in first: send "Authorization: Bearer <token>" or offer the subprotocols ${CONTROL_PROTOCOL} and bearer.<token>`), true);
    if (this.clients.size >= this.config.maxConnections) return (reject('GW_ERR_CAPACITY', `the gateway holds its maximum of ${this.config.maxConnections} control connections (control.maxConnections)`), true);
    const ip = req.socket.remoteAddress ?? '-';
    this.auth
      .authenticate(token, ip)
      .then((actor) => {
        if (!actor) return reject('GW_ERR_UNAUTHENTICATED', 'the token is invalid, expired or revoked');
        if (!allows(actor.roles, 'walls:read') && !this.extensions.some((e) => e.admits(actor))) {
          return reject('GW_ERR_FORBIDDEN', 'your roles allow nothing on this connection (walls:read, vehicles:read or vehicles:feed)');
        }
        if (socket.destroyed) return;
        this.wss.handleUpgrade(req, socket, head, (ws) => this.accept(ws, actor, token));
      })
      .catch((err: Error) => {
        this.log.warn({ err: err.message }, 'control upgrade failed');
        reject('GW_ERR_INTERNAL', 'internal error');
      });
    return true;
  }

  /** More origins to let in (cluster mode: the other nodes', so a page fails over to this node); app.ts sets it. */
  trustOrigin: (origin: string) => boolean = () => false;

  private originAllowed(origin: string, host: string | undefined): boolean {
    if (this.config.allowedOrigins.includes(origin) || this.trustOrigin(origin)) return true;
    try {
      return new URL(origin).host === host;
    } catch {
      return false;
    }
  }

  private accept(ws: WebSocket, actor: ControlActor, token: string) {
    const client = new Connection(ws, actor, token, this.config);
    client.send = (frame) => this.send(client, frame);
    this.clients.add(client);
    this.log.debug({ user: actor.username, connections: this.clients.size }, 'control client connected');
    ws.on('pong', () => (client.alive = true));
    ws.on('message', (data, isBinary) => this.onMessage(client, data, isBinary));
    ws.on('error', () => ws.terminate());
    ws.on('close', () => this.forget(client));
    if (this.closed) ws.close(1001, 'gateway shutting down');
  }

  private forget(client: Connection) {
    this.clients.delete(client);
    for (const wallId of [...client.walls.keys()]) this.unsubscribe(client, wallId);
    for (const e of this.extensions) e.closed(client);
  }

  // ---- messages ------------------------------------------------------------------------------

  private reply(client: Connection, message: ServerMessage<'ack' | 'error' | 'wall.removed'>) {
    if (client.ws.readyState === WebSocket.OPEN) client.ws.send(frame(message), { binary: false });
  }

  private fail(client: Connection, id: string | number | null | undefined, err: unknown) {
    const e = err instanceof GatewayError ? err : null;
    if (!e) this.log.warn({ err: (err as Error)?.message, user: client.actor.username }, 'control message failed');
    this.reply(client, {
      type: 'error',
      id: id ?? null,
      ...(e ? errorBody(e) : { code: 'GW_ERR_INTERNAL', message: 'internal error' }),
    });
  }

  private onMessage(client: Connection, data: RawData, isBinary: boolean) {
    const bytes = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer);
    const envelope = isBinary
      ? { id: null, error: new GatewayError('GW_ERR_BAD_MESSAGE', 'messages are JSON text frames') }
      : bytes.length > this.config.maxMessageBytes
        ? { id: null, error: reasoned('GW_ERR_PAYLOAD_TOO_LARGE', 'message', { limit: this.config.maxMessageBytes }, `a message may have at most ${this.config.maxMessageBytes} bytes (control.maxMessageBytes)`) }
        : parseEnvelope(bytes, (type) => isMessageType(type) || this.extensions.some((e) => e.handles(type)));
    // Every message counts against the rate, malformed ones too: each costs an answer.
    if (!client.rate.take()) {
      return this.fail(client, envelope.id, reasoned('GW_ERR_RATE_LIMITED', 'messages', { perSecond: this.config.rate.perSecond }, `more than ${this.config.rate.perSecond} messages a second (control.rate); this one was dropped`));
    }
    if ('error' in envelope) return this.fail(client, envelope.id, envelope.error);
    const { type, id, payload } = envelope;
    const ref = id === null ? null : String(id);
    const body = payload ?? {};
    let result: Promise<unknown>;
    try {
      const extension = isMessageType(type) ? undefined : this.extensions.find((e) => e.handles(type));
      if (extension) {
        const answer = extension.handle(client, type, body);
        if (!(answer instanceof Promise)) return this.reply(client, { type: 'ack', id, payload: answer ?? {} });
        result = answer;
      } else {
      // Answered at once: the snapshot is serialised at the version recorded for the client, before any other change runs.
      if (type === 'subscribe') return this.reply(client, { type: 'ack', id, payload: this.subscribe(client, validatePayload(type, body).wallId) });
      if (type === 'unsubscribe') return this.reply(client, { type: 'ack', id, payload: this.unsubscribe(client, validatePayload(type, body).wallId) });
        result = this.walls.execute(client.actor, type as MessageType, body, ref);
      }
    } catch (err) {
      return this.fail(client, id, err);
    }
    result.then(
      (ack) => this.reply(client, { type: 'ack', id: id ?? null, payload: ack ?? {} }),
      (err) => this.fail(client, id, err),
    );
  }

  private subscribe(client: Connection, wallId: string) {
    requirePermission(client.actor, 'subscribe');
    const wall = this.walls.snapshot(client.actor, wallId);
    if (!client.walls.has(wallId) && client.walls.size >= this.config.maxSubscriptions) {
      throw reasoned('GW_ERR_CAPACITY', 'subscriptions', { limit: this.config.maxSubscriptions }, `a connection may follow at most ${this.config.maxSubscriptions} walls (control.maxSubscriptions)`);
    }
    let set = this.subscribers.get(wallId);
    if (!set) this.subscribers.set(wallId, (set = new Set()));
    set.add(client);
    // Deltas still waiting for the next flush are at or below this version: this client skips them.
    client.walls.set(wallId, wall.version);
    return { wall, status: this.statusOf(wall) };
  }

  private unsubscribe(client: Connection, wallId: string) {
    client.walls.delete(wallId);
    const subs = this.subscribers.get(wallId);
    subs?.delete(client);
    // What was sent to screens no longer following says nothing about what the next one was told.
    if (subs?.size === 0) {
      this.subscribers.delete(wallId);
      this.sentStatus.delete(wallId);
    }
    return { wallId };
  }

  // ---- fan-out -------------------------------------------------------------------------------

  private queueDelta(delta: WallDelta, json: string) {
    let p = this.pending.get(delta.wallId);
    if (!p) this.pending.set(delta.wallId, (p = { deltas: [], timer: null, lastFlush: 0 }));
    p.deltas.push({ version: delta.version, json });
    this.pendingTiles(delta);
    if (p.timer) return;
    // A quiet wall's change goes out on this turn; under a burst, at most one frame per interval.
    const wait = p.lastFlush + this.config.flushIntervalMs - performance.now();
    p.timer = wait <= 0 ? setImmediate(() => this.flush(delta.wallId)) : setTimeout(() => this.flush(delta.wallId), wait);
  }

  private flush(wallId: string) {
    const p = this.pending.get(wallId);
    if (!p) return;
    const deltas = p.deltas;
    p.deltas = [];
    p.timer = null;
    p.lastFlush = performance.now();
    const changedTiles = this.changedTiles.get(wallId);
    this.changedTiles.delete(wallId);
    const subs = this.subscribers.get(wallId);
    if (!subs?.size || deltas.length === 0) return;
    const first = deltas[0]!.version;
    const last = deltas[deltas.length - 1]!.version;
    // Each delta's JSON is model.ts's WallDelta, serialised once for every subscriber; messages.ts checks that type against the schema of wall.deltas.
    const deltasFrom = (from: number) =>
      Buffer.from(`{"type":"wall.deltas","payload":{"wallId":${JSON.stringify(wallId)},"deltas":[${deltas.filter((d) => d.version > from).map((d) => d.json).join(',')}]}}`);
    let shared: Buffer | null = null;
    for (const client of subs) {
      const seen = client.walls.get(wallId) ?? last;
      if (seen >= last || client.behindSince !== null) continue;
      if (this.send(client, seen < first ? (shared ??= deltasFrom(first - 1)) : deltasFrom(seen))) client.walls.set(wallId, last);
    }
    if (changedTiles === 'all') this.sendStatus(wallId);
    else if (changedTiles?.size) this.sendStatus(wallId, changedTiles);
  }

  /** Sends unless the client is too far behind; such a client is marked and later resynchronised or dropped. */
  private send(client: Connection, frame: Buffer): boolean {
    const ws = client.ws;
    if (ws.readyState !== WebSocket.OPEN || client.behindSince !== null) return false;
    if (ws.bufferedAmount > this.config.slowClientBytes) {
      client.behindSince = performance.now();
      this.log.info({ user: client.actor.username, queued: ws.bufferedAmount }, 'control client is slow: holding changes back until it drains');
      this.slowCheck ??= setInterval(() => this.checkSlow(), Math.min(250, this.config.slowClientTimeoutMs / 4));
      return false;
    }
    ws.send(frame, { binary: false });
    return true;
  }

  private checkSlow() {
    let behind = 0;
    const now = performance.now();
    for (const client of this.clients) {
      if (client.behindSince === null) continue;
      const queued = client.ws.bufferedAmount;
      if (queued <= this.config.slowClientBytes / 2) {
        client.behindSince = null;
        for (const e of this.extensions) e.resynced(client);
        // A fresh picture instead of the backlog it missed.
        for (const wallId of [...client.walls.keys()]) this.sendSnapshot(client, wallId);
      } else if (now - client.behindSince > this.config.slowClientTimeoutMs || queued > this.config.slowClientBytes * 4) {
        this.log.warn({ user: client.actor.username, queued }, 'control client too slow: disconnected');
        client.ws.terminate();
      } else behind++;
    }
    if (behind === 0 && this.slowCheck) {
      clearInterval(this.slowCheck);
      this.slowCheck = null;
    }
  }

  /** The wall now, replacing whatever the client held; deltas still queued for it at or below this version are skipped. */
  private sendSnapshot(client: Connection, wallId: string) {
    try {
      const wall = this.walls.snapshot(client.actor, wallId);
      client.walls.set(wallId, wall.version);
      client.ws.send(frame({ type: 'wall.snapshot', payload: { wall, status: this.statusOf(wall) } }), { binary: false });
      client.ws.send(frame({ type: 'wall.presets', payload: { wallId, presets: this.walls.presetRows(wallId) } }), { binary: false });
    } catch {
      this.unsubscribe(client, wallId);
      client.ws.send(frame({ type: 'wall.removed', payload: { wallId } }), { binary: false });
    }
  }

  /** Cluster mode: the wall was reloaded past versions this node never emitted, so its screens start again from a snapshot. */
  private wallReset(wallId: string) {
    for (const client of [...(this.subscribers.get(wallId) ?? [])]) {
      // A slow client gets its snapshot when it drains.
      if (client.ws.readyState === WebSocket.OPEN && client.behindSince === null) this.sendSnapshot(client, wallId);
    }
  }

  private broadcast(wallId: string, frame: Buffer) {
    for (const client of this.subscribers.get(wallId) ?? []) this.send(client, frame);
  }

  private wallRemoved(wallId: string) {
    this.broadcast(wallId, frame({ type: 'wall.removed', payload: { wallId } }));
    for (const client of this.subscribers.get(wallId) ?? []) client.walls.delete(wallId);
    this.subscribers.delete(wallId);
    const p = this.pending.get(wallId);
    if (p?.timer) (clearTimeout(p.timer as NodeJS.Timeout), clearImmediate(p.timer as NodeJS.Immediate));
    this.pending.delete(wallId);
    this.changedTiles.delete(wallId);
    this.sentStatus.delete(wallId);
  }

  // ---- tile status ---------------------------------------------------------------------------

  /** Every tile's stream state now. */
  statusOf(wall: WallView): Record<string, TileStatus> {
    const out: Record<string, TileStatus> = {};
    for (const t of Object.values(wall.tiles)) if (t.stream) out[t.id] = this.status.statusOf(t.stream.cameraId, t.stream.profile);
    return out;
  }

  /** Sends the tiles of `wallId` whose status differs from what was last sent; limited to `tileIds` when given. */
  private sendStatus(wallId: string, tileIds?: Iterable<string>) {
    const subs = this.subscribers.get(wallId);
    if (!subs?.size) return;
    const wall = this.walls.peek(wallId);
    if (!wall) return;
    let sent = this.sentStatus.get(wallId);
    if (!sent) this.sentStatus.set(wallId, (sent = new Map()));
    const changed: Record<string, TileStatus | null> = {};
    let any = false;
    for (const id of tileIds ?? Object.keys(wall.tiles)) {
      const t = wall.tiles[id];
      const s = t?.stream ? this.status.statusOf(t.stream.cameraId, t.stream.profile) : null;
      const key = t?.stream && s ? statusKey(s) : '';
      if ((sent.get(id) ?? '') === key) continue;
      if (key) sent.set(id, key);
      else sent.delete(id);
      changed[id] = s;
      any = true;
    }
    if (any) this.broadcast(wallId, frame({ type: 'wall.status', payload: { wallId, tiles: changed } }));
  }

  /** Remembers which tiles a delta touched, for the status check after the next flush. */
  private pendingTiles(delta: WallDelta) {
    const current = this.changedTiles.get(delta.wallId);
    if (current === 'all') return;
    if (delta.regions) return void this.changedTiles.set(delta.wallId, 'all');
    const set = current ?? new Set<string>();
    for (const t of delta.changes ?? []) set.add(t.id);
    this.changedTiles.set(delta.wallId, set);
  }

  private cameraChanged(cameraId: string) {
    for (const wallId of this.subscribers.keys()) {
      const wall = this.walls.peek(wallId);
      if (!wall) continue;
      const tiles = Object.values(wall.tiles).filter((t) => t.stream?.cameraId === cameraId).map((t) => t.id);
      if (tiles.length) this.sendStatus(wallId, tiles);
    }
  }

  // ---- liveness ------------------------------------------------------------------------------

  /**
   * Pings every client and drops those that missed the last ping; re-checks each distinct token once.
   * Done in slices that yield to the event loop, so a thousand screens do not stall the changes in flight.
   */
  private beat() {
    const clients = [...this.clients];
    const checked = new Map<string, Promise<ControlActor | { refused: string }>>();
    const slice = (from: number) => {
      for (const client of clients.slice(from, from + BEAT_SLICE)) {
        if (client.ws.readyState !== WebSocket.OPEN) continue;
        if (!client.alive) {
          this.log.info({ user: client.actor.username }, 'control client missed its heartbeat: dropped');
          client.ws.terminate();
          continue;
        }
        client.alive = false;
        client.ws.ping();
        // Roles, scopes and passwords change, users sign out; a token that no longer signs in ends the connection.
        let verdict = checked.get(client.token);
        if (!verdict) checked.set(client.token, (verdict = this.auth.check(client.token, client.actor.ip).catch(() => client.actor)));
        void verdict.then((actor) => {
          if ('refused' in actor) return client.ws.close(4001, actor.refused);
          client.actor = { ...actor, ip: client.actor.ip };
          this.recheckSubscriptions(client);
        });
      }
      if (from + BEAT_SLICE < clients.length) setImmediate(() => slice(from + BEAT_SLICE));
    };
    slice(0);
  }

  /** A department moved out of the user's scope takes its walls with it. */
  private recheckSubscriptions(client: Connection) {
    for (const e of this.extensions) e.rechecked(client);
    for (const wallId of [...client.walls.keys()]) {
      try {
        this.walls.snapshot(client.actor, wallId);
      } catch {
        this.unsubscribe(client, wallId);
        this.reply(client, { type: 'wall.removed', payload: { wallId } });
      }
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.heartbeat);
    if (this.slowCheck) clearInterval(this.slowCheck);
    for (const p of this.pending.values()) if (p.timer) (clearTimeout(p.timer as NodeJS.Timeout), clearImmediate(p.timer as NodeJS.Immediate));
    for (const client of this.clients) client.ws.close(1001, 'gateway shutting down');
    // A client that does not read never answers the close, and a connection still being signed in is
    // accepted into a closing server: after a second, whatever socket is left is destroyed.
    await this.held.drain(1_000);
    this.wss.close();
  }
}

/** A tile's status describes whatever it shows: a new camera in the same state needs no message. */
const statusKey = (s: TileStatus) => `${s.state}|${s.reason ?? ''}`;

type Envelope = { id: string | number | null; error: GatewayError } | { id: string | number | null; type: string; payload: unknown };

/** `{type, id, payload}`, or the reason it is not one (with the id, when it could be read). */
function parseEnvelope(bytes: Buffer, isKnownType: (type: string) => boolean): Envelope {
  let message: unknown;
  try {
    message = JSON.parse(bytes.toString('utf8'));
  } catch {
    return { id: null, error: new GatewayError('GW_ERR_BAD_MESSAGE', 'not valid JSON') };
  }
  if (!message || typeof message !== 'object' || Array.isArray(message)) {
    return { id: null, error: new GatewayError('GW_ERR_BAD_MESSAGE', 'expected an object {type, id, payload}') };
  }
  const { type, id, payload } = message as { type?: unknown; id?: unknown; payload?: unknown };
  if (id !== undefined && !((typeof id === 'string' && id.length <= 64) || Number.isSafeInteger(id))) {
    return { id: null, error: new GatewayError('GW_ERR_BAD_MESSAGE', 'id: expected a string of at most 64 characters or an integer') };
  }
  const known = (id ?? null) as string | number | null;
  if (typeof type !== 'string') return { id: known, error: new GatewayError('GW_ERR_BAD_MESSAGE', 'type: expected a message type') };
  if (!isKnownType(type)) return { id: known, error: new GatewayError('GW_ERR_BAD_MESSAGE', `type: unknown message type "${type.slice(0, 64)}"`) };
  return { id: known, type, payload };
}

function tokenOf(req: IncomingMessage): string | null {
  const header = /^Bearer ([A-Za-z0-9._~+/=-]+)$/.exec(req.headers.authorization ?? '');
  if (header) return header[1]!;
  for (const p of (req.headers['sec-websocket-protocol'] ?? '').split(',')) {
    const v = p.trim();
    if (v.startsWith(BEARER_PROTOCOL) && /^[A-Za-z0-9._~-]+$/.test(v)) return v.slice(BEARER_PROTOCOL.length);
  }
  return null;
}

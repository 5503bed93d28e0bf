import { WebSocket, type ClientOptions } from 'ws';
import { applyDelta, type TileStatus, type WallDelta, type WallView } from '../../gateway/src/control/model.js';

/** A control-plane message from the gateway. */
export interface ServerMessage {
  type: string;
  id?: string | number | null;
  code?: string;
  message?: string;
  payload?: any;
  [key: string]: any;
}

export interface ControlClientOptions {
  /** Send the token as subprotocols (as a browser must) instead of an Authorization header. */
  viaSubprotocol?: boolean;
  origin?: string;
  /** Answer pings (default true); false plays a client that has died without closing. */
  autoPong?: boolean;
}

/**
 * A scripted operator or wall screen for tests and benchmarks: requests with matched replies, and
 * every subscribed wall kept up to date by applying its deltas in order.
 */
export class ControlClient {
  readonly messages: ServerMessage[] = [];
  readonly walls = new Map<string, WallView>();
  readonly status = new Map<string, Record<string, TileStatus>>();
  /** Deltas that did not follow the wall's version (must stay empty). */
  readonly gaps: { wallId: string; expected: number; got: number }[] = [];
  private readonly waiting = new Map<string, (m: ServerMessage) => void>();
  private readonly listeners = new Set<(m: ServerMessage) => void>();
  private nextId = 1;
  closed: { code: number; reason: string } | null = null;

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data) => this.onMessage(JSON.parse(String(data)) as ServerMessage));
    ws.on('close', (code, reason) => (this.closed = { code, reason: String(reason) }));
  }

  static connect(url: string, token: string | null, o: ControlClientOptions = {}): Promise<ControlClient> {
    const opts: ClientOptions = { autoPong: o.autoPong ?? true, perMessageDeflate: false, ...(o.origin ? { origin: o.origin } : {}) };
    const protocols = o.viaSubprotocol && token ? ['wallgate.v1', `bearer.${token}`] : ['wallgate.v1'];
    if (token && !o.viaSubprotocol) opts.headers = { authorization: `Bearer ${token}` };
    const ws = new WebSocket(url, protocols, opts);
    return new Promise((resolve, reject) => {
      ws.once('open', () => resolve(new ControlClient(ws)));
      ws.once('unexpected-response', (_req, res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (d: string) => (body += d));
        res.on('end', () => reject(Object.assign(new Error(`upgrade refused: ${res.statusCode} ${body}`), { status: res.statusCode, body })));
      });
      ws.once('error', reject);
    });
  }

  private onMessage(m: ServerMessage) {
    this.messages.push(m);
    if ((m.type === 'ack' || m.type === 'error') && m.id !== undefined && m.id !== null) {
      const done = this.waiting.get(String(m.id));
      if (done) {
        this.waiting.delete(String(m.id));
        done(m);
      }
    } else if (m.type === 'wall.deltas') {
      const wall = this.walls.get(m.payload.wallId);
      for (const d of m.payload.deltas as WallDelta[]) {
        if (wall && !applyDelta(wall, d)) this.gaps.push({ wallId: d.wallId, expected: wall.version + 1, got: d.version });
      }
    } else if (m.type === 'wall.snapshot') {
      this.walls.set(m.payload.wall.id, m.payload.wall);
      this.status.set(m.payload.wall.id, m.payload.status);
    } else if (m.type === 'wall.status') {
      Object.assign(this.status.get(m.payload.wallId) ?? {}, m.payload.tiles);
    } else if (m.type === 'wall.removed') {
      this.walls.delete(m.payload.wallId);
    }
    for (const l of this.listeners) l(m);
  }

  /** Sends a message and resolves with its ack or error. */
  request(type: string, payload: unknown = {}, id: string = `r${this.nextId++}`): Promise<ServerMessage> {
    return new Promise((resolve, reject) => {
      this.waiting.set(id, resolve);
      this.ws.send(JSON.stringify({ type, id, payload }), (err) => err && reject(err));
    });
  }

  /** Sends raw text or bytes, for malformed input. */
  sendRaw(data: string | Buffer, binary = false) {
    this.ws.send(data, { binary });
  }

  async subscribe(wallId: string): Promise<WallView> {
    const reply = await this.request('subscribe', { wallId });
    if (reply.type !== 'ack') throw new Error(`subscribe ${wallId}: ${reply.code} ${reply.message}`);
    this.walls.set(wallId, reply.payload.wall);
    this.status.set(wallId, reply.payload.status);
    return reply.payload.wall;
  }

  /** Resolves with the first message (already received or coming) that matches. */
  next(match: (m: ServerMessage) => boolean, timeoutMs = 5_000, fromIndex = 0): Promise<ServerMessage> {
    const seen = this.messages.slice(fromIndex).find(match);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.listeners.delete(listener);
        reject(new Error(`no matching message within ${timeoutMs} ms`));
      }, timeoutMs);
      const listener = (m: ServerMessage) => {
        if (!match(m)) return;
        clearTimeout(timer);
        this.listeners.delete(listener);
        resolve(m);
      };
      this.listeners.add(listener);
    });
  }

  /** Waits until a subscribed wall reaches a version. */
  async untilVersion(wallId: string, version: number, timeoutMs = 5_000): Promise<WallView> {
    const deadline = Date.now() + timeoutMs;
    while ((this.walls.get(wallId)?.version ?? -1) < version) {
      if (Date.now() > deadline) throw new Error(`wall ${wallId} stayed at version ${this.walls.get(wallId)?.version} (waiting for ${version})`);
      await this.next((m) => m.type === 'wall.deltas' || m.type === 'wall.snapshot', Math.max(1, deadline - Date.now()), this.messages.length).catch(() => undefined);
    }
    return this.walls.get(wallId)!;
  }

  close(): Promise<void> {
    if (this.closed || this.ws.readyState === WebSocket.CLOSED) return Promise.resolve();
    return new Promise((resolve) => {
      this.ws.once('close', () => resolve());
      this.ws.close();
      setTimeout(() => (this.ws.terminate(), resolve()), 1_000).unref();
    });
  }
}

/**
 * Simulated RTSP cameras for tests, benchmarks and the demo. Media comes from pre-encoded clips
 * that are packetized once per simulator; sending a frame costs one buffer copy, a few header
 * writes and one socket write, so one process can serve hundreds of cameras at 25 fps.
 *
 * Every camera has a live clock that runs from simulator start, offset by a per-camera phase so
 * that keyframes of different cameras do not all fall into the same tick.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import dgram from 'node:dgram';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { CLIP_KINDS, ensureClip, type Clip, type ClipKind } from './clips.js';

export interface CameraAuth {
  scheme: 'basic' | 'digest';
  username: string;
  password: string;
}

export interface CameraSpec {
  clip: ClipKind;
  auth?: CameraAuth;
}

export type Fault =
  /** Connections/requests for this camera are destroyed at once. */
  | { kind: 'refuse' }
  /** New requests get no response; playing sessions stop receiving media but stay connected. */
  | { kind: 'stall' }
  /** Closes every session of the camera now and refuses for forMs, then serves again. */
  | { kind: 'drop'; forMs: number }
  /** One-off: adds ms to the camera's RTP timestamps from now on. */
  | { kind: 'jump'; ms: number }
  /** Every response for this camera carries an extra header whose value is this many bytes. */
  | { kind: 'oversized-headers'; bytes: number };

export interface SimulatorOptions {
  host?: string;
  port?: number;
  /** Clip cache directory, passed to ensureClip. */
  clipsDir?: string;
  /** Largest RTP packet (header and payload) in bytes. */
  mtu?: number;
}

export interface SimulatorStats {
  connections: number;
  playing: number;
  perCamera: Record<string, { playing: number; describes: number; bytesSent: number }>;
}

const REALM = 'wallgate-sim';
const SERVER = 'wallgate-sim';
const PAYLOAD_TYPE = 96;
const FRAME_MS = 40;
const RTP_TICKS_PER_FRAME = 3600;
const RTP_TICKS_PER_MS = 90;
/** Shorter than a frame so a frame goes out at most ~10 ms late. */
const TICK_MS = 10;
const MAX_HEADER_BYTES = 16 * 1024;
const MAX_BODY_BYTES = 64 * 1024;
/** A client this far behind on TCP gets frames skipped up to the next keyframe. */
const MAX_QUEUED_BYTES = 4 * 1024 * 1024;
/** After an event-loop stall, older frames are dropped rather than sent in one burst. */
const MAX_BACKLOG_FRAMES = 25;
const SR_INTERVAL_MS = 5000;
const SESSION_TIMEOUT_S = 60;
const NAME_RE = /^[A-Za-z0-9_-]{1,64}$/;
const TRACK_RE = /^trackID=(\d+)$/;
/** Seconds from 1900 (NTP epoch) to 1970. */
const NTP_EPOCH_OFFSET = 2_208_988_800;
const SUPPORTED = 'OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN, GET_PARAMETER, SET_PARAMETER';
/** Real RTSP methods this server deliberately does not offer: 405 rather than 501. */
const NOT_ALLOWED = new Set(['PAUSE', 'ANNOUNCE', 'RECORD', 'REDIRECT']);

const STATUS_TEXT: Record<number, string> = {
  200: 'OK',
  400: 'Bad Request',
  401: 'Unauthorized',
  404: 'Not Found',
  405: 'Method Not Allowed',
  454: 'Session Not Found',
  455: 'Method Not Valid in This State',
  461: 'Unsupported Transport',
  500: 'Internal Server Error',
  501: 'Not Implemented',
};

/** A clip packetized for one MTU. */
interface MediaClip {
  clip: Clip;
  frames: PacketFrame[];
  /** The SDP media lines after `m=`. */
  sdpMedia: string[];
}

interface PacketFrame {
  key: boolean;
  /** Every RTP packet of the frame, `$`-framed, with channel, seq, timestamp and SSRC left zero. */
  template: Buffer;
  /** Where each packet's `$` starts in the template. */
  offsets: number[];
  payloadBytes: number;
}

interface Camera {
  /** The name in stats: the camera name, or `auto/<clip>/<rest>`. */
  key: string;
  auth: CameraAuth | null;
  kind: ClipKind;
  /** Frames added to the simulator clock, so cameras are not in lockstep. */
  phase: number;
  fault: Fault | null;
  /** performance.now() until which a 'drop' refuses requests. */
  refuseUntil: number;
  /** 90 kHz ticks added by 'jump' faults. */
  tsJump: number;
  describes: number;
  bytesSent: number;
  sessions: Set<Session>;
}

type Transport = { kind: 'tcp'; channel: number } | { kind: 'udp'; address: string; rtpPort: number; rtcpPort: number };

interface Session {
  id: string;
  conn: Conn;
  cam: Camera;
  media: MediaClip;
  transport: Transport;
  playing: boolean;
  ssrc: number;
  seq: number;
  tsBase: number;
  /** The next frame on the camera clock to send. */
  nextFrame: number;
  /** Skipping frames until a keyframe, after the client fell behind. */
  waitKey: boolean;
  packets: number;
  octets: number;
  lastSr: number;
}

interface Conn {
  socket: net.Socket;
  buf: Buffer;
  /** Requests are answered in order even though some handlers wait for a clip encode. */
  queue: Promise<void>;
  sessions: Map<string, Session>;
  /** Path of the last described or set-up camera, "/cam/x/", for relative request URLs. */
  base: string | null;
}

interface Request {
  method: string;
  url: string;
  headers: Map<string, string>;
  /** Why the request cannot be served, answered with 400. */
  bad: string | null;
}

interface Target {
  cam: Camera;
  /** "/cam/x" or "/auto/kind/rest", without a track suffix. */
  path: string;
}

export class CameraSimulator {
  readonly port: number;
  private readonly cameras = new Map<string, Camera>();
  private readonly autoCameras = new Map<string, Camera>();
  private readonly conns = new Set<Conn>();
  private readonly playing = new Set<Session>();
  private readonly mediaCache = new Map<ClipKind, Promise<MediaClip>>();
  private readonly nonceKey = randomBytes(32);
  private readonly t0 = performance.now();
  private timer: NodeJS.Timeout | null = null;
  private lastTickFrame = -1;
  private closing: Promise<void> | null = null;

  private constructor(
    private readonly server: net.Server,
    private readonly rtp: dgram.Socket,
    private readonly rtcp: dgram.Socket,
    private readonly host: string,
    private readonly opts: { clipsDir: string | undefined; mtu: number },
  ) {
    this.port = (server.address() as net.AddressInfo).port;
    server.on('connection', (socket) => this.accept(socket));
    // After listen succeeded, server errors (e.g. EMFILE on accept) must not crash the test process.
    server.on('error', () => {});
  }

  static async start(opts: SimulatorOptions = {}): Promise<CameraSimulator> {
    const host = opts.host ?? '127.0.0.1';
    const mtu = opts.mtu ?? 1400;
    if (!Number.isInteger(mtu) || mtu < 100 || mtu > 65_000) throw new Error(`mtu must be an integer in 100..65000, got ${mtu}`);
    const [rtp, rtcp] = await bindUdpPair(host);
    const server = net.createServer({ noDelay: true });
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(opts.port ?? 0, host, () => {
          server.off('error', reject);
          resolve();
        });
      });
    } catch (err) {
      rtp.close();
      rtcp.close();
      throw err;
    }
    return new CameraSimulator(server, rtp, rtcp, host, { clipsDir: opts.clipsDir, mtu });
  }

  addCamera(name: string, spec: CameraSpec): void {
    if (!NAME_RE.test(name)) throw new Error(`invalid camera name ${JSON.stringify(name)}: use [A-Za-z0-9_-]{1,64}`);
    if (this.cameras.has(name)) throw new Error(`camera ${name} exists`);
    if (!CLIP_KINDS.includes(spec.clip)) throw new Error(`unknown clip kind ${String(spec.clip)}`);
    this.cameras.set(name, this.newCamera(name, spec.clip, spec.auth ? { ...spec.auth } : null));
  }

  removeCamera(name: string): void {
    const cam = this.camera(name);
    this.cameras.delete(name);
    this.dropSessions(cam);
  }

  url(name: string, creds = false): string {
    const cam = this.camera(name);
    const user = creds && cam.auth ? `${encodeURIComponent(cam.auth.username)}:${encodeURIComponent(cam.auth.password)}@` : '';
    return `rtsp://${user}${this.authority()}/cam/${name}`;
  }

  setFault(name: string, fault: Fault): void {
    const cam = this.camera(name);
    switch (fault.kind) {
      case 'jump':
        cam.tsJump += Math.round(fault.ms * RTP_TICKS_PER_MS);
        return;
      case 'drop':
        cam.fault = null;
        cam.refuseUntil = performance.now() + fault.forMs;
        this.dropSessions(cam);
        return;
      default:
        cam.fault = fault;
        cam.refuseUntil = 0;
    }
  }

  clearFault(name: string): void {
    const cam = this.camera(name);
    cam.fault = null;
    cam.refuseUntil = 0;
  }

  stats(): SimulatorStats {
    const perCamera: SimulatorStats['perCamera'] = {};
    for (const cam of [...this.cameras.values(), ...this.autoCameras.values()]) {
      let playing = 0;
      for (const s of cam.sessions) if (s.playing) playing++;
      perCamera[cam.key] = { playing, describes: cam.describes, bytesSent: cam.bytesSent };
    }
    return { connections: this.conns.size, playing: this.playing.size, perCamera };
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      this.stopTimer();
      const serverClosed = new Promise<void>((resolve) => this.server.close(() => resolve()));
      for (const conn of this.conns) conn.socket.destroy();
      await Promise.all([
        serverClosed,
        new Promise<void>((resolve) => this.rtp.close(() => resolve())),
        new Promise<void>((resolve) => this.rtcp.close(() => resolve())),
      ]);
    })();
    return this.closing;
  }

  // ---- cameras ------------------------------------------------------------------------------

  private camera(name: string): Camera {
    const cam = this.cameras.get(name);
    if (!cam) throw new Error(`unknown camera ${name}`);
    return cam;
  }

  private newCamera(key: string, kind: ClipKind, auth: CameraAuth | null): Camera {
    // Starts the encode now so the first DESCRIBE rarely waits; a failure is reported to requests.
    void this.media(kind);
    return { key, auth, kind, phase: fnv1a(key) % 1000, fault: null, refuseUntil: 0, tsJump: 0, describes: 0, bytesSent: 0, sessions: new Set() };
  }

  private media(kind: ClipKind): Promise<MediaClip> {
    let p = this.mediaCache.get(kind);
    if (!p) {
      p = ensureClip(kind, this.opts.clipsDir).then((clip) => packetizeClip(clip, this.opts.mtu));
      this.mediaCache.set(kind, p);
      p.catch(() => this.mediaCache.delete(kind));
    }
    return p;
  }

  private dropSessions(cam: Camera): void {
    for (const s of cam.sessions) s.conn.socket.destroy();
  }

  private refused(cam: Camera): boolean {
    return cam.fault?.kind === 'refuse' || performance.now() < cam.refuseUntil;
  }

  private authority(): string {
    const host = this.host === '0.0.0.0' ? '127.0.0.1' : this.host === '::' ? '::1' : this.host;
    return `${net.isIPv6(host) ? `[${host}]` : host}:${this.port}`;
  }

  // ---- RTSP connections ---------------------------------------------------------------------

  private accept(socket: net.Socket): void {
    if (this.closing) {
      socket.destroy();
      return;
    }
    const conn: Conn = { socket, buf: Buffer.alloc(0), queue: Promise.resolve(), sessions: new Map(), base: null };
    this.conns.add(conn);
    socket.on('error', () => {});
    socket.on('data', (chunk: Buffer) => this.onData(conn, chunk));
    socket.on('close', () => {
      this.conns.delete(conn);
      for (const s of conn.sessions.values()) this.endSession(s);
    });
  }

  private onData(conn: Conn, chunk: Buffer): void {
    let b = conn.buf.length ? Buffer.concat([conn.buf, chunk]) : chunk;
    while (b.length > 0 && !conn.socket.destroyed) {
      if (b[0] === 0x24) {
        // Interleaved data from the client (RTCP receiver reports): not needed, skipped.
        if (b.length < 4) break;
        const end = 4 + b.readUInt16BE(2);
        if (b.length < end) break;
        b = b.subarray(end);
        continue;
      }
      if (b[0] === 0x0d || b[0] === 0x0a) {
        b = b.subarray(1);
        continue;
      }
      const headEnd = b.indexOf('\r\n\r\n');
      if (headEnd < 0 ? b.length > MAX_HEADER_BYTES : headEnd + 4 > MAX_HEADER_BYTES) {
        conn.socket.destroy();
        return;
      }
      if (headEnd < 0) break;
      const req = parseRequest(b.toString('latin1', 0, headEnd));
      const length = contentLength(req);
      if (length === null || length > MAX_BODY_BYTES) {
        // Without a usable length the next request cannot be found: answer in turn, then hang up.
        conn.queue = conn.queue.then(() => {
          this.respond(conn, req, 400, [], '', 0);
          conn.socket.end();
        });
        conn.buf = Buffer.alloc(0);
        conn.socket.pause();
        return;
      }
      if (b.length < headEnd + 4 + length) break;
      b = b.subarray(headEnd + 4 + length);
      conn.queue = conn.queue.then(() => this.handle(conn, req)).catch(() => this.respond(conn, req, 500, [], '', 0));
    }
    conn.buf = b;
  }

  private async handle(conn: Conn, req: Request): Promise<void> {
    if (conn.socket.destroyed) return;
    if (req.bad) {
      this.respond(conn, req, 400, [], '', 0);
      return;
    }
    const target = req.url === '*' ? null : this.target(conn, req.url);
    if (typeof target === 'number') {
      this.respond(conn, req, target, [], '', 0);
      return;
    }
    const cam = target?.cam ?? null;
    if (cam && this.refused(cam)) {
      conn.socket.destroy();
      return;
    }
    if (cam?.fault?.kind === 'stall') return;
    const pad = cam?.fault?.kind === 'oversized-headers' ? cam.fault.bytes : 0;

    switch (req.method) {
      case 'OPTIONS':
      case 'GET_PARAMETER':
      case 'SET_PARAMETER':
        this.respond(conn, req, 200, req.method === 'OPTIONS' ? [['Public', SUPPORTED]] : [], '', pad);
        return;
      case 'TEARDOWN': {
        const s = this.session(conn, req);
        if (s) this.endSession(s);
        this.respond(conn, req, s ? 200 : 454, [], '', pad);
        return;
      }
      case 'DESCRIBE':
      case 'SETUP':
      case 'PLAY':
        break;
      default:
        this.respond(conn, req, NOT_ALLOWED.has(req.method) ? 405 : 501, [['Allow', SUPPORTED]], '', pad);
        return;
    }

    if (!target) {
      this.respond(conn, req, 400, [], '', pad);
      return;
    }
    const challenge = this.checkAuth(target.cam, req);
    if (challenge) {
      this.respond(conn, req, 401, [['WWW-Authenticate', challenge]], '', pad);
      return;
    }
    const media = await this.media(target.cam.kind);
    if (conn.socket.destroyed) return;
    const base = contentBase(req.url, this.authority(), target.path);
    if (req.method === 'DESCRIBE') {
      conn.base = `${target.path}/`;
      target.cam.describes++;
      const sdp = this.sdp(media);
      this.respond(conn, req, 200, [['Content-Base', base], ['Content-Type', 'application/sdp']], sdp, pad);
    } else if (req.method === 'SETUP') {
      this.setup(conn, req, target, media, pad);
    } else {
      this.play(conn, req, base, pad);
    }
  }

  /** The camera a request URL names, or the status for a URL that names none. */
  private target(conn: Conn, url: string): Target | 400 | 404 {
    let path: string;
    if (/^rtsps?:\/\//i.test(url)) {
      try {
        path = new URL(url).pathname;
      } catch {
        return 400;
      }
    } else if (url.startsWith('/')) {
      path = url;
    } else if (conn.base) {
      path = conn.base + url;
    } else {
      return 400;
    }
    const segments = path.split('?')[0]!.split('/').filter((s) => s.length > 0);
    const track = TRACK_RE.exec(segments[segments.length - 1] ?? '');
    if (track) segments.pop();
    const [root, kind, ...rest] = segments;
    let cam: Camera | undefined;
    if (root === 'cam' && kind !== undefined && rest.length === 0) {
      cam = this.cameras.get(kind);
    } else if (root === 'auto' && rest.length > 0 && CLIP_KINDS.includes(kind as ClipKind)) {
      const key = segments.join('/');
      cam = this.autoCameras.get(key);
      if (!cam) {
        cam = this.newCamera(key, kind as ClipKind, null);
        this.autoCameras.set(key, cam);
      }
    }
    // The SDP offers one track, trackID=0.
    if (!cam || (track && track[1] !== '0')) return 404;
    return { cam, path: `/${segments.join('/')}` };
  }

  private session(conn: Conn, req: Request): Session | undefined {
    const id = req.headers.get('session')?.split(';')[0]?.trim();
    if (id) return conn.sessions.get(id);
    // Lenient for clients that omit Session on a connection with a single session.
    return conn.sessions.size === 1 ? conn.sessions.values().next().value : undefined;
  }

  private setup(conn: Conn, req: Request, target: Target, media: MediaClip, pad: number): void {
    const transport = parseTransport(req.headers.get('transport') ?? '', conn.socket.remoteAddress ?? '');
    if (!transport) {
      this.respond(conn, req, 461, [], '', pad);
      return;
    }
    let s: Session | undefined;
    if (req.headers.has('session')) {
      s = this.session(conn, req);
      if (!s) {
        this.respond(conn, req, 454, [], '', pad);
        return;
      }
      if (s.playing || s.cam !== target.cam) {
        this.respond(conn, req, 455, [], '', pad);
        return;
      }
      s.transport = transport;
    } else {
      const id = randomBytes(8).toString('hex');
      s = {
        id, conn, cam: target.cam, media, transport, playing: false,
        ssrc: randomBytes(4).readUInt32BE(0), seq: randomBytes(2).readUInt16BE(0), tsBase: randomBytes(4).readUInt32BE(0),
        nextFrame: 0, waitKey: false, packets: 0, octets: 0, lastSr: 0,
      };
      conn.sessions.set(id, s);
      target.cam.sessions.add(s);
    }
    conn.base = `${target.path}/`;
    const ssrc = s.ssrc.toString(16).padStart(8, '0').toUpperCase();
    const reply =
      transport.kind === 'tcp'
        ? `RTP/AVP/TCP;unicast;interleaved=${transport.channel}-${transport.channel + 1};ssrc=${ssrc}`
        : `RTP/AVP;unicast;client_port=${transport.rtpPort}-${transport.rtcpPort};server_port=${this.rtp.address().port}-${this.rtcp.address().port};ssrc=${ssrc}`;
    this.respond(conn, req, 200, [['Transport', reply], ['Session', `${s.id};timeout=${SESSION_TIMEOUT_S}`]], '', pad);
  }

  private play(conn: Conn, req: Request, base: string, pad: number): void {
    const s = this.session(conn, req);
    if (!s) {
      this.respond(conn, req, 454, [], '', pad);
      return;
    }
    if (!s.playing) {
      // Start with the frame the camera is showing now, mid-GOP, like a real camera.
      s.nextFrame = this.clockFrame() + s.cam.phase;
      s.waitKey = false;
      s.lastSr = 0;
    }
    const headers: [string, string][] = [
      ['Session', `${s.id};timeout=${SESSION_TIMEOUT_S}`],
      ['Range', 'npt=now-'],
      ['RTP-Info', `url=${base}trackID=0;seq=${s.seq};rtptime=${rtpTime(s, s.nextFrame)}`],
    ];
    this.respond(conn, req, 200, headers, '', pad);
    if (!s.playing) {
      s.playing = true;
      this.playing.add(s);
      this.timer ??= setInterval(() => this.tick(), TICK_MS);
    }
  }

  private endSession(s: Session): void {
    s.playing = false;
    this.playing.delete(s);
    s.cam.sessions.delete(s);
    s.conn.sessions.delete(s.id);
    if (this.playing.size === 0) this.stopTimer();
  }

  private stopTimer(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** The reason for a 401 as a WWW-Authenticate value, or null when the request may proceed. */
  private checkAuth(cam: Camera, req: Request): string | null {
    const auth = cam.auth;
    if (!auth) return null;
    const header = req.headers.get('authorization') ?? '';
    if (auth.scheme === 'basic') {
      const m = /^Basic\s+(\S+)$/i.exec(header);
      const expected = Buffer.from(`${auth.username}:${auth.password}`).toString('base64');
      return m && safeEqual(m[1]!, expected) ? null : `Basic realm="${REALM}"`;
    }
    const challenge = `Digest realm="${REALM}", nonce="${this.nonce()}", algorithm=MD5`;
    if (!/^Digest\s/i.test(header)) return challenge;
    const p = parseAuthParams(header.slice(7));
    const nonce = p.get('nonce') ?? '';
    if (p.get('username') !== auth.username || p.get('realm') !== REALM || !this.validNonce(nonce)) return challenge;
    const ha1 = md5(`${auth.username}:${REALM}:${auth.password}`);
    const ha2 = md5(`${req.method}:${p.get('uri') ?? ''}`);
    const qop = p.get('qop');
    const expected =
      qop === 'auth'
        ? md5(`${ha1}:${nonce}:${p.get('nc') ?? ''}:${p.get('cnonce') ?? ''}:auth:${ha2}`)
        : md5(`${ha1}:${nonce}:${ha2}`);
    return safeEqual((p.get('response') ?? '').toLowerCase(), expected) ? null : challenge;
  }

  /** Stateless nonces (random part plus MAC), so a client may reuse one across reconnects. */
  private nonce(): string {
    const r = randomBytes(8).toString('hex');
    return r + createHmac('sha256', this.nonceKey).update(r).digest('hex').slice(0, 16);
  }

  private validNonce(nonce: string): boolean {
    if (!/^[0-9a-f]{32}$/.test(nonce)) return false;
    const mac = createHmac('sha256', this.nonceKey).update(nonce.slice(0, 16)).digest('hex').slice(0, 16);
    return safeEqual(nonce.slice(16), mac);
  }

  private sdp(media: MediaClip): string {
    const v6 = net.isIPv6(this.host);
    return [
      'v=0',
      `o=- ${Date.now()} 1 IN ${v6 ? 'IP6' : 'IP4'} ${this.host}`,
      `s=${SERVER}`,
      `c=IN ${v6 ? 'IP6 ::' : 'IP4 0.0.0.0'}`,
      't=0 0',
      'a=control:*',
      ...media.sdpMedia,
      '',
    ].join('\r\n');
  }

  private respond(conn: Conn, req: Request, status: number, headers: [string, string][], body: string, pad: number): void {
    if (conn.socket.destroyed || !conn.socket.writable) return;
    const lines = [`RTSP/1.0 ${status} ${STATUS_TEXT[status] ?? 'Unknown'}`];
    const cseq = req.headers.get('cseq');
    if (cseq !== undefined) lines.push(`CSeq: ${cseq}`);
    lines.push(`Server: ${SERVER}`);
    for (const [k, v] of headers) lines.push(`${k}: ${v}`);
    if (pad > 0) lines.push(`X-Sim-Padding: ${'x'.repeat(pad)}`);
    const payload = Buffer.from(body, 'utf8');
    if (payload.length > 0) lines.push(`Content-Length: ${payload.length}`);
    conn.socket.write(Buffer.concat([Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1'), payload]));
  }

  // ---- media --------------------------------------------------------------------------------

  private clockFrame(now = performance.now()): number {
    return Math.floor((now - this.t0) / FRAME_MS);
  }

  private tick(): void {
    const now = performance.now();
    const frame = this.clockFrame(now);
    // Most ticks fall between two frames and have nothing to do.
    if (frame === this.lastTickFrame) return;
    this.lastTickFrame = frame;
    for (const s of this.playing) this.pump(s, frame + s.cam.phase, now);
  }

  private pump(s: Session, due: number, now: number): void {
    if (s.nextFrame > due) return;
    if (s.cam.fault?.kind === 'stall') {
      s.nextFrame = due + 1;
      s.waitKey = true;
      return;
    }
    let from = s.nextFrame;
    if (due - from >= MAX_BACKLOG_FRAMES) {
      from = due - MAX_BACKLOG_FRAMES + 1;
      s.waitKey = true;
    }
    for (let f = from; f <= due; f++) this.sendFrame(s, f);
    s.nextFrame = due + 1;
    if (s.packets > 0 && now - s.lastSr >= SR_INTERVAL_MS) {
      s.lastSr = now;
      this.sendSenderReport(s, now);
    }
  }

  private sendFrame(s: Session, f: number): void {
    const frames = s.media.frames;
    const pf = frames[f % frames.length]!;
    const socket = s.conn.socket;
    if (s.waitKey && !pf.key) return;
    if (s.transport.kind === 'tcp' && socket.writableLength > MAX_QUEUED_BYTES) {
      s.waitKey = true;
      return;
    }
    s.waitKey = false;
    const ts = rtpTime(s, f);
    const buf = Buffer.allocUnsafe(pf.template.length);
    pf.template.copy(buf);
    const channel = s.transport.kind === 'tcp' ? s.transport.channel : 0;
    for (const off of pf.offsets) {
      buf[off + 1] = channel;
      buf.writeUInt16BE(s.seq, off + 6);
      buf.writeUInt32BE(ts, off + 8);
      buf.writeUInt32BE(s.ssrc, off + 12);
      s.seq = (s.seq + 1) & 0xffff;
    }
    if (s.transport.kind === 'tcp') {
      if (!socket.writable) return;
      socket.write(buf);
      s.cam.bytesSent += buf.length;
    } else {
      const { address, rtpPort } = s.transport;
      for (const off of pf.offsets) this.rtp.send(buf.subarray(off + 4, off + 4 + buf.readUInt16BE(off + 2)), rtpPort, address);
      s.cam.bytesSent += buf.length - 4 * pf.offsets.length;
    }
    s.packets += pf.offsets.length;
    s.octets += pf.payloadBytes;
  }

  /** A bare RTCP SR; ffmpeg uses it for A/V sync only, but some clients want one before they report. */
  private sendSenderReport(s: Session, now: number): void {
    const sr = Buffer.alloc(28);
    sr[0] = 0x80;
    sr[1] = 200;
    sr.writeUInt16BE(6, 2);
    sr.writeUInt32BE(s.ssrc, 4);
    const wall = Date.now();
    sr.writeUInt32BE((Math.floor(wall / 1000) + NTP_EPOCH_OFFSET) >>> 0, 8);
    sr.writeUInt32BE(Math.floor(((wall % 1000) / 1000) * 2 ** 32) >>> 0, 12);
    // The RTP time of this very instant, between two frames, so SR and media agree.
    sr.writeUInt32BE(rtpTime(s, (now - this.t0) / FRAME_MS + s.cam.phase), 16);
    sr.writeUInt32BE(s.packets >>> 0, 20);
    sr.writeUInt32BE(s.octets >>> 0, 24);
    if (s.transport.kind === 'tcp') {
      const head = Buffer.from([0x24, s.transport.channel + 1, 0, sr.length]);
      if (s.conn.socket.writable) s.conn.socket.write(Buffer.concat([head, sr]));
    } else {
      this.rtcp.send(sr, s.transport.rtcpPort, s.transport.address);
    }
  }
}

// ---- helpers ------------------------------------------------------------------------------------

function rtpTime(s: Session, frame: number): number {
  const t = Math.floor(s.tsBase + frame * RTP_TICKS_PER_FRAME + s.cam.tsJump) % 2 ** 32;
  return t < 0 ? t + 2 ** 32 : t;
}

/** Two UDP sockets on adjacent ports: clients (ffmpeg among them) send RTCP to the RTP port + 1. */
async function bindUdpPair(host: string): Promise<[dgram.Socket, dgram.Socket]> {
  const type = net.isIPv6(host) ? 'udp6' : 'udp4';
  for (let attempt = 0; attempt < 50; attempt++) {
    const rtp = await bindUdp(type, host, 0);
    const rtcpPort = rtp.address().port + 1;
    if (rtcpPort <= 65535) {
      try {
        return [rtp, await bindUdp(type, host, rtcpPort)];
      } catch {
        // Taken: try another pair.
      }
    }
    await new Promise<void>((resolve) => rtp.close(() => resolve()));
  }
  throw new Error('cannot bind two adjacent UDP ports');
}

function bindUdp(type: 'udp4' | 'udp6', host: string, port: number): Promise<dgram.Socket> {
  return new Promise((resolve, reject) => {
    const sock = dgram.createSocket(type);
    sock.once('error', (err) => {
      sock.close();
      reject(err);
    });
    sock.bind(port, host, () => {
      sock.removeAllListeners('error');
      // ICMP port unreachable after a client went away surfaces here; it is not our failure.
      sock.on('error', () => {});
      resolve(sock);
    });
  });
}

function parseRequest(head: string): Request {
  const lines = head.split('\r\n');
  const headers = new Map<string, string>();
  let bad: string | null = null;
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    if (colon <= 0) {
      bad = 'malformed header line';
      continue;
    }
    headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
  }
  const m = /^([A-Z_]+) (\S+) RTSP\/1\.\d$/.exec(lines[0] ?? '');
  if (!m) return { method: '', url: '', headers, bad: 'malformed request line' };
  if (!headers.has('cseq')) bad ??= 'missing CSeq';
  return { method: m[1]!, url: m[2]!, headers, bad };
}

/** The body length a request announces; null when the header is not a number. */
function contentLength(req: Request): number | null {
  const v = req.headers.get('content-length');
  if (v === undefined) return 0;
  return /^\d{1,9}$/.test(v) ? Number(v) : null;
}

/** The first acceptable unicast alternative of a Transport header. */
function parseTransport(header: string, remoteAddress: string): Transport | null {
  for (const alt of header.split(',')) {
    const [profile, ...params] = alt.trim().split(';');
    const kv = new Map(params.map((p) => {
      const eq = p.indexOf('=');
      return eq < 0 ? [p.trim().toLowerCase(), ''] : [p.slice(0, eq).trim().toLowerCase(), p.slice(eq + 1).trim()];
    }));
    if (kv.has('multicast')) continue;
    const proto = profile?.trim().toUpperCase();
    if (proto === 'RTP/AVP/TCP') {
      const ch = /^(\d+)(?:-\d+)?$/.exec(kv.get('interleaved') ?? '0-1');
      const channel = ch ? Number(ch[1]) : -1;
      if (channel >= 0 && channel <= 254) return { kind: 'tcp', channel };
    } else if ((proto === 'RTP/AVP' || proto === 'RTP/AVP/UDP') && remoteAddress) {
      const ports = /^(\d+)(?:-(\d+))?$/.exec(kv.get('client_port') ?? '');
      if (!ports) continue;
      const rtpPort = Number(ports[1]);
      const rtcpPort = ports[2] ? Number(ports[2]) : rtpPort + 1;
      // Media goes to the address the request came from, never to a `destination` the client names.
      if (rtpPort > 0 && rtpPort < 65536 && rtcpPort > 0 && rtcpPort < 65536) return { kind: 'udp', address: remoteAddress, rtpPort, rtcpPort };
    }
  }
  return null;
}

/** Content-Base for a camera: the request's scheme and authority without user info, and a trailing slash. */
function contentBase(requestUrl: string, authority: string, path: string): string {
  if (/^rtsps?:\/\//i.test(requestUrl)) {
    try {
      const u = new URL(requestUrl);
      return `${u.protocol}//${u.host}${path}/`;
    } catch {
      // Fall through to the simulator's own address.
    }
  }
  return `rtsp://${authority}${path}/`;
}

function parseAuthParams(s: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of s.matchAll(/([A-Za-z-]+)\s*=\s*(?:"([^"]*)"|([^,\s]*))/g)) out.set(m[1]!.toLowerCase(), m[2] ?? m[3] ?? '');
  return out;
}

function md5(s: string): string {
  return createHash('md5').update(s).digest('hex');
}

function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

// ---- packetization ------------------------------------------------------------------------------

function packetizeClip(clip: Clip, mtu: number): MediaClip {
  const maxPayload = mtu - 12;
  const frames = clip.frames.map((frame): PacketFrame => {
    const payloads = frame.nalUnits.flatMap((nal) => (clip.codec === 'h264' ? packetizeH264(nal, maxPayload) : packetizeH265(nal, maxPayload)));
    const template = Buffer.alloc(payloads.reduce((n, p) => n + 16 + p.length, 0));
    const offsets: number[] = [];
    let off = 0;
    payloads.forEach((p, i) => {
      offsets.push(off);
      template[off] = 0x24;
      template.writeUInt16BE(12 + p.length, off + 2);
      template[off + 4] = 0x80;
      template[off + 5] = PAYLOAD_TYPE | (i === payloads.length - 1 ? 0x80 : 0);
      p.copy(template, off + 16);
      off += 16 + p.length;
    });
    return { key: frame.key, template, offsets, payloadBytes: payloads.reduce((n, p) => n + p.length, 0) };
  });
  return { clip, frames, sdpMedia: sdpMedia(clip) };
}

/** RFC 6184: a single NAL unit packet, or FU-A fragments. */
function packetizeH264(nal: Buffer, max: number): Buffer[] {
  if (nal.length <= max) return [nal];
  const indicator = (nal[0]! & 0xe0) | 28;
  const type = nal[0]! & 0x1f;
  return fragments(nal.subarray(1), max - 2).map((part, i, all) =>
    Buffer.concat([Buffer.from([indicator, (i === 0 ? 0x80 : 0) | (i === all.length - 1 ? 0x40 : 0) | type]), part]),
  );
}

/** RFC 7798: a single NAL unit packet, or FU (type 49) fragments. */
function packetizeH265(nal: Buffer, max: number): Buffer[] {
  if (nal.length <= max) return [nal];
  const header = [(nal[0]! & 0x81) | (49 << 1), nal[1]!];
  const type = (nal[0]! >> 1) & 0x3f;
  return fragments(nal.subarray(2), max - 3).map((part, i, all) =>
    Buffer.concat([Buffer.from([...header, (i === 0 ? 0x80 : 0) | (i === all.length - 1 ? 0x40 : 0) | type]), part]),
  );
}

function fragments(data: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < data.length; i += size) out.push(data.subarray(i, i + size));
  return out;
}

function sdpMedia(clip: Clip): string[] {
  const b64 = (b: Buffer) => b.toString('base64');
  let fmtp: string;
  if (clip.codec === 'h264') {
    const sps = clip.parameterSets.find((n) => (n[0]! & 0x1f) === 7);
    const profile = sps ? sps.subarray(1, 4).toString('hex') : '4d401f';
    fmtp = `packetization-mode=1;profile-level-id=${profile};sprop-parameter-sets=${clip.parameterSets.map(b64).join(',')}`;
  } else {
    const ofType = (t: number) => clip.parameterSets.filter((n) => ((n[0]! >> 1) & 0x3f) === t).map(b64).join(',');
    fmtp = `sprop-vps=${ofType(32)};sprop-sps=${ofType(33)};sprop-pps=${ofType(34)}`;
  }
  return [
    `m=video 0 RTP/AVP ${PAYLOAD_TYPE}`,
    `a=rtpmap:${PAYLOAD_TYPE} ${clip.codec === 'h264' ? 'H264' : 'H265'}/90000`,
    `a=fmtp:${PAYLOAD_TYPE} ${fmtp}`,
    `a=framerate:${clip.fps}`,
    'a=control:trackID=0',
  ];
}

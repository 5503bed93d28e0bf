/**
 * A simulated JT/T 808 vehicle terminal with JT/T 1078 video, for tests, benchmarks and the demo:
 * it registers (or authenticates with the code it kept), sends heartbeats, positions and alarms
 * (alarm bits, the 1078 video alarms and the ADAS/DSM items in the Jiangsu form on a 2013 terminal,
 * the Guangdong form on a 2019 one), answers 0x9101 by streaming a pre-encoded clip over a new TCP
 * connection or UDP to the address it was given (in its edition's packet layout, from a keyframe,
 * 25 frames a second), obeys 0x9102 (close, switch main/sub, pause, resume), and misbehaves on
 * demand (JtSimFaults, and the one-shot sendBadChecksum / sendOversized / disconnect).
 *
 *   const term = new JtSimTerminal({ host, port, sim: '14400000001', edition: '2013', plate: '苏A00001', terminalId: 'T100000' });
 *   await term.connect();              // registered if need be, then authenticated
 *   await term.sendLocation({ lat: 32.05, lon: 118.78, speedKmh: 40 });
 *   await term.sendAlarm({ adas: { type: 1, level: 2 } });
 *   term.on('media-open', ({ channel }) => ...);
 *   await term.close();
 *
 * Every byte goes through the gateway's own codecs (gateway/src/jt/protocol, media/packet.ts):
 * the simulator has no second JT/T 808 or 1078 encoder to disagree with them. JtSimFleet runs many
 * terminals along the demo routes (scripts/sim/vehicles.ts) and can make them all reconnect at once.
 */
import { randomBytes } from 'node:crypto';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { EventEmitter } from 'node:events';
import { connect as tcpConnect, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { escapeJt, encodeFrame, FrameSplitter, unescapeJt, type JtEdition, type JtMessage } from '../../gateway/src/jt/protocol/frame.js';
import { encodeLocation, type ActiveSafetyAlarm, type LocationExtras } from '../../gateway/src/jt/protocol/location.js';
import {
  decodeGeneralResponse,
  decodeLiveControl,
  decodeLiveRequest,
  decodeLiveStatus,
  decodeRegistrationReply,
  encodeAuthentication,
  encodeGeneralResponse,
  encodeRegistration,
  JT_MSG,
  type LiveControl,
  type LiveRequest,
} from '../../gateway/src/jt/protocol/messages.js';
import { JT1078_PT, JT1078_STANDARD_BODY, packetiseFrame, type Jt1078Layout } from '../../gateway/src/jt/media/packet.js';
import { prng } from '../../gateway/src/registry/city.js';
import type { AlarmType, VehicleCategory } from '../../gateway/src/vehicles/model.js';
import { annexBFrames, ensureClip, type Clip, type ClipKind } from './clips.js';
import { VehicleSimulator, type AlarmReport } from './vehicles.js';

export interface JtSimFaults {
  /** Fraction (0..1) of media packets never sent, as a cellular link loses them. */
  loss: number;
  /** Fraction (0..1) of media packets sent after the packet that follows them. */
  reorder: number;
  /** 0x9101 is answered with success but no media link is ever opened. */
  noMedia: boolean;
  /** 0x9101 is answered with this 0x0001 result (1 failure, 2 message error, 3 not supported) instead of 0; null: taken. */
  refuseLive: 1 | 2 | 3 | null;
  /** Every JT/T 808 frame the terminal sends carries a wrong checksum. */
  badChecksum: boolean;
  /** Heartbeats are sent (false: the terminal goes quiet, as a dead link looks to the platform). */
  heartbeats: boolean;
  /** The terminal waits this long before answering a platform command. */
  commandDelayMs: number;
}

export interface JtSimTerminalOptions {
  /** The platform's JT/T 808 address. */
  host: string;
  port: number;
  /** The phone/SIM number (up to 12 digits for 2013, 20 for 2019). */
  sim: string;
  edition: JtEdition;
  plate: string;
  terminalId: string;
  /** 1 blue, 2 yellow (coaches and trucks), ... (JT/T 415). */
  plateColor?: number;
  /** GB/T 2260 region of the registration: province (2 digits) and city/county (4). */
  province?: number;
  city?: number;
  manufacturer?: string;
  model?: string;
  /** A code from an earlier registration: the terminal authenticates with it without registering. */
  authCode?: string;
  /** The main stream's clip; the sub-stream plays subClip. */
  clip?: ClipKind;
  subClip?: ClipKind;
  mediaTransport?: 'tcp' | 'udp';
  /** The 1078 packet layout; by default the edition's (2019 terminals put a BCD[10] SIM in their packets). */
  mediaLayout?: Jt1078Layout;
  /** Largest media packet body (the standard's 950; real devices send more). */
  maxMediaBody?: number;
  heartbeatIntervalMs?: number;
  /** How long the terminal waits for the platform's answer to a message. */
  replyTimeoutMs?: number;
  /** Where the terminal is until told otherwise. */
  position?: { lat: number; lon: number };
  faults?: Partial<JtSimFaults>;
  /** Seeds the faults' dice (loss, reorder), so a run repeats. */
  seed?: number;
  log?: (msg: string) => void;
}

/** A platform command the terminal received, decoded, in the order received. */
export type JtSimCommand =
  | { msgId: typeof JT_MSG.LIVE_REQUEST; serial: number; at: number; request: LiveRequest }
  | { msgId: typeof JT_MSG.LIVE_CONTROL; serial: number; at: number; control: LiveControl };

export interface JtSimMediaInfo {
  channel: number;
  stream: 0 | 1;
  transport: 'tcp' | 'udp';
  layout: Jt1078Layout;
  remote: { address: string; port: number };
  paused: boolean;
  frames: number;
  packets: number;
  bytes: number;
  /** Packets the loss fault kept back. */
  lost: number;
}

export interface JtSimAlarm {
  /** Alarm flag bits (0 SOS, 1 over-speed, 2 fatigue, ...), held in every later position until clearAlarm. */
  bits?: number;
  /** An ADAS event (0x64): type 1 forward collision, 2 lane departure, 3 following too close, 4 pedestrian collision, ...; flag 1 start (default), 2 end. */
  adas?: { type: number; level: 1 | 2; flag?: 0 | 1 | 2; frontSpeedKmh?: number; distance?: number; departure?: number };
  /** A DSM event (0x65): type 1 fatigue, 2 phone call, 3 smoking, 4 distraction, 5 driver abnormal, ...; flag 1 start (default), 2 end. */
  dsm?: { type: number; level: 1 | 2; flag?: 0 | 1 | 2; fatigueLevel?: number };
  /** JT/T 1078 video alarm bits (0x14: 0 signal lost, 1 occluded, ...), with the channel bit maps; held until clearAlarm. */
  video?: { alarm: number; lost?: number; occluded?: number };
}

/** The platform refused the terminal: 0x8100's result on registration (4 = terminal not in its database), 0x8001's on authentication. */
export class JtSimRefusedError extends Error {
  constructor(
    readonly step: 'register' | 'auth',
    readonly result: number,
  ) {
    super(`${step === 'register' ? 'registration (0x0100)' : 'authentication (0x0102)'} refused with result ${result}`);
    this.name = 'JtSimRefusedError';
  }
}

interface Pending {
  msgId: number;
  resolve(body: Buffer): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
}

const FLAG = Buffer.from([0x7e]);
const FPS = 25;
const FRAME_MS = 1000 / FPS;
/** The platform's downlink is small (answers and commands); a frame past this is garbage to us. */
const MAX_DOWNLINK_FRAME = 65_536;
/** A TCP media connection backed up beyond this drops frames up to the next keyframe, as a device would. */
const MAX_TCP_BACKLOG = 2 * 1024 * 1024;
const DEFAULT_FAULTS: JtSimFaults = { loss: 0, reorder: 0, noMedia: false, refuseLive: null, badChecksum: false, heartbeats: true, commandDelayMs: 0 };
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export class JtSimTerminal extends EventEmitter {
  readonly sim: string;
  readonly edition: JtEdition;
  readonly faults: JtSimFaults;
  /** 0x9101 and 0x9102 received, decoded, oldest first. */
  readonly commands: JtSimCommand[] = [];
  /** 0x9105 transmission status notices received (channel, the loss rate the platform measured). */
  readonly statusNotices: { channel: number; lossPct: number; at: number }[] = [];
  readonly stats = { sent: 0, answered: 0, positions: 0, alarms: 0, parseErrors: 0, connects: 0, mediaOpened: 0 };
  /** Where the terminal is; every position and alarm report carries it. */
  readonly position: { lat: number; lon: number; altitude: number; speedKmh: number; heading: number };

  private readonly opts: JtSimTerminalOptions;
  private readonly rnd: () => number;
  private link: Socket | null = null;
  private connecting: Promise<void> | null = null;
  private authenticated = false;
  private code: string | null;
  private serial = 0;
  private readonly pending = new Map<number, Pending>();
  private readonly media = new Map<number, JtSimMediaStream>();
  private heartbeatTimer: NodeJS.Timeout | null = null;
  private lastSentAt = 0;
  private alarmBits = 0;
  private videoAlarm: { alarm: number; lost: number; occluded: number } = { alarm: 0, lost: 0, occluded: 0 };
  private nextSafetyAlarmId = 0;
  /** Active-safety events started and not yet ended, by kind and type: their end reuses the alarm id. */
  private readonly safetyOpen = new Map<string, number>();
  private closed = false;

  constructor(opts: JtSimTerminalOptions) {
    super();
    const digits = opts.edition === '2019' ? 20 : 12;
    if (!/^\d+$/.test(opts.sim) || opts.sim.length > digits) throw new Error(`JtSimTerminal: sim must be up to ${digits} digits for ${opts.edition}, got ${opts.sim}`);
    this.opts = opts;
    this.sim = opts.sim;
    this.edition = opts.edition;
    this.code = opts.authCode ?? null;
    this.faults = { ...DEFAULT_FAULTS, ...opts.faults };
    this.rnd = prng(opts.seed ?? Number(opts.sim.slice(-9)));
    this.position = { lat: opts.position?.lat ?? 32.05, lon: opts.position?.lon ?? 118.78, altitude: 12, speedKmh: 0, heading: 0 };
  }

  /** Connected and authenticated now. */
  get online(): boolean {
    return this.authenticated;
  }

  /** The auth code the platform gave at registration (kept for later connections), or null. */
  get authCode(): string | null {
    return this.code;
  }

  /** The media links open now, one per channel. */
  mediaInfo(): JtSimMediaInfo[] {
    return [...this.media.values()].map((m) => m.info());
  }

  /**
   * Connects to the platform and resolves once authenticated: with the kept auth code, or after
   * registering for one (and registering again if the platform no longer knows the code). Rejects
   * with JtSimRefusedError when refused (the platform then closes the link), or on a socket error.
   */
  connect(): Promise<void> {
    if (this.closed) return Promise.reject(new Error('the terminal is closed'));
    if (this.authenticated) return Promise.resolve();
    this.connecting ??= this.handshake().finally(() => (this.connecting = null));
    return this.connecting;
  }

  private async handshake(): Promise<void> {
    const sock = await this.open();
    try {
      let registeredNow = false;
      if (this.code === null) {
        this.code = await this.register();
        registeredNow = true;
      }
      let result = await this.authenticate(this.code);
      if (result !== 0 && !registeredNow) {
        // The platform forgot us (a new database, an admin's reset): a real terminal registers afresh.
        this.code = await this.register();
        result = await this.authenticate(this.code);
      }
      if (result !== 0) throw new JtSimRefusedError('auth', result);
    } catch (err) {
      if (this.link === sock) this.dropLink(sock, (err as Error).message);
      throw err;
    }
    if (this.link !== sock || this.closed) throw new Error('the link closed while authenticating');
    this.authenticated = true;
    this.stats.connects++;
    this.startHeartbeats();
    this.emit('online');
  }

  private open(): Promise<Socket> {
    return new Promise((resolve, reject) => {
      const sock = tcpConnect({ host: this.opts.host, port: this.opts.port });
      // From the first moment: a refused or reset connection is an answer, never an uncaught error.
      sock.on('error', (err) => {
        if (this.link !== sock) reject(err);
      });
      sock.once('connect', () => {
        if (this.closed) {
          sock.destroy();
          reject(new Error('the terminal is closed'));
          return;
        }
        sock.setNoDelay(true);
        this.link = sock;
        const splitter = new FrameSplitter({
          maxFrameBytes: MAX_DOWNLINK_FRAME,
          onMessage: (m) => this.onMessage(m),
          onError: () => this.stats.parseErrors++,
        });
        sock.on('data', (d: Buffer) => splitter.push(d));
        resolve(sock);
      });
      sock.once('close', () => this.dropLink(sock, 'the platform closed the link'));
    });
  }

  private async register(): Promise<string> {
    const body = encodeRegistration(
      {
        province: this.opts.province ?? 32,
        city: this.opts.city ?? 100,
        manufacturer: this.opts.manufacturer ?? 'WGSIM',
        model: this.opts.model ?? 'wallgate-sim',
        terminalId: this.opts.terminalId,
        plateColor: this.opts.plateColor ?? 2,
        plate: this.opts.plate,
      },
      this.edition,
    );
    const reply = decodeRegistrationReply(await this.request(JT_MSG.REGISTER, body, JT_MSG.REGISTER_REPLY));
    if (reply.result !== 0 || reply.authCode === null) throw new JtSimRefusedError('register', reply.result);
    this.emit('registered', reply.authCode);
    return reply.authCode;
  }

  private async authenticate(code: string): Promise<number> {
    const body = encodeAuthentication(
      { authCode: code, imei: this.edition === '2019' ? `86${this.sim.padStart(13, '0').slice(-13)}` : null, softwareVersion: this.edition === '2019' ? 'wallgate-sim 1.0' : null },
      this.edition,
    );
    return decodeGeneralResponse(await this.request(JT_MSG.AUTH, body)).result;
  }

  /** Sends 0x0003: the platform forgets the terminal's registration; the next connect() registers again. */
  async unregister(): Promise<void> {
    const result = decodeGeneralResponse(await this.request(JT_MSG.UNREGISTER, Buffer.alloc(0))).result;
    if (result !== 0) throw new Error(`unregistration (0x0003) answered ${result}`);
    this.code = null;
  }

  /** Sends a heartbeat (0x0002) and resolves with the platform's result. */
  async heartbeat(): Promise<number> {
    return decodeGeneralResponse(await this.request(JT_MSG.HEARTBEAT, Buffer.alloc(0))).result;
  }

  /**
   * Moves the terminal (what is given) and reports its position (0x0200) with the alarm bits it
   * holds; resolves with the platform's 0x8001 result (0, or 4 once it handled an alarm).
   */
  async sendLocation(p: Partial<JtSimTerminal['position']> & { time?: number; extras?: Partial<LocationExtras> } = {}): Promise<number> {
    const { time, extras, ...where } = p;
    Object.assign(this.position, where);
    this.stats.positions++;
    return this.report(time ?? Date.now(), extras ?? {});
  }

  /**
   * Raises an alarm and reports it at once in a 0x0200: alarm bits and video alarm bits are held
   * in every later report until clearAlarm; an ADAS/DSM event is sent in this report (flag 1 start
   * unless told; its end, flag 2, carries the start's alarm id). Resolves with the 0x8001 result.
   */
  async sendAlarm(a: JtSimAlarm): Promise<number> {
    const now = Date.now();
    this.alarmBits = (this.alarmBits | (a.bits ?? 0)) >>> 0;
    if (a.video) this.videoAlarm = { alarm: this.videoAlarm.alarm | a.video.alarm, lost: this.videoAlarm.lost | (a.video.lost ?? 0), occluded: this.videoAlarm.occluded | (a.video.occluded ?? 0) };
    const extras: Partial<LocationExtras> = {};
    if (a.adas) extras.adas = { ...this.safetyAlarm('adas', a.adas, now), frontSpeedKmh: a.adas.frontSpeedKmh ?? 0, distance: a.adas.distance ?? 0, departure: a.adas.departure ?? 0, signType: 0, signValue: 0 };
    if (a.dsm) extras.dsm = { ...this.safetyAlarm('dsm', a.dsm, now), fatigueLevel: a.dsm.fatigueLevel ?? 0 };
    this.stats.alarms++;
    return this.report(now, extras);
  }

  /** Clears held alarm bits (and the video alarm) and reports the position without them. */
  async clearAlarm(c: { bits?: number; video?: boolean }): Promise<number> {
    this.alarmBits = (this.alarmBits & ~(c.bits ?? 0)) >>> 0;
    if (c.video) this.videoAlarm = { alarm: 0, lost: 0, occluded: 0 };
    return this.report(Date.now(), {});
  }

  private safetyAlarm(kind: 'adas' | 'dsm', e: { type: number; level: 1 | 2; flag?: 0 | 1 | 2 }, now: number): ActiveSafetyAlarm {
    const flag = e.flag ?? 1;
    const key = `${kind}:${e.type}`;
    let alarmId = this.safetyOpen.get(key);
    if (alarmId === undefined || flag !== 2) {
      alarmId = this.nextSafetyAlarmId;
      this.nextSafetyAlarmId = (this.nextSafetyAlarmId + 1) >>> 0;
    }
    if (flag === 1) this.safetyOpen.set(key, alarmId);
    else this.safetyOpen.delete(key);
    const { lat, lon, altitude, speedKmh } = this.position;
    return {
      alarmId,
      flag,
      type: e.type,
      level: e.level,
      speedKmh: Math.round(speedKmh),
      altitude,
      lat,
      lon,
      time: now,
      // Vehicle status (Su 表5-9): ACC on, positioned.
      vehicleStatus: 0x0401,
      identifier: { form: this.edition === '2019' ? 'yue' : 'su', terminalId: this.opts.terminalId, time: now, sequence: 0, attachments: 0 },
    };
  }

  private async report(time: number, extras: Partial<LocationExtras>): Promise<number> {
    const { lat, lon, altitude, speedKmh, heading } = this.position;
    // ACC on and a GNSS fix; south and west by their bits.
    const status = 0x3 | (lat < 0 ? 0x4 : 0) | (lon < 0 ? 0x8 : 0);
    const video = this.videoAlarm.alarm ? { videoAlarm: this.videoAlarm.alarm, videoLost: this.videoAlarm.lost, videoOccluded: this.videoAlarm.occluded } : {};
    const body = encodeLocation(
      { alarm: this.alarmBits, status, lat, lon, altitude, speedKmh, heading: Math.round(heading) % 360, time, extras: { ...video, ...extras } },
      this.edition === '2019' ? 'yue' : 'su',
    );
    return decodeGeneralResponse(await this.request(JT_MSG.LOCATION, body)).result;
  }

  // ---- faults on demand -------------------------------------------------------------------

  /** One heartbeat frame whose checksum is wrong: the platform must drop it and keep the link. */
  sendBadChecksum(): void {
    this.writeRaw(corruptChecksum(this.frame(JT_MSG.HEARTBEAT, Buffer.alloc(0))));
  }

  /** A "frame" of `bytes` bytes between two flags, larger than any platform should buffer. */
  sendOversized(bytes = 70_000): void {
    const junk = randomBytes(bytes);
    for (let i = 0; i < junk.length; i++) if (junk[i] === 0x7e) junk[i] = 0x7f;
    this.writeRaw(Buffer.concat([FLAG, junk, FLAG]));
  }

  /** Writes bytes on the JT/T 808 link as they are (a test's own malformed input). */
  writeRaw(bytes: Buffer): void {
    if (!this.link) throw new Error('not connected');
    this.link.write(bytes);
  }

  /**
   * The link drops, as on a cellular network: the 808 socket and every media link are destroyed
   * without a word; the auth code is kept, so connect() authenticates again.
   */
  disconnect(): Promise<void> {
    return this.cut('disconnected (simulated link loss)');
  }

  /** Ends everything for good; idempotent. Leaves no socket or timer. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.cut('the terminal closed');
  }

  private async cut(reason: string): Promise<void> {
    const sock = this.link;
    this.dropLink(sock, reason);
    if (sock && !sock.destroyed) sock.destroy();
    if (sock && !sock.closed) await new Promise<void>((r) => sock.once('close', () => r()));
  }

  // ---- the link -----------------------------------------------------------------------------

  private dropLink(sock: Socket | null, reason: string): void {
    if (sock === null || this.link !== sock) return;
    this.link = null;
    const wasOnline = this.authenticated;
    this.authenticated = false;
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    this.heartbeatTimer = null;
    for (const [serial, p] of this.pending) {
      clearTimeout(p.timer);
      this.pending.delete(serial);
      p.reject(new Error(`${reason} before the answer to 0x${hex4(p.msgId)}`));
    }
    // Media does not outlive the signalling link: the platform lost its handle on it.
    for (const channel of [...this.media.keys()]) this.endMedia(channel, reason);
    if (!sock.destroyed) sock.destroy();
    if (wasOnline) this.emit('offline', reason);
  }

  private startHeartbeats(): void {
    const every = this.opts.heartbeatIntervalMs ?? 20_000;
    this.heartbeatTimer = setInterval(() => {
      // Only when idle: positions keep the link alive too.
      if (!this.faults.heartbeats || performance.now() - this.lastSentAt < every * 0.9) return;
      this.heartbeat().catch(() => {});
    }, every);
  }

  private frame(msgId: number, body: Buffer): Buffer {
    const serial = this.serial;
    this.serial = (this.serial + 1) & 0xffff;
    return encodeFrame({ msgId, edition: this.edition, phone: this.sim, serial, ...(this.edition === '2019' ? { protocolVersion: 1 } : {}) }, body);
  }

  private send(msgId: number, body: Buffer): number {
    if (!this.link) throw new Error('not connected');
    const serial = this.serial;
    const wire = this.frame(msgId, body);
    this.link.write(this.faults.badChecksum ? corruptChecksum(wire) : wire);
    this.lastSentAt = performance.now();
    this.stats.sent++;
    return serial;
  }

  /** Sends a message and resolves with the body of the platform's answer to it (0x8001, or replyId). */
  private request(msgId: number, body: Buffer, replyId: number = JT_MSG.PLATFORM_RESPONSE): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      if (!this.link) return reject(new Error(`not connected: cannot send 0x${hex4(msgId)}`));
      const serial = this.send(msgId, body);
      const timeoutMs = this.opts.replyTimeoutMs ?? 10_000;
      const timer = setTimeout(() => {
        this.pending.delete(serial);
        reject(new Error(`no answer to 0x${hex4(msgId)} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.get(serial)?.reject(new Error('serial reused'));
      this.pending.set(serial, { msgId: replyId === JT_MSG.PLATFORM_RESPONSE ? msgId : replyId, resolve, reject, timer });
    });
  }

  private settle(serial: number, msgId: number, body: Buffer): void {
    const p = this.pending.get(serial);
    if (!p || p.msgId !== msgId) return;
    this.pending.delete(serial);
    clearTimeout(p.timer);
    this.stats.answered++;
    p.resolve(body);
  }

  private onMessage(m: JtMessage): void {
    const { msgId, serial } = m.header;
    try {
      switch (msgId) {
        case JT_MSG.PLATFORM_RESPONSE: {
          const r = decodeGeneralResponse(m.body);
          return this.settle(r.serial, r.msgId, m.body);
        }
        case JT_MSG.REGISTER_REPLY:
          return this.settle(decodeRegistrationReply(m.body).serial, JT_MSG.REGISTER_REPLY, m.body);
        case JT_MSG.LIVE_REQUEST:
          return void this.onLiveRequest(serial, decodeLiveRequest(m.body));
        case JT_MSG.LIVE_CONTROL:
          return void this.onLiveControl(serial, decodeLiveControl(m.body));
        case JT_MSG.LIVE_STATUS: {
          this.statusNotices.push({ ...decodeLiveStatus(m.body), at: Date.now() });
          this.emit('status', this.statusNotices.at(-1));
          return void this.answer(serial, msgId, 0);
        }
        default:
          // A command this terminal does not implement.
          return void this.answer(serial, msgId, 3);
      }
    } catch (err) {
      this.opts.log?.(`${this.sim}: bad 0x${hex4(msgId)} from the platform: ${(err as Error).message}`);
      void this.answer(serial, msgId, 2);
    }
  }

  private async answer(serial: number, msgId: number, result: number): Promise<void> {
    if (this.faults.commandDelayMs > 0) await sleep(this.faults.commandDelayMs);
    if (!this.link) return;
    this.send(JT_MSG.TERMINAL_RESPONSE, encodeGeneralResponse({ serial, msgId, result }));
  }

  // ---- JT/T 1078 ------------------------------------------------------------------------------

  private async onLiveRequest(serial: number, request: LiveRequest): Promise<void> {
    const command: JtSimCommand = { msgId: JT_MSG.LIVE_REQUEST, serial, at: Date.now(), request };
    this.commands.push(command);
    this.emit('command', command);
    // Only video is simulated: talk, listen and broadcast are not supported.
    const result = request.dataType > 1 ? 3 : (this.faults.refuseLive ?? 0);
    await this.answer(serial, JT_MSG.LIVE_REQUEST, result);
    if (result !== 0 || this.faults.noMedia || !this.link) return;
    const wanted = this.opts.mediaTransport ?? 'tcp';
    // A platform may offer only one of its ports (the other 0).
    const transport = wanted === 'udp' ? (request.udpPort ? 'udp' : 'tcp') : request.tcpPort ? 'tcp' : 'udp';
    const port = transport === 'udp' ? request.udpPort : request.tcpPort;
    if (!port) return;
    this.endMedia(request.channel, 'replaced by a new 0x9101');
    const stream = new JtSimMediaStream({
      sim: this.sim,
      channel: request.channel,
      layout: this.opts.mediaLayout ?? (this.edition === '2019' ? '2019' : '2016'),
      transport,
      remote: { address: request.ip, port },
      stream: request.stream,
      clipFor: (s) => ensureClip(s === 1 ? (this.opts.subClip ?? 'h264-360p-1s') : (this.opts.clip ?? 'h264-720p-1s')),
      faults: this.faults,
      rnd: this.rnd,
      maxBody: this.opts.maxMediaBody ?? JT1078_STANDARD_BODY,
      onOpen: (info) => {
        this.stats.mediaOpened++;
        this.emit('media-open', info);
      },
      onEnd: (reason) => {
        if (this.media.get(request.channel) !== stream) return;
        this.media.delete(request.channel);
        this.emit('media-close', { channel: request.channel, reason });
      },
    });
    this.media.set(request.channel, stream);
    stream.start();
  }

  private async onLiveControl(serial: number, control: LiveControl): Promise<void> {
    const command: JtSimCommand = { msgId: JT_MSG.LIVE_CONTROL, serial, at: Date.now(), control };
    this.commands.push(command);
    this.emit('command', command);
    await this.answer(serial, JT_MSG.LIVE_CONTROL, 0);
    const stream = this.media.get(control.channel);
    if (!stream) return;
    if (control.command === 0 && control.closeType !== 1) this.endMedia(control.channel, 'closed by 0x9102');
    else if (control.command === 1) stream.switchTo(control.stream);
    else if (control.command === 2) stream.pause();
    else if (control.command === 3) stream.resume();
  }

  private endMedia(channel: number, reason: string): void {
    const stream = this.media.get(channel);
    if (!stream) return;
    this.media.delete(channel);
    stream.close();
    this.emit('media-close', { channel, reason });
  }
}

/** The same wire frame with its checksum byte changed (unescaped, flipped, escaped again). */
function corruptChecksum(wire: Buffer): Buffer {
  const inner = Buffer.from(unescapeJt(wire.subarray(1, wire.length - 1)));
  inner[inner.length - 1] = inner[inner.length - 1]! ^ 0x55;
  return Buffer.concat([FLAG, escapeJt(inner), FLAG]);
}

const hex4 = (n: number) => n.toString(16).padStart(4, '0');

// ---- one channel's media link -------------------------------------------------------------

interface JtSimMediaOptions {
  sim: string;
  channel: number;
  layout: Jt1078Layout;
  transport: 'tcp' | 'udp';
  remote: { address: string; port: number };
  stream: 0 | 1;
  clipFor(stream: 0 | 1): Promise<Clip>;
  /** The terminal's faults, read live. */
  faults: JtSimFaults;
  rnd: () => number;
  maxBody: number;
  onOpen(info: JtSimMediaInfo): void;
  onEnd(reason: string): void;
}

/** One channel's video: the clip's frames as 1078 packets at 25 frames a second, looping, from a keyframe. */
class JtSimMediaStream {
  private tcp: Socket | null = null;
  private udp: UdpSocket | null = null;
  private clip: Clip | null = null;
  private stream: 0 | 1;
  private timer: NodeJS.Timeout | null = null;
  private closed = false;
  private paused = false;
  /** Frames sent since the start: the clock of the timestamps. */
  private n = 0;
  /** Index into the clip of the next frame. */
  private index = 0;
  private lastKeyAt = 0;
  private waitingForKey = false;
  private seq = 0;
  private held: Buffer | null = null;
  private t0 = 0;
  private tsBase = Date.now();
  private frames = 0;
  private packets = 0;
  private bytes = 0;
  private lost = 0;

  constructor(private readonly o: JtSimMediaOptions) {
    this.stream = o.stream;
  }

  info(): JtSimMediaInfo {
    const { channel, transport, layout, remote } = this.o;
    return { channel, stream: this.stream, transport, layout, remote, paused: this.paused, frames: this.frames, packets: this.packets, bytes: this.bytes, lost: this.lost };
  }

  start(): void {
    void this.run().catch((err: Error) => this.end(err.message));
  }

  private async run(): Promise<void> {
    this.clip = await this.o.clipFor(this.stream);
    if (this.closed) return;
    if (this.o.transport === 'udp') {
      const udp = createSocket('udp4');
      udp.on('error', (err) => this.end(`UDP media: ${err.message}`));
      this.udp = udp;
    } else {
      const sock = tcpConnect({ host: this.o.remote.address, port: this.o.remote.port });
      sock.on('error', (err) => this.end(`TCP media: ${err.message}`));
      this.tcp = sock;
      await new Promise<void>((resolve) => {
        sock.once('connect', () => resolve());
        sock.once('close', () => resolve());
      });
      if (this.closed) return;
      if (sock.destroyed) return this.end('the media connection failed');
      sock.setNoDelay(true);
      // The platform sends nothing on the media link; whatever comes is read and ignored.
      sock.on('data', () => {});
      sock.once('close', () => this.end('the platform closed the media link'));
    }
    this.o.onOpen(this.info());
    this.t0 = performance.now();
    this.tsBase = Date.now();
    this.tick();
  }

  switchTo(stream: 0 | 1): void {
    if (stream === this.stream) return;
    this.stream = stream;
    void this.o
      .clipFor(stream)
      .then((clip) => {
        if (this.closed || this.stream !== stream) return;
        // The other encoder's stream starts at its keyframe.
        this.clip = clip;
        this.index = 0;
      })
      .catch((err: Error) => this.end(err.message));
  }

  pause(): void {
    this.paused = true;
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    this.waitingForKey = true;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.tcp?.destroy();
    this.tcp = null;
    this.udp?.close();
    this.udp = null;
  }

  private end(reason: string): void {
    if (this.closed) return;
    this.close();
    this.o.onEnd(reason);
  }

  private tick(): void {
    if (this.closed) return;
    const due = Math.floor((performance.now() - this.t0) / FRAME_MS);
    // After a stall (a busy event loop) the clock is followed, not caught up with a burst.
    if (due - this.n > FPS) this.n = due;
    while (this.n <= due && !this.closed) this.sendFrame();
    const nextAt = this.t0 + this.n * FRAME_MS;
    this.timer = setTimeout(() => this.tick(), Math.max(0, nextAt - performance.now()));
  }

  private sendFrame(): void {
    const clip = this.clip!;
    const n = this.n++;
    const i = this.index;
    this.index = (this.index + 1) % clip.frames.length;
    const key = clip.frames[i]!.key;
    if (this.paused) return;
    if (this.tcp && this.tcp.writableLength > MAX_TCP_BACKLOG) this.waitingForKey = true;
    if (this.waitingForKey && !key) return;
    this.waitingForKey = false;
    const timestamp = this.tsBase + Math.round(n * FRAME_MS);
    if (key) this.lastKeyAt = timestamp;
    const packets = packetiseFrame(
      {
        sim: this.o.sim,
        channel: this.o.channel,
        pt: clip.codec === 'h265' ? JT1078_PT.H265 : JT1078_PT.H264,
        dataType: key ? 0 : 1,
        timestamp,
        lastIInterval: Math.min(0xffff, timestamp - this.lastKeyAt),
        lastFrameInterval: Math.round(FRAME_MS),
        data: annexBFrames(clip)[i]!,
        firstSeq: this.seq,
      },
      this.o.layout,
      this.o.maxBody,
    );
    this.seq = (this.seq + packets.length) & 0xffff;
    this.frames++;
    const { loss, reorder } = this.o.faults;
    for (const p of packets) {
      if (loss > 0 && this.o.rnd() < loss) {
        this.lost++;
        continue;
      }
      if (this.held) {
        this.write(p);
        this.write(this.held);
        this.held = null;
      } else if (reorder > 0 && this.o.rnd() < reorder) {
        this.held = p;
      } else {
        this.write(p);
      }
    }
  }

  private write(p: Buffer): void {
    this.packets++;
    this.bytes += p.length;
    if (this.udp) this.udp.send(p, this.o.remote.port, this.o.remote.address);
    else this.tcp?.write(p);
  }
}

// ---- a fleet ----------------------------------------------------------------------------------

export interface JtSimFleetVehicle {
  id: string;
  sim: string;
  plate: string;
  terminalId: string;
  category: VehicleCategory;
}

export interface JtSimFleetOptions extends Pick<JtSimTerminalOptions, 'host' | 'port' | 'clip' | 'subClip' | 'mediaTransport' | 'heartbeatIntervalMs' | 'replyTimeoutMs' | 'log'> {
  vehicles: JtSimFleetVehicle[];
  /** Every terminal's edition, or 'mixed': one in three speaks 2019 (the Guangdong standard's terminals). */
  edition?: JtEdition | 'mixed';
  /** Auth codes kept from an earlier run, by SIM: those terminals only authenticate. */
  authCodes?: Record<string, string>;
  /** One position per terminal per this interval, spread over it; 0: none. */
  positionIntervalMs?: number;
  /** Alarms across the fleet (ADAS, DSM, SOS, over-speed, video loss), each ending 10 to 60 s later. */
  alarmsPerMinute?: number;
  /** Terminals connecting at once on start(). */
  connectConcurrency?: number;
  /** A terminal whose link drops (not by reconnectStorm or close) connects again after about this long; null: stays down. */
  reconnectMs?: number | null;
  centre?: { lat: number; lon: number };
  seed?: number;
}

/** How an alarm of the demo fleet's simulator reaches the platform from a JT/T 808 terminal. */
function jtAlarmOf(r: AlarmReport, roll: number): { raise: JtSimAlarm; clear: JtSimAlarm | { bits?: number; video?: boolean }; end: boolean } | null {
  const level: 1 | 2 = r.severity === 'high' || r.severity === 'critical' ? 2 : 1;
  const map: Partial<Record<AlarmType, JtSimAlarm>> = {
    'emergency-button': { bits: 1 << 0 },
    overspeed: { bits: 1 << 1 },
    'fatigue-driving': { dsm: { type: 1, level, fatigueLevel: 5 } },
    // Phone calls, smoking and distraction: the driver-monitoring camera's events.
    'distracted-driving': { dsm: { type: [2, 3, 4][Math.floor(roll * 3)]!, level } },
    'collision-warning': { adas: { type: 1, level, frontSpeedKmh: 40, distance: 8 } },
    'lane-departure': { adas: { type: 2, level, departure: roll < 0.5 ? 1 : 2 } },
    'video-loss': { video: { alarm: 1, lost: 1 } },
  };
  // Tank pressure, temperature and leaks have no JT/T 808 item: such sensors report through a platform's feed.
  const raise = map[r.type];
  if (!raise) return null;
  if (raise.adas) return { raise, clear: { adas: { ...raise.adas, flag: 2 } }, end: true };
  if (raise.dsm) return { raise, clear: { dsm: { ...raise.dsm, flag: 2 } }, end: true };
  return { raise, clear: { ...(raise.bits ? { bits: raise.bits } : {}), ...(raise.video ? { video: true } : {}) }, end: false };
}

export class JtSimFleet extends EventEmitter {
  readonly terminals: JtSimTerminal[];
  /** positions sent, and acknowledged (the platform's 0x8001 said 0); alarms sent; connections refused or failed; reconnections. */
  readonly stats = { positions: 0, acknowledged: 0, alarms: 0, refused: 0, errors: 0, reconnects: 0 };
  private readonly byVehicle = new Map<string, JtSimTerminal>();
  private readonly sim: VehicleSimulator;
  private readonly rnd: () => number;
  private readonly timers = new Set<NodeJS.Timeout>();
  private positionTimer: NodeJS.Timeout | null = null;
  private storming = false;
  private closed = false;

  constructor(private readonly o: JtSimFleetOptions) {
    super();
    this.rnd = prng(o.seed ?? 808);
    this.sim = new VehicleSimulator(o.vehicles, o.centre ?? { lat: 32.05, lon: 118.78 }, o.seed ?? 808);
    const now = Date.now();
    const start = new Map(this.sim.positions(now).map((p) => [p.vehicleId, p]));
    this.terminals = o.vehicles.map((v, i) => {
      const edition: JtEdition = o.edition === 'mixed' ? (i % 3 === 2 ? '2019' : '2013') : (o.edition ?? '2013');
      const at = start.get(v.id)!;
      const term = new JtSimTerminal({
        host: o.host,
        port: o.port,
        sim: v.sim,
        edition,
        plate: v.plate,
        terminalId: v.terminalId,
        plateColor: 2,
        ...(o.authCodes?.[v.sim] ? { authCode: o.authCodes[v.sim] } : {}),
        ...(o.clip ? { clip: o.clip } : {}),
        ...(o.subClip ? { subClip: o.subClip } : {}),
        ...(o.mediaTransport ? { mediaTransport: o.mediaTransport } : {}),
        ...(o.heartbeatIntervalMs ? { heartbeatIntervalMs: o.heartbeatIntervalMs } : {}),
        ...(o.replyTimeoutMs ? { replyTimeoutMs: o.replyTimeoutMs } : {}),
        ...(o.log ? { log: o.log } : {}),
        position: { lat: at.lat, lon: at.lon },
        seed: (o.seed ?? 808) + i,
      });
      term.on('offline', () => this.onOffline(term));
      this.byVehicle.set(v.id, term);
      return term;
    });
  }

  get online(): number {
    return this.terminals.reduce((n, t) => n + (t.online ? 1 : 0), 0);
  }

  terminal(vehicleId: string): JtSimTerminal | undefined {
    return this.byVehicle.get(vehicleId);
  }

  /** The auth codes the terminals hold, by SIM (to keep for the next run). */
  authCodes(): Record<string, string> {
    return Object.fromEntries(this.terminals.filter((t) => t.authCode !== null).map((t) => [t.sim, t.authCode!]));
  }

  /**
   * Connects every terminal, a few at a time; a terminal refused or unreachable is retried after
   * reconnectMs (when set) and counted. Then reports positions and alarms until close().
   */
  async start(): Promise<void> {
    const queue = [...this.terminals];
    await Promise.all(
      Array.from({ length: Math.min(this.o.connectConcurrency ?? 100, queue.length) }, async () => {
        for (let t = queue.shift(); t && !this.closed; t = queue.shift()) {
          await t.connect().catch((err: Error) => this.onConnectError(t, err));
        }
      }),
    );
    if (this.closed) return;
    const interval = this.o.positionIntervalMs ?? 1000;
    if (interval > 0) this.report(interval);
  }

  private onConnectError(t: JtSimTerminal, err: Error): void {
    if (err instanceof JtSimRefusedError) this.stats.refused++;
    else this.stats.errors++;
    this.o.log?.(`${t.sim}: ${err.message}`);
    this.retryLater(t);
  }

  private onOffline(t: JtSimTerminal): void {
    if (this.storming || this.closed) return;
    this.retryLater(t);
  }

  private retryLater(t: JtSimTerminal): void {
    const after = this.o.reconnectMs;
    if (after === null || after === undefined || this.closed) return;
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      if (this.closed || t.online) return;
      this.stats.reconnects++;
      t.connect().catch((err: Error) => this.onConnectError(t, err));
    }, after * (0.5 + this.rnd()));
    this.timers.add(timer);
  }

  /** Each interval: every vehicle's position, in ten slices spread over it, and the alarms due. */
  private report(interval: number): void {
    const slices = 10;
    let slice = 0;
    let batch: ReturnType<VehicleSimulator['positions']> = [];
    let last = Date.now();
    let ticks = 0;
    const t0 = performance.now();
    const tick = () => {
      if (this.closed) return;
      const now = Date.now();
      if (slice === 0) {
        batch = this.sim.positions(now);
        const perMinute = this.o.alarmsPerMinute ?? 0;
        if (perMinute > 0) for (const a of this.sim.alarms(now, now - last, perMinute)) this.alarm(a);
        last = now;
      }
      const size = Math.ceil(batch.length / slices);
      for (const p of batch.slice(slice * size, (slice + 1) * size)) {
        const t = this.byVehicle.get(p.vehicleId);
        if (!t?.online) continue;
        this.stats.positions++;
        t.sendLocation({ lat: p.lat, lon: p.lon, speedKmh: p.speed, heading: p.heading, time: p.at }).then(
          (result) => void (result === 0 && this.stats.acknowledged++),
          () => {},
        );
      }
      slice = (slice + 1) % slices;
      // Paced by the clock from the start, so timer lateness does not stretch the interval; after a stall it is followed, not caught up.
      ticks = Math.max(ticks + 1, Math.floor((performance.now() - t0) / (interval / slices)));
      this.positionTimer = setTimeout(tick, Math.max(0, t0 + ticks * (interval / slices) - performance.now()));
    };
    tick();
  }

  private alarm(a: AlarmReport): void {
    const t = this.byVehicle.get(a.vehicleId);
    const jt = jtAlarmOf(a, this.rnd());
    if (!t?.online || !jt) return;
    this.stats.alarms++;
    const sent = a.state === 'raised' ? t.sendAlarm(jt.raise) : jt.end ? t.sendAlarm(jt.clear as JtSimAlarm) : t.clearAlarm(jt.clear as { bits?: number; video?: boolean });
    sent.catch(() => {});
  }

  /**
   * Every terminal's link drops at once, and every terminal connects again at once (as after a
   * cell tower's outage); resolves with the time until all are authenticated again. A terminal
   * whose connection fails is retried 200 ms later, until deadlineMs.
   */
  async reconnectStorm(deadlineMs = 60_000): Promise<{ ms: number; retries: number }> {
    this.storming = true;
    let retries = 0;
    try {
      const t0 = performance.now();
      await Promise.all(this.terminals.map((t) => t.disconnect()));
      await Promise.all(
        this.terminals.map(async (t) => {
          for (;;) {
            try {
              await t.connect();
              return;
            } catch (err) {
              if (this.closed || performance.now() - t0 > deadlineMs) throw new Error(`${t.sim} not back within ${deadlineMs} ms: ${(err as Error).message}`);
              retries++;
              await sleep(200);
            }
          }
        }),
      );
      return { ms: performance.now() - t0, retries };
    } finally {
      this.storming = false;
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.positionTimer) clearTimeout(this.positionTimer);
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    await Promise.all(this.terminals.map((t) => t.close()));
  }
}

import { randomBytes, timingSafeEqual } from 'node:crypto';
import { ConnectionCaps, plainAddress } from '../lib/sockets.js';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import type { EventEmitter } from 'node:events';
import type { Config } from '../config/schema.js';
import { ValidationError } from '../errors.js';
import { JT_REFUSAL_REASONS, type JtRefusal, type JtTerminalInfo, type JtTerminalRecord, type Store } from '../store/types.js';
import type { VehicleEvents } from '../vehicles/context.js';
import { stripSim } from '../vehicles/registry.js';
import type { JtDirectory, JtLiveLink, JtLiveState, JtVehicleLookup } from './directory.js';
import { printable } from './directory.js';
import type { JtFeed } from './feed.js';
import { JtCommandError, type JtLink, type JtTerminalState } from './link.js';
import { FrameSplitter, JtParseError, SubpackageAssembler, encodeFrame, type JtEdition, type JtMessage } from './protocol/frame.js';
import { decodeLocation, decodeLocationBatch } from './protocol/location.js';
import {
  JT_MSG,
  decodeAuthentication,
  decodeGeneralResponse,
  decodeRegistration,
  encodeGeneralResponse,
  encodeQueryTimeReply,
  encodeRegistrationReply,
  type Registration,
} from './protocol/messages.js';

type Jt808Config = Config['jt808'];
type Log = { debug(o: object, m: string): void; info(o: object, m: string): void; warn(o: object, m: string): void; error(o: object, m: string): void };

/** Registers an unknown terminal as a vehicle (jt808.autoRegister); resolves with its id, rejects when it cannot (a plate the registry refuses). */
export interface JtAutoRegistrar {
  register(sim: string, reg: Registration): Promise<string>;
}

export interface JtServiceOptions {
  config: Jt808Config;
  store: Store;
  vehicles: JtVehicleLookup & Pick<EventEmitter<VehicleEvents>, 'on' | 'off'>;
  feed: JtFeed;
  directory: JtDirectory;
  /** Set when jt808.autoRegister.enabled. */
  autoRegistrar?: JtAutoRegistrar | null;
  log: Log;
  clock?: () => number;
}

/** What the metrics read (http/metrics.ts). */
export interface JtStats {
  readonly framesIn: number;
  /** Frames and bodies refused, by JtParseError kind, plus 'garbage' (bytes before a flag), 'subpackage' (a series swept unfinished) and 'backlog'. */
  readonly parseErrors: Readonly<Record<string, number>>;
  readonly terminalsOnline: number;
  readonly refusals: Readonly<Record<JtRefusal['reason'], number>>;
  /** Messages other than registration and authentication on a connection that had not authenticated. */
  readonly unauthenticated: number;
  /** Connections closed at once for jt808.maxConnections or jt808.maxConnectionsPerIp. */
  readonly connectionsRefused: number;
}

interface PendingCommand {
  msgId: number;
  resolve(): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
}

/** Messages a connection takes while its registration or authentication is being looked up; a terminal waits for the answer, so a few. */
const MAX_QUEUED = 32;
/** A terminal that does not read what we send (a broken link) is let go past this much unsent. */
const MAX_UNSENT_BYTES = 256 * 1024;
const RESULT = { OK: 0, FAILURE: 1, MESSAGE_ERROR: 2, NOT_SUPPORTED: 3 } as const;
/** How long an ended connection may take to send what it was last told and close its side. */
const ENDING_MS = 2_000;

/** One TCP connection of a terminal: its framing, identity once it speaks, and the commands awaiting its answer. */
class Connection {
  readonly splitter: FrameSplitter;
  readonly assembler: SubpackageAssembler;
  /** address:port, for the logs and the admin list. */
  readonly address: string;
  readonly ip: string;
  readonly localAddress: string | null;
  readonly openedAt: number;
  lastHeardAt: number;
  phone = '';
  sim = '';
  edition: JtEdition = '2013';
  protocolVersion = 1;
  vehicleId: string | null = null;
  authedAt: number | null = null;
  /** Listed once as refused for talking before it authenticated. */
  listedUnauthenticated = false;
  private serial = 0;
  readonly pending = new Map<number, PendingCommand>();
  /** Messages that arrived while an async step (registration, authentication) was running, in order. */
  queue: JtMessage[] | null = null;
  closed = false;
  readonly counters = { frames: 0, positions: 0, alarms: 0, errors: 0 };

  constructor(
    readonly socket: Socket,
    now: number,
    cfg: Jt808Config,
    onMessage: (m: JtMessage) => void,
    onError: (kind: string) => void,
  ) {
    this.ip = plainAddress(socket.remoteAddress);
    this.address = `${this.ip}:${socket.remotePort ?? 0}`;
    // An IPv4 terminal reaching a dual-stack listener shows as ::ffff:a.b.c.d; 0x9101 wants a.b.c.d.
    this.localAddress = socket.localAddress ? plainAddress(socket.localAddress) : null;
    this.openedAt = now;
    this.lastHeardAt = now;
    this.splitter = new FrameSplitter({ maxFrameBytes: cfg.maxFrameBytes, onMessage, onError: (kind) => onError(kind) });
    this.assembler = new SubpackageAssembler({ maxBytes: cfg.maxSubpackageBytes, timeoutMs: cfg.subpackageTimeoutMs, maxSeries: 16 });
  }

  nextSerial(): number {
    const s = this.serial;
    this.serial = (this.serial + 1) & 0xffff;
    return s;
  }

  get authed(): boolean {
    return this.authedAt !== null;
  }
}

/**
 * The JT/T 808 server: terminals connect over TCP, register (0x0100 → 0x8100 with an auth code kept
 * in the store) and authenticate (0x0102) on every connection; then their heartbeats, positions and
 * alarms go to the vehicles module through the feed (feed.ts), and platform commands (0x9101, 0x9102
 * for live view) go out over their link (JtLink). Each terminal is answered in its own header
 * edition. A terminal maps to a vehicle by the vehicle's SIM; unknown ones are refused and listed.
 */
export class JtService implements JtLink, JtLiveState, JtStats {
  readonly log: Log;
  private readonly cfg: Jt808Config;
  private readonly clock: () => number;
  private server: Server | null = null;
  private readonly connections = new Set<Connection>();
  /** jt808.maxConnections and jt808.maxConnectionsPerIp. */
  private readonly caps: ConnectionCaps;
  /** Sockets being ended politely, with when the sweep destroys them anyway. */
  private readonly ending = new Map<Socket, number>();
  /** Authenticated links by vehicle. */
  private readonly online = new Map<string, Connection>();
  /** Vehicles whose link went down (or that registered before this start): for terminal() and the admin list. */
  private readonly offline = new Map<string, { sim: string; edition: '2013' | '2019'; lastSeenAt: number | null; offlineSince: number | null; localAddress: string | null }>();
  private readonly watchers = new Map<string, Set<(online: boolean, replaced?: boolean) => void>>();
  /** Store writes in flight: close() lets them finish before the store goes. */
  private readonly writes = new Set<Promise<unknown>>();
  private sweepTimer: NodeJS.Timeout | null = null;
  private closing: Promise<void> | null = null;
  private countFrames = 0;
  private readonly countErrors: Record<string, number> = {};
  private readonly countRefusals = Object.fromEntries(JT_REFUSAL_REASONS.map((r) => [r, 0])) as Record<JtRefusal['reason'], number>;
  private countUnauthenticated = 0;
  private countConnectionsRefused = 0;
  port: number | null = null;

  constructor(private readonly opts: JtServiceOptions) {
    this.cfg = opts.config;
    this.caps = new ConnectionCaps({ max: opts.config.maxConnections, maxPerAddress: opts.config.maxConnectionsPerIp });
    this.log = opts.log;
    this.clock = opts.clock ?? Date.now;
    opts.directory.live = this;
    opts.vehicles.on('removed', this.onVehicleRemoved);
  }

  /**
   * A deleted vehicle's terminal loses its link and its auth code: it must register again, for
   * whichever vehicle then has its SIM. Only this vehicle's code goes: the SIM may have moved to another vehicle since.
   */
  private readonly onVehicleRemoved = (entry: { vehicle: { id: string; sim: string } }) => {
    const id = entry.vehicle.id;
    const sim = this.online.get(id)?.sim ?? this.offline.get(id)?.sim ?? stripSim(entry.vehicle.sim);
    const c = this.online.get(id);
    if (c) this.end(c, 'vehicle deleted');
    this.offline.delete(id);
    if (sim) this.track(this.opts.store.jt.deleteTerminal(sim, id));
  };

  /** An admin reset the terminal's registration (directory.ts): its link ends and it must register again. */
  forget(vehicleId: string) {
    const c = this.online.get(vehicleId);
    if (c) this.end(c, 'registration reset by an admin');
  }

  /** Loads who registered before (their vehicles show offline since their last link), then listens. */
  async start(): Promise<number> {
    for (const r of await this.opts.store.jt.terminals()) {
      this.offline.set(r.vehicleId, { sim: r.sim, edition: r.edition === '2019' ? '2019' : '2013', lastSeenAt: null, offlineSince: r.seenAt, localAddress: null });
    }
    const server = createServer({ noDelay: true }, (socket) => this.accept(socket));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.cfg.port, this.cfg.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (err) => this.log.error({ err: err.message }, 'JT/T 808 server error'));
    this.port = (server.address() as AddressInfo).port;
    const tickMs = Math.max(100, Math.min(1000, (this.cfg.authTimeoutSec * 1000) / 4));
    this.sweepTimer = setInterval(() => this.sweep(), tickMs).unref();
    this.log.info({ port: this.port, host: this.cfg.host }, 'JT/T 808 server listening');
    return this.port;
  }

  // ---- metrics -------------------------------------------------------------------------------

  get framesIn(): number {
    return this.countFrames;
  }
  get parseErrors(): Readonly<Record<string, number>> {
    return this.countErrors;
  }
  get terminalsOnline(): number {
    return this.online.size;
  }
  get refusals(): Readonly<Record<JtRefusal['reason'], number>> {
    return this.countRefusals;
  }
  get unauthenticated(): number {
    return this.countUnauthenticated;
  }
  get connectionsRefused(): number {
    return this.countConnectionsRefused;
  }
  /** Connections open now, authenticated or not (tests look for leaks). */
  get connectionCount(): number {
    return this.connections.size;
  }

  // ---- JtLink ---------------------------------------------------------------------------------

  terminal(vehicleId: string): JtTerminalState | null {
    const c = this.online.get(vehicleId);
    if (c) return { vehicleId, sim: c.sim, edition: c.edition, online: true, lastSeenAt: c.lastHeardAt, offlineSince: null, localAddress: c.localAddress };
    const o = this.offline.get(vehicleId);
    if (o) return { vehicleId, ...o, online: false };
    const sim = stripSim(this.opts.vehicles.get(vehicleId)?.vehicle.sim ?? '');
    return sim ? { vehicleId, sim, edition: '2013', online: false, lastSeenAt: null, offlineSince: null, localAddress: null } : null;
  }

  /** The vehicles whose terminal holds its 808 link with this gateway now (cluster mode: their channels are pulled here). */
  linkedVehicles(): string[] {
    return [...this.online.keys()];
  }

  vehicleBySim(sim: string): string | null {
    return this.opts.vehicles.bySim(sim)?.vehicle.id ?? null;
  }

  command(vehicleId: string, msgId: number, body: Buffer): Promise<void> {
    const c = this.online.get(vehicleId);
    if (!c || c.closed) return Promise.reject(new JtCommandError('offline', `the terminal of vehicle ${vehicleId} is offline`));
    const serial = c.nextSerial();
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        c.pending.delete(serial);
        reject(new JtCommandError('timeout', `the terminal of vehicle ${vehicleId} did not answer 0x${msgId.toString(16)} within ${this.cfg.commandTimeoutMs} ms`));
      }, this.cfg.commandTimeoutMs);
      c.pending.set(serial, { msgId, resolve, reject, timer });
      this.send(c, msgId, body, serial);
    });
  }

  onLinkChange(vehicleId: string, cb: (online: boolean, replaced?: boolean) => void): () => void {
    let set = this.watchers.get(vehicleId);
    if (!set) this.watchers.set(vehicleId, (set = new Set()));
    set.add(cb);
    return () => {
      set.delete(cb);
      if (set.size === 0 && this.watchers.get(vehicleId) === set) this.watchers.delete(vehicleId);
    };
  }

  // ---- JtLiveState (the admin list) -----------------------------------------------------------

  link(vehicleId: string): JtLiveLink | null {
    const c = this.online.get(vehicleId);
    if (c) return { online: true, since: c.authedAt, edition: c.edition, address: c.address, counters: { ...c.counters } };
    const o = this.offline.get(vehicleId);
    return o ? { online: false, since: o.offlineSince, edition: o.edition, address: null, counters: { frames: 0, positions: 0, alarms: 0, errors: 0 } } : null;
  }

  // ---- connections ----------------------------------------------------------------------------

  private accept(socket: Socket) {
    socket.on('error', (err) => this.log.debug({ err: err.message }, 'JT/T 808 socket error'));
    if (this.closing) return void socket.destroy();
    // Every connection holds buffers until it authenticates (jt808.authTimeoutSec): their number is bounded, per address too.
    const ip = plainAddress(socket.remoteAddress);
    if (!this.caps.admit(ip)) {
      this.countConnectionsRefused++;
      this.log.debug({ address: ip, open: this.connections.size }, 'JT/T 808 connection refused: too many open');
      return void socket.destroy();
    }
    const c: Connection = new Connection(
      socket,
      this.clock(),
      this.cfg,
      (m) => this.onFrame(c, m),
      (kind) => this.parseError(c, kind),
    );
    this.connections.add(c);
    // A bug part-way through a read leaves the framing unknown: that connection goes.
    socket.on('data', (chunk: Buffer) => this.guarded(c, () => c.splitter.push(chunk)) || this.drop(c, 'internal error'));
    socket.on('close', () => this.drop(c, 'closed'));
  }

  /**
   * Runs one step of a connection's input. The splitter and decoders throw only JtParseError, which
   * they report; anything else is a bug: logged and counted ('internal'); false then.
   */
  private guarded(c: Connection, step: () => void): boolean {
    try {
      step();
      return true;
    } catch (err) {
      this.parseError(c, 'internal');
      this.log.error({ err: (err as Error).message, terminal: c.sim || c.address }, 'JT/T 808 message not handled');
      return false;
    }
  }

  private parseError(c: Connection, kind: string) {
    this.countErrors[kind] = (this.countErrors[kind] ?? 0) + 1;
    c.counters.errors++;
  }

  private onFrame(c: Connection, m: JtMessage) {
    if (c.closed) return;
    this.countFrames++;
    c.counters.frames++;
    c.lastHeardAt = this.clock();
    const h = m.header;
    if (c.sim && h.sim !== c.sim) {
      // One connection, one terminal: another phone number on it is refused, not taken as the first one's.
      this.parseError(c, 'header');
      return;
    }
    if (c.queue) {
      if (c.queue.length >= MAX_QUEUED) return this.parseError(c, 'backlog');
      c.queue.push(m);
      return;
    }
    this.take(c, m);
  }

  /** A message in its turn: a subpackage piece is answered and kept until its series is whole. */
  private take(c: Connection, m: JtMessage) {
    const h = m.header;
    if (!h.packet) return this.handle(c, m, false);
    if (!c.authed) {
      // Nothing is kept for a connection that has not authenticated: a registration or authentication fits one frame, so one in pieces is a message error.
      if (h.msgId === JT_MSG.REGISTER || h.msgId === JT_MSG.AUTH) return this.answer(c, m, RESULT.MESSAGE_ERROR);
      return this.handle(c, m, false);
    }
    // 1078 terminals expect each piece answered; the whole message is then handled without a second answer.
    this.answer(c, m, RESULT.OK);
    const whole = c.assembler.push(m);
    if (whole) this.handle(c, whole, true);
  }

  private handle(c: Connection, m: JtMessage, answered: boolean) {
    const h = m.header;
    try {
      if (h.msgId === JT_MSG.REGISTER) return this.serialised(c, this.onRegister(c, m));
      if (h.msgId === JT_MSG.AUTH) return this.serialised(c, this.onAuth(c, m));
      if (!c.authed) {
        this.countUnauthenticated++;
        if (!answered) this.answer(c, m, RESULT.FAILURE);
        if (!c.listedUnauthenticated) {
          // Listed once per connection, so a terminal that skips registration shows in the admin list without a row write per message.
          c.listedUnauthenticated = true;
          this.list(c, h.sim, 'unauthenticated', {});
        }
        return;
      }
      const vehicleId = c.vehicleId!;
      switch (h.msgId) {
        case JT_MSG.HEARTBEAT:
          this.opts.feed.heard(vehicleId);
          break;
        case JT_MSG.LOCATION: {
          const l = decodeLocation(m.body);
          c.counters.positions++;
          c.counters.alarms += this.opts.feed.location(vehicleId, l, c.edition);
          break;
        }
        case JT_MSG.LOCATION_BATCH: {
          const batch = decodeLocationBatch(m.body);
          c.counters.positions += batch.items.length;
          for (const l of batch.items) c.counters.alarms += this.opts.feed.location(vehicleId, l, c.edition);
          break;
        }
        case JT_MSG.TERMINAL_RESPONSE:
          // An answer to one of our commands: it is not answered itself.
          return this.onResponse(c, m);
        case JT_MSG.QUERY_TIME:
          this.send(c, JT_MSG.QUERY_TIME_REPLY, encodeQueryTimeReply(this.clock()));
          return;
        case JT_MSG.UNREGISTER:
          this.answer(c, m, RESULT.OK);
          this.track(this.opts.store.jt.deleteTerminal(c.sim, vehicleId));
          this.offline.delete(vehicleId);
          this.log.info({ sim: c.sim, vehicle: vehicleId }, 'JT/T 808 terminal unregistered');
          return this.end(c, 'unregistered');
        default:
          this.opts.feed.heard(vehicleId);
          if (!answered) this.answer(c, m, RESULT.NOT_SUPPORTED);
          return;
      }
      if (!answered) this.answer(c, m, RESULT.OK);
    } catch (err) {
      if (!(err instanceof JtParseError)) throw err;
      this.parseError(c, err.kind);
      if (!answered) this.answer(c, m, RESULT.MESSAGE_ERROR);
    }
  }

  /** Runs an async step with the connection's later messages held back, then handles them in order. */
  private serialised(c: Connection, step: Promise<void>) {
    c.queue ??= [];
    const done = step
      .catch((err: Error) => {
        if (err instanceof JtParseError) {
          this.parseError(c, err.kind);
          return;
        }
        this.log.error({ err: err.message, terminal: c.sim || c.address }, 'JT/T 808 registration or authentication failed');
        this.drop(c, 'internal error');
      })
      .then(() => {
        const queued = c.queue ?? [];
        c.queue = null;
        for (let i = 0; i < queued.length && !c.closed; i++) {
          if (c.queue) {
            // Another async step began: what is left waits behind it, in order.
            (c.queue as JtMessage[]).push(...queued.slice(i));
            return;
          }
          // One message that fails (a bug, not the terminal's input) is reported; the ones behind it are still taken.
          this.guarded(c, () => this.take(c, queued[i]!));
        }
      });
    this.track(done, 'JT/T 808 registration or authentication step failed');
  }

  private async onRegister(c: Connection, m: JtMessage) {
    const h = m.header;
    let reg: Registration;
    try {
      reg = decodeRegistration(m.body, h.edition);
    } catch (err) {
      this.answer(c, m, RESULT.MESSAGE_ERROR);
      throw err;
    }
    const info: JtTerminalInfo = {
      plate: printable(reg.plate, 32),
      plateColor: reg.plateColor,
      terminalId: printable(reg.terminalId, 30),
      manufacturer: printable(reg.manufacturer, 30),
      model: printable(reg.model, 30),
    };
    const known = this.opts.vehicles.bySim(h.sim);
    // Registration proves nothing but the SIM, a phone number: where the vehicle names its terminal, the terminal must say the same
    // (else the vehicle is registered to another terminal: result 1).
    if (known && !sameTerminalId(known.vehicle.terminalId ?? '', reg.terminalId)) {
      this.sendTo(c, h, JT_MSG.REGISTER_REPLY, encodeRegistrationReply({ serial: h.serial, result: 1 }));
      return this.refuse(c, h.sim, 'terminal', info);
    }
    if (known && !known.vehicle.terminalId) {
      // Nothing tells this terminal from the one that holds the code: the first keeps it until an admin resets the registration
      // (DELETE /api/jt808/terminals/:sim) or names the vehicle's terminal id. Result 3: terminal already registered.
      const held = await this.opts.store.jt.getTerminal(h.sim);
      if (c.closed) return;
      if (held && held.vehicleId === known.vehicle.id) {
        this.sendTo(c, h, JT_MSG.REGISTER_REPLY, encodeRegistrationReply({ serial: h.serial, result: 3 }));
        // Listed, but the connection stays: the terminal that holds the code (some register on every start) authenticates with it next;
        // any other cannot, and goes at jt808.authTimeoutSec.
        return this.list(c, h.sim, 'registered', info);
      }
    }
    let vehicleId = known?.vehicle.id ?? null;
    let reason: JtRefusal['reason'] = 'unknown';
    if (!vehicleId && this.cfg.autoRegister.enabled && this.opts.autoRegistrar) {
      try {
        vehicleId = await this.opts.autoRegistrar.register(h.sim, reg);
        this.log.info({ sim: h.sim, vehicle: vehicleId, plate: info.plate }, 'JT/T 808 terminal registered as a new vehicle');
      } catch (err) {
        // A plate the registry refuses (a VIN sent in its place) is the terminal's to fix; anything else (the department gone) the admin's.
        if (err instanceof ValidationError && err.issues.some((i) => i.field === 'plate')) reason = 'plate';
        this.log.warn({ sim: h.sim, plate: info.plate, err: (err as Error).message }, 'JT/T 808 terminal could not be registered as a vehicle');
      }
    }
    if (c.closed) return;
    if (!vehicleId) {
      this.sendTo(c, h, JT_MSG.REGISTER_REPLY, encodeRegistrationReply({ serial: h.serial, result: 4 }));
      return this.refuse(c, h.sim, reason, info);
    }
    const authCode = randomBytes(8).toString('hex');
    const record: JtTerminalRecord = { sim: h.sim, vehicleId, authCode, edition: reg.edition, phone: h.phone, ...info, registeredAt: this.clock(), seenAt: null, address: c.address };
    await this.opts.store.jt.putTerminal(record);
    if (c.closed) return;
    this.sendTo(c, h, JT_MSG.REGISTER_REPLY, encodeRegistrationReply({ serial: h.serial, result: 0, authCode }));
  }

  private async onAuth(c: Connection, m: JtMessage) {
    const h = m.header;
    let code: string;
    try {
      code = decodeAuthentication(m.body, h.edition).authCode;
    } catch (err) {
      this.answer(c, m, RESULT.MESSAGE_ERROR);
      throw err;
    }
    const entry = this.opts.vehicles.bySim(h.sim);
    const record = entry ? await this.opts.store.jt.getTerminal(h.sim) : null;
    if (c.closed) return;
    // The code must be one issued for this vehicle: a SIM given to another vehicle since does not carry the old vehicle's code over.
    if (!entry || !record || record.vehicleId !== entry.vehicle.id || !sameCode(record.authCode, code)) {
      this.sendTo(c, h, JT_MSG.PLATFORM_RESPONSE, encodeGeneralResponse({ serial: h.serial, msgId: h.msgId, result: RESULT.FAILURE }));
      return this.refuse(c, h.sim, entry ? 'auth' : 'unknown', {});
    }
    const vehicleId = entry.vehicle.id;
    const now = this.clock();
    Object.assign(c, { phone: h.phone, sim: h.sim, edition: h.edition, protocolVersion: h.protocolVersion || 1, vehicleId, authedAt: now });
    // A new connection of the same terminal means the old one is dead (jt808.md §4, P8).
    const old = this.online.get(vehicleId);
    this.online.set(vehicleId, c);
    // Commands the old link was waiting on are rejected 'offline' while the vehicle is already online on the new one: their
    // callers ask again there (channel-link.ts), and hear of the new link (notify below) to re-send what it must keep doing.
    if (old && old !== c) this.end(old, 'replaced by a new connection');
    this.offline.delete(vehicleId);
    this.answer(c, m, RESULT.OK);
    this.opts.feed.heard(vehicleId);
    this.track(this.opts.store.jt.setSeen(h.sim, now, c.address, h.edition === '2019' ? '2019' : record.edition === '2019' ? '2013' : record.edition));
    this.log.info({ sim: h.sim, vehicle: vehicleId, edition: h.edition, address: c.address }, 'JT/T 808 terminal online');
    // A replaced link stays up for its watchers, told it is a new one (what the old one was asked to do, it no longer does).
    this.notify(vehicleId, true, old !== undefined && old !== c);
  }

  private onResponse(c: Connection, m: JtMessage) {
    const r = decodeGeneralResponse(m.body);
    const p = c.pending.get(r.serial);
    if (!p || p.msgId !== r.msgId) return;
    c.pending.delete(r.serial);
    clearTimeout(p.timer);
    if (r.result === RESULT.OK) p.resolve();
    else p.reject(new JtCommandError('result', `the terminal refused 0x${r.msgId.toString(16)} (result ${r.result})`, r.result));
  }

  private refuse(c: Connection, sim: string, reason: JtRefusal['reason'], info: Partial<JtTerminalInfo>) {
    this.list(c, sim, reason, info);
    this.end(c, `refused (${reason})`);
  }

  /** Counts and lists a refused attempt (the admin list, directory.ts). */
  private list(c: Connection, sim: string, reason: JtRefusal['reason'], info: Partial<JtTerminalInfo>) {
    this.countRefusals[reason]++;
    this.log.info({ sim, address: c.address, reason }, 'JT/T 808 terminal refused');
    this.track(this.opts.directory.recordRefusal({ sim, address: c.ip, reason, ...info }));
  }

  // ---- sending --------------------------------------------------------------------------------

  /** 0x8001 for a message, in the terminal's edition. */
  private answer(c: Connection, m: JtMessage, result: number) {
    this.sendTo(c, m.header, JT_MSG.PLATFORM_RESPONSE, encodeGeneralResponse({ serial: m.header.serial, msgId: m.header.msgId, result }));
  }

  /** To a connection that may not have identified itself yet: in the header's edition and phone. */
  private sendTo(c: Connection, h: JtMessage['header'], msgId: number, body: Buffer) {
    this.write(c, encodeFrame({ msgId, edition: h.edition, phone: h.phone, serial: c.nextSerial(), protocolVersion: h.protocolVersion || 1 }, body));
  }

  private send(c: Connection, msgId: number, body: Buffer, serial = c.nextSerial()) {
    this.write(c, encodeFrame({ msgId, edition: c.edition, phone: c.phone, serial, protocolVersion: c.protocolVersion }, body));
  }

  private write(c: Connection, frame: Buffer) {
    if (c.closed || c.socket.destroyed) return;
    if (c.socket.writableLength > MAX_UNSENT_BYTES) {
      this.parseError(c, 'backlog');
      return this.drop(c, 'not reading');
    }
    c.socket.write(frame);
  }

  // ---- ending ---------------------------------------------------------------------------------

  /**
   * Ends a connection politely (what we wrote is sent first); the sweep destroys it if it is still
   * there after ENDING_MS (a terminal that does not read), so a reconnect storm arms no timer per socket.
   */
  private end(c: Connection, why: string) {
    if (c.closed) return;
    this.detach(c, why);
    const socket = c.socket;
    socket.end(() => socket.destroy());
    if (socket.destroyed) return;
    this.ending.set(socket, this.clock() + ENDING_MS);
    socket.once('close', () => this.ending.delete(socket));
  }

  private drop(c: Connection, why: string) {
    if (!c.closed) this.detach(c, why);
    c.socket.destroy();
  }

  private detach(c: Connection, why: string) {
    c.closed = true;
    c.queue = null;
    if (this.connections.delete(c)) this.caps.release(c.ip);
    for (const p of c.pending.values()) {
      clearTimeout(p.timer);
      p.reject(new JtCommandError('offline', `the terminal's link closed (${why})`));
    }
    c.pending.clear();
    const vehicleId = c.vehicleId;
    if (!vehicleId || this.online.get(vehicleId) !== c) return;
    const now = this.clock();
    this.online.delete(vehicleId);
    this.offline.set(vehicleId, { sim: c.sim, edition: c.edition, lastSeenAt: c.lastHeardAt, offlineSince: now, localAddress: c.localAddress });
    this.track(this.opts.store.jt.setSeen(c.sim, now, null, null));
    this.log.info({ sim: c.sim, vehicle: vehicleId, why }, 'JT/T 808 terminal offline');
    this.notify(vehicleId, false);
  }

  private notify(vehicleId: string, online: boolean, replaced = false) {
    for (const cb of [...(this.watchers.get(vehicleId) ?? [])]) {
      try {
        cb(online, replaced);
      } catch (err) {
        this.log.error({ err: (err as Error).message, vehicle: vehicleId }, 'JT/T 808 link watcher failed');
      }
    }
  }

  /** Connections that never authenticated, and terminals silent past the heartbeat timeout, are closed; stale subpackage series go. */
  private sweep() {
    const now = this.clock();
    const authBefore = now - this.cfg.authTimeoutSec * 1000;
    const silentBefore = now - this.cfg.heartbeatTimeoutSec * 1000;
    for (const [socket, deadline] of this.ending) if (deadline <= now) socket.destroy();
    for (const c of [...this.connections]) {
      if (!c.authed && c.openedAt < authBefore) this.drop(c, 'no authentication in time');
      else if (c.authed && c.lastHeardAt < silentBefore) this.drop(c, 'heartbeat timeout');
      else if (c.assembler.pending) {
        const swept = c.assembler.sweep();
        if (swept) this.countErrors.subpackage = (this.countErrors.subpackage ?? 0) + swept;
      }
    }
  }

  private track(p: Promise<unknown>, what = 'JT/T 808 store write failed') {
    const w = p.catch((err: Error) => this.log.error({ err: err.message }, what));
    this.writes.add(w);
    void w.finally(() => this.writes.delete(w));
  }

  /** Stops listening, destroys every connection (their vehicles go offline), then waits for the writes under way. */
  close(): Promise<void> {
    return (this.closing ??= (async () => {
      if (this.sweepTimer) clearInterval(this.sweepTimer);
      this.opts.vehicles.off('removed', this.onVehicleRemoved);
      const server = this.server;
      const closed = server ? new Promise<void>((resolve) => server.close(() => resolve())) : Promise.resolve();
      for (const c of [...this.connections]) this.drop(c, 'gateway shutting down');
      for (const socket of this.ending.keys()) socket.destroy();
      await closed;
      while (this.writes.size) await Promise.all([...this.writes]);
    })());
  }
}

/** Terminal ids as the registry keeps them (letters and digits) and terminals send them (2013: 7 bytes, padded), in any case; none on the vehicle accepts any. */
function sameTerminalId(expected: string, sent: string): boolean {
  const norm = (s: string) => s.replace(/[^A-Za-z0-9]/g, '').toUpperCase();
  return !expected || norm(expected) === norm(sent);
}

/** Compares auth codes in constant time for their length. */
function sameCode(stored: string, given: string): boolean {
  const a = Buffer.from(stored);
  const b = Buffer.from(given);
  return a.length === b.length && timingSafeEqual(a, b);
}

import { allows } from '../auth/roles.js';
import { GatewayError, reasoned } from '../errors.js';
import { ptzCmdHex } from '../gb28181/ptz-cmd.js';
import type { AuditEntry, Role, SourceRecord } from '../store/types.js';
import type { PtzCommand, PtzState } from './command.js';

export type { PtzState };

/**
 * Sends an encoded PTZCmd to the device a GB/T 28181 channel belongs to (a DeviceControl MESSAGE).
 * The GB service implements it; app.ts passes it in (BuildOptions.ptzSender in tests). Rejects with
 * a GatewayError when the device cannot be reached.
 */
export interface PtzSender {
  send(source: SourceRecord, ptzCmdHex: string): Promise<void>;
}

/** Who asks: a REST principal or a control-WebSocket actor. */
export interface PtzActor {
  id: string;
  username: string;
  ip: string;
  scopes: string[];
  roles: Role[];
}

export interface PtzConfig {
  /** gb28181.ptz.leaseMs: control stays with the last user this long after their last command. */
  leaseMs: number;
  /** gb28181.ptz.commandsPerSec, per user and camera. */
  commandsPerSec: number;
}

interface Lease {
  userId: string;
  username: string;
  until: number;
}

/** A camera told to move and not yet to stop: stopped by the gateway if its operator goes quiet or away. */
interface Movement {
  userId: string;
  username: string;
  ip: string;
  source: SourceRecord;
  /** The control connection the move came over (null for REST): its closing stops the camera. */
  origin: object | null;
  timer: NodeJS.Timeout;
}

/** Cameras the service needs from the registry: scoped, so a foreign camera is a 404 like a missing one. */
export interface PtzCameras {
  getSource(actor: PtzActor, id: string): Promise<SourceRecord>;
}

const RATE_WINDOW_MS = 1_000;

/**
 * PTZ of cameras: who may steer which camera (permission ptz:control and the department scope), one
 * user at a time per camera for a lease renewed by each command (a supervisor may take it over),
 * a rate limit per user and camera, and an audit entry for every command sent. A GB camera told to
 * move turns until told to stop, so a move whose operator's lease runs out, or whose control
 * connection closes, before a stop is stopped by the gateway (audited as ptz.auto-stop); a page
 * holding a direction renews the lease by repeating the move.
 */
export class PtzService {
  private readonly leases = new Map<string, Lease>();
  private readonly moving = new Map<string, Movement>();
  private closed = false;
  /** Per user and camera: when its recent commands were sent, and whether the last one was a stop. */
  private readonly recent = new Map<string, { at: number[]; stopped: boolean }>();
  private lastSweep = 0;

  constructor(
    private readonly cameras: PtzCameras,
    private readonly audit: (entry: Omit<AuditEntry, 'seq'>) => Promise<void>,
    private readonly sender: PtzSender | null,
    private readonly config: PtzConfig,
    private readonly clock: () => number = Date.now,
  ) {}

  async state(actor: PtzActor, cameraId: string): Promise<PtzState> {
    requirePtz(actor);
    const source = await this.cameras.getSource(actor, cameraId);
    return this.view(actor, source);
  }

  /**
   * Checks, takes or renews the lease, sends, audits. The lease is taken before the send so two
   * users pressing at once cannot both move the camera; a send that fails keeps it (the user
   * will retry or stop).
   */
  async command(actor: PtzActor, cameraId: string, command: PtzCommand, takeover = false, origin: object | null = null): Promise<PtzState> {
    requirePtz(actor);
    const source = await this.cameras.getSource(actor, cameraId);
    if (!supports(source)) throw reasoned('GW_ERR_UNSUPPORTED', 'ptz', { camera: source.id }, `PTZ is not supported for camera "${source.id}" (protocol ${source.protocol}; only GB/T 28181 channels are steered)`);
    if (!this.sender) throw new GatewayError('GW_ERR_UNAVAILABLE', 'PTZ commands cannot be sent now: the GB/T 28181 service is not running');
    const now = this.clock();
    this.sweep(now);
    const held = this.lease(source.id, now);
    let takenFrom: Lease | null = null;
    if (held && held.userId !== actor.id) {
      if (!takeover) {
        throw reasoned('GW_ERR_LOCKED', 'ptz', { camera: source.id, user: held.username }, `${held.username} controls the PTZ of camera "${source.id}" until ${new Date(held.until).toISOString()}`);
      }
      if (!allows(actor.roles, 'walls:break-lock')) {
        throw reasoned('GW_ERR_FORBIDDEN', 'permission', { permission: 'walls:break-lock' }, 'taking over PTZ control needs walls:break-lock');
      }
      takenFrom = held;
    }
    this.checkRate(actor, source.id, command, now);
    this.leases.set(source.id, { userId: actor.id, username: actor.username, until: now + this.config.leaseMs });
    const entry = { at: now, actor: actor.username, actorIp: actor.ip, target: source.id, scopePath: source.deptPath };
    if (takenFrom) await this.audit({ ...entry, action: 'ptz.takeover', outcome: 'ok', detail: { from: takenFrom.username } });
    const hex = ptzCmdHex(command);
    try {
      await this.sender.send(source, hex);
    } catch (err) {
      await this.audit({ ...entry, action: 'ptz.command', outcome: 'failed', detail: { command, ptzCmd: hex, error: err instanceof GatewayError ? err.code : 'GW_ERR_INTERNAL' } });
      throw err;
    }
    this.track(source, actor, command, origin);
    await this.audit({ ...entry, action: 'ptz.command', outcome: 'ok', detail: { command, ptzCmd: hex } });
    return this.view(actor, source);
  }

  /** A control connection closed: the cameras it left moving are stopped. */
  originClosed(origin: object): void {
    for (const [cameraId, m] of this.moving) if (m.origin === origin) void this.autoStop(cameraId, 'connectionClosed');
  }

  /** Shutdown: no more automatic stops (the GB service hangs up with it). */
  close(): void {
    this.closed = true;
    for (const m of this.moving.values()) clearTimeout(m.timer);
    this.moving.clear();
  }

  /** A move is watched until the next command for the camera; its lease running out first stops it. */
  private track(source: SourceRecord, actor: PtzActor, command: PtzCommand, origin: object | null) {
    const before = this.moving.get(source.id);
    if (before) clearTimeout(before.timer);
    this.moving.delete(source.id);
    const turning = command.action === 'move' && (!!command.pan || !!command.tilt || !!command.zoom);
    if (!turning || this.closed) return;
    const timer = setTimeout(() => void this.autoStop(source.id, 'leaseExpired'), this.config.leaseMs);
    timer.unref();
    this.moving.set(source.id, { userId: actor.id, username: actor.username, ip: actor.ip, source, origin, timer });
  }

  private async autoStop(cameraId: string, reason: 'leaseExpired' | 'connectionClosed') {
    const m = this.moving.get(cameraId);
    if (!m || this.closed || !this.sender) return;
    clearTimeout(m.timer);
    this.moving.delete(cameraId);
    // The operator is gone: the camera is free for the next one at once.
    if (this.leases.get(cameraId)?.userId === m.userId) this.leases.delete(cameraId);
    const hex = ptzCmdHex({ action: 'stop' });
    const entry = { at: this.clock(), actor: m.username, actorIp: m.ip, action: 'ptz.auto-stop', target: cameraId, scopePath: m.source.deptPath };
    const error = await this.sender.send(m.source, hex).then(
      () => null,
      (err: unknown) => (err instanceof GatewayError ? err.code : 'GW_ERR_INTERNAL'),
    );
    // Nobody awaits an automatic stop: an audit that cannot be written (the store closing) is dropped here.
    await this.audit({ ...entry, outcome: error ? 'failed' : 'ok', detail: { reason, ptzCmd: hex, ...(error ? { error } : {}) } }).catch(() => undefined);
  }

  /** Gives control back before the lease runs out. Someone else's lease stays: the answer says whose. */
  async release(actor: PtzActor, cameraId: string): Promise<PtzState> {
    requirePtz(actor);
    const source = await this.cameras.getSource(actor, cameraId);
    const held = this.lease(source.id, this.clock());
    if (held?.userId === actor.id) {
      this.leases.delete(source.id);
      await this.audit({ at: this.clock(), actor: actor.username, actorIp: actor.ip, action: 'ptz.release', target: source.id, outcome: 'ok', detail: {}, scopePath: source.deptPath });
    }
    return this.view(actor, source);
  }

  private view(actor: PtzActor, source: SourceRecord): PtzState {
    const held = this.lease(source.id, this.clock());
    return {
      cameraId: source.id,
      supported: supports(source),
      holder: held ? { userId: held.userId, username: held.username } : null,
      until: held?.until ?? null,
      mine: held?.userId === actor.id,
      canTakeOver: allows(actor.roles, 'walls:break-lock'),
      leaseMs: this.config.leaseMs,
    };
  }

  private lease(cameraId: string, now: number): Lease | null {
    const l = this.leases.get(cameraId);
    if (!l) return null;
    if (l.until > now) return l;
    this.leases.delete(cameraId);
    return null;
  }

  /**
   * At most commandsPerSec commands in any second. A stop after a movement always goes through: a
   * refused stop would leave the camera turning. Repeated stops count like anything else.
   */
  private checkRate(actor: PtzActor, cameraId: string, command: PtzCommand, now: number) {
    const key = `${actor.id}\n${cameraId}`;
    let r = this.recent.get(key);
    if (!r) this.recent.set(key, (r = { at: [], stopped: true }));
    while (r.at.length && r.at[0]! <= now - RATE_WINDOW_MS) r.at.shift();
    const isStop = command.action === 'stop';
    const stopAfterMove = isStop && !r.stopped;
    if (r.at.length >= this.config.commandsPerSec && !stopAfterMove) {
      throw reasoned('GW_ERR_RATE_LIMITED', 'messages', { perSecond: this.config.commandsPerSec }, `more than ${this.config.commandsPerSec} PTZ commands a second for camera "${cameraId}" (gb28181.ptz.commandsPerSec); this one was dropped`);
    }
    r.at.push(now);
    if (r.at.length > this.config.commandsPerSec) r.at.shift();
    r.stopped = isStop || command.action === 'preset';
  }

  /** Forgets expired leases and idle rate counters now and then, so neither map grows with every camera ever steered. */
  private sweep(now: number) {
    if (now - this.lastSweep < 10_000) return;
    this.lastSweep = now;
    for (const [id, l] of this.leases) if (l.until <= now) this.leases.delete(id);
    for (const [key, r] of this.recent) if (r.stopped && (r.at.at(-1) ?? 0) <= now - RATE_WINDOW_MS) this.recent.delete(key);
  }
}

const supports = (source: SourceRecord) => source.protocol === 'gb28181';

function requirePtz(actor: PtzActor) {
  if (!allows(actor.roles, 'ptz:control')) throw reasoned('GW_ERR_FORBIDDEN', 'permission', { permission: 'ptz:control' }, 'your roles do not allow ptz:control');
}

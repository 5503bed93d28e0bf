import type { AccessUnit } from '../gb28181/media/types.js';
import { plainAddress } from '../lib/sockets.js';
import { reasoned, type GatewayError } from '../errors.js';
import type { JtBudget } from './budget.js';
import { JtCommandError, type JtLink } from './link.js';
import { encodeLiveControl, encodeLiveRequest, encodeLiveStatus, JT_MSG } from './protocol/messages.js';

/** How often a channel that is open tells its terminal the packet loss we see (0x9105). */
const STATUS_INTERVAL_MS = 5_000;
/** A sequence jump larger than this is a restart or a late packet, not loss. */
const MAX_COUNTED_GAP = 1_000;
/** Media of a channel nobody asked for gets one 0x9102 close per this long (the terminal ignored ours, or took a 0x9101 we gave up on). */
const STRAY_CLOSE_INTERVAL_MS = 30_000;
/** Channels remembered for that rate limit; beyond it the oldest are forgotten (a stray close more is harmless). */
const MAX_STRAY_CHANNELS = 4_096;

/** The JT/T 1078 part of the stream engine's driver context (streams/sources/driver.ts), wired by app.ts. */
export interface JtDriverContext {
  channels: JtChannels;
  /** jt1078.startTimeoutMs: how long after answering 0x9101 the terminal may take to send the channel's media (the driver times it). */
  startTimeoutMs: number;
  /** jt1078.overBudgetCloseAfterMs: how long a channel of a vehicle past its data budget lingers unwatched. */
  overBudgetCloseAfterMs: number;
  /** jt808.commandTimeoutMs: how long 0x9101 waits for the terminal's answer. */
  commandTimeoutMs: number;
  /**
   * The camera source the vehicle names for its channel (vehicles module), or null for none. A
   * source's URL names a vehicle, but only the vehicle's own channel sources play its video: a
   * source registered elsewhere under a vehicle id made later would otherwise show another
   * department's vehicle.
   */
  channelSource(vehicleId: string, channel: number): string | null;
}

/** What one live-view attempt (a driver) hands the channel: its stream, where units go, how it hears of a failure. */
export interface JtChannelTap {
  /** 0 main, 1 sub: the profile of the session the driver belongs to. */
  readonly stream: 0 | 1;
  unit(u: AccessUnit): void;
  /** The terminal went offline or closed the media link: the attempt is over. */
  failed(error: GatewayError): void;
}

export interface JtChannelAttachment {
  /** Resolves once the terminal accepted 0x9101 (at once when the channel is open already); rejects with JtCommandError. */
  readonly opened: Promise<void>;
  /** Media packets of this channel since the terminal was asked for it. */
  readonly packets: number;
  /** Idempotent. The last one leaving closes the channel at the terminal (0x9102 close). */
  detach(): void;
}

export interface JtChannelsOptions {
  link: JtLink;
  budget: JtBudget;
  /** jt1078.publicAddress: what 0x9101 tells terminals to send to; empty for the local address their 808 link reached. */
  publicAddress: string;
  /** The media server's bound TCP and UDP ports, known once it listens. */
  mediaPorts(): { tcp: number; udp: number };
  statusIntervalMs?: number;
}

type Phase = 'idle' | 'opening' | 'open';

/**
 * One vehicle channel at its terminal, shared by every session that plays it: the channel's main
 * and sub sessions both, because a terminal sends one stream per channel and its packets do not say
 * which. The first attempt asks for it (0x9101); the stream asked for is the main one while any main
 * session watches, else the sub one, and the sub one whatever is watched once the vehicle is past its
 * data budget; a change is a 0x9102 switch; the last attempt leaving closes it (0x9102 close).
 * Commands go out one after another, in the order they were decided, so a close and the next request
 * never cross.
 */
export class JtChannelLink {
  private readonly taps = new Set<JtChannelTap>();
  private phase: Phase = 'idle';
  private opened: Promise<void> = Promise.resolve();
  /** Settles `opened` of the attempts waiting now; a 0x9101 re-sent on a new link before the answer keeps it. */
  private settle: { resolve(): void; reject(e: unknown): void } | null = null;
  /** Bumped by every 0x9101: media is pinned to the first source after each (media/server.ts). */
  private requests = 0;
  /** The last 0x9101's outcome, for the close that follows it. */
  private lastRequest: Promise<void> = Promise.resolve();
  /** 0x9101s re-sent because the link they went out on was replaced; bounded, so a broken link cannot loop. */
  private resent = 0;
  /** Commands queued and not yet done: the link is let go only once they are. */
  private pending = 0;
  /** The stream the terminal was last told to send. */
  private current: 0 | 1 | null = null;
  /** Bumped by every open and reset: the late answer to an older 0x9101 changes nothing. */
  private epoch = 0;
  private queue: Promise<unknown> = Promise.resolve();
  private unwatch: (() => void) | null = null;
  private statusTimer: NodeJS.Timeout | null = null;
  private statusSending = false;
  private lastSeq: number | null = null;
  /** Packets and losses since the last status report, and packets since the terminal was asked. */
  private window = { packets: 0, lost: 0 };
  private packetsSinceOpen = 0;

  constructor(
    readonly vehicleId: string,
    readonly channel: number,
    private readonly opts: JtChannelsOptions,
    /** Called when the link is unwatched, closed and its commands done: JtChannels lets it go. */
    private readonly onIdle: (link: JtChannelLink) => void = () => undefined,
    /** Called as a 0x9102 close goes out: packets already on their way are not stray media. */
    private readonly onCloseSent: () => void = () => undefined,
  ) {}

  get attached(): number {
    return this.taps.size;
  }

  /** Taking media now: asked for, and not closed since. */
  get active(): boolean {
    return this.phase !== 'idle';
  }

  /** Which 0x9101 the media now comes from, while opening or open; null while closed. */
  get request(): number | null {
    return this.phase === 'idle' ? null : this.requests;
  }

  /** Nothing watched, nothing asked, nothing queued. */
  get idle(): boolean {
    return this.phase === 'idle' && this.taps.size === 0 && this.pending === 0;
  }

  /** The stream the terminal is sending (or was asked for), null while closed. */
  get stream(): 0 | 1 | null {
    return this.current;
  }

  attach(tap: JtChannelTap): JtChannelAttachment {
    this.taps.add(tap);
    this.unwatch ??= this.opts.link.onLinkChange(this.vehicleId, (online) => {
      if (!online) this.lose(offlineError(this.vehicleId, Date.now()));
      // A new connection (maybe replacing the old one without a word) never got our 0x9101.
      else if (this.phase !== 'idle') this.request_();
    });
    if (this.phase === 'idle') this.open();
    else this.reconcile();
    const opened = this.opened;
    let detached = false;
    const link = this;
    return {
      opened,
      get packets() {
        return link.packetsSinceOpen;
      },
      detach: () => {
        if (detached) return;
        detached = true;
        this.detach(tap);
      },
    };
  }

  /** A media packet of this channel arrived (any stream type): for the loss rate and the attempts' "no media" checks. */
  packet(seq: number): void {
    if (this.phase === 'idle') return;
    this.packetsSinceOpen++;
    this.window.packets++;
    if (this.lastSeq !== null) {
      const gap = (seq - this.lastSeq - 1) & 0xffff;
      if (gap > 0 && gap < MAX_COUNTED_GAP) this.window.lost += gap;
    }
    // A late packet does not move the expected sequence back.
    if (this.lastSeq === null || ((seq - this.lastSeq) & 0xffff) < 0x8000) this.lastSeq = seq;
  }

  unit(u: AccessUnit): void {
    if (this.phase === 'idle') return;
    for (const tap of this.taps) tap.unit(u);
  }

  /** The terminal went offline or closed the media link: every attempt hears why, and the next one asks again. */
  lose(error: GatewayError): void {
    if (this.phase === 'idle') return;
    const settle = this.settle;
    this.settle = null;
    this.reset();
    for (const tap of [...this.taps]) tap.failed(error);
    settle?.reject(error);
  }

  /** Re-decides the stream: a session joined or left, or the vehicle went past its budget. */
  reconcile(): void {
    if (this.phase !== 'open') return;
    const stream = this.wanted();
    if (stream === this.current) return;
    this.current = stream;
    this.enqueue(() => this.command(JT_MSG.LIVE_CONTROL, encodeLiveControl({ channel: this.channel, command: 1, closeType: 0, stream }))).catch((e: Error) =>
      this.opts.link.log.warn({ vehicle: this.vehicleId, channel: this.channel, stream, err: e.message }, 'JT/T 1078 stream switch (0x9102) failed'),
    );
  }

  /** Stops the status reports (shutdown); the terminal's media ends with its link. */
  close(): void {
    this.settle?.reject(new JtCommandError('offline', 'the JT/T 1078 server closed'));
    this.settle = null;
    this.reset();
    this.unwatch?.();
    this.unwatch = null;
  }

  private wanted(): 0 | 1 {
    if (this.opts.budget.over(this.vehicleId)) return 1;
    for (const tap of this.taps) if (tap.stream === 0) return 0;
    return 1;
  }

  private open() {
    this.lastSeq = null;
    this.window = { packets: 0, lost: 0 };
    this.packetsSinceOpen = 0;
    this.opened = new Promise<void>((resolve, reject) => (this.settle = { resolve, reject }));
    // Each attempt awaits it; nobody may be left to, once they all closed.
    this.opened.catch(() => undefined);
    this.request_();
  }

  /**
   * Sends 0x9101 for the stream wanted now: on opening, and again on the terminal's new link. Its
   * answer settles the attempts' `opened` unless a later request or a reset superseded it; a request
   * the old link dropped ('offline') while the new one is up waits for the one sent on the new link.
   */
  private request_() {
    const epoch = ++this.epoch;
    const stream = this.wanted();
    this.phase = 'opening';
    this.current = stream;
    this.requests++;
    this.stopStatus();
    const request = this.enqueue(async () => {
      const terminal = this.opts.link.terminal(this.vehicleId);
      if (!terminal?.online) throw new JtCommandError('offline', `vehicle ${this.vehicleId}'s terminal is not connected`);
      const ports = this.opts.mediaPorts();
      const ip = this.opts.publicAddress || plainAddress(terminal.localAddress ?? '');
      await this.command(JT_MSG.LIVE_REQUEST, encodeLiveRequest({ ip, tcpPort: ports.tcp, udpPort: ports.udp, channel: this.channel, dataType: 1, stream }));
    });
    this.lastRequest = request;
    request.then(
      () => {
        if (epoch !== this.epoch) return;
        this.phase = 'open';
        this.resent = 0;
        this.settle?.resolve();
        this.settle = null;
        this.startStatus();
        this.reconcile();
      },
      (e: unknown) => {
        if (epoch !== this.epoch) return;
        // The link it went out on was replaced by the terminal's new one: asked again there.
        if (e instanceof JtCommandError && e.kind === 'offline' && this.opts.link.terminal(this.vehicleId)?.online && this.resent++ < 2) return this.request_();
        const settle = this.settle;
        this.settle = null;
        this.reset();
        // The terminal may yet take a request we stopped waiting for, and send media regardless.
        if (e instanceof JtCommandError && e.kind === 'timeout') this.closeAtTerminal();
        if (settle) return settle.reject(e);
        // Re-sent on a new link after the attempts had started: they hear it like a closed media link.
        const error = reasoned('GW_ERR_CAMERA_UNREACHABLE', 'mediaLinkClosed', {}, `the terminal reconnected and did not take the video request again: ${(e as Error).message}`);
        for (const tap of [...this.taps]) tap.failed(error);
      },
    );
  }

  private detach(tap: JtChannelTap) {
    if (!this.taps.delete(tap)) return;
    if (this.taps.size > 0) return this.reconcile();
    this.unwatch?.();
    this.unwatch = null;
    if (this.phase === 'idle') {
      if (this.idle) this.onIdle(this);
      return;
    }
    const request = this.lastRequest;
    const settle = this.settle;
    this.settle = null;
    this.reset();
    // Nobody is left to act on it; the answer still settles what the attempts that left await.
    if (settle) request.then(settle.resolve, settle.reject);
    // After the request it may still be waiting for: closed unless the terminal refused it or never got it.
    this.enqueue(async () => {
      if (!(await request.then(() => true, (e: unknown) => e instanceof JtCommandError && e.kind === 'timeout'))) return;
      await this.sendClose();
    }).catch((e: Error) => this.opts.link.log.warn({ vehicle: this.vehicleId, channel: this.channel, err: e.message }, 'JT/T 1078 close (0x9102) failed'));
  }

  /**
   * Media of this channel came while nobody asked for it: the terminal took a 0x9101 we gave up on,
   * or ignored our close. Told to close, after whatever is queued (a new request then wins).
   */
  stopStray(): void {
    if (this.phase !== 'idle') return;
    this.closeAtTerminal();
  }

  private closeAtTerminal() {
    this.enqueue(async () => {
      if (this.phase === 'idle') await this.sendClose();
    }).catch((e: Error) => this.opts.link.log.warn({ vehicle: this.vehicleId, channel: this.channel, err: e.message }, 'JT/T 1078 close (0x9102) failed'));
  }

  private sendClose(): Promise<void> {
    this.onCloseSent();
    return this.command(JT_MSG.LIVE_CONTROL, encodeLiveControl({ channel: this.channel, command: 0, closeType: 0, stream: 0 }));
  }

  private reset() {
    this.epoch++;
    this.phase = 'idle';
    this.current = null;
    this.stopStatus();
  }

  private stopStatus() {
    if (this.statusTimer) clearInterval(this.statusTimer);
    this.statusTimer = null;
  }

  private startStatus() {
    this.statusTimer = setInterval(() => this.sendStatus(), this.opts.statusIntervalMs ?? STATUS_INTERVAL_MS);
    this.statusTimer.unref();
  }

  /** 0x9105 with the loss since the last one; outside the command queue, since a terminal may not answer it. */
  private sendStatus() {
    const { packets, lost } = this.window;
    this.window = { packets: 0, lost: 0 };
    if (this.statusSending || packets + lost === 0) return;
    this.statusSending = true;
    const lossPct = Math.floor((lost * 100) / (packets + lost));
    this.command(JT_MSG.LIVE_STATUS, encodeLiveStatus({ channel: this.channel, lossPct }))
      .catch(() => undefined)
      .finally(() => (this.statusSending = false));
  }

  private command(msgId: number, body: Buffer): Promise<void> {
    return this.opts.link.command(this.vehicleId, msgId, body);
  }

  private enqueue<T>(task: () => Promise<T>): Promise<T> {
    this.pending++;
    const run = this.queue.then(task, task);
    this.queue = run
      .catch(() => undefined)
      .finally(() => {
        this.pending--;
        if (this.idle) this.onIdle(this);
      });
    return run;
  }
}

/**
 * Every vehicle channel being played, by (vehicle, channel): what the play drivers attach to and
 * the media server delivers into.
 */
export class JtChannels {
  private readonly links = new Map<string, JtChannelLink>();
  /** When each channel's terminal was last told to close it, by us or for stray media (rate limit of stray closes). */
  private readonly strayClosedAt = new Map<string, number>();
  private readonly unsubscribe: () => void;

  constructor(private readonly opts: JtChannelsOptions) {
    this.unsubscribe = opts.budget.onOver((vehicleId) => {
      for (const link of this.links.values()) if (link.vehicleId === vehicleId) link.reconcile();
    });
  }

  get link(): JtLink {
    return this.opts.link;
  }

  get budget(): JtBudget {
    return this.opts.budget;
  }

  /**
   * A channel's link lives while watched and until its last command (the close) is done: its command
   * queue is what orders a close before the next request.
   */
  attach(vehicleId: string, channel: number, tap: JtChannelTap): JtChannelAttachment {
    return this.linkOf(vehicleId, channel).attach(tap);
  }

  private linkOf(vehicleId: string, channel: number): JtChannelLink {
    const key = keyOf(vehicleId, channel);
    let link = this.links.get(key);
    if (!link) {
      link = new JtChannelLink(
        vehicleId,
        channel,
        this.opts,
        (idle) => {
          if (this.links.get(key) === idle) this.links.delete(key);
        },
        () => this.noteClose(key, Date.now()),
      );
      this.links.set(key, link);
    }
    return link;
  }

  /** Channel links kept now (watched, or finishing their close). */
  get size(): number {
    return this.links.size;
  }

  /** The channel asked for and not closed: its packets are worth reassembling. */
  wants(vehicleId: string, channel: number): boolean {
    return this.links.get(keyOf(vehicleId, channel))?.active ?? false;
  }

  /** Which 0x9101 of the channel is in force (media is pinned to the first source after it), or null when nobody asked for it. */
  request(vehicleId: string, channel: number): number | null {
    return this.links.get(keyOf(vehicleId, channel))?.request ?? null;
  }

  /**
   * Media of a known vehicle's channel nobody asked for: its terminal is told to close it, at most
   * once per STRAY_CLOSE_INTERVAL_MS per channel, counting our own closes (the packets that were on
   * their way when we closed are not worth a second one), since they may come from anyone knowing the SIM.
   */
  stray(vehicleId: string, channel: number): void {
    const key = keyOf(vehicleId, channel);
    const now = Date.now();
    const last = this.strayClosedAt.get(key);
    if (last !== undefined && now - last < STRAY_CLOSE_INTERVAL_MS) return;
    this.noteClose(key, now);
    if (!this.opts.link.terminal(vehicleId)?.online) return;
    this.linkOf(vehicleId, channel).stopStray();
  }

  private noteClose(key: string, now: number) {
    this.strayClosedAt.delete(key);
    if (this.strayClosedAt.size >= MAX_STRAY_CHANNELS) {
      for (const [k, at] of this.strayClosedAt) if (now - at >= STRAY_CLOSE_INTERVAL_MS || this.strayClosedAt.size >= MAX_STRAY_CHANNELS) this.strayClosedAt.delete(k);
    }
    this.strayClosedAt.set(key, now);
  }

  get(vehicleId: string, channel: number): JtChannelLink | undefined {
    return this.links.get(keyOf(vehicleId, channel));
  }

  packet(vehicleId: string, channel: number, seq: number): void {
    this.links.get(keyOf(vehicleId, channel))?.packet(seq);
  }

  unit(vehicleId: string, channel: number, u: AccessUnit): void {
    this.links.get(keyOf(vehicleId, channel))?.unit(u);
  }

  /** The TCP media link that carried the channel ended. */
  mediaClosed(vehicleId: string, channel: number, error: GatewayError): void {
    this.links.get(keyOf(vehicleId, channel))?.lose(error);
  }

  close(): void {
    this.unsubscribe();
    for (const link of this.links.values()) link.close();
    this.links.clear();
    this.strayClosedAt.clear();
  }
}

/**
 * The JT/T 808 service as the channels and the media server see it before it exists: app.ts builds
 * them with the stream engine, and the service only after the vehicles it reports into. Until bound,
 * no terminal is known (an attempt hears the vehicle has not been online) and nothing is sent.
 */
export class JtLinkSlot implements JtLink {
  private target: JtLink | null = null;
  /** Subscriptions made before the service was bound, handed to it on bind. */
  private readonly early = new Set<{ vehicleId: string; cb: (online: boolean, replaced?: boolean) => void; unsubscribe: (() => void) | null }>();

  constructor(readonly log: JtLink['log']) {}

  bind(link: JtLink): void {
    this.target = link;
    for (const s of this.early) s.unsubscribe = link.onLinkChange(s.vehicleId, s.cb);
  }

  terminal(vehicleId: string) {
    return this.target?.terminal(vehicleId) ?? null;
  }

  vehicleBySim(sim: string) {
    return this.target?.vehicleBySim(sim) ?? null;
  }

  command(vehicleId: string, msgId: number, body: Buffer): Promise<void> {
    return this.target ? this.target.command(vehicleId, msgId, body) : Promise.reject(new JtCommandError('offline', 'the JT/T 808 server is not running'));
  }

  onLinkChange(vehicleId: string, cb: (online: boolean, replaced?: boolean) => void): () => void {
    if (this.target) return this.target.onLinkChange(vehicleId, cb);
    const s = { vehicleId, cb, unsubscribe: null as (() => void) | null };
    this.early.add(s);
    return () => {
      this.early.delete(s);
      s.unsubscribe?.();
    };
  }
}

const keyOf = (vehicleId: string, channel: number) => `${vehicleId}\u0000${channel}`;


/** Why a vehicle's channel cannot play now: offline since when its link was lost, or never seen since the start. */
export function offlineError(vehicleId: string, since: number | null): GatewayError {
  return since === null
    ? reasoned('GW_ERR_CAMERA_UNREACHABLE', 'vehicleNeverOnline', { vehicle: vehicleId }, `vehicle ${vehicleId}'s terminal has not connected since the gateway started`)
    : reasoned('GW_ERR_CAMERA_UNREACHABLE', 'vehicleOffline', { vehicle: vehicleId, since }, `vehicle ${vehicleId} offline since ${clockTime(since)}`);
}

/** "14:02" in the gateway's time zone (the tile words it in the viewer's own from `since`). */
const clockTime = (at: number) => new Date(at).toTimeString().slice(0, 5);

import { createSocket, type RemoteInfo, type Socket as UdpSocket } from 'node:dgram';
import { createServer, type Server, type Socket } from 'node:net';
import { reasoned } from '../../errors.js';
import type { JtBudget } from '../budget.js';
import type { JtChannels } from '../channel-link.js';
import type { JtLink } from '../link.js';
import { jt1078HeaderLength, Jt1078StreamParser, type Jt1078Packet } from './packet.js';
import { Jt1078Reassembler } from './reassembler.js';

/** A media connection silent this long is closed (JT/T 1078 §4.3 lets either side close an idle one). */
const IDLE_MS = 30_000;
/** A connection that carries only channels nobody asked for (the terminal ignored our close) is closed after this long. */
const UNWANTED_MS = 10_000;
/**
 * When a media connection ends, how long its channels wait for the terminal to come back on a new
 * one (some reconnect on a stream switch) before their sessions are told the link closed.
 */
const RECONNECT_GRACE_MS = 3_000;
/** How often reassemblers of channels no longer watched (a UDP terminal that just stopped) are let go. */
const SWEEP_MS = 30_000;
/** One SIM per connection in practice; a connection naming more than this many is not a terminal. */
const MAX_SIMS_PER_CONNECTION = 4;

export interface JtMediaServerOptions {
  config: { host: string; port: number; maxPacketBytes: number; maxFrameBytes: number };
  link: Pick<JtLink, 'vehicleBySim' | 'log'>;
  channels: JtChannels;
  budget: JtBudget;
  idleMs?: number;
  reconnectGraceMs?: number;
}

export interface JtMediaStats {
  connections: number;
  packets: number;
  bytes: number;
  /** Packets from a SIM no vehicle has: dropped (and their TCP connection closed). */
  unknownSim: number;
  /** Packets of channels nobody asked for. */
  unwanted: number;
  errors: { resync: number; oversize: number; truncated: number };
  units: number;
}

/** The channel a connection carried, by vehicle. */
interface Carried {
  vehicleId: string;
  channel: number;
}

/**
 * The JT/T 1078 media port (TCP and UDP): terminals told by 0x9101 connect here and send "01cd"
 * packets; each packet is counted against its vehicle's data budget and, for a channel being
 * watched, reassembled per (SIM, channel) into access units for the channel's attempts
 * (channel-link.ts). The SIM in the packets names the vehicle (`vehicleBySim`); packets of a SIM no
 * vehicle has are dropped and their connection closed. Every socket has its error listener before
 * anything else; a connection's buffered bytes are bounded by the parser (one packet).
 */
export class JtMediaServer {
  private tcp: Server | null = null;
  private udp: UdpSocket | null = null;
  private readonly sockets = new Set<Socket>();
  private readonly reassemblers = new Map<string, Jt1078Reassembler>();
  /** Which connection carries each (vehicle, channel) now, so a connection ending tells only its own channels. */
  private readonly carriers = new Map<string, Socket>();
  private readonly graceTimers = new Map<string, NodeJS.Timeout>();
  private sweepTimer: NodeJS.Timeout | null = null;
  private closed = false;
  readonly stats: JtMediaStats = { connections: 0, packets: 0, bytes: 0, unknownSim: 0, unwanted: 0, errors: { resync: 0, oversize: 0, truncated: 0 }, units: 0 };

  constructor(private readonly opts: JtMediaServerOptions) {}

  /** The bound ports (TCP, UDP), once listening. */
  get ports(): { tcp: number; udp: number } {
    const tcp = this.tcp?.address();
    const udp = this.udp?.address();
    return { tcp: tcp && typeof tcp === 'object' ? tcp.port : 0, udp: udp ? udp.port : 0 };
  }

  async listen(): Promise<void> {
    const { host, port } = this.opts.config;
    const tcp = createServer((socket) => this.accept(socket));
    tcp.on('error', (e) => this.opts.link.log.warn({ err: e.message }, 'JT/T 1078 media TCP server error'));
    this.tcp = tcp;
    await new Promise<void>((resolve, reject) => {
      tcp.once('error', reject);
      tcp.listen(port, host, () => {
        tcp.off('error', reject);
        resolve();
      });
    });
    // A reassembler may hold part of a frame (up to jt1078.maxFrameBytes): none is kept for a channel nobody watches.
    this.sweepTimer = setInterval(() => {
      for (const key of this.reassemblers.keys()) {
        const [vehicleId, channel] = key.split('\u0000');
        if (!this.opts.channels.wants(vehicleId!, Number(channel))) this.reassemblers.delete(key);
      }
    }, SWEEP_MS).unref();
    // The same port number for UDP when it is free (port 0 picked one for TCP), else any.
    const tcpPort = this.ports.tcp;
    try {
      await this.bindUdp(host, tcpPort);
    } catch (e) {
      if (port !== 0) throw e;
      await this.bindUdp(host, 0);
    }
  }

  private async bindUdp(host: string, port: number) {
    const udp = createSocket({ type: host.includes(':') ? 'udp6' : 'udp4' });
    udp.on('message', (msg, rinfo) => this.datagram(msg, rinfo));
    await new Promise<void>((resolve, reject) => {
      udp.once('error', reject);
      udp.bind(port, host, () => {
        udp.off('error', reject);
        resolve();
      });
    });
    udp.on('error', (e) => this.opts.link.log.warn({ err: e.message }, 'JT/T 1078 media UDP socket error'));
    this.udp = udp;
  }

  private accept(socket: Socket) {
    socket.on('error', () => socket.destroy());
    if (this.closed) return void socket.destroy();
    this.sockets.add(socket);
    this.stats.connections++;
    socket.setTimeout(this.opts.idleMs ?? IDLE_MS, () => socket.destroy());
    const sims = new Map<string, string | null>();
    const carried = new Map<string, Carried>();
    let wantedAt = Date.now();
    const parser = new Jt1078StreamParser({
      maxBodyBytes: this.opts.config.maxPacketBytes,
      onError: (kind) => this.stats.errors[kind]++,
      onPacket: (p) => {
        if (socket.destroyed) return;
        let vehicleId = sims.get(p.sim);
        if (vehicleId === undefined) {
          vehicleId = this.opts.link.vehicleBySim(p.sim);
          if (sims.size >= MAX_SIMS_PER_CONNECTION) return void socket.destroy();
          sims.set(p.sim, vehicleId);
        }
        if (vehicleId === null) {
          this.stats.unknownSim++;
          this.opts.link.log.warn({ sim: p.sim, address: socket.remoteAddress }, 'JT/T 1078 media from a SIM no vehicle has: connection closed');
          return void socket.destroy();
        }
        const key = keyOf(vehicleId, p.channel);
        if (!carried.has(key)) carried.set(key, { vehicleId, channel: p.channel });
        this.carriers.set(key, socket);
        if (this.packet(vehicleId, p)) wantedAt = Date.now();
        else if (Date.now() - wantedAt > UNWANTED_MS) socket.destroy();
      },
    });
    socket.on('data', (chunk) => {
      this.stats.bytes += chunk.length;
      parser.push(chunk);
    });
    socket.on('close', () => {
      this.sockets.delete(socket);
      for (const [key, c] of carried) {
        if (this.carriers.get(key) !== socket) continue;
        this.carriers.delete(key);
        this.ended(key, c);
      }
    });
  }

  private datagram(msg: Buffer, rinfo: RemoteInfo) {
    if (this.closed) return;
    this.stats.bytes += msg.length;
    const parser = new Jt1078StreamParser({
      maxBodyBytes: this.opts.config.maxPacketBytes,
      datagram: true,
      onError: (kind) => this.stats.errors[kind]++,
      onPacket: (p) => {
        const vehicleId = this.opts.link.vehicleBySim(p.sim);
        if (vehicleId === null) {
          if (this.stats.unknownSim++ % 1000 === 0) this.opts.link.log.warn({ sim: p.sim, address: rinfo.address }, 'JT/T 1078 media datagrams from a SIM no vehicle has: dropped');
          return;
        }
        this.packet(vehicleId, p);
      },
    });
    parser.push(msg);
  }

  /** One packet of a known vehicle: counted, and reassembled when its channel is watched. True when it is. */
  private packet(vehicleId: string, p: Jt1078Packet): boolean {
    this.stats.packets++;
    this.opts.budget.count(vehicleId, jt1078HeaderLength(p.layout, p.dataType) + p.body.length);
    const key = keyOf(vehicleId, p.channel);
    const grace = this.graceTimers.get(key);
    if (grace) {
      clearTimeout(grace);
      this.graceTimers.delete(key);
    }
    const { channels } = this.opts;
    if (!channels.wants(vehicleId, p.channel)) {
      this.stats.unwanted++;
      this.reassemblers.delete(key);
      return false;
    }
    channels.packet(vehicleId, p.channel, p.seq);
    let reassembler = this.reassemblers.get(key);
    if (!reassembler) {
      reassembler = new Jt1078Reassembler({
        maxFrameBytes: this.opts.config.maxFrameBytes,
        onUnit: (u) => {
          this.stats.units++;
          channels.unit(vehicleId, p.channel, u);
        },
      });
      this.reassemblers.set(key, reassembler);
    }
    reassembler.push(p);
    return true;
  }

  /** The connection that carried a channel ended: its sessions hear of it unless the terminal is back within the grace. */
  private ended(key: string, c: Carried) {
    this.reassemblers.delete(key);
    if (this.closed || !this.opts.channels.wants(c.vehicleId, c.channel) || this.graceTimers.has(key)) return;
    const timer = setTimeout(() => {
      this.graceTimers.delete(key);
      this.opts.channels.mediaClosed(c.vehicleId, c.channel, reasoned('GW_ERR_CAMERA_UNREACHABLE', 'mediaLinkClosed', {}, 'the terminal closed the video link'));
    }, this.opts.reconnectGraceMs ?? RECONNECT_GRACE_MS);
    timer.unref();
    this.graceTimers.set(key, timer);
  }

  /** Open TCP media connections now. */
  get connections(): number {
    return this.sockets.size;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    for (const t of this.graceTimers.values()) clearTimeout(t);
    this.graceTimers.clear();
    for (const s of this.sockets) s.destroy();
    this.reassemblers.clear();
    this.carriers.clear();
    const tcp = this.tcp;
    const udp = this.udp;
    await Promise.all([tcp ? new Promise<void>((resolve) => tcp.close(() => resolve())) : undefined, udp ? new Promise<void>((resolve) => udp.close(() => resolve())) : undefined]);
  }
}

const keyOf = (vehicleId: string, channel: number) => `${vehicleId}\u0000${channel}`;

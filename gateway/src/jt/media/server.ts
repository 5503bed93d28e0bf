import { createSocket, type RemoteInfo, type Socket as UdpSocket } from 'node:dgram';
import { createServer, type Server, type Socket } from 'node:net';
import { ConnectionCaps, plainAddress } from '../../lib/sockets.js';
import { reasoned } from '../../errors.js';
import type { JtBudget } from '../budget.js';
import type { JtChannels } from '../channel-link.js';
import type { JtLink } from '../link.js';
import { readBcd, stripLeadingZeros } from '../protocol/bcd.js';
import { jt1078HeaderLength, Jt1078StreamParser, type Jt1078Layout, type Jt1078Packet } from './packet.js';
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
/** A connection that has not sent one whole packet of a known vehicle by then is closed. */
const FIRST_PACKET_MS = 5_000;
/** Open media connections at most, and from one address (a carrier NAT puts many vehicles behind one, each with a few channels). */
const MAX_CONNECTIONS = 4_096;
const MAX_CONNECTIONS_PER_IP = 256;
/**
 * A channel's pinned source silent this long may be replaced by another (the terminal reconnected,
 * or its carrier NAT gave its UDP flow a new port); a live source sends 25 packets a second or more.
 */
const PIN_STALE_MS = 2_000;

export interface JtMediaServerOptions {
  config: { host: string; port: number; maxPacketBytes: number; maxFrameBytes: number };
  link: Pick<JtLink, 'vehicleBySim' | 'terminal' | 'log'>;
  channels: JtChannels;
  budget: JtBudget;
  idleMs?: number;
  reconnectGraceMs?: number;
  firstPacketMs?: number;
  maxConnections?: number;
  maxConnectionsPerIp?: number;
}

export interface JtMediaStats {
  connections: number;
  packets: number;
  bytes: number;
  /** Packets from a SIM no vehicle has: dropped (and their TCP connection closed). */
  unknownSim: number;
  /** Packets of channels nobody asked for (dropped; the terminal is told to close them). */
  unwanted: number;
  /** Packets of an asked-for channel from another source than the one it is pinned to (dropped). */
  refused: number;
  /** Connections refused over the caps, or closed for sending no packet in time. */
  connectionsRefused: number;
  /** Input whose handling threw (a bug somewhere behind the parser): counted, its TCP connection closed. */
  failed: number;
  errors: { resync: number; oversize: number; truncated: number };
  units: number;
}

/** The channel a connection carried, by vehicle. */
interface Carried {
  vehicleId: string;
  channel: number;
}

/** Where a channel takes its media from: a TCP connection, or a UDP "address:port". */
type Source = Socket | string;

interface Pin {
  /** The channel's 0x9101 (JtChannels.request) the pin was made under. */
  request: number;
  source: Source;
  lastAt: number;
}

/**
 * The JT/T 1078 media port (TCP and UDP): terminals told by 0x9101 connect here and send "01cd"
 * packets, reassembled per (vehicle, channel) into access units for the channel's attempts
 * (channel-link.ts). The SIM in the packets names the vehicle (`vehicleBySim`); packets of a SIM no
 * vehicle has are dropped and their connection closed.
 *
 * Anyone who knows a SIM can send packets naming it, so a channel takes media only while it is
 * asked for (opening or open), and only from one source: the first TCP connection or UDP
 * address:port that sends it after each 0x9101, until that one closes or falls silent. The source is
 * pinned rather than matched against the address of the vehicle's JT/T 808 link because behind a
 * carrier NAT the two links of one terminal may leave from different public addresses (separate
 * flows, pooled addresses), and an address shared by a whole carrier proves little anyway. Only
 * packets taken count against the vehicle's data budget; the others are counted and dropped, and a
 * terminal sending a channel nobody asked for is told to close it (rate-limited).
 *
 * Every socket has its error listener before anything else; a connection's buffered bytes are
 * bounded by the parser (one packet); connections are capped in all and per address and must send a
 * packet of a known vehicle within FIRST_PACKET_MS; input whose handling throws closes its connection.
 */
export class JtMediaServer {
  private tcp: Server | null = null;
  private udp: UdpSocket | null = null;
  private readonly sockets = new Set<Socket>();
  private readonly reassemblers = new Map<string, Jt1078Reassembler>();
  /** Which source each asked-for (vehicle, channel) takes media from; a TCP one ending tells only its own channels. */
  private readonly pins = new Map<string, Pin>();
  private readonly caps: ConnectionCaps;
  private readonly graceTimers = new Map<string, NodeJS.Timeout>();
  private sweepTimer: NodeJS.Timeout | null = null;
  private closed = false;
  readonly stats: JtMediaStats = { connections: 0, packets: 0, bytes: 0, unknownSim: 0, unwanted: 0, refused: 0, connectionsRefused: 0, failed: 0, errors: { resync: 0, oversize: 0, truncated: 0 }, units: 0 };

  constructor(private readonly opts: JtMediaServerOptions) {
    this.caps = new ConnectionCaps({ max: opts.maxConnections ?? MAX_CONNECTIONS, maxPerAddress: opts.maxConnectionsPerIp ?? MAX_CONNECTIONS_PER_IP });
  }

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
      for (const map of [this.reassemblers, this.pins]) {
        for (const key of map.keys()) {
          const [vehicleId, channel] = key.split('\u0000');
          if (!this.opts.channels.wants(vehicleId!, Number(channel))) map.delete(key);
        }
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
    const ip = plainAddress(socket.remoteAddress);
    if (!this.caps.admit(ip)) {
      if (this.stats.connectionsRefused++ % 1000 === 0) this.opts.link.log.warn({ address: ip, connections: this.sockets.size }, 'JT/T 1078 media connection refused: too many open');
      return void socket.destroy();
    }
    this.sockets.add(socket);
    this.stats.connections++;
    // Idle means no packet taken, not no byte: a byte every so often must not keep a connection.
    let lastPacketAt = 0;
    const firstPacketMs = this.opts.firstPacketMs ?? FIRST_PACKET_MS;
    const idleMs = this.opts.idleMs ?? IDLE_MS;
    const timer: NodeJS.Timeout = setTimeout(() => {
      const since = Date.now() - lastPacketAt;
      if (lastPacketAt === 0) this.stats.connectionsRefused++;
      if (lastPacketAt === 0 || since >= idleMs) return void socket.destroy();
      timer.refresh();
    }, firstPacketMs).unref();
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
        lastPacketAt = Date.now();
        if (this.packet(vehicleId, p, socket)) wantedAt = lastPacketAt;
        else if (lastPacketAt - wantedAt > UNWANTED_MS) socket.destroy();
      },
    });
    socket.on('data', (chunk) => {
      this.stats.bytes += chunk.length;
      try {
        parser.push(chunk);
      } catch (e) {
        this.failed(e as Error, ip);
        socket.destroy();
      }
    });
    socket.on('close', () => {
      clearTimeout(timer);
      this.sockets.delete(socket);
      this.caps.release(ip);
      for (const [key, c] of carried) {
        if (this.pins.get(key)?.source !== socket) continue;
        this.pins.delete(key);
        this.ended(key, c);
      }
    });
  }

  private datagram(msg: Buffer, rinfo: RemoteInfo) {
    if (this.closed) return;
    this.stats.bytes += msg.length;
    const source = `${rinfo.address}:${rinfo.port}`;
    let vehicleId: string | null | undefined;
    const parser = new Jt1078StreamParser({
      maxBodyBytes: this.opts.config.maxPacketBytes,
      datagram: true,
      // Both layouts can read as the other now and then: the terminal's JT/T 808 edition says which it sends.
      layout: this.layoutOf(msg),
      onError: (kind) => this.stats.errors[kind]++,
      onPacket: (p) => {
        vehicleId ??= this.opts.link.vehicleBySim(p.sim);
        if (vehicleId === null) {
          if (this.stats.unknownSim++ % 1000 === 0) this.opts.link.log.warn({ sim: p.sim, address: rinfo.address }, 'JT/T 1078 media datagrams from a SIM no vehicle has: dropped');
          return;
        }
        this.packet(vehicleId, p, source);
      },
    });
    try {
      parser.push(msg);
    } catch (e) {
      this.failed(e as Error, rinfo.address);
    }
  }

  /**
   * The layout of a datagram from its SIM's terminal's edition (a 2019 terminal sends BCD[10]), or
   * undefined to let the parser tell. The SIM is read from where either layout puts it: 6 BCD bytes
   * at offset 8 for 2016, 10 for 2019.
   */
  private layoutOf(msg: Buffer): Jt1078Layout | undefined {
    for (const layout of ['2019', '2016'] as const) {
      const bytes = layout === '2019' ? 10 : 6;
      const sim = msg.length >= 8 + bytes ? readBcd(msg, 8, bytes) : null;
      if (sim === null) continue;
      const vehicleId = this.opts.link.vehicleBySim(stripLeadingZeros(sim));
      const edition = vehicleId === null ? null : this.opts.link.terminal(vehicleId)?.edition;
      if (edition) return edition === '2019' ? '2019' : '2016';
    }
    return undefined;
  }

  private failed(e: Error, address: string) {
    if (this.stats.failed++ % 100 === 0) this.opts.link.log.warn({ err: e.message, address }, 'JT/T 1078 media input could not be handled: dropped');
  }

  /**
   * One packet of a known vehicle from a source: taken (reassembled, counted against the budget) when
   * its channel is asked for and the packet comes from the channel's pinned source. True when taken.
   */
  private packet(vehicleId: string, p: Jt1078Packet, source: Source): boolean {
    this.stats.packets++;
    const key = keyOf(vehicleId, p.channel);
    const { channels } = this.opts;
    const request = channels.request(vehicleId, p.channel);
    if (request === null) {
      this.stats.unwanted++;
      this.reassemblers.delete(key);
      this.pins.delete(key);
      channels.stray(vehicleId, p.channel);
      return false;
    }
    const now = Date.now();
    const pin = this.pins.get(key);
    if (!pin || pin.request !== request || (pin.source !== source && (now - pin.lastAt > PIN_STALE_MS || (typeof pin.source !== 'string' && pin.source.destroyed)))) {
      // A new source starts from its own packets, not from pieces of the old one's frame.
      if (pin && pin.source !== source) this.reassemblers.delete(key);
      this.pins.set(key, { request, source, lastAt: now });
    } else if (pin.source !== source) {
      if (this.stats.refused++ % 1000 === 0) this.opts.link.log.warn({ vehicle: vehicleId, channel: p.channel, source: typeof source === 'string' ? source : source.remoteAddress }, 'JT/T 1078 media of a channel from a second source: dropped');
      return false;
    } else pin.lastAt = now;
    this.opts.budget.count(vehicleId, jt1078HeaderLength(p.layout, p.dataType) + p.body.length);
    const grace = this.graceTimers.get(key);
    if (grace) {
      clearTimeout(grace);
      this.graceTimers.delete(key);
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
    this.pins.clear();
    const tcp = this.tcp;
    const udp = this.udp;
    await Promise.all([tcp ? new Promise<void>((resolve) => tcp.close(() => resolve())) : undefined, udp ? new Promise<void>((resolve) => udp.close(() => resolve())) : undefined]);
  }
}

const keyOf = (vehicleId: string, channel: number) => `${vehicleId}\u0000${channel}`;


import { createSocket, type RemoteInfo, type Socket as UdpSocket } from 'node:dgram';
import { EventEmitter } from 'node:events';
import { connect, createServer, type Server, type Socket } from 'node:net';

/**
 * Where a GB/T 28181 device's RTP arrives: one receiver per live session, on a port of the
 * configured range, over UDP or TCP (RFC 4571, the device connecting to us or we to it). It hands
 * on the payloads in sequence order and keeps what the start-failure messages need: whether
 * anything arrived, from where, and with which SSRC when it was the wrong one.
 */

/** Ports of gb28181.media.portMin..portMax. Handed out in turn, so a port just given back is not reused at once (a late device may still be sending to it). */
export class RtpPortPool {
  private readonly inUse = new Set<number>();
  private next: number;

  constructor(
    private readonly min: number,
    private readonly max: number,
  ) {
    if (!Number.isInteger(min) || !Number.isInteger(max) || min < 1 || max > 65_535 || min > max) throw new RangeError(`bad RTP port range ${min}-${max}`);
    this.next = min;
  }

  get size(): number {
    return this.max - this.min + 1;
  }

  get free(): number {
    return this.size - this.inUse.size;
  }

  take(): number | null {
    for (let i = 0; i < this.size; i++) {
      const port = this.next;
      this.next = port === this.max ? this.min : port + 1;
      if (!this.inUse.has(port)) {
        this.inUse.add(port);
        return port;
      }
    }
    return null;
  }

  give(port: number): void {
    this.inUse.delete(port);
  }
}

export type RtpMode = 'udp' | 'tcp-passive' | 'tcp-active';

export interface RtpReceiverOptions {
  mode: RtpMode;
  /** The address to bind (udp, tcp-passive). */
  host: string;
  /** The port to bind (udp, tcp-passive; 0 = any). tcp-active connects from an ephemeral port. */
  port: number;
  /** tcp-active: the device's address from its SDP answer, which we connect to. */
  remote?: { address: string; port: number };
  /** The negotiated SSRC (the y= line as a number): packets with any other are dropped. */
  expectedSsrc: number;
  /** Packets held to put late ones back in order (gb28181.media.reorderWindow); 0 hands them on as they come. */
  reorderWindow: number;
  /** Largest RTP packet taken (header included); larger ones are dropped. Default 65,535 (what the TCP framings can say). */
  maxPacketBytes?: number;
  /** How long a gap may hold back the packets after it before it is given up as lost. Default 150 ms. */
  reorderHoldMs?: number;
  /** tcp-active: connection attempts, one a second (GB/T 28181 App. D: at least 3 retries). Default 4. */
  connectAttempts?: number;
  /** The pool the port came from: close() gives it back. */
  pool?: RtpPortPool;
  /** tcp-passive: a connection that has brought no accepted packet this long is closed, so strays cannot hold the slots. Default 10 s. */
  strayConnectionMs?: number;
  /**
   * The only addresses RTP is taken from (the device's SIP address; its SDP answer's c= is added by
   * allowSender). Without it the first sender of the right SSRC is kept. SSRCs can be guessed, so a
   * live view sets it: a host that merely guesses one cannot put its video on a wall.
   */
  senders?: string[];
}

export interface RtpReceiverStats {
  /** RTP packets accepted (right SSRC, right source). */
  packets: number;
  /** Their payload bytes. */
  bytes: number;
  /** When the first accepted packet came (epoch ms). */
  firstPacketAt: number | null;
  /** The last SSRC other than the expected one, and how many packets carried one. */
  wrongSsrc: { ssrc: number; count: number } | null;
  /** Packets with the right SSRC from another address than the first accepted packet's. */
  wrongAddress: number;
  /** Packets never received (gaps given up on). */
  lost: number;
  /** Packets that arrived out of order and were put back in place. */
  reordered: number;
  /** Packets that arrived again, or after their gap was given up. */
  duplicates: number;
  /** RTCP packets arriving on the RTP port (ignored; some devices send one first). */
  rtcp: number;
  /** Datagrams or frames that are not RTP, or over maxPacketBytes. */
  malformed: number;
  /** Where the accepted packets come from ("address:port" for UDP, the address for TCP). */
  source: string | null;
}

export interface RtpReceiverEvents {
  /** A packet's payload, in sequence order. A view of a received buffer that is never reused. */
  payload: [payload: Buffer, timestamp: number, marker: boolean];
  /** The first accepted packet. */
  first: [];
  /** Packets were skipped (lost, or the sequence restarted): a consumer parsing across packets should resynchronise. */
  lost: [count: number];
  /** A TCP media connection ended or could not be made; no more media will come. */
  end: [reason: string];
}

const RTP_HEADER_BYTES = 12;
const DEFAULT_MAX_PACKET_BYTES = 65_535;
/** A jump in sequence numbers this large is a restarted stream, not reordering. */
const SEQ_RESTART = 1_024;
/** TCP connections a passive receiver keeps open at once (a device reconnecting, a stray client). */
const MAX_TCP_CONNECTIONS = 4;

export class RtpReceiver extends EventEmitter<RtpReceiverEvents> {
  readonly stats: RtpReceiverStats = { packets: 0, bytes: 0, firstPacketAt: null, wrongSsrc: null, wrongAddress: 0, lost: 0, reordered: 0, duplicates: 0, rtcp: 0, malformed: 0, source: null };
  private readonly maxPacketBytes: number;
  private readonly holdMs: number;
  private udp: UdpSocket | null = null;
  private server: Server | null = null;
  private readonly connections = new Set<Socket>();
  private closed = false;
  private boundPort: number | null = null;
  /** The source the first accepted packet came from (its port for UDP; -1 for TCP, where the address alone counts): others are refused. */
  private sourceAddress: string | null = null;
  private sourcePort = -1;
  private readonly senders: Set<string> | null;
  /** The next sequence number to hand on; null before the first packet. */
  private expected: number | null = null;
  private readonly held = new Map<number, { payload: Buffer; timestamp: number; marker: boolean }>();
  private holdTimer: NodeJS.Timeout | null = null;
  private holdImmediate: NodeJS.Immediate | null = null;
  private connectTimer: NodeJS.Timeout | null = null;

  constructor(private readonly opts: RtpReceiverOptions) {
    super();
    this.maxPacketBytes = opts.maxPacketBytes ?? DEFAULT_MAX_PACKET_BYTES;
    this.holdMs = opts.reorderHoldMs ?? 150;
    this.senders = opts.senders ? new Set(opts.senders.map(plainAddress)) : null;
  }

  /** The port bound (udp, tcp-passive), once started. */
  get port(): number | null {
    return this.boundPort;
  }

  get mode(): RtpMode {
    return this.opts.mode;
  }

  /** Binds (udp, tcp-passive) or connects (tcp-active). Rejects with the system's error (EADDRINUSE: try another port). */
  async start(): Promise<void> {
    if (this.opts.mode === 'udp') await this.startUdp();
    else if (this.opts.mode === 'tcp-passive') await this.startTcpServer();
    else await this.startTcpClient();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.stopHoldTimer();
    if (this.connectTimer) clearTimeout(this.connectTimer);
    this.held.clear();
    for (const c of this.connections) c.destroy();
    this.connections.clear();
    const waits: Promise<void>[] = [];
    if (this.udp) {
      const udp = this.udp;
      waits.push(new Promise<void>((resolve) => udp.close(() => resolve())).catch(() => {}));
    }
    if (this.server) {
      const server = this.server;
      waits.push(new Promise<void>((resolve) => server.close(() => resolve())));
    }
    await Promise.all(waits);
    if (this.opts.pool && this.opts.port > 0) this.opts.pool.give(this.opts.port);
  }

  private startUdp(): Promise<void> {
    const socket = createSocket({ type: this.opts.host.includes(':') ? 'udp6' : 'udp4' });
    socket.on('error', () => {});
    this.udp = socket;
    return new Promise((resolve, reject) => {
      const fail = (err: Error) => {
        void this.close();
        reject(err);
      };
      socket.once('error', fail);
      socket.bind(this.opts.port, this.opts.host, () => {
        socket.off('error', fail);
        this.boundPort = socket.address().port;
        try {
          // A keyframe arrives as a burst of a hundred packets or more.
          socket.setRecvBufferSize(2 * 1024 * 1024);
        } catch {
          // The kernel's limit stands.
        }
        socket.on('message', (msg: Buffer, rinfo: RemoteInfo) => this.onPacket(msg, rinfo.address, rinfo.port));
        resolve();
      });
    });
  }

  private startTcpServer(): Promise<void> {
    const server = createServer((socket) => {
      socket.on('error', () => {});
      if (this.closed || this.connections.size >= MAX_TCP_CONNECTIONS) return void socket.destroy();
      this.adopt(socket, socket.remoteAddress ?? '?');
    });
    server.on('error', () => {});
    this.server = server;
    return new Promise((resolve, reject) => {
      const fail = (err: Error) => {
        void this.close();
        reject(err);
      };
      server.once('error', fail);
      server.listen({ port: this.opts.port, host: this.opts.host, exclusive: true }, () => {
        server.off('error', fail);
        const address = server.address();
        this.boundPort = typeof address === 'object' && address ? address.port : null;
        resolve();
      });
    });
  }

  private startTcpClient(): Promise<void> {
    const remote = this.opts.remote;
    if (!remote) return Promise.reject(new Error('tcp-active needs the address of the device'));
    const attempts = Math.max(1, this.opts.connectAttempts ?? 4);
    return new Promise((resolve, reject) => {
      let tried = 0;
      const attempt = () => {
        this.connectTimer = null;
        if (this.closed) return reject(new Error('closed while connecting'));
        tried++;
        const socket = connect({ host: remote.address, port: remote.port });
        socket.on('error', () => {});
        const failed = (err: Error) => {
          socket.destroy();
          if (this.closed) return reject(new Error('closed while connecting'));
          if (tried >= attempts) return reject(new Error(`cannot connect to ${remote.address}:${remote.port} for RTP after ${tried} attempts: ${err.message}`));
          this.connectTimer = setTimeout(attempt, 1_000);
        };
        socket.once('error', failed);
        socket.once('connect', () => {
          socket.off('error', failed);
          if (this.closed) {
            socket.destroy();
            return reject(new Error('closed while connecting'));
          }
          this.adopt(socket, remote.address);
          resolve();
        });
      };
      attempt();
    });
  }

  /** Reads RTP framed on a TCP connection: RFC 4571's 2-byte length, or RTSP-interleaved '$' channel length. */
  private adopt(socket: Socket, address: string) {
    this.connections.add(socket);
    const delivered = { packets: 0 };
    if (this.opts.mode === 'tcp-passive') {
      const stray = setTimeout(() => {
        if (delivered.packets === 0) socket.destroy();
      }, this.opts.strayConnectionMs ?? 10_000);
      stray.unref();
      socket.once('close', () => clearTimeout(stray));
    }
    socket.setNoDelay(true);
    let carry: Buffer | null = null;
    socket.on('data', (chunk: Buffer) => {
      if (this.closed) return;
      const data: Buffer = carry ? Buffer.concat([carry, chunk]) : chunk;
      carry = null;
      const rest = this.readFrames(data, address, delivered);
      // At most one frame's header and body (64 KiB) is ever held.
      if (rest < data.length) carry = data.subarray(rest);
    });
    socket.on('close', () => {
      this.connections.delete(socket);
      if (!this.closed && this.opts.mode === 'tcp-active') this.emit('end', `the device closed the RTP connection from ${address}`);
      else if (!this.closed && this.sourceAddress === address && ![...this.connections].some((c) => c.remoteAddress === address)) {
        this.emit('end', `the device closed its RTP connection from ${address}`);
      }
    });
  }

  /** Handles the whole frames in `data`; returns where the unfinished one starts. */
  private readFrames(data: Buffer, address: string, delivered: { packets: number }): number {
    let pos = 0;
    while (data.length - pos >= 4) {
      let header: number;
      let length: number;
      if (data[pos] === 0x24 && (data.length - pos < 5 || (data[pos + 4]! & 0xc0) === 0x80)) {
        if (data.length - pos < 5) break;
        header = 4;
        length = data.readUInt16BE(pos + 2);
      } else {
        header = 2;
        length = data.readUInt16BE(pos);
      }
      if (length < RTP_HEADER_BYTES || (data.length - pos >= header + 1 && (data[pos + header]! & 0xc0) !== 0x80)) {
        // Framing lost (a device that went wrong, or not RTP at all): find the next packet by its SSRC.
        this.stats.malformed++;
        const next = this.findFrame(data, pos + 1);
        if (next < 0) return Math.max(pos, data.length - 16);
        pos = next;
        continue;
      }
      if (data.length - pos < header + length) break;
      if (this.onPacket(data.subarray(pos + header, pos + header + length), address, -1)) delivered.packets++;
      pos += header + length;
    }
    return pos;
  }

  /** The start of the next frame whose RTP header carries the expected SSRC, or -1. */
  private findFrame(data: Buffer, from: number): number {
    const ssrc = Buffer.allocUnsafe(4);
    ssrc.writeUInt32BE(this.opts.expectedSsrc >>> 0);
    for (let at = data.indexOf(ssrc, from + 10); at >= 0; at = data.indexOf(ssrc, at + 1)) {
      const rfc = at - 10;
      if (rfc >= from && (data[rfc + 2]! & 0xc0) === 0x80) return rfc;
      const dollar = at - 12;
      if (dollar >= from && data[dollar] === 0x24 && (data[dollar + 4]! & 0xc0) === 0x80) return dollar;
    }
    return -1;
  }

  /** Takes RTP from this address too (the device's SDP answer may name a media server other than its SIP address). */
  allowSender(address: string): void {
    this.senders?.add(plainAddress(address));
  }

  /** Takes one RTP packet; true when it was accepted (right SSRC, right source). `port` is the UDP sender's, -1 on TCP. */
  private onPacket(packet: Buffer, address: string, port: number): boolean {
    if (this.closed) return false;
    if (packet.length < RTP_HEADER_BYTES || packet.length > this.maxPacketBytes || (packet[0]! & 0xc0) !== 0x80) {
      this.stats.malformed++;
      return false;
    }
    const pt = packet[1]!;
    if (pt >= 200 && pt <= 204) {
      this.stats.rtcp++;
      return false;
    }
    const ssrc = packet.readUInt32BE(8);
    if (ssrc !== this.opts.expectedSsrc >>> 0) {
      if (this.stats.wrongSsrc?.ssrc === ssrc) this.stats.wrongSsrc.count++;
      else this.stats.wrongSsrc = { ssrc, count: (this.stats.wrongSsrc?.count ?? 0) + 1 };
      return false;
    }
    // The source already accepted passed the senders check when it was first seen (senders are only ever added).
    if (address !== this.sourceAddress || port !== this.sourcePort) {
      if (this.sourceAddress !== null || (this.senders && !this.senders.has(plainAddress(address)))) {
        this.stats.wrongAddress++;
        return false;
      }
      this.sourceAddress = address;
      this.sourcePort = port;
    }
    let start = RTP_HEADER_BYTES + (packet[0]! & 0x0f) * 4;
    if (packet[0]! & 0x10) {
      if (packet.length < start + 4) return this.malformed();
      start += 4 + packet.readUInt16BE(start + 2) * 4;
    }
    let end = packet.length;
    if (packet[0]! & 0x20) end -= packet[end - 1]!;
    if (start > end) return this.malformed();
    const first = this.stats.firstPacketAt === null;
    if (first) {
      this.stats.firstPacketAt = Date.now();
      this.stats.source = port < 0 ? address : `${address}:${port}`;
    }
    this.stats.packets++;
    this.stats.bytes += end - start;
    if (first) this.emit('first');
    if (this.closed) return true;
    this.order(packet.readUInt16BE(2), packet.subarray(start, end), packet.readUInt32BE(4), (pt & 0x80) !== 0);
    return true;
  }

  private malformed(): false {
    this.stats.malformed++;
    return false;
  }

  /**
   * Puts packets back in sequence order within the window; a gap that outlasts it is given up. A
   * packet in order with nothing held (nearly all of them) is handed on as it is, with no record made.
   */
  private order(seq: number, payload: Buffer, timestamp: number, marker: boolean): void {
    if (this.expected === null) this.expected = seq;
    const diff = ((seq - this.expected + 0x8000) & 0xffff) - 0x8000;
    if (diff < -SEQ_RESTART || diff > SEQ_RESTART) {
      // The device restarted its sequence (or jumped): start again from here.
      this.held.clear();
      this.stopHoldTimer();
      this.expected = seq;
      this.stats.lost++;
      this.emit('lost', 1);
      return this.order(seq, payload, timestamp, marker);
    }
    if (diff < 0 || this.held.has(seq)) {
      this.stats.duplicates++;
      return;
    }
    // A packet arriving after one with a higher number: out of order, put back in place.
    if (this.held.size > 0 && this.heldBeyond(diff)) this.stats.reordered++;
    if (diff === 0) {
      this.expected = (seq + 1) & 0xffff;
      if (!this.closed) this.emit('payload', payload, timestamp, marker);
      if (this.held.size > 0) this.drain();
      return;
    }
    this.held.set(seq, { payload, timestamp, marker });
    if (this.held.size > this.opts.reorderWindow) this.skipGap();
    else this.armHold();
  }

  /** Whether a packet further on than `diff` is held. */
  private heldBeyond(diff: number): boolean {
    for (const h of this.held.keys()) if (((h - this.expected! + 0x10000) & 0xffff) > diff) return true;
    return false;
  }

  /** Gives a gap holdMs to fill; packets held behind a second gap get their own wait after the first is given up. */
  private armHold() {
    if (this.holdTimer || this.holdImmediate) return;
    this.holdTimer = setTimeout(() => {
      this.holdTimer = null;
      // Timers run before the loop reads sockets: a busy process would give up on packets already
      // waiting in the socket's buffer. setImmediate runs after that read.
      this.holdImmediate = setImmediate(() => {
        this.holdImmediate = null;
        if (!this.closed && this.held.size > 0) this.skipGap();
      });
    }, this.holdMs);
  }

  /** Gives up on the packets before the oldest one held. */
  private skipGap() {
    let nearest = Infinity;
    for (const seq of this.held.keys()) nearest = Math.min(nearest, (seq - this.expected! + 0x10000) & 0xffff);
    this.stats.lost += nearest;
    this.expected = (this.expected! + nearest) & 0xffff;
    this.emit('lost', nearest);
    this.drain();
  }

  private drain() {
    for (let p = this.held.get(this.expected!); p && !this.closed; p = this.held.get(this.expected!)) {
      this.held.delete(this.expected!);
      this.deliver(p);
      this.expected = (this.expected! + 1) & 0xffff;
    }
    if (this.held.size === 0) this.stopHoldTimer();
    else this.armHold();
  }

  private stopHoldTimer() {
    if (this.holdTimer) clearTimeout(this.holdTimer);
    if (this.holdImmediate) clearImmediate(this.holdImmediate);
    this.holdTimer = null;
    this.holdImmediate = null;
  }

  private deliver(p: { payload: Buffer; timestamp: number; marker: boolean }) {
    if (!this.closed) this.emit('payload', p.payload, p.timestamp, p.marker);
  }
}

/**
 * A receiver on a free port of the pool: ports another program holds (EADDRINUSE, EACCES) are
 * skipped; the port goes back to the pool when the receiver closes. tcp-active takes no port.
 */
export async function openRtpReceiver(pool: RtpPortPool, opts: Omit<RtpReceiverOptions, 'port' | 'pool'>): Promise<RtpReceiver> {
  if (opts.mode === 'tcp-active') {
    const receiver = new RtpReceiver({ ...opts, port: 0 });
    await receiver.start();
    return receiver;
  }
  let lastError: Error | null = null;
  for (let tries = pool.free; tries > 0; tries--) {
    const port = pool.take();
    if (port === null) break;
    const receiver = new RtpReceiver({ ...opts, port, pool });
    try {
      await receiver.start();
      return receiver;
    } catch (e) {
      // close() in start's failure path gave the port back; the pool's turn moves past it.
      lastError = e as Error;
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'EADDRINUSE' && code !== 'EACCES') throw e;
    }
  }
  throw new Error(`no free RTP port in the range${lastError ? ` (last: ${lastError.message})` : ''}`);
}

/** A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d; the SIP side may have seen them plain. */
const plainAddress = (address: string) => (address.startsWith('::ffff:') ? address.slice(7) : address);

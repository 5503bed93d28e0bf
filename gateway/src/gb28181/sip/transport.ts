/**
 * SIP over UDP and TCP (RFC 3261 §18). TCP connections stay open after a request: a device behind
 * NAT registers over TCP and every later request to it must reuse that connection (GB/T 28181-2022
 * §9.1.1 f), since nothing can connect back through its NAT.
 */
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { plainAddress } from '../../lib/sockets.js';
import { EventEmitter } from 'node:events';
import { connect, createServer, isIPv4, type Server, type Socket } from 'node:net';
import { networkInterfaces } from 'node:os';
import { parseSipMessage, serializeSipMessage, type SipMessage } from './message.js';

export interface SipPeer { transport: 'udp' | 'tcp'; address: string; port: number; connectionId?: number }

export interface SipLog {
  debug(o: object, m: string): void;
  warn(o: object, m: string): void;
}

export interface SipTransportOptions {
  host: string;
  port: number;
  udp: boolean;
  tcp: boolean;
  maxMessageBytes: number;
  log?: SipLog;
  /** TCP connections at once, accepted and opened together. */
  maxConnections?: number;
  connectTimeoutMs?: number;
  /** How long a connection may hold a partial message, or (accepted ones) stay open before its first message. */
  stallTimeoutMs?: number;
}

export const SIP_MAX_CONNECTIONS = 10_000;
const CONNECT_TIMEOUT_MS = 5_000;
/** Ends slow senders and silent connections, which would otherwise hold a buffer and a slot forever. */
export const SIP_TCP_STALL_MS = 30_000;
/** TCP keepalive probes find peers that vanished without a FIN, so idle connections can stay open. */
const TCP_KEEPALIVE_MS = 60_000;

const quietLog: SipLog = { debug() {}, warn() {} };

const peerKey = (address: string, port: number) => `${plainAddress(address)}:${port}`;

interface Connection { id: number; socket: Socket; key: string; pending: Buffer; delivered: boolean; stall: NodeJS.Timeout | null }

/** Where a message's headers end (after the empty line), -1 when not yet; CRLF or bare LF. */
function headerEnd(buf: Buffer): number {
  const lf = buf.indexOf('\n\n');
  const crlf = buf.indexOf('\n\r\n');
  if (lf < 0) return crlf < 0 ? -1 : crlf + 3;
  return crlf < 0 || lf < crlf ? lf + 2 : crlf + 3;
}

const CONTENT_LENGTH = /^(?:content-length|l)[ \t]*:[ \t]*(\d{1,9})[ \t]*\r?$/im;

export interface SipTransport {
  on(event: 'message', listener: (m: SipMessage, peer: SipPeer) => void): this;
  on(event: 'dropped', listener: (peer: SipPeer, reason: string) => void): this;
  off(event: 'message', listener: (m: SipMessage, peer: SipPeer) => void): this;
  off(event: 'dropped', listener: (peer: SipPeer, reason: string) => void): this;
}

/** Events: 'message' (msg, peer); 'dropped' (peer, reason) for input that was not a SIP message. */
export class SipTransport extends EventEmitter {
  private udp: UdpSocket | null = null;
  private server: Server | null = null;
  private readonly connections = new Map<number, Connection>();
  private readonly byPeer = new Map<string, Connection>();
  private readonly connecting = new Map<string, Promise<Connection>>();
  private nextConnectionId = 1;
  private closed = false;
  private readonly log: SipLog;
  /** The bound ports, once listening. */
  readonly ports: { udp: number | null; tcp: number | null } = { udp: null, tcp: null };
  readonly stats = { messages: 0, dropped: 0 };

  constructor(private readonly opts: SipTransportOptions) {
    super();
    this.log = opts.log ?? quietLog;
  }

  /** Binds UDP and TCP; with port 0 both get the same free port when that can be had. */
  async listen(): Promise<{ udpPort: number | null; tcpPort: number | null }> {
    const { udp, tcp, port } = this.opts;
    for (let attempt = 0; ; attempt++) {
      const tcpPort = tcp ? await this.listenTcp(port) : null;
      try {
        const udpPort = udp ? await this.bindUdp(tcpPort ?? port) : null;
        Object.assign(this.ports, { udp: udpPort, tcp: tcpPort });
        return { udpPort, tcpPort };
      } catch (err) {
        // Port 0: the free TCP port may be taken for UDP; try another pair, then any UDP port.
        if (port !== 0 || tcpPort === null || (err as NodeJS.ErrnoException).code !== 'EADDRINUSE') {
          await this.close();
          throw err;
        }
        if (attempt >= 4) {
          const udpPort = await this.bindUdp(0);
          Object.assign(this.ports, { udp: udpPort, tcp: tcpPort });
          return { udpPort, tcpPort };
        }
        await new Promise<void>((resolve) => this.server!.close(() => resolve()));
        this.server = null;
      }
    }
  }

  private listenTcp(port: number): Promise<number> {
    const server = createServer((socket) => this.accept(socket));
    server.maxConnections = this.opts.maxConnections ?? SIP_MAX_CONNECTIONS;
    server.on('error', (err) => this.log.warn({ err }, 'SIP TCP server error'));
    this.server = server;
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, this.opts.host, () => {
        server.off('error', reject);
        resolve((server.address() as { port: number }).port);
      });
    });
  }

  private bindUdp(port: number): Promise<number> {
    const socket = createSocket({ type: isIPv4(this.opts.host) ? 'udp4' : 'udp6' });
    socket.on('error', (err) => this.log.warn({ err }, 'SIP UDP socket error'));
    socket.on('message', (buf, rinfo) => this.receive(buf, { transport: 'udp', address: plainAddress(rinfo.address), port: rinfo.port }));
    return new Promise((resolve, reject) => {
      const fail = (err: Error) => {
        socket.close();
        reject(err);
      };
      socket.once('error', fail);
      socket.bind(port, this.opts.host, () => {
        socket.off('error', fail);
        this.udp = socket;
        resolve(socket.address().port);
      });
    });
  }

  private accept(socket: Socket): void {
    socket.on('error', (err) => this.log.debug({ err, remote: socket.remoteAddress }, 'SIP TCP connection error'));
    if (this.closed) return void socket.destroy();
    this.adopt(socket, true);
  }

  /** Starts reading a connection (accepted or opened) and makes it the one for its peer. */
  private adopt(socket: Socket, accepted: boolean): Connection {
    // A connection we opened has sent its request; one accepted must speak first.
    const conn: Connection = { id: this.nextConnectionId++, socket, key: peerKey(socket.remoteAddress ?? '', socket.remotePort ?? 0), pending: Buffer.alloc(0), delivered: !accepted, stall: null };
    this.connections.set(conn.id, conn);
    this.byPeer.set(conn.key, conn);
    socket.setKeepAlive(true, TCP_KEEPALIVE_MS);
    socket.on('data', (chunk: Buffer) => this.onData(conn, chunk));
    this.watchStall(conn);
    socket.on('close', () => {
      if (conn.stall) clearTimeout(conn.stall);
      this.connections.delete(conn.id);
      if (this.byPeer.get(conn.key) === conn) this.byPeer.delete(conn.key);
    });
    return conn;
  }

  private tcpPeer(conn: Connection): SipPeer {
    return { transport: 'tcp', address: plainAddress(conn.socket.remoteAddress), port: conn.socket.remotePort ?? 0, connectionId: conn.id };
  }

  /** Cuts the stream into messages by Content-Length (required on a stream, RFC 3261 §18.3). */
  private onData(conn: Connection, chunk: Buffer): void {
    let buf = conn.pending.length === 0 ? chunk : Buffer.concat([conn.pending, chunk]);
    const max = this.opts.maxMessageBytes;
    for (;;) {
      let start = 0;
      // Blank lines between messages are keepalives (RFC 5626 §4.4.1 CRLF pings).
      while (start < buf.length && (buf[start] === 0x0d || buf[start] === 0x0a)) start++;
      buf = buf.subarray(start);
      if (buf.length === 0) break;
      const end = headerEnd(buf);
      // Framing lost on a stream cannot be found again: the connection goes.
      if (end < 0) {
        if (buf.length > max) return this.abandon(conn, `headers longer than ${max} bytes`);
        break;
      }
      const length = CONTENT_LENGTH.exec(buf.toString('latin1', 0, end));
      if (!length) return this.abandon(conn, 'no valid Content-Length on a stream');
      const total = end + Number(length[1]);
      if (total > max) return this.abandon(conn, `message of ${total} bytes exceeds the limit of ${max}`);
      if (buf.length < total) break;
      if (this.receive(buf.subarray(0, total), this.tcpPeer(conn))) conn.delivered = true;
      buf = buf.subarray(total);
    }
    // Copied, so a small remainder does not pin a large chunk.
    conn.pending = Buffer.from(buf);
    this.watchStall(conn);
  }

  /** A timer from the start of a partial message (or of a silent accepted connection), not reset by trickled bytes. */
  private watchStall(conn: Connection): void {
    const stalled = conn.pending.length > 0 || !conn.delivered;
    if (!stalled && conn.stall) {
      clearTimeout(conn.stall);
      conn.stall = null;
    } else if (stalled && !conn.stall) {
      const ms = this.opts.stallTimeoutMs ?? SIP_TCP_STALL_MS;
      conn.stall = setTimeout(() => this.abandon(conn, conn.delivered ? `message not completed within ${ms} ms` : `no SIP message within ${ms} ms`), ms);
    }
  }

  private abandon(conn: Connection, reason: string): void {
    if (conn.socket.destroyed) return;
    conn.pending = Buffer.alloc(0);
    this.drop(this.tcpPeer(conn), reason);
    conn.socket.destroy();
  }

  /** Parses and hands on one message; false when it was dropped. */
  private receive(buf: Buffer, peer: SipPeer): boolean {
    if (this.closed) return false;
    if (peer.transport === 'udp') {
      if (buf.length > this.opts.maxMessageBytes) {
        this.drop(peer, `datagram of ${buf.length} bytes exceeds the limit of ${this.opts.maxMessageBytes}`);
        return false;
      }
      if (buf.every((b) => b === 0x0d || b === 0x0a || b === 0x20 || b === 0x00)) return false; // keepalive ping
    }
    let message: SipMessage;
    try {
      message = parseSipMessage(buf, this.opts.maxMessageBytes);
    } catch (err) {
      this.drop(peer, (err as Error).message);
      return false;
    }
    this.stats.messages++;
    try {
      this.emit('message', message, peer);
    } catch (err) {
      // A listener's bug must not escape into the socket's event loop and end the process.
      this.log.warn({ err, peer }, 'SIP message handler failed');
    }
    return true;
  }

  private drop(peer: SipPeer, reason: string): void {
    this.stats.dropped++;
    this.log.debug({ peer, reason }, 'SIP input dropped');
    try {
      this.emit('dropped', peer, reason);
    } catch (err) {
      this.log.warn({ err }, 'SIP dropped listener failed');
    }
  }

  /** The local IP this peer's packets arrive on, for Contact and SDP when no public address is configured. */
  localAddressFor(peer: SipPeer): string {
    const conn = peer.transport === 'tcp' ? this.connectionOf(peer) : undefined;
    if (conn?.socket.localAddress) return plainAddress(conn.socket.localAddress);
    if (this.opts.host !== '0.0.0.0' && this.opts.host !== '::') return this.opts.host;
    if (/^127\./.test(peer.address) || peer.address === '::1') return '127.0.0.1';
    // A wildcard socket does not say which interface a datagram came in on: take the one on the peer's subnet.
    const v4 = Object.values(networkInterfaces())
      .flat()
      .filter((i) => i !== undefined && i.family === 'IPv4' && !i.internal);
    const onSubnet = v4.find((i) => i && isIPv4(peer.address) && sameSubnet(i.address, peer.address, i.netmask));
    return (onSubnet ?? v4[0])?.address ?? '127.0.0.1';
  }

  private connectionOf(peer: SipPeer): Connection | undefined {
    const byId = peer.connectionId === undefined ? undefined : this.connections.get(peer.connectionId);
    return byId && !byId.socket.destroyed ? byId : this.byPeer.get(peerKey(peer.address, peer.port));
  }

  /** TCP: on the peer's open connection (by connectionId, else address:port), else on a new one. */
  async send(peer: SipPeer, m: SipMessage): Promise<void> {
    if (this.closed) throw new Error('SIP transport closed');
    const data = serializeSipMessage(m);
    if (peer.transport === 'udp') {
      const udp = this.udp;
      if (!udp) throw new Error('SIP over UDP is not enabled');
      return new Promise((resolve, reject) => udp.send(data, peer.port, peer.address, (err) => (err ? reject(err) : resolve())));
    }
    const conn = this.connectionOf(peer) ?? (await this.open(peer));
    return new Promise((resolve, reject) => {
      if (conn.socket.destroyed || !conn.socket.writable) return reject(new Error(`SIP TCP connection to ${conn.key} is closed`));
      conn.socket.write(data, (err) => (err ? reject(err) : resolve()));
    });
  }

  private open(peer: SipPeer): Promise<Connection> {
    const key = peerKey(peer.address, peer.port);
    const already = this.connecting.get(key);
    if (already) return already;
    const opening = new Promise<Connection>((resolve, reject) => {
      if (this.connections.size >= (this.opts.maxConnections ?? SIP_MAX_CONNECTIONS)) return reject(new Error('too many SIP TCP connections'));
      const socket = connect({ host: peer.address, port: peer.port });
      const timer = setTimeout(() => socket.destroy(new Error(`SIP TCP connect to ${key} timed out`)), this.opts.connectTimeoutMs ?? CONNECT_TIMEOUT_MS);
      socket.on('error', (err) => {
        clearTimeout(timer);
        this.log.debug({ err, peer: key }, 'SIP TCP connection error');
        reject(err);
      });
      socket.once('connect', () => {
        clearTimeout(timer);
        if (this.closed) {
          socket.destroy();
          return reject(new Error('SIP transport closed'));
        }
        const conn = this.adopt(socket, false);
        // Known by the address asked for too, which may differ in form from remoteAddress.
        this.byPeer.set(key, conn);
        socket.once('close', () => this.byPeer.get(key) === conn && this.byPeer.delete(key));
        resolve(conn);
      });
    });
    this.connecting.set(key, opening);
    const forget = () => void this.connecting.delete(key);
    opening.then(forget, forget);
    return opening;
  }

  /** Open TCP connections (accepted and opened). */
  get connectionCount(): number {
    return this.connections.size;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const conn of this.connections.values()) conn.socket.destroy();
    const server = this.server;
    const udp = this.udp;
    await Promise.all([
      server ? new Promise<void>((resolve) => server.close(() => resolve())) : null,
      udp ? new Promise<void>((resolve) => udp.close(() => resolve())) : null,
    ]);
  }
}

function sameSubnet(a: string, b: string, mask: string): boolean {
  const n = (ip: string) => ip.split('.').reduce((acc, o) => (acc << 8) | Number(o), 0) >>> 0;
  const m = n(mask);
  return (n(a) & m) >>> 0 === (n(b) & m) >>> 0;
}

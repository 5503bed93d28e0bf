import { randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';

/**
 * The least WebSocket client there is, on a bare TCP socket: for tests that must decide when a
 * client reads (a slow screen), and for benchmarks where the `ws` client would cost more CPU than
 * the server it measures. Server frames are taken unfragmented; pings are answered.
 */
export class RawWebSocket {
  /** Called for every text or binary frame, in order. */
  onFrame: ((opcode: number, payload: Buffer) => void) | null = null;
  private buffered: Buffer = Buffer.alloc(0);

  private constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => this.feed(chunk));
  }

  /** Opens the connection and upgrades it; the socket is left paused, so nothing is read until `resume()`. */
  static async connect(url: string, headers: Record<string, string>): Promise<RawWebSocket> {
    const u = new URL(url);
    const socket = connect(Number(u.port), u.hostname);
    socket.setNoDelay(true);
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    const extra = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('');
    socket.write(
      `GET ${u.pathname} HTTP/1.1\r\nHost: ${u.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n${extra}\r\n`,
    );
    const rest = await new Promise<Buffer>((resolve, reject) => {
      let head = Buffer.alloc(0);
      const onData = (d: Buffer) => {
        head = Buffer.concat([head, d]);
        const end = head.indexOf('\r\n\r\n');
        if (end < 0) return;
        socket.off('data', onData);
        socket.pause();
        const status = head.subarray(0, end).toString('latin1');
        if (!/^HTTP\/1\.1 101 /.test(status)) return reject(new Error(`upgrade refused: ${status.split('\r\n')[0]}`));
        resolve(head.subarray(end + 4));
      };
      socket.on('data', onData);
      socket.once('error', reject);
    });
    const ws = new RawWebSocket(socket);
    if (rest.length) ws.buffered = rest;
    return ws;
  }

  resume() {
    this.socket.resume();
    // Frames that came with the upgrade's response are waiting in the buffer.
    if (this.buffered.length) this.feed(Buffer.alloc(0));
  }

  pause() {
    this.socket.pause();
  }

  sendText(text: string) {
    this.send(1, Buffer.from(text));
  }

  /** A masked frame, as RFC 6455 requires of clients. */
  send(opcode: number, payload: Buffer) {
    const mask = randomBytes(4);
    const len = payload.length;
    const header = len < 126 ? Buffer.from([0x80 | opcode, 0x80 | len]) : Buffer.from([0x80 | opcode, 0x80 | 126, len >> 8, len & 255]);
    const body = Buffer.from(payload);
    for (let k = 0; k < body.length; k++) body[k]! ^= mask[k % 4]!;
    this.socket.write(Buffer.concat([header, mask, body]));
  }

  private feed(chunk: Buffer) {
    let buf = this.buffered.length ? Buffer.concat([this.buffered, chunk]) : chunk;
    // A frame handler may pause the socket; what is left waits for resume().
    while (buf.length >= 2 && !this.socket.isPaused()) {
      let len = buf[1]! & 127;
      let off = 2;
      if (len === 126) {
        if (buf.length < 4) break;
        len = buf.readUInt16BE(2);
        off = 4;
      } else if (len === 127) {
        if (buf.length < 10) break;
        len = Number(buf.readBigUInt64BE(2));
        off = 10;
      }
      if (buf.length < off + len) break;
      const opcode = buf[0]! & 15;
      const payload = buf.subarray(off, off + len);
      buf = buf.subarray(off + len);
      if (opcode === 9) this.send(10, payload);
      else if (opcode === 8) this.socket.destroy();
      else if (opcode === 1 || opcode === 2) this.onFrame?.(opcode, payload);
    }
    this.buffered = buf;
  }
}

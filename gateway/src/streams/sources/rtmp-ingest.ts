import { createHash, createHmac } from 'node:crypto';
import { createRequire } from 'node:module';
import { createServer, type Server, type Socket } from 'node:net';

/**
 * RTMP push ingest (drones, vehicle platform relays) on node-media-server's RTMP session. Our own
 * listener hands it the sockets, so a busy port is an error we report rather than node-media-server's
 * process.exit. Publishing and playing both need a signed URL (node-media-server's scheme,
 * "sign=<expiry>-<md5(path-expiry-secret)>"): publishers get theirs from an admin, and the only
 * player is the gateway's own pull, which turns the published stream into HLS and FLV like any camera.
 */
interface NmsContext {
  config: { auth?: { play: boolean; publish: boolean; secret: string } };
}

const require = createRequire(import.meta.url);
const Context = require('node-media-server/src/core/context.js') as NmsContext;
const RtmpSession = require('node-media-server/src/session/rtmp_session.js') as new (socket: Socket) => { run(): void };

export const PUSH_APP = 'push';

export class RtmpIngest {
  private server: Server | null = null;
  private readonly sockets = new Set<Socket>();
  /** Derived from the token key, so publish URLs handed out survive a restart. */
  private readonly secret: string;
  private boundPort = 0;

  constructor(private readonly opts: { host: string; port: number; key: Buffer }) {
    this.secret = createHmac('sha256', opts.key).update('wallgate rtmp ingest').digest('base64url');
    Context.config = { ...Context.config, auth: { play: true, publish: true, secret: this.secret } };
  }

  get port(): number {
    return this.boundPort;
  }

  async start(): Promise<void> {
    const server = createServer((socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
      socket.on('error', () => socket.destroy());
      new RtmpSession(socket).run();
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', (e: NodeJS.ErrnoException) =>
        reject(new Error(`RTMP ingest cannot listen on ${this.opts.host}:${this.opts.port} (${e.code}); set streams.flv.rtmpPort or disable streams.flv.rtmpEnabled`)),
      );
      server.listen(this.opts.port, this.opts.host, () => resolve());
    });
    this.server = server;
    const address = server.address();
    this.boundPort = typeof address === 'object' && address ? address.port : this.opts.port;
  }

  private sign(name: string, ttlSec: number): { sign: string; expiresAt: number } {
    const expiry = Math.floor(Date.now() / 1000) + ttlSec;
    const hash = createHash('md5').update(`/${PUSH_APP}/${name}-${expiry}-${this.secret}`).digest('hex');
    return { sign: `${expiry}-${hash}`, expiresAt: expiry * 1000 };
  }

  /** Where the gateway's own pull plays a published stream. */
  localPlayUrl(name: string): string {
    return `rtmp://127.0.0.1:${this.boundPort}/${PUSH_APP}/${name}?sign=${this.sign(name, 3600).sign}`;
  }

  /** The URL a publisher pushes to, valid for starting a publish until it expires. */
  publishUrl(host: string, name: string, ttlSec: number): { url: string; expiresAt: number } {
    const { sign, expiresAt } = this.sign(name, ttlSec);
    return { url: `rtmp://${host}:${this.boundPort}/${PUSH_APP}/${name}?sign=${sign}`, expiresAt };
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}

import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import type { FastifyInstance } from 'fastify';
import { GatewayError, reasoned } from '../../errors.js';
import { whileConnected } from '../../lib/sockets.js';
import { grantFor, STREAM_PARAMS, type ReaderSource, type StreamGrant, type StreamLease, type StreamTokenVerifier } from '../stream-access.js';

export interface HlsOptions {
  engine: ReaderSource;
  tokens: StreamTokenVerifier;
  /** A viewer that fetches nothing for this long is released. */
  viewerTimeoutMs: number;
  /** How long a playlist request for a starting stream may wait for the first segment. */
  waitMs: number;
}

interface Viewing {
  lease: Promise<StreamLease>;
  lastSeen: number;
  /** When the token stops starting viewings: a stopped viewing is remembered until then, so its token cannot restart the stream. */
  expiresAt: number;
  /** Requests being answered: a viewing waiting for a slow start is not idle. */
  inflight: number;
  /** Set when the stream was stopped under this viewing: its token must not start it again. */
  stopped: GatewayError | null;
}

const PLAYLIST = 'index.m3u8';
const SEGMENT = /^seg\d{1,12}\.ts$/;

/**
 * HLS from a session's directory, which ffmpeg fills with temp_file semantics (a file appears under
 * its name only when complete, so nothing partial is ever served). Every request of one token is
 * one viewing, hence one reader, until it stops fetching.
 */
export class HlsOutput {
  private readonly viewings = new Map<string, Viewing>();
  private readonly sweeper: NodeJS.Timeout;

  constructor(private readonly opts: HlsOptions) {
    this.sweeper = setInterval(() => this.sweep(), Math.min(1000, opts.viewerTimeoutMs / 4));
    this.sweeper.unref();
  }

  private sweep() {
    const cutoff = Date.now() - this.opts.viewerTimeoutMs;
    for (const [id, v] of this.viewings) {
      if (v.lastSeen >= cutoff || v.inflight > 0 || (v.stopped && v.expiresAt > Date.now())) continue;
      this.viewings.delete(id);
      v.lease.then((l) => l.release()).catch(() => {});
    }
  }

  private async viewing(grant: StreamGrant): Promise<Viewing> {
    let v = this.viewings.get(grant.viewingId);
    if (v?.stopped) throw v.stopped;
    if (!v) {
      if (grant.expiresAt < Date.now()) throw new GatewayError('GW_ERR_UNAUTHENTICATED', 'the stream token expired before it was used; ask for a new stream URL');
      const stoppable: Pick<Viewing, 'stopped'> = { stopped: null };
      const lease = this.opts.engine.addReader({
        cameraId: grant.cameraId,
        profile: grant.profile,
        kind: 'hls',
        userId: grant.userId,
        onClose: (error) => {
          stoppable.stopped = error;
        },
      });
      v = Object.assign(stoppable, { lease, lastSeen: Date.now(), inflight: 0, expiresAt: grant.expiresAt });
      this.viewings.set(grant.viewingId, v);
    }
    return v;
  }

  /**
   * Answers one request of a viewing; the viewing does not count as idle while a request waits, unless
   * its client left (null): then the viewing ends like any other whose player stopped asking.
   */
  private async serve(grant: StreamGrant, file: string, client: Duplex): Promise<{ body: string | Buffer; lease: StreamLease } | null> {
    const v = await this.viewing(grant);
    v.lastSeen = Date.now();
    v.inflight++;
    try {
      const lease = await v.lease;
      if (!(await whileConnected(client, lease.live()))) return null;
      if (file === PLAYLIST) return { lease, body: await this.playlist(lease.session.hlsDir) };
      const body = await readFile(join(lease.session.hlsDir, file)).catch(() => null);
      if (!body) throw new GatewayError('GW_ERR_NOT_FOUND', 'the segment is no longer in the live window');
      return { lease, body };
    } catch (e) {
      // A failed start leaves nothing behind; the player may ask again for a new URL.
      if (!v.stopped && e instanceof GatewayError && e.code !== 'GW_ERR_NOT_FOUND') {
        if (this.viewings.get(grant.viewingId) === v) this.viewings.delete(grant.viewingId);
        v.lease.then((l) => l.release()).catch(() => {});
      }
      throw e;
    } finally {
      v.inflight--;
      v.lastSeen = Date.now();
    }
  }

  private async playlist(dir: string): Promise<string> {
    const deadline = Date.now() + this.opts.waitMs;
    for (;;) {
      try {
        // A playlist is a few hundred bytes in the page cache: one synchronous read costs less than
        // the four thread-pool round trips of an asynchronous one, and it is read once a second per viewer.
        return readFileSync(join(dir, PLAYLIST), 'utf8');
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      }
      if (Date.now() > deadline) throw reasoned('GW_ERR_STREAM_TIMEOUT', 'hls', {}, 'the stream is live but no HLS segment was written in time');
      await sleep(25);
    }
  }

  close() {
    clearInterval(this.sweeper);
    for (const v of this.viewings.values()) v.lease.then((l) => l.release()).catch(() => {});
    this.viewings.clear();
  }

  routes = async (app: FastifyInstance) => {
    app.get<{ Params: { camera: string; profile: string; token: string; file: string } }>(
      '/streams/:camera/:profile/:token/:file',
      {
        schema: {
          params: {
            ...STREAM_PARAMS,
            required: [...STREAM_PARAMS.required, 'file'],
            properties: { ...STREAM_PARAMS.properties, file: { type: 'string', maxLength: 32 } },
          },
          description: 'HLS: the playlist (index.m3u8) and its segments; the stream token in the path is the credential',
          response: {
            200: {
              description: 'the playlist or a segment',
              content: { 'application/vnd.apple.mpegurl': { schema: { type: 'string' } }, 'video/mp2t': { schema: { type: 'string', format: 'binary' } } },
            },
          },
        },
      },
      async (req, reply) => {
        const { file } = req.params;
        if (file !== PLAYLIST && !SEGMENT.test(file)) throw new GatewayError('GW_ERR_NOT_FOUND', 'no such stream file');
        const served = await this.serve(grantFor(this.opts.tokens, req.params), file, req.raw.socket);
        if (!served) {
          req.raw.socket.destroy();
          return reply.hijack();
        }
        const { lease, body } = served;
        lease.session.countSent(body.length);
        if (file === PLAYLIST) {
          return reply.header('content-type', 'application/vnd.apple.mpegurl').header('cache-control', 'no-cache, no-store').send(body);
        }
        // A segment never changes once written; the token in the path keeps it private to this viewing.
        return reply.header('content-type', 'video/mp2t').header('cache-control', 'private, max-age=60, immutable').send(body);
      },
    );
  };
}

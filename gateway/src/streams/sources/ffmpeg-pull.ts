import { isIP } from 'node:net';
import { GatewayError, reasoned } from '../../errors.js';
import { classifyFailure } from '../failure.js';
import { FlvDemuxer } from '../flv-demux.js';
import { concatList, pullArgs, type PullInput } from '../process/args.js';
import { FfmpegProcess, type FfmpegExit } from '../process/ffmpeg-process.js';
import type { ResolvedSource, StreamsConfig } from '../types.js';
import type { DriverAttempt, DriverContext, DriverEvents, SourceDriver } from './driver.js';

/** Turns how an attempt's ffmpeg ended (or was given up on) into what viewers read. */
export type FailureWords = (exit: FfmpegExit, stderrTail: readonly string[], hadMedia: boolean, cfg: StreamsConfig) => GatewayError;

/** A pull's input as ffmpeg opens it, and the secrets its stderr must never show. */
export interface PreparedInput {
  input: PullInput;
  secrets: string[];
  /** Lets go of what the input holds (the checked fetcher's source, its credential) once the attempt ends. */
  release?: () => void;
}

/**
 * One attempt of a camera ffmpeg opens itself (RTSP, RTMP, SRT, HLS, HTTP-FLV): one ffmpeg that
 * writes the session's HLS directory and FLV tags on its stdout. The input is prepared afresh by
 * each attempt: credentials are opened and the host re-checked every time.
 */
export class FfmpegPullDriver implements SourceDriver {
  private ffmpeg: FfmpegProcess | null = null;
  /** The spawn in progress: a close during it waits for the process, to stop it. */
  private spawning: Promise<FfmpegProcess> | null = null;
  private closedFor: string | null = null;
  private hadMedia = false;
  private release: (() => void) | null = null;

  constructor(
    private readonly ctx: DriverContext,
    private readonly attempt: DriverAttempt,
    private readonly events: DriverEvents,
    private readonly prepare: () => Promise<PreparedInput>,
    private readonly words: FailureWords = classifyFailure,
  ) {}

  get pid(): number | null {
    return this.ffmpeg?.running ? this.ffmpeg.pid : null;
  }

  async start(): Promise<void> {
    const cfg = this.ctx.config;
    const { input, secrets, release } = await this.prepare().catch((e: Error) => {
      throw e instanceof GatewayError ? e : reasoned('GW_ERR_CAMERA_UNREACHABLE', 'lookup', {}, `cannot look up the camera's address: ${e.message}`);
    });
    this.release = release ?? null;
    if (this.closedFor !== null) return this.letGo();
    const args = pullArgs(input, {
      transcode: this.attempt.transcode ? { preset: cfg.transcode.preset, height: cfg.transcode.height, bitrateKbps: cfg.transcode.bitrateKbps } : null,
      audio: cfg.audio,
      hls: { segmentSec: cfg.hls.segmentSec, listSize: cfg.hls.listSize, startNumber: this.attempt.segmentStart, discontinuity: this.attempt.discontinuity },
    });
    const demuxer = new FlvDemuxer((tag) => {
      if (tag.type === 9 && !tag.header) this.hadMedia = true;
      this.events.tag(tag);
    });
    let ff: FfmpegProcess;
    try {
      this.spawning = FfmpegProcess.start({
        ffmpegPath: cfg.ffmpegPath,
        args,
        cwd: this.attempt.hlsDir,
        stdin: concatList(input),
        instanceId: this.ctx.instanceId,
        secrets,
        killGraceMs: cfg.killGraceMs,
        stderrTailLines: 30,
        onStdout: (chunk) => {
          if (this.closedFor !== null) return;
          this.events.bytes(chunk.length);
          const err = demuxer.push(chunk);
          if (err) void ff.close(err);
        },
      });
      ff = await this.spawning;
    } catch (e) {
      this.letGo();
      throw new GatewayError('GW_ERR_INTERNAL', `cannot start ffmpeg: ${(e as Error).message}`);
    }
    this.ffmpeg = ff;
    if (this.closedFor !== null) {
      void ff.close(this.closedFor);
      return;
    }
    let probed = false;
    ff.on('line', (line) => {
      if (probed || this.closedFor !== null) return;
      // "Stream #0:0: Video: hevc (Main), yuv420p(tv), 1280x720, 25 fps" names the input once it is probed.
      const m = /Stream #0:\d+.*?: Video: (\w+).*?, (\d{2,5}x\d{2,5})/.exec(line);
      if (!m) return;
      probed = true;
      this.events.probed(m[1]!, m[2]!);
    });
    ff.once('exit', (exit) => {
      if (this.closedFor !== null) return;
      this.events.failed(this.words(exit, ff.stderrTail(), this.hadMedia, cfg));
    });
  }

  timedOut(kind: 'start' | 'stall', ms: number): GatewayError {
    const reason = kind === 'start' ? 'start timeout' : `stalled: no video for ${ms} ms`;
    return this.words({ code: null, signal: null, reason }, this.ffmpeg?.stderrTail() ?? [], this.hadMedia, this.ctx.config);
  }

  /** Fails the attempt for a reason found outside ffmpeg (the checked fetcher refused a hop); the session then closes it. */
  refuse(error: GatewayError): void {
    if (this.closedFor === null) this.events.failed(error);
  }

  async close(reason: string): Promise<void> {
    this.closedFor ??= reason;
    const ff = this.ffmpeg ?? (await this.spawning?.catch(() => null)) ?? null;
    if (ff) await ff.close(this.closedFor);
    this.letGo();
  }

  private letGo() {
    this.release?.();
    this.release = null;
  }
}

/**
 * The URL ffmpeg opens: credentials put back in, and the host checked against the network policy
 * again now, since DNS may have changed since registration. Where the protocol allows (no TLS
 * name to verify), the checked address replaces the name so a second lookup cannot differ.
 */
export async function networkInput(ctx: DriverContext, source: ResolvedSource): Promise<PreparedInput> {
  const url = new URL(source.url);
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const verdict = await ctx.checkConnect(host);
  if ('refused' in verdict) throw reasoned('GW_ERR_FORBIDDEN', 'address', {}, `the camera's address is not allowed: ${verdict.refused}`);
  const pinned = verdict.addresses[0];
  if (pinned && !isIP(host) && (source.protocol === 'rtsp' || source.protocol === 'rtmp' || source.protocol === 'srt')) {
    url.hostname = isIP(pinned) === 6 ? `[${pinned}]` : pinned;
  }
  const secrets: string[] = [];
  const cred = source.credential;
  if (cred) {
    if (source.protocol === 'srt') {
      if (cred.password) url.searchParams.set('passphrase', cred.password);
    } else {
      url.username = encodeURIComponent(cred.username);
      if (cred.password) url.password = encodeURIComponent(cred.password);
    }
    if (cred.password) secrets.push(cred.password);
  }
  return { input: pullInput(ctx, source, url.toString()), secrets };
}

/**
 * An HLS or HTTP-FLV source's input: the camera URL is checked as for any pull, then handed to the
 * checked fetcher, and ffmpeg gets the fetcher's loopback URL. A hop the fetcher refuses goes to onRefused.
 */
export async function fetchedInput(ctx: DriverContext, source: ResolvedSource, onRefused: (error: GatewayError) => void): Promise<PreparedInput> {
  if (!ctx.checkedFetcher) throw new GatewayError('GW_ERR_INTERNAL', 'HTTP sources need the checked fetcher, which this engine was not given');
  const { input, secrets } = await networkInput(ctx, source);
  const opened = ctx.checkedFetcher.open(input.url, {
    live: source.protocol === 'http-flv',
    onRefused: (reason) => onRefused(reasoned('GW_ERR_FORBIDDEN', 'address', {}, `the camera's address is not allowed: ${reason}`)),
  });
  // ffmpeg logs each URL it opens ("Opening 'http://127.0.0.1:…/<token>/…'"), and its stderr may reach an error message.
  return { input: { ...pullInput(ctx, source, opened.url), httpProxy: ctx.checkedFetcher.proxyUrl }, secrets: [...secrets, opened.token], release: opened.close };
}

export function pullInput(ctx: DriverContext, source: ResolvedSource, url: string): PullInput {
  return { protocol: source.protocol, url, rtspTransport: ctx.config.rtspTransport, ioTimeoutMs: ctx.config.ioTimeoutMs };
}

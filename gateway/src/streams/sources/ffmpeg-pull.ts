import { isIP } from 'node:net';
import { GatewayError, reasoned } from '../../errors.js';
import { classifyFailure } from '../failure.js';
import { concatList, pullArgs, type PullInput } from '../process/args.js';
import type { ResolvedSource } from '../types.js';
import type { DriverAttempt, DriverContext, DriverEvents, SourceDriver } from './driver.js';
import { FfmpegRun, type FailureWords } from './ffmpeg-run.js';

export type { FailureWords } from './ffmpeg-run.js';

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
  private readonly run: FfmpegRun;
  private release: (() => void) | null = null;

  constructor(
    ctx: DriverContext,
    attempt: DriverAttempt,
    events: DriverEvents,
    private readonly prepare: () => Promise<PreparedInput>,
    words: FailureWords = classifyFailure,
  ) {
    this.run = new FfmpegRun(ctx, attempt, events, words);
  }

  get pid(): number | null {
    return this.run.pid;
  }

  async start(): Promise<void> {
    const { input, secrets, release } = await this.prepare().catch((e: Error) => {
      throw e instanceof GatewayError ? e : reasoned('GW_ERR_CAMERA_UNREACHABLE', 'lookup', {}, `cannot look up the camera's address: ${e.message}`);
    });
    this.release = release ?? null;
    if (this.run.closed) return this.letGo();
    try {
      await this.run.spawn(pullArgs(input, this.run.output()), { stdin: concatList(input), secrets });
    } catch (e) {
      this.letGo();
      throw e;
    }
  }

  timedOut(kind: 'start' | 'stall', ms: number): GatewayError {
    return this.run.timedOut(kind, ms);
  }

  /** Fails the attempt for a reason found outside ffmpeg (the checked fetcher refused a hop); the session then closes it. */
  refuse(error: GatewayError): void {
    this.run.refuse(error);
  }

  async close(reason: string): Promise<void> {
    await this.run.close(reason);
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

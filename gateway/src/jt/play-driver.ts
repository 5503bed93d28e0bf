import { GatewayError, reasoned } from '../errors.js';
import { parseJtUrl } from '../registry/url-policy.js';
import { EsIngest } from '../streams/sources/es-ingest.js';
import type { DriverAttempt, DriverContext, DriverEvents, SourceDriver } from '../streams/sources/driver.js';
import type { ResolvedSource } from '../streams/types.js';
import { offlineError, type JtChannelAttachment, type JtDriverContext } from './channel-link.js';
import { JtCommandError } from './link.js';

/** What the ffmpeg ingest may take to start, on top of the terminal's answer and its media link (a loaded host). */
const INGEST_START_MS = 5_000;

/** Where a start got to: the log line and the error of a failure name it. */
type Step = 'terminal' | 'ingest' | 'request' | 'media' | 'live';

/**
 * One live-view attempt of a vehicle channel (JT/T 1078 §4, 表17): the ffmpeg ingest, then the
 * channel asked for over the terminal's JT/T 808 link through the channel's shared link (which sends
 * 0x9101 only for the first attempt of the channel, main or sub), then the access units the media
 * server reassembled from the terminal's packets into the ingest. Every failure is worded as the
 * tile should show it: the vehicle offline since when, the terminal refusing or not answering, no
 * media link within jt1078.startTimeoutMs, a link without decodable video.
 */
export class JtPlayDriver implements SourceDriver {
  private step: Step = 'terminal';
  private closedFor: string | null = null;
  private closing: Promise<void> | null = null;
  private ingest: EsIngest | null = null;
  private attachment: JtChannelAttachment | null = null;
  private units = 0;
  private mediaTimer: NodeJS.Timeout | null = null;
  private readonly target: { vehicleId: string; channel: number; sub: boolean } | null;

  constructor(
    private readonly ctx: DriverContext,
    private readonly jt: JtDriverContext,
    private readonly source: ResolvedSource,
    private readonly attempt: DriverAttempt,
    private readonly events: DriverEvents,
  ) {
    this.target = parseJtUrl(source.url);
  }

  get pid(): number | null {
    return this.ingest?.pid ?? null;
  }

  async start(): Promise<void> {
    const target = this.target;
    if (!target) throw new GatewayError('GW_ERR_INTERNAL', `"${this.source.url}" is not a jt1078://<vehicle>/<channel> URL`);
    if (this.jt.channelSource(target.vehicleId, target.channel) !== this.source.cameraId) {
      throw this.failure(
        reasoned('GW_ERR_FORBIDDEN', 'notVehicleChannel', { vehicle: target.vehicleId, channel: target.channel }, `camera "${this.source.cameraId}" is not channel ${target.channel} of vehicle ${target.vehicleId}`),
      );
    }
    const terminal = this.jt.channels.link.terminal(target.vehicleId);
    if (!terminal?.online) throw this.failure(offlineError(target.vehicleId, terminal?.offlineSince ?? null));

    this.step = 'ingest';
    this.ingest = new EsIngest(this.ctx, this.attempt, this.events);
    await this.ingest.start();
    if (this.closedFor !== null) return;

    this.step = 'request';
    const ingest = this.ingest;
    this.attachment = this.jt.channels.attach(target.vehicleId, target.channel, {
      stream: target.sub ? 1 : 0,
      unit: (u) => {
        this.units++;
        ingest.push(u);
      },
      failed: (error) => this.fail(error),
    });
    try {
      await this.attachment.opened;
    } catch (e) {
      if (this.closedFor !== null) return;
      throw this.requestError(e);
    }
    if (this.closedFor !== null) return;

    this.step = 'media';
    const ms = this.jt.startTimeoutMs;
    this.mediaTimer = setTimeout(() => {
      this.mediaTimer = null;
      if (this.attachment?.packets === 0) this.fail(noMediaLink(ms));
    }, ms).unref();
  }

  /**
   * The session waits for the ingest, the terminal's answer to 0x9101 (jt808.commandTimeoutMs) and
   * then its media (jt1078.startTimeoutMs, timed by this driver from the answer): streams.startTimeoutMs
   * alone, counted from the start, would cut a slow but working terminal short.
   */
  startTimeoutMs(): number {
    return INGEST_START_MS + this.jt.commandTimeoutMs + this.jt.startTimeoutMs;
  }

  /** A vehicle past its data budget closes its channels early once nobody watches. */
  lingerMs(): number | null {
    const vehicleId = this.target?.vehicleId;
    return vehicleId !== undefined && this.jt.channels.budget.over(vehicleId) ? this.jt.overBudgetCloseAfterMs : null;
  }

  private requestError(e: unknown): GatewayError {
    if (!(e instanceof JtCommandError)) return this.failure(e instanceof GatewayError ? e : new GatewayError('GW_ERR_CAMERA_UNREACHABLE', `the video request failed: ${(e as Error).message}`));
    const vehicleId = this.target!.vehicleId;
    switch (e.kind) {
      case 'offline':
        return this.failure(offlineError(vehicleId, this.jt.channels.link.terminal(vehicleId)?.offlineSince ?? Date.now()));
      case 'timeout':
        return this.failure(terminalTimeout(this.jt.commandTimeoutMs));
      case 'result':
        return this.failure(reasoned('GW_ERR_CAMERA_UNREACHABLE', 'terminalRefused', { result: e.result ?? -1 }, `the terminal refused the video request (result ${e.result})`));
    }
  }

  timedOut(kind: 'start' | 'stall', ms: number): GatewayError {
    if (kind === 'stall') {
      return this.failure(reasoned('GW_ERR_CAMERA_UNREACHABLE', 'stalled', { ms }, `no video for ${seconds(ms)} (${this.attachment?.packets ?? 0} media packets in all)`));
    }
    if (this.step === 'request') return this.failure(terminalTimeout(ms));
    if (this.step !== 'media') return this.failure(reasoned('GW_ERR_STREAM_TIMEOUT', 'start', { ms }, `the start did not get past ${this.step} within ${seconds(ms)}`));
    // The session's start timeout (streams.startTimeoutMs) counts from the start, as the viewer waited.
    if ((this.attachment?.packets ?? 0) === 0) return this.failure(noMediaLink(ms));
    const detail = this.units === 0 ? 'no complete H.264/H.265 frame in the packets' : `${this.units} frames reached the decoder but no picture came out`;
    return this.failure(reasoned('GW_ERR_CAMERA_UNREACHABLE', 'linkNoVideo', { detail }, `video link opened but no decodable video (${detail})`));
  }

  /** Logs the failure with the step it happened at, and hands it back to throw or report. */
  private failure(error: GatewayError): GatewayError {
    this.jt.channels.link.log.warn(
      { camera: this.source.cameraId, vehicle: this.target?.vehicleId, channel: this.target?.channel, step: this.step, packets: this.attachment?.packets, code: error.code, reason: error.params?.reason },
      `JT/T 1078 live view failed at ${this.step}: ${error.message}`,
    );
    return error;
  }

  private fail(error: GatewayError) {
    if (this.closedFor !== null) return;
    this.events.failed(this.failure(error));
  }

  close(reason: string): Promise<void> {
    this.closedFor ??= reason;
    return (this.closing ??= (async () => {
      if (this.mediaTimer) clearTimeout(this.mediaTimer);
      this.attachment?.detach();
      await this.ingest?.close(reason);
    })());
  }
}

const seconds = (ms: number) => `${Math.round(ms / 100) / 10} s`;

const noMediaLink = (ms: number) => reasoned('GW_ERR_CAMERA_UNREACHABLE', 'noMediaLink', { ms }, `the terminal did not open the video link within ${seconds(ms)}`);
const terminalTimeout = (ms: number) => reasoned('GW_ERR_CAMERA_UNREACHABLE', 'terminalTimeout', { ms }, `the terminal did not answer the video request within ${seconds(ms)}`);

/** The driver factory's JT/T 1078 case (streams/sources/index.ts): refused at once when the gateway runs without it. */
export function jtPlayDriver(ctx: DriverContext, source: ResolvedSource, attempt: DriverAttempt, events: DriverEvents): SourceDriver {
  if (!ctx.jt1078) throw reasoned('GW_ERR_UNAVAILABLE', 'jt1078Off', {}, 'this is a JT/T 1078 vehicle channel and live video from terminals is off (jt1078.enabled, jt808.enabled)');
  return new JtPlayDriver(ctx, ctx.jt1078, source, attempt, events);
}

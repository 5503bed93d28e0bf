import { GatewayError } from '../../errors.js';
import { FlvDemuxer } from '../flv-demux.js';
import type { PullOutput } from '../process/args.js';
import { FfmpegProcess, type FfmpegExit } from '../process/ffmpeg-process.js';
import type { StreamsConfig } from '../types.js';
import type { DriverAttempt, DriverContext, DriverEvents } from './driver.js';

/** Turns how an attempt's ffmpeg ended (or was given up on) into what viewers read. */
export type FailureWords = (exit: FfmpegExit, stderrTail: readonly string[], hadMedia: boolean, cfg: StreamsConfig) => GatewayError;

/**
 * The half every ffmpeg-fed attempt shares, whatever its input (a URL ffmpeg opens, or media a
 * driver writes to its stdin): one ffmpeg writing the attempt's HLS directory and FLV on stdout,
 * its FLV tags and probed codec reported to the session, its unexpected exit worded as a failure,
 * and one close that also stops a spawn still in progress.
 */
export class FfmpegRun {
  private ffmpeg: FfmpegProcess | null = null;
  /** The spawn in progress: a close during it waits for the process, to stop it. */
  private spawning: Promise<FfmpegProcess> | null = null;
  private closedFor: string | null = null;
  private sawMedia = false;

  constructor(
    private readonly ctx: DriverContext,
    private readonly attempt: DriverAttempt,
    private readonly events: DriverEvents,
    private readonly words: FailureWords,
  ) {}

  /** The running ffmpeg's pid; null before it runs, once it exited, or after close. */
  get pid(): number | null {
    return this.ffmpeg?.running ? this.ffmpeg.pid : null;
  }

  /** The running ffmpeg, for a driver that writes its input. */
  get process(): FfmpegProcess | null {
    return this.ffmpeg?.running ? this.ffmpeg : null;
  }

  get closed(): boolean {
    return this.closedFor !== null;
  }

  /** A picture (not only a sequence header) came out. */
  get hadMedia(): boolean {
    return this.sawMedia;
  }

  /** The output half of this attempt's arguments (args.ts outputArgs): transcode, audio, HLS numbering. */
  output(): PullOutput {
    const cfg = this.ctx.config;
    return {
      transcode: this.attempt.transcode ? { preset: cfg.transcode.preset, height: cfg.transcode.height, bitrateKbps: cfg.transcode.bitrateKbps } : null,
      audio: cfg.audio,
      hls: { segmentSec: cfg.hls.segmentSec, listSize: cfg.hls.listSize, startNumber: this.attempt.segmentStart, discontinuity: this.attempt.discontinuity },
    };
  }

  /**
   * Spawns the ffmpeg. Resolves null when the run was closed meanwhile (the process is then
   * stopped); throws GW_ERR_INTERNAL when ffmpeg cannot be started.
   */
  async spawn(args: string[], input: { stdin?: string; streamStdin?: boolean; secrets: string[] }): Promise<FfmpegProcess | null> {
    const cfg = this.ctx.config;
    const demuxer = new FlvDemuxer((tag) => {
      if (tag.type === 9 && !tag.header) this.sawMedia = true;
      this.events.tag(tag);
    });
    let ff: FfmpegProcess;
    try {
      this.spawning = FfmpegProcess.start({
        ffmpegPath: cfg.ffmpegPath,
        args,
        cwd: this.attempt.hlsDir,
        ...(input.stdin !== undefined ? { stdin: input.stdin } : {}),
        ...(input.streamStdin ? { streamStdin: true } : {}),
        instanceId: this.ctx.instanceId,
        secrets: input.secrets,
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
      throw new GatewayError('GW_ERR_INTERNAL', `cannot start ffmpeg: ${(e as Error).message}`);
    }
    this.ffmpeg = ff;
    if (this.closedFor !== null) {
      void ff.close(this.closedFor);
      return null;
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
      this.events.failed(this.words(exit, ff.stderrTail(), this.sawMedia, cfg));
    });
    return ff;
  }

  /** The session gave up waiting; worded from what ffmpeg said. */
  timedOut(kind: 'start' | 'stall', ms: number): GatewayError {
    const reason = kind === 'start' ? 'start timeout' : `stalled: no video for ${ms} ms`;
    return this.words({ code: null, signal: null, reason }, this.stderrTail(), this.sawMedia, this.ctx.config);
  }

  stderrTail(): string[] {
    return this.ffmpeg?.stderrTail() ?? [];
  }

  /** Fails the attempt for a reason found outside ffmpeg; the session then closes it. */
  refuse(error: GatewayError): void {
    if (this.closedFor === null) this.events.failed(error);
  }

  /** Stops ffmpeg, also one still spawning; nothing is reported afterwards. Idempotent. */
  async close(reason: string): Promise<void> {
    this.closedFor ??= reason;
    const ff = this.ffmpeg ?? (await this.spawning?.catch(() => null)) ?? null;
    if (ff) await ff.close(this.closedFor);
  }
}

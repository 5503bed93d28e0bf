import type { GatewayError } from '../../errors.js';
import type { GbDriverContext } from '../../gb28181/play-link.js';
import type { JtDriverContext } from '../../jt/channel-link.js';
import type { FlvTag, ResolvedSource, SourceResolver, StreamsConfig } from '../types.js';
import type { CheckedFetcher } from './checked-fetcher.js';

/**
 * How a camera's media reaches its session. The session (streams/session.ts) runs the state
 * machine (starting, ready, retrying with backoff, lingering, closed), the timers and the readers;
 * a driver only knows how to get one kind of source's media, once. Each attempt gets a new driver,
 * so an attempt that fails, stalls or is restarted is thrown away whole, and its late callbacks are
 * dropped by the session (every event carries the attempt's generation).
 *
 * Two kinds of driver fit:
 * - a pull or relay that ends in ffmpeg writing the HLS directory and FLV on its stdout (RTSP, RTMP,
 *   SRT, HLS, the RTMP push ingest): it reports FLV tags through `tag`;
 * - a socket receiver (GB/T 28181 PS over RTP, JT/T 1078) that reassembles H.264/H.265 access units
 *   itself: it feeds them to an ffmpeg reading the elementary stream on stdin with the same output
 *   half (`outputArgs` in process/args.ts: HLS directory and FLV on stdout), and reports that
 *   ffmpeg's FLV tags the same way. The session never sees a container or a socket.
 */
export interface SourceDriver {
  /** The driver's ffmpeg, for the sessions list and the tests; null when none is running. */
  readonly pid: number | null;
  /**
   * Connects and begins delivering media. Rejects with a coded GatewayError naming the step that
   * failed (address refused, ffmpeg could not be spawned); failures once started arrive as
   * `DriverEvents.failed`.
   */
  start(): Promise<void>;
  /**
   * The session gave up waiting: no first frame within the start timeout, or no video for `ms`
   * while live. The driver words the reason from what it saw (its stderr tail, a publisher that
   * never came); the session then closes it.
   */
  timedOut(kind: 'start' | 'stall', ms: number): GatewayError;
  /** Stops and lets go of everything; no event follows. Idempotent, and safe during `start()`. */
  close(reason: string): Promise<void>;
  /**
   * How long the session may linger once unwatched, when the source wants it shorter than
   * streams.closeAfterMs (a vehicle past its cellular data budget); null or absent: the usual.
   */
  lingerMs?(): number | null;
  /**
   * How long the session waits for the first frame when the source needs longer than
   * streams.startTimeoutMs (a vehicle terminal answers 0x9101, then opens its media link); null or
   * absent: the usual. Never shortens it.
   */
  startTimeoutMs?(): number | null;
}

/** What one attempt is asked to produce. */
export interface DriverAttempt {
  /** The session's HLS directory, emptied for this attempt: segments go here. */
  hlsDir: string;
  /** The first segment's number: a player's media sequence never goes backwards across attempts. */
  segmentStart: number;
  /** Not the session's first attempt: the playlist marks the break. */
  discontinuity: boolean;
  /** Re-encode to H.264 Main without B-frames (H.265, or a stream WebRTC cannot reorder). */
  transcode: boolean;
}

/** What a driver reports to its session. Calls after close(), or from a superseded attempt, are ignored. */
export interface DriverEvents {
  /** A media tag. Its data may be a view of a reused buffer: valid only during the call. */
  tag(tag: FlvTag): void;
  /** Bytes received from the source, for the bitrate. */
  bytes(n: number): void;
  /** The input's video codec (ffmpeg's name: h264, hevc) and resolution, once known. */
  probed(codec: string, resolution: string | null): void;
  /** The attempt ended on its own (the source failed or went away): why, as viewers will read it. */
  failed(error: GatewayError): void;
}

/** What every driver may use; the manager provides it. */
export interface DriverContext {
  config: StreamsConfig;
  /** Marks the drivers' ffmpeg processes for the orphan sweep. */
  instanceId: string;
  /** The network policy at connect time: addresses a host may be reached at, or why not. */
  checkConnect: SourceResolver['checkConnect'];
  /**
   * Where HLS and HTTP-FLV sources are read from instead of the camera, each hop checked against the
   * policy. Without it such a source is refused: ffmpeg would follow redirects and segments anywhere.
   */
  checkedFetcher?: Pick<CheckedFetcher, 'open' | 'proxyUrl'>;
  /** The GB/T 28181 SIP service and RTP ports a GB channel's driver uses; absent while gb28181.enabled is off. */
  gb28181?: GbDriverContext;
  /** The JT/T 1078 channels a vehicle channel's driver attaches to; absent while jt1078.enabled or jt808.enabled is off. */
  jt1078?: JtDriverContext;
}

export type DriverFactory = (source: ResolvedSource, attempt: DriverAttempt, events: DriverEvents) => SourceDriver;

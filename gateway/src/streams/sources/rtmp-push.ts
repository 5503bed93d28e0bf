import type { ResolvedSource } from '../types.js';
import type { DriverAttempt, DriverContext, DriverEvents, SourceDriver } from './driver.js';
import { FfmpegPullDriver, pullInput } from './ffmpeg-pull.js';

/**
 * A push camera (drone, vehicle platform relay): its publisher pushes RTMP to the gateway's ingest
 * (rtmp-ingest.ts), and the attempt plays it back from there on loopback through ffmpeg like any
 * RTMP camera. The resolver gives the ingest's signed play URL; there is no host to check and no
 * credential to open, and a start that times out means nobody is publishing (failure.ts).
 */
export function rtmpPushDriver(ctx: DriverContext, source: ResolvedSource, attempt: DriverAttempt, events: DriverEvents): SourceDriver {
  return new FfmpegPullDriver(ctx, source, attempt, events, () => Promise.resolve({ input: pullInput(ctx, source, source.url), secrets: [] }));
}

import { GatewayError, reasoned } from '../../errors.js';
import { classifyFailure } from '../failure.js';
import type { ResolvedSource } from '../types.js';
import type { DriverAttempt, DriverContext, DriverEvents, SourceDriver } from './driver.js';
import { FfmpegPullDriver, pullInput, type FailureWords } from './ffmpeg-pull.js';

/** The ingest answers a play of a name nobody publishes with an I/O error or with silence. */
export const pushFailure: FailureWords = (exit, tail, hadMedia, cfg) => {
  if (!hadMedia && (exit.reason === 'start timeout' || exit.reason === null)) {
    return reasoned('GW_ERR_CAMERA_UNREACHABLE', 'noPublisher', {}, 'nobody is publishing to this push camera; give its publisher a URL from POST /api/sources/<id>/publish-url');
  }
  return classifyFailure(exit, tail, hadMedia, cfg);
};

/**
 * A push camera (drone, vehicle platform relay): its publisher pushes RTMP to the gateway's ingest
 * (rtmp-ingest.ts), and the attempt plays it back from there on loopback through ffmpeg like any
 * RTMP camera. The resolver gives the ingest's signed play URL; there is no host to check and no
 * credential to open, and a start that fails before any video means nobody is publishing.
 */
export function rtmpPushDriver(ctx: DriverContext, source: ResolvedSource, attempt: DriverAttempt, events: DriverEvents): SourceDriver {
  const input = () => Promise.resolve({ input: pullInput(ctx, source, source.url), secrets: [] });
  return new FfmpegPullDriver(ctx, attempt, events, input, pushFailure);
}

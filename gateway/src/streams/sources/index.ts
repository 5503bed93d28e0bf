import { gbPlayDriver } from '../../gb28181/play-driver.js';
import { jtPlayDriver } from '../../jt/play-driver.js';
import type { DriverContext, DriverFactory } from './driver.js';
import { fetchedInput, FfmpegPullDriver, networkInput } from './ffmpeg-pull.js';
import { rtmpPushDriver } from './rtmp-push.js';

/** The driver for each kind of source: the only place that knows which protocols exist. */
export function driverFactory(ctx: DriverContext): DriverFactory {
  return (source, attempt, events) => {
    switch (source.protocol) {
      case 'gb28181':
        return gbPlayDriver(ctx, source, attempt, events);
      case 'jt1078':
        return jtPlayDriver(ctx, source, attempt, events);
      case 'rtmp-push':
        return rtmpPushDriver(ctx, source, attempt, events);
      case 'hls':
      case 'http-flv': {
        const driver: FfmpegPullDriver = new FfmpegPullDriver(ctx, attempt, events, () => fetchedInput(ctx, source, (error) => driver.refuse(error)));
        return driver;
      }
      default:
        return new FfmpegPullDriver(ctx, attempt, events, () => networkInput(ctx, source));
    }
  };
}

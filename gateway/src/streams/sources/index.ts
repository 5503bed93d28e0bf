import type { DriverContext, DriverFactory } from './driver.js';
import { FfmpegPullDriver, networkInput } from './ffmpeg-pull.js';
import { rtmpPushDriver } from './rtmp-push.js';

/** The driver for each kind of source: the only place that knows which protocols exist. */
export function driverFactory(ctx: DriverContext): DriverFactory {
  return (source, attempt, events) => {
    switch (source.protocol) {
      case 'rtmp-push':
        return rtmpPushDriver(ctx, source, attempt, events);
      default:
        return new FfmpegPullDriver(ctx, attempt, events, () => networkInput(ctx, source));
    }
  };
}

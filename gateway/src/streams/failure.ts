import { GatewayError, reasoned } from '../errors.js';
import type { FfmpegExit } from './process/ffmpeg-process.js';
import type { StreamsConfig } from './types.js';

/** A coded failure with ffmpeg's own line as its detail. */
const byCode = {
  auth: (detail: string, message: string) => new GatewayError('GW_ERR_CAMERA_AUTH', message, undefined, { detail }),
  noStream: (detail: string, message: string) => reasoned('GW_ERR_CAMERA_UNREACHABLE', 'noStream', { detail }, message),
  noVideo: (detail: string, message: string) => new GatewayError('GW_ERR_CAMERA_NO_VIDEO', message, undefined, { detail }),
  codec: (detail: string, message: string) => reasoned('GW_ERR_CODEC_UNSUPPORTED', 'decoder', { detail }, message),
  unreachable: (detail: string, message: string) => reasoned('GW_ERR_CAMERA_UNREACHABLE', 'unreachable', { detail }, message),
};

/** ffmpeg's words for each way a pull fails, most specific first. */
const PATTERNS: [RegExp, keyof typeof byCode, string][] = [
  [/\b(401|403)\b|Unauthorized|authori[sz]ation failed/i, 'auth', 'the camera refused the user name or password'],
  [/\b404 Not Found|Stream not found/, 'noStream', 'the camera has no stream at this path'],
  [/matches no streams|does not contain any stream|no video/i, 'noVideo', 'the stream has no video track'],
  [/Decoder \(codec [^)]*\) not found|Unsupported codec|codec not currently supported|not supported in (FLV|this container)/i, 'codec', 'the video codec is not supported'],
  [
    /Connection refused|Connection reset|No route to host|Network is unreachable|timed out|Name or service not known|End of file|Invalid data found|Server returned|Broken pipe|Immediate exit requested/i,
    'unreachable',
    'the camera is unreachable',
  ],
];

/** The last line of ffmpeg's stderr that explains the failure, without the "[demuxer @ 0x…]" prefix. */
function explanation(tail: readonly string[], pattern: RegExp): string | null {
  for (let i = tail.length - 1; i >= 0; i--) {
    if (pattern.test(tail[i]!)) return tail[i]!.replace(/^\[[^\]]+\]\s*/, '').trim();
  }
  return null;
}

/** Turns an ended ffmpeg into the error its viewers and the registry's health see. */
export function classifyFailure(exit: FfmpegExit, tail: readonly string[], hadMedia: boolean, cfg: StreamsConfig): GatewayError {
  if (exit.reason?.startsWith('stalled')) {
    return reasoned('GW_ERR_CAMERA_UNREACHABLE', 'stalled', { ms: Number(/\d+/.exec(exit.reason)?.[0] ?? cfg.watchdogMs) }, `the camera ${exit.reason}`);
  }
  if (exit.reason === 'start timeout') {
    return reasoned(
      'GW_ERR_STREAM_TIMEOUT',
      'start',
      { ms: cfg.startTimeoutMs },
      `no video within ${cfg.startTimeoutMs} ms: the camera accepted the connection but sent nothing, or never answered`,
    );
  }
  if (exit.code === 0 && !exit.reason) {
    return hadMedia
      ? reasoned('GW_ERR_CAMERA_UNREACHABLE', 'closed', {}, 'the camera closed the stream')
      : reasoned('GW_ERR_CAMERA_UNREACHABLE', 'endedEarly', {}, 'the camera ended the stream before any video');
  }
  for (const [pattern, kind, summary] of PATTERNS) {
    const line = explanation(tail, pattern);
    if (line) return byCode[kind](line, `${summary}${hadMedia ? ' (it dropped after playing)' : ''}: ${line}`);
  }
  const last = tail.at(-1)?.replace(/^\[[^\]]+\]\s*/, '') ?? 'no output';
  const how = exit.signal ? `was killed (${exit.signal})` : `exited with code ${exit.code}`;
  return reasoned('GW_ERR_CAMERA_UNREACHABLE', 'exited', { detail: last }, `the pull ${hadMedia ? 'dropped' : 'failed'}: ffmpeg ${how}${exit.reason ? ` (${exit.reason})` : ''}: ${last}`);
}

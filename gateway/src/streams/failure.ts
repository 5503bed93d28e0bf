import { GatewayError, type ErrorCode } from '../errors.js';
import type { FfmpegExit } from './process/ffmpeg-process.js';
import type { StreamsConfig } from './types.js';

/** ffmpeg's words for each way a pull fails, most specific first. */
const PATTERNS: [RegExp, ErrorCode, string][] = [
  [/\b(401|403)\b|Unauthorized|authori[sz]ation failed/i, 'GW_ERR_CAMERA_AUTH', 'the camera refused the user name or password'],
  [/\b404 Not Found|Stream not found/, 'GW_ERR_CAMERA_UNREACHABLE', 'the camera has no stream at this path'],
  [/matches no streams|does not contain any stream|no video/i, 'GW_ERR_CAMERA_NO_VIDEO', 'the stream has no video track'],
  [/Decoder \(codec [^)]*\) not found|Unsupported codec|codec not currently supported|not supported in (FLV|this container)/i, 'GW_ERR_CODEC_UNSUPPORTED', 'the video codec is not supported'],
  [
    /Connection refused|Connection reset|No route to host|Network is unreachable|timed out|Name or service not known|End of file|Invalid data found|Server returned|Broken pipe|Immediate exit requested/i,
    'GW_ERR_CAMERA_UNREACHABLE',
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
  if (exit.reason?.startsWith('stalled')) return new GatewayError('GW_ERR_CAMERA_UNREACHABLE', `the camera ${exit.reason}`);
  if (exit.reason === 'start timeout') {
    return new GatewayError(
      'GW_ERR_STREAM_TIMEOUT',
      `no video within ${cfg.startTimeoutMs} ms: the camera accepted the connection but sent nothing, or never answered`,
    );
  }
  if (exit.code === 0 && !exit.reason) {
    return new GatewayError('GW_ERR_CAMERA_UNREACHABLE', hadMedia ? 'the camera closed the stream' : 'the camera ended the stream before any video');
  }
  for (const [pattern, code, summary] of PATTERNS) {
    const line = explanation(tail, pattern);
    if (line) return new GatewayError(code, `${summary}${hadMedia ? ' (it dropped after playing)' : ''}: ${line}`);
  }
  const last = tail.at(-1)?.replace(/^\[[^\]]+\]\s*/, '') ?? 'no output';
  const how = exit.signal ? `was killed (${exit.signal})` : `exited with code ${exit.code}`;
  return new GatewayError('GW_ERR_CAMERA_UNREACHABLE', `the pull ${hadMedia ? 'dropped' : 'failed'}: ffmpeg ${how}${exit.reason ? ` (${exit.reason})` : ''}: ${last}`);
}

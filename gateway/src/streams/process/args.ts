import type { Protocol } from '../../store/types.js';

/** Protocols ffmpeg may open for each kind of source: nothing else, never file: or a nested chain. */
const WHITELISTS: Record<Protocol, string> = {
  rtsp: 'rtsp,rtp,tcp,udp',
  rtsps: 'rtsps,rtsp,rtp,tcp,udp,tls',
  rtmp: 'rtmp,tcp',
  // Pulled from our own RTMP ingest on loopback.
  'rtmp-push': 'rtmp,tcp',
  rtmps: 'rtmps,rtmp,tcp,tls',
  // HTTP(S) sources are read from the checked fetcher on loopback, never from the camera (sources/checked-fetcher.ts).
  hls: 'http,tcp,crypto',
  'http-flv': 'http,tcp',
  srt: 'srt,udp',
  // Never opened by ffmpeg: its media arrive as RTP at our own receiver and reach ffmpeg on stdin.
  gb28181: '',
  // Never opened by ffmpeg either: the terminal's 1078 packets arrive at our media server and reach ffmpeg on stdin.
  jt1078: '',
};

export interface PullInput {
  protocol: Protocol;
  /** The URL to open, credentials included: it only ever travels through stdin. */
  url: string;
  rtspTransport: 'tcp' | 'udp';
  ioTimeoutMs: number;
  /** HTTP sources: every request goes through this proxy (the checked fetcher), so a URL it did not sign fails closed. */
  httpProxy?: string;
}

export interface PullOutput {
  /** Transcode H.265 (or anything a browser cannot play) to H.264. */
  transcode: { preset: string; height: number; bitrateKbps: number } | null;
  audio: 'off' | 'aac';
  hls: { segmentSec: number; listSize: number; startNumber: number; discontinuity: boolean };
}

/**
 * The pull's input goes through the concat demuxer reading a one-entry list from stdin, so the
 * camera URL, and the password in it, never appear on the command line (/proc/<pid>/cmdline is
 * world-readable). Per-input options travel in the list as `option` lines.
 */
export function concatList(input: PullInput): string {
  const options: [string, string | number][] = [
    ['probesize', 32768],
    ['analyzeduration', 500000],
  ];
  if (input.protocol === 'rtsp' || input.protocol === 'rtsps') {
    options.push(['rtsp_transport', input.rtspTransport], ['timeout', input.ioTimeoutMs * 1000]);
  } else {
    options.push(['rw_timeout', input.ioTimeoutMs * 1000]);
  }
  if (input.httpProxy) options.push(['http_proxy', input.httpProxy]);
  const quoted = `'${input.url.replace(/'/g, "'\\''")}'`;
  return ['ffconcat version 1.0', `file ${quoted}`, ...options.map(([k, v]) => `option ${k} ${v}`), ''].join('\n');
}

/** How much of the input ffmpeg reads before it starts: little, so the first picture comes fast. */
const PROBE = ['-probesize', '32768', '-analyzeduration', '500000'];

/**
 * One ffmpeg per pull: the input once, encoded at most once, written by the tee muxer to the HLS
 * directory (the process's working directory) and as FLV to stdout, which the FLV output fans out.
 */
export function pullArgs(input: PullInput, out: PullOutput): string[] {
  const args = ['-hide_banner', '-nostdin', '-nostats', '-loglevel', 'info'];
  args.push('-protocol_whitelist', `pipe,${WHITELISTS[input.protocol]}`);
  args.push(...PROBE, '-fflags', '+genpts');
  args.push('-f', 'concat', '-safe', '0', '-i', 'pipe:0');
  return [...args, ...outputArgs(out)];
}

/**
 * One ffmpeg reading an MPEG-TS we write to its stdin (sources/es-ingest.ts: access units a driver
 * reassembled itself), with the same output half as a pull. Probed as little as a pull: the stream
 * starts at a keyframe with its parameter sets. (Not -fflags nobuffer: it throws away the packets
 * read while probing, that first keyframe among them, and the picture waits for the next GOP.)
 */
export function tsPipeArgs(out: PullOutput): string[] {
  const args = ['-hide_banner', '-nostdin', '-nostats', '-loglevel', 'info', '-protocol_whitelist', 'pipe', ...PROBE];
  args.push('-f', 'mpegts', '-i', 'pipe:0');
  return [...args, ...outputArgs(out)];
}

/**
 * The output half, shared by every source fed through ffmpeg (a pull, or an elementary stream a
 * driver writes to ffmpeg's stdin): input 0's video encoded at most once, written by the tee muxer
 * to the HLS directory (the process's working directory) and as FLV to stdout.
 */
export function outputArgs(out: PullOutput): string[] {
  const args = ['-map', '0:v:0'];
  if (out.audio === 'aac') args.push('-map', '0:a:0?', '-c:a', 'aac', '-b:a', '64k', '-ac', '1');
  else args.push('-an');
  if (out.transcode) {
    const t = out.transcode;
    args.push('-c:v', 'libx264', '-preset', t.preset, '-tune', 'zerolatency', '-profile:v', 'main', '-pix_fmt', 'yuv420p');
    args.push('-bf', '0', '-force_key_frames', 'expr:gte(t,n_forced*1)', '-sc_threshold', '0');
    args.push('-b:v', `${t.bitrateKbps}k`, '-maxrate', `${t.bitrateKbps}k`, '-bufsize', `${t.bitrateKbps}k`);
    if (t.height > 0) args.push('-vf', `scale=-2:'min(${t.height},ih)'`);
    // FLV needs the parameter sets up front, HLS joiners need them in band: both.
    args.push('-flags', '+global_header', '-x264-params', 'repeat-headers=1');
  } else {
    args.push('-c:v', 'copy', '-tag:v', '7');
  }
  const flags = ['delete_segments', 'temp_file', 'independent_segments', ...(out.hls.discontinuity ? ['discont_start'] : [])];
  const hls = [
    'f=hls',
    'onfail=abort',
    `hls_time=${out.hls.segmentSec}`,
    `hls_list_size=${out.hls.listSize}`,
    'hls_delete_threshold=2',
    `start_number=${out.hls.startNumber}`,
    `hls_flags=${flags.join('+')}`,
    'hls_segment_filename=seg%d.ts',
  ].join(':');
  args.push('-f', 'tee', `[${hls}]index.m3u8|[f=flv:onfail=abort:flvflags=no_duration_filesize]pipe\\:1`);
  return args;
}

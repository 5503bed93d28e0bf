import { createRequire } from 'node:module';

/**
 * node-media-server 4 is CommonJS without types and is embedded, not run as a server: its
 * BroadcastServer (GOP cache and fan-out) and FLV tag parser are used directly, so FLV viewers sit on
 * our HTTP port behind our stream tokens, and none of its listeners can call process.exit on a busy port.
 * These are the few members used, typed here.
 */
export interface NmsPacket {
  codec_type: number;
  flags: number;
  dts: number;
  pts: number;
}

export interface NmsSubscriber {
  id: string;
  ip: string;
  protocol: 'flv';
  streamPath: string;
  streamQuery: Record<string, string>;
  endTime: number;
  sendBuffer(buffer: Buffer): void;
  close(): void;
}

export interface NmsBroadcast {
  /** The FLV file header sent to each viewer first; its flags tell players which tracks to wait for. */
  flvHeader: Buffer;
  postPlay(session: NmsSubscriber): string | null;
  donePlay(session: NmsSubscriber): void;
  broadcastMessage(packet: NmsPacket): void;
}

interface NmsLogger {
  level: string;
  log(message: string, level?: string): void;
}

const require = createRequire(import.meta.url);
const BroadcastServer = require('node-media-server/src/server/broadcast_server.js') as new (streamPath: string) => NmsBroadcast;
const Flv = require('node-media-server/src/protocol/flv.js') as {
  parserTag(type: number, time: number, size: number, data: Buffer): NmsPacket;
  createHeader(hasAudio: boolean, hasVideo: boolean): Buffer;
};
/** node-media-server's packet flags: 3 is a video keyframe, 4 any other video frame. */
const KEYFRAME = 3;
const INTER_FRAME = 4;
const logger = require('node-media-server/src/core/logger.js') as NmsLogger;

/** A fan-out; node-media-server announces audio by default, which makes players wait for audio that may never come. */
export function createBroadcast(streamPath: string, hasAudio: boolean): NmsBroadcast {
  const b = new BroadcastServer(streamPath);
  b.flvHeader = Flv.createHeader(hasAudio, true);
  return b;
}

function flvPacket(type: number, timestamp: number, data: Buffer): NmsPacket {
  return Flv.parserTag(type, timestamp, data.length, data);
}

/**
 * Sends a decoder configuration tag (script data, AVC or AAC sequence header) to the broadcast's
 * viewers; node-media-server keeps it for viewers who join later. A keyframe is passed as an inter
 * frame: the bytes sent are the same, but node-media-server then never starts its GOP caches, which
 * would hold each GOP twice more (as FLV and as RTMP) next to the session's.
 */
export function broadcastTag(broadcast: NmsBroadcast, type: number, timestamp: number, data: Buffer): void {
  const packet = flvPacket(type, timestamp, data);
  if (packet.flags === KEYFRAME) packet.flags = INTER_FRAME;
  broadcast.broadcastMessage(packet);
}

/**
 * One FLV tag as a viewer receives it: the 11-byte tag header, the data, the previous-tag size.
 * Written here rather than by node-media-server's broadcastMessage for the live tags, which also
 * builds each tag as an RTMP message (no viewer here reads RTMP) and zero-fills the FLV one before
 * copying over it: at a hundred cameras that was a tenth of the gateway's CPU.
 */
export function flvMessage(type: number, timestamp: number, data: Buffer): Buffer {
  const size = data.length;
  const out = Buffer.allocUnsafe(11 + size + 4);
  out[0] = type;
  out[1] = (size >> 16) & 0xff;
  out[2] = (size >> 8) & 0xff;
  out[3] = size & 0xff;
  // The timestamp's low 24 bits, then its extension byte (bits 24-31).
  out[4] = (timestamp >> 16) & 0xff;
  out[5] = (timestamp >> 8) & 0xff;
  out[6] = timestamp & 0xff;
  out[7] = (timestamp >> 24) & 0xff;
  // Stream id: always 0.
  out[8] = 0;
  out[9] = 0;
  out[10] = 0;
  data.copy(out, 11);
  out.writeUInt32BE(11 + size, 11 + size);
  return out;
}

/** node-media-server prints to stdout with console.log; route its lines to our logger instead. */
export function routeNmsLogs(log: (level: string, message: string) => void): void {
  logger.log = (message: string, level = 'info') => log(level, message);
}

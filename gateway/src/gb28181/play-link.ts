import { parseGbUrl as parseRegistryGbUrl } from '../registry/url-policy.js';
import type { GbStreamMode } from '../store/types.js';
import type { RtpPortPool } from './media/receiver.js';
import type { SipDialog } from './sip/endpoint.js';

/**
 * What the live-view driver (play-driver.ts) needs of the GB service, kept apart so the stream
 * engine's driver context can name it without importing the service and everything behind it.
 */
export interface GbPlayLink {
  /** How to reach a registered device's media, or null when it is not registered (offline). */
  playTarget(deviceId: string): Promise<GbPlayTarget | null>;
  /** A fresh 10-digit live SSRC for the next INVITE (GB/T 28181 App. G: 0, domain digits 4-8, a counter). */
  nextSsrc(): string;
  /** INVITEs the channel; rejects with SipTimeoutError, SipStatusError, or a coded error when the device is gone. */
  invite(deviceId: string, channelId: string, sdp: string): Promise<SipDialog>;
  /** Sends BYE in the dialog once; later calls (and a BYE the device sent first) do nothing. Never rejects. */
  hangUp(dialog: SipDialog): Promise<void>;
  /** Calls back when the device reports MediaStatus 121 for the channel; returns the unsubscribe. */
  onMediaEnded(deviceId: string, channelId: string, cb: () => void): () => void;
  /** How long the INVITE waits for the device's final answer (gb28181.requestTimeoutMs). */
  readonly requestTimeoutMs: number;
  readonly log: { info(o: object, m: string): void; warn(o: object, m: string): void };
}

export interface GbPlayTarget {
  streamMode: GbStreamMode;
  /** The address the device is told to send RTP to (SDP c=), and that we listen on. */
  mediaAddress: string;
  /** Where the device's SIP comes from: RTP is taken from there (and from its answer's c=) only. */
  deviceAddress: string;
}

/** The GB part of the stream engine's driver context (streams/sources/driver.ts), wired by app.ts. */
export interface GbDriverContext {
  link: GbPlayLink;
  media: { host: string; portMin: number; portMax: number; firstPacketTimeoutMs: number; reorderWindow: number };
  /** Shared by every GB session: the RTP ports in gb28181.media.portMin..portMax. */
  ports: RtpPortPool;
  /** The gateway's own SIP id: the SDP's o= user. */
  ourId: string;
}

/** A GB channel's registry URL taken apart (the registry's one parser), with the stream number the SDP asks for. */
export function parseGbUrl(url: string): { deviceId: string; channelId: string; streamNumber: number } | null {
  const gb = parseRegistryGbUrl(url);
  return gb ? { deviceId: gb.deviceId, channelId: gb.channelId, streamNumber: gb.sub ? 1 : 0 } : null;
}

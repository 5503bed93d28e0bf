import { randomBytes, randomInt } from 'node:crypto';
import type { Socket } from 'node:dgram';
import { isIPv4 } from 'node:net';
import {
  RTCPeerConnection,
  RTCRtpCodecParameters,
  RtpHeader,
  RtpPacket,
  ntpTime,
  useOPUS,
  type RTCRtpSender,
  type RTCRtpTransceiver,
} from 'werift';
import type { StreamsConfig } from '../../streams/types.js';
import type { StreamLease } from '../stream-access.js';
import type { FeedSink, RtpFeed } from './feed.js';
import type { AccessUnit } from './h264.js';
import { announceCandidates, type CheckedOffer } from './sdp.js';

export type WebRtcConfig = StreamsConfig['webrtc'];

/** werift keeps this many sent packets for NACK retransmission (RTP_HISTORY_SIZE in 0.24.4). */
const NACK_HISTORY = 128;

/**
 * The parts of a connected werift 0.24.4 peer (pinned exactly in package.json) that the send path
 * uses directly. werift's own sendRtp costs twice as much per packet: two promise layers, header
 * extensions rebuilt, an NTP time read and bandwidth-estimation bookkeeping on every packet, none
 * of which a one-way camera stream needs. Retransmission on NACK and RTCP reports stay werift's.
 */
interface DirectPath {
  srtp: { encrypt(payload: Buffer, header: RtpHeader): Buffer };
  socket: Socket;
  address: string;
  port: number;
  consent(): boolean;
  history: RtpPacket[];
  stats: { packetCount: number; octetCount: number; rtpTimestamp: number; ntpTimestamp: bigint; runRtcp(): void };
}

interface WeriftConnectedSender {
  ssrc: number;
  codec?: { payloadType: number };
  rtpCache: RtpPacket[];
  dtlsTransport: {
    srtp?: DirectPath['srtp'];
    iceTransport: {
      connection: {
        nominated?: { protocol: { transport?: { socket?: Socket } }; remoteAddr: [string, number] };
        canSendApplicationData(): boolean;
      };
    };
  };
}

function directPath(sender: RTCRtpSender): DirectPath | null {
  const s = sender as unknown as WeriftConnectedSender & DirectPath['stats'];
  const srtp = s.dtlsTransport.srtp;
  const connection = s.dtlsTransport.iceTransport.connection;
  const pair = connection.nominated;
  const socket = pair?.protocol.transport?.socket;
  // A TURN-relayed or TCP pair has no plain UDP socket: werift's own path serves it.
  if (!srtp || !pair || !socket || typeof connection.canSendApplicationData !== 'function') return null;
  return {
    srtp,
    socket,
    address: pair.remoteAddr[0],
    port: pair.remoteAddr[1],
    consent: () => connection.canSendApplicationData(),
    history: s.rtpCache,
    stats: s,
  };
}

/** Where a join's time went, in ms since the offer arrived; null until reached. */
export interface JoinTimings {
  answer: number | null;
  iceConnected: number | null;
  dtlsConnected: number | null;
  firstPacket: number | null;
  firstKeyframe: number | null;
}

export interface PeerInit {
  cameraId: string;
  userId: string;
  lease: StreamLease;
  feed: RtpFeed;
  config: WebRtcConfig;
  /** The address the WHEP request arrived on: announced when no addresses are configured. */
  localAddress: string | null;
  onClosed(peer: WhepPeer, reason: string): void;
  /** The first keyframe went out: the join is complete. */
  onJoined(peer: WhepPeer): void;
}

/**
 * One WHEP viewer: a werift peer connection that sends the camera's H.264 and a reader on its
 * session. Owns its timers; one idempotent close releases the reader and the connection.
 */
export class WhepPeer implements FeedSink {
  readonly id = randomBytes(16).toString('base64url');
  readonly etag = `"${randomBytes(8).toString('hex')}"`;
  readonly createdAt = Date.now();
  readonly timings: JoinTimings = { answer: null, iceConnected: null, dtlsConnected: null, firstPacket: null, firstKeyframe: null };
  readonly pc: RTCPeerConnection;
  closed = false;
  packetsSent = 0;
  bytesSent = 0;
  private sender: RTCRtpSender | null = null;
  private direct: DirectPath | null = null;
  private payloadType = 96;
  private ssrc = 0;
  private connected = false;
  private waitingForKeyframe = true;
  /** The newest frame sent, by the packetizer's index. */
  private lastIndex = 0;
  private sequence = randomInt(0, 0x10000);
  private lastHeard = Date.now();
  private videoMid: string | null = null;
  private readonly timers: NodeJS.Timeout[] = [];

  constructor(private readonly init: PeerInit) {
    const cfg = init.config;
    this.pc = new RTCPeerConnection({
      codecs: {
        video: [
          new RTCRtpCodecParameters({
            mimeType: 'video/H264',
            clockRate: 90_000,
            rtcpFeedback: [{ type: 'nack' }, { type: 'nack', parameter: 'pli' }],
            parameters: 'packetization-mode=1;level-asymmetry-allowed=1',
          }),
        ],
        // Audio is not sent yet; accepting Opus lets an offer with an audio m-line negotiate.
        audio: [useOPUS()],
      },
      headerExtensions: { video: [], audio: [] },
      iceUseIpv4: true,
      iceUseIpv6: false,
      iceServers: cfg.iceServers.map((s) => ({ urls: s.urls, username: s.username, credential: s.credential })),
      icePortRange: cfg.portMin ? [cfg.portMin, cfg.portMax] : undefined,
      iceInterfaceAddresses: cfg.bindAddress ? { udp4: cfg.bindAddress } : undefined,
      iceAdditionalHostAddresses: cfg.bindAddress ? [cfg.bindAddress] : undefined,
      bundlePolicy: 'max-bundle',
    });
    this.pc.iceConnectionStateChange.subscribe((state) => {
      if (state === 'connected' && this.timings.iceConnected === null) this.timings.iceConnected = this.since();
    });
    this.pc.connectionStateChange.subscribe((state) => {
      if (state === 'connected') this.onConnected();
      else if (state === 'failed' || state === 'closed') this.close(`connection ${state}`);
    });
    this.timers.push(
      setTimeout(() => {
        if (!this.connected) this.close('ICE/DTLS did not complete in time (streams.webrtc.connectTimeoutMs)');
      }, cfg.connectTimeoutMs),
    );
    const check = setInterval(() => {
      if (this.connected && Date.now() - this.lastHeard > cfg.idleTimeoutMs) this.close('the viewer went silent (streams.webrtc.idleTimeoutMs)');
    }, Math.max(250, cfg.idleTimeoutMs / 4));
    this.timers.push(check);
    init.feed.peers.add(this);
  }

  get cameraId() {
    return this.init.cameraId;
  }

  get userId() {
    return this.init.userId;
  }

  get session() {
    return this.init.lease.session;
  }

  private since() {
    return Date.now() - this.createdAt;
  }

  /** Applies the offer and returns the answer, with gathering complete and only announced host candidates. */
  async answer(offer: CheckedOffer): Promise<string> {
    this.videoMid = offer.videoMid;
    await this.pc.setRemoteDescription({ type: 'offer', sdp: offer.sdp });
    const video = this.pc.getTransceivers().find((t: RTCRtpTransceiver) => t.kind === 'video');
    if (!video) throw new Error('the offer produced no video transceiver');
    video.setDirection('sendonly');
    this.sender = video.sender;
    this.sender.onRtcp.subscribe(() => {
      this.lastHeard = Date.now();
    });
    for (const t of this.pc.getTransceivers()) if (t !== video) t.setDirection('inactive');
    await this.pc.setLocalDescription(await this.pc.createAnswer());
    if (this.pc.iceGatheringState !== 'complete') await this.pc.iceGatheringStateChange.watch((s) => s === 'complete');
    const sdp = this.pc.localDescription?.sdp;
    if (!sdp) throw new Error('no local description');
    const cfg = this.init.config;
    const arrivedOn = this.init.localAddress && isIPv4(this.init.localAddress) ? this.init.localAddress : null;
    // Without an IPv4 address to name, the one host candidate werift picked is announced as it is.
    const announced = cfg.announcedAddresses.length ? cfg.announcedAddresses : [cfg.bindAddress || arrivedOn].filter((a): a is string => !!a);
    this.timings.answer = this.since();
    return announceCandidates(sdp, announced, cfg.bindAddress || null);
  }

  /** A trickled remote candidate (WHEP PATCH); a fragment without a=mid means the offer's video section. */
  async addCandidate(candidate: string, mid: string | null) {
    await this.pc.addIceCandidate({ candidate, sdpMid: mid ?? this.videoMid ?? undefined });
  }

  private onConnected() {
    if (this.connected || this.closed) return;
    this.connected = true;
    this.lastHeard = Date.now();
    this.timings.dtlsConnected = this.since();
    if (this.sender) {
      this.direct = directPath(this.sender);
      const s = this.sender as unknown as WeriftConnectedSender;
      this.payloadType = s.codec?.payloadType ?? this.payloadType;
      this.ssrc = s.ssrc;
    }
    if (!this.init.config.keyframeCache) return;
    const through = this.init.feed.join(this);
    if (through === null) return;
    // The burst starts on a keyframe and holds every live frame up to `through`.
    this.waitingForKeyframe = false;
    this.lastIndex = through;
  }

  resync() {
    this.waitingForKeyframe = true;
  }

  sendCached(au: AccessUnit, timestamp: number) {
    if (this.closed || this.waitingForKeyframe) return;
    this.send(au, timestamp);
  }

  sendLive(au: AccessUnit) {
    // A peer that connected while frames were queued gets them in its join burst.
    if (!this.connected || this.closed || au.index <= this.lastIndex) return;
    if (this.waitingForKeyframe) {
      if (!au.keyframe) return;
      this.waitingForKeyframe = false;
    }
    this.lastIndex = au.index;
    this.send(au, au.timestamp);
  }

  /** How packets leave: straight to the socket, or through werift's sender (a relayed or TCP pair). */
  get sendPath(): 'direct' | 'werift' | null {
    if (!this.connected) return null;
    return this.direct ? 'direct' : 'werift';
  }

  private send(au: AccessUnit, timestamp: number) {
    const sender = this.sender;
    if (!sender) return;
    const joined = au.keyframe && this.timings.firstKeyframe === null;
    if (this.timings.firstKeyframe === null) {
      // One reading for both: two could straddle a millisecond, and a first packet that is the
      // keyframe must read as exactly that.
      const now = this.since();
      if (this.timings.firstPacket === null) this.timings.firstPacket = now;
      if (joined) this.timings.firstKeyframe = now;
    }
    const ts = timestamp >>> 0;
    if (this.direct) this.sendDirect(this.direct, au, ts);
    else this.sendThroughWerift(sender, au, ts);
    this.packetsSent += au.payloads.length;
    this.bytesSent += au.bytes;
    this.session.countSent(au.bytes);
    if (joined) this.init.onJoined(this);
  }

  private sendDirect(path: DirectPath, au: AccessUnit, ts: number) {
    // RFC 7675: without fresh consent nothing may be sent on the pair; the idle timeout follows.
    if (!path.consent()) return;
    const last = au.payloads.length - 1;
    for (let i = 0; i <= last; i++) {
      this.sequence = (this.sequence + 1) & 0xffff;
      const payload = au.payloads[i]!;
      const header = new RtpHeader({ sequenceNumber: this.sequence, timestamp: ts, marker: i === last, payloadType: this.payloadType, ssrc: this.ssrc });
      path.history[this.sequence % NACK_HISTORY] = new RtpPacket(header, payload);
      // No callback: a datagram that cannot be sent is lost like any other, and NACK recovers it.
      path.socket.send(path.srtp.encrypt(payload, header), path.port, path.address);
    }
    // Sender reports map RTP time to wall time; once per frame is as precise as they need.
    const stats = path.stats;
    stats.packetCount = (stats.packetCount + au.payloads.length) >>> 0;
    stats.octetCount = (stats.octetCount + au.bytes) >>> 0;
    stats.rtpTimestamp = ts;
    stats.ntpTimestamp = ntpTime();
    stats.runRtcp();
  }

  private sendThroughWerift(sender: RTCRtpSender, au: AccessUnit, ts: number) {
    const last = au.payloads.length - 1;
    for (let i = 0; i <= last; i++) {
      this.sequence = (this.sequence + 1) & 0xffff;
      const header = new RtpHeader({ sequenceNumber: this.sequence, timestamp: ts, marker: i === last, payloadType: 96 });
      // A send fails only for a peer that is going away; its close follows from the state change.
      sender.sendRtp(new RtpPacket(header, au.payloads[i]!)).catch(() => {});
    }
  }

  /** Idempotent: stops the timers, leaves the feed, releases the reader and closes the connection. */
  close(reason: string) {
    if (this.closed) return;
    this.closed = true;
    for (const t of this.timers) clearTimeout(t);
    this.init.feed.peers.delete(this);
    this.init.lease.release();
    this.pc.close().catch(() => {});
    this.init.onClosed(this, reason);
  }
}

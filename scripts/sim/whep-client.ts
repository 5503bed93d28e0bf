import { RTCPeerConnection, RTCRtpCodecParameters, type RtpPacket } from 'werift';

/**
 * A WHEP viewer for tests and benchmarks: negotiates with a gateway over HTTP, receives H.264 over
 * werift, reassembles access units and records where the join's time went.
 */

/** Milliseconds since the offer was created; null until reached. */
export interface ClientTimings {
  offerAnswer: number | null;
  iceConnected: number | null;
  dtlsConnected: number | null;
  firstPacket: number | null;
  firstKeyframe: number | null;
}

export interface WhepViewer {
  resource: string;
  /** The gateway's SDP answer. */
  answer: string;
  timings: ClientTimings;
  packets: number;
  bytes: number;
  frames: number;
  keyframes: number;
  /** Whether the first complete frame received was a keyframe. */
  firstFrameWasKeyframe: boolean | null;
  /** The first keyframe as Annex B, with its parameter sets, for a decoder to check. */
  firstKeyframe: Buffer | null;
  pc: RTCPeerConnection;
  /** Hangs up properly: DELETE on the resource, then closes the connection. */
  close(): Promise<void>;
  /** Vanishes: stops answering without a word, as a crashed browser would. */
  vanish(): Promise<void>;
}

const START_CODE = Buffer.from([0, 0, 0, 1]);

/** Rebuilds access units from RFC 6184 payloads (single NAL, STAP-A, FU-A), one per marker bit. */
export class H264Depacketizer {
  private nals: Buffer[] = [];
  private fu: Buffer[] | null = null;
  private broken = false;
  private lastSeq: number | null = null;

  /** Returns the Annex B access unit completed by this packet, or null. A frame with a gap is dropped. */
  push(packet: RtpPacket): { data: Buffer; keyframe: boolean } | null {
    const seq = packet.header.sequenceNumber;
    if (this.lastSeq !== null && seq !== ((this.lastSeq + 1) & 0xffff)) this.broken = true;
    this.lastSeq = seq;
    const p = packet.payload;
    const type = p[0]! & 0x1f;
    if (type === 24) {
      for (let pos = 1; pos + 2 <= p.length; ) {
        const n = p.readUInt16BE(pos);
        this.nals.push(p.subarray(pos + 2, pos + 2 + n));
        pos += 2 + n;
      }
    } else if (type === 28) {
      const start = (p[1]! & 0x80) !== 0;
      const end = (p[1]! & 0x40) !== 0;
      if (start) this.fu = [Buffer.from([(p[0]! & 0xe0) | (p[1]! & 0x1f)])];
      if (this.fu) this.fu.push(p.subarray(2));
      if (end && this.fu) {
        this.nals.push(Buffer.concat(this.fu));
        this.fu = null;
      }
    } else if (type >= 1 && type <= 23) {
      this.nals.push(p);
    }
    if (!packet.header.marker) return null;
    const nals = this.nals;
    const broken = this.broken;
    this.nals = [];
    this.fu = null;
    this.broken = false;
    if (broken || nals.length === 0) return null;
    const keyframe = nals.some((n) => (n[0]! & 0x1f) === 5);
    return { data: Buffer.concat(nals.flatMap((n) => [START_CODE, n])), keyframe };
  }
}

export interface WhepOptions {
  /** Keep every reassembled frame's size; off for load generation. */
  onFrame?: (frame: { data: Buffer; keyframe: boolean }) => void;
  /** Skip reassembly and only count packets: the cheapest receiver for load tests. */
  countOnly?: boolean;
}

/** POSTs an offer to a WHEP endpoint (an absolute URL) with the stream token, and starts receiving. */
export async function whepConnect(url: string, token: string, opts: WhepOptions = {}): Promise<WhepViewer> {
  const t0 = performance.now();
  const at = () => Math.round((performance.now() - t0) * 10) / 10;
  const pc = new RTCPeerConnection({
    codecs: {
      video: [
        new RTCRtpCodecParameters({
          mimeType: 'video/H264',
          clockRate: 90_000,
          rtcpFeedback: [{ type: 'nack' }, { type: 'nack', parameter: 'pli' }],
          parameters: 'profile-level-id=42e01f;packetization-mode=1;level-asymmetry-allowed=1',
        }),
      ],
    },
    headerExtensions: { video: [], audio: [] },
    iceUseIpv6: false,
    iceAdditionalHostAddresses: ['127.0.0.1'],
  });
  const timings: ClientTimings = { offerAnswer: null, iceConnected: null, dtlsConnected: null, firstPacket: null, firstKeyframe: null };
  const viewer: WhepViewer = {
    resource: '',
    answer: '',
    timings,
    packets: 0,
    bytes: 0,
    frames: 0,
    keyframes: 0,
    firstFrameWasKeyframe: null,
    firstKeyframe: null,
    pc,
    close: async () => {
      if (viewer.resource) await fetch(viewer.resource, { method: 'DELETE', headers: { authorization: `Bearer ${token}` } }).catch(() => {});
      await pc.close();
    },
    vanish: async () => {
      // Closing the sockets without DTLS close_notify or DELETE: the gateway hears nothing more.
      for (const t of pc.iceTransports) await t.connection.close().catch(() => {});
    },
  };
  pc.iceConnectionStateChange.subscribe((s) => {
    if (s === 'connected' && timings.iceConnected === null) timings.iceConnected = at();
  });
  pc.connectionStateChange.subscribe((s) => {
    if (s === 'connected' && timings.dtlsConnected === null) timings.dtlsConnected = at();
  });
  const depacketizer = new H264Depacketizer();
  pc.addTransceiver('video', { direction: 'recvonly' });
  pc.onTrack.subscribe((track) => {
    track.onReceiveRtp.subscribe((rtp) => {
      viewer.packets++;
      viewer.bytes += rtp.payload.length;
      if (timings.firstPacket === null) timings.firstPacket = at();
      if (opts.countOnly && timings.firstKeyframe !== null) return;
      const frame = depacketizer.push(rtp);
      if (!frame) return;
      viewer.frames++;
      if (viewer.firstFrameWasKeyframe === null) viewer.firstFrameWasKeyframe = frame.keyframe;
      if (frame.keyframe) {
        viewer.keyframes++;
        if (timings.firstKeyframe === null) {
          timings.firstKeyframe = at();
          viewer.firstKeyframe = Buffer.from(frame.data);
        }
      }
      opts.onFrame?.(frame);
    });
  });
  await pc.setLocalDescription(await pc.createOffer());
  if (pc.iceGatheringState !== 'complete') await pc.iceGatheringStateChange.watch((s) => s === 'complete');
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/sdp', authorization: `Bearer ${token}` },
    body: pc.localDescription!.sdp,
  });
  const body = await res.text();
  if (res.status !== 201) {
    await pc.close();
    throw Object.assign(new Error(`WHEP ${res.status}: ${body}`), { status: res.status, body });
  }
  timings.offerAnswer = at();
  viewer.answer = body;
  viewer.resource = new URL(res.headers.get('location')!, url).toString();
  await pc.setRemoteDescription({ type: 'answer', sdp: body });
  return viewer;
}

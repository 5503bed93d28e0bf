import { GatewayError, reasoned } from '../errors.js';
import { EsIngest } from '../streams/sources/es-ingest.js';
import type { DriverAttempt, DriverContext, DriverEvents, SourceDriver } from '../streams/sources/driver.js';
import type { ResolvedSource } from '../streams/types.js';
import type { GbStreamMode } from '../store/types.js';
import { PsDemuxer } from './media/ps-demux.js';
import { openRtpReceiver, type RtpReceiver } from './media/receiver.js';
import { parseGbUrl, type GbDriverContext } from './play-link.js';
import { SipStatusError, SipTimeoutError, type SipDialog } from './sip/endpoint.js';

/** Where a start got to: the log line and the error of a failure name it. */
type Step = 'device' | 'port' | 'ingest' | 'invite' | 'rtp' | 'video' | 'live';

/**
 * One live-view attempt of a GB/T 28181 channel (GB/T 28181 §9.2, App. G): an RTP port from the
 * range, a receiver listening on it before anything is asked (TCP passive: the device connects
 * right after the ACK), the ffmpeg ingest, then INVITE with our SDP → 200 → ACK. PS over RTP is
 * demuxed into access units that the ingest's ffmpeg turns into the session's HLS and FLV.
 * Every failure says which step failed and what was seen, since "收流超时" without a reason is what
 * operators of other platforms complain about most. The session manager already keeps one session
 * per camera and profile, so a channel gets one INVITE however many watch it.
 */
export class GbPlayDriver implements SourceDriver {
  private step: Step = 'device';
  private closedFor: string | null = null;
  private closing: Promise<void> | null = null;
  private receiver: RtpReceiver | null = null;
  private ingest: EsIngest | null = null;
  private demuxer: PsDemuxer | null = null;
  private inviting: Promise<SipDialog | null> | null = null;
  private dialog: SipDialog | null = null;
  private ssrc = '';
  private deviceAddress = '';
  private mediaAddress = '';
  private ackedAt: number | null = null;
  private firstPacketTimer: NodeJS.Timeout | null = null;
  private unwatch: (() => void) | null = null;
  private readonly target: { deviceId: string; channelId: string; streamNumber: number } | null;

  constructor(
    private readonly ctx: DriverContext,
    private readonly gb: GbDriverContext,
    private readonly source: ResolvedSource,
    private readonly attempt: DriverAttempt,
    private readonly events: DriverEvents,
  ) {
    this.target = parseGbUrl(source.url);
  }

  get pid(): number | null {
    return this.ingest?.pid ?? null;
  }

  async start(): Promise<void> {
    const target = this.target;
    if (!target) throw new GatewayError('GW_ERR_INTERNAL', `"${this.source.url}" is not a gb28181://<device>/<channel> URL`);
    const { deviceId, channelId } = target;
    const playTarget = await this.gb.link.playTarget(deviceId);
    if (!playTarget) throw this.failure(reasoned('GW_ERR_CAMERA_UNREACHABLE', 'deviceOffline', { device: deviceId }, `GB device ${deviceId} is not registered (offline)`));
    if (this.closedFor !== null) return;
    const mode = playTarget.streamMode;
    this.mediaAddress = playTarget.mediaAddress;
    this.deviceAddress = playTarget.deviceAddress;
    this.ssrc = this.gb.link.nextSsrc();

    this.step = 'port';
    this.demuxer = new PsDemuxer((unit) => this.ingest?.push(unit), { lendUnits: true });
    // UDP and TCP passive listen before the INVITE: a device may send (or connect) as soon as it has answered.
    if (mode !== 'tcp-active') await this.listen(mode);
    if (this.closedFor !== null) return;

    this.step = 'ingest';
    this.ingest = new EsIngest(this.ctx, this.attempt, this.events);
    await this.ingest.start();
    if (this.closedFor !== null) return;

    this.step = 'invite';
    // TCP active: we dial the device, so our m= port says nothing (9, discard, by convention).
    const sdp = offer({ ourId: this.gb.ourId, address: this.mediaAddress, port: this.receiver?.port ?? 9, mode, ssrc: this.ssrc, streamNumber: target.streamNumber });
    this.inviting = this.gb.link.invite(deviceId, channelId, sdp).then(
      (dialog) => (this.dialog = dialog),
      (e: unknown) => {
        throw this.inviteError(e);
      },
    );
    const dialog = await this.inviting;
    if (this.closedFor !== null || !dialog) return;
    this.ackedAt = Date.now();
    // A platform may send from a media server of its own, which its answer names.
    const answered = answerAddress(dialog.remoteSdp);
    if (answered) this.receiver?.allowSender(answered.address);
    dialog.onBye(() => this.fail(reasoned('GW_ERR_CAMERA_UNREACHABLE', 'deviceBye', {}, 'the device ended the stream (BYE)')));
    this.unwatch = this.gb.link.onMediaEnded(deviceId, channelId, () =>
      this.fail(reasoned('GW_ERR_CAMERA_UNREACHABLE', 'mediaEnded', {}, 'the device reported that the stream ended (MediaStatus 121)')),
    );
    if (mode === 'tcp-active') await this.dial(dialog);
    if (this.closedFor !== null) return;

    this.step = 'rtp';
    const ms = this.gb.media.firstPacketTimeoutMs;
    this.firstPacketTimer = setTimeout(() => {
      this.firstPacketTimer = null;
      if (this.closedFor === null && (this.receiver?.stats.packets ?? 0) === 0) this.fail(this.noPackets(ms));
    }, ms).unref();
  }

  /** A receiver on a free port of the range (ports another program holds are skipped); tcp-active dials `remote`. */
  private async listen(mode: GbStreamMode, remote?: { address: string; port: number }) {
    try {
      this.receiver = await openRtpReceiver(this.gb.ports, {
        mode,
        host: this.gb.media.host,
        expectedSsrc: Number.parseInt(this.ssrc, 10),
        reorderWindow: this.gb.media.reorderWindow,
        senders: remote ? [this.deviceAddress, remote.address] : [this.deviceAddress],
        ...(remote ? { remote } : {}),
      });
    } catch (e) {
      const { portMin, portMax } = this.gb.media;
      if (mode === 'tcp-active') throw this.failure(new GatewayError('GW_ERR_CAMERA_UNREACHABLE', `cannot connect to the device's media at ${remote?.address}:${remote?.port}: ${(e as Error).message}`));
      throw this.failure(new GatewayError('GW_ERR_UNAVAILABLE', `cannot open an RTP receiver in ${portMin}-${portMax} (gb28181.media.portMin/portMax): ${(e as Error).message}`));
    }
    const receiver = this.receiver;
    // A close() that ran while the port was being opened did not see this receiver.
    if (this.closedFor !== null) return void (await receiver.close());
    // The bitrate counts what ffmpeg puts out (EsIngest), as for every other source.
    receiver.on('payload', (payload) => {
      if (this.closedFor === null) this.demuxer!.push(payload);
    });
    // A gap in the sequence: the PS parser looks for the next pack start rather than join two halves.
    receiver.on('lost', () => this.demuxer!.resync());
    receiver.on('end', (why) => this.fail(reasoned('GW_ERR_CAMERA_UNREACHABLE', 'deviceBye', { detail: why }, `the device ended the stream: ${why}`)));
  }

  /** TCP active: we connect to the address and port the device's answer gave, once the network policy allows it. */
  private async dial(dialog: SipDialog) {
    const remote = answerAddress(dialog.remoteSdp) ?? { address: dialog.peer.address, port: 0 };
    if (!remote.port) throw this.failure(new GatewayError('GW_ERR_CAMERA_UNREACHABLE', 'the device answered the INVITE for TCP active without a media port (m=)'));
    const verdict = await this.ctx.checkConnect(remote.address);
    if ('refused' in verdict) throw this.failure(reasoned('GW_ERR_FORBIDDEN', 'address', {}, `the device's media address is not allowed: ${verdict.refused}`));
    if (this.closedFor !== null) return;
    await this.listen('tcp-active', remote);
  }

  private inviteError(e: unknown): GatewayError {
    if (e instanceof SipTimeoutError) {
      const ms = this.gb.link.requestTimeoutMs;
      return this.failure(reasoned('GW_ERR_CAMERA_UNREACHABLE', 'inviteTimeout', { ms }, `the device did not answer INVITE within ${seconds(ms)}`));
    }
    if (e instanceof SipStatusError) {
      return this.failure(reasoned('GW_ERR_CAMERA_UNREACHABLE', 'inviteRefused', { status: e.status, phrase: e.reason }, `the device refused the INVITE: ${e.status} ${e.reason}`));
    }
    return this.failure(e instanceof GatewayError ? e : new GatewayError('GW_ERR_CAMERA_UNREACHABLE', `INVITE failed: ${(e as Error).message}`));
  }

  /** Nothing accepted on the port: either nothing came, or only packets of another SSRC did. */
  private noPackets(ms: number): GatewayError {
    const wrong = this.receiver?.stats.wrongSsrc;
    if (wrong && wrong.count > 0) {
      const ssrc = ssrcText(wrong.ssrc);
      return reasoned('GW_ERR_CAMERA_UNREACHABLE', 'wrongSsrc', { ssrc, expected: this.ssrc }, `RTP arrived with SSRC ${ssrc}, expected ${this.ssrc}`);
    }
    const port = this.receiver?.port ?? 0;
    return reasoned(
      'GW_ERR_CAMERA_UNREACHABLE',
      'noRtp',
      { port, ms, address: this.mediaAddress },
      `no RTP on port ${port} within ${seconds(ms)} (the device was told to send to ${this.mediaAddress}:${port}: check routing/NAT)`,
    );
  }

  timedOut(kind: 'start' | 'stall', ms: number): GatewayError {
    if (kind === 'stall') {
      return this.failure(reasoned('GW_ERR_CAMERA_UNREACHABLE', 'stalled', { ms }, `no video for ${seconds(ms)} (${this.receiver?.stats.packets ?? 0} RTP packets in all)`));
    }
    if (this.dialog === null) {
      if (this.step === 'invite') return this.failure(reasoned('GW_ERR_CAMERA_UNREACHABLE', 'inviteTimeout', { ms }, `the device did not answer INVITE within ${seconds(ms)}`));
      return this.failure(reasoned('GW_ERR_STREAM_TIMEOUT', 'start', { ms }, `the start did not get past ${this.step} within ${seconds(ms)}`));
    }
    if ((this.receiver?.stats.packets ?? 0) === 0) return this.failure(this.noPackets(this.ackedAt ? Date.now() - this.ackedAt : ms));
    this.step = 'video';
    const units = this.demuxer?.stats.units ?? 0;
    const detail = units === 0 ? 'no H.264/H.265 access unit in the PS stream' : `${units} access units reached the decoder but no frame came out`;
    return this.failure(reasoned('GW_ERR_CAMERA_UNREACHABLE', 'noVideo', { detail }, `RTP arrived but no decodable video (${detail})`));
  }

  /** Logs the failure with the step it happened at, and hands it back to throw or report. */
  private failure(error: GatewayError): GatewayError {
    this.gb.link.log.warn(
      { camera: this.source.cameraId, device: this.target?.deviceId, channel: this.target?.channelId, step: this.step, port: this.receiver?.port, ssrc: this.ssrc || undefined, code: error.code },
      `GB live view failed at ${this.step}: ${error.message}`,
    );
    return error;
  }

  private fail(error: GatewayError) {
    if (this.closedFor !== null) return;
    this.events.failed(this.failure(error));
  }

  close(reason: string): Promise<void> {
    this.closedFor ??= reason;
    return (this.closing ??= (async () => {
      if (this.firstPacketTimer) clearTimeout(this.firstPacketTimer);
      this.unwatch?.();
      const dialog = this.dialog ?? (await this.inviting?.catch(() => null)) ?? null;
      if (dialog) await this.gb.link.hangUp(dialog);
      // After the BYE, so the device has stopped sending before the port can go to another session.
      await this.receiver?.close().catch(() => undefined);
      await this.ingest?.close(reason);
    })());
  }
}

/** Our SDP offer (GB/T 28181 App. G): where to send, PS on 96 and H.264 on 98, the SSRC in y=. */
export function offer(p: { ourId: string; address: string; port: number; mode: GbStreamMode; ssrc: string; streamNumber: number }): string {
  const tcp = p.mode !== 'udp';
  const lines = [
    'v=0',
    `o=${p.ourId} 0 0 IN IP4 ${p.address}`,
    's=Play',
    `c=IN IP4 ${p.address}`,
    't=0 0',
    `m=video ${p.port} ${tcp ? 'TCP/RTP/AVP' : 'RTP/AVP'} 96 98`,
    'a=recvonly',
    'a=rtpmap:96 PS/90000',
    'a=rtpmap:98 H264/90000',
    // Who opens the TCP connection, from our side: passive = we listen (the device connects), active = we dial. Never on UDP.
    ...(tcp ? [`a=setup:${p.mode === 'tcp-passive' ? 'passive' : 'active'}`, 'a=connection:new'] : []),
    ...(p.streamNumber ? [`a=streamnumber:${p.streamNumber}`] : []),
    `y=${p.ssrc}`,
  ];
  return lines.join('\r\n') + '\r\n';
}

/** The address and port in the device's SDP answer (c= and m=video). */
export function answerAddress(sdp: string): { address: string; port: number } | null {
  const c = /^c=IN IP[46] (\S+)/m.exec(sdp);
  const m = /^m=video (\d+)/m.exec(sdp);
  return c ? { address: c[1]!, port: m ? Number(m[1]) : 0 } : null;
}

const ssrcText = (ssrc: number) => String(ssrc).padStart(10, '0');
const seconds = (ms: number) => `${Math.round(ms / 100) / 10} s`;

/** The driver factory's GB case (streams/sources/index.ts): refused at once when the gateway runs without the SIP server. */
export function gbPlayDriver(ctx: DriverContext, source: ResolvedSource, attempt: DriverAttempt, events: DriverEvents): SourceDriver {
  if (!ctx.gb28181) throw new GatewayError('GW_ERR_UNAVAILABLE', 'this is a GB/T 28181 channel and the SIP server is off (gb28181.enabled)');
  return new GbPlayDriver(ctx, ctx.gb28181, source, attempt, events);
}

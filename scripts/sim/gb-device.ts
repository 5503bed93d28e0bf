/**
 * A simulated GB/T 28181 device or lower platform, for tests, benchmarks and the demo: it registers
 * to a SIP server with digest, sends keepalives, answers Catalog (several MESSAGEs, GB2312 names),
 * DeviceInfo, DeviceStatus and SUBSCRIBE Catalog (with NOTIFY on the changes it is told to make),
 * answers INVITE and sends PS over RTP from the pre-encoded clips in real time (UDP, TCP passive or
 * TCP active), records PTZ commands, and misbehaves on demand (GbSimFaults).
 *
 *   const dev = new GbSimPlatform({ id, password, server: { address, port, id: gatewayId }, channels: 300, live: 30 });
 *   await dev.start();   // listens, registers, keeps alive
 *   ...
 *   await dev.stop();    // ends the streams, unregisters, closes
 *
 * It speaks through the gateway's own SIP endpoint (gateway/src/gb28181/sip) and PS muxer
 * (media/ps-mux.ts), but writes and reads its XML by hand, so a bug in the gateway's MANSCDP code
 * is not mirrored here.
 */
import { randomBytes } from 'node:crypto';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { EventEmitter } from 'node:events';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { XMLParser } from 'fast-xml-parser';
import iconv from 'iconv-lite';
import { digestResponse, parseDigestParams } from '../../gateway/src/gb28181/sip/digest.js';
import { SipEndpoint } from '../../gateway/src/gb28181/sip/endpoint.js';
import { header, parseNameAddr, sipUser, type SipHeaders, type SipRequest, type SipResponse } from '../../gateway/src/gb28181/sip/message.js';
import { SipTransport, type SipPeer } from '../../gateway/src/gb28181/sip/transport.js';
import { psPack, rfc4571, rtpPackets } from '../../gateway/src/gb28181/media/ps-mux.js';
import { annexBFrames as framesOf, ensureClip, type Clip, type ClipKind } from './clips.js';

export interface GbSimServer {
  address: string;
  port: number;
  /** The upper platform's 20-digit id. */
  id: string;
  /** Its SIP domain; the first 10 digits of its id when absent. */
  domain?: string;
}

export interface GbSimChannel {
  id: string;
  name: string;
  /** A virtual organisation (216) or the device itself. */
  parentId?: string;
  businessGroupId?: string;
  civilCode?: string;
  address?: string;
  status: 'ON' | 'OFF';
  /** Answers INVITE with video; a channel that is not live refuses with 480. */
  live: boolean;
  longitude?: number;
  latitude?: number;
  /** 1 dome (PTZ), 3 fixed box camera. */
  ptzType?: 1 | 2 | 3;
  clip?: ClipKind;
  /** The clip of the sub-stream (a=streamnumber:1). */
  subClip?: ClipKind;
}

/** A directory item: a business group (type 215) or a virtual organisation (216). */
export interface GbSimGroup {
  id: string;
  name: string;
  parentId?: string;
  businessGroupId?: string;
}

export interface GbSimFaults {
  /** Keepalive MESSAGEs are sent (false = the device goes quiet but stays "registered" on its side). */
  keepalives: boolean;
  /** INVITE is answered 200 OK but no RTP follows. */
  noMedia: boolean;
  /** RTP carries another SSRC than the one in y=. */
  wrongSsrc: boolean;
  /** Every XML body the device sends is cut short (not well-formed). */
  malformedXml: boolean;
  /** Every answer (to MESSAGE, SUBSCRIBE and INVITE) waits this long first. */
  delayMs: number;
  /** INVITE is answered with this status instead of 200. */
  refuseInvite: { status: number; reason: string } | null;
}

export interface GbSimDeviceOptions {
  id: string;
  password: string;
  server: GbSimServer;
  /** SIP transport to the server. */
  transport?: 'udp' | 'tcp';
  /** Local address to bind SIP and media sockets (and to put in SDP). */
  host?: string;
  name?: string;
  manufacturer?: string;
  model?: string;
  firmware?: string;
  /** Asked for in REGISTER; refreshed at two thirds of what the server grants. */
  expiresSec?: number;
  keepaliveIntervalMs?: number;
  /** Catalog items per Response MESSAGE. */
  catalogPageSize?: number;
  encoding?: 'GB2312' | 'UTF-8';
  groups?: GbSimGroup[];
  /** A device without channels announces itself as its only channel. */
  channels?: GbSimChannel[];
  clip?: ClipKind;
  subClip?: ClipKind;
  requestTimeoutMs?: number;
  maxMessageBytes?: number;
  faults?: Partial<GbSimFaults>;
  log?: (msg: string) => void;
}

export interface GbSimPtzCommand {
  channelId: string;
  ptzCmd: string;
  sn: number | null;
  at: number;
}

export interface GbSimStreamInfo {
  callId: string;
  channelId: string;
  /** As the gateway names it: udp, tcp-passive (the device connects), tcp-active (the device listens). */
  mode: 'udp' | 'tcp-passive' | 'tcp-active';
  /** The y= SSRC (10 digits), as negotiated. */
  ssrc: string;
  remote: { address: string; port: number };
  /** The device's own media port (put in the 200 OK's m=). */
  localPort: number;
  streamNumber: number;
  acked: boolean;
  frames: number;
  packets: number;
  bytes: number;
}

export class GbSimRegisterError extends Error {
  constructor(
    readonly status: number,
    readonly reason: string,
  ) {
    super(`REGISTER answered ${status} ${reason}`);
  }
}

const XML_CONTENT_TYPE = 'Application/MANSCDP+xml';
const FPS = 25;
const FRAME_TICKS = 90_000 / FPS;
/** A TCP media connection backed up beyond this drops frames up to the next keyframe, as a device would. */
const MAX_TCP_BACKLOG = 2 * 1024 * 1024;
/** GB/T 28181 App. D: the TCP media client retries at least 3 times at ≥ 1 s intervals. */
const TCP_CONNECT_TRIES = 4;
const TCP_RETRY_MS = 1_000;
const UNREGISTER_WAIT_MS = 2_000;
const DEFAULT_FAULTS: GbSimFaults = { keepalives: true, noMedia: false, wrongSsrc: false, malformedXml: false, delayMs: 0, refuseInvite: null };

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const hex = (bytes: number) => randomBytes(bytes).toString('hex');

export class GbSimDevice extends EventEmitter {
  readonly id: string;
  readonly faults: GbSimFaults;
  /** PTZCmd values received, oldest first (DeviceControl MESSAGEs). */
  readonly ptzCommands: GbSimPtzCommand[] = [];
  /** The `Date` of the last 200 OK to REGISTER (the server's clock). */
  serverDate: string | null = null;
  registered = false;
  /** Seconds the server granted in its last 200 OK to REGISTER. */
  grantedExpiresSec: number | null = null;

  protected readonly opts: GbSimDeviceOptions;
  private readonly serverDomain: string;
  private readonly serverPeer: SipPeer;
  private readonly groups = new Map<string, GbSimGroup>();
  private readonly channels = new Map<string, GbSimChannel>();
  private readonly streams = new Map<string, GbSimStream>();
  private transport: SipTransport | null = null;
  private endpoint: SipEndpoint | null = null;
  private challenge: Record<string, string> | null = null;
  private nonceCount = 0;
  /** One registration dialog-alike: refreshes keep the Call-ID and From tag, with the next CSeq (RFC 3261 §10.2.4). */
  private readonly registerCallId = `${hex(8)}@gbsim`;
  private readonly registerTag = hex(4);
  private registerSeq = 0;
  private sn = 1;
  private keepaliveTimer: NodeJS.Timeout | null = null;
  private refreshTimer: NodeJS.Timeout | null = null;
  private subscription: { callId: string; serverTag: string | null; ourTag: string; event: string; expiresAt: number; seq: number } | null = null;
  private stopped = false;
  private sipPort = 0;

  constructor(opts: GbSimDeviceOptions) {
    super();
    if (!/^\d{20}$/.test(opts.id)) throw new Error(`GbSimDevice: id must be 20 digits, got ${opts.id}`);
    this.opts = opts;
    this.id = opts.id;
    this.faults = { ...DEFAULT_FAULTS, ...opts.faults };
    this.serverDomain = opts.server.domain ?? opts.server.id.slice(0, 10);
    this.serverPeer = { transport: opts.transport ?? 'udp', address: opts.server.address, port: opts.server.port };
    for (const g of opts.groups ?? []) this.groups.set(g.id, { ...g });
    const channels = opts.channels ?? [{ id: opts.id, name: opts.name ?? `模拟摄像机 ${opts.id.slice(-4)}`, status: 'ON', live: true, ptzType: 1 }];
    for (const c of channels) this.channels.set(c.id, { ...c });
    // An EventEmitter without an 'error' listener throws on emit('error'); the simulator reports through events instead.
    this.on('error', () => {});
  }

  /** The local SIP port (UDP and TCP), once started. */
  get port(): number {
    return this.sipPort;
  }

  /** The catalog as the device would announce it now: groups first, then channels. */
  catalog(): { groups: GbSimGroup[]; channels: GbSimChannel[] } {
    return { groups: [...this.groups.values()], channels: [...this.channels.values()] };
  }

  /** The media streams being sent (or answered and waiting for their ACK). */
  streamsInfo(): GbSimStreamInfo[] {
    return [...this.streams.values()].map((s) => s.info());
  }

  setFaults(f: Partial<GbSimFaults>): void {
    Object.assign(this.faults, f);
    if (f.keepalives === true && this.registered) this.scheduleKeepalives();
    if (f.keepalives === false) this.clearKeepalives();
  }

  /** Listens, registers (throws GbSimRegisterError when refused) and starts keepalives. */
  async start(): Promise<void> {
    if (this.transport) throw new Error('GbSimDevice: already started');
    const host = this.opts.host ?? '127.0.0.1';
    const tcp = this.serverPeer.transport === 'tcp';
    const transport = new SipTransport({ host, port: 0, udp: !tcp, tcp, maxMessageBytes: this.opts.maxMessageBytes ?? 65_536 });
    const ports = await transport.listen();
    this.sipPort = (tcp ? ports.tcpPort : ports.udpPort) ?? 0;
    this.transport = transport;
    const endpoint = new SipEndpoint({
      transport,
      id: this.id,
      domain: this.serverDomain,
      userAgent: 'wallgate-gb-sim',
      publicAddress: '',
      requestTimeoutMs: this.opts.requestTimeoutMs ?? 8_000,
    });
    this.endpoint = endpoint;
    endpoint.onRequest('MESSAGE', (req, peer) => void this.onMessage(req, peer).catch((err: unknown) => this.fail('MESSAGE', err)));
    endpoint.onRequest('SUBSCRIBE', (req, peer) => void this.onSubscribe(req, peer).catch((err: unknown) => this.fail('SUBSCRIBE', err)));
    endpoint.onRequest('INVITE', (req, peer) => void this.onInvite(req, peer).catch((err: unknown) => this.fail('INVITE', err)));
    endpoint.onRequest('ACK', (req) => this.onAck(req));
    endpoint.onRequest('BYE', (req, peer) => this.onBye(req, peer));
    await this.register();
  }

  /** Ends every stream, unregisters (Expires 0) when registered, and closes the sockets. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.clearKeepalives();
    if (this.refreshTimer) clearTimeout(this.refreshTimer);
    await Promise.all([...this.streams.values()].map((s) => s.close()));
    this.streams.clear();
    // A server that is gone already must not hold the stop for a whole request timeout.
    if (this.registered && this.endpoint) await Promise.race([this.register(0).catch(() => {}), sleep(UNREGISTER_WAIT_MS)]);
    await this.endpoint?.close();
    await this.transport?.close();
  }

  /**
   * REGISTER with digest: the first attempt carries the last challenge's answer if there is one; a 401
   * (a first challenge, or a stale nonce) is answered once more with a fresh response. `expiresSec` 0 unregisters.
   */
  async register(expiresSec = this.opts.expiresSec ?? 3600): Promise<void> {
    const endpoint = this.need();
    const uri = `sip:${this.opts.server.id}@${this.serverDomain}`;
    let res: SipResponse | null = null;
    for (let attempt = 0; attempt < 3; attempt++) {
      const headers: SipHeaders = [
        ['Call-ID', this.registerCallId],
        ['From', `<sip:${this.id}@${this.serverDomain}>;tag=${this.registerTag}`],
        ['CSeq', `${++this.registerSeq} REGISTER`],
        ['Contact', `<sip:${this.id}@${this.localAddress()}:${this.sipPort}>`],
        ['Expires', String(expiresSec)],
        ['X-GB-ver', '3.0'],
      ];
      if (this.challenge) headers.push(['Authorization', this.authorization('REGISTER', uri)]);
      res = await endpoint.request(this.serverPeer, { method: 'REGISTER', targetId: this.id, uri, headers });
      if (res.status !== 401) break;
      const auth = header(res, 'WWW-Authenticate');
      if (!auth) break;
      this.challenge = parseDigestParams(auth);
      this.nonceCount = 0;
    }
    if (!res || res.status < 200 || res.status >= 300) {
      this.registered = false;
      const err = new GbSimRegisterError(res?.status ?? 0, res?.reason ?? 'no answer');
      this.emit('register-failed', err);
      throw err;
    }
    this.serverDate = header(res, 'Date') ?? null;
    if (expiresSec === 0) {
      this.registered = false;
      this.clearKeepalives();
      this.emit('unregistered');
      return;
    }
    const granted = Number(header(res, 'Expires') ?? expiresSec);
    this.grantedExpiresSec = Number.isFinite(granted) && granted > 0 ? granted : expiresSec;
    this.registered = true;
    this.scheduleRefresh(this.grantedExpiresSec);
    if (this.faults.keepalives && !this.keepaliveTimer) this.scheduleKeepalives();
    this.emit('registered', { expiresSec: this.grantedExpiresSec, date: this.serverDate });
  }

  /** One keepalive now (the timer sends them at the interval); resolves with the server's status. */
  async keepalive(): Promise<number> {
    const res = await this.message('Notify', 'Keepalive', this.nextSn(), this.id, '<Status>OK</Status>\r\n');
    this.emit('keepalive', res.status);
    return res.status;
  }

  // ---- catalog changes (NOTIFY to a subscriber) ---------------------------------------------

  addChannel(ch: GbSimChannel): Promise<boolean> {
    this.channels.set(ch.id, { ...ch });
    return this.notifyCatalog([{ ...ch }], 'ADD');
  }

  removeChannel(id: string): Promise<boolean> {
    const ch = this.channels.get(id);
    if (!ch) return Promise.resolve(false);
    this.channels.delete(id);
    return this.notifyCatalog([ch], 'DEL');
  }

  renameChannel(id: string, name: string): Promise<boolean> {
    const ch = this.channels.get(id);
    if (!ch) return Promise.resolve(false);
    ch.name = name;
    return this.notifyCatalog([{ ...ch }], 'UPDATE');
  }

  setChannelStatus(id: string, status: 'ON' | 'OFF'): Promise<boolean> {
    const ch = this.channels.get(id);
    if (!ch) return Promise.resolve(false);
    ch.status = status;
    return this.notifyCatalog([{ ...ch }], status);
  }

  /** The device hangs up the streams of a channel itself (BYE to the server). */
  async byeFromDevice(channelId: string): Promise<number> {
    const mine = [...this.streams.values()].filter((s) => s.channelId === channelId);
    for (const s of mine) {
      this.streams.delete(s.callId);
      await s.close();
      await this.need().request(this.serverPeer, { method: 'BYE', targetId: this.opts.server.id, headers: s.dialogHeaders(this.serverDomain, this.opts.server.id) });
    }
    return mine.length;
  }

  /** MediaStatus 121 ("the file/stream ended") for a channel; its streams stop. */
  async sendMediaStatus(channelId: string): Promise<number> {
    for (const s of [...this.streams.values()].filter((x) => x.channelId === channelId)) await s.close();
    const res = await this.message('Notify', 'MediaStatus', this.nextSn(), channelId, '<NotifyType>121</NotifyType>\r\n');
    return res.status;
  }

  // ---- incoming requests ---------------------------------------------------------------------

  private async onMessage(req: SipRequest, peer: SipPeer): Promise<void> {
    const endpoint = this.need();
    if (this.faults.delayMs > 0) await sleep(this.faults.delayMs);
    const q = parseIncomingXml(req.body);
    if (!q) {
      endpoint.reply(req, peer, 400, 'Bad Request');
      return;
    }
    endpoint.reply(req, peer, 200, 'OK');
    this.emit('query', { cmdType: q.cmdType, sn: q.sn, deviceId: q.deviceId });
    switch (q.cmdType) {
      case 'Catalog':
        await this.sendCatalog(q.sn);
        break;
      case 'DeviceInfo':
        await this.message('Response', 'DeviceInfo', q.sn, this.id, xmlFields({
          DeviceName: this.opts.name ?? `模拟设备 ${this.id.slice(-4)}`,
          Result: 'OK',
          Manufacturer: this.opts.manufacturer ?? 'wallgate-sim',
          Model: this.opts.model ?? 'GB-SIM-1',
          Firmware: this.opts.firmware ?? 'V1.0.0',
          Channel: this.channels.size,
        }));
        break;
      case 'DeviceStatus':
        await this.message('Response', 'DeviceStatus', q.sn, this.id, xmlFields({
          Result: 'OK',
          Online: 'ONLINE',
          Status: 'OK',
          Encode: 'ON',
          Record: 'OFF',
          DeviceTime: new Date().toISOString().slice(0, 19),
        }) + '<Alarmstatus Num="0"></Alarmstatus>\r\n');
        break;
      case 'DeviceControl': {
        const ptzCmd = q.fields.PTZCmd;
        if (typeof ptzCmd === 'string' || typeof ptzCmd === 'number') {
          const cmd: GbSimPtzCommand = { channelId: q.deviceId ?? this.id, ptzCmd: String(ptzCmd), sn: q.sn, at: Date.now() };
          this.ptzCommands.push(cmd);
          this.emit('ptz', cmd);
        }
        break;
      }
      default:
        break;
    }
  }

  /** Multi-message Catalog response (App. M): N items per MESSAGE, each sent after the previous one's 200. */
  private async sendCatalog(sn: number | null): Promise<void> {
    const pageSize = Math.max(1, this.opts.catalogPageSize ?? 20);
    const items = [...[...this.groups.values()].map(groupXml), ...[...this.channels.values()].map((c) => channelXml(c, this.id))];
    if (items.length === 0) {
      await this.message('Response', 'Catalog', sn, this.id, '<SumNum>0</SumNum>\r\n');
      return;
    }
    let sent = 0;
    for (let at = 0; at < items.length; at += pageSize) {
      const page = items.slice(at, at + pageSize);
      const res = await this.message('Response', 'Catalog', sn, this.id, `<SumNum>${items.length}</SumNum>\r\n<DeviceList Num="${page.length}">\r\n${page.join('')}</DeviceList>\r\n`);
      if (res.status !== 200) {
        this.emit('catalog-aborted', { sn, sent, status: res.status });
        return;
      }
      sent += page.length;
    }
    this.emit('catalog-sent', { sn, items: sent });
  }

  private async onSubscribe(req: SipRequest, peer: SipPeer): Promise<void> {
    const endpoint = this.need();
    if (this.faults.delayMs > 0) await sleep(this.faults.delayMs);
    const event = header(req, 'Event') ?? '';
    if (!/^catalog\b/i.test(event.trim())) {
      endpoint.reply(req, peer, 489, 'Bad Event');
      return;
    }
    const expires = Number(header(req, 'Expires') ?? 3600);
    const ourTag = hex(4);
    endpoint.reply(req, peer, 200, 'OK', { headers: [['Expires', String(expires)]], toTag: ourTag });
    if (expires === 0) {
      this.subscription = null;
      this.emit('subscribe', { expires: 0 });
      return;
    }
    const from = parseNameAddr(header(req, 'From') ?? '');
    this.subscription = { callId: header(req, 'Call-ID') ?? hex(8), serverTag: from.tag, ourTag, event: event.trim(), expiresAt: Date.now() + expires * 1000, seq: 0 };
    this.emit('subscribe', { expires });
  }

  /** NOTIFY the subscriber of a change; false when nobody subscribed (the change still shows in the next catalog). */
  private async notifyCatalog(changed: GbSimChannel[], event: 'ADD' | 'DEL' | 'UPDATE' | 'ON' | 'OFF'): Promise<boolean> {
    const sub = this.subscription;
    if (!sub || sub.expiresAt < Date.now() || !this.endpoint) return false;
    const items = changed.map((c) => channelXml(c, this.id, event));
    const body = manscdp('Notify', 'Catalog', this.nextSn(), this.id, `<SumNum>${items.length}</SumNum>\r\n<DeviceList Num="${items.length}">\r\n${items.join('')}</DeviceList>\r\n`, this.encoding(), this.faults.malformedXml);
    const left = Math.max(0, Math.round((sub.expiresAt - Date.now()) / 1000));
    const res = await this.endpoint.request(this.serverPeer, {
      method: 'NOTIFY',
      targetId: this.opts.server.id,
      headers: [
        ['Call-ID', sub.callId],
        ['CSeq', `${++sub.seq} NOTIFY`],
        ['From', `<sip:${this.id}@${this.serverDomain}>;tag=${sub.ourTag}`],
        ['To', `<sip:${this.opts.server.id}@${this.serverDomain}>${sub.serverTag ? `;tag=${sub.serverTag}` : ''}`],
        ['Event', sub.event],
        ['Subscription-State', `active;expires=${left}`],
      ],
      body,
      contentType: XML_CONTENT_TYPE,
    });
    return res.status >= 200 && res.status < 300;
  }

  private async onInvite(req: SipRequest, peer: SipPeer): Promise<void> {
    const endpoint = this.need();
    if (this.faults.delayMs > 0) await sleep(this.faults.delayMs);
    const channelId = sipUser(req.uri) ?? '';
    const callId = header(req, 'Call-ID') ?? '';
    this.emit('invite', { channelId, callId, subject: header(req, 'Subject') ?? null });
    if (this.faults.refuseInvite) {
      endpoint.reply(req, peer, this.faults.refuseInvite.status, this.faults.refuseInvite.reason);
      return;
    }
    const channel = this.channels.get(channelId);
    if (!channel) {
      endpoint.reply(req, peer, 404, 'Not Found');
      return;
    }
    if (!channel.live || channel.status !== 'ON') {
      endpoint.reply(req, peer, 480, 'Temporarily Unavailable');
      return;
    }
    const offer = parseSdpOffer(req.body.toString('utf8'));
    if (!offer) {
      endpoint.reply(req, peer, 488, 'Not Acceptable Here');
      return;
    }
    const clipKind = offer.streamNumber === 1 ? (channel.subClip ?? this.opts.subClip ?? 'h264-360p-1s') : (channel.clip ?? this.opts.clip ?? 'h264-720p-1s');
    const clip = await ensureClip(clipKind);
    // In our domain the server picks the SSRC (y=); without one the device picks (App. G note 16).
    const ssrc = offer.ssrc ?? `0${this.serverDomain.slice(3, 8)}${String(Math.floor(Math.random() * 10_000)).padStart(4, '0')}`;
    const mode: GbSimStreamInfo['mode'] = !offer.tcp ? 'udp' : offer.setup === 'active' ? 'tcp-active' : 'tcp-passive';
    const ourTag = hex(4);
    const from = parseNameAddr(header(req, 'From') ?? '');
    const stream = new GbSimStream({
      callId,
      channelId,
      clip,
      mode,
      ssrc,
      streamNumber: offer.streamNumber,
      remote: { address: offer.address, port: offer.port },
      host: this.opts.host ?? '127.0.0.1',
      faults: this.faults,
      ourTag,
      serverTag: from.tag,
      onEnd: (reason) => {
        if (this.streams.get(callId) === stream) this.streams.delete(callId);
        this.emit('stream-end', { callId, channelId, reason });
      },
    });
    const localPort = await stream.prepare();
    this.streams.set(callId, stream);
    const answer = sdpAnswer({ channelId, address: this.localAddress(), port: localPort, mode, ssrc, clip });
    endpoint.reply(req, peer, 200, 'OK', { body: Buffer.from(answer), contentType: 'application/sdp', toTag: ourTag });
  }

  private onAck(req: SipRequest): void {
    const stream = this.streams.get(header(req, 'Call-ID') ?? '');
    if (!stream || stream.acked) return;
    stream.start();
    this.emit('stream-start', stream.info());
  }

  private onBye(req: SipRequest, peer: SipPeer): void {
    const endpoint = this.need();
    const callId = header(req, 'Call-ID') ?? '';
    const stream = this.streams.get(callId);
    if (!stream) {
      endpoint.reply(req, peer, 481, 'Call/Transaction Does Not Exist');
      return;
    }
    this.streams.delete(callId);
    endpoint.reply(req, peer, 200, 'OK');
    void stream.close().then(() => this.emit('bye', { callId, channelId: stream.channelId }));
  }

  // ---- helpers ------------------------------------------------------------------------------

  private async message(root: 'Notify' | 'Response', cmdType: string, sn: number | null, deviceId: string, inner: string): Promise<SipResponse> {
    const body = manscdp(root, cmdType, sn, deviceId, inner, this.encoding(), this.faults.malformedXml);
    return this.need().request(this.serverPeer, { method: 'MESSAGE', targetId: this.opts.server.id, body, contentType: XML_CONTENT_TYPE });
  }

  private authorization(method: string, uri: string): string {
    const c = this.challenge!;
    const realm = c.realm ?? this.serverDomain;
    const nonce = c.nonce ?? '';
    const qop = (c.qop ?? '').split(',').map((s) => s.trim()).includes('auth') ? 'auth' : undefined;
    const parts = [`username="${this.id}"`, `realm="${realm}"`, `nonce="${nonce}"`, `uri="${uri}"`];
    if (qop) {
      const nc = (++this.nonceCount).toString(16).padStart(8, '0');
      const cnonce = hex(8);
      parts.push(`response="${digestResponse({ username: this.id, realm, password: this.opts.password, method, uri, nonce, qop, nc, cnonce })}"`, `qop=${qop}`, `nc=${nc}`, `cnonce="${cnonce}"`);
    } else {
      parts.push(`response="${digestResponse({ username: this.id, realm, password: this.opts.password, method, uri, nonce })}"`);
    }
    parts.push('algorithm=MD5');
    if (c.opaque) parts.push(`opaque="${c.opaque}"`);
    return `Digest ${parts.join(', ')}`;
  }

  private scheduleRefresh(grantedSec: number): void {
    if (this.refreshTimer) clearTimeout(this.refreshTimer);
    this.refreshTimer = setTimeout(() => {
      this.refreshTimer = null;
      if (!this.stopped) void this.register().catch((err: unknown) => this.fail('REGISTER refresh', err));
    }, Math.max(1, grantedSec) * 1000 * (2 / 3));
    this.refreshTimer.unref();
  }

  private scheduleKeepalives(): void {
    this.clearKeepalives();
    const every = this.opts.keepaliveIntervalMs ?? 60_000;
    this.keepaliveTimer = setInterval(() => {
      if (!this.faults.keepalives || !this.registered || this.stopped) return;
      this.keepalive()
        .then((status) => {
          // The server forgot us (it restarted, or expired the registration): register again, as devices do.
          if ((status === 404 || status === 403 || status === 401) && !this.stopped) return this.register();
          return undefined;
        })
        .catch((err: unknown) => this.fail('keepalive', err));
    }, every);
  }

  private clearKeepalives(): void {
    if (this.keepaliveTimer) clearInterval(this.keepaliveTimer);
    this.keepaliveTimer = null;
  }

  private localAddress(): string {
    const host = this.opts.host ?? '127.0.0.1';
    return host === '0.0.0.0' || host === '::' ? (this.transport?.localAddressFor(this.serverPeer) ?? '127.0.0.1') : host;
  }

  private encoding(): 'GB2312' | 'UTF-8' {
    return this.opts.encoding ?? 'GB2312';
  }

  private nextSn(): number {
    return this.sn++;
  }

  private need(): SipEndpoint {
    if (!this.endpoint) throw new Error('GbSimDevice: not started');
    return this.endpoint;
  }

  private fail(what: string, err: unknown): void {
    if (this.stopped) return;
    this.opts.log?.(`${this.id}: ${what}: ${(err as Error).message ?? String(err)}`);
    this.emit('error', err);
  }
}

// ---- a lower platform: one id, a tree of groups and many channels ------------------------------

export interface GbSimPlatformOptions extends Omit<GbSimDeviceOptions, 'channels' | 'groups'> {
  /** Channels in the catalog. */
  channels: number;
  /** The first `live` channels are ON and answer INVITE; the rest are OFF. */
  live: number;
  /** Channels per virtual organisation (a police station, say). */
  channelsPerOrg?: number;
  /** First serial of the channel ids (6 digits after the type 131 and the network digit). */
  firstSerial?: number;
  /** Centre of the coordinates (default: the demo city). */
  centre?: { latitude: number; longitude: number };
}

export class GbSimPlatform extends GbSimDevice {
  constructor(opts: GbSimPlatformOptions) {
    const { groups, channels } = platformCatalog(opts);
    super({ name: '模拟下级平台', manufacturer: 'wallgate-sim', model: 'GB-SIM-PLATFORM', ...opts, groups, channels });
  }
}

const BUSINESS_GROUPS = ['公安视频专网', '交通视频专网', '城管视频专网', '水务视频专网'];
const DISTRICTS = ['东城分局', '西城分局', '南湖分局', '北山分局', '高新区分局', '开发区分局', '滨江分局', '新城分局'];
const STATIONS = ['人民路派出所', '解放路派出所', '中山路派出所', '建设路派出所', '长江路派出所', '黄河路派出所', '和平路派出所', '文化路派出所', '新华路派出所', '胜利路派出所'];
const ROADS = ['人民路', '解放路', '中山路', '建设路', '长江路', '黄河路', '和平路', '文化路', '新华路', '胜利路', '光明路', '东风路', '迎宾大道', '滨河路', '青年路', '幸福路'];
const CORNERS = ['东北角', '西南角', '东南角', '西北角', '北侧', '南侧'];

/**
 * The catalog of a department's platform: business groups (215), under each some districts (216),
 * under each district police stations (216), and the channels (131) spread over the stations, with
 * Chinese names that are all in GB2312.
 */
export function platformCatalog(opts: Pick<GbSimPlatformOptions, 'id' | 'channels' | 'live' | 'channelsPerOrg' | 'firstSerial' | 'centre'>): { groups: GbSimGroup[]; channels: GbSimChannel[] } {
  const prefix = opts.id.slice(0, 10);
  const serial = (n: number) => String(n).padStart(6, '0');
  const perOrg = Math.max(1, opts.channelsPerOrg ?? 50);
  const stationsNeeded = Math.max(1, Math.ceil(opts.channels / perOrg));
  const groupCount = Math.min(BUSINESS_GROUPS.length, Math.max(1, Math.ceil(stationsNeeded / 16)));
  const groups: GbSimGroup[] = [];
  const businessGroups = Array.from({ length: groupCount }, (_, i) => ({ id: `${prefix}2150${serial(i + 1)}`, name: BUSINESS_GROUPS[i]! }));
  groups.push(...businessGroups);
  const districtCount = Math.max(1, Math.ceil(stationsNeeded / 4));
  const districts = Array.from({ length: districtCount }, (_, i) => {
    const bg = businessGroups[i % businessGroups.length]!;
    const name = DISTRICTS[i % DISTRICTS.length]! + (i >= DISTRICTS.length ? String(Math.floor(i / DISTRICTS.length) + 1) : '');
    return { id: `${prefix}2160${serial(i + 1)}`, name, parentId: bg.id, businessGroupId: bg.id };
  });
  groups.push(...districts);
  const stations = Array.from({ length: stationsNeeded }, (_, i) => {
    const d = districts[i % districts.length]!;
    const name = `${d.name.replace(/分局\d*$/, '')}${STATIONS[i % STATIONS.length]!}${i >= STATIONS.length ? String(Math.floor(i / STATIONS.length) + 1) : ''}`;
    return { id: `${prefix}2160${serial(districtCount + i + 1)}`, name, parentId: d.id, businessGroupId: d.businessGroupId };
  });
  groups.push(...stations);
  const centre = opts.centre ?? { latitude: 32.05, longitude: 118.78 };
  const first = opts.firstSerial ?? 1;
  const channels: GbSimChannel[] = Array.from({ length: opts.channels }, (_, i) => {
    const station = stations[Math.floor(i / perOrg) % stations.length]!;
    const a = ROADS[i % ROADS.length]!;
    const b = ROADS[(i * 7 + 3) % ROADS.length]!;
    const place = a === b ? `${a}${CORNERS[i % CORNERS.length]!}` : `${a}与${b}交叉口${CORNERS[i % CORNERS.length]!}`;
    const dome = i % 4 === 0;
    // A deterministic spread (golden-angle spiral) so the map shows the channels apart.
    const r = 0.002 * Math.sqrt(i + 1);
    const angle = i * 2.399963;
    return {
      id: `${prefix}1310${serial(first + i)}`,
      name: `${place}${dome ? '球机' : '枪机'}${String(i + 1).padStart(3, '0')}`,
      parentId: station.id,
      businessGroupId: station.businessGroupId,
      civilCode: prefix.slice(0, 6),
      address: `${a}${(i % 300) + 1}号`,
      status: i < opts.live ? 'ON' : 'OFF',
      live: i < opts.live,
      latitude: Math.round((centre.latitude + r * Math.sin(angle)) * 1e6) / 1e6,
      longitude: Math.round((centre.longitude + r * Math.cos(angle)) * 1e6) / 1e6,
      ptzType: dome ? 1 : 3,
    };
  });
  return { groups, channels };
}

// ---- media ---------------------------------------------------------------------------------

interface GbSimStreamOptions {
  callId: string;
  channelId: string;
  clip: Clip;
  mode: GbSimStreamInfo['mode'];
  ssrc: string;
  streamNumber: number;
  remote: { address: string; port: number };
  host: string;
  /** The device's faults, read live (a test may flip wrongSsrc while a stream runs). */
  faults: GbSimFaults;
  ourTag: string;
  serverTag: string | null;
  onEnd: (reason: string) => void;
}

/** One INVITE's media: PS packs of the clip's frames in RTP, at 25 frames a second, looping. */
class GbSimStream {
  readonly callId: string;
  readonly channelId: string;
  acked = false;
  private udp: UdpSocket | null = null;
  private server: Server | null = null;
  private tcp: Socket | null = null;
  private localPort = 0;
  private timer: NodeJS.Timeout | null = null;
  private closed = false;
  private frame = 0;
  private seq = Math.floor(Math.random() * 0x10000);
  private readonly tsBase = Math.floor(Math.random() * 0x7fffffff);
  private t0 = 0;
  private waitingForKey = false;
  private frames = 0;
  private packets = 0;
  private bytes = 0;

  constructor(private readonly o: GbSimStreamOptions) {
    this.callId = o.callId;
    this.channelId = o.channelId;
  }

  info(): GbSimStreamInfo {
    return {
      callId: this.callId,
      channelId: this.channelId,
      mode: this.o.mode,
      ssrc: this.o.ssrc,
      remote: this.o.remote,
      localPort: this.localPort,
      streamNumber: this.o.streamNumber,
      acked: this.acked,
      frames: this.frames,
      packets: this.packets,
      bytes: this.bytes,
    };
  }

  /** Call-ID, From and To of this INVITE's dialog, for a request the device sends inside it (its BYE). */
  dialogHeaders(domain: string, serverId: string): SipHeaders {
    return [
      ['Call-ID', this.callId],
      ['From', `<sip:${this.channelId}@${domain}>;tag=${this.o.ourTag}`],
      ['To', `<sip:${serverId}@${domain}>${this.o.serverTag ? `;tag=${this.o.serverTag}` : ''}`],
    ];
  }

  /** Opens the device's media socket before the 200 OK (a TCP-active device must already listen); resolves with its port. */
  async prepare(): Promise<number> {
    if (this.o.mode === 'udp') {
      const udp = createSocket('udp4');
      udp.on('error', () => {});
      this.udp = udp;
      await new Promise<void>((resolve, reject) => {
        udp.once('error', reject);
        udp.bind(0, this.o.host, () => {
          udp.off('error', reject);
          resolve();
        });
      });
      this.localPort = udp.address().port;
    } else if (this.o.mode === 'tcp-active') {
      const server = createServer((sock) => {
        sock.on('error', () => {});
        if (this.tcp || this.closed) {
          sock.destroy();
          return;
        }
        sock.setNoDelay(true);
        this.adopt(sock);
      });
      server.on('error', () => {});
      this.server = server;
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(0, this.o.host, () => {
          server.off('error', reject);
          resolve();
        });
      });
      this.localPort = (server.address() as AddressInfo).port;
    } else {
      // The device is the TCP client: RFC 4145 has an active endpoint announce the discard port 9.
      this.localPort = 9;
    }
    return this.localPort;
  }

  /** After the ACK: connect if we are the TCP client, then send frames paced in real time. */
  start(): void {
    if (this.acked || this.closed) return;
    this.acked = true;
    if (this.o.mode === 'tcp-passive') void this.connectWithRetries();
    this.t0 = performance.now();
    this.tick();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.udp?.close();
    this.udp = null;
    this.tcp?.destroy();
    this.tcp = null;
    if (this.server) await new Promise<void>((r) => this.server!.close(() => r()));
    this.server = null;
  }

  private adopt(sock: Socket): void {
    this.tcp = sock;
    // Whatever the server sends on the media connection (RTCP, nothing) is read and ignored.
    sock.on('data', () => {});
    sock.on('close', () => {
      if (this.tcp === sock) this.tcp = null;
      if (!this.closed) {
        void this.close();
        this.o.onEnd('the media connection closed');
      }
    });
    // A receiver joining late starts at a keyframe.
    this.waitingForKey = true;
  }

  private async connectWithRetries(): Promise<void> {
    for (let i = 0; i < TCP_CONNECT_TRIES && !this.closed; i++) {
      const sock = await new Promise<Socket | null>((resolve) => {
        const s = connect({ host: this.o.remote.address, port: this.o.remote.port });
        s.once('connect', () => resolve(s));
        s.on('error', () => resolve(null));
      });
      if (sock && !this.closed) {
        sock.setNoDelay(true);
        this.localPort = sock.localPort ?? 0;
        this.adopt(sock);
        return;
      }
      sock?.destroy();
      await sleep(TCP_RETRY_MS);
    }
    if (!this.closed) {
      await this.close();
      this.o.onEnd(`could not connect to ${this.o.remote.address}:${this.o.remote.port}`);
    }
  }

  private tick(): void {
    if (this.closed) return;
    const due = Math.floor((performance.now() - this.t0) / (1000 / FPS));
    // After a stall (a busy event loop) the clock is followed, not caught up with a burst.
    if (due - this.frame > FPS) this.frame = due;
    while (this.frame <= due) this.sendFrame(this.frame++);
    const nextAt = this.t0 + (this.frame * 1000) / FPS;
    this.timer = setTimeout(() => this.tick(), Math.max(0, nextAt - performance.now()));
  }

  private sendFrame(n: number): void {
    if (this.o.faults.noMedia) return;
    const frames = framesOf(this.o.clip);
    const i = n % frames.length;
    const key = this.o.clip.frames[i]!.key;
    if (this.o.mode !== 'udp') {
      const sock = this.tcp;
      if (!sock) return;
      if (sock.writableLength > MAX_TCP_BACKLOG) this.waitingForKey = true;
      if (this.waitingForKey && !key) return;
      this.waitingForKey = false;
    }
    const pts = (n * FRAME_TICKS) % 2 ** 33;
    const ps = psPack({ codec: this.o.clip.codec, pts90k: pts, key, data: frames[i]! });
    const ssrc = (Number(this.o.ssrc) + (this.o.faults.wrongSsrc ? 1 : 0)) >>> 0;
    const { packets, nextSeq } = rtpPackets(ps, { ssrc, seq: this.seq, timestamp: (this.tsBase + n * FRAME_TICKS) >>> 0 });
    this.seq = nextSeq;
    this.frames++;
    for (const p of packets) {
      this.packets++;
      this.bytes += p.length;
      if (this.udp) this.udp.send(p, this.o.remote.port, this.o.remote.address);
      else this.tcp?.write(rfc4571(p));
    }
  }
}

// ---- SDP -----------------------------------------------------------------------------------

interface SdpOffer {
  address: string;
  port: number;
  tcp: boolean;
  setup: 'active' | 'passive' | null;
  ssrc: string | null;
  streamNumber: number;
}

/** The parts of the server's INVITE SDP a device acts on; null when it has no usable video line. */
export function parseSdpOffer(sdp: string): SdpOffer | null {
  let address: string | null = null;
  let port: number | null = null;
  let tcp = false;
  let setup: SdpOffer['setup'] = null;
  let ssrc: string | null = null;
  let streamNumber = 0;
  for (const line of sdp.split(/\r?\n/)) {
    const c = /^c=IN IP4 (\S+)/.exec(line);
    if (c) address = c[1]!;
    const m = /^m=video (\d+) (\S+)/.exec(line);
    if (m) {
      port = Number(m[1]);
      tcp = m[2]!.toUpperCase().startsWith('TCP');
    }
    const s = /^a=setup:(active|passive)/.exec(line);
    if (s) setup = s[1] as 'active' | 'passive';
    const y = /^y=(\d{1,10})/.exec(line);
    if (y) ssrc = y[1]!.padStart(10, '0');
    const n = /^a=streamnumber:(\d)/.exec(line);
    if (n) streamNumber = Number(n[1]);
  }
  if (!address || port === null || port < 1 || port > 65535) return null;
  return { address, port, tcp, setup, ssrc, streamNumber };
}

function sdpAnswer(a: { channelId: string; address: string; port: number; mode: GbSimStreamInfo['mode']; ssrc: string; clip: Clip }): string {
  const tcp = a.mode !== 'udp';
  const res = a.clip.height === 720 ? '5' : a.clip.height === 1080 ? '6' : `${a.clip.width}x${a.clip.height}`;
  const lines = [
    'v=0',
    `o=${a.channelId} 0 0 IN IP4 ${a.address}`,
    's=Play',
    `c=IN IP4 ${a.address}`,
    't=0 0',
    `m=video ${a.port} ${tcp ? 'TCP/RTP/AVP' : 'RTP/AVP'} 96`,
    'a=sendonly',
    'a=rtpmap:96 PS/90000',
    // setup is the answerer's own role: the device listens when the server said it will connect.
    ...(tcp ? [`a=setup:${a.mode === 'tcp-active' ? 'passive' : 'active'}`, 'a=connection:new'] : []),
    `y=${a.ssrc}`,
    `f=v/${a.clip.codec === 'h265' ? 5 : 2}/${res}/25/1/2000a///`,
  ];
  return lines.join('\r\n') + '\r\n';
}

// ---- MANSCDP XML ---------------------------------------------------------------------------

const escapeXml = (s: string) => s.replace(/[<>&"']/g, (ch) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[ch]!);

function xmlFields(fields: Record<string, string | number | undefined>): string {
  return Object.entries(fields)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `<${k}>${escapeXml(String(v))}</${k}>\r\n`)
    .join('');
}

function groupXml(g: GbSimGroup): string {
  return `<Item>\r\n${xmlFields({ DeviceID: g.id, Name: g.name, ParentID: g.parentId, BusinessGroupID: g.businessGroupId })}</Item>\r\n`;
}

function channelXml(c: GbSimChannel, deviceId: string, event?: string): string {
  return `<Item>\r\n${xmlFields({
    DeviceID: c.id,
    Name: c.name,
    Manufacturer: 'wallgate-sim',
    Model: c.ptzType === 1 ? 'SIM-DOME' : 'SIM-BOX',
    Owner: 'Owner',
    CivilCode: c.civilCode ?? deviceId.slice(0, 6),
    Address: c.address,
    Parental: 0,
    ParentID: c.parentId ?? deviceId,
    BusinessGroupID: c.businessGroupId,
    SafetyWay: 0,
    RegisterWay: 1,
    Secrecy: 0,
    Status: c.status,
    Longitude: c.longitude,
    Latitude: c.latitude,
    Event: event,
  })}<Info>\r\n${xmlFields({ PTZType: c.ptzType ?? 3 })}</Info>\r\n</Item>\r\n`;
}

/** A MANSCDP body in the declared encoding; `malformed` cuts it short so it is not well-formed XML. */
function manscdp(root: string, cmdType: string, sn: number | null, deviceId: string, inner: string, encoding: 'GB2312' | 'UTF-8', malformed: boolean): Buffer {
  let text = `<?xml version="1.0" encoding="${encoding}"?>\r\n<${root}>\r\n${xmlFields({ CmdType: cmdType, SN: sn ?? 0, DeviceID: deviceId })}${inner}</${root}>\r\n`;
  if (malformed) text = text.slice(0, Math.max(40, Math.floor(text.length * 0.6))) + '<</';
  return encoding === 'GB2312' ? iconv.encode(text, 'gb2312') : Buffer.from(text, 'utf8');
}

const xmlParser = new XMLParser({ ignoreAttributes: true, parseTagValue: false, processEntities: false, ignoreDeclaration: true, ignorePiTags: true });

/** A Query or Control body from the server: the encoding its declaration names, then the few fields a device reads. */
function parseIncomingXml(body: Buffer): { root: string; cmdType: string; sn: number | null; deviceId: string | null; fields: Record<string, unknown> } | null {
  if (body.length === 0 || body.length > 65_536) return null;
  const declared = /encoding\s*=\s*["']([\w-]+)["']/i.exec(body.subarray(0, 100).toString('latin1'))?.[1]?.toLowerCase();
  const text = declared && declared !== 'utf-8' && declared !== 'utf8' && iconv.encodingExists(declared) ? iconv.decode(body, declared) : body.toString('utf8');
  if (/<!(DOCTYPE|ENTITY)/i.test(text)) return null;
  let doc: Record<string, unknown>;
  try {
    doc = xmlParser.parse(text, true) as Record<string, unknown>;
  } catch {
    return null;
  }
  const root = Object.keys(doc).find((k) => typeof doc[k] === 'object' && doc[k] !== null);
  if (!root) return null;
  const fields = doc[root] as Record<string, unknown>;
  const cmdType = typeof fields.CmdType === 'string' ? fields.CmdType : null;
  if (!cmdType) return null;
  const sn = Number(fields.SN);
  return { root, cmdType, sn: Number.isInteger(sn) ? sn : null, deviceId: typeof fields.DeviceID === 'string' ? fields.DeviceID : null, fields };
}

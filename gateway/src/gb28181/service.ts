import { randomBytes } from 'node:crypto';
import type { Config } from '../config/schema.js';
import { GatewayError, reasoned } from '../errors.js';
import type { GbDeviceInfo, GbDeviceRecord, GbPresence, GbRefusal, HealthFailure, SourceRecord } from '../store/types.js';
import type { PtzSender } from '../ptz/service.js';
import type { GbPlayLink, GbPlayTarget } from './play-link.js';
import { parseGbUrl } from './play-link.js';
import { digestResponse, NonceStore, parseDigestParams, sameDigest } from './sip/digest.js';
import { SipEndpoint, SipTimeoutError, type SipDialog } from './sip/endpoint.js';
import { header, parseNameAddr, sipUser, type SipHeaders, type SipRequest } from './sip/message.js';
import { SipTransport, type SipPeer } from './sip/transport.js';
import type { CatalogImporter } from './catalog.js';
import type { GbLink } from './link.js';
import { buildManscdp, items, parseManscdp, type Manscdp } from './xml.js';

type GbConfig = Config['gb28181'];
type Log = { debug(o: object, m: string): void; info(o: object, m: string): void; warn(o: object, m: string): void; error(o: object, m: string): void };

/** What the registrar needs of the directory (directory.ts): who may register, and where presence goes. */
export interface GbDirectoryPort {
  admission(deviceId: string): Promise<{ device: GbDeviceRecord; password: string; proposed?: boolean } | null>;
  admit(device: GbDeviceRecord): Promise<GbDeviceRecord>;
  device(deviceId: string): Promise<GbDeviceRecord | null>;
  recordRefusal(deviceId: string, address: string, reason: GbRefusal['reason']): Promise<void>;
  setPresence(deviceId: string, p: GbPresence): Promise<void>;
  setInfo(deviceId: string, info: GbDeviceInfo & { name?: string }): Promise<void>;
}

/** What the service needs of the catalog importer (catalog.ts). */
export type GbCatalogPort = Pick<CatalogImporter, 'begin' | 'accept' | 'applyNotify'>;

/** The registry side of a device going offline: every channel of the device is marked so, with the reason. */
export interface GbChannelHealthPort {
  deviceOffline(deviceId: string, failure: HealthFailure): Promise<void>;
}

export interface GbServiceOptions {
  config: GbConfig;
  directory: GbDirectoryPort;
  catalog: GbCatalogPort;
  channels: GbChannelHealthPort;
  log: Log;
  clock?: () => number;
  userAgent?: string;
}

/** What the metrics read (http/metrics.ts). */
export interface GbStats {
  readonly registrations: number;
  readonly refusals: { unknown: number; password: number; disabled: number };
  readonly devicesOnline: number;
  readonly dropped: number;
}

interface LiveDevice {
  id: string;
  peer: SipPeer;
  callId: string;
  registeredAt: number;
  expiresAt: number;
  lastKeepaliveAt: number;
  subscribeTimer: NodeJS.Timeout | null;
  /** The stored password it proved (sealed): one set since means its registration was granted on old terms. */
  sealedPassword: Buffer | null;
}

interface PendingQuery {
  resolve(fields: Record<string, unknown>): void;
  reject(e: Error): void;
  timer: NodeJS.Timeout;
}

const MANSCDP = 'Application/MANSCDP+xml';
/** How long a catalog subscription asks to live; it is renewed before it runs out while the device stays registered. */
const SUBSCRIBE_EXPIRES_SEC = 3600;
const DEVICE_ID = /^\d{20}$/;

/**
 * The GB/T 28181 upper platform: the SIP registrar (digest, admission through the directory),
 * keepalive tracking, MANSCDP queries (Catalog, DeviceInfo, DeviceStatus), the catalog
 * subscription, PTZ DeviceControl, and the INVITE/BYE half of live view that play-driver.ts uses.
 * Devices are tracked in memory while registered; the directory keeps what the admin pages show.
 */
export class GbService implements GbLink, GbPlayLink, GbStats, PtzSender {
  readonly transport: SipTransport;
  readonly endpoint: SipEndpoint;
  readonly log: Log;
  private readonly cfg: GbConfig;
  private readonly nonces: NonceStore;
  private readonly clock: () => number;
  private readonly devices = new Map<string, LiveDevice>();
  private readonly pending = new Map<string, PendingQuery>();
  private readonly mediaWatchers = new Map<string, Set<() => void>>();
  private readonly dialogs = new Set<SipDialog>();
  private readonly hungUp = new WeakSet<SipDialog>();
  /** Presence writes in flight: close() lets them finish before the store goes. */
  private readonly writes = new Set<Promise<unknown>>();
  /** Each device's last presence write in flight, which its next one waits for. */
  private readonly lastPresenceWrite = new Map<string, Promise<void>>();
  private sweepTimer: NodeJS.Timeout | null = null;
  private sn = 1 + (randomBytes(2).readUInt16BE(0) % 10_000);
  private ssrcCounter = randomBytes(2).readUInt16BE(0) % 10_000;
  private closing: Promise<void> | null = null;
  private countRegistrations = 0;
  private readonly countRefusals = { unknown: 0, password: 0, disabled: 0 };
  private countDropped = 0;
  ports: { udpPort: number | null; tcpPort: number | null } = { udpPort: null, tcpPort: null };

  constructor(private readonly opts: GbServiceOptions) {
    this.cfg = opts.config;
    this.log = opts.log;
    this.clock = opts.clock ?? Date.now;
    this.nonces = new NonceStore(this.cfg.nonceTtlMs, this.clock);
    this.transport = new SipTransport({ host: this.cfg.host, port: this.cfg.port, udp: this.cfg.udp, tcp: this.cfg.tcp, maxMessageBytes: this.cfg.maxMessageBytes, log: opts.log });
    this.transport.on('dropped', (peer: SipPeer, reason: string) => {
      this.countDropped++;
      this.log.debug({ peer: `${peer.transport}:${peer.address}:${peer.port}`, reason }, 'SIP input dropped');
    });
    this.endpoint = new SipEndpoint({
      transport: this.transport,
      id: this.cfg.id,
      domain: this.cfg.domain,
      userAgent: opts.userAgent ?? 'wallgate',
      publicAddress: this.cfg.publicAddress,
      requestTimeoutMs: this.cfg.requestTimeoutMs,
      log: opts.log,
    });
    this.endpoint.onRequest('REGISTER', (req, peer) => this.handle('REGISTER', req, peer, () => this.onRegister(req, peer)));
    this.endpoint.onRequest('MESSAGE', (req, peer) => this.handle('MESSAGE', req, peer, () => this.onMessage(req, peer)));
    this.endpoint.onRequest('NOTIFY', (req, peer) => this.handle('NOTIFY', req, peer, () => this.onNotify(req, peer)));
  }

  /** Listens (UDP and/or TCP) and starts the keepalive sweep. */
  async start(): Promise<{ udpPort: number | null; tcpPort: number | null }> {
    this.ports = await this.transport.listen();
    const intervalMs = this.cfg.keepaliveIntervalSec * 1000;
    this.sweepTimer = setInterval(() => this.sweep(), Math.max(100, Math.min(1000, intervalMs / 4))).unref();
    this.log.info({ ...this.ports, id: this.cfg.id, domain: this.cfg.domain }, 'GB/T 28181 SIP server listening');
    return this.ports;
  }

  // ---- metrics -------------------------------------------------------------------------------

  get registrations(): number {
    return this.countRegistrations;
  }
  get refusals(): { unknown: number; password: number; disabled: number } {
    return { ...this.countRefusals };
  }
  get devicesOnline(): number {
    return this.devices.size;
  }
  get dropped(): number {
    return this.countDropped;
  }

  /** The devices registered with this gateway now (cluster mode: their channels are pulled here). */
  onlineDevices(): string[] {
    return [...this.devices.keys()];
  }

  /** Whether the device is registered now. */
  isOnline(deviceId: string): boolean {
    return this.devices.has(deviceId);
  }

  // ---- request dispatch ------------------------------------------------------------------------

  /** A handler that throws answers 500 and is logged: no device can bring the gateway down. */
  private handle(method: string, req: SipRequest, peer: SipPeer, run: () => Promise<void>) {
    if (this.closing) return this.endpoint.reply(req, peer, 503, 'Service Unavailable');
    run().catch((e: Error) => {
      this.log.error({ method, peer: peerText(peer), err: e.message }, 'GB/T 28181 request failed');
      try {
        this.endpoint.reply(req, peer, 500, 'Server Internal Error');
      } catch {
        // The transport is gone; nothing more to tell.
      }
    });
  }

  // ---- registrar -------------------------------------------------------------------------------

  private async onRegister(req: SipRequest, peer: SipPeer) {
    const to = safeNameAddr(header(req, 'To'));
    const deviceId = to ? (to.user ?? sipUser(to.uri)) : null;
    if (!deviceId || !DEVICE_ID.test(deviceId)) return this.endpoint.reply(req, peer, 400, 'Bad Request (the device id must be 20 digits)');
    const authorization = header(req, 'Authorization');
    // The first REGISTER carries no credentials: challenge whoever asks, so the answer tells no one which ids are known.
    if (!authorization) return this.challenge(req, peer, false);
    const p = parseDigestParams(authorization);
    // The nonce is checked first, without the database: a flood of forged or replayed REGISTERs costs an HMAC, not a write.
    // nc counts only under qop, where the digest covers it; without qop a nonce serves once.
    const nonce = this.nonces.check(p.nonce ?? '', p.qop ? p.nc : undefined);
    if (nonce === 'stale') return this.challenge(req, peer, true);
    if (nonce !== 'ok') {
      // A nonce we never issued (a restart) or one already used: a fresh challenge, so a replayed request gets nothing.
      this.log.info({ device: deviceId, peer: peerText(peer), nonce }, 'REGISTER with a used or unknown nonce: challenged again');
      return this.challenge(req, peer, false);
    }
    const admitted = await this.opts.directory.admission(deviceId);
    if (!admitted) return this.refuse(req, peer, deviceId, (await this.opts.directory.device(deviceId)) ? 'disabled' : 'unknown');
    if (!this.digestMatches(p, deviceId, admitted.password)) return this.refuse(req, peer, deviceId, 'password');
    const record = admitted.proposed ? await this.opts.directory.admit(admitted.device) : admitted.device;
    const contact = header(req, 'Contact');
    const requested = requestedExpires(req, contact);
    const now = this.clock();
    if (requested === 0) {
      this.endpoint.reply(req, peer, 200, 'OK', { headers: [['Date', gbDate(now)], ['Expires', '0'], ...versionHeader(req)] });
      await this.goOffline(deviceId, 'unregistered');
      return;
    }
    const min = this.cfg.registerExpiresMinSec;
    if (requested !== null && requested < min) return this.endpoint.reply(req, peer, 423, 'Interval Too Brief', { headers: [['Min-Expires', String(min)]] });
    const granted = Math.min(requested ?? this.cfg.registerExpiresMaxSec, this.cfg.registerExpiresMaxSec);
    const callId = header(req, 'Call-ID') ?? '';
    const before = this.devices.get(deviceId);
    const device: LiveDevice = before ?? { id: deviceId, peer, callId, registeredAt: now, expiresAt: 0, lastKeepaliveAt: now, subscribeTimer: null, sealedPassword: null };
    device.sealedPassword = record.sealedPassword;
    const fresh = !before || before.callId !== callId;
    device.peer = peer;
    device.callId = callId;
    device.expiresAt = now + granted * 1000;
    device.lastKeepaliveAt = now;
    if (fresh) device.registeredAt = now;
    this.devices.set(deviceId, device);
    this.countRegistrations++;
    const headers: SipHeaders = [['Date', gbDate(now)], ['Expires', String(granted)], ...versionHeader(req)];
    if (contact && contact !== '*') headers.push(['Contact', `${contact.replace(/;\s*expires=\d+/i, '')};expires=${granted}`]);
    this.endpoint.reply(req, peer, 200, 'OK', { headers });
    this.persist(deviceId, this.presenceOf(device));
    if (fresh) {
      this.log.info({ device: deviceId, peer: peerText(peer), expires: granted }, 'GB device registered');
      void this.afterRegistration(deviceId);
    }
  }

  private challenge(req: SipRequest, peer: SipPeer, stale: boolean) {
    const value = `Digest realm="${this.cfg.domain}", nonce="${this.nonces.issue()}", algorithm=MD5, qop="auth"${stale ? ', stale=true' : ''}`;
    this.endpoint.reply(req, peer, 401, 'Unauthorized', { headers: [['WWW-Authenticate', value], ...versionHeader(req)] });
  }

  private async refuse(req: SipRequest, peer: SipPeer, deviceId: string, reason: GbRefusal['reason']) {
    this.countRefusals[reason]++;
    this.log.warn({ device: deviceId, peer: peerText(peer), reason }, 'GB registration refused');
    this.endpoint.reply(req, peer, 403, 'Forbidden');
    await this.opts.directory.recordRefusal(deviceId, peer.address, reason);
  }

  /** RFC 2617 with the `uri` the device itself sent (devices differ: our id@domain, the domain, ip:port). */
  private digestMatches(p: Record<string, string>, deviceId: string, password: string): boolean {
    if (p.username !== deviceId || !p.nonce || !p.uri || !p.response) return false;
    if (p.algorithm && p.algorithm.toUpperCase() !== 'MD5') return false;
    if (p.qop && p.qop !== 'auth') return false;
    if (p.qop && (!p.nc || !p.cnonce)) return false;
    const expected = digestResponse({
      username: deviceId,
      realm: this.cfg.domain,
      password,
      method: 'REGISTER',
      uri: p.uri,
      nonce: p.nonce,
      ...(p.qop ? { qop: p.qop, nc: p.nc, cnonce: p.cnonce } : {}),
    });
    return sameDigest(p.response, expected);
  }

  private presenceOf(d: LiveDevice): GbPresence {
    return { online: true, transport: d.peer.transport, address: d.peer.address, port: d.peer.port, registeredAt: d.registeredAt, expiresAt: d.expiresAt, lastKeepaliveAt: d.lastKeepaliveAt };
  }

  /** A directory write the request does not wait for; its failure is logged, and close() waits for it. */
  private persist(deviceId: string, presence: GbPresence) {
    // After the device's write before it: on PostgreSQL two writes (a keepalive, then going offline) could otherwise commit in either order.
    const write: Promise<void> = (this.lastPresenceWrite.get(deviceId) ?? Promise.resolve())
      .then(() => this.opts.directory.setPresence(deviceId, presence))
      .then(
        () => undefined,
        (e: Error) => void this.log.error({ device: deviceId, err: e.message }, 'GB presence write failed'),
      )
      .finally(() => {
        this.writes.delete(write);
        if (this.lastPresenceWrite.get(deviceId) === write) this.lastPresenceWrite.delete(deviceId);
      });
    this.writes.add(write);
    this.lastPresenceWrite.set(deviceId, write);
  }

  /** After a new registration: what the device is, what it has, and a subscription to changes. One at a time, so a small device is not flooded. */
  private async afterRegistration(deviceId: string) {
    try {
      const info = await this.queryDeviceInfo(deviceId);
      await this.opts.directory.setInfo(deviceId, {
        manufacturer: info.Manufacturer ?? null,
        model: info.Model ?? null,
        firmware: info.Firmware ?? null,
        ...(info.DeviceName ? { name: info.DeviceName } : {}),
      });
    } catch (e) {
      this.log.info({ device: deviceId, err: (e as Error).message }, 'GB DeviceInfo query after registration failed');
    }
    try {
      const { channels } = await this.queryCatalog(deviceId);
      this.log.info({ device: deviceId, channels }, 'GB catalog imported');
    } catch (e) {
      this.log.warn({ device: deviceId, err: (e as Error).message }, 'GB catalog query after registration failed');
    }
    await this.subscribeCatalog(deviceId);
  }

  /**
   * SUBSCRIBE to catalog changes (GB/T 28181 §9.11): where the device accepts, its NOTIFYs are applied
   * as they come and the subscription is renewed before it runs out; a device that refuses is left to
   * the catalog query at each registration.
   */
  private async subscribeCatalog(deviceId: string) {
    const device = this.devices.get(deviceId);
    if (!device || this.closing) return;
    const sn = this.nextSn();
    try {
      const res = await this.endpoint.request(device.peer, {
        method: 'SUBSCRIBE',
        targetId: deviceId,
        headers: [
          ['Event', `Catalog;id=${sn}`],
          ['Expires', String(SUBSCRIBE_EXPIRES_SEC)],
        ],
        body: buildManscdp('Query', { CmdType: 'Catalog', SN: sn, DeviceID: deviceId }),
        contentType: MANSCDP,
      });
      if (res.status < 200 || res.status >= 300) {
        this.log.info({ device: deviceId, status: res.status }, 'GB device declined the catalog subscription');
        return;
      }
      const granted = Number(header(res, 'Expires') ?? SUBSCRIBE_EXPIRES_SEC);
      const renewMs = Math.max(1, Number.isFinite(granted) && granted > 0 ? granted : SUBSCRIBE_EXPIRES_SEC) * 900;
      if (this.devices.get(deviceId) !== device) return;
      if (device.subscribeTimer) clearTimeout(device.subscribeTimer);
      device.subscribeTimer = setTimeout(() => void this.subscribeCatalog(deviceId), renewMs).unref();
    } catch (e) {
      this.log.info({ device: deviceId, err: (e as Error).message }, 'GB catalog subscription failed');
    }
  }

  // ---- keepalive and offline -------------------------------------------------------------------

  private sweep() {
    const now = this.clock();
    const silenceMs = this.cfg.keepaliveMissed * this.cfg.keepaliveIntervalSec * 1000;
    for (const d of this.devices.values()) {
      if (now >= d.expiresAt) void this.goOffline(d.id, 'registration expired');
      else if (now - d.lastKeepaliveAt > silenceMs) void this.goOffline(d.id, `no keepalive for ${Math.round((now - d.lastKeepaliveAt) / 1000)} s`);
    }
  }

  /** An admin deleted or disabled the device, or changed its password: it must register again, on the new terms. */
  revoke(deviceId: string): void {
    if (this.devices.has(deviceId)) void this.goOffline(deviceId, 'revoked by an admin');
  }

  /**
   * Cluster mode, after this node could not hear the others (a Redis outage): a revocation made on
   * another node meanwhile was missed, so every registration held here is checked against the store.
   */
  async recheckRegistrations(): Promise<void> {
    for (const d of [...this.devices.values()]) {
      const record = await this.opts.directory.device(d.id);
      if (this.devices.get(d.id) !== d) continue;
      const samePassword = record?.sealedPassword && d.sealedPassword ? record.sealedPassword.equals(d.sealedPassword) : false;
      if (!record?.enabled || !samePassword) this.revoke(d.id);
    }
  }

  /** Forgets the device's registration, writes it offline and marks its channels offline with the reason. */
  private async goOffline(deviceId: string, why: string) {
    const d = this.devices.get(deviceId);
    if (d?.subscribeTimer) clearTimeout(d.subscribeTimer);
    this.devices.delete(deviceId);
    this.log.info({ device: deviceId, why }, 'GB device offline');
    const now = this.clock();
    this.persist(deviceId, { online: false, transport: d?.peer.transport ?? null, address: d?.peer.address ?? null, port: d?.peer.port ?? null, registeredAt: d?.registeredAt ?? null, expiresAt: now, lastKeepaliveAt: d?.lastKeepaliveAt ?? null });
    const write = this.channelsOffline(deviceId)
      .catch((e: Error) => this.log.error({ device: deviceId, err: e.message }, 'GB channel health write failed'))
      .finally(() => this.writes.delete(write));
    this.writes.add(write);
    await write;
  }

  /** Marks the device's channels offline (reason deviceOffline); the device's presence is the caller's. */
  async channelsOffline(deviceId: string): Promise<void> {
    const error = this.offlineError(deviceId);
    await this.opts.channels.deviceOffline(deviceId, { code: error.code, message: error.message, params: error.params ?? null });
  }

  private offlineError(deviceId: string): GatewayError {
    return reasoned('GW_ERR_CAMERA_UNREACHABLE', 'deviceOffline', { device: deviceId }, `GB device ${deviceId} is not registered (offline)`);
  }

  private online(deviceId: string): LiveDevice {
    const d = this.devices.get(deviceId);
    if (!d) throw this.offlineError(deviceId);
    return d;
  }

  // ---- MESSAGE and NOTIFY ----------------------------------------------------------------------

  /**
   * A MESSAGE or NOTIFY from a device: taken only from where it registered, with a readable MANSCDP
   * body; answered 403 (not registered, or from elsewhere: the device registers again) or 400 otherwise.
   */
  private deviceRequest(req: SipRequest, peer: SipPeer): { deviceId: string; device: LiveDevice; parsed: Manscdp } | null {
    const deviceId = fromUser(req);
    const device = deviceId ? this.devices.get(deviceId) : undefined;
    if (!deviceId || !device || !sameDevicePeer(device.peer, peer)) {
      this.endpoint.reply(req, peer, 403, 'Forbidden (not registered)');
      return null;
    }
    try {
      const parsed = parseManscdp(req.body, this.cfg.maxMessageBytes);
      // A NAT may give the device another UDP port on the same address; later requests go where it last spoke from.
      device.peer = peer;
      this.endpoint.reply(req, peer, 200, 'OK');
      return { deviceId, device, parsed };
    } catch (e) {
      this.log.info({ device: deviceId, method: req.method, err: (e as Error).message }, 'GB request body refused');
      this.endpoint.reply(req, peer, 400, 'Bad Request (MANSCDP body)');
      return null;
    }
  }

  private async onMessage(req: SipRequest, peer: SipPeer) {
    const accepted = this.deviceRequest(req, peer);
    if (!accepted) return;
    const { deviceId, device, parsed } = accepted;
    switch (parsed.cmdType) {
      case 'Keepalive':
        device.lastKeepaliveAt = this.clock();
        this.persist(deviceId, this.presenceOf(device));
        return;
      case 'Catalog':
        if (parsed.root === 'Response') this.opts.catalog.accept(deviceId, parsed);
        // Some devices send catalog changes as a MESSAGE rather than a NOTIFY.
        else if (parsed.root === 'Notify') await this.opts.catalog.applyNotify(deviceId, items(parsed.body.DeviceList));
        return;
      case 'DeviceInfo':
      case 'DeviceStatus':
        if (parsed.root === 'Response' && parsed.sn !== null) this.settle(deviceId, parsed.cmdType, parsed.sn, parsed.body);
        return;
      case 'MediaStatus':
        if (String(parsed.body.NotifyType ?? '') === '121') this.mediaEnded(deviceId, parsed.deviceId ?? deviceId);
        return;
      default:
        // Alarm, MobilePosition and the rest: acknowledged, not acted on.
        this.log.debug({ device: deviceId, cmdType: parsed.cmdType }, 'GB MESSAGE ignored');
    }
  }

  private async onNotify(req: SipRequest, peer: SipPeer) {
    const accepted = this.deviceRequest(req, peer);
    if (accepted?.parsed.cmdType === 'Catalog') await this.opts.catalog.applyNotify(accepted.deviceId, items(accepted.parsed.body.DeviceList));
  }

  // ---- queries ---------------------------------------------------------------------------------

  private nextSn(): number {
    this.sn = (this.sn % 999_999_999) + 1;
    return this.sn;
  }

  /** Sends a MANSCDP MESSAGE and waits for the device's final answer to it (not for a Response MESSAGE). */
  private async sendManscdp(device: LiveDevice, root: 'Query' | 'Control', fields: Record<string, unknown>, what: string) {
    try {
      const res = await this.endpoint.request(device.peer, { method: 'MESSAGE', targetId: device.id, body: buildManscdp(root, fields), contentType: MANSCDP });
      if (res.status >= 300) throw new GatewayError('GW_ERR_CAMERA_UNREACHABLE', `GB device ${device.id} refused ${what}: ${res.status} ${res.reason}`);
    } catch (e) {
      throw this.requestError(e, device.id);
    }
  }

  private requestError(e: unknown, deviceId: string): Error {
    if (e instanceof SipTimeoutError) {
      const ms = this.cfg.requestTimeoutMs;
      return reasoned('GW_ERR_CAMERA_UNREACHABLE', 'deviceTimeout', { device: deviceId, ms }, `GB device ${deviceId} did not answer within ${ms / 1000} s`);
    }
    return e as Error;
  }

  async queryCatalog(deviceId: string): Promise<{ channels: number }> {
    const device = this.online(deviceId);
    const sn = this.nextSn();
    const imported = this.opts.catalog.begin(deviceId, sn);
    // The importer's own timeout (catalog.timeoutMs) settles it; a send that fails leaves it to that.
    imported.catch(() => undefined);
    await this.sendManscdp(device, 'Query', { CmdType: 'Catalog', SN: sn, DeviceID: deviceId }, 'the catalog query');
    const counts = await imported;
    return { channels: counts.channels };
  }

  queryDeviceInfo(deviceId: string): Promise<Record<string, string>> {
    return this.query(deviceId, 'DeviceInfo');
  }

  queryDeviceStatus(deviceId: string): Promise<Record<string, string>> {
    return this.query(deviceId, 'DeviceStatus');
  }

  /** A query whose answer is a Response MESSAGE of the same SN, awaited for requestTimeoutMs. */
  private async query(deviceId: string, cmdType: 'DeviceInfo' | 'DeviceStatus'): Promise<Record<string, string>> {
    const device = this.online(deviceId);
    const sn = this.nextSn();
    const key = `${deviceId}\u0000${cmdType}\u0000${sn}`;
    const ms = this.cfg.requestTimeoutMs;
    const answered = new Promise<Record<string, unknown>>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(key);
        reject(reasoned('GW_ERR_CAMERA_UNREACHABLE', 'deviceTimeout', { device: deviceId, ms }, `GB device ${deviceId} did not answer the ${cmdType} query within ${ms / 1000} s`));
      }, ms).unref();
      this.pending.set(key, { resolve, reject, timer });
    });
    answered.catch(() => undefined);
    try {
      await this.sendManscdp(device, 'Query', { CmdType: cmdType, SN: sn, DeviceID: deviceId }, `the ${cmdType} query`);
    } catch (e) {
      this.unpend(key)?.reject(e as Error);
      throw e;
    }
    return flatten(await answered);
  }

  private unpend(key: string): PendingQuery | undefined {
    const p = this.pending.get(key);
    if (!p) return undefined;
    clearTimeout(p.timer);
    this.pending.delete(key);
    return p;
  }

  private settle(deviceId: string, cmdType: string, sn: number, body: Record<string, unknown>) {
    this.unpend(`${deviceId}\u0000${cmdType}\u0000${sn}`)?.resolve(body);
  }

  // ---- PTZ -------------------------------------------------------------------------------------

  /** DeviceControl with a PTZCmd (ptz-cmd.ts builds the hex) to a channel of a registered device. */
  async deviceControl(deviceId: string, channelId: string, ptzCmdHex: string): Promise<void> {
    const device = this.online(deviceId);
    await this.sendManscdp(device, 'Control', { CmdType: 'DeviceControl', SN: this.nextSn(), DeviceID: channelId, PTZCmd: ptzCmdHex }, 'the PTZ command');
  }

  /** The PTZ service's sender (ptz/service.ts PtzSender): the channel's device is read from its registry URL. */
  async send(source: SourceRecord, ptzCmdHex: string): Promise<void> {
    const target = parseGbUrl(source.url);
    if (!target) throw reasoned('GW_ERR_UNSUPPORTED', 'ptz', { camera: source.id }, `camera "${source.id}" is not a GB/T 28181 channel: PTZ is not supported for this source`);
    await this.deviceControl(target.deviceId, target.channelId, ptzCmdHex);
  }

  // ---- live view (GbPlayLink) ------------------------------------------------------------------

  get requestTimeoutMs(): number {
    return this.cfg.requestTimeoutMs;
  }

  async playTarget(deviceId: string): Promise<GbPlayTarget | null> {
    const device = this.devices.get(deviceId);
    if (!device) return null;
    const record = await this.opts.directory.device(deviceId);
    const media = this.cfg.media.host;
    const mediaAddress = this.cfg.publicAddress || (media !== '0.0.0.0' && media !== '::' ? media : this.transport.localAddressFor(device.peer));
    return { streamMode: record?.streamMode ?? 'udp', mediaAddress, deviceAddress: device.peer.address };
  }

  nextSsrc(): string {
    const inUse = new Set<string>();
    for (const d of this.dialogs) {
      const y = /^y=(\d{10})/m.exec(d.remoteSdp);
      if (y) inUse.add(y[1]!);
    }
    for (let i = 0; i < 10_000; i++) {
      this.ssrcCounter = (this.ssrcCounter + 1) % 10_000;
      const ssrc = `0${this.cfg.domain.slice(3, 8)}${String(this.ssrcCounter).padStart(4, '0')}`;
      if (!inUse.has(ssrc)) return ssrc;
    }
    throw new GatewayError('GW_ERR_UNAVAILABLE', 'every live SSRC of the domain is in use');
  }

  async invite(deviceId: string, channelId: string, sdp: string): Promise<SipDialog> {
    const device = this.online(deviceId);
    const dialog = await this.endpoint.invite(device.peer, { targetId: channelId, subject: `${channelId}:0,${this.cfg.id}:0`, sdp }, { timeoutMs: this.cfg.requestTimeoutMs });
    this.dialogs.add(dialog);
    dialog.onBye(() => {
      this.hungUp.add(dialog);
      this.dialogs.delete(dialog);
    });
    return dialog;
  }

  async hangUp(dialog: SipDialog): Promise<void> {
    if (this.hungUp.has(dialog)) return;
    this.hungUp.add(dialog);
    this.dialogs.delete(dialog);
    await dialog.bye().catch((e: Error) => this.log.info({ callId: dialog.callId, err: e.message }, 'GB BYE not answered'));
  }

  onMediaEnded(deviceId: string, channelId: string, cb: () => void): () => void {
    const key = `${deviceId}\u0000${channelId}`;
    let set = this.mediaWatchers.get(key);
    if (!set) this.mediaWatchers.set(key, (set = new Set()));
    set.add(cb);
    return () => {
      set.delete(cb);
      if (set.size === 0 && this.mediaWatchers.get(key) === set) this.mediaWatchers.delete(key);
    };
  }

  /** MediaStatus 121 names the channel whose stream ended; a device that names itself ends all of its streams. */
  private mediaEnded(deviceId: string, named: string) {
    const exact = this.mediaWatchers.get(`${deviceId}\u0000${named}`);
    const targets = exact ? [exact] : named === deviceId ? [...this.mediaWatchers].filter(([k]) => k.startsWith(`${deviceId}\u0000`)).map(([, s]) => s) : [];
    for (const set of targets) for (const cb of [...set]) cb();
  }

  // ---- shutdown --------------------------------------------------------------------------------

  /** Hangs up every live dialog, lets presence writes finish, and closes the SIP endpoint and sockets. Idempotent. */
  close(): Promise<void> {
    return (this.closing ??= (async () => {
      if (this.sweepTimer) clearInterval(this.sweepTimer);
      for (const d of this.devices.values()) if (d.subscribeTimer) clearTimeout(d.subscribeTimer);
      await Promise.all([...this.dialogs].map((d) => this.hangUp(d)));
      for (const key of [...this.pending.keys()]) this.unpend(key)?.reject(new GatewayError('GW_ERR_UNAVAILABLE', 'the gateway is shutting down'));
      await this.endpoint.close();
      await this.transport.close();
      while (this.writes.size) await Promise.all([...this.writes]);
    })());
  }
}

function safeNameAddr(value: string | undefined) {
  if (!value) return null;
  try {
    return parseNameAddr(value);
  } catch {
    return null;
  }
}

function fromUser(req: SipRequest): string | null {
  const from = safeNameAddr(header(req, 'From'));
  const user = from ? (from.user ?? sipUser(from.uri)) : null;
  return user && DEVICE_ID.test(user) ? user : null;
}

/** The Expires a REGISTER asks for (header, else the Contact's parameter); null when it names none. */
function requestedExpires(req: SipRequest, contact: string | undefined): number | null {
  const raw = header(req, 'Expires') ?? (contact ? /;\s*expires=(\d+)/i.exec(contact)?.[1] : undefined);
  if (raw === undefined) return null;
  const n = Number(raw.trim());
  return Number.isInteger(n) && n >= 0 ? n : null;
}

/** GB/T 28181 §9.10.3: the 200 OK's Date, local time without a zone, which devices set their clocks by. */
export function gbDate(ms: number): string {
  const d = new Date(ms);
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}

/** GB/T 28181-2022 App. I: answer a version header with ours. */
function versionHeader(req: SipRequest): SipHeaders {
  return header(req, 'X-GB-ver') ? [['X-GB-ver', '3.0']] : [];
}

function peerText(p: SipPeer): string {
  return `${p.transport}:${p.address}:${p.port}`;
}

/** A query's answer for the admin pages: its scalar fields as strings, nested ones as JSON. */
function flatten(body: Record<string, unknown>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(body)) {
    if (v === null || v === undefined) continue;
    out[k] = typeof v === 'object' ? JSON.stringify(v) : String(v);
  }
  return out;
}

/**
 * Only REGISTER, which proves the password, says where a device is. Its MESSAGEs and NOTIFYs must come
 * from there: the same TCP connection, or over UDP the same address (a NAT may change the port).
 * Otherwise anyone who knows an id could keep a dead device online, end its live views or remove its channels.
 */
function sameDevicePeer(registered: SipPeer, peer: SipPeer): boolean {
  if (registered.transport !== peer.transport || registered.address !== peer.address) return false;
  return peer.transport === 'udp' || registered.connectionId === undefined || registered.connectionId === peer.connectionId;
}

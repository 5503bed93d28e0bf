/**
 * SIP transactions and dialogs, the RFC 3261 subset GB/T 28181 needs, for both roles: the gateway
 * (REGISTER, MESSAGE, INVITE/ACK/BYE as the platform) and the simulator (a device) use it.
 * No proxies: requests go straight to the peer they came from, so Record-Route and Route are unused.
 */
import { randomBytes } from 'node:crypto';
import { header, headers as headerValues, parseCSeq, parseNameAddr, parseVia, type SipHeaders, type SipMessage, type SipRequest, type SipResponse } from './message.js';
import type { SipLog, SipPeer, SipTransport } from './transport.js';

export class SipTimeoutError extends Error {
  override name = 'SipTimeoutError';
}

export class SipStatusError extends Error {
  override name = 'SipStatusError';
  constructor(
    readonly status: number,
    readonly reason: string,
  ) {
    super(`SIP ${status} ${reason}`);
  }
}

export interface SipDialog { callId: string; remoteSdp: string; peer: SipPeer; onBye(cb: () => void): void; bye(): Promise<void> }

export interface SipEndpointOptions { transport: SipTransport; id: string; domain: string; userAgent: string; publicAddress: string; requestTimeoutMs: number; log?: SipLog }

export interface SipRequestSpec { method: string; targetId: string; targetHost?: string; uri?: string; headers?: SipHeaders; body?: Buffer; contentType?: string }

/** RFC 3261 §17.1.1.1 timers. */
export const SIP_T1_MS = 500;
export const SIP_T2_MS = 4_000;
/** How long a server transaction answers retransmissions (Timer J, 64×T1) and a finished INVITE re-ACKs. */
export const SIP_TRANSACTION_LINGER_MS = 64 * SIP_T1_MS;
/** Server transactions remembered at most (a flood of distinct requests must not grow memory). */
export const SIP_MAX_SERVER_TRANSACTIONS = 10_000;

const MAGIC_COOKIE = 'z9hG4bK';
const MANDATORY = ['Via', 'From', 'To', 'Call-ID', 'CSeq'];
const quietLog: SipLog = { debug() {}, warn() {} };
const token = (bytes = 8) => randomBytes(bytes).toString('hex');

type Handler = (req: SipRequest, peer: SipPeer) => void;

interface ServerTransaction { createdAt: number; peer: SipPeer; final: SipResponse | null; toTag: string }

interface ClientTransaction {
  method: string;
  resolve(r: SipResponse): void;
  reject(err: Error): void;
  retransmit: NodeJS.Timeout | null;
  timeout: NodeJS.Timeout;
}

/** A finished INVITE client transaction: a retransmitted final response gets its ACK again. */
interface InviteAftermath { ack: SipRequest | null; peer: SipPeer; expires: number; abandoned: boolean; request: SipRequest }

interface DialogState {
  callId: string;
  localTag: string;
  remoteTag: string;
  from: string;
  to: string;
  remoteTarget: string;
  localSeq: number;
  peer: SipPeer;
  byeCallbacks: (() => void)[];
  endedByPeer: boolean;
}

export class SipEndpoint {
  private readonly handlers = new Map<string, Handler>();
  private readonly serverTransactions = new Map<string, ServerTransaction>();
  private readonly transactionOf = new WeakMap<SipRequest, string>();
  private readonly clientTransactions = new Map<string, ClientTransaction>();
  private readonly invites = new Map<string, InviteAftermath>();
  private readonly dialogs = new Map<string, DialogState>();
  /** Our 2xx answers to INVITEs over UDP, resent until their ACK comes (RFC 3261 §13.3.1.4), by Call-ID and CSeq number. */
  private readonly unacked = new Map<string, NodeJS.Timeout>();
  private readonly log: SipLog;
  private closed = false;
  private readonly onMessage = (m: SipMessage, peer: SipPeer) => (m.type === 'request' ? this.receiveRequest(m, peer) : this.receiveResponse(m, peer));

  constructor(private readonly opts: SipEndpointOptions) {
    this.log = opts.log ?? quietLog;
    opts.transport.on('message', this.onMessage);
  }

  /** One handler per method; unhandled methods get 405. BYE of our own dialogs and ACK are answered here first. */
  onRequest(method: string, handler: Handler): void {
    this.handlers.set(method.toUpperCase(), handler);
  }

  // ---- server side ----

  private receiveRequest(req: SipRequest, peer: SipPeer): void {
    if (this.closed) return;
    const missing = MANDATORY.find((name) => header(req, name) === undefined);
    let cseq: { seq: number; method: string } | null = null;
    let problem = missing ? `missing ${missing}` : null;
    if (!problem) {
      try {
        cseq = parseCSeq(header(req, 'CSeq')!);
        parseVia(header(req, 'Via')!);
        parseNameAddr(header(req, 'From')!);
        parseNameAddr(header(req, 'To')!);
        if (cseq.method.toUpperCase() !== req.method.toUpperCase()) problem = 'CSeq method differs from the request method';
      } catch (err) {
        problem = (err as Error).message;
      }
    }
    if (problem) {
      this.log.debug({ peer, problem }, 'SIP request refused');
      // An ACK is never answered (RFC 3261 §17.2.1).
      if (req.method !== 'ACK') this.sendResponse(this.buildResponse(req, peer, 400, `Bad Request (${problem})`, {}, null), peer);
      return;
    }
    if (req.method === 'ACK') return this.receiveAck(req, peer);

    const key = this.serverKey(req);
    const known = this.serverTransactions.get(key);
    if (known) {
      if (known.final) this.sendResponse(known.final, peer);
      return;
    }
    this.rememberServerTransaction(key, { createdAt: Date.now(), peer, final: null, toTag: token(4) });
    this.transactionOf.set(req, key);

    if (req.method === 'BYE' && this.receiveBye(req, peer)) return;
    const handler = this.handlers.get(req.method.toUpperCase());
    if (!handler) {
      if (req.method === 'BYE') return this.reply(req, peer, 481, 'Call/Transaction Does Not Exist');
      return this.reply(req, peer, 405, 'Method Not Allowed', { headers: [['Allow', this.allowed()]] });
    }
    try {
      const result: unknown = handler(req, peer);
      if (result instanceof Promise) result.catch((err: unknown) => this.handlerFailed(req, peer, err));
    } catch (err) {
      this.handlerFailed(req, peer, err);
    }
  }

  private handlerFailed(req: SipRequest, peer: SipPeer, err: unknown): void {
    this.log.warn({ err, method: req.method, peer }, 'SIP request handler failed');
    const tx = this.serverTransactions.get(this.transactionOf.get(req) ?? '');
    if (tx && !tx.final) this.reply(req, peer, 500, 'Server Internal Error');
  }

  private allowed(): string {
    return [...new Set(['ACK', 'BYE', ...this.handlers.keys()])].join(', ');
  }

  /** RFC 3261 §17.2.3: the top Via's branch and sent-by with the method; older stacks without the cookie by their dialog ids. */
  private serverKey(req: SipRequest): string {
    const via = parseVia(header(req, 'Via')!);
    if (via.branch?.startsWith(MAGIC_COOKIE)) return `${via.branch}|${via.host}:${via.port ?? ''}|${req.method}`;
    return `${header(req, 'Call-ID')}|${header(req, 'CSeq')}|${parseNameAddr(header(req, 'From')!).tag ?? ''}|${via.host}:${via.port ?? ''}`;
  }

  private rememberServerTransaction(key: string, tx: ServerTransaction): void {
    const now = tx.createdAt;
    // Insertion order is age order: the expired ones are at the front.
    for (const [k, old] of this.serverTransactions) {
      if (now - old.createdAt < SIP_TRANSACTION_LINGER_MS && this.serverTransactions.size < SIP_MAX_SERVER_TRANSACTIONS) break;
      this.serverTransactions.delete(k);
    }
    this.serverTransactions.set(key, tx);
  }

  /** An ACK to a 2xx (a dialog's) or to our non-2xx answer: accepted silently; a handler may watch for it (a device starts media on ACK). */
  private receiveAck(req: SipRequest, peer: SipPeer): void {
    const key = `${header(req, 'Call-ID')}|${parseCSeq(header(req, 'CSeq')!).seq}`;
    clearTimeout(this.unacked.get(key));
    this.unacked.delete(key);
    const handler = this.handlers.get('ACK');
    if (!handler) return;
    try {
      handler(req, peer);
    } catch (err) {
      this.log.warn({ err, peer }, 'SIP ACK handler failed');
    }
  }

  /** A BYE in one of the dialogs our INVITEs made: 200, the dialog ends, its onBye callbacks run. */
  private receiveBye(req: SipRequest, peer: SipPeer): boolean {
    const key = dialogKey(header(req, 'Call-ID')!, parseNameAddr(header(req, 'To')!).tag ?? '', parseNameAddr(header(req, 'From')!).tag ?? '');
    const dialog = this.dialogs.get(key);
    if (!dialog) return false;
    this.dialogs.delete(key);
    this.reply(req, peer, 200, 'OK');
    dialog.endedByPeer = true;
    for (const cb of dialog.byeCallbacks.splice(0)) this.callBye(cb);
    return true;
  }

  private callBye(cb: () => void): void {
    try {
      cb();
    } catch (err) {
      this.log.warn({ err }, 'SIP onBye callback failed');
    }
  }

  /**
   * Answers a request. The answer goes back where the request came from (its source address and
   * port, the connection it arrived on over TCP), which is what reaches a device behind NAT, and the
   * top Via records it (received, rport: RFC 3581). Every answer but 100 gets a To tag.
   */
  reply(req: SipRequest, peer: SipPeer, status: number, reason: string, opts: { headers?: SipHeaders; body?: Buffer; contentType?: string; toTag?: string } = {}): void {
    const tx = this.serverTransactions.get(this.transactionOf.get(req) ?? '');
    if (tx?.final) {
      this.log.debug({ status, method: req.method }, 'SIP request already answered; second answer ignored');
      return;
    }
    // One To tag for every answer in the transaction: a tag given once is kept for the later answers.
    if (tx && opts.toTag) tx.toTag = opts.toTag;
    const response = this.buildResponse(req, peer, status, reason, opts, tx?.toTag ?? token(4));
    if (tx && status >= 200) tx.final = response;
    this.sendResponse(response, peer);
    if (req.method === 'INVITE' && status >= 200 && status < 300 && peer.transport === 'udp') this.resendUntilAck(req, response, peer);
  }

  private resendUntilAck(req: SipRequest, response: SipResponse, peer: SipPeer): void {
    const key = `${header(req, 'Call-ID')}|${parseCSeq(header(req, 'CSeq')!).seq}`;
    const giveUpAt = Date.now() + SIP_TRANSACTION_LINGER_MS;
    let interval = SIP_T1_MS;
    const again = () => {
      if (Date.now() >= giveUpAt) return void this.unacked.delete(key);
      this.sendResponse(response, peer);
      interval = Math.min(interval * 2, SIP_T2_MS);
      this.unacked.set(key, setTimeout(again, interval));
    };
    clearTimeout(this.unacked.get(key));
    this.unacked.set(key, setTimeout(again, interval));
  }

  private buildResponse(req: SipRequest, peer: SipPeer, status: number, reason: string, opts: { headers?: SipHeaders; body?: Buffer; contentType?: string; toTag?: string }, defaultTag: string | null): SipResponse {
    const out: SipHeaders = [];
    headerValues(req, 'Via').forEach((via, i) => out.push(['Via', i === 0 ? withReceived(via, peer) : via]));
    for (const name of ['From', 'To', 'Call-ID', 'CSeq']) {
      let value = header(req, name);
      if (value === undefined) continue;
      if (name === 'To' && status > 100) {
        const tag = opts.toTag ?? defaultTag;
        if (tag && !safeTag(value)) value = `${value};tag=${tag}`;
      }
      out.push([name, value]);
    }
    out.push(['User-Agent', this.opts.userAgent]);
    if (opts.contentType) out.push(['Content-Type', opts.contentType]);
    out.push(...(opts.headers ?? []));
    return { type: 'response', status, reason, headers: out, body: opts.body ?? Buffer.alloc(0) };
  }

  private sendResponse(response: SipResponse, peer: SipPeer): void {
    this.opts.transport.send(peer, response).catch((err: unknown) => this.log.debug({ err, peer, status: response.status }, 'SIP response not sent'));
  }

  // ---- client side ----

  /** The final response (1xx skipped). Over UDP the request is resent from T1 doubling to T2 until answered. */
  async request(peer: SipPeer, r: SipRequestSpec, opts: { timeoutMs?: number } = {}): Promise<SipResponse> {
    return this.transact(peer, this.buildRequest(peer, r), opts.timeoutMs);
  }

  private buildRequest(peer: SipPeer, r: SipRequestSpec): SipRequest {
    const method = r.method.toUpperCase();
    const targetHost = r.targetHost ?? this.opts.domain;
    const defaults: SipHeaders = [
      ['Via', this.via(peer)],
      ['From', `<sip:${this.opts.id}@${this.opts.domain}>;tag=${token(4)}`],
      ['To', `<sip:${r.targetId}@${targetHost}>`],
      ['Call-ID', `${token(12)}`],
      ['CSeq', `${1 + Math.floor(Math.random() * 10_000)} ${method}`],
      ['Max-Forwards', '70'],
      ['User-Agent', this.opts.userAgent],
    ];
    if (['INVITE', 'REGISTER', 'SUBSCRIBE', 'NOTIFY'].includes(method)) defaults.push(['Contact', this.contact(peer)]);
    // The caller's headers replace defaults of the same name (a REGISTER refresh keeps its Call-ID, From tag and next CSeq).
    const own = r.headers ?? [];
    const overridden = new Set(own.map(([n]) => n.toLowerCase()));
    const hdrs: SipHeaders = [...defaults.filter(([n]) => !overridden.has(n.toLowerCase())), ...own];
    if (r.contentType) hdrs.push(['Content-Type', r.contentType]);
    return { type: 'request', method, uri: r.uri ?? `sip:${r.targetId}@${targetHost}`, headers: hdrs, body: r.body ?? Buffer.alloc(0) };
  }

  private localAddress(peer: SipPeer): string {
    return this.opts.publicAddress || this.opts.transport.localAddressFor(peer);
  }

  private localPort(peer: SipPeer): number {
    return (peer.transport === 'udp' ? this.opts.transport.ports.udp : this.opts.transport.ports.tcp) ?? this.opts.transport.ports.udp ?? this.opts.transport.ports.tcp ?? 5060;
  }

  private via(peer: SipPeer): string {
    return `SIP/2.0/${peer.transport.toUpperCase()} ${this.localAddress(peer)}:${this.localPort(peer)};rport;branch=${MAGIC_COOKIE}${token(8)}`;
  }

  private contact(peer: SipPeer): string {
    return `<sip:${this.opts.id}@${this.localAddress(peer)}:${this.localPort(peer)}>`;
  }

  private transact(peer: SipPeer, req: SipRequest, timeoutMs = this.opts.requestTimeoutMs): Promise<SipResponse> {
    if (this.closed) return Promise.reject(new Error('SIP endpoint closed'));
    const branch = parseVia(header(req, 'Via')!).branch ?? '';
    const method = req.method;
    const key = `${branch}|${method}`;
    return new Promise<SipResponse>((resolve, reject) => {
      const finish = () => {
        this.clientTransactions.delete(key);
        if (tx.retransmit) clearTimeout(tx.retransmit);
        clearTimeout(tx.timeout);
      };
      const tx: ClientTransaction = {
        method,
        resolve: (r) => {
          finish();
          resolve(r);
        },
        reject: (err) => {
          finish();
          reject(err);
        },
        retransmit: null,
        timeout: setTimeout(() => {
          if (method === 'INVITE') this.remember(branch, { ack: null, peer, expires: Date.now() + SIP_TRANSACTION_LINGER_MS, abandoned: true, request: req });
          tx.reject(new SipTimeoutError(`no final answer to ${method} from ${peer.address}:${peer.port} within ${timeoutMs} ms`));
        }, timeoutMs),
      };
      this.clientTransactions.set(key, tx);
      const send = () => this.opts.transport.send(peer, req).catch((err: unknown) => tx.reject(err instanceof Error ? err : new Error(String(err))));
      void send();
      if (peer.transport === 'udp') {
        let interval = SIP_T1_MS;
        const again = () => {
          void send();
          interval = method === 'INVITE' ? interval * 2 : Math.min(interval * 2, SIP_T2_MS);
          tx.retransmit = setTimeout(again, interval);
        };
        tx.retransmit = setTimeout(again, interval);
      }
    });
  }

  private receiveResponse(res: SipResponse, peer: SipPeer): void {
    const via = header(res, 'Via');
    const cseq = header(res, 'CSeq');
    if (!via || !cseq) return this.log.debug({ peer }, 'SIP response without Via or CSeq ignored');
    let branch: string;
    let method: string;
    try {
      branch = parseVia(via).branch ?? '';
      method = parseCSeq(cseq).method.toUpperCase();
    } catch (err) {
      return this.log.debug({ peer, err }, 'SIP response with a bad Via or CSeq ignored');
    }
    const tx = this.clientTransactions.get(`${branch}|${method}`);
    if (tx) {
      if (res.status < 200) {
        // A provisional answer: the INVITE is being worked on, stop resending it (Timer A ends).
        if (method === 'INVITE' && tx.retransmit) {
          clearTimeout(tx.retransmit);
          tx.retransmit = null;
        }
        return;
      }
      return tx.resolve(res);
    }
    if (method === 'INVITE' && res.status >= 200) this.lateInviteResponse(branch, res);
  }

  /** A final INVITE answer after its transaction ended: resend the ACK; a 2xx to an INVITE we gave up on gets ACK then BYE. */
  private lateInviteResponse(branch: string, res: SipResponse): void {
    const done = this.invites.get(branch);
    if (!done || done.expires < Date.now()) return;
    if (done.ack) return void this.opts.transport.send(done.peer, done.ack).catch(() => {});
    if (!done.abandoned) return;
    done.abandoned = false;
    if (res.status >= 300) {
      done.ack = this.nonSuccessAck(done.request, res);
      void this.opts.transport.send(done.peer, done.ack).catch(() => {});
      return;
    }
    // The device started a stream nobody waits for any more: acknowledge it and hang up at once.
    const dialog = this.dialogFrom(done.request, res, done.peer);
    done.ack = this.successAck(dialog);
    void this.opts.transport.send(done.peer, done.ack).catch(() => {});
    this.sendBye(dialog).catch((err: unknown) => this.log.debug({ err }, 'BYE after a late 200 failed'));
  }

  private remember(branch: string, aftermath: InviteAftermath): void {
    const now = Date.now();
    for (const [k, old] of this.invites) {
      if (old.expires > now && this.invites.size < SIP_MAX_SERVER_TRANSACTIONS) break;
      this.invites.delete(k);
    }
    this.invites.set(branch, aftermath);
  }

  /** INVITE with SDP; on 2xx the ACK goes out and the dialog is returned; on anything else SipStatusError. */
  async invite(peer: SipPeer, r: { targetId: string; targetHost?: string; subject: string; sdp: string }, opts: { timeoutMs?: number } = {}): Promise<SipDialog> {
    const req = this.buildRequest(peer, { method: 'INVITE', targetId: r.targetId, targetHost: r.targetHost, headers: [['Subject', r.subject]], contentType: 'APPLICATION/SDP', body: Buffer.from(r.sdp) });
    const branch = parseVia(header(req, 'Via')!).branch ?? '';
    const res = await this.transact(peer, req, opts.timeoutMs);
    const linger = Date.now() + SIP_TRANSACTION_LINGER_MS;
    if (res.status >= 300) {
      // Inside the transaction (RFC 3261 §17.1.1.3): same branch, so the device stops resending its answer.
      this.remember(branch, { ack: this.nonSuccessAck(req, res), peer, expires: linger, abandoned: false, request: req });
      void this.opts.transport.send(peer, this.invites.get(branch)!.ack!).catch(() => {});
      throw new SipStatusError(res.status, res.reason);
    }
    const state = this.dialogFrom(req, res, peer);
    const ack = this.successAck(state);
    this.remember(branch, { ack, peer, expires: linger, abandoned: false, request: req });
    if (this.closed) throw new Error('SIP endpoint closed');
    this.dialogs.set(dialogKey(state.callId, state.localTag, state.remoteTag), state);
    try {
      await this.opts.transport.send(peer, ack);
    } catch (err) {
      // Without the ACK the caller gets no dialog to end: end it here, so the device does not stream to nobody.
      this.dialogs.delete(dialogKey(state.callId, state.localTag, state.remoteTag));
      void this.sendBye(state).catch(() => {});
      throw err;
    }
    return {
      callId: state.callId,
      remoteSdp: res.body.toString('utf8'),
      peer,
      onBye: (cb) => (state.endedByPeer ? queueMicrotask(() => this.callBye(cb)) : void state.byeCallbacks.push(cb)),
      bye: async () => {
        const key = dialogKey(state.callId, state.localTag, state.remoteTag);
        if (this.dialogs.get(key) !== state) return;
        this.dialogs.delete(key);
        await this.sendBye(state);
      },
    };
  }

  private dialogFrom(req: SipRequest, res: SipResponse, peer: SipPeer): DialogState {
    const from = header(req, 'From')!;
    const to = header(res, 'To') ?? header(req, 'To')!;
    const contact = header(res, 'Contact');
    let remoteTarget = req.uri;
    try {
      if (contact) remoteTarget = parseNameAddr(contact).uri;
    } catch {
      // A Contact we cannot read: in-dialog requests keep the INVITE's URI.
    }
    return {
      callId: header(req, 'Call-ID')!,
      localTag: parseNameAddr(from).tag ?? '',
      remoteTag: safeTag(to) ?? '',
      from,
      to,
      remoteTarget,
      localSeq: parseCSeq(header(req, 'CSeq')!).seq,
      peer,
      byeCallbacks: [],
      endedByPeer: false,
    };
  }

  /** ACK to a 2xx is its own transaction (new branch) to the Contact of the 200 (RFC 3261 §13.2.2.4). */
  private successAck(d: DialogState): SipRequest {
    return this.inDialog(d, 'ACK');
  }

  /** A request inside the dialog: its Call-ID and tags, to its remote target, with the dialog's CSeq. */
  private inDialog(d: DialogState, method: 'ACK' | 'BYE'): SipRequest {
    return {
      type: 'request',
      method,
      uri: d.remoteTarget,
      headers: [
        ['Via', this.via(d.peer)],
        ['From', d.from],
        ['To', d.to],
        ['Call-ID', d.callId],
        ['CSeq', `${d.localSeq} ${method}`],
        ['Max-Forwards', '70'],
        ['User-Agent', this.opts.userAgent],
      ],
      body: Buffer.alloc(0),
    };
  }

  private nonSuccessAck(req: SipRequest, res: SipResponse): SipRequest {
    return {
      type: 'request',
      method: 'ACK',
      uri: req.uri,
      headers: [
        ['Via', header(req, 'Via')!],
        ['From', header(req, 'From')!],
        ['To', header(res, 'To') ?? header(req, 'To')!],
        ['Call-ID', header(req, 'Call-ID')!],
        ['CSeq', `${parseCSeq(header(req, 'CSeq')!).seq} ACK`],
        ['Max-Forwards', '70'],
      ],
      body: Buffer.alloc(0),
    };
  }

  private async sendBye(d: DialogState): Promise<void> {
    d.localSeq++;
    await this.transact(d.peer, this.inDialog(d, 'BYE'));
  }


  /** What the endpoint holds now: each is bounded or ends with its transaction or dialog. */
  get sizes(): { serverTransactions: number; clientTransactions: number; finishedInvites: number; dialogs: number; unackedAnswers: number } {
    return { serverTransactions: this.serverTransactions.size, clientTransactions: this.clientTransactions.size, finishedInvites: this.invites.size, dialogs: this.dialogs.size, unackedAnswers: this.unacked.size };
  }

  /** Rejects pending requests and forgets dialogs without sending BYE; the transport stays its owner's to close. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.opts.transport.off('message', this.onMessage);
    for (const tx of [...this.clientTransactions.values()]) tx.reject(new Error('SIP endpoint closed'));
    this.dialogs.clear();
    this.invites.clear();
    this.serverTransactions.clear();
    for (const timer of this.unacked.values()) clearTimeout(timer);
    this.unacked.clear();
  }
}

const dialogKey = (callId: string, localTag: string, remoteTag: string) => `${callId}|${localTag}|${remoteTag}`;

/** The tag of a From/To value, or null (also when the value cannot be read). */
function safeTag(value: string): string | null {
  try {
    return parseNameAddr(value).tag;
  } catch {
    return null;
  }
}

/** The top Via as answered: `received` when the source differs from what it says, `rport=<port>` when it asked (RFC 3581). */
function withReceived(value: string, peer: SipPeer): string {
  let via;
  try {
    via = parseVia(value);
  } catch {
    return value;
  }
  let out = value;
  if (via.rport === true) out = out.replace(/;\s*rport(?=;|$|\s)/i, `;rport=${peer.port}`);
  if ((via.rport !== null || via.host !== peer.address) && via.received === null) out += `;received=${peer.address}`;
  return out;
}

import { randomBytes } from 'node:crypto';
import type { Test } from 'tap';
import { digestResponse, parseDigestParams } from '../../gateway/src/gb28181/sip/digest.js';
import { SipEndpoint } from '../../gateway/src/gb28181/sip/endpoint.js';
import { header, type SipHeaders, type SipResponse } from '../../gateway/src/gb28181/sip/message.js';
import { SipTransport, type SipPeer } from '../../gateway/src/gb28181/sip/transport.js';

/**
 * A bare GB/T 28181 device for the registrar's tests, on the project's SIP endpoint: each REGISTER
 * is built by the test (which nonce, uri, nc, password, Expires), so digest edge cases can be sent
 * as they are. Queries from the gateway are answered 200 and recorded. For live view, catalogs and
 * faults, the tests use the simulator (scripts/sim/gb-device.ts).
 */
export class RegistrarClient {
  readonly queries: string[] = [];
  private sn = 1;
  private closed = false;

  private constructor(
    readonly id: string,
    readonly password: string,
    readonly server: SipPeer,
    readonly serverId: string,
    readonly domain: string,
    readonly transport: SipTransport,
    readonly endpoint: SipEndpoint,
  ) {
    endpoint.onRequest('MESSAGE', (req, peer) => {
      endpoint.reply(req, peer, 200, 'OK');
      this.queries.push(/<CmdType>(\w+)<\/CmdType>/.exec(req.body.toString('utf8'))?.[1] ?? '');
    });
  }

  static async start(
    t: Test,
    o: { id: string; password: string; gateway: { port: number; transport?: 'udp' | 'tcp' }; serverId?: string; domain?: string },
  ): Promise<RegistrarClient> {
    const tcp = o.gateway.transport === 'tcp';
    const transport = new SipTransport({ host: '127.0.0.1', port: 0, udp: !tcp, tcp, maxMessageBytes: 262_144 });
    await transport.listen();
    const domain = o.domain ?? '3402000000';
    const endpoint = new SipEndpoint({ transport, id: o.id, domain, userAgent: 'wallgate-test-device', publicAddress: '', requestTimeoutMs: 2_000 });
    const server: SipPeer = { transport: tcp ? 'tcp' : 'udp', address: '127.0.0.1', port: o.gateway.port };
    const device = new RegistrarClient(o.id, o.password, server, o.serverId ?? '34020000002000000001', domain, transport, endpoint);
    t.teardown(() => device.close());
    return device;
  }

  /** A REGISTER with these extra headers (Authorization, Expires), its final answer. */
  registerRaw(extra: SipHeaders = []): Promise<SipResponse> {
    return this.endpoint.request(this.server, { method: 'REGISTER', targetId: this.id, uri: `sip:${this.serverId}@${this.domain}`, headers: extra });
  }

  /** The Authorization answering a 401's challenge, over `uri` (devices differ in the uri they use). */
  authorization(challenge: SipResponse, o: { password?: string; uri?: string; qop?: boolean; nc?: string } = {}): string {
    const c = parseDigestParams(header(challenge, 'WWW-Authenticate') ?? '');
    const uri = o.uri ?? `sip:${this.serverId}@${this.domain}`;
    const qop = o.qop !== false && c.qop ? 'auth' : undefined;
    const nc = o.nc ?? '00000001';
    const cnonce = randomBytes(8).toString('hex');
    const response = digestResponse({ username: this.id, realm: c.realm!, password: o.password ?? this.password, method: 'REGISTER', uri, nonce: c.nonce!, ...(qop ? { qop, nc, cnonce } : {}) });
    const parts = [`username="${this.id}"`, `realm="${c.realm}"`, `nonce="${c.nonce}"`, `uri="${uri}"`, `response="${response}"`, 'algorithm=MD5'];
    if (qop) parts.push(`qop=${qop}`, `nc=${nc}`, `cnonce="${cnonce}"`);
    return `Digest ${parts.join(', ')}`;
  }

  /** REGISTER → 401 → REGISTER with digest: the final answer. */
  async register(expires = 3600): Promise<SipResponse> {
    const challenge = await this.registerRaw([['Expires', String(expires)]]);
    if (challenge.status !== 401) return challenge;
    return this.registerRaw([
      ['Expires', String(expires)],
      ['Authorization', this.authorization(challenge)],
    ]);
  }

  /** A MANSCDP MESSAGE to the gateway: its final answer. */
  message(xml: string): Promise<SipResponse> {
    return this.endpoint.request(this.server, { method: 'MESSAGE', targetId: this.serverId, body: Buffer.from(xml), contentType: 'Application/MANSCDP+xml' });
  }

  keepalive(): Promise<SipResponse> {
    return this.message(notify('Keepalive', this.sn++, this.id, '<Status>OK</Status>'));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.endpoint.close();
    await this.transport.close();
  }
}

function notify(cmd: string, sn: number, deviceId: string, rest: string): string {
  return `<?xml version="1.0" encoding="GB2312"?>\r\n<Notify><CmdType>${cmd}</CmdType><SN>${sn}</SN><DeviceID>${deviceId}</DeviceID>${rest}</Notify>\r\n`;
}

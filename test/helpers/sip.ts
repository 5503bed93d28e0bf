import type { Test } from 'tap';
import { SipEndpoint } from '../../gateway/src/gb28181/sip/endpoint.js';
import { SipTransport } from '../../gateway/src/gb28181/sip/transport.js';

export const GATEWAY_ID = '34020000002000000001';
export const DEVICE_ID = '34020000001320000001';
export const DOMAIN = '3402000000';

export interface SipNode { transport: SipTransport; endpoint: SipEndpoint; udpPort: number | null; tcpPort: number | null }

/** A transport and an endpoint on loopback, free ports, closed when the test ends. */
export async function sipNode(t: Test, id: string, opts: { udp?: boolean; tcp?: boolean; maxMessageBytes?: number; requestTimeoutMs?: number; stallTimeoutMs?: number } = {}): Promise<SipNode> {
  const transport = new SipTransport({ host: '127.0.0.1', port: 0, udp: opts.udp ?? true, tcp: opts.tcp ?? true, maxMessageBytes: opts.maxMessageBytes ?? 65_536, stallTimeoutMs: opts.stallTimeoutMs });
  const { udpPort, tcpPort } = await transport.listen();
  const endpoint = new SipEndpoint({ transport, id, domain: DOMAIN, userAgent: `test ${id}`, publicAddress: '', requestTimeoutMs: opts.requestTimeoutMs ?? 4_000 });
  t.teardown(async () => {
    await endpoint.close();
    await transport.close();
  });
  return { transport, endpoint, udpPort, tcpPort };
}

/** The promise's value, or a failure naming what did not happen within ms. */
export function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

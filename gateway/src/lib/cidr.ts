import { BlockList, isIP } from 'node:net';

export interface Cidr {
  address: string;
  prefix: number;
  family: 'ipv4' | 'ipv6';
}

export function parseCidr(text: string): Cidr {
  const m = /^([^/\s]+)\/(\d{1,3})$/.exec(text);
  const version = m ? isIP(m[1]!) : 0;
  if (!m || !version) throw new Error(`"${text}" is not a CIDR such as 10.0.0.0/8 or fd00::/8`);
  const prefix = Number(m[2]);
  if (prefix > (version === 4 ? 32 : 128)) throw new Error(`"${text}" has a prefix longer than the address`);
  return { address: m[1]!, prefix, family: version === 4 ? 'ipv4' : 'ipv6' };
}

function blockList(cidrs: string[]): BlockList {
  const list = new BlockList();
  for (const c of cidrs) {
    const { address, prefix, family } = parseCidr(c);
    list.addSubnet(address, prefix, family);
  }
  return list;
}

/** Which IP addresses camera URLs may point at: deny wins; a non-empty allow-list admits only its networks. */
export class NetworkPolicy {
  private readonly allow: BlockList;
  private readonly deny: BlockList;
  private readonly allowAll: boolean;

  constructor(networks: { allow: string[]; deny: string[] }) {
    this.allow = blockList(networks.allow);
    this.deny = blockList(networks.deny);
    this.allowAll = networks.allow.length === 0;
  }

  get hasAllowList(): boolean {
    return !this.allowAll;
  }

  /** null when the address is allowed, otherwise why not. */
  check(ip: string): string | null {
    const version = isIP(ip);
    if (!version) return 'not an IP address';
    const family = version === 4 ? 'ipv4' : 'ipv6';
    if (this.deny.check(ip, family)) return 'host is in a denied network (registry.networks.deny)';
    if (!this.allowAll && !this.allow.check(ip, family)) return 'host is outside the allowed networks (registry.networks.allow)';
    return null;
  }
}

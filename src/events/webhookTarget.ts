// Where a webhook may be delivered. Never the gateway itself (a subscription must not call its own
// API); loopback and private ranges only when the operator allows them (the default: on-premise
// CRMs live there), for a multi-tenant gateway whose tenants must not reach its own network.
import { lookup } from 'node:dns/promises';
import { BlockList, isIP } from 'node:net';
import { hostname, networkInterfaces } from 'node:os';

const privateRanges = new BlockList();
for (const [network, prefix] of [
  ['0.0.0.0', 8], ['10.0.0.0', 8], ['100.64.0.0', 10], ['127.0.0.0', 8], ['169.254.0.0', 16],
  ['172.16.0.0', 12], ['192.168.0.0', 16], ['198.18.0.0', 15], ['224.0.0.0', 4], ['240.0.0.0', 4],
] as const) privateRanges.addSubnet(network, prefix, 'ipv4');
for (const [network, prefix] of [['::', 128], ['::1', 128], ['fc00::', 7], ['fe80::', 10], ['ff00::', 8]] as const) {
  privateRanges.addSubnet(network, prefix, 'ipv6');
}

/** An IPv4-mapped IPv6 address (`::ffff:127.0.0.1`, or `::ffff:7f00:1` as the URL parser writes it) as
 * its IPv4 address, so no comparison can be passed by writing an IPv4 address the IPv6 way. */
export function unmappedAddress(address: string): string {
  const a = address.replace(/^\[|\]$/g, '').toLowerCase();
  const dotted = /^(?:0{0,4}:){0,4}:?(?:0{0,4}:)?ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(a);
  if (dotted && isIP(dotted[1]!) === 4) return dotted[1]!;
  const hex = /^(?:0{0,4}:){0,4}:?(?:0{0,4}:)?ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(a);
  if (hex && isIP(a) === 6) {
    const high = parseInt(hex[1]!, 16), low = parseInt(hex[2]!, 16);
    return [high >> 8, high & 255, low >> 8, low & 255].join('.');
  }
  return a;
}

export function isPrivateAddress(address: string): boolean {
  const plain = unmappedAddress(address);
  const family = isIP(plain);
  if (family === 0) return false;
  return privateRanges.check(plain, family === 4 ? 'ipv4' : 'ipv6');
}

/** A target that is refused for good (private, or the gateway itself); a name that does not resolve is only retried. */
export class WebhookTargetError extends Error {}

const defaultPort = (url: URL) => Number(url.port || (url.protocol === 'https:' ? 443 : 80));

/** The gateway's own addresses: its public URL, and its HTTP port on this machine's names and addresses. */
export class GatewayAddress {
  constructor(private readonly publicUrl: string, private readonly port: () => number) {}

  private localAddresses(): Set<string> {
    const local = new Set(['localhost', '0.0.0.0', '::', hostname().toLowerCase()]);
    for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) local.add(a.address.toLowerCase());
    return local;
  }

  /** Whether `url` (whose host resolved to `addresses`) would reach this gateway. */
  isSelf(url: URL, addresses: string[] = []): boolean {
    const own = new URL(this.publicUrl);
    // A name with a trailing dot is the same name (fully qualified).
    const name = (u: URL) => u.hostname.toLowerCase().replace(/\.$/, '');
    if (name(url) === name(own) && defaultPort(url) === defaultPort(own) && url.protocol === own.protocol) return true;
    const port = this.port();
    if (port === 0 || defaultPort(url) !== port) return false;
    const host = unmappedAddress(name(url));
    const local = new Set([...this.localAddresses()].map(unmappedAddress));
    const isLocal = (a: string) => local.has(a) || /^127\./.test(a) || a === '::1' || a.endsWith('.localhost');
    return isLocal(host) || addresses.some((a) => isLocal(unmappedAddress(a)));
  }
}

/**
 * Refuses a URL whose host is, or resolves to, a private address (every address it resolves to is
 * checked). Without `resolve`, only what the URL itself says is checked (a subscription may name a
 * host before its DNS exists).
 */
export async function checkWebhookTarget(url: string, allowPrivate: boolean, resolve = true, self?: GatewayAddress): Promise<void> {
  const parsed = new URL(url);
  const host = parsed.hostname.replace(/^\[|\]$/g, '');
  if (self?.isSelf(parsed)) throw new WebhookTargetError(`${parsed.host} is the gateway's own address`);
  if (allowPrivate && !self) return;
  if (!allowPrivate && (host === 'localhost' || host.endsWith('.localhost'))) throw new WebhookTargetError(`${host} is a private address`);
  if (!resolve && !isIP(host)) return;
  const addresses = isIP(host) ? [host] : (await lookup(host, { all: true }).catch(() => [])).map((a) => a.address);
  if (addresses.length === 0) throw new Error(`${host} does not resolve`);
  if (self?.isSelf(parsed, addresses)) throw new WebhookTargetError(`${parsed.host} resolves to the gateway's own address`);
  if (allowPrivate) return;
  const blocked = addresses.find(isPrivateAddress);
  if (blocked) throw new WebhookTargetError(`${host} resolves to a private address (${blocked})`);
}

/** The same check for a tenant-set server host that is not a URL (IMAP, SMTP); a host a URL would read differently is refused. */
export async function checkProviderHost(host: string, allowPrivate: boolean): Promise<void> {
  const literal = isIP(host) === 6 ? `[${host}]` : host;
  let parsed: URL | undefined;
  try { parsed = new URL(`http://${literal}/`); } catch { /* refused below */ }
  if (!parsed || (!isIP(host) && parsed.hostname !== host.toLowerCase())) throw new WebhookTargetError(`${JSON.stringify(host)} is not a plain host name`);
  await checkWebhookTarget(parsed.href, allowPrivate);
}

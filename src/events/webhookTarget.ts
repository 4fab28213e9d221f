// Where a webhook may be delivered. A tenant's URL must not reach the gateway's own network
// (Redis on loopback, cloud metadata, private hosts) unless the operator allows private targets.
import { lookup } from 'node:dns/promises';
import { BlockList, isIP } from 'node:net';

const privateRanges = new BlockList();
for (const [network, prefix] of [
  ['0.0.0.0', 8], ['10.0.0.0', 8], ['100.64.0.0', 10], ['127.0.0.0', 8], ['169.254.0.0', 16],
  ['172.16.0.0', 12], ['192.168.0.0', 16], ['198.18.0.0', 15], ['224.0.0.0', 4], ['240.0.0.0', 4],
] as const) privateRanges.addSubnet(network, prefix, 'ipv4');
for (const [network, prefix] of [['::', 128], ['::1', 128], ['fc00::', 7], ['fe80::', 10], ['ff00::', 8]] as const) {
  privateRanges.addSubnet(network, prefix, 'ipv6');
}

export function isPrivateAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 0) return false;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return privateRanges.check(mapped[1]!, 'ipv4');
  return privateRanges.check(address, family === 4 ? 'ipv4' : 'ipv6');
}

/** A target that is refused for good (private); a name that does not resolve is only retried. */
export class WebhookTargetError extends Error {}

/**
 * Refuses a URL whose host is, or resolves to, a private address (every address it resolves to is
 * checked). Without `resolve`, only what the URL itself says is checked (a subscription may name a
 * host before its DNS exists).
 */
export async function checkWebhookTarget(url: string, allowPrivate: boolean, resolve = true): Promise<void> {
  if (allowPrivate) return;
  const host = new URL(url).hostname.replace(/^\[|\]$/g, '');
  if (host === 'localhost' || host.endsWith('.localhost')) throw new WebhookTargetError(`${host} is a private address`);
  if (!resolve && !isIP(host)) return;
  const addresses = isIP(host) ? [host] : (await lookup(host, { all: true }).catch(() => [])).map((a) => a.address);
  if (addresses.length === 0) throw new Error(`${host} does not resolve`);
  const blocked = addresses.find(isPrivateAddress);
  if (blocked) throw new WebhookTargetError(`${host} resolves to a private address (${blocked})`);
}

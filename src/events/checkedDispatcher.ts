// An HTTP dispatcher that connects only to addresses that pass the target check, checked as the
// connection is made: a name checked before the request cannot resolve to another address (DNS
// rebinding) by the time the socket opens. TLS still verifies the certificate against the name.
import { lookup as dnsLookup } from 'node:dns';
import { isIP } from 'node:net';
import { Agent, buildConnector } from 'undici';
import { GatewayAddress, isPrivateAddress, WebhookTargetError } from './webhookTarget.ts';

export type AddressLookup = (hostname: string) => Promise<string[]>;

const systemLookup: AddressLookup = (hostname) => new Promise((resolve, reject) => {
  dnsLookup(hostname, { all: true }, (error, addresses) => (error ? reject(error) : resolve(addresses.map((a) => a.address))));
});

export interface CheckedDispatcherOptions {
  allowPrivate: boolean;
  self?: GatewayAddress;
  /** How a name becomes addresses (tests pass their own). */
  lookup?: AddressLookup;
  connectTimeoutMs?: number;
}

/** The address to connect to for `hostname`, after every address it resolves to passed the check. */
export async function checkedAddress(hostname: string, port: number, protocol: string, options: CheckedDispatcherOptions): Promise<string> {
  const host = hostname.replace(/^\[|\]$/g, '');
  const addresses = isIP(host) ? [host] : await (options.lookup ?? systemLookup)(host);
  if (addresses.length === 0) throw new Error(`${host} does not resolve`);
  const url = new URL(`${protocol}//${isIP(host) === 6 ? `[${host}]` : host}:${port}/`);
  if (options.self?.isSelf(url, addresses)) throw new WebhookTargetError(`${host} resolves to the gateway's own address`);
  if (!options.allowPrivate) {
    const blocked = addresses.find(isPrivateAddress);
    if (blocked) throw new WebhookTargetError(`${host} resolves to a private address (${blocked})`);
  }
  return addresses[0]!;
}

export function createCheckedDispatcher(options: CheckedDispatcherOptions): Agent {
  const connectTo = buildConnector({ timeout: options.connectTimeoutMs ?? 10_000 });
  return new Agent({
    connect: (connectOptions, callback) => {
      const { hostname, protocol } = connectOptions;
      const port = Number(connectOptions.port || (protocol === 'https:' ? 443 : 80));
      checkedAddress(hostname, port, protocol, options).then((address) => {
        const name = hostname.replace(/^\[|\]$/g, '');
        connectTo({ ...connectOptions, hostname: address, servername: connectOptions.servername ?? (isIP(name) ? undefined : name) }, callback);
      }, (error: Error) => callback(error, null));
    },
  });
}

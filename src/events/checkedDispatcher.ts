// An HTTP dispatcher that connects only to addresses that pass the target check, checked as the
// connection is made: a name checked before the request cannot resolve to another address (DNS
// rebinding) by the time the socket opens. The check sits in the connection's own DNS lookup, so Node
// still tries every checked address in turn (happy eyeballs) and TLS verifies the certificate against
// the name the URL gave.
import { lookup as dnsLookup, type LookupAddress, type LookupOptions } from 'node:dns';
import { isIP } from 'node:net';
import { Agent, buildConnector } from 'undici';
import { GatewayAddress, isPrivateAddress, WebhookTargetError } from './webhookTarget.ts';

export type AddressLookup = (hostname: string) => Promise<string[]>;

const systemLookup: AddressLookup = (hostname) => new Promise((resolve, reject) => {
  dnsLookup(hostname, { all: true }, (error, addresses) => (error ? reject(error) : resolve(addresses.map((a) => a.address))));
});

/**
 * How long a provider call's connect (DNS, TCP, TLS) may take: half the call's timeout, at most 5 s. A connect
 * that hangs then fails on its own as "never left this host" (retried), not as a call whose request may have gone.
 */
export function connectTimeoutFor(callTimeoutMs: number): number {
  return Math.min(maxConnectTimeoutMs, Math.floor(callTimeoutMs / 2));
}

export const maxConnectTimeoutMs = 5_000;

export interface CheckedDispatcherOptions {
  allowPrivate: boolean;
  self?: GatewayAddress;
  /** How a name becomes addresses (tests pass their own). */
  lookup?: AddressLookup;
  connectTimeoutMs?: number;
}

/** Throws unless every one of `addresses`, which `host` names, may be connected to. */
export function checkAddresses(host: string, addresses: string[], port: number, protocol: string, options: CheckedDispatcherOptions): void {
  if (addresses.length === 0) throw new Error(`${host} does not resolve`);
  const url = new URL(`${protocol}//${isIP(host) === 6 ? `[${host}]` : host}:${port}/`);
  if (options.self?.isSelf(url, addresses)) throw new WebhookTargetError(`${host} resolves to the gateway's own address`);
  if (!options.allowPrivate) {
    const blocked = addresses.find(isPrivateAddress);
    if (blocked) throw new WebhookTargetError(`${host} resolves to a private address (${blocked})`);
  }
}

/** The target check's refusal inside a fetch error (undici wraps it as `TypeError: fetch failed`), if that is what it is. */
export function connectRefusal(error: unknown): WebhookTargetError | undefined {
  const cause = (error as { cause?: unknown } | null | undefined)?.cause;
  return cause instanceof WebhookTargetError ? cause : undefined;
}

type LookupCallback = (error: Error | null, address: string | LookupAddress[], family?: number) => void;

/** A `lookup` for net/tls.connect that answers only with addresses that passed the check. */
function checkingLookup(port: number, protocol: string, options: CheckedDispatcherOptions) {
  return (hostname: string, lookupOptions: LookupOptions, callback: LookupCallback) => {
    (options.lookup ?? systemLookup)(hostname).then((addresses) => {
      try {
        checkAddresses(hostname, addresses, port, protocol, options);
      } catch (error) {
        return callback(error as Error, '');
      }
      // Outside the try: the callback is called once, whatever it throws.
      if (lookupOptions.all) callback(null, addresses.map((address) => ({ address, family: isIP(address) })));
      else callback(null, addresses[0]!, isIP(addresses[0]!));
    // A failed lookup keeps its code (EAI_FAIL when it has none): every caller can tell that nothing was sent.
    }, (error: NodeJS.ErrnoException) => callback(Object.assign(new Error(`${hostname} does not resolve (${error.code ?? error.message})`), { code: error.code ?? 'EAI_FAIL' }), ''));
  };
}

const maxConnectors = 64;

export function createCheckedDispatcher(options: CheckedDispatcherOptions): Agent {
  // A connector per scheme and port: the check needs the port (the gateway's own address is host and port).
  // Tenants choose the ports, so the map is capped; a connector let go costs only its TLS session cache.
  const connectors = new Map<string, buildConnector.connector>();
  const connectorFor = (protocol: string, port: number) => {
    const key = `${protocol}${port}`;
    let connector = connectors.get(key);
    if (!connector) {
      connector = buildConnector({ timeout: options.connectTimeoutMs ?? 10_000, lookup: checkingLookup(port, protocol, options) } as buildConnector.BuildOptions);
      if (connectors.size >= maxConnectors) connectors.delete(connectors.keys().next().value!);
      connectors.set(key, connector);
    }
    return connector;
  };
  return new Agent({
    connect: (connectOptions, callback) => {
      const { hostname, protocol } = connectOptions;
      const port = Number(connectOptions.port || (protocol === 'https:' ? 443 : 80));
      try {
        // An address literal is never looked up: it is checked here instead.
        const literal = hostname.replace(/^\[|\]$/g, '');
        if (isIP(literal)) checkAddresses(literal, [literal], port, protocol, options);
        connectorFor(protocol, port)(connectOptions, callback);
      } catch (error) {
        callback(error as Error, null);
      }
    },
  });
}

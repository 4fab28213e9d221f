// The narrow interface every channel adapter implements for the way out. Adapters translate and
// send; they know nothing of routing or storage.
import type { InboxRecord } from '../src/inboxes/inboxDirectory.ts';
import type { NormalizedMessage } from '../src/schema/message.ts';

export interface SendRequest {
  inbox: InboxRecord;
  credentials: Record<string, unknown>;
  /** The contact's id on the channel (OpenID, phone number, address, visitor id). */
  to: string;
  message: NormalizedMessage;
  /** The conversation's earlier messages, oldest first: given to adapters that thread replies (`threadsReplies`). */
  earlier?: NormalizedMessage[];
  /**
   * Wraps the one call that hands the message to the provider (not token fetches or uploads before it), so it
   * is made at most once per message whatever retries and crashes follow: the core keeps a marker around it.
   * `longestMs` bounds the call (its timeouts): an attempt older than that counts as dead. Inside, throw
   * SendOutcomeUnknownError when the request may have reached the provider without a definite answer.
   */
  deliverOnce?: DeliverOnce;
}

export type DeliverOnce = <T extends SendResult>(call: () => Promise<T>, longestMs: number) => Promise<T>;

export interface SendResult {
  /** The provider's id for the sent message, if it gives one. */
  externalId?: string;
  status: 'sent' | 'delivered';
}

/** A send that will never succeed as is (bad number, window closed): not retried. */
export class PermanentSendError extends Error {
  constructor(readonly code: string, message: string) {
    super(message);
  }
}

/** A refusal the provider says is temporary (throttling, its own errors): retried, and its code kept if the retries run out. */
export class RetryableSendError extends Error {
  constructor(readonly code: string, message: string) {
    super(message);
  }
}

/** Another attempt at this same message may still be waiting on the provider: try again after `retryAfterMs`, without counting it as a failure. */
export class SendInFlightError extends Error {
  constructor(readonly retryAfterMs: number, message: string) {
    super(message);
  }
}

/**
 * The request carrying the message may have reached the provider, and no definite answer came back (a timeout
 * after it was sent, a dropped connection, an unreadable answer): sending again could deliver it twice.
 */
export class SendOutcomeUnknownError extends Error {}

/** Failures of a request that never left this host (no connection was made), by the system or undici code. */
const neverLeftCodes = new Set([
  'ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'ENETUNREACH', 'EHOSTUNREACH', 'ERR_INVALID_URL', 'UND_ERR_CONNECT_TIMEOUT',
]);

/** TLS handshake and certificate failures: the connection never carried the request. */
const tlsFailure = /^(ERR_TLS_|ERR_SSL_|CERT_|UNABLE_TO_|DEPTH_ZERO_SELF_SIGNED_CERT$|SELF_SIGNED_CERT_IN_CHAIN$|HOSTNAME_MISMATCH$)/;

/** Whether a fetch (or socket) failure happened before the request could leave this host. */
export function requestNeverLeft(error: unknown): boolean {
  const e = error as { code?: unknown; cause?: { code?: unknown } };
  // Not every error's code is a string (some libraries use numbers).
  const code = String(e.cause?.code ?? e.code ?? '');
  // EAI_*: a name lookup that failed (getaddrinfo's codes): no connection was tried.
  return neverLeftCodes.has(code) || code.startsWith('EAI_') || tlsFailure.test(code);
}

export interface ChannelAdapter {
  readonly type: string;
  /** Set by adapters whose replies thread under earlier messages (email): they get SendRequest.earlier. */
  readonly threadsReplies?: boolean;
  send(request: SendRequest): Promise<SendResult>;
}

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
}

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

export interface ChannelAdapter {
  readonly type: string;
  /** Set by adapters whose replies thread under earlier messages (email): they get SendRequest.earlier. */
  readonly threadsReplies?: boolean;
  send(request: SendRequest): Promise<SendResult>;
}

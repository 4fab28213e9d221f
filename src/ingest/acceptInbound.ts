// The one door into the pipeline: an adapter's inbound message is durably queued (deduplicated by
// the provider's own id) before the provider or visitor is told it was received.
import type { Queue } from 'bullmq';
import { keyDigest } from '../ids.ts';
import { jobOptions, type ContactJob, type InboundJob, type PaymentJob } from '../queues.ts';
import type { InboundMessage } from '../schema/message.ts';
import { Turns } from './turns.ts';

export interface AcceptedInbound { messageId: string; seq: number }

/**
 * Queue adds in flight at once from one process; later ones wait their turn, in arrival order. A burst (a
 * thousand visitors sending at once) then waits as small parsed messages rather than as thousands of adds
 * half-built in the Redis client, which the garbage collector would copy again and again while Redis
 * catches up: that cost the process more than the adds themselves, and stalled its event loop for most
 * of a second.
 */
export const maxAddsInFlight = 256;

export class InboundAcceptor {
  private lastSeq = 0;
  private readonly turns: Turns;

  constructor(private readonly queue: Queue, addsInFlight = maxAddsInFlight) {
    this.turns = new Turns(addsInFlight);
  }

  /** The message id is derived from the provider's id, so every retry of one message names the same message. */
  static messageIdFor(inboxId: string, externalId: string): string {
    return `msg_${keyDigest(`${inboxId}\n${externalId}`)}`;
  }

  async accept(message: InboundMessage, extra: { contactName?: string; visitorHint?: string; thread?: InboundJob['thread'] } = {}): Promise<AcceptedInbound> {
    const messageId = InboundAcceptor.messageIdFor(message.inboxId, message.externalId);
    // The seq is taken on arrival, so a conversation keeps arrival order whatever order workers finish in:
    // a microsecond reading of this process's clock, strictly increasing here (see includes/sequence.lua).
    const seq = this.lastSeq = Math.max(Date.now() * 1000, this.lastSeq + 1);
    const job: InboundJob = {
      messageId, seq, receivedAt: new Date().toISOString(),
      contactName: extra.contactName ?? message.from.name ?? '', visitorHint: extra.visitorHint ?? '', message,
      ...(extra.thread ? { thread: extra.thread } : {}),
    };
    // The seq above orders the conversation, whichever add lands first.
    await this.turns.run(() => this.queue.add('inbound', job, { ...jobOptions.inbound, jobId: messageId }));
    return { messageId, seq };
  }

  /** A channel event about the contact (no conversation), deduplicated like a message by the provider's id. */
  async acceptContactEvent(job: ContactJob): Promise<void> {
    await this.turns.run(() => this.queue.add('contact', job, { ...jobOptions.inbound, jobId: `ce_${keyDigest(`${job.inboxId}\n${job.externalId}`)}` }));
  }

  /** A payment notification, deduplicated by the provider's notification id. */
  async acceptPayment(job: PaymentJob): Promise<void> {
    await this.turns.run(() => this.queue.add('payment', job, { ...jobOptions.inbound, jobId: `pay_${keyDigest(`${job.inboxId}\n${job.payment.notificationId}`)}` }));
  }
}

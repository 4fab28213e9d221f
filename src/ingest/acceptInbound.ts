// The one door into the pipeline: an adapter's inbound message is durably queued (deduplicated by
// the provider's own id) before the provider or visitor is told it was received.
import type { Queue } from 'bullmq';
import { keyDigest } from '../ids.ts';
import { jobOptions, type ContactJob, type InboundJob, type PaymentJob } from '../queues.ts';
import type { InboundMessage } from '../schema/message.ts';

export interface AcceptedInbound { messageId: string; seq: number }

export class InboundAcceptor {
  private lastSeq = 0;
  private lastProducer = 0;
  private readonly queue: Queue;

  /** `producers`: handles of the inbound queue on different connections; message adds take turns on them. */
  constructor(private readonly producers: Queue[]) {
    if (!producers.length) throw new Error('InboundAcceptor needs an inbound queue');
    this.queue = producers[0]!;
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
    // Order needs no single connection: the seq above orders the conversation, whichever add lands first.
    this.lastProducer = (this.lastProducer + 1) % this.producers.length;
    await this.producers[this.lastProducer]!.add('inbound', job, { ...jobOptions.inbound, jobId: messageId });
    return { messageId, seq };
  }

  /** A channel event about the contact (no conversation), deduplicated like a message by the provider's id. */
  async acceptContactEvent(job: ContactJob): Promise<void> {
    await this.queue.add('contact', job, { ...jobOptions.inbound, jobId: `ce_${keyDigest(`${job.inboxId}\n${job.externalId}`)}` });
  }

  /** A payment notification, deduplicated by the provider's notification id. */
  async acceptPayment(job: PaymentJob): Promise<void> {
    await this.queue.add('payment', job, { ...jobOptions.inbound, jobId: `pay_${keyDigest(`${job.inboxId}\n${job.payment.notificationId}`)}` });
  }
}

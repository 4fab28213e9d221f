// The one door into the pipeline: an adapter's inbound message is durably queued (deduplicated by
// the provider's own id) before the provider or visitor is told it was received.
import type { Queue } from 'bullmq';
import { keyDigest } from '../ids.ts';
import { jobOptions, type ContactJob, type InboundJob, type PaymentJob } from '../queues.ts';
import type { InboundMessage } from '../schema/message.ts';
import { HttpError } from '../http/errors.ts';
import { Turns, TurnsFullError } from './turns.ts';

export interface AcceptedInbound { messageId: string; seq: number }

/**
 * Queue adds in flight at once from one process; later ones wait their turn, in arrival order. A burst (a
 * thousand visitors sending at once) then waits as small parsed messages rather than as thousands of adds
 * half-built in the Redis client, which the garbage collector would copy again and again while Redis
 * catches up: that cost the process more than the adds themselves, and stalled its event loop for most
 * of a second.
 */
export const maxAddsInFlight = 256;

/**
 * Adds waiting for a turn at most (a burst of ten thousand visitors' messages fits twice). Past it, while Redis
 * cannot keep up or is away, a message is refused at once (503, `busy`: providers and the widget send it again)
 * instead of piling up in memory until the process runs out of it and loses them all.
 */
export const maxAddsWaiting = 20_000;

/** The gateway is queueing as many messages as it can hold: nothing was stored, the sender should retry. */
export class InboundBusyError extends HttpError {
  constructor() {
    super(503, 'busy', 'the gateway is taking in more messages than it can queue right now; nothing was stored, send it again shortly');
  }
}

export class InboundAcceptor {
  private lastSeq = 0;
  private readonly turns: Turns;

  constructor(private readonly queue: Queue, addsInFlight = maxAddsInFlight, addsWaiting = maxAddsWaiting) {
    this.turns = new Turns(addsInFlight, addsWaiting);
  }

  /** A queue add in its turn; a full line refuses it (InboundBusyError). */
  private async add(task: () => Promise<unknown>): Promise<void> {
    try {
      await this.turns.run(task);
    } catch (error) {
      throw error instanceof TurnsFullError ? new InboundBusyError() : error;
    }
  }

  /**
   * Refuses (InboundBusyError) while the line of adds is full, for a caller with work to do before its add
   * (a mail's attachments to store) that a refusal would leave behind.
   */
  refuseWhileFull(): void {
    if (this.turns.full) throw new InboundBusyError();
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
    await this.add(() => this.queue.add('inbound', job, { ...jobOptions.inbound, jobId: messageId }));
    return { messageId, seq };
  }

  /** A channel event about the contact (no conversation), deduplicated like a message by the provider's id. */
  async acceptContactEvent(job: ContactJob): Promise<void> {
    await this.add(() => this.queue.add('contact', job, { ...jobOptions.inbound, jobId: `ce_${keyDigest(`${job.inboxId}\n${job.externalId}`)}` }));
  }

  /** A payment notification, deduplicated by the provider's notification id. */
  async acceptPayment(job: PaymentJob): Promise<void> {
    await this.add(() => this.queue.add('payment', job, { ...jobOptions.inbound, jobId: `pay_${keyDigest(`${job.inboxId}\n${job.payment.notificationId}`)}` }));
  }
}

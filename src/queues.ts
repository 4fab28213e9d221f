// The pipeline's BullMQ queues, their payloads (validated with zod on both ends) and job options.
import { Queue, type ConnectionOptions, type JobsOptions } from 'bullmq';
import { z } from 'zod';
import { channelSchema, inboundMessageSchema } from './schema/message.ts';

export const queueNames = ['inbound', 'outbound', 'webhooks'] as const;
export type QueueName = (typeof queueNames)[number];

export const inboundJobSchema = z.object({
  messageId: z.string(),
  seq: z.number().int().positive(),
  receivedAt: z.string(),
  contactName: z.string().default(''),
  visitorHint: z.string().default(''),
  message: inboundMessageSchema,
  thread: z.object({
    anchors: z.array(z.object({ kind: z.enum(['conversation', 'message', 'subject']), value: z.string().min(1).max(200) })).max(300),
    records: z.array(z.object({ kind: z.enum(['message', 'subject']), value: z.string().min(1).max(200) })).max(300),
    subjectWindowSeconds: z.number().int().positive(),
    openNew: z.boolean(),
    // Absent in jobs queued before the flag existed: those reopened as before.
    reopen: z.boolean().default(true).describe('false: joins a resolved conversation without reopening it (automated mail)'),
  }).optional().describe('email: which conversation the message joins (src/email/emailThreading.ts); absent: the contact\'s open one'),
});
export type InboundJob = z.infer<typeof inboundJobSchema>;

/** A channel event that describes the contact rather than speaking to an agent (WeChat subscribe, SCAN…). */
export const contactJobSchema = z.object({
  accountId: z.string(), inboxId: z.string(), channel: channelSchema,
  channelId: z.string().min(1).max(512), externalId: z.string().min(1).max(1000), event: z.string().min(1).max(100),
  attributes: z.record(z.string(), z.unknown()), sentAt: z.string(),
});
export type ContactJob = z.infer<typeof contactJobSchema>;

/** A verified, decrypted WeChat Pay notification, for the payer's contact and conversation. */
export const paymentJobSchema = z.object({
  accountId: z.string(), inboxId: z.string(),
  payment: z.object({
    type: z.enum(['payment.succeeded', 'payment.refunded']), notificationId: z.string(), transactionId: z.string(), outTradeNo: z.string(),
    openId: z.string().optional(), appId: z.string().optional(),
    amount: z.object({ total: z.number(), currency: z.string(), payerTotal: z.number().optional(), refund: z.number().optional() }),
    refundId: z.string().optional(), outRefundNo: z.string().optional(), status: z.string(), at: z.string(),
  }),
});
export type PaymentJob = z.infer<typeof paymentJobSchema>;

export const outboundJobSchema = z.object({ accountId: z.string(), messageId: z.string() });
export type OutboundJob = z.infer<typeof outboundJobSchema>;

export const webhookJobSchema = z.object({
  accountId: z.string(),
  subscriptionId: z.string(),
  eventId: z.string(),
  conversationId: z.string().optional(),
  event: z.string().describe('the CloudEvent JSON exactly as it is sent'),
});
export type WebhookJob = z.infer<typeof webhookJobSchema>;

// Completed jobs are removed at once (their ids may be reused); failed ones are kept a week for inspection.
const keepFailed = { age: 7 * 24 * 3600, count: 10_000 };

export const jobOptions: Record<QueueName, JobsOptions> = {
  inbound: { attempts: 10, backoff: { type: 'exponential', delay: 500 }, removeOnComplete: true, removeOnFail: keepFailed },
  outbound: { attempts: 8, backoff: { type: 'exponential', delay: 2000 }, removeOnComplete: true, removeOnFail: keepFailed },
  // Only jobs left by 0.2.0 (deliveries now wait in lanes: src/events/deliveryLanes.ts); moving one into its lane is retried like this.
  webhooks: { attempts: 34, backoff: { type: 'webhook' }, removeOnComplete: true, removeOnFail: keepFailed },
};

export function webhookBackoff(attemptsMade: number): number {
  return Math.min(10_000 * 2 ** Math.max(0, attemptsMade - 1), 3_600_000);
}

export type Queues = Record<QueueName, Queue>;

export function createQueues(connection: ConnectionOptions, prefix: string): Queues {
  const queues = {} as Queues;
  for (const name of queueNames) queues[name] = new Queue(name, { connection, prefix: `${prefix}:q` });
  return queues;
}

export async function closeQueues(queues: Queues): Promise<void> {
  await Promise.all(Object.values(queues).map((q) => q.close()));
}

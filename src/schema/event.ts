// The CloudEvents 1.0 envelope every CRM event travels in.
import { z } from 'zod';

export const eventTypes = [
  'contact.created',
  'contact.updated',
  'conversation.created',
  'conversation.queued',
  'conversation.assigned',
  'conversation.transferred',
  'conversation.resolved',
  'conversation.reopened',
  'message.received',
  'message.sent',
  'message.delivered',
  'message.failed',
  'agent.status_changed',
  'payment.succeeded',
  'payment.refunded',
  'webhook.paused',
  'webhook.disabled',
  'conversation.note_added',
  'conversation.tags_changed',
] as const;

export const eventTypeSchema = z.enum(eventTypes);
export type EventType = z.infer<typeof eventTypeSchema>;

export const eventSchema = z
  .object({
    specversion: z.literal('1.0'),
    id: z.string().describe('stable: the same change always carries the same id'),
    source: z.string().describe('/accounts/{accountId}/inboxes/{inboxId} or /accounts/{accountId}'),
    type: eventTypeSchema,
    time: z.string(),
    subject: z.string().optional().describe('the conversation (or contact, agent) the event is about'),
    datacontenttype: z.literal('application/json').optional(),
    data: z.record(z.string(), z.unknown()),
  })
  .describe('A CloudEvents 1.0 envelope');

export type GatewayEvent = z.infer<typeof eventSchema>;

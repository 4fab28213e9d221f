// The visitor protocol (PROTOCOL.md beside this file): frames in, normalized messages out.
import { z } from 'zod';
import type { InboundMessage, NormalizedMessage } from '../../src/schema/message.ts';

const text = z.string().trim().min(1, 'text is empty').max(5000, 'text is longer than 5000 characters');
const clientMessageId = z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'clientMessageId: 1-64 of A-Z a-z 0-9 _ . -');

export const helloSchema = z.object({
  visitorId: z.string().max(100).optional(),
  visitorToken: z.string().max(200).optional(),
  userId: z.string().min(1).max(200).optional(),
  userHash: z.string().max(200).optional(),
  name: z.string().max(200).optional(),
  after: z.number().int().nonnegative().optional(),
});
export type Hello = z.infer<typeof helloSchema>;

export const visitorFrameSchema = z.discriminatedUnion('type', [
  helloSchema.extend({ type: z.literal('hello') }),
  z.object({ type: z.literal('message'), clientMessageId, text }),
  z.object({ type: z.literal('typing'), on: z.boolean() }),
  z.object({ type: z.literal('ping') }),
]);
export type VisitorFrame = z.infer<typeof visitorFrameSchema>;

export const restMessageSchema = z.object({
  visitorId: z.string().max(100),
  visitorToken: z.string().max(200),
  clientMessageId,
  text,
});

/** A visitor's message as the one normalized inbound message. The provider id is scoped to the visitor. */
export function normalizeVisitorMessage(input: {
  accountId: string; inboxId: string; visitorId: string; name?: string; clientMessageId: string; text: string;
}): InboundMessage {
  return {
    accountId: input.accountId,
    inboxId: input.inboxId,
    channel: 'webchat',
    externalId: `${input.visitorId}/${input.clientMessageId}`,
    from: { channelId: input.visitorId, ...(input.name ? { name: input.name } : {}) },
    to: { channelId: input.inboxId },
    sentAt: new Date().toISOString(),
    content: { type: 'text', text: input.text },
  };
}

/** What the widget is shown of a message: its own id space (clientMessageId), no account internals. */
export function renderForVisitor(message: NormalizedMessage) {
  const externalId = message.direction === 'inbound' && message.externalId
    ? message.externalId.slice(message.externalId.indexOf('/') + 1)
    : message.externalId;
  return {
    id: message.id, seq: message.seq, direction: message.direction, externalId,
    content: message.content, sentAt: message.sentAt, status: message.status ?? 'sent',
  };
}

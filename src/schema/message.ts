// The one normalized message: every channel, both directions. Types and JSON Schema come from here.
import { z } from 'zod';

export const channelSchema = z.enum(['wechat', 'sms', 'email', 'webchat']);
export type Channel = z.infer<typeof channelSchema>;

export const partySchema = z.object({
  channelId: z.string().min(1).max(512).describe('OpenID, E.164 phone number, email address or visitor id'),
  name: z.string().max(512).optional(),
});

export const attachmentSchema = z.object({
  url: z.string().max(4096).optional(),
  mediaId: z.string().max(512).optional(),
  contentType: z.string().max(255),
  size: z.number().int().nonnegative().optional(),
  name: z.string().max(1024).optional(),
});

export const contentSchema = z.object({
  type: z.enum(['text', 'image', 'audio', 'video', 'file', 'location', 'link', 'event']),
  text: z.string().max(100_000).optional(),
  html: z.string().max(1_000_000).optional(),
  subject: z.string().max(2000).optional(),
  attachments: z.array(attachmentSchema).max(50).optional(),
  location: z.object({ lat: z.number(), lng: z.number(), label: z.string().max(1000).optional() }).optional(),
  link: z.object({ title: z.string().max(1000).optional(), description: z.string().max(4000).optional(), url: z.string().max(4096) }).optional(),
  event: z.object({ name: z.string().max(200), key: z.string().max(2000).optional() }).optional(),
});
export type MessageContent = z.infer<typeof contentSchema>;

export const messageStatusSchema = z.enum(['queued', 'sent', 'delivered', 'read', 'failed']);
export type MessageStatus = z.infer<typeof messageStatusSchema>;

export const messageSchema = z
  .object({
    id: z.string().describe('gateway id'),
    accountId: z.string(),
    inboxId: z.string(),
    channel: channelSchema,
    direction: z.enum(['inbound', 'outbound']),
    conversationId: z.string(),
    contactId: z.string(),
    seq: z.number().int().nonnegative().describe('position in the conversation: messages order by seq'),
    externalId: z.string().optional().describe("the provider's own id, exactly as sent"),
    from: partySchema,
    to: partySchema,
    sentAt: z.string().describe("the provider's time, ISO 8601"),
    receivedAt: z.string().describe('when the gateway accepted it, ISO 8601'),
    content: contentSchema,
    status: messageStatusSchema.optional().describe('outbound only'),
    error: z.object({ code: z.string(), message: z.string() }).optional(),
    senderAgentId: z.string().optional().describe('outbound: the agent who wrote it'),
  })
  .describe('The normalized message');

export type NormalizedMessage = z.infer<typeof messageSchema>;

/** What an adapter hands the core for one inbound message: the core adds ids, seq and times. */
export const inboundMessageSchema = z.object({
  accountId: z.string(),
  inboxId: z.string(),
  channel: channelSchema,
  externalId: z.string().min(1).max(1000),
  from: partySchema,
  to: partySchema,
  sentAt: z.string(),
  content: contentSchema,
});
export type InboundMessage = z.infer<typeof inboundMessageSchema>;

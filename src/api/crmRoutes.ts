// The routes a CRM acts through: message a contact through an inbox (no conversation needed), keep
// contacts under the CRM's own external id, look a contact up by channel identity, and add notes and
// tags to a conversation. Registered before the contact routes, so /contacts/lookup is not read as an id.
import { z } from 'zod';
import { contactSchema } from '../conversations/conversationStore.ts';
import { CrmActions, maxTagsPerConversation } from '../crm/crmActions.ts';
import type { ApiRegistry } from '../http/apiRoutes.ts';
import { badRequest, notFound } from '../http/errors.ts';
import { idempotencyOf } from '../http/idempotency.ts';
import { channelSchema, contentSchema, messageSchema } from '../schema/message.ts';
import { pageOf, pageQuery } from './pagination.ts';
import type { ApiServices } from './services.ts';

const base = '/api/v1/accounts/:accountId';
const externalIdParam = z.string().min(1).max(200);
const recipient = z.union([
  z.object({ contactId: z.string().min(1).max(100) }).strict(),
  z.object({ externalId: externalIdParam.describe("the CRM's own id of the contact") }).strict(),
  z.object({
    channelId: z.string().min(1).max(254).describe('OpenID, E.164 phone number, email address or visitor id; the contact is created when new'),
    name: z.string().max(200).optional(),
  }).strict(),
]).describe('one of contactId, externalId, or the channel identity in this inbox');
const sendBody = z.object({
  to: recipient,
  text: z.string().trim().min(1).max(10_000).optional(),
  content: contentSchema.optional().describe('instead of text, a full content object'),
}).refine((b) => b.text || b.content, 'text or content is required');
const noteSchema = z.object({
  id: z.string(), conversationId: z.string(), text: z.string(),
  author: z.object({ kind: z.enum(['api', 'agent']), agentId: z.string().optional(), name: z.string().optional() }),
  createdAt: z.string(),
});
const tag = z.string().trim().regex(/^[\p{L}\p{N}_.:/-]{1,50}$/u, 'a tag is 1-50 letters, digits or _ . : / -');
const upsertBody = z.object({
  inboxId: z.string().min(1).max(100).optional().describe('with channelId: the channel identity, needed to create the contact'),
  channelId: z.string().min(1).max(254).optional(),
  name: z.string().min(1).max(200).optional(),
  attributes: z.record(z.string(), z.unknown()).optional().describe('merged into the existing ones'),
}).strict().refine((b) => !!b.inboxId === !!b.channelId, 'inboxId and channelId go together');

export function registerCrmRoutes(api: ApiRegistry, s: ApiServices): void {
  const crm = new CrmActions(s.redis, s.keys, s.inboxes, s.conversations, s.queues.outbound);

  api.add({
    method: 'post', path: `${base}/inboxes/:inboxId/messages`, tag: 'CRM actions', auth: 'account', body: sendBody, successStatus: 202,
    response: z.object({ message: messageSchema, conversationCreated: z.boolean(), contactCreated: z.boolean() }),
    summary: 'Send a message to a contact through this inbox: reuses the open conversation or opens one (routed when the customer answers). '
      + 'Send Idempotency-Key to make retries safe (the same key with another body: 422 idempotency_key_reused).',
    handler: async (ctx, { params, body }) => crm.sendToContact(params.accountId!, params.inboxId!, {
      to: body.to, content: body.content ?? { type: 'text', text: body.text! }, idempotency: idempotencyOf(ctx, body),
    }),
  });

  api.add({
    method: 'get', path: `${base}/contacts/lookup`, tag: 'Contacts', auth: 'accountOrAgent', response: contactSchema,
    query: z.object({
      inboxId: z.string().min(1).max(100), channelId: z.string().min(1).max(254),
      channel: channelSchema.optional().describe("checked against the inbox's channel"),
    }),
    summary: 'Find a contact by channel identity (OpenID, E.164 phone, email address, visitor id) in an inbox\'s channel',
    handler: async (_ctx, { params, query }) =>
      (await crm.lookup(params.accountId!, query.inboxId, query.channelId, query.channel)) ?? Promise.reject(notFound('contact')),
  });
  api.add({
    method: 'get', path: `${base}/contacts/by-external-id/:externalId`, tag: 'Contacts', auth: 'accountOrAgent', response: contactSchema,
    summary: "Get a contact by the CRM's own id",
    handler: async (_ctx, { params }) => {
      const externalId = externalIdParam.safeParse(params.externalId);
      if (!externalId.success) throw notFound('contact');
      return (await crm.contactByExternalId(params.accountId!, externalId.data)) ?? Promise.reject(notFound('contact'));
    },
  });
  api.add({
    method: 'put', path: `${base}/contacts/by-external-id/:externalId`, tag: 'Contacts', auth: 'account', body: upsertBody, response: contactSchema,
    summary: "Create or update the contact the CRM knows by this id (201 created, 200 updated or unchanged). Creating needs inboxId + channelId; "
      + 'a contact of that identity that wrote in already is linked. Emits one contact.created / contact.updated, none when nothing changed.',
    handler: async (ctx, { params, body }) => {
      const externalId = externalIdParam.safeParse(params.externalId);
      if (!externalId.success) throw badRequest('externalId: 1-200 characters');
      const r = await crm.upsertContact(params.accountId!, externalId.data, body);
      ctx.status = r.outcome === 'created' ? 201 : 200;
      ctx.body = r.contact;
      return undefined;
    },
  });

  const authorOf = (caller: { kind: string; agent?: { id: string; name: string } } | undefined, name?: string) =>
    caller?.kind === 'agent' && caller.agent ? { kind: 'agent' as const, agentId: caller.agent.id, name: caller.agent.name } : { kind: 'api' as const, ...(name ? { name } : {}) };
  api.add({
    method: 'post', path: `${base}/conversations/:conversationId/notes`, tag: 'Conversations', auth: 'accountOrAgent', successStatus: 201,
    body: z.object({
      text: z.string().trim().min(1).max(10_000),
      authorName: z.string().max(200).optional().describe('who wrote it in the CRM (agents are named by their token)'),
    }).strict(),
    response: noteSchema,
    summary: 'Add an internal note for the agents (never sent to the customer); emits conversation.note_added. Idempotency-Key honoured (another body with the same key: 422).',
    handler: async (ctx, { params, body }) => {
      const r = await crm.addNote(params.accountId!, params.conversationId!, {
        text: body.text, author: authorOf(ctx.state.caller as never, body.authorName), idempotency: idempotencyOf(ctx, body),
      });
      return r.note;
    },
  });
  api.add({
    method: 'get', path: `${base}/conversations/:conversationId/notes`, tag: 'Conversations', auth: 'accountOrAgent',
    query: pageQuery, response: pageOf(noteSchema), summary: "A conversation's notes, oldest first",
    handler: async (_ctx, { params, query }) => crm.notes(params.accountId!, params.conversationId!, query),
  });
  api.add({
    method: 'post', path: `${base}/conversations/:conversationId/tags`, tag: 'Conversations', auth: 'accountOrAgent',
    body: z.object({
      add: z.array(tag).max(maxTagsPerConversation).default([]), remove: z.array(tag).max(maxTagsPerConversation).default([]),
    }).strict().refine((b) => b.add.length + b.remove.length > 0, 'add or remove at least one tag')
      .refine((b) => !b.add.some((t) => b.remove.includes(t)), 'a tag cannot be both added and removed'),
    response: z.object({ tags: z.array(z.string()) }),
    summary: "Add and remove the conversation's own tags (apart from the contact's); emits conversation.tags_changed when they change",
    handler: async (_ctx, { params, body }) => ({ tags: await crm.changeTags(params.accountId!, params.conversationId!, body) }),
  });
}

// Contacts, conversations, their messages, and the actions assign / transfer / resolve / reopen.
import { z } from 'zod';
import { conversationSchema, contactSchema, publicConversation } from '../conversations/conversationStore.ts';
import type { ApiRegistry } from '../http/apiRoutes.ts';
import { badRequest, conflict, forbidden, notFound } from '../http/errors.ts';
import { idempotencyOf } from '../http/idempotency.ts';
import { contentSchema, messageSchema } from '../schema/message.ts';
import { pageOf, pageQuery } from './pagination.ts';
import type { ApiServices } from './services.ts';

const base = '/api/v1/accounts/:accountId';
const reply = z.object({
  text: z.string().trim().min(1).max(10_000).optional(),
  content: contentSchema.optional().describe('instead of text, a full content object'),
}).refine((b) => b.text || b.content, 'text or content is required');

export function registerConversationRoutes(api: ApiRegistry, s: ApiServices): void {
  const agentIdOf = (ctx: { state: { caller?: { kind: string; agent?: { id: string } } } }) =>
    ctx.state.caller?.kind === 'agent' ? ctx.state.caller.agent?.id : undefined;
  const conversationOr404 = async (accountId: string, id: string) =>
    (await s.conversations.conversation(accountId, id)) ?? Promise.reject(notFound('conversation'));

  api.add({
    method: 'get', path: `${base}/contacts`, tag: 'Contacts', auth: 'accountOrAgent', query: pageQuery, response: pageOf(contactSchema),
    summary: 'List contacts', handler: async (_ctx, { params, query }) => s.conversations.listContacts(params.accountId!, query),
  });
  api.add({
    method: 'get', path: `${base}/contacts/:contactId`, tag: 'Contacts', auth: 'accountOrAgent', response: contactSchema,
    summary: 'Get a contact',
    handler: async (_ctx, { params }) => (await s.conversations.contact(params.accountId!, params.contactId!)) ?? Promise.reject(notFound('contact')),
  });
  api.add({
    method: 'patch', path: `${base}/contacts/:contactId`, tag: 'Contacts', auth: 'accountOrAgent', response: contactSchema,
    body: z.object({ name: z.string().max(200).optional(), attributes: z.record(z.string(), z.unknown()).optional() }),
    summary: "Change a contact's name or attributes (merged into the existing ones; emits contact.updated)",
    handler: async (_ctx, { params, body }) => {
      const contact = await s.conversations.contact(params.accountId!, params.contactId!);
      if (!contact) throw notFound('contact');
      if (body.attributes && JSON.stringify({ ...contact.attributes, ...body.attributes }).length > 16_384) throw badRequest('attributes: at most 16 KiB');
      if (!(await s.contacts.update(params.accountId!, contact.id, body))) throw notFound('contact');
      return (await s.conversations.contact(params.accountId!, contact.id)) ?? Promise.reject(notFound('contact'));
    },
  });

  api.add({
    method: 'get', path: `${base}/conversations`, tag: 'Conversations', auth: 'accountOrAgent', response: pageOf(conversationSchema),
    query: pageQuery.extend({
      status: z.enum(['open', 'resolved']).optional(), inboxId: z.string().max(100).optional(), assigneeId: z.string().max(100).optional(),
    }),
    summary: 'List conversations (filters: status, inboxId, assigneeId)',
    handler: async (_ctx, { params, query }) => s.conversations.listConversations(params.accountId!, query),
  });
  api.add({
    method: 'get', path: `${base}/conversations/:conversationId`, tag: 'Conversations', auth: 'accountOrAgent', response: conversationSchema,
    summary: 'Get a conversation',
    handler: async (_ctx, { params }) => publicConversation(await conversationOr404(params.accountId!, params.conversationId!)),
  });
  api.add({
    method: 'get', path: `${base}/conversations/:conversationId/messages`, tag: 'Conversations', auth: 'accountOrAgent',
    query: z.object({
      limit: z.coerce.number().int().min(1).max(200).default(50),
      cursor: z.coerce.number().int().nonnegative().optional().describe('the nextCursor of the previous page'),
      order: z.enum(['asc', 'desc']).default('asc'),
    }),
    response: pageOf(messageSchema), summary: 'Message history, by seq, cursor-paginated',
    handler: async (_ctx, { params, query }) => {
      const c = await conversationOr404(params.accountId!, params.conversationId!);
      return s.conversations.messages(c.id, query.order === 'desc'
        ? { before: query.cursor ?? Number.MAX_SAFE_INTEGER, limit: query.limit }
        : { after: query.cursor ?? 0, limit: query.limit });
    },
  });
  api.add({
    method: 'post', path: `${base}/conversations/:conversationId/messages`, tag: 'Conversations', auth: 'accountOrAgent', body: reply,
    successStatus: 202, response: messageSchema,
    summary: 'Reply: stored at once (status queued) and sent through the customer\'s channel. Send Idempotency-Key to make retries safe '
      + '(the same key with another body: 422 idempotency_key_reused).',
    handler: async (ctx, { params, body }) => s.actions.reply(params.accountId!, params.conversationId!, {
      content: body.content ?? { type: 'text', text: body.text! }, agentId: agentIdOf(ctx), idempotency: idempotencyOf(ctx, body),
    }),
  });
  const mayForce = (ctx: { state: { caller?: { kind: string; agent?: { role: string } } } }) =>
    ctx.state.caller?.kind !== 'agent' || ctx.state.caller.agent?.role === 'supervisor';
  api.add({
    method: 'post', path: `${base}/conversations/:conversationId/assign`, tag: 'Conversations', auth: 'accountOrAgent',
    body: z.object({ agentId: z.string().max(100), force: z.boolean().default(false).describe('exceed capacity: account key or supervisor only') }),
    response: conversationSchema,
    summary: 'Assign to an agent (409 when the agent is full, unless a supervisor forces it)',
    handler: async (ctx, { params, body }) => {
      const conversation = await conversationOr404(params.accountId!, params.conversationId!);
      if (body.force && !mayForce(ctx)) throw forbidden('force needs an account API key or a supervisor');
      return publicConversation(await s.actions.assignTo(params.accountId!, conversation.id, body.agentId, body.force));
    },
  });
  api.add({
    method: 'post', path: `${base}/conversations/:conversationId/transfer`, tag: 'Conversations', auth: 'accountOrAgent',
    body: z.object({
      agentId: z.string().max(100).optional(), teamId: z.string().max(100).optional().describe("a team, or 'default' (every agent)"),
      note: z.string().max(2000).optional(), force: z.boolean().default(false),
    }).refine((b) => !!b.agentId !== !!b.teamId, 'exactly one of agentId and teamId'),
    response: conversationSchema,
    summary: "Transfer to an agent or a team's queue; the note travels in the conversation.transferred event",
    handler: async (ctx, { params, body }) => {
      const conversation = await conversationOr404(params.accountId!, params.conversationId!);
      if (body.force && !mayForce(ctx)) throw forbidden('force needs an account API key or a supervisor');
      if (body.teamId) {
        await s.router.transferToTeam(params.accountId!, conversation.id, body.teamId, body.note ?? '');
        return publicConversation(await conversationOr404(params.accountId!, conversation.id));
      }
      return publicConversation(await s.actions.assignTo(params.accountId!, conversation.id, body.agentId!, body.force, body.note));
    },
  });
  for (const decision of ['accept', 'decline'] as const) {
    api.add({
      method: 'post', path: `${base}/conversations/:conversationId/${decision}`, tag: 'Conversations', auth: 'accountOrAgent',
      body: z.object({ agentId: z.string().max(100).optional().describe('with an account key: the agent answering') }).default({}),
      response: conversationSchema,
      summary: decision === 'accept'
        ? 'Accept the conversation offered to the agent (queues with offerTimeoutSeconds)'
        : 'Decline an offer: it goes to the next agent, the customer keeps their place',
      handler: async (ctx, { params, body }) => {
        const agentId = agentIdOf(ctx) ?? body.agentId;
        if (!agentId) throw badRequest('agentId: required with an account key');
        const conversation = await conversationOr404(params.accountId!, params.conversationId!);
        if (!(await s.router.respondToOffer(conversation.id, agentId, decision))) throw conflict('no offer of this conversation to this agent is pending');
        return publicConversation(await conversationOr404(params.accountId!, conversation.id));
      },
    });
  }
  api.add({
    method: 'get', path: `${base}/conversations/:conversationId/queue`, tag: 'Conversations', auth: 'accountOrAgent',
    response: z.object({
      teamId: z.string().nullable(), position: z.number().nullable().describe('1 = next; null when not waiting'),
      estimatedWaitSeconds: z.number().nullable().describe("from the queue's recent pace; null when unknown"), offeredTo: z.string().nullable(),
    }),
    summary: 'Where a waiting conversation stands in its queue ("3 people ahead of you")',
    handler: async (_ctx, { params }) => s.router.queuePosition(await conversationOr404(params.accountId!, params.conversationId!)),
  });
  api.add({
    method: 'post', path: `${base}/conversations/:conversationId/resolve`, tag: 'Conversations', auth: 'accountOrAgent', response: conversationSchema,
    summary: 'Resolve (frees the agent; the next waiting conversation is assigned at once)',
    handler: async (ctx, { params }) => publicConversation(await s.actions.resolve(params.accountId!, params.conversationId!, agentIdOf(ctx) ?? '')),
  });
  api.add({
    method: 'post', path: `${base}/conversations/:conversationId/reopen`, tag: 'Conversations', auth: 'accountOrAgent', response: conversationSchema,
    summary: 'Reopen a resolved conversation (routed again)',
    handler: async (_ctx, { params }) => publicConversation(await s.actions.reopen(params.accountId!, params.conversationId!)),
  });
}

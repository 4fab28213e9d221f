// CRM webhook subscriptions and the event replay feed.
import { z } from 'zod';
import { webhookViewSchema } from '../events/webhookSubscriptions.ts';
import type { ApiRegistry } from '../http/apiRoutes.ts';
import { badRequest, notFound } from '../http/errors.ts';
import { checkWebhookTarget, WebhookTargetError } from '../events/webhookTarget.ts';
import { eventSchema, eventTypeSchema } from '../schema/event.ts';
import { pageOf, pageQuery } from './pagination.ts';
import type { ApiServices } from './services.ts';

const base = '/api/v1/accounts/:accountId';
const webhookUrl = z.string().url().max(2000).refine((u) => /^https?:\/\//.test(u), 'an http(s) URL');
const eventList = z.array(z.union([eventTypeSchema, z.literal('*'), z.enum(['contact.*', 'conversation.*', 'message.*', 'agent.*', 'payment.*'])])).min(1).max(50);

export function registerWebhookRoutes(api: ApiRegistry, s: ApiServices, allowPrivateTargets: boolean): void {
  const checkTarget = async (url: string) => {
    try {
      await checkWebhookTarget(url, allowPrivateTargets, false);
    } catch (error) {
      if (error instanceof WebhookTargetError) throw badRequest(`url: ${error.message} (GATEWAY_WEBHOOK_PRIVATE_TARGETS=allow permits it)`);
      throw error;
    }
  };
  const webhookOr404 = async (accountId: string, id: string) => (await s.webhooks.records.get(accountId, id)) ?? Promise.reject(notFound('webhook'));

  api.add({
    method: 'post', path: `${base}/webhooks`, tag: 'Webhooks', auth: 'account', successStatus: 201,
    body: z.object({ url: webhookUrl, events: eventList, description: z.string().max(500).default('') }),
    response: webhookViewSchema.extend({ secret: z.string().describe('whsec_…: shown once; verify webhook-signature with it') }),
    summary: 'Subscribe a CRM endpoint to events; the answer carries the signing secret',
    handler: async (_ctx, { params, body }) => {
      await checkTarget(body.url);
      const { record, secret } = await s.webhooks.create(params.accountId!, body);
      return { ...s.webhooks.view(record), secret };
    },
  });
  api.add({
    method: 'get', path: `${base}/webhooks`, tag: 'Webhooks', auth: 'account', query: pageQuery, response: pageOf(webhookViewSchema),
    summary: 'List webhook subscriptions',
    handler: async (_ctx, { params, query }) => {
      const page = await s.webhooks.records.list(params.accountId!, query);
      return { items: page.items.map((w) => s.webhooks.view(w)), nextCursor: page.nextCursor };
    },
  });
  api.add({
    method: 'get', path: `${base}/webhooks/:webhookId`, tag: 'Webhooks', auth: 'account', response: webhookViewSchema,
    summary: 'Get a webhook subscription', handler: async (_ctx, { params }) => s.webhooks.view(await webhookOr404(params.accountId!, params.webhookId!)),
  });
  api.add({
    method: 'patch', path: `${base}/webhooks/:webhookId`, tag: 'Webhooks', auth: 'account', response: webhookViewSchema,
    body: z.object({ url: webhookUrl.optional(), events: eventList.optional(), description: z.string().max(500).optional(), enabled: z.boolean().optional() }),
    summary: 'Change a subscription (enabling it again clears the disabled reason)',
    handler: async (_ctx, { params, body }) => {
      const w = await webhookOr404(params.accountId!, params.webhookId!);
      if (body.url) await checkTarget(body.url);
      const next = { ...w, ...body, disabledReason: body.enabled ? null : w.disabledReason };
      return s.webhooks.view(await s.webhooks.save(next));
    },
  });
  api.add({
    method: 'delete', path: `${base}/webhooks/:webhookId`, tag: 'Webhooks', auth: 'account', summary: 'Delete a subscription',
    handler: async (_ctx, { params }) => { if (!(await s.webhooks.remove(params.accountId!, params.webhookId!))) throw notFound('webhook'); return undefined; },
  });
  api.add({
    method: 'get', path: `${base}/events`, tag: 'Events', auth: 'account', response: pageOf(eventSchema),
    query: pageQuery.extend({ cursor: z.string().regex(/^\d+-\d+$/, 'a cursor from a previous page').optional() }),
    summary: 'Replay: events after a cursor, oldest first (for a CRM that was down)',
    handler: async (_ctx, { params, query }) => {
      const start = query.cursor ? `(${query.cursor}` : '-';
      let entries: [string, string[]][];
      try {
        entries = (await s.redis.xrange(s.keys.accountEvents(params.accountId!), start, '+', 'COUNT', query.limit)) as [string, string[]][];
      } catch {
        throw badRequest('cursor: not a valid cursor');
      }
      const items = entries.map(([, fields]) => JSON.parse(fields[1]!));
      return { items, nextCursor: entries.length === query.limit ? entries[entries.length - 1]![0] : null };
    },
  });
}

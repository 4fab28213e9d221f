// CRM webhook subscriptions, their deliveries and attempts, and the event replay feed.
import { z } from 'zod';
import { attemptSchema, deliveryStatusSchema, deliveryViewSchema, type DeliveryLanes } from '../events/deliveryLanes.ts';
import { eventFamilies, inboxOf, piiOptionsSchema, webhookViewSchema, type WebhookRecord } from '../events/webhookSubscriptions.ts';
import { checkWebhookTarget, WebhookTargetError, type GatewayAddress } from '../events/webhookTarget.ts';
import type { ApiRegistry } from '../http/apiRoutes.ts';
import { badRequest, conflict, notFound } from '../http/errors.ts';
import { eventSchema, eventTypeSchema } from '../schema/event.ts';
import { pageOf, pageQuery } from './pagination.ts';
import type { ApiServices } from './services.ts';

const base = '/api/v1/accounts/:accountId';
const webhookUrl = z.string().max(2000).refine((u) => {
  try { return ['http:', 'https:'].includes(new URL(u).protocol); } catch { return false; }
}, 'an http(s) URL');
const eventList = z.array(z.union([eventTypeSchema, z.literal('*'), z.enum(eventFamilies)])).min(1).max(50);
const inboxIds = z.array(z.string().regex(/^[A-Za-z0-9_-]{1,100}$/)).max(100).nullable()
  .describe('deliver only events of these inboxes (events of no inbox, such as contact.*, pass); null or empty: every inbox');
const format = z.enum(['structured', 'binary']).describe('CloudEvents HTTP mode: structured (default; the envelope is the body) or binary (ce-* headers, data as the body)');
const streamId = /^\d{1,16}-\d{1,10}$/;

export interface WebhookRouteOptions {
  lanes: DeliveryLanes;
  allowPrivateTargets: boolean;
  /** The gateway's own addresses: a subscription may never point at them. */
  self: GatewayAddress;
}

export function registerWebhookRoutes(api: ApiRegistry, s: ApiServices, options: WebhookRouteOptions): void {
  const { lanes } = options;
  const checkTarget = async (url: string) => {
    try {
      await checkWebhookTarget(url, options.allowPrivateTargets, false, options.self);
    } catch (error) {
      if (error instanceof WebhookTargetError) {
        throw badRequest(`url: ${error.message}${/private/.test(error.message) ? ' (GATEWAY_WEBHOOK_PRIVATE_TARGETS=allow permits it)' : ''}`);
      }
      throw error;
    }
  };
  const webhookOr404 = async (accountId: string, id: string): Promise<WebhookRecord> =>
    (await s.webhooks.get(accountId, id)) ?? Promise.reject(notFound('webhook'));

  api.add({
    method: 'post', path: `${base}/webhooks`, tag: 'Webhooks', auth: 'account', successStatus: 201,
    body: z.object({
      url: webhookUrl, events: eventList, description: z.string().max(500).default(''),
      inboxIds: inboxIds.default(null), pii: piiOptionsSchema.default({ maskPhoneNumbers: false, maskEmailAddresses: false }),
      format: format.default('structured'),
    }),
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
    body: z.object({
      url: webhookUrl.optional(), events: eventList.optional(), description: z.string().max(500).optional(), enabled: z.boolean().optional(),
      inboxIds: inboxIds.optional(), pii: piiOptionsSchema.optional(), format: format.optional(),
    }),
    summary: 'Change a subscription; enabling a paused or disabled one resumes its waiting deliveries',
    handler: async (_ctx, { params, body }) => {
      const w = await webhookOr404(params.accountId!, params.webhookId!);
      if (body.url) await checkTarget(body.url);
      const updated = await s.webhooks.update(params.accountId!, w.id, body);
      if (!updated) throw notFound('webhook'); // deleted since the read above
      if (updated.resumed) await lanes.resume(w.id);
      return s.webhooks.view(updated.record);
    },
  });
  api.add({
    method: 'delete', path: `${base}/webhooks/:webhookId`, tag: 'Webhooks', auth: 'account', summary: 'Delete a subscription and its waiting deliveries',
    handler: async (_ctx, { params }) => {
      if (!(await s.webhooks.remove(params.accountId!, params.webhookId!))) throw notFound('webhook');
      await lanes.drop(params.webhookId!);
      return undefined;
    },
  });
  api.add({
    method: 'post', path: `${base}/webhooks/:webhookId/rotate-secret`, tag: 'Webhooks', auth: 'account',
    body: z.object({ overlapSeconds: z.number().int().min(0).max(7 * 86400).default(86400).describe('how long the old secret keeps signing beside the new one') }),
    response: webhookViewSchema.extend({ secret: z.string().describe('the new whsec_…: shown once') }),
    summary: 'Rotate the signing secret; during the overlap webhook-signature carries both signatures',
    handler: async (_ctx, { params, body }) => {
      const rotated = await s.webhooks.rotateSecret(params.accountId!, params.webhookId!, body.overlapSeconds);
      if (!rotated) throw notFound('webhook');
      return { ...s.webhooks.view(rotated.record), secret: rotated.secret };
    },
  });

  api.add({
    method: 'get', path: `${base}/webhooks/:webhookId/deliveries`, tag: 'Webhooks', auth: 'account',
    query: pageQuery.extend({ status: deliveryStatusSchema.optional() }), response: pageOf(deliveryViewSchema),
    summary: "A subscription's deliveries, newest first (kept for GATEWAY_EVENT_RETENTION_DAYS)",
    handler: async (_ctx, { params, query }) => {
      const w = await webhookOr404(params.accountId!, params.webhookId!);
      return lanes.list(w.id, query);
    },
  });
  const deliveryOr404 = async (accountId: string, webhookId: string, deliveryId: string) => {
    const w = await webhookOr404(accountId, webhookId);
    const delivery = await lanes.get(w.id, deliveryId);
    if (!delivery) throw notFound('delivery');
    return { w, delivery };
  };
  api.add({
    method: 'get', path: `${base}/webhooks/:webhookId/deliveries/:deliveryId`, tag: 'Webhooks', auth: 'account',
    response: deliveryViewSchema.extend({ event: eventSchema.describe('the event as the gateway holds it (before masking)') }),
    summary: 'One delivery (its id is the event id and the webhook-id) with its event',
    handler: async (_ctx, { params }) => {
      const { w, delivery } = await deliveryOr404(params.accountId!, params.webhookId!, params.deliveryId!);
      return { ...delivery, event: JSON.parse((await lanes.event(w.id, delivery.id)) ?? '{}') };
    },
  });
  api.add({
    method: 'get', path: `${base}/webhooks/:webhookId/deliveries/:deliveryId/attempts`, tag: 'Webhooks', auth: 'account',
    query: pageQuery, response: pageOf(attemptSchema),
    summary: "A delivery's attempts, oldest first (the last 100)",
    handler: async (_ctx, { params, query }) => {
      const { w, delivery } = await deliveryOr404(params.accountId!, params.webhookId!, params.deliveryId!);
      return lanes.attempts(w.id, delivery.id, query);
    },
  });
  api.add({
    method: 'post', path: `${base}/webhooks/:webhookId/deliveries/:deliveryId/redeliver`, tag: 'Webhooks', auth: 'account',
    successStatus: 202, response: deliveryViewSchema,
    summary: 'Send a delivered or failed event again (same webhook-id), after what its conversation already has waiting',
    handler: async (_ctx, { params }) => {
      const { w, delivery } = await deliveryOr404(params.accountId!, params.webhookId!, params.deliveryId!);
      const result = await lanes.redeliver(w.id, delivery.id);
      if (result === 'pending') throw conflict('the delivery is still on its way');
      if (result === 'missing') throw notFound('delivery');
      return (await lanes.get(w.id, delivery.id))!;
    },
  });

  api.add({
    method: 'get', path: `${base}/events`, tag: 'Events', auth: 'account',
    response: pageOf(eventSchema.extend({ streamid: z.string().describe('CloudEvents extension: this event\'s stream id, a cursor for events after it') })),
    query: pageQuery.extend({
      cursor: z.string().regex(streamId, 'a cursor from a previous page (a stream id)').optional()
        .describe('events after this one (a nextCursor, or the stream id of an event)'),
      since: z.string().max(40).optional().describe('events at or after this time (ISO 8601 or milliseconds since 1970); ignored with a cursor'),
      types: z.string().max(2000).optional().describe('comma-separated event types or families (conversation.*)'),
      inboxId: z.string().max(100).optional().describe('only events of this inbox (and events of no inbox)'),
    }),
    summary: 'Replay: events after a cursor or since a time, oldest first (for a CRM that was down)',
    handler: async (_ctx, { params, query }) => {
      let start = '-';
      if (query.cursor) start = `(${query.cursor}`;
      else if (query.since) {
        const ms = /^\d+$/.test(query.since) ? Number(query.since) : Date.parse(query.since);
        if (!Number.isFinite(ms)) throw badRequest('since: an ISO 8601 time or milliseconds since 1970');
        start = `${Math.max(0, Math.floor(ms))}-0`;
      }
      const wanted = query.types?.split(',').map((t) => t.trim()).filter(Boolean);
      for (const type of wanted ?? []) {
        if (!(eventTypeSchema.safeParse(type).success || type === '*' || (eventFamilies as readonly string[]).includes(type))) throw badRequest(`types: unknown event type ${type}`);
      }
      const matches = (e: { type: string; source?: string; data?: Record<string, unknown> }) =>
        (!wanted || wanted.some((w) => w === '*' || w === e.type || (w.endsWith('.*') && e.type.startsWith(w.slice(0, -1)))))
        && (!query.inboxId || (inboxOf(e) ?? query.inboxId) === query.inboxId);
      const items: unknown[] = [];
      let last: string | null = null;
      let endReached = false;
      // With filters a page may scan more of the stream than it returns; at most 10 chunks a request.
      for (let chunk = 0; chunk < 10 && items.length < query.limit && !endReached; chunk++) {
        const entries = (await s.redis.xrange(s.keys.accountEvents(params.accountId!), last ? `(${last}` : start, '+', 'COUNT', query.limit)) as [string, string[]][];
        endReached = entries.length < query.limit;
        for (const [id, fields] of entries) {
          last = id;
          const event = JSON.parse(fields[fields.indexOf('e') + 1]!);
          // The stream id rides along (a CloudEvents extension attribute), so any item is a cursor.
          if (matches(event)) items.push({ ...event, streamid: id });
          if (items.length >= query.limit) { endReached = false; break; }
        }
      }
      return { items, nextCursor: endReached || last === null ? null : last };
    },
  });
}

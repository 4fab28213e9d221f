// /api/v1/accounts/{accountId}/inboxes: connect a channel. Credentials are write-only.
import { z } from 'zod';
import type { ApiRegistry } from '../http/apiRoutes.ts';
import { notFound, parseWith } from '../http/errors.ts';
import { inboxViewSchema } from '../inboxes/inboxDirectory.ts';
import { credentialSchemaFor, inboxTypes, inboxTypeSchema, type InboxType } from '../inboxes/inboxTypes.ts';
import { pageOf, pageQuery } from './pagination.ts';
import type { ApiServices } from './services.ts';

const record = z.record(z.string(), z.unknown());
const createInbox = z.object({
  type: inboxTypeSchema,
  name: z.string().trim().min(1).max(200),
  settings: record.default({}),
  credentials: record.default({}),
});
const updateInbox = z.object({
  name: z.string().trim().min(1).max(200).optional(),
  enabled: z.boolean().optional(),
  settings: record.optional(),
  credentials: record.optional().describe('replaces all stored credentials'),
});

/** Type-specific validation: the settings and credentials of the chosen inbox type. */
export function validateInboxConfig(type: InboxType, settings: unknown, credentials: unknown) {
  const validSettings = parseWith(inboxTypes[type].settings, settings, 'settings') as Record<string, unknown>;
  const validCredentials = parseWith(credentialSchemaFor(type, validSettings), credentials, 'credentials') as Record<string, unknown>;
  return { settings: validSettings, credentials: validCredentials };
}

export function registerInboxRoutes(api: ApiRegistry, s: ApiServices): void {
  api.add({
    method: 'post', path: '/api/v1/accounts/:accountId/inboxes', tag: 'Inboxes', auth: 'account', body: createInbox,
    successStatus: 201, response: inboxViewSchema,
    summary: 'Connect a channel; the answer carries the URLs to paste into the provider console',
    handler: async (_ctx, { params, body }) => {
      const valid = validateInboxConfig(body.type, body.settings, body.credentials);
      const inbox = await s.inboxes.create(params.accountId!, { type: body.type, name: body.name, ...valid });
      return s.inboxes.view(inbox);
    },
  });
  api.add({
    method: 'get', path: '/api/v1/accounts/:accountId/inboxes', tag: 'Inboxes', auth: 'account', query: pageQuery,
    response: pageOf(inboxViewSchema), summary: 'List inboxes',
    handler: async (_ctx, { params, query }) => {
      const page = await s.inboxes.records.list(params.accountId!, query);
      return { items: page.items.map((i) => s.inboxes.view(i)), nextCursor: page.nextCursor };
    },
  });
  api.add({
    method: 'get', path: '/api/v1/accounts/:accountId/inboxes/:inboxId', tag: 'Inboxes', auth: 'account',
    response: inboxViewSchema, summary: 'Get an inbox (never its credentials)',
    handler: async (_ctx, { params }) => {
      const inbox = await s.inboxes.records.get(params.accountId!, params.inboxId!);
      if (!inbox) throw notFound('inbox');
      return s.inboxes.view(inbox);
    },
  });
  api.add({
    method: 'patch', path: '/api/v1/accounts/:accountId/inboxes/:inboxId', tag: 'Inboxes', auth: 'account', body: updateInbox,
    response: inboxViewSchema, summary: 'Rename, enable/disable, change settings or replace credentials',
    handler: async (_ctx, { params, body }) => {
      const inbox = await s.inboxes.records.get(params.accountId!, params.inboxId!);
      if (!inbox) throw notFound('inbox');
      let change: { settings?: Record<string, unknown>; credentials?: Record<string, unknown> } = {};
      if (body.settings || body.credentials) {
        const valid = validateInboxConfig(inbox.type, body.settings ?? inbox.settings, body.credentials ?? s.inboxes.credentials(inbox));
        change = { settings: body.settings ? valid.settings : undefined, credentials: body.credentials ? valid.credentials : undefined };
      }
      const updated = await s.inboxes.update(inbox, { name: body.name, enabled: body.enabled, ...change });
      return s.inboxes.view(updated);
    },
  });
  api.add({
    method: 'delete', path: '/api/v1/accounts/:accountId/inboxes/:inboxId', tag: 'Inboxes', auth: 'account',
    summary: 'Delete an inbox (its conversations stay readable)',
    handler: async (_ctx, { params }) => {
      if (!(await s.inboxes.records.delete(params.accountId!, params.inboxId!))) throw notFound('inbox');
      return undefined;
    },
  });
}

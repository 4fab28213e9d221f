// Provider-facing URLs of channels whose adapters are not built yet: the inbox is checked (404 when
// unknown), then 501 until the channel's adapter lands.
import type { ApiRegistry } from '../http/apiRoutes.ts';
import { HttpError, notFound } from '../http/errors.ts';
import type { InboxType } from '../inboxes/inboxTypes.ts';
import type { ApiServices } from './services.ts';

const providerRoutes: { method: 'get' | 'post'; path: string; type: InboxType; summary: string }[] = [
  { method: 'post', path: '/sms/:inboxId/inbound', type: 'sms', summary: 'Inbound SMS (the inbox says which provider)' },
  { method: 'post', path: '/sms/:inboxId/status', type: 'sms', summary: 'SMS delivery receipts' },
];

export function registerUnbuiltProviderRoutes(api: ApiRegistry, s: ApiServices): void {
  for (const route of providerRoutes) {
    api.add({
      method: route.method, path: route.path, tag: 'Providers', auth: 'provider', summary: `${route.summary} (501 until its adapter is built)`,
      produces: 'provider-specific',
      handler: async (_ctx, { params }) => {
        const inbox = await s.inboxes.records.getAnyAccount(params.inboxId!);
        if (!inbox || inbox.type !== route.type) throw notFound('inbox');
        throw new HttpError(501, 'not_implemented', `the ${route.type} channel adapter is not available in this version`);
      },
    });
  }
}

// Accounts and inboxes declared in GATEWAY_CONFIG are created on start when missing; existing ones
// are left as they are (the API owns them after that).
import type { Settings } from '../config/settings.ts';
import type { ApiServices } from './api/services.ts';
import { validateInboxConfig } from './api/inboxRoutes.ts';
import { inboxTypeSchema } from './inboxes/inboxTypes.ts';
import type { Logger } from './logger.ts';

export async function applyDeclaredAccounts(settings: Settings, s: ApiServices, log: Logger): Promise<void> {
  for (const declared of settings.accounts) {
    if (!(await s.accounts.get(declared.id))) {
      await s.accounts.create({ id: declared.id, name: declared.name });
      const { key } = await s.accounts.issueKey(declared.id, 'declared');
      console.log(`Account ${declared.id} created from GATEWAY_CONFIG; its API key (shown once): ${key}`);
    }
    for (const inbox of declared.inboxes) {
      if (inbox.id && (await s.inboxes.records.getAnyAccount(inbox.id))) continue;
      const type = inboxTypeSchema.parse(inbox.type);
      const valid = validateInboxConfig(type, inbox.settings, inbox.credentials);
      const created = await s.inboxes.create(declared.id, { id: inbox.id, type, name: inbox.name, ...valid });
      log.info({ accountId: declared.id, inboxId: created.id, type }, 'inbox created from GATEWAY_CONFIG');
    }
  }
}

// Inboxes: a channel connected by a business. Credentials are sealed (AES-256-GCM) on write and
// only ever opened inside the gateway for an adapter; the API never returns them.
import type { Redis } from 'ioredis';
import { z } from 'zod';
import type { SecretBox } from '../crypto/secretBox.ts';
import { newId } from '../ids.ts';
import type { Keyspace } from '../redis/keys.ts';
import { RecordStore, type AccountRecord } from '../store/recordStore.ts';
import { providerUrls, inboxTypes, type InboxType } from './inboxTypes.ts';
import { withSmsUrlToken } from '../sms/smsUrlToken.ts';

export interface InboxRecord extends AccountRecord {
  type: InboxType;
  name: string;
  enabled: boolean;
  settings: Record<string, unknown>;
  credentialNames: string[];
  sealedCredentials: string;
}

export const inboxViewSchema = z.object({
  id: z.string(),
  accountId: z.string(),
  type: z.string(),
  channel: z.string(),
  name: z.string(),
  enabled: z.boolean(),
  settings: z.record(z.string(), z.unknown()),
  credentialNames: z.array(z.string()).describe('which credentials are stored (their values are never returned)'),
  urls: z.record(z.string(), z.string()).describe('URLs to paste into the provider console'),
  createdAt: z.string(),
  updatedAt: z.string(),
});
export type InboxView = z.infer<typeof inboxViewSchema>;

export class InboxDirectory {
  readonly records: RecordStore<InboxRecord>;
  private readonly credentialCache = new Map<string, { sealed: string; value: Record<string, unknown> }>();

  constructor(redis: Redis, keyspace: Keyspace, private readonly secretBox: SecretBox, private readonly publicUrl: string) {
    this.records = new RecordStore<InboxRecord>(redis, keyspace, 'inbox');
  }

  async create(accountId: string, input: { id?: string; type: InboxType; name: string; settings: Record<string, unknown>; credentials: Record<string, unknown> }) {
    const now = new Date().toISOString();
    const inbox: InboxRecord = {
      id: input.id ?? newId('inb'), accountId, type: input.type, name: input.name, enabled: true,
      settings: withSmsUrlToken(input.type, input.settings), credentialNames: Object.keys(input.credentials).sort(),
      sealedCredentials: this.secretBox.seal(JSON.stringify(input.credentials)), createdAt: now, updatedAt: now,
    };
    return this.records.put(inbox);
  }

  async update(inbox: InboxRecord, change: { name?: string; enabled?: boolean; settings?: Record<string, unknown>; credentials?: Record<string, unknown> }) {
    const next: InboxRecord = { ...inbox, updatedAt: new Date().toISOString() };
    if (change.name !== undefined) next.name = change.name;
    if (change.enabled !== undefined) next.enabled = change.enabled;
    if (change.settings !== undefined) next.settings = withSmsUrlToken(inbox.type, change.settings, inbox.settings);
    if (change.credentials !== undefined) {
      next.credentialNames = Object.keys(change.credentials).sort();
      next.sealedCredentials = this.secretBox.seal(JSON.stringify(change.credentials));
    }
    return this.records.put(next);
  }

  credentials(inbox: InboxRecord): Record<string, unknown> {
    const cached = this.credentialCache.get(inbox.id);
    if (cached && cached.sealed === inbox.sealedCredentials) return cached.value;
    const value = JSON.parse(this.secretBox.open(inbox.sealedCredentials)) as Record<string, unknown>;
    this.credentialCache.set(inbox.id, { sealed: inbox.sealedCredentials, value });
    return value;
  }

  view(inbox: InboxRecord): InboxView {
    return {
      id: inbox.id, accountId: inbox.accountId, type: inbox.type, channel: inboxTypes[inbox.type].channel,
      name: inbox.name, enabled: inbox.enabled, settings: inbox.settings, credentialNames: inbox.credentialNames,
      urls: providerUrls(inbox.type, inbox.id, this.publicUrl, inbox.settings), createdAt: inbox.createdAt, updatedAt: inbox.updatedAt,
    };
  }
}

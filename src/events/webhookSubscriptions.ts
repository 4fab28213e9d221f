// CRM webhook subscriptions: {url, events[]}, each with its own Standard Webhooks secret (whsec_…),
// sealed at rest and shown once.
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { z } from 'zod';
import type { SecretBox } from '../crypto/secretBox.ts';
import { newId } from '../ids.ts';
import type { Keyspace } from '../redis/keys.ts';
import { eventTypeSchema } from '../schema/event.ts';
import { RecordStore, type AccountRecord } from '../store/recordStore.ts';

export const webhookViewSchema = z.object({
  id: z.string(),
  accountId: z.string(),
  url: z.string(),
  events: z.array(z.union([eventTypeSchema, z.literal('*'), z.string().regex(/^[a-z]+\.\*$/, 'a family like conversation.*')])),
  description: z.string(),
  enabled: z.boolean(),
  disabledReason: z.string().nullable(),
  createdAt: z.string(),
  updatedAt: z.string(),
});
export type WebhookView = z.infer<typeof webhookViewSchema>;
export interface WebhookRecord extends WebhookView, AccountRecord { sealedSecret: string }

export class WebhookSubscriptions {
  readonly records: RecordStore<WebhookRecord>;

  constructor(private readonly redis: Redis, private readonly keyspace: Keyspace, private readonly secretBox: SecretBox) {
    this.records = new RecordStore<WebhookRecord>(redis, keyspace, 'webhook');
  }

  async create(accountId: string, input: { url: string; events: WebhookView['events']; description: string }) {
    const secret = `whsec_${randomBytes(24).toString('base64')}`;
    const now = new Date().toISOString();
    const record: WebhookRecord = {
      id: newId('wh'), accountId, url: input.url, events: input.events, description: input.description, enabled: true,
      disabledReason: null, sealedSecret: this.secretBox.seal(secret), createdAt: now, updatedAt: now,
    };
    await this.records.put(record);
    await this.markAccount(accountId);
    return { record, secret };
  }

  async save(record: WebhookRecord): Promise<WebhookRecord> {
    const saved = await this.records.put({ ...record, updatedAt: new Date().toISOString() });
    await this.markAccount(record.accountId);
    return saved;
  }

  async remove(accountId: string, id: string): Promise<boolean> {
    const removed = await this.records.delete(accountId, id);
    await this.markAccount(accountId);
    return removed;
  }

  /** The event scripts feed webhooks only for accounts in this set: no subscriptions, no feed work. */
  private async markAccount(accountId: string): Promise<void> {
    const anyEnabled = (await this.records.listAll(accountId)).some((s) => s.enabled);
    if (anyEnabled) await this.redis.sadd(this.keyspace.webhookAccounts, accountId);
    else await this.redis.srem(this.keyspace.webhookAccounts, accountId);
  }

  secretOf(record: WebhookRecord): string {
    return this.secretBox.open(record.sealedSecret);
  }

  view(record: WebhookRecord): WebhookView {
    const { sealedSecret: _secret, ...view } = record;
    return view;
  }

  /** Enabled subscriptions of an account, read fresh: the dispatcher asks once per batch and account. */
  async enabled(accountId: string): Promise<WebhookRecord[]> {
    return (await this.records.listAll(accountId)).filter((s) => s.enabled);
  }
}

/** `*` is every event, `conversation.*` a family, anything else one type. */
export function subscribes(wanted: string, type: string): boolean {
  return wanted === '*' || wanted === type || (wanted.endsWith('.*') && type.startsWith(wanted.slice(0, -1)));
}

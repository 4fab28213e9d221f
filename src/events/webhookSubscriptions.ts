// CRM webhook subscriptions: {url, events[]} plus filters, PII masking and the CloudEvents mode,
// each with its own Standard Webhooks secret (whsec_…), sealed at rest and shown once. A rotated
// secret keeps signing beside the new one until its overlap ends.
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { z } from 'zod';
import { runScript } from '../commands/index.ts';
import type { SecretBox } from '../crypto/secretBox.ts';
import { newId } from '../ids.ts';
import type { Keyspace } from '../redis/keys.ts';
import { eventTypeSchema } from '../schema/event.ts';
import { RecordStore, type AccountRecord } from '../store/recordStore.ts';

export const eventFamilies = ['contact.*', 'conversation.*', 'message.*', 'agent.*', 'payment.*', 'webhook.*'] as const;

export const piiOptionsSchema = z.object({
  maskPhoneNumbers: z.boolean().default(false).describe('phone numbers keep their last 3 digits'),
  maskEmailAddresses: z.boolean().default(false).describe('email addresses keep their first letter and domain'),
});

export const webhookViewSchema = z.object({
  id: z.string(),
  accountId: z.string(),
  url: z.string(),
  events: z.array(z.union([eventTypeSchema, z.literal('*'), z.string().regex(/^[a-z]+\.\*$/, 'a family like conversation.*')])),
  inboxIds: z.array(z.string()).nullable().describe('only events of these inboxes (events of no inbox, such as contact.*, pass); null: every inbox'),
  pii: piiOptionsSchema,
  format: z.enum(['structured', 'binary']).describe('CloudEvents HTTP mode: structured (the envelope is the body) or binary (ce-* headers, data as the body)'),
  description: z.string(),
  enabled: z.boolean(),
  disabledReason: z.string().nullable(),
  pausedAt: z.string().nullable().describe('set when the gateway paused the subscription because its deliveries failed for days'),
  previousSecretExpiresAt: z.string().nullable().describe('after a rotation, the old secret also signs until then'),
  createdAt: z.string(),
  updatedAt: z.string(),
});
export type WebhookView = z.infer<typeof webhookViewSchema>;
export interface WebhookRecord extends WebhookView, AccountRecord { sealedSecret: string; sealedPreviousSecret: string | null }

export type WebhookInput = Pick<WebhookView, 'url' | 'events' | 'description' | 'format'> & { inboxIds: string[] | null; pii: WebhookView['pii'] };
/** What a PATCH may change; every field left out keeps its stored value. */
export type WebhookChange = Partial<WebhookInput> & { enabled?: boolean };

const newSecret = () => `whsec_${randomBytes(24).toString('base64')}`;

/** Records written before filters, masking and rotation existed read as their defaults. */
function normalized(record: WebhookRecord): WebhookRecord {
  return {
    ...record,
    inboxIds: record.inboxIds && record.inboxIds.length ? record.inboxIds : null,
    pii: { maskPhoneNumbers: record.pii?.maskPhoneNumbers ?? false, maskEmailAddresses: record.pii?.maskEmailAddresses ?? false },
    format: record.format ?? 'structured',
    pausedAt: record.pausedAt ?? null,
    previousSecretExpiresAt: record.previousSecretExpiresAt ?? null,
    sealedPreviousSecret: record.sealedPreviousSecret ?? null,
  };
}

export class WebhookSubscriptions {
  readonly records: RecordStore<WebhookRecord>;

  constructor(private readonly redis: Redis, private readonly keyspace: Keyspace, private readonly secretBox: SecretBox) {
    this.records = new RecordStore<WebhookRecord>(redis, keyspace, 'webhook');
  }

  async get(accountId: string, id: string): Promise<WebhookRecord | undefined> {
    const record = await this.records.get(accountId, id);
    return record && normalized(record);
  }

  async getAnyAccount(id: string): Promise<WebhookRecord | undefined> {
    const record = await this.records.getAnyAccount(id);
    return record && normalized(record);
  }

  async create(accountId: string, input: WebhookInput) {
    const secret = newSecret();
    const now = new Date().toISOString();
    const record: WebhookRecord = {
      id: newId('wh'), accountId, url: input.url, events: input.events, inboxIds: input.inboxIds?.length ? input.inboxIds : null,
      pii: input.pii, format: input.format, description: input.description, enabled: true, disabledReason: null, pausedAt: null,
      sealedSecret: this.secretBox.seal(secret), sealedPreviousSecret: null, previousSecretExpiresAt: null, createdAt: now, updatedAt: now,
    };
    await this.records.put(record);
    await this.markAccount(accountId);
    return { record, secret };
  }

  /**
   * Applies a change to the stored record in one script, never by writing back a copy read earlier: a
   * pause or disable the deliverer wrote meanwhile stays unless the change sets `enabled`. `resumed`:
   * enabling took it out of the off set, so its lanes are to be made due (DeliveryLanes.resume).
   */
  async update(accountId: string, id: string, change: WebhookChange): Promise<{ record: WebhookRecord; resumed: boolean } | undefined> {
    const { enabled, inboxIds, ...rest } = change;
    const fields: Partial<WebhookRecord> = {
      ...rest,
      ...(inboxIds !== undefined ? { inboxIds: inboxIds?.length ? inboxIds : null } : {}),
      ...(enabled === true ? { enabled, disabledReason: null, pausedAt: null } : {}),
      ...(enabled === false ? { enabled, disabledReason: 'disabled through the API' } : {}),
    };
    const key = this.records.keyOf(id);
    if (!key) return undefined;
    const r = (await runScript(this.redis, 'updateWebhook', [key, this.keyspace.webhookOff], [
      accountId, new Date().toISOString(), JSON.stringify(fields),
    ])) as [string, string?, number?];
    if (r[0] === 'missing') return undefined;
    if (enabled !== undefined) await this.markAccount(accountId);
    return { record: normalized(JSON.parse(r[1]!) as WebhookRecord), resumed: r[2] === 1 };
  }

  /** A new secret; the stored one keeps signing beside it for `overlapSeconds` (0: at once replaced). */
  async rotateSecret(accountId: string, id: string, overlapSeconds: number): Promise<{ record: WebhookRecord; secret: string } | undefined> {
    const key = this.records.keyOf(id);
    if (!key) return undefined;
    const secret = newSecret();
    const r = (await runScript(this.redis, 'rotateWebhookSecret', [key], [
      accountId, new Date().toISOString(), this.secretBox.seal(secret),
      overlapSeconds > 0 ? new Date(Date.now() + overlapSeconds * 1000).toISOString() : '',
    ])) as [string, string?];
    if (r[0] === 'missing') return undefined;
    return { record: normalized(JSON.parse(r[1]!) as WebhookRecord), secret };
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

  /** The secrets a delivery is signed with now: the current one, and the previous one during its overlap. */
  signingSecrets(record: WebhookRecord, now = Date.now()): string[] {
    const secrets = [this.secretBox.open(record.sealedSecret)];
    if (record.sealedPreviousSecret && record.previousSecretExpiresAt && Date.parse(record.previousSecretExpiresAt) > now) {
      secrets.push(this.secretBox.open(record.sealedPreviousSecret));
    }
    return secrets;
  }

  view(record: WebhookRecord): WebhookView {
    const { sealedSecret: _secret, sealedPreviousSecret: _previous, ...view } = normalized(record);
    return view;
  }

  /** Enabled subscriptions of an account, read fresh: the dispatcher asks once per batch and account. */
  async enabled(accountId: string): Promise<WebhookRecord[]> {
    return (await this.records.listAll(accountId)).filter((s) => s.enabled).map(normalized);
  }
}

/** `*` is every event, `conversation.*` a family, anything else one type. */
export function subscribes(wanted: string, type: string): boolean {
  return wanted === '*' || wanted === type || (wanted.endsWith('.*') && type.startsWith(wanted.slice(0, -1)));
}

/** The inbox an event belongs to: its source's /inboxes/{id}, or its data's inboxId; none for contacts, agents… */
export function inboxOf(event: { source?: string; data?: Record<string, unknown> }): string | undefined {
  const fromSource = /\/inboxes\/([^/]+)$/.exec(event.source ?? '')?.[1];
  if (fromSource) return fromSource;
  const fromData = event.data?.inboxId;
  return typeof fromData === 'string' ? fromData : undefined;
}

/** Whether a subscription wants an event: its type, and its inbox when the subscription names inboxes. */
export function wantsEvent(subscription: Pick<WebhookRecord, 'events' | 'inboxIds'>, event: { type: string; source?: string; data?: Record<string, unknown> }): boolean {
  if (!subscription.events.some((wanted) => subscribes(wanted, event.type))) return false;
  if (!subscription.inboxIds) return true;
  const inbox = inboxOf(event);
  return inbox === undefined || subscription.inboxIds.includes(inbox);
}

// Changes to contacts, from the API or from a channel's own events (WeChat subscribe, QR scans):
// attributes are merged here and written by the updateContact script only if nobody changed them
// in between, with exactly one contact.updated event per change.
import type { Redis } from 'ioredis';
import { runScript } from '../commands/index.ts';
import { keyDigest, newId } from '../ids.ts';
import type { Keyspace } from '../redis/keys.ts';
import type { ContactJob } from '../queues.ts';

const maxAttempts = 10;

export class ContactUpdates {
  constructor(private readonly redis: Redis, private readonly keys: Keyspace, private readonly dedupSeconds: number) {}

  /** An API change to a known contact. Returns false when the contact is gone (or of another account). */
  async update(accountId: string, contactId: string, change: { name?: string; attributes?: Record<string, unknown> }): Promise<boolean> {
    const contactKey = this.keys.contact(contactId);
    const r = await this.merge(contactKey, change.attributes, (read, merged) => runScript(this.redis, 'updateContact', [contactKey, contactKey], [
      this.keys.prefix, new Date().toISOString(), '', accountId, '', '', '', read, merged, change.name ?? '', '', 0,
    ]));
    return r !== 'missing';
  }

  /** A channel event about a contact (created on first sight); a repeated event changes nothing. */
  async applyChannelEvent(job: ContactJob): Promise<'updated' | 'duplicate'> {
    const identityKey = this.keys.contactIdentity(job.accountId, job.channel, keyDigest(job.channelId));
    const dedupKey = this.keys.messageDedup(job.inboxId, keyDigest(job.externalId));
    const contactId = await this.redis.get(identityKey);
    const r = await this.merge(contactId ? this.keys.contact(contactId) : undefined, job.attributes, (read, merged) =>
      runScript(this.redis, 'updateContact', [identityKey, dedupKey], [
        this.keys.prefix, new Date().toISOString(), newId('ct'), job.accountId, job.channel, job.channelId, job.inboxId,
        read, merged, '', job.event, this.dedupSeconds,
      ]));
    return r === 'duplicate' ? 'duplicate' : 'updated';
  }

  private async merge(contactKey: string | undefined, attributes: Record<string, unknown> | undefined,
    write: (read: string, merged: string) => Promise<unknown[]>): Promise<string> {
    for (let attempt = 0; attempt < maxAttempts; attempt++) {
      const read = (contactKey && (await this.redis.hget(contactKey, 'attributes'))) || '{}';
      const merged = attributes ? JSON.stringify({ ...(JSON.parse(read) as Record<string, unknown>), ...attributes }) : '';
      const r = (await write(attributes ? read : '', merged)) as string[];
      if (r[0] !== 'changed') return r[0]!;
    }
    throw new Error('the contact kept changing while being updated; try again');
  }
}

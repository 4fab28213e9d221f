// Accounts (tenants) and their API keys. Keys are shown once and stored only as SHA-256 hashes.
import type { Redis } from 'ioredis';
import { z } from 'zod';
import { generateSecret, hashSecret } from '../crypto/tokens.ts';
import { newId } from '../ids.ts';
import type { Keyspace } from '../redis/keys.ts';
import { listByIndex, RecordStore, type AccountRecord, type Page } from '../store/recordStore.ts';

export const accountSchema = z.object({
  id: z.string(),
  name: z.string(),
  status: z.enum(['active', 'disabled']),
  createdAt: z.string(),
  updatedAt: z.string(),
});
export type Account = z.infer<typeof accountSchema>;

export const apiKeySchema = z.object({
  id: z.string(),
  accountId: z.string(),
  name: z.string(),
  hint: z.string().describe('the first characters of the key, to tell keys apart'),
  createdAt: z.string(),
  updatedAt: z.string(),
});
export type ApiKeyRecord = z.infer<typeof apiKeySchema> & AccountRecord;

interface StoredKey { keyId: string; accountId: string }

export class AccountDirectory {
  readonly keys: RecordStore<ApiKeyRecord>;

  constructor(private readonly redis: Redis, private readonly keyspace: Keyspace) {
    this.keys = new RecordStore<ApiKeyRecord>(redis, keyspace, 'apikeymeta');
  }

  async create(input: { id?: string; name: string }): Promise<Account> {
    const now = new Date().toISOString();
    const account: Account = { id: input.id ?? newId('acc'), name: input.name, status: 'active', createdAt: now, updatedAt: now };
    await this.redis.multi()
      .set(this.keyspace.record('account', account.id), JSON.stringify(account))
      .zadd(this.keyspace.accounts, 0, account.id)
      .exec();
    return account;
  }

  async get(id: string): Promise<Account | undefined> {
    if (!/^[A-Za-z0-9_-]{1,100}$/.test(id)) return undefined;
    const raw = await this.redis.get(this.keyspace.record('account', id));
    return raw ? (JSON.parse(raw) as Account) : undefined;
  }

  async update(account: Account): Promise<Account> {
    await this.redis.set(this.keyspace.record('account', account.id), JSON.stringify(account));
    return account;
  }

  async list(options: { cursor?: string; limit: number }): Promise<Page<Account>> {
    return listByIndex(this.redis, this.keyspace.accounts, options, async (ids) => {
      const raws = ids.length ? await this.redis.mget(ids.map((id) => this.keyspace.record('account', id))) : [];
      return raws.filter((r): r is string => r !== null).map((r) => JSON.parse(r) as Account);
    });
  }

  /** Issues a new key; the secret is returned here and never again. */
  async issueKey(accountId: string, name: string): Promise<{ key: string; record: ApiKeyRecord }> {
    const key = generateSecret('gwk_');
    const now = new Date().toISOString();
    const record: ApiKeyRecord = { id: newId('key'), accountId, name, hint: key.slice(0, 10), createdAt: now, updatedAt: now };
    const stored: StoredKey = { keyId: record.id, accountId };
    await this.keys.put(record);
    await this.redis.set(this.keyspace.apiKey(hashSecret(key)), JSON.stringify(stored));
    await this.redis.set(this.keyspace.record('apikeyhash', record.id), hashSecret(key));
    return { key, record };
  }

  async revokeKey(accountId: string, keyId: string): Promise<boolean> {
    if (!(await this.keys.get(accountId, keyId))) return false;
    const hash = await this.redis.get(this.keyspace.record('apikeyhash', keyId));
    if (hash) await this.redis.del(this.keyspace.apiKey(hash), this.keyspace.record('apikeyhash', keyId));
    return this.keys.delete(accountId, keyId);
  }

  async accountForKey(key: string): Promise<string | undefined> {
    const raw = await this.redis.get(this.keyspace.apiKey(hashSecret(key)));
    return raw ? (JSON.parse(raw) as StoredKey).accountId : undefined;
  }
}

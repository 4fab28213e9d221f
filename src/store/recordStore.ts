// Account-scoped JSON records (inboxes, agents, teams, webhooks, keys): every record carries its
// accountId, and a read through another account finds nothing.
import type { Redis } from 'ioredis';
import type { Keyspace } from '../redis/keys.ts';

export interface AccountRecord { id: string; accountId: string; createdAt: string; updatedAt: string }

export interface Page<T> { items: T[]; nextCursor: string | null }

export class RecordStore<T extends AccountRecord> {
  constructor(
    private readonly redis: Redis,
    private readonly keys: Keyspace,
    readonly kind: string,
  ) {}

  async get(accountId: string, id: string): Promise<T | undefined> {
    const record = await this.getAnyAccount(id);
    return record && record.accountId === accountId ? record : undefined;
  }

  async getAnyAccount(id: string): Promise<T | undefined> {
    const key = this.keyOf(id);
    const raw = key && (await this.redis.get(key));
    return raw ? (JSON.parse(raw) as T) : undefined;
  }

  /** The Redis key of a record, for scripts that change one in place; undefined for an id no record can have. */
  keyOf(id: string): string | undefined {
    return /^[A-Za-z0-9_-]{1,100}$/.test(id) ? this.keys.record(this.kind, id) : undefined;
  }

  async put(record: T): Promise<T> {
    await this.redis
      .multi()
      .set(this.keys.record(this.kind, record.id), JSON.stringify(record))
      .zadd(this.keys.accountIndex(record.accountId, this.kind), 0, record.id)
      .exec();
    return record;
  }

  async delete(accountId: string, id: string): Promise<boolean> {
    const record = await this.get(accountId, id);
    if (!record) return false;
    await this.redis
      .multi()
      .del(this.keys.record(this.kind, id))
      .zrem(this.keys.accountIndex(accountId, this.kind), id)
      .exec();
    return true;
  }

  /** Ids sort by creation time, so the cursor is simply the last id of the page. */
  async list(accountId: string, options: { cursor?: string; limit: number }): Promise<Page<T>> {
    return listByIndex<T>(this.redis, this.keys.accountIndex(accountId, this.kind), options, async (ids) => {
      const raws = ids.length ? await this.redis.mget(ids.map((id) => this.keys.record(this.kind, id))) : [];
      return raws.filter((raw): raw is string => raw !== null).map((raw) => JSON.parse(raw) as T);
    });
  }

  async listAll(accountId: string): Promise<T[]> {
    const all: T[] = [];
    let cursor: string | undefined;
    do {
      const page = await this.list(accountId, { cursor, limit: 500 });
      all.push(...page.items);
      cursor = page.nextCursor ?? undefined;
    } while (cursor);
    return all;
  }
}

/** Pages through a lexically ordered id index (a zset with score 0), oldest first. */
export async function listByIndex<T>(
  redis: Redis,
  indexKey: string,
  options: { cursor?: string; limit: number },
  load: (ids: string[]) => Promise<T[]>,
): Promise<Page<T>> {
  const start = options.cursor ? `(${options.cursor}` : '-';
  const ids = await redis.zrangebylex(indexKey, start, '+', 'LIMIT', 0, options.limit + 1);
  const hasMore = ids.length > options.limit;
  const pageIds = ids.slice(0, options.limit);
  return { items: await load(pageIds), nextCursor: hasMore ? pageIds[pageIds.length - 1]! : null };
}

// Keeps each account's replay stream to GATEWAY_EVENT_RETENTION_DAYS, and each subscription's
// delivery index to the same span (settled deliveries expire by themselves). Run by every worker
// every few minutes (a PeriodicTask); trimming is idempotent, so workers may overlap.
import type { Redis } from 'ioredis';
import type { Keyspace } from '../redis/keys.ts';
import type { DeliveryLanes } from './deliveryLanes.ts';

export class EventRetention {
  constructor(
    private readonly redis: Redis,
    private readonly keys: Keyspace,
    private readonly lanes: DeliveryLanes,
    private readonly retentionMs: number,
  ) {}

  /** Drops events older than the retention from every account's stream (approximately: whole stream nodes). */
  async trim(now = Date.now()): Promise<void> {
    const cutoff = now - this.retentionMs;
    let cursor = '-';
    for (;;) {
      const accountIds = await this.redis.zrangebylex(this.keys.accounts, cursor, '+', 'LIMIT', 0, 200);
      if (accountIds.length === 0) break;
      const pipeline = this.redis.pipeline();
      for (const accountId of accountIds) {
        pipeline.xtrim(this.keys.accountEvents(accountId), 'MINID', '~', `${cutoff}-0`);
        pipeline.zrange(this.keys.accountIndex(accountId, 'webhook'), '0', '-1');
      }
      const results = (await pipeline.exec()) ?? [];
      for (let i = 1; i < results.length; i += 2) {
        for (const subscriptionId of (results[i]![1] as string[] | null) ?? []) await this.lanes.trimIndex(subscriptionId, cutoff);
      }
      cursor = `(${accountIds[accountIds.length - 1]}`;
    }
  }
}

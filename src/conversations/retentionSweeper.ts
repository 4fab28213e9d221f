// Forgets conversations resolved longer ago than GATEWAY_MESSAGE_RETENTION_DAYS, a batch at a time,
// run by every worker (a PeriodicTask; the purge script is idempotent, so workers may overlap).
import type { Redis } from 'ioredis';
import { runScript } from '../commands/index.ts';
import type { Logger } from '../logger.ts';
import type { Keyspace } from '../redis/keys.ts';
import { mediaStoreKeysOf, type MediaStore } from '../media/mediaStore.ts';

export class RetentionSweeper {
  constructor(
    private readonly redis: Redis,
    private readonly keys: Keyspace,
    private readonly retentionMs: number,
    private readonly log: Logger,
    private readonly media?: MediaStore,
  ) {}

  /** Purges every conversation due now; returns how many. */
  async sweep(now = Date.now()): Promise<number> {
    const before = now - this.retentionMs;
    let purged = 0;
    for (;;) {
      const due = await this.redis.zrangebyscore(this.keys.resolvedConversations, '-inf', `(${before}`, 'LIMIT', 0, 100);
      if (due.length === 0) break;
      for (const conversationId of due) {
        const files = await this.mediaOf(conversationId);
        const messages = (await runScript(this.redis, 'purgeConversation', [this.keys.resolvedConversations], [this.keys.prefix, conversationId, before])) as unknown as number;
        if (messages < 0) continue;
        purged++;
        // The files go after their messages: a crash in between leaves files, never dangling links.
        for (const key of files) await this.media!.delete(key);
      }
    }
    if (purged) this.log.info({ purged }, 'retention: forgot resolved conversations');
    return purged;
  }

  /** The stored media the conversation's messages point at. */
  private async mediaOf(conversationId: string): Promise<string[]> {
    if (!this.media) return [];
    const ids = await this.redis.zrange(this.keys.conversationMessages(conversationId), '0', '-1');
    if (!ids.length) return [];
    const bodies = (await this.redis.pipeline(ids.map((id) => ['hget', this.keys.message(id), 'body'])).exec()) ?? [];
    return bodies.flatMap(([, body]) => {
      if (typeof body !== 'string') return [];
      const message = JSON.parse(body) as { accountId: string; content?: { attachments?: { url?: string }[] } };
      return mediaStoreKeysOf(message.accountId, message.content?.attachments);
    });
  }
}

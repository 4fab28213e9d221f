// Forgets conversations resolved longer ago than GATEWAY_MESSAGE_RETENTION_DAYS, a batch at a time,
// on every worker (the purge script is idempotent, so workers may overlap).
import type { Redis } from 'ioredis';
import { runScript } from '../commands/index.ts';
import type { Logger } from '../logger.ts';
import type { Keyspace } from '../redis/keys.ts';

export class RetentionSweeper {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<number> | undefined;

  constructor(
    private readonly redis: Redis,
    private readonly keys: Keyspace,
    private readonly retentionMs: number,
    private readonly log: Logger,
    private readonly intervalMs = 10 * 60_000,
  ) {}

  start(): void {
    const tick = () => {
      this.running ??= this.sweep().catch((error) => {
        this.log.warn({ err: (error as Error).message }, 'retention sweep failed; next one will retry');
        return 0;
      }).finally(() => { this.running = undefined; });
    };
    tick();
    this.timer = setInterval(tick, this.intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
  }

  /** Purges every conversation due now; returns how many. */
  async sweep(now = Date.now()): Promise<number> {
    const before = now - this.retentionMs;
    let purged = 0;
    for (;;) {
      const due = await this.redis.zrangebyscore(this.keys.resolvedConversations, '-inf', `(${before}`, 'LIMIT', 0, 100);
      if (due.length === 0) break;
      for (const conversationId of due) {
        const messages = (await runScript(this.redis, 'purgeConversation', [this.keys.resolvedConversations], [this.keys.prefix, conversationId, before])) as unknown as number;
        if (messages >= 0) purged++;
      }
    }
    if (purged) this.log.info({ purged }, 'retention: forgot resolved conversations');
    return purged;
  }
}

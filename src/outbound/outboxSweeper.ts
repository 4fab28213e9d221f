// Mends the one gap between storing a reply and queueing it: a process that dies after the
// createOutboundMessage script and before the outbound job's add leaves the reply `queued` with no
// job. Every worker looks every 15 s (a PeriodicTask) for outbox entries older than a grace period
// whose message is still queued and has no job, and adds the job again; the job id is the message's,
// so workers may overlap.
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from '../logger.ts';
import type { Keyspace } from '../redis/keys.ts';
import { jobOptions, type OutboundJob } from '../queues.ts';

export function outboundJobId(messageId: string): string {
  return `out-${messageId}`;
}

export class OutboxSweeper {
  constructor(
    private readonly redis: Redis,
    private readonly keys: Keyspace,
    private readonly queue: Queue,
    private readonly log: Logger,
    private readonly graceMs = 30_000,
  ) {}

  /** Queues again every stale reply that is still `queued` and has no job; returns how many. */
  async sweep(now = Date.now()): Promise<number> {
    const before = now - this.graceMs;
    let requeued = 0;
    for (;;) {
      const due = await this.redis.zrangebyscore(this.keys.outbox, '-inf', `(${before}`, 'LIMIT', 0, 200);
      if (due.length === 0) break;
      const fields = (await this.redis.pipeline(due.map((id) => ['hmget', this.keys.message(id), 'status', 'accountId'])).exec()) ?? [];
      for (const [i, messageId] of due.entries()) {
        const [status, accountId] = (fields[i]?.[1] ?? []) as (string | null)[];
        if (status !== 'queued' || !accountId) {
          // Sent, failed or forgotten: the status script normally removes it; this covers the rest.
          await this.redis.zrem(this.keys.outbox, messageId);
          continue;
        }
        // Looked at again only after another grace period (a send may be retrying with backoff).
        await this.redis.zadd(this.keys.outbox, 'XX', now, messageId);
        if ((await this.queue.getJobState(outboundJobId(messageId))) !== 'unknown') continue;
        const job: OutboundJob = { accountId, messageId };
        await this.queue.add('send', job, { ...jobOptions.outbound, jobId: outboundJobId(messageId) });
        requeued++;
      }
    }
    if (requeued) this.log.warn({ requeued }, 'outbox: queued again replies whose outbound job was missing');
    return requeued;
  }
}

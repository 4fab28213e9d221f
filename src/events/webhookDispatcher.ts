// Reads the event feed (a Redis stream every state script appends to) with a consumer group and
// turns each event into one delivery job per matching subscription. An entry is acknowledged and
// deleted only after its jobs are queued; entries of a dead consumer are claimed back.
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from '../logger.ts';
import type { Keyspace } from '../redis/keys.ts';
import { jobOptions, type WebhookJob } from '../queues.ts';
import { subscribes, type WebhookRecord, type WebhookSubscriptions } from './webhookSubscriptions.ts';

const group = 'webhooks';

export class WebhookDispatcher {
  private running = false;
  private loop: Promise<void> | undefined;
  private readonly consumer = `c-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  private reader: Redis | undefined;

  constructor(
    private readonly redis: Redis,
    private readonly keys: Keyspace,
    private readonly subscriptions: WebhookSubscriptions,
    private readonly queue: Queue,
    private readonly log: Logger,
  ) {}

  async start(): Promise<void> {
    try {
      await this.redis.xgroup('CREATE', this.keys.events, group, '0', 'MKSTREAM');
    } catch (error) {
      if (!String((error as Error).message).includes('BUSYGROUP')) throw error;
    }
    // XREADGROUP blocks its connection: it gets one of its own.
    this.reader = this.redis.duplicate({ connectionName: 'webhook-dispatcher' });
    this.running = true;
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
    await this.reader?.quit().catch(() => this.reader?.disconnect());
  }

  private async run(): Promise<void> {
    let lastClaim = 0;
    while (this.running) {
      try {
        if (Date.now() - lastClaim > 30_000) {
          lastClaim = Date.now();
          const claimed = (await this.redis.xautoclaim(this.keys.events, group, this.consumer, 60_000, '0', 'COUNT', 200)) as [string, [string, string[]][]];
          await this.handle(claimed[1] ?? []);
        }
        const batch = (await this.reader!.xreadgroup('GROUP', group, this.consumer, 'COUNT', 200, 'BLOCK', 1000, 'STREAMS', this.keys.events, '>')) as [string, [string, string[]][]][] | null;
        if (batch) await this.handle(batch[0]![1]);
      } catch (error) {
        if (!this.running) break;
        this.log.error({ err: error }, 'webhook dispatcher: read failed, retrying');
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
  }

  private async handle(entries: [string, string[]][]): Promise<void> {
    if (entries.length === 0) return;
    const jobs: { name: string; data: WebhookJob; opts: typeof jobOptions.webhooks & { jobId: string } }[] = [];
    const subscriptionsOf = new Map<string, Promise<WebhookRecord[]>>();
    for (const [, fields] of entries) {
      if (!fields) continue;
      const field = (name: string) => fields[fields.indexOf(name) + 1];
      const eventJson = field('e');
      const accountId = field('acc');
      if (!eventJson || !accountId) continue;
      const event = JSON.parse(eventJson) as { id: string; type: string; subject?: string };
      if (!subscriptionsOf.has(accountId)) subscriptionsOf.set(accountId, this.subscriptions.enabled(accountId));
      const wanting = (await subscriptionsOf.get(accountId)!).filter((s) => s.events.some((wanted) => subscribes(wanted, event.type)));
      for (const subscription of wanting) {
        jobs.push({
          name: event.type,
          data: { accountId, subscriptionId: subscription.id, eventId: event.id, conversationId: event.subject, event: eventJson },
          opts: { ...jobOptions.webhooks, jobId: `wh-${subscription.id}-${event.id}` },
        });
      }
    }
    if (jobs.length) await this.queue.addBulk(jobs);
    const ids = entries.map(([id]) => id);
    await this.redis.multi().xack(this.keys.events, group, ...ids).xdel(this.keys.events, ...ids).exec();
  }
}

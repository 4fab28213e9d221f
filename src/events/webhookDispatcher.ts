// Reads the event feed (a Redis stream every state script appends to) with a consumer group and
// appends each event to the delivery lane of every subscription that wants it. An entry is
// acknowledged and deleted only after its deliveries are in their lanes (the lane script adds a
// delivery once, so a batch read twice adds nothing). One dispatcher at a time holds the feed (a
// lease in Redis): two reading it side by side could put a conversation's events in their lanes out
// of order. Whoever takes the lease over first finishes the entries its dead holder left pending.
import type { Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { webhookJobSchema } from '../queues.ts';
import { runScript } from '../commands/index.ts';
import type { Logger } from '../logger.ts';
import type { Keyspace } from '../redis/keys.ts';
import { laneOf, type DeliveryLanes, type NewDelivery } from './deliveryLanes.ts';
import { wantsEvent, type WebhookRecord, type WebhookSubscriptions } from './webhookSubscriptions.ts';

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
    private readonly lanes: DeliveryLanes,
    private readonly log: Logger,
    /** How long a dead dispatcher's lease lasts before another takes the feed (and its pending entries) over. */
    private readonly leaseMs = 30_000,
    private readonly onEnqueued: () => void = () => undefined,
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
    const lease = this.keys.events + ':dispatcher';
    let holding = false;
    while (this.running) {
      try {
        const held = Number(await runScript(this.redis, 'holdLease', [lease], [this.consumer, this.leaseMs])) === 1;
        if (!held) {
          holding = false;
          await new Promise((r) => setTimeout(r, Math.min(1000, this.leaseMs / 2)));
          continue;
        }
        if (!holding) {
          holding = true;
          // Entries the previous holder read but did not finish come first: they are older than any new one.
          let cursor = '0';
          do {
            const [next, claimed] = (await this.redis.xautoclaim(this.keys.events, group, this.consumer, 0, cursor, 'COUNT', 200)) as [string, [string, string[]][]];
            await this.handle(claimed ?? []);
            cursor = next;
          } while (cursor !== '0-0' && this.running);
        }
        const block = Math.max(100, Math.min(1000, Math.floor(this.leaseMs / 3)));
        const batch = (await this.reader!.xreadgroup('GROUP', group, this.consumer, 'COUNT', 200, 'BLOCK', block, 'STREAMS', this.keys.events, '>')) as [string, [string, string[]][]][] | null;
        if (batch) await this.handle(batch[0]![1]);
      } catch (error) {
        if (!this.running) break;
        holding = false;
        this.log.error({ err: error }, 'webhook dispatcher: read failed, retrying');
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
    if (holding) await runScript(this.redis, 'releaseLease', [lease], [this.consumer]).catch(() => undefined);
  }

  private async handle(entries: [string, string[]][]): Promise<void> {
    if (entries.length === 0) return;
    const deliveries: NewDelivery[] = [];
    const subscriptionsOf = new Map<string, Promise<WebhookRecord[]>>();
    for (const [, fields] of entries) {
      if (!fields) continue;
      const field = (name: string) => fields[fields.indexOf(name) + 1];
      const eventJson = field('e');
      const accountId = field('acc');
      if (!eventJson || !accountId) continue;
      if (!subscriptionsOf.has(accountId)) subscriptionsOf.set(accountId, this.subscriptions.enabled(accountId));
      const subscriptions = await subscriptionsOf.get(accountId)!;
      // Most accounts' events go to no subscription: those are acknowledged without being parsed.
      if (subscriptions.length === 0) continue;
      const event = JSON.parse(eventJson) as { id: string; type: string; subject?: string; source?: string; data?: Record<string, unknown> };
      for (const subscription of subscriptions) {
        if (!wantsEvent(subscription, event)) continue;
        deliveries.push({ subscriptionId: subscription.id, eventId: event.id, lane: laneOf(event.subject), event: eventJson, eventType: event.type });
      }
    }
    for (let i = 0; i < deliveries.length; i += 500) await this.lanes.enqueue(deliveries.slice(i, i + 500));
    if (deliveries.length) this.onEnqueued();
    const ids = entries.map(([id]) => id);
    await this.redis.multi().xack(this.keys.events, group, ...ids).xdel(this.keys.events, ...ids).exec();
  }
}

/**
 * The `webhooks` BullMQ queue held one job per delivery before lanes existed (0.2.0): a job left in
 * it by an upgrade is moved into its lane, once (the lane script ignores a delivery it has).
 */
export function createLegacyWebhookJobMover(lanes: DeliveryLanes, onEnqueued: () => void) {
  return async function moveLegacyWebhookJob(job: Job): Promise<string> {
    const data = webhookJobSchema.parse(job.data);
    const type = (JSON.parse(data.event) as { type?: string }).type ?? '';
    await lanes.enqueue([{ subscriptionId: data.subscriptionId, eventId: data.eventId, lane: laneOf(data.conversationId), event: data.event, eventType: type }]);
    onEnqueued();
    return 'moved to its delivery lane';
  };
}

// Webhook deliveries in Redis: one FIFO lane per (subscription, conversation) whose head alone is in
// flight; a due set says when each lane's head may be tried (or when a worker's lease on it ends).
// Every move is a Lua script (src/commands/*Deliveries/*Delivery), so a killed worker loses nothing.
import type { Redis } from 'ioredis';
import { z } from 'zod';
import { runScript } from '../commands/index.ts';
import type { Keyspace } from '../redis/keys.ts';

export const deliveryStatusSchema = z.enum(['pending', 'succeeded', 'failed']);

export const attemptSchema = z.object({
  attempt: z.number().int(),
  at: z.string(),
  durationMs: z.number(),
  outcome: z.enum(['ok', 'retry', 'gone', 'refused']),
  status: z.number().int().nullable().describe('the HTTP status the receiver answered (null: no answer)'),
  error: z.string().nullable(),
});
export type Attempt = z.infer<typeof attemptSchema>;

export const deliveryViewSchema = z.object({
  id: z.string().describe('the event id, which is also the webhook-id header'),
  subscriptionId: z.string(),
  eventType: z.string(),
  lane: z.string().describe('the conversation (or other subject) whose events are delivered in order'),
  status: deliveryStatusSchema,
  attempts: z.number().int(),
  createdAt: z.string(),
  lastAttemptAt: z.string().nullable(),
  lastStatus: z.number().int().nullable(),
  lastError: z.string().nullable(),
  nextAttemptAt: z.string().nullable(),
  deliveredAt: z.string().nullable(),
  failedReason: z.string().nullable(),
});
export type DeliveryView = z.infer<typeof deliveryViewSchema>;

export interface NewDelivery { subscriptionId: string; eventId: string; lane: string; event: string; eventType: string }

export interface ClaimedDelivery { subscriptionId: string; lane: string; eventId: string; event: string; attemptsSoFar: number; token: string }

export interface Settlement {
  subscriptionId: string; eventId: string; token: string; accountId: string;
  outcome: Attempt['outcome']; httpStatus?: number; error?: string; durationMs: number; startedAt: Date;
  delayMs: number; retryWindowMs: number; pauseAfterMs: number; retentionSeconds: number;
}

/** The lane of an event: its subject (the conversation for conversation and message events). */
export function laneOf(subject: string | undefined): string {
  return subject && /^[A-Za-z0-9_.-]{1,200}$/.test(subject) ? subject : '-';
}

const isoOfMs = (value: string | null | undefined) => (value ? new Date(Number(value)).toISOString() : null);

export class DeliveryLanes {
  constructor(private readonly redis: Redis, private readonly keys: Keyspace) {}

  /** Adds each delivery to the end of its lane, once. */
  async enqueue(deliveries: NewDelivery[]): Promise<number> {
    if (deliveries.length === 0) return 0;
    const args: string[] = [this.keys.prefix];
    for (const d of deliveries) args.push(d.subscriptionId, d.eventId, d.lane, d.event, d.eventType);
    return Number(await runScript(this.redis, 'enqueueDeliveries', [this.keys.webhookDue], args));
  }

  /** Leases up to `count` due lane heads; `busy` is what this worker already has in flight per subscription. */
  async claim(count: number, leaseMs: number, capPerSubscription: number, busy: Map<string, number>): Promise<{ claimed: ClaimedDelivery[]; nextDueInMs: number | null }> {
    const args: (string | number)[] = [this.keys.prefix, count, leaseMs, capPerSubscription];
    for (const [id, n] of busy) if (n > 0) args.push(id, n);
    const [rows, nextDue, now] = (await runScript(this.redis, 'claimDeliveries', [this.keys.webhookDue], args)) as [string[][], string | null, number];
    return {
      claimed: rows.map(([subscriptionId, lane, eventId, event, attempts, token]) => ({
        subscriptionId: subscriptionId!, lane: lane!, eventId: eventId!, event: event!, attemptsSoFar: Number(attempts), token: token!,
      })),
      nextDueInMs: nextDue === null || nextDue === undefined ? null : Math.max(0, Number(nextDue) - Number(now)),
    };
  }

  async settle(s: Settlement): Promise<string> {
    return String(await runScript(this.redis, 'settleDelivery', [this.keys.webhookDue], [
      this.keys.prefix, s.subscriptionId, s.eventId, s.token, s.outcome, s.httpStatus ?? '', s.error ?? '', Math.round(s.durationMs),
      Math.round(s.delayMs), Math.round(s.retryWindowMs), Math.round(s.pauseAfterMs), Math.round(s.retentionSeconds), s.accountId,
      new Date().toISOString(), s.startedAt.toISOString(),
    ]));
  }

  /** 'queued' | 'pending' (still on its way) | 'missing' */
  async redeliver(subscriptionId: string, eventId: string): Promise<string> {
    return String(await runScript(this.redis, 'redeliverDelivery', [this.keys.webhookDue], [this.keys.prefix, subscriptionId, eventId]));
  }

  /** A paused or disabled subscription's lanes wait; resuming (one that was off) makes every one of them due now. */
  async setOff(subscriptionId: string, off: boolean): Promise<void> {
    if (off) {
      await this.redis.sadd(this.keys.webhookOff, subscriptionId);
      return;
    }
    // Only a subscription that really was off resumes: re-dueing a never-off one's lanes would send its
    // leased (in-flight) heads a second time.
    if ((await this.redis.srem(this.keys.webhookOff, subscriptionId)) !== 1) return;
    await this.resume(subscriptionId);
  }

  /** After a subscription left the off set: forgets the failing streak that paused it, and its lanes are due now. */
  async resume(subscriptionId: string): Promise<void> {
    await this.redis.hdel(this.keys.webhookHealth(subscriptionId), 'failingSince', 'failingSinceIso');
    const lanes = await this.redis.smembers(this.keys.webhookLanes(subscriptionId));
    if (lanes.length === 0) return;
    const now = Date.now();
    const pipeline = this.redis.pipeline();
    for (const lane of lanes) pipeline.zadd(this.keys.webhookDue, now, `${subscriptionId}|${lane}`);
    await pipeline.exec();
  }

  /** A deleted subscription's lanes and deliveries go with it. */
  async drop(subscriptionId: string): Promise<void> {
    const lanes = await this.redis.smembers(this.keys.webhookLanes(subscriptionId));
    // Pending records may be past the index (trimIndex forgets old entries): the lanes still name them.
    for (const lane of lanes) {
      const queued = await this.redis.lrange(this.keys.webhookLane(subscriptionId, lane), 0, -1);
      if (queued.length > 0) await this.redis.unlink(...queued.flatMap((id) => [this.keys.webhookDelivery(subscriptionId, id), this.keys.webhookAttempts(subscriptionId, id)]));
    }
    const pipeline = this.redis.pipeline();
    for (const lane of lanes) {
      pipeline.zrem(this.keys.webhookDue, `${subscriptionId}|${lane}`);
      pipeline.del(this.keys.webhookLane(subscriptionId, lane));
    }
    await pipeline.exec();
    let cursor: string | undefined;
    do {
      const members = await this.redis.zrangebylex(this.keys.webhookDeliveryIndex(subscriptionId), cursor ? `(${cursor}` : '-', '+', 'LIMIT', 0, 500);
      if (members.length === 0) break;
      const ids = members.map((m) => m.slice(m.indexOf(':') + 1));
      await this.redis.unlink(...ids.flatMap((id) => [this.keys.webhookDelivery(subscriptionId, id), this.keys.webhookAttempts(subscriptionId, id)]));
      cursor = members[members.length - 1];
    } while (cursor);
    await this.redis.unlink(this.keys.webhookLanes(subscriptionId), this.keys.webhookDeliveryIndex(subscriptionId), this.keys.webhookHealth(subscriptionId));
    await this.redis.srem(this.keys.webhookOff, subscriptionId);
  }

  /** Newest first; the cursor is the last item's index entry. A status filter may make pages shorter. */
  async list(subscriptionId: string, options: { limit: number; cursor?: string; status?: z.infer<typeof deliveryStatusSchema> }): Promise<{ items: DeliveryView[]; nextCursor: string | null }> {
    const index = this.keys.webhookDeliveryIndex(subscriptionId);
    const items: DeliveryView[] = [];
    let cursor = options.cursor;
    for (let scans = 0; scans < 10 && items.length < options.limit; scans++) {
      const members = await this.redis.zrevrangebylex(index, cursor ? `(${cursor}` : '+', '-', 'LIMIT', 0, options.limit);
      if (members.length === 0) return { items, nextCursor: null };
      const views = await Promise.all(members.map((m) => this.get(subscriptionId, m.slice(m.indexOf(':') + 1))));
      for (let i = 0; i < members.length; i++) {
        const view = views[i];
        cursor = members[i]!;
        if (view && (!options.status || view.status === options.status)) items.push(view);
        if (items.length >= options.limit) break;
      }
      if (members.length < options.limit && items.length < options.limit) return { items, nextCursor: null };
    }
    return { items, nextCursor: cursor ?? null };
  }

  async get(subscriptionId: string, eventId: string): Promise<DeliveryView | undefined> {
    if (!/^[A-Za-z0-9_.-]{1,200}$/.test(eventId)) return undefined;
    const h = await this.redis.hgetall(this.keys.webhookDelivery(subscriptionId, eventId));
    if (!h.status) return undefined;
    return {
      id: eventId, subscriptionId, eventType: h.type ?? '', lane: h.lane ?? '-', status: deliveryStatusSchema.parse(h.status),
      attempts: Number(h.attempts ?? 0), createdAt: isoOfMs(h.createdAt)!, lastAttemptAt: h.lastAttemptAt || null,
      lastStatus: h.lastStatus ? Number(h.lastStatus) : null, lastError: h.lastError || null,
      nextAttemptAt: h.status === 'pending' ? isoOfMs(h.nextAttemptAt) : null, deliveredAt: h.deliveredAt || null,
      failedReason: h.failedReason || null,
    };
  }

  async event(subscriptionId: string, eventId: string): Promise<string | null> {
    return this.redis.hget(this.keys.webhookDelivery(subscriptionId, eventId), 'event');
  }

  /** Oldest first; the cursor is the last attempt number of the page. */
  async attempts(subscriptionId: string, eventId: string, options: { limit: number; cursor?: string }): Promise<{ items: Attempt[]; nextCursor: string | null }> {
    const raw = await this.redis.lrange(this.keys.webhookAttempts(subscriptionId, eventId), 0, -1);
    const all = raw.map((r) => attemptSchema.parse(JSON.parse(r)));
    const after = options.cursor ? Number(options.cursor) : 0;
    const rest = all.filter((a) => a.attempt > after);
    const items = rest.slice(0, options.limit);
    return { items, nextCursor: rest.length > options.limit ? String(items[items.length - 1]!.attempt) : null };
  }

  /** Forgets index entries older than the retention (their records expire by themselves once settled). */
  async trimIndex(subscriptionId: string, olderThanMs: number): Promise<void> {
    await this.redis.zremrangebylex(this.keys.webhookDeliveryIndex(subscriptionId), '-', `(${String(olderThanMs).padStart(15, '0')}`);
  }
}

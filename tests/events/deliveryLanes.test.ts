// Delivery lanes against the real Redis, driven directly with short windows (no real hours).
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { DeliveryLanes, type Settlement } from '../../src/events/deliveryLanes.ts';
import { createRedis } from '../../src/redis/connection.ts';
import { keyspace } from '../../src/redis/keys.ts';

describe('delivery lanes', () => {
  let redis: Redis;
  const keys = keyspace(`t${randomUUID().slice(0, 8)}`);
  let lanes: DeliveryLanes;
  beforeAll(() => {
    redis = createRedis(inject('redisUrl'), 'lanes-test');
    lanes = new DeliveryLanes(redis, keys);
  });
  afterAll(async () => { await redis.quit(); });

  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  const settle = (s: Partial<Settlement> & Pick<Settlement, 'subscriptionId' | 'eventId' | 'token' | 'outcome'>) =>
    lanes.settle({ accountId: 'acc', durationMs: 1, startedAt: new Date(), delayMs: 0, retryWindowMs: 300, pauseAfterMs: 3_600_000, retentionSeconds: 60, ...s });

  it('starts the retry window of an event queued behind a retrying head when it is first claimed', async () => {
    const sub = `sub_${randomUUID().slice(0, 8)}`;
    await lanes.enqueue(['e1', 'e2'].map((eventId) => ({ subscriptionId: sub, eventId, lane: 'c1', event: '{}', eventType: 'x' })));
    // The head retries for its whole (short) window.
    let outcome = '';
    while (!outcome.startsWith('failed')) {
      const { claimed } = await lanes.claim(10, 60_000, 10, new Map());
      const head = claimed.find((c) => c.subscriptionId === sub);
      if (!head) { await sleep(10); continue; }
      expect(head.eventId).toBe('e1');
      outcome = await settle({ subscriptionId: sub, eventId: head.eventId, token: head.token, outcome: 'retry' });
      await sleep(20);
    }
    // The next event, queued the whole time, still gets retries of its own.
    const { claimed } = await lanes.claim(10, 60_000, 10, new Map());
    const next = claimed.find((c) => c.subscriptionId === sub)!;
    expect(next.eventId).toBe('e2');
    expect(await settle({ subscriptionId: sub, eventId: 'e2', token: next.token, outcome: 'retry' })).toBe('retrying');
  });

  it('moves the lanes of a subscription at its in-flight cap a second on, so workers neither spin nor starve others', async () => {
    await redis.del(keys.webhookDue);
    const busySub = `sub_${randomUUID().slice(0, 8)}`;
    const otherSub = `sub_${randomUUID().slice(0, 8)}`;
    await lanes.enqueue(Array.from({ length: 30 }, (_, i) => ({ subscriptionId: busySub, eventId: `b${i}`, lane: `c${i}`, event: '{}', eventType: 'x' })));
    await sleep(5);
    await lanes.enqueue([{ subscriptionId: otherSub, eventId: 'o1', lane: 'c1', event: '{}', eventType: 'x' }]);
    // count 1 makes the scan window 100; fill more than 2,000 due lanes of the busy subscription before the other one.
    const pipeline = redis.pipeline();
    for (let i = 0; i < 2100; i++) pipeline.zadd(keys.webhookDue, 1, `${busySub}|x${i}`);
    await pipeline.exec();
    // The first claims scan (and move on) the busy lanes; within a few the other subscription's lane is claimed.
    const got: string[] = [];
    for (let i = 0; i < 3 && got.length === 0; i++) got.push(...(await lanes.claim(1, 60_000, 1, new Map([[busySub, 1]]))).claimed.map((c) => c.eventId));
    expect(got).toEqual(['o1']);
    const again = await lanes.claim(1, 60_000, 1, new Map([[busySub, 1], [otherSub, 1]]));
    expect(again.claimed).toEqual([]);
    expect(again.nextDueInMs).toBeGreaterThan(500);
  });

  it('never schedules a retry past the end of the retry window', async () => {
    const sub = `sub_${randomUUID().slice(0, 8)}`;
    await lanes.enqueue([{ subscriptionId: sub, eventId: 'w1', lane: 'c1', event: '{}', eventType: 'x' }]);
    let head;
    while (!head) { head = (await lanes.claim(10, 60_000, 10, new Map())).claimed.find((c) => c.subscriptionId === sub); }
    expect(await settle({ subscriptionId: sub, eventId: 'w1', token: head.token, outcome: 'retry', delayMs: 3_600_000, retryWindowMs: 2000 })).toBe('retrying');
    const view = await lanes.get(sub, 'w1');
    expect(Date.parse(view!.nextAttemptAt!) - Date.now()).toBeLessThanOrEqual(2000);
  });

  it('resumes only a subscription that was off: forgets its failing streak, and leaves a never-off one\'s leased lanes alone', async () => {
    const sub = `sub_${randomUUID().slice(0, 8)}`;
    await lanes.enqueue([{ subscriptionId: sub, eventId: 'r1', lane: 'c1', event: '{}', eventType: 'x' }]);
    let head;
    while (!head) { head = (await lanes.claim(10, 60_000, 10, new Map())).claimed.find((c) => c.subscriptionId === sub); }
    const leaseEnd = Number(await redis.zscore(keys.webhookDue, `${sub}|c1`));
    await lanes.setOff(sub, false);
    expect(Number(await redis.zscore(keys.webhookDue, `${sub}|c1`))).toBe(leaseEnd);
    await redis.hset(keys.webhookHealth(sub), 'failingSince', Date.now() - 1000, 'failingSinceIso', new Date().toISOString());
    await lanes.setOff(sub, true);
    await lanes.setOff(sub, false);
    expect(await redis.hmget(keys.webhookHealth(sub), 'failingSince', 'failingSinceIso')).toEqual([null, null]);
    expect(Number(await redis.zscore(keys.webhookDue, `${sub}|c1`))).toBeLessThan(leaseEnd);
  });

  it('deletes a subscription\'s pending deliveries even when the index no longer names them', async () => {
    const sub = `sub_${randomUUID().slice(0, 8)}`;
    await lanes.enqueue([{ subscriptionId: sub, eventId: 'd1', lane: 'c1', event: '{}', eventType: 'x' }, { subscriptionId: sub, eventId: 'd2', lane: 'c1', event: '{}', eventType: 'x' }]);
    await lanes.trimIndex(sub, Date.now() + 1000);
    await lanes.drop(sub);
    expect(await redis.exists(keys.webhookDelivery(sub, 'd1'), keys.webhookDelivery(sub, 'd2'))).toBe(0);
  });
});

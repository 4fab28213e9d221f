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
});

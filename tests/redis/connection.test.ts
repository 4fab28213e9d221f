// Connections with batched writes: a turn's commands leave in one write, and every command still gets its own reply.
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createRedis } from '../../src/redis/connection.ts';

/** Counts the system-call-level writes of a connection's socket (one per write or writev). */
function countWrites(redis: Redis): { writes: number } {
  const counter = { writes: 0 };
  const stream = redis.stream as unknown as { _write: (...a: unknown[]) => void; _writev: (...a: unknown[]) => void };
  const write = stream._write.bind(stream);
  const writev = stream._writev.bind(stream);
  stream._write = (...a) => { counter.writes += 1; write(...a); };
  stream._writev = (...a) => { counter.writes += 1; writev(...a); };
  return counter;
}

describe('redis connections with batched writes', () => {
  let batched: Redis;
  let plain: Redis;
  beforeAll(async () => {
    batched = createRedis(inject('redisUrl'), 'batched-test', { batchWrites: true });
    plain = createRedis(inject('redisUrl'), 'plain-test');
    await Promise.all([batched.ping(), plain.ping()]);
  });
  afterAll(() => { batched.disconnect(); plain.disconnect(); });

  it('sends the commands of one turn in one write, each answered in order', async () => {
    const counter = countWrites(batched);
    const key = `batched-test:${Date.now()}`;
    const replies = await Promise.all(Array.from({ length: 50 }, () => batched.incr(key)));
    expect(replies).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
    expect(counter.writes).toBe(1);
    // The next turn's commands go out too: the socket is not left corked.
    expect(await batched.get(key)).toBe('50');
    expect(counter.writes).toBe(2);
    await batched.del(key);
  });

  it('a plain connection writes each command on its own (what batching saves)', async () => {
    const counter = countWrites(plain);
    await Promise.all(Array.from({ length: 50 }, () => plain.ping()));
    expect(counter.writes).toBeGreaterThan(1);
  });

  it('keeps working across a reconnect', async () => {
    const key = `batched-reconnect:${Date.now()}`;
    await batched.set(key, '1');
    batched.disconnect(true);
    expect(await batched.incr(key)).toBe(2);
    const replies = await Promise.all([batched.incr(key), batched.incr(key), batched.get(key)]);
    expect(replies).toEqual([3, 4, '4']);
    await batched.del(key);
  });
});

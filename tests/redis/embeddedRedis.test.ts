// The embedded redis-server: AOF on in its own folder, stop() ends it, and data survives a restart.
import { existsSync, mkdtempSync, readdirSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { startEmbeddedRedis, type EmbeddedRedis } from '../../src/redis/embeddedRedis.ts';

async function withClient<T>(url: string, use: (client: Redis) => Promise<T>): Promise<T> {
  const client = new Redis(url, { maxRetriesPerRequest: 1 });
  try {
    return await use(client);
  } finally {
    client.disconnect();
  }
}

async function refusesConnections(url: string): Promise<boolean> {
  const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  client.on('error', () => {});
  try {
    await client.connect();
    await client.ping();
    return false;
  } catch {
    return true;
  } finally {
    client.disconnect();
  }
}

describe('startEmbeddedRedis', () => {
  const dataDir = join(mkdtempSync(join(tmpdir(), 'gateway-embedded-redis-')), 'redis');
  const started: EmbeddedRedis[] = [];
  afterAll(async () => {
    for (const server of started) await server.stop();
    rmSync(join(dataDir, '..'), { recursive: true, force: true });
  });

  it('runs with appendonly yes in the given folder, and stop() ends it', async () => {
    const redis = await startEmbeddedRedis({ dataDir, log: () => {} });
    started.push(redis);
    expect(redis.url).toBe(`redis://127.0.0.1:${redis.port}`);
    await withClient(redis.url, async (client) => {
      expect(await client.config('GET', 'appendonly')).toEqual(['appendonly', 'yes']);
      expect(await client.config('GET', 'dir')).toEqual(['dir', realpathSync(dataDir)]);
      expect(await client.config('GET', 'maxmemory-policy')).toEqual(['maxmemory-policy', 'noeviction']);
      await client.set('durable:key', 'written before stop');
      await client.rpush('durable:list', 'a', 'b', 'c');
    });
    expect(existsSync(dataDir)).toBe(true);
    expect(readdirSync(dataDir).some((name) => name.startsWith('appendonly'))).toBe(true);

    await redis.stop();
    expect(await refusesConnections(redis.url)).toBe(true);
    await redis.stop(); // a second stop is harmless
  });

  it('a second start on the same folder sees what was written before the stop', async () => {
    const again = await startEmbeddedRedis({ dataDir, log: () => {} });
    started.push(again);
    await withClient(again.url, async (client) => {
      expect(await client.get('durable:key')).toBe('written before stop');
      expect(await client.lrange('durable:list', 0, -1)).toEqual(['a', 'b', 'c']);
    });
    await again.stop();
  });
});

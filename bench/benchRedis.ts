// What every benchmark starts with: its numeric settings from the environment, and a Redis to measure
// on (REDIS_URL, else an embedded redis-server with AOF as in production, watched for stalls).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { startEmbeddedRedis, type EmbeddedRedis } from '../src/redis/embeddedRedis.ts';

export function numberEnv(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`${name} must be a positive number, got ${raw}`);
  return value;
}

export interface BenchRedis {
  url: string;
  /** Set when the bench started its own redis-server (its stalls are ours to report). */
  embedded?: EmbeddedRedis;
  description: string;
  /** Our own server only: record stalls (fork, fsync, slow commands) over 10 ms. */
  watchStalls(observer: Redis): Promise<void>;
  stop(): Promise<void>;
}

export async function benchRedis(label: string): Promise<BenchRedis> {
  const external = process.env.REDIS_URL;
  if (external) {
    return { url: external, description: 'REDIS_URL', watchStalls: async () => {}, stop: async () => {} };
  }
  const dataDir = mkdtempSync(join(tmpdir(), `gateway-bench-${label}-`));
  const embedded = await startEmbeddedRedis({ dataDir });
  return {
    url: embedded.url, embedded, description: 'embedded redis-server (AOF everysec)',
    watchStalls: async (observer) => {
      await observer.config('SET', 'latency-monitor-threshold', '10');
      await observer.config('SET', 'slowlog-log-slower-than', '10000');
    },
    stop: async () => {
      await embedded.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

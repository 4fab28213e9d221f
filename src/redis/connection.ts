// Redis connections: BullMQ needs maxRetriesPerRequest null; everything else shares the same options.
import { Redis } from 'ioredis';

export function createRedis(url: string, name = 'gateway', options: { autoPipelining?: boolean } = {}): Redis {
  return new Redis(url, {
    enableAutoPipelining: options.autoPipelining ?? false,
    maxRetriesPerRequest: null,
    enableReadyCheck: true,
    connectionName: name,
    retryStrategy: (times) => Math.min(times * 100, 2000),
  });
}

// Redis connections: BullMQ needs maxRetriesPerRequest null; everything else shares the same options.
import { Redis } from 'ioredis';

export function createRedis(url: string, name = 'gateway'): Redis {
  return new Redis(url, {
    maxRetriesPerRequest: null,
    enableReadyCheck: true,
    connectionName: name,
    retryStrategy: (times) => Math.min(times * 100, 2000),
  });
}

// Redis connections: BullMQ needs maxRetriesPerRequest null; everything else shares the same options.
import { Redis } from 'ioredis';
import { corkForThisTurn } from '../net/corkForThisTurn.ts';

export function createRedis(url: string, name = 'gateway', options: { autoPipelining?: boolean; batchWrites?: boolean } = {}): Redis {
  const redis = new Redis(url, {
    enableAutoPipelining: options.autoPipelining ?? false,
    maxRetriesPerRequest: null,
    enableReadyCheck: true,
    connectionName: name,
    retryStrategy: (times) => Math.min(times * 100, 2000),
  });
  if (options.batchWrites) batchWritesPerTurn(redis);
  return redis;
}

/**
 * Commands sent in one turn of the event loop leave in one write, without waiting for earlier replies
 * (as an auto-pipeline does): a worker's replies arrive together, and each starts that job's next command.
 */
function batchWritesPerTurn(redis: Redis): void {
  const send = redis.sendCommand.bind(redis);
  redis.sendCommand = (command, stream) => {
    if (!stream && redis.status === 'ready' && redis.stream) corkForThisTurn(redis.stream);
    return send(command, stream);
  };
}

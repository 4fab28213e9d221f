// The floor: a bare BullMQ add + no-op process of an inbound web chat job, on the same Redis, with the
// gateway's queue options and worker concurrency. The gateway can only be slower than this.
import { Queue, Worker } from 'bullmq';
import { normalizeVisitorMessage } from '../adapters/webchat/visitorFrames.ts';
import { InboundAcceptor } from '../src/ingest/acceptInbound.ts';
import { jobOptions, type InboundJob } from '../src/queues.ts';
import { createRedis } from '../src/redis/connection.ts';
import { CpuMeter, type CommandStats } from './stats.ts';

export interface FloorResult { jobs: number; seconds: number; jobsPerSecond: number; processCore: number; redisCore: number; redisChildCore: number; aofRewrites: number; aofBytes: number; commands: CommandStats }

function inboundJob(run: string, index: number, seq: number): InboundJob {
  const visitorId = `v_bench${run}${index % 250}`;
  const message = normalizeVisitorMessage({
    accountId: 'acc_bench', inboxId: 'inb_bench', visitorId, name: 'Bench visitor',
    clientMessageId: `c${index}`, text: `benchmark message ${index}`,
  });
  return {
    messageId: InboundAcceptor.messageIdFor(message.inboxId, message.externalId), seq,
    receivedAt: new Date().toISOString(), contactName: 'Bench visitor', visitorHint: `inb_bench/${visitorId}`, message,
  };
}

export async function measureFloor(options: { redisUrl: string; prefix: string; count: number; warmup: number; concurrency: number; jobLockMs: number }): Promise<FloorResult> {
  const connection = createRedis(options.redisUrl, 'bench-floor');
  const queue = new Queue('inbound', { connection, prefix: `${options.prefix}:q` });
  let completed = 0;
  let target = 0;
  let reached: (() => void) | undefined;
  const worker = new Worker('inbound', async () => undefined, {
    connection, prefix: `${options.prefix}:q`, concurrency: options.concurrency, autorun: true,
    lockDuration: options.jobLockMs, stalledInterval: options.jobLockMs, maxStalledCount: 5,
  });
  worker.on('completed', () => { completed += 1; if (completed === target) reached?.(); });
  await worker.waitUntilReady();

  // Adds go out as fast as the connection takes them, like frames arriving from many visitor sockets.
  const addBatch = async (run: string, count: number) => {
    target = completed + count;
    const done = new Promise<void>((resolve) => { reached = resolve; });
    const adds: Promise<unknown>[] = [];
    for (let i = 0; i < count; i += 1) {
      const job = inboundJob(run, i, i + 1);
      adds.push(queue.add('inbound', job, { ...jobOptions.inbound, jobId: job.messageId }));
    }
    await Promise.all(adds);
    await done;
  };

  try {
    await addBatch('w', options.warmup);
    const meter = new CpuMeter(connection);
    await meter.start();
    const started = performance.now();
    await addBatch('m', options.count);
    const seconds = (performance.now() - started) / 1000;
    const cpu = await meter.stop();
    return { jobs: options.count, seconds, jobsPerSecond: options.count / seconds, ...cpu };
  } finally {
    await worker.close();
    await queue.close();
    connection.disconnect();
  }
}

// Prometheus metrics: HTTP requests, queue depths (read at scrape time), jobs, pipeline latency.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Redis } from 'ioredis';
import type { Queues } from './queues.ts';

export type Metrics = ReturnType<typeof createMetrics>;

export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'gateway_' });
  let queuesForDepth: Queues | undefined;
  let deliveryDue: { redis: Redis; dueKey: string } | undefined;
  const metrics = {
    registry,
    httpRequests: new Counter({ name: 'gateway_http_requests_total', help: 'HTTP requests', labelNames: ['method', 'route', 'status'], registers: [registry] }),
    httpDuration: new Histogram({
      name: 'gateway_http_request_duration_seconds', help: 'HTTP request duration', labelNames: ['method', 'route'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5], registers: [registry],
    }),
    jobsProcessed: new Counter({ name: 'gateway_jobs_processed_total', help: 'Jobs completed', labelNames: ['queue'], registers: [registry] }),
    jobsFailed: new Counter({ name: 'gateway_jobs_failed_total', help: 'Job attempts that failed', labelNames: ['queue'], registers: [registry] }),
    jobDuration: new Histogram({
      name: 'gateway_job_duration_seconds', help: 'Job processing time', labelNames: ['queue'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1, 5], registers: [registry],
    }),
    pipelineLatency: new Histogram({
      name: 'gateway_inbound_to_agent_seconds', help: 'From accepting an inbound message to pushing it to an agent socket',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1], registers: [registry],
    }),
    websockets: new Gauge({ name: 'gateway_websockets', help: 'Open WebSocket connections', labelNames: ['kind'], registers: [registry] }),
    trackQueues(queues: Queues) { queuesForDepth = queues; },
    /** Webhook deliveries wait in lanes, not in a queue: their depth is read from the lanes' due set. */
    trackDeliveryLanes(redis: Redis, dueKey: string) { deliveryDue = { redis, dueKey }; },
  };
  new Gauge({
    name: 'gateway_queue_jobs', help: 'Jobs per queue and state', labelNames: ['queue', 'state'], registers: [registry],
    async collect() {
      if (!queuesForDepth) return;
      for (const [name, queue] of Object.entries(queuesForDepth)) {
        const counts = await queue.getJobCounts('waiting', 'active', 'delayed', 'failed', 'prioritized');
        for (const [state, count] of Object.entries(counts)) this.set({ queue: name, state }, count);
      }
    },
  });
  new Gauge({
    name: 'gateway_webhook_lanes', help: 'Webhook delivery lanes (subscription and conversation) with deliveries waiting', registers: [registry],
    async collect() {
      if (deliveryDue) this.set(await deliveryDue.redis.zcard(deliveryDue.dueKey));
    },
  });
  new Gauge({
    name: 'gateway_webhook_overdue_seconds',
    help: 'How long the most overdue webhook lane has been due and not attempted (0: none; a claimed lane counts from its lease end)',
    registers: [registry],
    async collect() {
      if (!deliveryDue) return;
      const [, score] = await deliveryDue.redis.zrange(deliveryDue.dueKey, '0', '0', 'WITHSCORES');
      this.set(score === undefined ? 0 : Math.max(0, (Date.now() - Number(score)) / 1000));
    },
  });
  return metrics;
}

// Operations endpoints (/healthz, /readyz, /metrics, /openapi.json, /schemas) and graceful shutdown.
import { randomBytes, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTenant, startTestGateway, type Tenant, type TestGateway } from './support/testGateway.ts';

const committedSchema = (name: string) => JSON.parse(readFileSync(new URL(`../schemas/${name}`, import.meta.url), 'utf8'));

/** Every path of the contract's HTTP surface, in OpenAPI form, with the methods it names. */
const contractSurface: Record<string, string[]> = {
  '/wechat/{inboxId}': ['get', 'post'],
  '/wechatpay/{inboxId}/notify': ['post'],
  '/sms/{inboxId}/inbound': ['post'],
  '/sms/{inboxId}/status': ['post'],
  '/email/{inboxId}/inbound': ['post'],
  '/webchat/{inboxId}/widget.js': ['get'],
  '/webchat/{inboxId}/ws': ['get'],
  '/api/v1/accounts': ['get', 'post'],
  '/api/v1/accounts/{accountId}/inboxes': ['get', 'post'],
  '/api/v1/accounts/{accountId}/agents': ['get', 'post'],
  '/api/v1/accounts/{accountId}/teams': ['get', 'post'],
  '/api/v1/accounts/{accountId}/routing': ['get'],
  '/api/v1/accounts/{accountId}/contacts': ['get'],
  '/api/v1/accounts/{accountId}/conversations': ['get'],
  '/api/v1/accounts/{accountId}/conversations/{conversationId}/messages': ['get', 'post'],
  '/api/v1/accounts/{accountId}/conversations/{conversationId}/assign': ['post'],
  '/api/v1/accounts/{accountId}/conversations/{conversationId}/transfer': ['post'],
  '/api/v1/accounts/{accountId}/conversations/{conversationId}/resolve': ['post'],
  '/api/v1/accounts/{accountId}/conversations/{conversationId}/reopen': ['post'],
  '/api/v1/accounts/{accountId}/webhooks': ['get', 'post'],
  '/api/v1/accounts/{accountId}/events': ['get'],
  '/api/v1/agent/ws': ['get'],
  '/healthz': ['get'],
  '/readyz': ['get'],
  '/metrics': ['get'],
  '/openapi.json': ['get'],
};

describe('operations endpoints', () => {
  let t: TestGateway;
  beforeAll(async () => { t = await startTestGateway(); });
  afterAll(() => t.stop());

  it('/healthz answers 200', async () => {
    const health = await t.api('GET', '/healthz');
    expect(health.status).toBe(200);
    expect(health.body).toEqual({ status: 'ok' });
  });

  it('/readyz answers 200 when Redis and workers are alive', async () => {
    const ready = await t.api('GET', '/readyz');
    expect(ready.status).toBe(200);
    expect(ready.body.status).toBe('ready');
    expect(ready.body.checks.redis).toBe('ok');
    expect(ready.body.checks.workers).toMatch(/^ok/);
  });

  it('/readyz answers 503 for a web-only gateway with no worker alive', async () => {
    const web = await startTestGateway({ GATEWAY_REDIS_PREFIX: `t${randomBytes(4).toString('hex')}` }, 'web');
    try {
      const health = await web.api('GET', '/healthz');
      expect(health.status).toBe(200);
      const ready = await web.api('GET', '/readyz');
      expect(ready.status).toBe(503);
      expect(ready.body).toMatchObject({ status: 'not_ready', checks: { redis: 'ok', workers: 'none alive' } });
    } finally {
      await web.stop();
    }
  });

  it('/metrics is Prometheus text with HTTP and queue metrics', async () => {
    await t.api('GET', '/healthz');
    const metrics = await fetch(`${t.url}/metrics`);
    expect(metrics.status).toBe(200);
    expect(metrics.headers.get('content-type')).toMatch(/^text\/plain/);
    const text = await metrics.text();
    expect(text).toContain('# TYPE gateway_http_requests_total counter');
    expect(text).toMatch(/^gateway_http_requests_total\{[^}]*\} \d+/m);
    expect(text).toContain('# TYPE gateway_queue_jobs gauge');
    for (const queue of ['inbound', 'outbound', 'webhooks']) {
      expect(text).toMatch(new RegExp(`^gateway_queue_jobs\\{[^}]*queue="${queue}"[^}]*\\} \\d+`, 'm'));
    }
    // Webhook deliveries wait in lanes: their depth and lag are gauges of their own.
    expect(text).toMatch(/^gateway_webhook_lanes \d+/m);
    expect(text).toMatch(/^gateway_webhook_overdue_seconds [\d.]+/m);
  });

  it('/openapi.json is OpenAPI 3.1 and lists the whole contract surface', async () => {
    const spec = await t.api('GET', '/openapi.json');
    expect(spec.status).toBe(200);
    expect(spec.body.openapi).toMatch(/^3\.1\./);
    expect(spec.body.info).toMatchObject({ title: expect.any(String), version: expect.any(String) });
    const missing: string[] = [];
    for (const [path, methods] of Object.entries(contractSurface)) {
      for (const method of methods) if (!spec.body.paths?.[path]?.[method]) missing.push(`${method.toUpperCase()} ${path}`);
    }
    expect(missing).toEqual([]);
    const operationIds = Object.values(spec.body.paths as Record<string, Record<string, { operationId: string }>>)
      .flatMap((operations) => Object.values(operations).map((o) => o.operationId));
    expect(new Set(operationIds).size).toBe(operationIds.length);
  });

  it.each(['message.json', 'event.json'])('/schemas/%s is the JSON Schema committed in schemas/', async (name) => {
    const served = await t.api('GET', `/schemas/${name}`);
    expect(served.status).toBe(200);
    expect(served.body.$schema).toMatch(/json-schema\.org/);
    expect(served.body.$id).toBe(`https://channel-gateway.dev/schemas/${name}`);
    // If this fails, the zod source changed: run `npx tsx scripts/writeJsonSchemas.ts` and commit.
    expect(served.body).toEqual(committedSchema(name));
  });

  it('/schemas answers 404 for an unknown schema', async () => {
    expect((await t.api('GET', '/schemas/contact.json')).status).toBe(404);
  });
});

describe('graceful shutdown', () => {
  let receiver: Server;
  let receiverUrl = '';
  const delivered: { messageId: string; webhookId: string }[] = [];
  let answered = 0;

  beforeAll(async () => {
    // A slow CRM: every delivery takes a second to answer.
    receiver = createServer((request, response) => {
      let body = '';
      request.on('data', (chunk: Buffer) => { body += chunk.toString(); });
      request.on('end', () => {
        delivered.push({ messageId: JSON.parse(body).data.id, webhookId: String(request.headers['webhook-id']) });
        setTimeout(() => { answered += 1; response.end('ok'); }, 1000);
      });
    });
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
    receiverUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/crm`;
  });
  afterAll(async () => {
    receiver.closeAllConnections();
    await new Promise<void>((resolve) => receiver.close(() => resolve()));
  });

  it('finishes the active job on stop(), and a new gateway on the same prefix completes the queued work', async () => {
    // One job at a time, so the deliveries queue up behind the slow one.
    const first = await startTestGateway({ GATEWAY_WORKER_CONCURRENCY: '1' });
    let second: TestGateway | undefined;
    try {
      const tenant: Tenant = await createTenant(first);
      const subscription = await first.api('POST', `/api/v1/accounts/${tenant.accountId}/webhooks`, {
        key: tenant.apiKey, body: { url: receiverUrl, events: ['message.received'] },
      });
      expect(subscription.status).toBe(201);

      const messageIds: string[] = [];
      for (let i = 0; i < 4; i += 1) {
        const session = await first.api('POST', `/webchat/${tenant.inboxId}/session`, { body: {} });
        const sent = await first.api('POST', `/webchat/${tenant.inboxId}/messages`, {
          body: { visitorId: session.body.visitorId, visitorToken: session.body.visitorToken, clientMessageId: randomUUID(), text: `question ${i}` },
        });
        expect(sent.status).toBe(202);
        messageIds.push(sent.body.messageId);
      }

      // Stop while a delivery is in flight: stop() waits for it and leaves the rest queued.
      const deadline = Date.now() + 30_000;
      while (delivered.length === 0) {
        if (Date.now() > deadline) throw new Error('no webhook delivery started');
        await new Promise((r) => setTimeout(r, 20));
      }
      await first.stop();
      expect(answered).toBe(delivered.length);
      expect(delivered.length).toBeLessThan(messageIds.length);

      second = await startTestGateway({ GATEWAY_REDIS_PREFIX: first.prefix, GATEWAY_ADMIN_KEY: first.adminKey });
      const until = Date.now() + 45_000;
      while (!messageIds.every((id) => delivered.some((d) => d.messageId === id))) {
        if (Date.now() > until) throw new Error(`delivered ${JSON.stringify(delivered)} of ${JSON.stringify(messageIds)}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      const queues = Object.values(second.gateway.queues);
      const busy = async () => (await Promise.all(queues.map((q) => q.getJobCounts('waiting', 'active', 'delayed'))))
        .some((counts) => Object.values(counts).some((n) => n > 0));
      while (await busy()) {
        if (Date.now() > until) throw new Error('the queues did not drain');
        await new Promise((r) => setTimeout(r, 50));
      }
      // Webhook deliveries wait in their lanes, not in a queue: drained when none is pending.
      const pendingDeliveries = async () => (await second!.api('GET', `/api/v1/accounts/${tenant.accountId}/webhooks/${subscription.body.id}/deliveries?status=pending`, { key: tenant.apiKey })).body.items.length;
      while (await pendingDeliveries() > 0) {
        if (Date.now() > until) throw new Error('the webhook deliveries did not drain');
        await new Promise((r) => setTimeout(r, 50));
      }
      // Nothing was lost, nothing ran twice, nothing failed.
      expect(delivered.map((d) => d.messageId).sort()).toEqual([...messageIds].sort());
      expect(answered).toBe(delivered.length);
      for (const queue of queues) expect(await queue.getJobCounts('failed')).toEqual({ failed: 0 });
      // Every message is stored in its conversation, readable through the new gateway.
      const replay = await second.api('GET', `/api/v1/accounts/${tenant.accountId}/events?limit=200`, { key: tenant.apiKey });
      const received = replay.body.items.filter((e: any) => e.type === 'message.received').map((e: any) => e.data.id);
      expect(received.sort()).toEqual([...messageIds].sort());
    } finally {
      await second?.stop();
    }
  });
});

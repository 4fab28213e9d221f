// Acceptance: a worker killed with SIGKILL in the middle of deliveries loses no event. Separate
// processes (a web and a worker on one Redis); the receiver answers slowly, so deliveries are in
// flight at the kill; a new worker takes the dead one's lanes over when their leases end and every
// event arrives, in order per conversation.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTenantOn, newDeployment, startGatewayProcess, type Deployment, type GatewayProcess } from '../support/gatewayProcess.ts';
import type { Tenant } from '../support/testGateway.ts';
import { eventOf, verifiedEvent, WebhookReceiver } from './webhookReceiver.ts';

const visitors = 6;
const messagesPerVisitor = 10;
const workerEnv = { GATEWAY_WEBHOOK_TIMEOUT_MS: '2000', GATEWAY_WEBHOOK_RETRY_BASE_MS: '100', GATEWAY_WEBHOOK_RETRY_MAX_MS: '500' };

describe('killing a worker mid-delivery (separate processes)', () => {
  let deployment: Deployment;
  let web: GatewayProcess;
  let worker: GatewayProcess;
  let replacement: GatewayProcess | undefined;
  let tenant: Tenant;
  const receiver = new WebhookReceiver();

  beforeAll(async () => {
    await receiver.start();
    deployment = newDeployment();
    [web, worker] = await Promise.all([startGatewayProcess(deployment, 'web'), startGatewayProcess(deployment, 'worker', { env: workerEnv })]);
    tenant = await createTenantOn(web);
  });
  afterAll(async () => {
    await receiver.stop();
    await Promise.all([web, worker, replacement].map((p) => p?.stop()));
    deployment?.cleanup();
  });

  it('delivers every event, in order per conversation, after the delivering worker is killed with SIGKILL', async () => {
    receiver.answerAlways('/crm', { delayMs: 150 });
    const created = await web.api('POST', `/api/v1/accounts/${tenant.accountId}/webhooks`, { key: tenant.apiKey, body: { url: `${receiver.url}/crm`, events: ['message.received'] } });
    expect(created.status).toBe(201);
    const secret = created.body.secret as string;

    const sent: string[][] = [];
    await Promise.all(Array.from({ length: visitors }, async (_, v) => {
      const session = (await web.api('POST', `/webchat/${tenant.inboxId}/session`, { body: {} })).body;
      sent[v] = [];
      for (let i = 0; i < messagesPerVisitor; i++) {
        const text = `v${v}-m${i}`;
        const answer = await web.api('POST', `/webchat/${tenant.inboxId}/messages`, {
          body: { visitorId: session.visitorId, visitorToken: session.visitorToken, clientMessageId: randomUUID(), text },
        });
        expect(answer.status).toBe(202);
        sent[v]!.push(text);
      }
    }));

    // Every event is in the stream before the kill, so the kill can only touch its delivery.
    const total = visitors * messagesPerVisitor;
    const replayed = async () => {
      const items: { id: string; type: string; subject: string }[] = [];
      let cursor: string | null = null;
      do {
        const page: { body: { items: typeof items; nextCursor: string | null } } = await web.api('GET', `/api/v1/accounts/${tenant.accountId}/events?types=message.received&limit=200${cursor ? `&cursor=${cursor}` : ''}`, { key: tenant.apiKey });
        items.push(...page.body.items);
        cursor = page.body.nextCursor;
      } while (cursor);
      return items;
    };
    await expect.poll(async () => (await replayed()).length, { timeout: 30_000 }).toBe(total);

    // Kill the worker while requests are open at the receiver.
    await receiver.waitFor('deliveries in flight', () => receiver.deliveries.length >= 8 && receiver.open > 0, 30_000);
    worker.kill('SIGKILL');
    const openAtKill = receiver.open;
    expect((await worker.exited).signal).toBe('SIGKILL');
    const deliveredAtKill = receiver.deliveries.length;
    replacement = await startGatewayProcess(deployment, 'worker', { env: workerEnv });

    const deliveredIds = () => new Set(receiver.deliveries.map((d) => d.headers['webhook-id']));
    await receiver.waitFor('every event', () => deliveredIds().size === total, 60_000);
    expect(deliveredAtKill).toBeLessThan(total);
    expect(openAtKill).toBeGreaterThan(0);

    // Every event arrived, verified; per conversation in the order of the event stream (replay),
    // a repeat (a delivery cut off by the kill, sent again) only right after itself.
    const byConversation = new Map<string, string[]>();
    for (const d of receiver.deliveries) {
      const event = verifiedEvent(d, secret);
      const ids = byConversation.get(event.subject!) ?? [];
      if (ids.at(-1) !== event.id) ids.push(event.id);
      byConversation.set(event.subject!, ids);
    }
    const streamOrder = new Map<string, string[]>();
    for (const e of await replayed()) streamOrder.set(e.subject, [...(streamOrder.get(e.subject) ?? []), e.id]);
    expect(byConversation).toEqual(streamOrder);
    expect(new Set(receiver.deliveries.map((d) => eventOf(d).id)).size).toBe(total);
    expect(sent.flat()).toHaveLength(total);
  }, 120_000);
});

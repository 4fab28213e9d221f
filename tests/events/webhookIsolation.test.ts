// Subscriptions do not hold each other up: a receiver that answers after 30 s, or with a 10 MB body,
// holds at most its own in-flight slots (GATEWAY_WEBHOOK_SUBSCRIPTION_CONCURRENCY) while another
// subscription gets every event. And a receiver that keeps failing: each delivery is kept as failed
// after the retry window, and after the pause span the subscription is paused with a webhook.paused
// event; enabling it again resumes it. Windows are shortened by settings (hours as fractions).
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTenant, startTestGateway, type Tenant, type TestGateway } from '../support/testGateway.ts';
import { eventOf, verifiedEvent, WebhookReceiver } from './webhookReceiver.ts';

describe('webhook subscriptions in isolation', () => {
  let t: TestGateway;
  let tenant: Tenant;
  const receiver = new WebhookReceiver();
  const secrets = new Map<string, string>();

  const subscribe = async (path: string, events: string[]) => {
    const created = await t.api('POST', `/api/v1/accounts/${tenant.accountId}/webhooks`, { key: tenant.apiKey, body: { url: `${receiver.url}${path}`, events } });
    expect(created.status).toBe(201);
    secrets.set(path, created.body.secret);
    return created.body.id as string;
  };
  const visitorSays = async (text: string) => {
    const session = (await t.api('POST', `/webchat/${tenant.inboxId}/session`, { body: {} })).body;
    const sent = await t.api('POST', `/webchat/${tenant.inboxId}/messages`, {
      body: { visitorId: session.visitorId, visitorToken: session.visitorToken, clientMessageId: randomUUID(), text },
    });
    expect(sent.status).toBe(202);
    return sent.body.messageId as string;
  };
  const messagesAt = (path: string) => receiver.at(path).filter((d) => d.status === 200 && eventOf(d).type === 'message.received');

  beforeAll(async () => {
    await receiver.start();
    t = await startTestGateway({
      GATEWAY_WORKER_CONCURRENCY: '8', GATEWAY_WEBHOOK_SUBSCRIPTION_CONCURRENCY: '2',
      GATEWAY_WEBHOOK_RETRY_BASE_MS: '50', GATEWAY_WEBHOOK_RETRY_MAX_MS: '200',
      GATEWAY_WEBHOOK_RETRY_HOURS: '0.0005', GATEWAY_WEBHOOK_PAUSE_AFTER_HOURS: '0.001',
    });
    tenant = await createTenant(t);
  });
  afterAll(async () => {
    await receiver.stop(); // drops the slow receiver's connections, so the gateway stops at once
    await t?.stop();
  });

  it('delivers to a healthy receiver while another answers after 30 s and a third with a 10 MB body', async () => {
    receiver.answerAlways('/slow', { delayMs: 30_000 });
    receiver.answerAlways('/huge', { bodyBytes: 10 * 1024 * 1024 });
    await subscribe('/slow', ['*']);
    const hugeId = await subscribe('/huge', ['message.received']);
    await subscribe('/fast', ['message.received']);
    const messageIds: string[] = [];
    for (let i = 0; i < 12; i++) messageIds.push(await visitorSays(`isolated ${i}`));

    // Well under the 10 s a stalled delivery would cost: the slow receiver holds only its own slots.
    await receiver.waitFor('every message at /fast', () => messagesAt('/fast').length === 12, 8000);
    expect(messagesAt('/fast').map((d) => eventOf(d).data.id).sort()).toEqual([...messageIds].sort());
    for (const d of messagesAt('/fast')) verifiedEvent(d, secrets.get('/fast')!);
    await receiver.waitFor('every message at /huge', () => messagesAt('/huge').length === 12, 8000);
    // The slow one has no more than its cap in flight.
    expect(receiver.at('/slow').length).toBeLessThanOrEqual(2);
    // A 10 MB answer is not read: the delivery counts as soon as the status is in.
    await expect.poll(async () => {
      const page = await t.api('GET', `/api/v1/accounts/${tenant.accountId}/webhooks/${hugeId}/deliveries?status=succeeded&limit=50`, { key: tenant.apiKey });
      return page.body.items.length;
    }, { timeout: 10_000 }).toBe(12);
  });

  it('keeps a delivery as failed after the retry window, then pauses a subscription failing that long, with an event', async () => {
    receiver.answerAlways('/down', { status: 500 });
    const downId = await subscribe('/down', ['message.received']);
    await subscribe('/watcher', ['webhook.*']);
    const first = await visitorSays('nobody home');
    const api = (path: string) => t.api('GET', `/api/v1/accounts/${tenant.accountId}/webhooks/${downId}${path}`, { key: tenant.apiKey });
    await expect.poll(async () => (await api(`/deliveries/evt_${first}_r`)).body.status, { timeout: 15_000 }).toBe('failed');
    const failed = (await api(`/deliveries/evt_${first}_r`)).body;
    expect(failed.failedReason).toMatch(/retry window/);
    expect(failed.attempts).toBeGreaterThan(3);

    // Still failing: once the pause span has passed, the subscription is paused and a webhook.paused event says so.
    await visitorSays('still nobody');
    await expect.poll(async () => (await api('')).body.enabled, { timeout: 20_000, interval: 200 }).toBe(false);
    const paused = (await api('')).body;
    expect(paused.pausedAt).toEqual(expect.any(String));
    expect(paused.disabledReason).toMatch(/^paused/);
    await receiver.waitFor('the webhook.paused event', () => receiver.at('/watcher').some((d) => eventOf(d).type === 'webhook.paused'));
    const event = verifiedEvent(receiver.at('/watcher').find((d) => eventOf(d).type === 'webhook.paused')!, secrets.get('/watcher')!);
    expect(event.subject).toBe(downId);
    expect(event.data).toMatchObject({ id: downId, failingSince: expect.any(String) });
    const replay = await t.api('GET', `/api/v1/accounts/${tenant.accountId}/events?types=webhook.paused`, { key: tenant.apiKey });
    expect(replay.body.items.map((e: { id: string }) => e.id)).toEqual([event.id]);

    // Paused: nothing more is sent. Enabled again (the receiver is back): deliveries resume.
    const requestsWhenPaused = receiver.at('/down').length;
    const during = await visitorSays('while paused');
    await new Promise((r) => setTimeout(r, 500));
    expect(receiver.at('/down').length).toBe(requestsWhenPaused);
    receiver.answerAlways('/down', { status: 200 });
    const resumed = await t.api('PATCH', `/api/v1/accounts/${tenant.accountId}/webhooks/${downId}`, { key: tenant.apiKey, body: { enabled: true } });
    expect(resumed.body).toMatchObject({ enabled: true, pausedAt: null, disabledReason: null });
    const after = await visitorSays('back again');
    await receiver.waitFor('a delivery after resuming', () => messagesAt('/down').some((d) => eventOf(d).data.id === after));
    // What happened while paused is in the replay feed, not in the webhook.
    expect(messagesAt('/down').some((d) => eventOf(d).data.id === during)).toBe(false);
  });
});

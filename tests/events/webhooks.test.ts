// CRM webhooks end to end: a local receiver subscribes, visitor messages produce signed CloudEvents,
// failures are retried with the same webhook-id, 410 disables, and the replay API pages in order.
//
// Retries: the production backoff (webhookBackoff: 10 s doubling) is kept as is; the test promotes
// the delayed job (BullMQ Job.promote) once it has checked the delay the backoff chose. That adds no
// setting that could shorten the contract's 24-hour retry window.
import { createHmac, randomUUID } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { webhookBackoff } from '../../src/queues.ts';
import { eventSchema, type GatewayEvent } from '../../src/schema/event.ts';
import { createTenant, startTestGateway, type Tenant, type TestGateway } from '../support/testGateway.ts';

interface Delivery { path: string; headers: IncomingHttpHeaders; body: string; status: number }

/** A CRM endpoint on 127.0.0.1: records every request; each path answers a scripted list of statuses, then 200. */
class WebhookReceiver {
  readonly deliveries: Delivery[] = [];
  private readonly scripted = new Map<string, number[]>();
  private server: Server | undefined;
  url = '';

  async start(): Promise<void> {
    this.server = createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => {
        const path = request.url ?? '/';
        const status = this.scripted.get(path)?.shift() ?? 200;
        this.deliveries.push({ path, headers: request.headers, body: Buffer.concat(chunks).toString('utf8'), status });
        response.writeHead(status, { 'content-type': 'text/plain' }).end(String(status));
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  answer(path: string, statuses: number[]): void { this.scripted.set(path, [...statuses]); }

  at(path: string): Delivery[] { return this.deliveries.filter((d) => d.path === path); }

  async waitFor(what: string, done: () => boolean, timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!done()) {
      if (Date.now() > deadline) throw new Error(`webhook receiver: ${what} did not happen within ${timeoutMs} ms; got ${JSON.stringify(this.deliveries.map((d) => [d.path, d.headers['webhook-id'], d.status]))}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => this.server?.close(() => resolve()) ?? resolve());
  }
}

const eventOf = (d: Delivery): GatewayEvent => JSON.parse(d.body);

/** Checks the Standard Webhooks headers by recomputing the signature from the whsec_ secret. */
function expectSignedPerStandardWebhooks(delivery: Delivery, secret: string): void {
  const id = delivery.headers['webhook-id'] as string;
  const timestamp = delivery.headers['webhook-timestamp'] as string;
  expect(id).toBe(eventOf(delivery).id);
  expect(timestamp).toMatch(/^\d{10}$/);
  expect(Math.abs(Number(timestamp) - Date.now() / 1000)).toBeLessThan(300);
  expect(secret).toMatch(/^whsec_[A-Za-z0-9+/=]+$/);
  const key = Buffer.from(secret.slice('whsec_'.length), 'base64');
  const expected = `v1,${createHmac('sha256', key).update(`${id}.${timestamp}.${delivery.body}`).digest('base64')}`;
  // The header may carry several space-separated signatures (key rotation); ours must be one of them.
  expect((delivery.headers['webhook-signature'] as string).split(' ')).toContain(expected);
  expect(delivery.headers['content-type']).toMatch(/^application\/json/);
}

describe('CRM webhooks', () => {
  let t: TestGateway;
  let tenant: Tenant;
  const receiver = new WebhookReceiver();
  const secrets = new Map<string, string>();

  const subscribe = async (path: string, events: string[]) => {
    const created = await t.api('POST', `/api/v1/accounts/${tenant.accountId}/webhooks`, { key: tenant.apiKey, body: { url: `${receiver.url}${path}`, events } });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ url: `${receiver.url}${path}`, events, enabled: true, disabledReason: null });
    secrets.set(path, created.body.secret);
    return created.body.id as string;
  };

  /** A new visitor says something through the web chat REST fallback; returns the message id. */
  const visitorSays = async (text: string): Promise<string> => {
    const session = await t.api('POST', `/webchat/${tenant.inboxId}/session`, { body: {} });
    expect(session.status).toBe(200);
    const sent = await t.api('POST', `/webchat/${tenant.inboxId}/messages`, {
      body: { visitorId: session.body.visitorId, visitorToken: session.body.visitorToken, clientMessageId: randomUUID(), text },
    });
    expect(sent.status).toBe(202);
    return sent.body.messageId;
  };

  const receivedFor = (path: string, messageId: string) =>
    receiver.at(path).find((d) => eventOf(d).type === 'message.received' && eventOf(d).data.id === messageId);

  const webhookQueueDrained = async () => {
    const counts = await t.gateway.queues.webhooks.getJobCounts('waiting', 'active', 'delayed', 'prioritized');
    return Object.values(counts).every((n) => n === 0);
  };

  const waitForDrainedQueue = async () => {
    const deadline = Date.now() + 30_000;
    while (!(await webhookQueueDrained())) {
      if (Date.now() > deadline) throw new Error('the webhooks queue did not drain');
      await new Promise((r) => setTimeout(r, 100));
    }
  };

  beforeAll(async () => {
    await receiver.start();
    t = await startTestGateway();
    tenant = await createTenant(t);
    await subscribe('/all', ['contact.created', 'conversation.created', 'message.received', 'conversation.assigned', 'conversation.queued']);
    await subscribe('/messages-only', ['message.received']);
  });
  afterAll(async () => {
    await t?.stop();
    await receiver.stop();
  });

  it('delivers a visitor message as signed CloudEvents, filtered by event type', async () => {
    const messageId = await visitorSays('Where is my parcel?');
    let conversationId = '';
    await receiver.waitFor('the conversation events', () => {
      const received = receivedFor('/all', messageId);
      if (!received) return false;
      conversationId = eventOf(received).subject!;
      return receiver.at('/all').some((d) => eventOf(d).subject === conversationId && /^conversation\.(assigned|queued)$/.test(eventOf(d).type));
    });

    const forThisVisitor = receiver.at('/all').filter((d) => {
      const e = eventOf(d);
      return e.subject === conversationId || (e.type === 'contact.created' && e.subject === eventOf(receivedFor('/all', messageId)!).data.contactId);
    });
    const types = forThisVisitor.map((d) => eventOf(d).type);
    expect(types).toEqual(expect.arrayContaining(['contact.created', 'conversation.created', 'message.received']));
    expect(types.some((type) => type === 'conversation.assigned' || type === 'conversation.queued')).toBe(true);

    for (const delivery of forThisVisitor) {
      expectSignedPerStandardWebhooks(delivery, secrets.get('/all')!);
      const event = eventSchema.parse(eventOf(delivery));
      expect(event.specversion).toBe('1.0');
      expect(event.source).toMatch(new RegExp(`^/accounts/${tenant.accountId}(/inboxes/${tenant.inboxId})?$`));
      expect(Number.isNaN(Date.parse(event.time))).toBe(false);
    }
    const received = eventOf(receivedFor('/all', messageId)!);
    expect(received.source).toBe(`/accounts/${tenant.accountId}/inboxes/${tenant.inboxId}`);
    expect(received.data).toMatchObject({ id: messageId, conversationId, direction: 'inbound', channel: 'webchat' });

    // The message.received-only subscription saw this message and nothing about conversations or contacts.
    await receiver.waitFor('the filtered delivery', () => receivedFor('/messages-only', messageId) !== undefined);
    await waitForDrainedQueue();
    expect(receiver.at('/messages-only').map((d) => eventOf(d).type).every((type) => type === 'message.received')).toBe(true);
    expectSignedPerStandardWebhooks(receivedFor('/messages-only', messageId)!, secrets.get('/messages-only')!);
    // Each subscription has its own secret.
    expect(secrets.get('/messages-only')).not.toBe(secrets.get('/all'));
  });

  it('retries a failing endpoint with the same webhook-id until it answers 2xx', async () => {
    receiver.answer('/flaky', [500, 500]);
    const flakyId = await subscribe('/flaky', ['message.received']);
    const messageId = await visitorSays('Please call me back');

    const delays: number[] = [];
    const deadline = Date.now() + 45_000;
    while (receiver.at('/flaky').length < 3) {
      if (Date.now() > deadline) throw new Error(`flaky endpoint got ${receiver.at('/flaky').length} of 3 attempts`);
      for (const job of await t.gateway.queues.webhooks.getDelayed()) {
        if (job.data.subscriptionId !== flakyId) continue;
        delays.push(job.delay);
        await job.promote().catch(() => undefined); // it may have moved on meanwhile
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    await waitForDrainedQueue();

    const attempts = receiver.at('/flaky');
    expect(attempts.map((d) => d.status)).toEqual([500, 500, 200]);
    expect(new Set(attempts.map((d) => d.headers['webhook-id'])).size).toBe(1);
    expect(attempts[0]!.headers['webhook-id']).toBe(eventOf(receivedFor('/flaky', messageId)!).id);
    for (const attempt of attempts) {
      expectSignedPerStandardWebhooks(attempt, secrets.get('/flaky')!);
      expect(attempt.body).toBe(attempts[0]!.body);
    }
    // Between attempts the job waited in BullMQ's delayed set with the production backoff.
    expect(new Set(delays)).toEqual(new Set([webhookBackoff(1), webhookBackoff(2)]));
    expect(webhookBackoff(1)).toBe(10_000);
    expect(webhookBackoff(2)).toBe(20_000);
  });

  it('disables a subscription whose endpoint answers 410 Gone', async () => {
    receiver.answer('/gone', [410]);
    const goneId = await subscribe('/gone', ['message.received']);
    await visitorSays('Anyone there?');
    await receiver.waitFor('the 410 answer', () => receiver.at('/gone').length === 1);

    let view: any;
    const deadline = Date.now() + 20_000;
    do {
      view = (await t.api('GET', `/api/v1/accounts/${tenant.accountId}/webhooks/${goneId}`, { key: tenant.apiKey })).body;
      if (!view.enabled) break;
      await new Promise((r) => setTimeout(r, 100));
    } while (Date.now() < deadline);
    expect(view.enabled).toBe(false);
    expect(view.disabledReason).toMatch(/410/);
    expect(view).not.toHaveProperty('secret');
    expect(view).not.toHaveProperty('sealedSecret');

    // Later events go to the other subscriptions but not to the disabled one.
    const later = await visitorSays('Hello again');
    await receiver.waitFor('the later delivery', () => receivedFor('/all', later) !== undefined);
    await waitForDrainedQueue();
    expect(receiver.at('/gone')).toHaveLength(1);
  });

  it('replays the account events in order with cursor pagination', async () => {
    const base = `/api/v1/accounts/${tenant.accountId}/events`;
    const whole = await t.api('GET', `${base}?limit=200`, { key: tenant.apiKey });
    expect(whole.status).toBe(200);
    const all: GatewayEvent[] = whole.body.items;
    expect(all.length).toBeGreaterThan(8);
    expect(all.length).toBeLessThan(200);

    const paged: GatewayEvent[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const page: { status: number; body: { items: GatewayEvent[]; nextCursor: string | null } } =
        await t.api('GET', `${base}?limit=3${cursor ? `&cursor=${cursor}` : ''}`, { key: tenant.apiKey });
      expect(page.status).toBe(200);
      expect(page.body.items.length).toBeLessThanOrEqual(3);
      paged.push(...page.body.items);
      cursor = page.body.nextCursor;
      pages += 1;
    } while (cursor && pages < 100);
    expect(paged.map((e) => e.id)).toEqual(all.map((e) => e.id));
    expect(new Set(all.map((e) => e.id)).size).toBe(all.length);
    for (const event of all) eventSchema.parse(event);

    // Oldest first: times never go backwards, and one conversation's story reads in causal order.
    const times = all.map((e) => Date.parse(e.time));
    expect(times).toEqual([...times].sort((a, b) => a - b));
    const firstMessage = all.find((e) => e.type === 'message.received')!;
    const conversationId = firstMessage.subject!;
    const story = all.filter((e) => e.subject === conversationId).map((e) => e.type);
    expect(story.slice(0, 2)).toEqual(['conversation.created', 'message.received']);
    expect(story[2]).toMatch(/^conversation\.(assigned|queued)$/);
    const contactCreated = all.findIndex((e) => e.type === 'contact.created' && e.subject === firstMessage.data.contactId);
    expect(contactCreated).toBeGreaterThanOrEqual(0);
    expect(contactCreated).toBeLessThan(all.findIndex((e) => e.subject === conversationId && e.type === 'conversation.created'));

    // Every delivered webhook is in the replay feed under the same id.
    const replayIds = new Set(all.map((e) => e.id));
    for (const delivery of receiver.at('/all')) expect(replayIds.has(delivery.headers['webhook-id'] as string)).toBe(true);

    const bad = await t.api('GET', `${base}?cursor=nonsense`, { key: tenant.apiKey });
    expect(bad.status).toBe(400);
    const otherAccount = await t.api('POST', '/api/v1/accounts', { key: t.adminKey, body: { name: 'Other' } });
    const foreign = await t.api('GET', base, { key: otherAccount.body.key });
    expect([401, 403, 404]).toContain(foreign.status);
  });
});

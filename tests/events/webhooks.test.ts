// CRM webhooks end to end against a local receiver: every delivery is verified with the npm
// standardwebhooks library and read with the npm cloudevents SDK; refusals are retried in order per
// conversation with the same webhook-id; 410 disables; deliveries, attempts and redelivery through
// the API; secret rotation; binary mode, PII masking and inbox filters; replay.
// Retries use a short backoff (GATEWAY_WEBHOOK_RETRY_BASE_MS) so the tests never wait for real hours.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventSchema, type GatewayEvent } from '../../src/schema/event.ts';
import { createTenant, startTestGateway, type Tenant, type TestGateway } from '../support/testGateway.ts';
import { eventOf, verifiedEvent, WebhookReceiver } from './webhookReceiver.ts';

describe('CRM webhooks', () => {
  let t: TestGateway;
  let tenant: Tenant;
  const receiver = new WebhookReceiver();
  const secrets = new Map<string, string>();
  const ids = new Map<string, string>();
  /** The replay cursor just before /all subscribed: everything after it is what /all must get. */
  let cursorBeforeAll = '';

  const subscribe = async (path: string, events: string[], extra: Record<string, unknown> = {}) => {
    const created = await t.api('POST', `/api/v1/accounts/${tenant.accountId}/webhooks`, { key: tenant.apiKey, body: { url: `${receiver.url}${path}`, events, ...extra } });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    expect(created.body).toMatchObject({ url: `${receiver.url}${path}`, events, enabled: true, disabledReason: null });
    secrets.set(path, created.body.secret);
    ids.set(path, created.body.id);
    return created.body.id as string;
  };

  /** A visitor (new unless given) says something through the web chat REST fallback. */
  const visitorSays = async (text: string, visitor?: { visitorId: string; visitorToken: string }) => {
    const session = visitor ?? (await t.api('POST', `/webchat/${tenant.inboxId}/session`, { body: {} })).body;
    const sent = await t.api('POST', `/webchat/${tenant.inboxId}/messages`, {
      body: { visitorId: session.visitorId, visitorToken: session.visitorToken, clientMessageId: randomUUID(), text },
    });
    expect(sent.status).toBe(202);
    return { messageId: sent.body.messageId as string, visitor: { visitorId: session.visitorId as string, visitorToken: session.visitorToken as string } };
  };

  const receivedFor = (path: string, messageId: string) =>
    receiver.at(path).find((d) => d.status === 200 && eventOf(d).type === 'message.received' && eventOf(d).data.id === messageId);

  const contactOf = async (messageId: string) => {
    await receiver.waitFor('the message on /all', () => receivedFor('/all', messageId) !== undefined);
    return eventOf(receivedFor('/all', messageId)!).data.contactId as string;
  };

  const replayAll = async (query = '', after?: string): Promise<GatewayEvent[]> => {
    const items: GatewayEvent[] = [];
    let cursor: string | null = after ?? null;
    do {
      const page: { status: number; body: { items: GatewayEvent[]; nextCursor: string | null } } =
        await t.api('GET', `/api/v1/accounts/${tenant.accountId}/events?limit=100${query}${cursor ? `&cursor=${cursor}` : ''}`, { key: tenant.apiKey });
      expect(page.status, JSON.stringify(page.body)).toBe(200);
      items.push(...page.body.items);
      cursor = page.body.nextCursor;
    } while (cursor);
    return items;
  };

  beforeAll(async () => {
    await receiver.start();
    t = await startTestGateway({ GATEWAY_WEBHOOK_RETRY_BASE_MS: '50', GATEWAY_WEBHOOK_RETRY_MAX_MS: '400' });
    tenant = await createTenant(t);
    const head = await t.gateway.redis.xrevrange(t.gateway.keys.accountEvents(tenant.accountId), '+', '-', 'COUNT', 1);
    cursorBeforeAll = head[0]?.[0] ?? '0-0';
    await subscribe('/all', ['*']);
    await subscribe('/messages-only', ['message.received']);
  });
  afterAll(async () => {
    await t?.stop();
    await receiver.stop();
  });

  it('delivers every event as a CloudEvent that standardwebhooks verifies, filtered by event type', async () => {
    const { messageId } = await visitorSays('Where is my parcel?');
    await receiver.waitFor('the filtered delivery', () => receivedFor('/messages-only', messageId) !== undefined);
    const conversationId = eventOf(receivedFor('/all', messageId) ?? (await receiver.waitFor('all', () => !!receivedFor('/all', messageId)), receivedFor('/all', messageId))!).subject!;
    await receiver.waitFor('the routing event', () => receiver.at('/all').some((d) => eventOf(d).subject === conversationId && /^conversation\.(assigned|queued)$/.test(eventOf(d).type)));

    for (const delivery of receiver.at('/all')) {
      const event = verifiedEvent(delivery, secrets.get('/all')!);
      expect(event.specversion).toBe('1.0');
      expect(delivery.headers['webhook-id']).toBe(event.id);
      expect(delivery.headers['content-type']).toMatch(/^application\/cloudevents\+json/);
      eventSchema.parse(JSON.parse(delivery.body));
    }
    const received = verifiedEvent(receivedFor('/all', messageId)!, secrets.get('/all')!);
    expect(received.source).toBe(`/accounts/${tenant.accountId}/inboxes/${tenant.inboxId}`);
    expect(received.type).toBe('message.received');
    expect(received.data).toMatchObject({ id: messageId, conversationId, direction: 'inbound', channel: 'webchat' });
    const types = receiver.at('/all').map((d) => eventOf(d).type);
    expect(types).toEqual(expect.arrayContaining(['contact.created', 'conversation.created', 'message.received']));

    // Only message.received reached the filtered subscription, signed with its own secret.
    expect(receiver.at('/messages-only').every((d) => eventOf(d).type === 'message.received')).toBe(true);
    verifiedEvent(receivedFor('/messages-only', messageId)!, secrets.get('/messages-only')!);
    expect(() => verifiedEvent(receivedFor('/messages-only', messageId)!, secrets.get('/all')!)).toThrow();
  });

  it('gets every event, in order per conversation, to a receiver that refuses 5 times and then recovers', async () => {
    receiver.answer('/flaky', [500, 503, 502, 500, 429]);
    const flakyId = await subscribe('/flaky', ['message.received', 'contact.updated']);
    const first = await visitorSays('m0');
    const texts = ['m0'];
    for (let i = 1; i < 8; i++) { texts.push(`m${i}`); await visitorSays(`m${i}`, first.visitor); }
    const contactId = await contactOf(first.messageId);
    for (let i = 0; i < 6; i++) {
      const patched = await t.api('PATCH', `/api/v1/accounts/${tenant.accountId}/contacts/${contactId}`, { key: tenant.apiKey, body: { attributes: { step: i } } });
      expect(patched.status).toBe(200);
    }
    const ok = () => receiver.at('/flaky').filter((d) => d.status === 200);
    await receiver.waitFor('every flaky delivery', () => ok().length === 14);

    const attempts = receiver.at('/flaky');
    expect(attempts.slice(0, 5).map((d) => d.status)).toEqual([500, 503, 502, 500, 429]);
    for (const delivery of attempts) verifiedEvent(delivery, secrets.get('/flaky')!);
    // Per conversation (and per contact), one event at a time: an event is retried, with the same
    // webhook-id and body, until it is delivered, and only then does the next one go out.
    const lanes = new Map<string, typeof attempts>();
    for (const d of attempts) lanes.set(eventOf(d).subject!, [...(lanes.get(eventOf(d).subject!) ?? []), d]);
    let retried = 0;
    for (const requests of lanes.values()) {
      const runs: (typeof attempts)[] = [];
      for (const d of requests) {
        const run = runs.at(-1);
        if (run && run[0]!.headers['webhook-id'] === d.headers['webhook-id']) run.push(d); else runs.push([d]);
      }
      expect(new Set(runs.map((r) => r[0]!.headers['webhook-id'])).size).toBe(runs.length);
      for (const run of runs) {
        expect(run.map((d) => d.status).slice(0, -1).every((status) => status !== 200)).toBe(true);
        expect(run.at(-1)!.status).toBe(200);
        expect(new Set(run.map((d) => d.body)).size).toBe(1);
        if (run.length > 1) retried++;
      }
    }
    expect(retried).toBeGreaterThan(0);
    const refusedId = attempts[0]!.headers['webhook-id'] as string;
    const refusedStatuses = attempts.filter((d) => d.headers['webhook-id'] === refusedId).map((d) => d.status);
    expect(refusedStatuses.length).toBeGreaterThan(1);

    const delivered = ok().map((d) => eventOf(d));
    expect(new Set(delivered.map((e) => e.id)).size).toBe(14);
    expect(delivered.filter((e) => e.type === 'message.received').map((e) => e.data.content.text)).toEqual(texts);
    expect(delivered.filter((e) => e.type === 'contact.updated').map((e) => e.data.attributes.step)).toEqual([0, 1, 2, 3, 4, 5]);

    // The API lists the deliveries and the refused one's six attempts, with growing waits between them.
    const list = await t.api('GET', `/api/v1/accounts/${tenant.accountId}/webhooks/${flakyId}/deliveries?limit=5`, { key: tenant.apiKey });
    expect(list.status).toBe(200);
    expect(list.body.items).toHaveLength(5);
    expect(list.body.nextCursor).toEqual(expect.any(String));
    const rest = await t.api('GET', `/api/v1/accounts/${tenant.accountId}/webhooks/${flakyId}/deliveries?limit=50&cursor=${list.body.nextCursor}`, { key: tenant.apiKey });
    expect([...list.body.items, ...rest.body.items].map((d: { id: string }) => d.id).sort()).toEqual(delivered.map((e) => e.id).sort());
    expect(rest.body.nextCursor).toBeNull();
    const one = await t.api('GET', `/api/v1/accounts/${tenant.accountId}/webhooks/${flakyId}/deliveries/${refusedId}`, { key: tenant.apiKey });
    expect(one.body).toMatchObject({ id: refusedId, status: 'succeeded', attempts: refusedStatuses.length, lastStatus: 200 });
    expect(one.body.event.id).toBe(refusedId);
    const page1 = await t.api('GET', `/api/v1/accounts/${tenant.accountId}/webhooks/${flakyId}/deliveries/${refusedId}/attempts?limit=1`, { key: tenant.apiKey });
    expect(page1.body.nextCursor).toBe('1');
    const page2 = await t.api('GET', `/api/v1/accounts/${tenant.accountId}/webhooks/${flakyId}/deliveries/${refusedId}/attempts?limit=50&cursor=${page1.body.nextCursor}`, { key: tenant.apiKey });
    const all = [...page1.body.items, ...page2.body.items];
    expect(all.map((a: { status: number }) => a.status)).toEqual(refusedStatuses);
    expect(all.map((a: { outcome: string }) => a.outcome)).toEqual([...refusedStatuses.slice(0, -1).map(() => 'retry'), 'ok']);
    expect(page2.body.nextCursor).toBeNull();

    // Manual redelivery: the same webhook-id and body once more.
    const before = receiver.at('/flaky').length;
    const again = await t.api('POST', `/api/v1/accounts/${tenant.accountId}/webhooks/${flakyId}/deliveries/${refusedId}/redeliver`, { key: tenant.apiKey });
    expect(again.status).toBe(202);
    await receiver.waitFor('the redelivery', () => receiver.at('/flaky').length === before + 1);
    const redelivered = receiver.at('/flaky')[before]!;
    expect(redelivered.headers['webhook-id']).toBe(refusedId);
    expect(redelivered.body).toBe(attempts[0]!.body);
    expect((await t.api('POST', `/api/v1/accounts/${tenant.accountId}/webhooks/${flakyId}/deliveries/nope/redeliver`, { key: tenant.apiKey })).status).toBe(404);
  });

  it('waits as long as Retry-After says', async () => {
    receiver.answer('/later', [{ status: 503, retryAfter: '1' }]);
    await subscribe('/later', ['message.received']);
    await visitorSays('later please');
    await receiver.waitFor('the second attempt', () => receiver.at('/later').length === 2);
    const [firstTry, secondTry] = receiver.at('/later');
    expect(secondTry!.headers['webhook-id']).toBe(firstTry!.headers['webhook-id']);
    expect(secondTry!.at - firstTry!.at).toBeGreaterThanOrEqual(950);
  });

  it('disables a subscription whose endpoint answers 410 Gone, and says so in a webhook.disabled event', async () => {
    receiver.answer('/gone', [410]);
    const goneId = await subscribe('/gone', ['message.received']);
    await visitorSays('Anyone there?');
    await receiver.waitFor('the 410 answer', () => receiver.at('/gone').length === 1);
    await expect.poll(async () => (await t.api('GET', `/api/v1/accounts/${tenant.accountId}/webhooks/${goneId}`, { key: tenant.apiKey })).body.enabled, { timeout: 10_000 }).toBe(false);
    const view = (await t.api('GET', `/api/v1/accounts/${tenant.accountId}/webhooks/${goneId}`, { key: tenant.apiKey })).body;
    expect(view.disabledReason).toMatch(/410/);
    expect(view).not.toHaveProperty('secret');
    expect(view).not.toHaveProperty('sealedSecret');
    await receiver.waitFor('webhook.disabled on /all', () => receiver.at('/all').some((d) => eventOf(d).type === 'webhook.disabled' && eventOf(d).subject === goneId));
    const disabled = receiver.at('/all').find((d) => eventOf(d).type === 'webhook.disabled')!;
    expect(verifiedEvent(disabled, secrets.get('/all')!).data).toMatchObject({ id: goneId, reason: expect.stringMatching(/410/) });

    // Later events go to the other subscriptions but not to the disabled one.
    const later = await visitorSays('Hello again');
    await receiver.waitFor('the later delivery', () => receivedFor('/all', later.messageId) !== undefined);
    expect(receiver.at('/gone')).toHaveLength(1);
  });

  it('signs with both secrets during a rotation overlap, then with the new one only', async () => {
    const id = await subscribe('/rotating', ['message.received']);
    const oldSecret = secrets.get('/rotating')!;
    const rotated = await t.api('POST', `/api/v1/accounts/${tenant.accountId}/webhooks/${id}/rotate-secret`, { key: tenant.apiKey, body: { overlapSeconds: 3600 } });
    expect(rotated.status).toBe(200);
    const newSecret = rotated.body.secret as string;
    expect(newSecret).toMatch(/^whsec_/);
    expect(newSecret).not.toBe(oldSecret);
    expect(rotated.body.previousSecretExpiresAt).toEqual(expect.any(String));
    await new Promise((r) => setTimeout(r, 1100)); // the deliverer reads a subscription at most once a second
    const { messageId } = await visitorSays('rotation');
    await receiver.waitFor('the rotated delivery', () => receivedFor('/rotating', messageId) !== undefined);
    const delivery = receivedFor('/rotating', messageId)!;
    expect(String(delivery.headers['webhook-signature']).split(' ')).toHaveLength(2);
    verifiedEvent(delivery, oldSecret);
    verifiedEvent(delivery, newSecret);

    const cut = await t.api('POST', `/api/v1/accounts/${tenant.accountId}/webhooks/${id}/rotate-secret`, { key: tenant.apiKey, body: { overlapSeconds: 0 } });
    await new Promise((r) => setTimeout(r, 1100));
    const next = await visitorSays('after the cut');
    await receiver.waitFor('the delivery after the cut', () => receivedFor('/rotating', next.messageId) !== undefined);
    const last = receivedFor('/rotating', next.messageId)!;
    expect(String(last.headers['webhook-signature']).split(' ')).toHaveLength(1);
    verifiedEvent(last, cut.body.secret);
    expect(() => verifiedEvent(last, newSecret)).toThrow();
  });

  it('sends binary-mode CloudEvents, masks personal data and filters by inbox when a subscription asks', async () => {
    await subscribe('/binary', ['contact.updated'], { format: 'binary', pii: { maskPhoneNumbers: true, maskEmailAddresses: true } });
    await subscribe('/masked-email', ['contact.updated'], { pii: { maskEmailAddresses: true } });
    await subscribe('/other-inbox', ['*'], { inboxIds: ['inb_elsewhere'] });
    const { messageId } = await visitorSays('my details');
    const contactId = await contactOf(messageId);
    const patched = await t.api('PATCH', `/api/v1/accounts/${tenant.accountId}/contacts/${contactId}`, {
      key: tenant.apiKey, body: { attributes: { email: 'jane.doe@example.com', phone: '+86 138 0013 8000', note: 'call +14155550123 or mail bob@shop.example' } },
    });
    expect(patched.status).toBe(200);
    await receiver.waitFor('the masked deliveries', () => receiver.at('/binary').length >= 1 && receiver.at('/masked-email').length >= 1);

    const binary = receiver.at('/binary')[0]!;
    expect(binary.headers['ce-type']).toBe('contact.updated');
    expect(binary.headers['ce-specversion']).toBe('1.0');
    expect(binary.headers['content-type']).toMatch(/^application\/json/);
    const event = verifiedEvent(binary, secrets.get('/binary')!);
    expect(event.type).toBe('contact.updated');
    expect(event.subject).toBe(contactId);
    const attributes = (event.data as { attributes: Record<string, string>; id: string }).attributes;
    expect(attributes).toEqual({ email: 'j***@example.com', phone: '+***000', note: 'call +***123 or mail b***@shop.example' });
    expect((event.data as { id: string }).id).toBe(contactId);

    const emailOnly = verifiedEvent(receiver.at('/masked-email')[0]!, secrets.get('/masked-email')!).data as { attributes: Record<string, string> };
    expect(emailOnly.attributes).toMatchObject({ email: 'j***@example.com', phone: '+86 138 0013 8000' });

    // The other inbox's subscription got the contact's events (they belong to no inbox) but none of this inbox's.
    const other = receiver.at('/other-inbox').map((d) => eventOf(d));
    expect(other.some((e) => e.type === 'contact.updated')).toBe(true);
    expect(other.filter((e) => e.source.includes('/inboxes/'))).toEqual([]);
    // The replay stream keeps the event unmasked.
    const replayed = (await replayAll('&types=contact.updated')).filter((e) => e.subject === contactId).at(-1)!;
    expect((replayed.data as { attributes: Record<string, string> }).attributes.email).toBe('jane.doe@example.com');
  });

  it('replays exactly the events that were delivered, in the same order', async () => {
    const webhookId = ids.get('/all')!;
    // Wait until the /all subscription has nothing left on its way.
    await expect.poll(async () => {
      const page = await t.api('GET', `/api/v1/accounts/${tenant.accountId}/webhooks/${webhookId}/deliveries?status=pending`, { key: tenant.apiKey });
      return page.body.items.length;
    }, { timeout: 15_000 }).toBe(0);
    const replayed = await replayAll('', cursorBeforeAll);
    expect(replayed.length).toBeGreaterThan(40);
    const delivered = receiver.at('/all').filter((d) => d.status === 200).map((d) => eventOf(d));
    // /all subscribed before the first event: it got every event of the account, each once.
    expect(delivered.map((e) => e.id).sort()).toEqual(replayed.map((e) => e.id).sort());
    // Per conversation (the unit of order), delivery order is replay order.
    const bySubject = (events: { id: string; subject?: string }[]) => {
      const lanes = new Map<string, string[]>();
      for (const e of events) lanes.set(e.subject ?? '-', [...(lanes.get(e.subject ?? '-') ?? []), e.id]);
      return lanes;
    };
    expect(bySubject(delivered)).toEqual(bySubject(replayed));
    for (const delivery of receiver.at('/all')) {
      const { streamid, ...event } = replayed.find((e) => e.id === eventOf(delivery).id) as GatewayEvent & { streamid: string };
      expect(eventOf(delivery)).toEqual(event);
      expect(streamid).toMatch(/^\d+-\d+$/);
    }
    // Any item's stream id is a cursor: what follows it is the rest of the replay.
    const middle = replayed[Math.floor(replayed.length / 2)] as GatewayEvent & { streamid: string };
    const rest = await replayAll('', middle.streamid);
    expect(rest.map((e) => e.id)).toEqual(replayed.slice(replayed.indexOf(middle) + 1).map((e) => e.id));
  });

  it('replays since a time or a cursor, by type and inbox, page by page', async () => {
    const all = await replayAll();
    const paged: GatewayEvent[] = [];
    let cursor: string | null = null;
    do {
      const page: { status: number; body: { items: GatewayEvent[]; nextCursor: string | null } } =
        await t.api('GET', `/api/v1/accounts/${tenant.accountId}/events?limit=7${cursor ? `&cursor=${cursor}` : ''}`, { key: tenant.apiKey });
      expect(page.body.items.length).toBeLessThanOrEqual(7);
      paged.push(...page.body.items);
      cursor = page.body.nextCursor;
    } while (cursor);
    expect(paged.map((e) => e.id)).toEqual(all.map((e) => e.id));
    const times = all.map((e) => Date.parse(e.time));
    expect(times).toEqual([...times].sort((a, b) => a - b));

    const middle = all[Math.floor(all.length / 2)]!;
    const since = await replayAll(`&since=${encodeURIComponent(new Date(Date.parse(middle.time)).toISOString())}`);
    expect(since.length).toBeLessThan(all.length);
    expect(since.map((e) => e.id)).toEqual(all.slice(all.length - since.length).map((e) => e.id));
    expect(since.map((e) => e.id)).toContain(middle.id);

    const messages = await replayAll('&types=message.*,webhook.disabled');
    expect(messages.map((e) => e.id)).toEqual(all.filter((e) => e.type.startsWith('message.') || e.type === 'webhook.disabled').map((e) => e.id));
    const otherInbox = await replayAll('&inboxId=inb_elsewhere');
    expect(otherInbox.every((e) => !e.source.includes('/inboxes/'))).toBe(true);

    const base = `/api/v1/accounts/${tenant.accountId}/events`;
    expect((await t.api('GET', `${base}?cursor=nonsense`, { key: tenant.apiKey })).status).toBe(400);
    expect((await t.api('GET', `${base}?since=yesterday`, { key: tenant.apiKey })).status).toBe(400);
    expect((await t.api('GET', `${base}?types=message.nope`, { key: tenant.apiKey })).status).toBe(400);
    const otherAccount = await t.api('POST', '/api/v1/accounts', { key: t.adminKey, body: { name: 'Other' } });
    expect([401, 403, 404]).toContain((await t.api('GET', base, { key: otherAccount.body.key })).status);
  });

  it('refuses subscriptions that are not http(s) or point at the gateway itself; accepts a private address by default', async () => {
    const post = (url: string) => t.api('POST', `/api/v1/accounts/${tenant.accountId}/webhooks`, { key: tenant.apiKey, body: { url, events: ['*'] } });
    for (const url of ['ftp://crm.example/hook', 'javascript:alert(1)', 'not a url', 'file:///etc/passwd']) {
      const refused = await post(url);
      expect(refused.status, url).toBe(400);
      expect(refused.body.error.message).toMatch(/url/);
    }
    const port = new URL(t.url).port;
    for (const url of [`${t.url}/api/v1/accounts`, `http://localhost:${port}/x`, `http://[::1]:${port}/x`, `http://0.0.0.0:${port}/x`]) {
      const own = await post(url);
      expect(own.status, url).toBe(400);
      expect(own.body.error.message).toMatch(/gateway's own address/);
    }
    const patched = await t.api('PATCH', `/api/v1/accounts/${tenant.accountId}/webhooks/${ids.get('/all')}`, { key: tenant.apiKey, body: { url: `${t.url}/hook` } });
    expect(patched.status).toBe(400);
    // On-premise CRMs live on private addresses: allowed unless GATEWAY_WEBHOOK_PRIVATE_TARGETS=deny.
    const onPrem = await post('http://10.20.30.40:8080/crm');
    expect(onPrem.status).toBe(201);
    await t.api('DELETE', `/api/v1/accounts/${tenant.accountId}/webhooks/${onPrem.body.id}`, { key: tenant.apiKey });
  });
});

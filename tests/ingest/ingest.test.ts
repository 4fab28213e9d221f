import type { Job } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InboundAcceptor } from '../../src/ingest/acceptInbound.ts';
import { createIngestProcessor } from '../../src/ingest/ingestWorker.ts';
import type { InboundJob } from '../../src/queues.ts';
import { eventSchema } from '../../src/schema/event.ts';
import { messageSchema } from '../../src/schema/message.ts';
import {
  apiEvents, eventsOfType, listAllConversations, newVisitorId, streamEvents, visitorMessage, waitFor,
} from '../support/coreFixtures.ts';
import { createTenant, startTestGateway, type Tenant, type TestGateway } from '../support/testGateway.ts';

describe('ingest: accepting and storing inbound messages', () => {
  let t: TestGateway;
  beforeAll(async () => { t = await startTestGateway(); });
  afterAll(() => t.stop());

  const history = async (tenant: Tenant, conversationId: string) =>
    (await t.api('GET', `/api/v1/accounts/${tenant.accountId}/conversations/${conversationId}/messages?limit=200`, { key: tenant.apiKey })).body.items as any[];

  const contacts = async (tenant: Tenant) =>
    (await t.api('GET', `/api/v1/accounts/${tenant.accountId}/contacts?limit=200`, { key: tenant.apiKey })).body.items as any[];

  it('turns 20 concurrent first messages of one new visitor into one contact, one conversation and 20 ordered messages', async () => {
    const tenant = await createTenant(t);
    const visitorId = newVisitorId();
    const accepted = await Promise.all(Array.from({ length: 20 }, (_, i) =>
      t.gateway.acceptor.accept(visitorMessage(tenant, visitorId, `${visitorId}/c${i}`, `message ${i}`))));

    const conversations = await waitFor(() => listAllConversations(t, tenant), (c) => c.length > 0, 'a conversation');
    expect(conversations).toHaveLength(1);
    const conversation = conversations[0];
    const stored = await waitFor(() => history(tenant, conversation.id), (items) => items.length >= 20, '20 stored messages');

    expect(stored).toHaveLength(20);
    expect(await listAllConversations(t, tenant)).toHaveLength(1);
    const contactList = await contacts(tenant);
    expect(contactList).toHaveLength(1);
    expect(contactList[0].channelId).toBe(visitorId);
    expect(new Set(stored.map((m) => m.contactId))).toEqual(new Set([contactList[0].id]));
    expect(new Set(stored.map((m) => m.conversationId))).toEqual(new Set([conversation.id]));

    const seqs = stored.map((m) => m.seq as number);
    for (let i = 1; i < seqs.length; i++) expect(seqs[i]).toBeGreaterThan(seqs[i - 1]!);
    // Acceptance order is the order the seqs were handed out by accept().
    const acceptanceOrder = [...accepted].sort((a, b) => a.seq - b.seq);
    expect(stored.map((m) => m.id)).toEqual(acceptanceOrder.map((a) => a.messageId));
    expect(stored.map((m) => m.seq)).toEqual(acceptanceOrder.map((a) => a.seq));

    const events = await waitFor(() => streamEvents(t, tenant.accountId), (e) => eventsOfType(e, 'message.received').length >= 20, 'the events');
    expect(eventsOfType(events, 'contact.created')).toHaveLength(1);
    expect(eventsOfType(events, 'conversation.created')).toHaveLength(1);
    expect(eventsOfType(events, 'message.received')).toHaveLength(20);
    // One conversation is routed once: the tenant's online agent takes it.
    const assigned = await waitFor(() => streamEvents(t, tenant.accountId), (e) => eventsOfType(e, 'conversation.assigned').length > 0, 'the assignment');
    expect(eventsOfType(assigned, 'conversation.assigned')).toHaveLength(1);
    expect(eventsOfType(assigned, 'conversation.queued')).toHaveLength(0);
  });

  it('does the same for 20 concurrent REST posts of one web chat visitor', async () => {
    const tenant = await createTenant(t);
    const session = await t.api('POST', `/webchat/${tenant.inboxId}/session`, { body: {} });
    expect(session.status).toBe(200);
    const { visitorId, visitorToken } = session.body;
    const posts = await Promise.all(Array.from({ length: 20 }, (_, i) => t.api('POST', `/webchat/${tenant.inboxId}/messages`, {
      body: { visitorId, visitorToken, clientMessageId: `c-${i}`, text: `rest message ${i}` },
    })));
    expect(posts.map((p) => p.status)).toEqual(Array(20).fill(202));
    const messageIds = posts.map((p) => p.body.messageId as string);
    expect(new Set(messageIds).size).toBe(20);

    const conversations = await waitFor(() => listAllConversations(t, tenant), (c) => c.length > 0, 'a conversation');
    const stored = await waitFor(() => history(tenant, conversations[0].id), (items) => items.length >= 20, '20 stored messages');
    expect(await listAllConversations(t, tenant)).toHaveLength(1);
    expect(await contacts(tenant)).toHaveLength(1);
    expect(stored).toHaveLength(20);
    expect(new Set(stored.map((m) => m.id))).toEqual(new Set(messageIds));
    const seqs = stored.map((m) => m.seq as number);
    for (let i = 1; i < seqs.length; i++) expect(seqs[i]).toBeGreaterThan(seqs[i - 1]!);

    // The visitor's own view (REST polling) has the same 20 in the same order.
    const polled = await t.api('GET', `/webchat/${tenant.inboxId}/messages?visitorId=${visitorId}&visitorToken=${encodeURIComponent(visitorToken)}`);
    expect(polled.body.messages.map((m: any) => m.id)).toEqual(stored.map((m) => m.id));
  });

  it('stores a message accepted twice and processed twice exactly once, with its events emitted once', async () => {
    const tenant = await createTenant(t);
    const visitorId = newVisitorId();
    const message = visitorMessage(tenant, visitorId, `${visitorId}/same`, 'only once please');
    const first = await t.gateway.acceptor.accept(message);
    const second = await t.gateway.acceptor.accept(message);
    expect(second.messageId).toBe(first.messageId);
    expect(first.messageId).toBe(InboundAcceptor.messageIdFor(tenant.inboxId, message.externalId));

    const conversations = await waitFor(() => listAllConversations(t, tenant), (c) => c.length > 0, 'a conversation');
    await waitFor(() => history(tenant, conversations[0].id), (items) => items.length > 0, 'the stored message');
    await waitFor(() => streamEvents(t, tenant.accountId), (e) => eventsOfType(e, 'conversation.assigned').length > 0, 'the assignment');
    const before = await streamEvents(t, tenant.accountId);

    // A redelivered job (crash after the script, before the ack) runs the processor again: twice, at once.
    const processInbound = createIngestProcessor({
      redis: t.gateway.redis, keys: t.gateway.keys, retentionSeconds: 3600, router: t.gateway.services.router, contacts: t.gateway.services.contacts,
    });
    const job = (data: InboundJob) => ({ data }) as unknown as Job;
    const data: InboundJob = { messageId: first.messageId, seq: first.seq, receivedAt: new Date().toISOString(), contactName: '', visitorHint: '', message };
    const results = await Promise.all([processInbound(job(data)), processInbound(job({ ...data, seq: second.seq }))]);
    for (const result of results) {
      expect(result).toMatchObject({ messageId: first.messageId, conversationId: conversations[0].id, duplicate: true });
    }

    const stored = await history(tenant, conversations[0].id);
    expect(stored.map((m) => m.id)).toEqual([first.messageId]);
    expect(await contacts(tenant)).toHaveLength(1);
    expect(await listAllConversations(t, tenant)).toHaveLength(1);

    const after = await streamEvents(t, tenant.accountId);
    expect(after.map((e) => e.id)).toEqual(before.map((e) => e.id));
    const received = eventsOfType(after, 'message.received');
    expect(received).toHaveLength(1);
    expect(received[0]!.id).toBe(`evt_${first.messageId}_r`);
    // The replay API shows the same single copy.
    const replayed = await apiEvents(t, tenant);
    expect(eventsOfType(replayed, 'message.received').map((e) => e.id)).toEqual([received[0]!.id]);
    expect(eventsOfType(replayed, 'conversation.created')).toHaveLength(1);
    expect(eventsOfType(replayed, 'contact.created')).toHaveLength(1);
    expect(eventsOfType(replayed, 'conversation.assigned')).toHaveLength(1);
  });

  it('routes a new conversation once while its first message is being routed, and hands the routing over after a crash', async () => {
    const tenant = await createTenant(t);
    const real = t.gateway.services.router;
    let routed = 0;
    let failNext = false;
    // Routing that takes a while (a busy Redis): the other messages of the conversation are ingested meanwhile.
    const router = {
      routeConversation: async (...args: Parameters<typeof real.routeConversation>) => {
        routed += 1;
        await new Promise((r) => setTimeout(r, 50));
        if (failNext) { failNext = false; throw new Error('worker died before routing'); }
        return real.routeConversation(...args);
      },
    } as unknown as typeof real;
    const processInbound = createIngestProcessor({
      redis: t.gateway.redis, keys: t.gateway.keys, retentionSeconds: 3600, router, contacts: t.gateway.services.contacts,
    });
    const jobFor = (message: ReturnType<typeof visitorMessage>, seq: number) => ({
      data: { messageId: InboundAcceptor.messageIdFor(tenant.inboxId, message.externalId), seq, receivedAt: new Date().toISOString(), contactName: '', visitorHint: '', message },
    }) as unknown as Job;

    const visitorId = newVisitorId();
    const burst = Array.from({ length: 20 }, (_, i) => jobFor(visitorMessage(tenant, visitorId, `${visitorId}/b${i}`), Date.now() * 1000 + i));
    await Promise.all(burst.map((job) => processInbound(job)));
    expect(routed).toBe(1);

    // The first message's routing fails (its worker died): the later messages leave it to that message's retry...
    routed = 0;
    failNext = true;
    const other = newVisitorId();
    const first = jobFor(visitorMessage(tenant, other, `${other}/1`), Date.now() * 1000);
    await expect(processInbound(first)).rejects.toThrow('worker died');
    await processInbound(jobFor(visitorMessage(tenant, other, `${other}/2`), Date.now() * 1000 + 1));
    expect(routed).toBe(1);
    // ...which routes it,
    const retried = await processInbound(first);
    expect(routed).toBe(2);
    const conversation = await t.gateway.redis.hgetall(t.gateway.keys.conversation((retried as { conversationId: string }).conversationId));
    expect(conversation.routed).toBe('1');

    // and a claim older than a minute (its job gone for good) passes to the next message.
    routed = 0;
    failNext = true;
    const third = newVisitorId();
    await expect(processInbound(jobFor(visitorMessage(tenant, third, `${third}/1`), Date.now() * 1000))).rejects.toThrow();
    const stale = await processInbound(jobFor(visitorMessage(tenant, third, `${third}/2`), Date.now() * 1000 + 1)) as { conversationId: string };
    expect(routed).toBe(1);
    const convKey = t.gateway.keys.conversation(stale.conversationId);
    const claim = (await t.gateway.redis.hget(convKey, 'routingClaim'))!;
    await t.gateway.redis.hset(convKey, 'routingClaim', claim.replace(/@\d+$/, `@${Date.now() - 61_000}`));
    await processInbound(jobFor(visitorMessage(tenant, third, `${third}/3`), Date.now() * 1000 + 2));
    expect(routed).toBe(2);
    expect(await t.gateway.redis.hget(convKey, 'routed')).toBe('1');
  });

  it('emits CloudEvents whose message.received data is a valid normalized message', async () => {
    const tenant = await createTenant(t);
    const visitorId = newVisitorId();
    const message = { ...visitorMessage(tenant, visitorId, `${visitorId}/hello`, 'Where is my parcel?'), from: { channelId: visitorId, name: 'Vic' } };
    const { messageId } = await t.gateway.acceptor.accept(message, { contactName: 'Vic' });
    const events = await waitFor(() => streamEvents(t, tenant.accountId), (e) => eventsOfType(e, 'message.received').length > 0, 'message.received');

    for (const event of events) expect(eventSchema.safeParse(event).error).toBeUndefined();
    const received = eventsOfType(events, 'message.received')[0]!;
    const data = messageSchema.strict().parse(received.data);
    expect(data).toMatchObject({
      id: messageId, accountId: tenant.accountId, inboxId: tenant.inboxId, channel: 'webchat', direction: 'inbound',
      externalId: message.externalId, from: { channelId: visitorId, name: 'Vic' }, content: { type: 'text', text: 'Where is my parcel?' },
    });
    expect(received.subject).toBe(data.conversationId);
    expect(received.source).toBe(`/accounts/${tenant.accountId}/inboxes/${tenant.inboxId}`);
    const contact = eventsOfType(events, 'contact.created')[0]!;
    expect(contact.data).toMatchObject({ id: data.contactId, channelId: visitorId, name: 'Vic' });
    const created = eventsOfType(events, 'conversation.created')[0]!;
    expect(created.data).toMatchObject({ id: data.conversationId, contactId: data.contactId, status: 'open', assigneeId: null });
  });

  it('puts each message\'s arrival seq in its message.received event digit for digit', async () => {
    const tenant = await createTenant(t);
    const visitorId = newVisitorId();
    // Accepted within one millisecond, seqs step by one: 16 significant digits, which Lua would print rounded.
    const accepted = await Promise.all(Array.from({ length: 5 }, (_, i) => t.gateway.acceptor.accept(visitorMessage(tenant, visitorId, `${visitorId}/s${i}`))));
    const events = await waitFor(() => streamEvents(t, tenant.accountId), (e) => eventsOfType(e, 'message.received').length >= 5, '5 message.received');
    const seqOf = new Map(eventsOfType(events, 'message.received').map((e) => [(e.data as { id: string }).id, (e.data as { seq: number }).seq]));
    for (const { messageId, seq } of accepted) expect(seqOf.get(messageId)).toBe(seq);
  });

  it('opens a new conversation for the same contact after the previous one is resolved', async () => {
    const tenant = await createTenant(t);
    const visitorId = newVisitorId();
    await t.gateway.acceptor.accept(visitorMessage(tenant, visitorId, `${visitorId}/1`));
    const [firstConversation] = await waitFor(() => listAllConversations(t, tenant), (c) => c.length > 0, 'a conversation');
    await waitFor(() => history(tenant, firstConversation.id), (items) => items.length > 0, 'the stored message');
    const resolved = await t.api('POST', `/api/v1/accounts/${tenant.accountId}/conversations/${firstConversation.id}/resolve`, { key: tenant.apiKey });
    expect(resolved.body.status).toBe('resolved');

    const { messageId } = await t.gateway.acceptor.accept(visitorMessage(tenant, visitorId, `${visitorId}/2`));
    const conversations = await waitFor(() => listAllConversations(t, tenant), (c) => c.length > 1, 'a second conversation');
    const second = conversations.find((c) => c.id !== firstConversation.id);
    expect(second).toMatchObject({ status: 'open', contactId: firstConversation.contactId });
    const stored = await waitFor(() => history(tenant, second.id), (items) => items.length > 0, 'the new message');
    expect(stored.map((m) => m.id)).toEqual([messageId]);
    expect((await history(tenant, firstConversation.id))).toHaveLength(1);
    expect(await contacts(tenant)).toHaveLength(1);
  });
});

import type { Job } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InboundAcceptor } from '../../src/ingest/acceptInbound.ts';
import { createIngestProcessor } from '../../src/ingest/ingestWorker.ts';
import { updateMessageStatus } from '../../src/outbound/outboundWorker.ts';
import { eventSchema, type GatewayEvent } from '../../src/schema/event.ts';
import { messageSchema } from '../../src/schema/message.ts';
import {
  addAgent, apiEvents, eventsOfType, listAllConversations, newVisitorId, setAgentStatus, streamEvents, visitorMessage, waitFor,
} from '../support/coreFixtures.ts';
import { createTenant, startTestGateway, type Tenant, type TestGateway } from '../support/testGateway.ts';

describe('events: CloudEvents envelopes with stable ids, one per change', () => {
  let t: TestGateway;
  let tenant: Tenant;
  let visitorId: string;
  let conversationId: string;
  let firstMessage: { messageId: string; seq: number };
  let replyId: string;
  let bob: string;

  beforeAll(async () => {
    t = await startTestGateway();
    tenant = await createTenant(t, { capacity: 1 });
    visitorId = newVisitorId();
    // A whole lifecycle: received, assigned, a second visitor queued, replied, sent, transferred, resolved, reopened.
    firstMessage = await t.gateway.acceptor.accept(visitorMessage(tenant, visitorId, `${visitorId}/1`, 'I need help'), { contactName: 'Vic' });
    [{ id: conversationId }] = await waitFor(() => listAllConversations(t, tenant), (c) => c.length > 0, 'a conversation');
    await waitFor(() => streamEvents(t, tenant.accountId), (e) => eventsOfType(e, 'conversation.assigned').length > 0, 'the assignment');
    const secondVisitor = newVisitorId();
    await t.gateway.acceptor.accept(visitorMessage(tenant, secondVisitor, `${secondVisitor}/1`, 'me too'));
    await waitFor(() => streamEvents(t, tenant.accountId), (e) => eventsOfType(e, 'conversation.queued').length > 0, 'the queued one');
    const reply = await t.api('POST', `/api/v1/accounts/${tenant.accountId}/conversations/${conversationId}/messages`, { key: tenant.apiKey, body: { text: 'On it.' } });
    replyId = reply.body.id;
    await waitFor(() => streamEvents(t, tenant.accountId), (e) => eventsOfType(e, 'message.sent').length > 0, 'message.sent');
    // Bob comes online (taking the queued conversation), leaves, and still has room for a transfer.
    bob = await addAgent(t, tenant, 'Bob', 2);
    await setAgentStatus(t, tenant, bob, 'offline');
    await t.api('POST', `/api/v1/accounts/${tenant.accountId}/conversations/${conversationId}/transfer`, { key: tenant.apiKey, body: { agentId: bob } });
    await t.api('POST', `/api/v1/accounts/${tenant.accountId}/conversations/${conversationId}/resolve`, { key: tenant.apiKey });
    await t.api('POST', `/api/v1/accounts/${tenant.accountId}/conversations/${conversationId}/reopen`, { key: tenant.apiKey });
  });
  afterAll(() => t.stop());

  it('validates every envelope against eventSchema, and message data against messageSchema', async () => {
    const events = await streamEvents(t, tenant.accountId);
    const types = new Set(events.map((e) => e.type));
    for (const type of ['contact.created', 'conversation.created', 'conversation.queued', 'conversation.assigned', 'conversation.transferred',
      'conversation.resolved', 'conversation.reopened', 'message.received', 'message.sent', 'agent.status_changed']) {
      expect(types, type).toContain(type);
    }
    for (const event of events) {
      expect(eventSchema.strict().safeParse(event).error, event.type).toBeUndefined();
      expect(event.datacontenttype).toBe('application/json');
      expect(Number.isNaN(Date.parse(event.time))).toBe(false);
      if (event.type.startsWith('message.')) {
        const parsed = messageSchema.strict().safeParse(event.data);
        expect(parsed.error, `${event.type} ${JSON.stringify(event.data)}`).toBeUndefined();
        expect(event.subject).toBe(parsed.data!.conversationId);
        expect(event.source).toBe(`/accounts/${tenant.accountId}/inboxes/${tenant.inboxId}`);
      }
      if (event.type.startsWith('conversation.')) {
        expect(event.data).toMatchObject({ id: event.subject, accountId: tenant.accountId, inboxId: tenant.inboxId, channel: 'webchat' });
      }
    }
    const received = eventsOfType(events, 'message.received').find((e) => e.data.id === firstMessage.messageId)!;
    expect(received.data).toMatchObject({ direction: 'inbound', seq: firstMessage.seq, content: { text: 'I need help' } });
    const sent = eventsOfType(events, 'message.sent')[0]!;
    expect(sent.data).toMatchObject({ id: replyId, direction: 'outbound', status: 'sent' });
    const transferred = eventsOfType(events, 'conversation.transferred')[0]!;
    expect(transferred.data).toMatchObject({ assigneeId: bob, previousAssigneeId: tenant.agentId });
  });

  it('serves the same events through the replay API, pageable with its cursor', async () => {
    const stored = await streamEvents(t, tenant.accountId);
    const replayed = await apiEvents(t, tenant);
    // Replay adds each event's stream id (the CloudEvents extension streamid), a cursor a CRM can resume from.
    expect(replayed.every((e) => /^\d+-\d+$/.test((e as unknown as { streamid: string }).streamid))).toBe(true);
    expect(replayed.map(({ streamid: _streamid, ...event }: any) => event)).toEqual(stored);
    const paged: GatewayEvent[] = [];
    let cursor: string | null = null;
    do {
      const page: { status: number; body: any } = await t.api('GET', `/api/v1/accounts/${tenant.accountId}/events?limit=4${cursor ? `&cursor=${cursor}` : ''}`, { key: tenant.apiKey });
      expect(page.status).toBe(200);
      paged.push(...page.body.items);
      cursor = page.body.nextCursor;
    } while (cursor);
    expect(paged.map((e) => e.id)).toEqual(stored.map((e) => e.id));
    expect((await t.api('GET', `/api/v1/accounts/${tenant.accountId}/events?cursor=nope`, { key: tenant.apiKey })).status).toBe(400);
  });

  // (The webhook feed is consumed and trimmed by the dispatcher as it goes, so only the live feed is compared here.)
  it('writes each event to the replay stream and the live feed alike', async () => {
    const replay = (await streamEvents(t, tenant.accountId)).map((e) => e.id);
    const { redis, keys } = t.gateway;
    const live = (await redis.xrange(keys.live, '-', '+')) as [string, string[]][];
    const liveIds = live.map(([, f]) => f[f.indexOf('e') + 1]).filter((e): e is string => !!e).map((e) => JSON.parse(e))
      .filter((e) => e.source.startsWith(`/accounts/${tenant.accountId}`)).map((e) => e.id);
    // A transfer is on the live feed twice (for the new and the previous agent); in order, once each otherwise.
    expect([...new Set(liveIds)]).toEqual(replay);
  });

  it('gives every change its own id, derived from the change, and never emits a change twice', async () => {
    const before = await streamEvents(t, tenant.accountId);
    expect(new Set(before.map((e) => e.id)).size).toBe(before.length);
    const received = eventsOfType(before, 'message.received').find((e) => e.data.id === firstMessage.messageId)!;
    expect(received.id).toBe(`evt_${InboundAcceptor.messageIdFor(tenant.inboxId, `${visitorId}/1`)}_r`);
    expect(eventsOfType(before, 'message.sent')[0]!.id).toBe(`evt_${replyId}_sent`);
    expect(eventsOfType(before, 'conversation.created').find((e) => e.subject === conversationId)!.id).toBe(`evt_${conversationId}_c`);

    // Repeat every change: redelivered ingest job, routing job, status receipt, resolve, presence. Nothing new appears.
    const { redis, keys } = t.gateway;
    const { router } = t.gateway.services;
    const processInbound = createIngestProcessor({ redis, keys, retentionSeconds: 3600, router, contacts: t.gateway.services.contacts });
    await processInbound({ data: {
      messageId: firstMessage.messageId, seq: firstMessage.seq, receivedAt: new Date().toISOString(), contactName: 'Vic', visitorHint: '',
      message: visitorMessage(tenant, visitorId, `${visitorId}/1`, 'I need help'),
    } } as unknown as Job);
    await t.gateway.acceptor.accept(visitorMessage(tenant, visitorId, `${visitorId}/1`, 'I need help'));
    for (const c of await listAllConversations(t, tenant)) {
      await router.routeConversation(tenant.accountId, c.id, { inboxId: tenant.inboxId, channel: 'webchat', contactId: c.contactId, text: '' });
    }
    expect(await updateMessageStatus(redis, keys, replyId, conversationId, { status: 'sent' })).toBe(false);
    const reopened = await t.api('POST', `/api/v1/accounts/${tenant.accountId}/conversations/${conversationId}/reopen`, { key: tenant.apiKey });
    expect(reopened.status).toBe(200);
    await setAgentStatus(t, tenant, bob, 'offline');
    await setAgentStatus(t, tenant, tenant.agentId, 'online');

    // The re-accepted duplicate goes through the real worker too: wait for the inbound queue to drain.
    await waitFor(() => t.gateway.queues.inbound.getJobCounts('waiting', 'active', 'delayed'),
      (counts) => counts.waiting + counts.active + counts.delayed === 0, 'the inbound queue to drain');
    const after = await streamEvents(t, tenant.accountId);
    expect(after.map((e) => e.id)).toEqual(before.map((e) => e.id));

    // A real second change of the same kind gets a new id: resolve and reopen again.
    await t.api('POST', `/api/v1/accounts/${tenant.accountId}/conversations/${conversationId}/resolve`, { key: tenant.apiKey });
    const resolvedIds = eventsOfType(await streamEvents(t, tenant.accountId), 'conversation.resolved').filter((e) => e.subject === conversationId).map((e) => e.id);
    expect(resolvedIds).toEqual([`evt_${conversationId}_r1`, `evt_${conversationId}_r2`]);
  });
});

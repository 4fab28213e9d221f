import { DelayedError, UnrecoverableError, type Job, type Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PermanentSendError, SendInFlightError, SendOutcomeUnknownError, type ChannelAdapter, type SendRequest, type SendResult } from '../../adapters/channelAdapter.ts';
import { ConversationActions } from '../../src/conversations/conversationActions.ts';
import { hashSecret } from '../../src/crypto/tokens.ts';
import { createLogger } from '../../src/logger.ts';
import { runScript } from '../../src/commands/index.ts';
import { createOutboundProcessor, updateMessageStatus } from '../../src/outbound/outboundWorker.ts';
import { OutboxSweeper } from '../../src/outbound/outboxSweeper.ts';
import type { OutboundJob } from '../../src/queues.ts';
import { eventSchema } from '../../src/schema/event.ts';
import { messageSchema } from '../../src/schema/message.ts';
import { eventsOfType, listAllConversations, newVisitorId, streamEvents, visitorMessage, waitFor } from '../support/coreFixtures.ts';
import { createTenant, startTestGateway, type Tenant, type TestGateway } from '../support/testGateway.ts';

describe('outbound: replies, their status and sending through an adapter', () => {
  let t: TestGateway;
  let tenant: Tenant;
  let conversationId: string;
  /** Stores replies like the API does but queues nothing, so no worker sends them behind the test's back. */
  let unsentReplies: ConversationActions;

  beforeAll(async () => {
    t = await startTestGateway();
    tenant = await createTenant(t);
    const visitorId = newVisitorId();
    await t.gateway.acceptor.accept(visitorMessage(tenant, visitorId, `${visitorId}/1`, 'Hi there'));
    [{ id: conversationId }] = await waitFor(() => listAllConversations(t, tenant), (c) => c.length > 0, 'a conversation');
    await waitFor(() => streamEvents(t, tenant.accountId), (e) => eventsOfType(e, 'conversation.assigned').length > 0, 'the assignment');
    const noQueue = { add: async () => undefined } as unknown as Queue;
    unsentReplies = new ConversationActions(t.gateway.redis, t.gateway.keys, t.gateway.services.conversations, noQueue, t.gateway.services.router);
  });
  afterAll(() => t.stop());

  const messagesPath = (id = conversationId) => `/api/v1/accounts/${tenant.accountId}/conversations/${id}/messages`;
  const history = async (id = conversationId) => (await t.api('GET', `${messagesPath(id)}?limit=200`, { key: tenant.apiKey })).body.items as any[];
  const storedMessage = (id: string) => t.gateway.services.conversations.message(id);
  const unsentReply = (text: string) => unsentReplies.reply(tenant.accountId, conversationId, { content: { type: 'text', text } });
  const eventsAbout = async (messageId: string) => (await streamEvents(t, tenant.accountId)).filter((e) => e.data.id === messageId);

  it('stores a reply sent twice with one Idempotency-Key once, and sends it', async () => {
    const headers = { 'idempotency-key': 'reply-1' };
    const first = await t.api('POST', messagesPath(), { key: tenant.apiKey, headers, body: { text: 'Your parcel left today.' } });
    const again = await t.api('POST', messagesPath(), { key: tenant.apiKey, headers, body: { text: 'Your parcel left today.' } });
    expect(first.status).toBe(202);
    expect(again.status).toBe(202);
    expect(first.body).toMatchObject({ direction: 'outbound', conversationId, content: { type: 'text', text: 'Your parcel left today.' } });
    expect(again.body.id).toBe(first.body.id);
    expect(messageSchema.safeParse(first.body).error).toBeUndefined();

    const outbound = (await history()).filter((m) => m.direction === 'outbound');
    expect(outbound.map((m) => m.id)).toEqual([first.body.id]);
    // The web chat adapter sends it: status sent, message.sent emitted once even though it was queued twice.
    const sent = await waitFor(() => storedMessage(first.body.id), (m) => m?.status === 'sent', 'status sent');
    expect(sent!.externalId).toBe(first.body.id);
    const events = await eventsAbout(first.body.id);
    expect(events.map((e) => e.type)).toEqual(['message.sent']);
    expect(eventSchema.safeParse(events[0]).error).toBeUndefined();
    expect(messageSchema.strict().parse(events[0]!.data)).toMatchObject({ id: first.body.id, status: 'sent', seq: first.body.seq });

    // Without the key, the same text is a second reply.
    const unkeyed = await t.api('POST', messagesPath(), { key: tenant.apiKey, body: { text: 'Your parcel left today.' } });
    expect(unkeyed.body.id).not.toBe(first.body.id);
    expect(unkeyed.body.seq).toBeGreaterThan(first.body.seq);
  });

  it('refuses an Idempotency-Key sent again with another body (422) and changes nothing; key order does not make another body', async () => {
    const headers = { 'idempotency-key': 'reply-reused' };
    const content = { type: 'text', text: 'We refunded you.' };
    const first = await t.api('POST', messagesPath(), { key: tenant.apiKey, headers, body: { content } });
    expect(first.status).toBe(202);
    // Let the worker finish sending every reply so far, so nothing moves between the two snapshots but the refused request.
    const sentAll = (items: any[]) => items.filter((m) => m.direction === 'outbound').every((m) => m.status === 'sent');
    const before = await waitFor(() => history(), sentAll, 'every reply sent');
    const outboundIds = before.filter((m) => m.direction === 'outbound').map((m) => m.id);
    await waitFor(() => streamEvents(t, tenant.accountId), (e) => outboundIds.every((id) => e.some((ev) => ev.type === 'message.sent' && ev.data.id === id)), 'their message.sent events');
    const eventsBefore = (await streamEvents(t, tenant.accountId)).length;

    const reused = await t.api('POST', messagesPath(), { key: tenant.apiKey, headers, body: { text: 'We did not refund you.' } });
    expect(reused.status).toBe(422);
    expect(reused.body.error).toEqual({ code: 'idempotency_key_reused', message: expect.stringMatching(/Idempotency-Key .*different request body/) });
    expect(await history()).toEqual(before);
    expect((await streamEvents(t, tenant.accountId)).length).toBe(eventsBefore);

    const reordered = await t.api('POST', messagesPath(), { key: tenant.apiKey, headers, body: { content: { text: content.text, type: content.type } } });
    expect(reordered.status).toBe(202);
    expect(reordered.body.id).toBe(first.body.id);
  });

  it('replays an idempotency record written before body digests were kept', async () => {
    const stored = await unsentReply('Stored before the upgrade.');
    const idemKey = t.gateway.keys.idempotency(tenant.accountId, hashSecret(`${conversationId}\nreply-legacy`));
    await t.gateway.redis.set(idemKey, stored.id, 'EX', 60);
    const again = await t.api('POST', messagesPath(), { key: tenant.apiKey, headers: { 'idempotency-key': 'reply-legacy' }, body: { text: 'anything' } });
    expect(again.status).toBe(202);
    expect(again.body.id).toBe(stored.id);
  });

  it('refuses a reply to a resolved or unknown conversation', async () => {
    const visitorId = newVisitorId();
    await t.gateway.acceptor.accept(visitorMessage(tenant, visitorId, `${visitorId}/1`));
    const conversation = await waitFor(async () => (await listAllConversations(t, tenant)).find((c) => c.id !== conversationId), (c) => !!c, 'a second conversation');
    await waitFor(() => history(conversation.id), (items) => items.length > 0, 'its message');
    await t.api('POST', `/api/v1/accounts/${tenant.accountId}/conversations/${conversation.id}/resolve`, { key: tenant.apiKey });

    const refused = await t.api('POST', messagesPath(conversation.id), { key: tenant.apiKey, body: { text: 'too late' } });
    expect(refused.status).toBe(409);
    expect(refused.body.error.code).toBe('conflict');
    expect((await history(conversation.id)).filter((m) => m.direction === 'outbound')).toHaveLength(0);
    expect((await t.api('POST', messagesPath('cv_unknown'), { key: tenant.apiKey, body: { text: 'hello?' } })).status).toBe(404);
    expect((await t.api('POST', messagesPath(), { key: tenant.apiKey, body: {} })).status).toBe(400);
  });

  it('only ever moves a status forward', async () => {
    const reply = await unsentReply('status test');
    expect(reply.status).toBe('queued');
    const { redis, keys } = t.gateway;
    expect(await updateMessageStatus(redis, keys, reply.id, conversationId, { status: 'delivered', externalId: 'prov-1' })).toBe(true);
    expect(await updateMessageStatus(redis, keys, reply.id, conversationId, { status: 'sent', externalId: 'prov-2' })).toBe(false);
    expect(await updateMessageStatus(redis, keys, reply.id, conversationId, { status: 'delivered' })).toBe(false);
    expect(await updateMessageStatus(redis, keys, reply.id, conversationId, { status: 'failed', errorCode: 'late' })).toBe(false);
    expect(await storedMessage(reply.id)).toMatchObject({ status: 'delivered', externalId: 'prov-1' });
    expect((await storedMessage(reply.id))!.error).toBeUndefined();
    expect(await updateMessageStatus(redis, keys, reply.id, conversationId, { status: 'read' })).toBe(true);
    expect(await updateMessageStatus(redis, keys, reply.id, conversationId, { status: 'delivered' })).toBe(false);
    expect((await storedMessage(reply.id))!.status).toBe('read');
    expect((await eventsAbout(reply.id)).map((e) => e.type)).toEqual(['message.delivered']);

    // A failed message stays failed whatever receipt arrives later.
    const failing = await unsentReply('will fail');
    expect(await updateMessageStatus(redis, keys, failing.id, conversationId, { status: 'failed', errorCode: 'bad_number', errorMessage: 'no such phone' })).toBe(true);
    expect(await updateMessageStatus(redis, keys, failing.id, conversationId, { status: 'delivered' })).toBe(false);
    expect(await storedMessage(failing.id)).toMatchObject({ status: 'failed', error: { code: 'bad_number', message: 'no such phone' } });
    expect(await updateMessageStatus(redis, keys, 'msg_missing', conversationId, { status: 'sent' })).toBe(false);
  });

  it('sends a reply whose outbound job was never added (a crash between store and queue), once', async () => {
    const { redis, keys, queues } = t.gateway;
    const stranded = await unsentReply('stored, then the process died');
    expect(await redis.zscore(keys.outbox, stranded.id)).not.toBeNull();
    const sweeper = new OutboxSweeper(redis, keys, queues.outbound, createLogger('silent'));
    // Within the grace period the add may still be on its way: nothing is touched.
    expect(await sweeper.sweep()).toBe(0);
    expect((await storedMessage(stranded.id))!.status).toBe('queued');
    // Past it, the job is added again and the worker sends the reply; the sent status leaves the outbox.
    const later = Date.now() + 60_000;
    expect(await sweeper.sweep(later)).toBe(1);
    await waitFor(() => storedMessage(stranded.id), (m) => m?.status === 'sent', 'the stranded reply sent');
    expect(await redis.zscore(keys.outbox, stranded.id)).toBeNull();
    expect(await sweeper.sweep(later + 60_000)).toBe(0);
    expect((await eventsAbout(stranded.id)).map((e) => e.type)).toEqual(['message.sent']);
  });

  describe('the outbound processor with a fake adapter', () => {
    const sends: SendRequest[] = [];
    let behaviour: (request: SendRequest) => Promise<SendResult>;
    const fakeAdapter: ChannelAdapter = { type: 'webchat', send: async (request) => { sends.push(request); return behaviour(request); } };
    const processor = () => createOutboundProcessor({
      redis: t.gateway.redis, keys: t.gateway.keys, log: createLogger('silent'), conversations: t.gateway.services.conversations,
      inboxes: t.gateway.services.inboxes, adapters: { webchat: fakeAdapter },
    });
    const job = (messageId: string, attemptsMade: number, attempts = 3, accountId = tenant.accountId) =>
      ({ data: { accountId, messageId } satisfies OutboundJob, attemptsMade, opts: { attempts } }) as unknown as Job;

    it('sends once and records the adapter\'s status and provider id', async () => {
      sends.length = 0;
      behaviour = async () => ({ status: 'delivered', externalId: 'SM123' });
      const reply = await unsentReply('through the fake');
      const processOutbound = processor();
      expect(await processOutbound(job(reply.id, 0))).toBe('delivered');
      expect(await processOutbound(job(reply.id, 0))).toBe('already-delivered');
      expect(sends).toHaveLength(1);
      expect(sends[0]!.to).toBe((await t.gateway.services.conversations.conversation(tenant.accountId, conversationId))!.channelId);
      expect(sends[0]!.message).toMatchObject({ id: reply.id, content: { text: 'through the fake' } });
      expect(await storedMessage(reply.id)).toMatchObject({ status: 'delivered', externalId: 'SM123' });
      expect((await eventsAbout(reply.id)).map((e) => e.type)).toEqual(['message.delivered']);
      // A job naming another account's message sends nothing.
      expect(await processOutbound(job(reply.id, 0, 3, 'acc_other'))).toBe('missing');
      expect(sends).toHaveLength(1);
    });

    it('keeps a message queued while retries remain and marks it failed after the last attempt', async () => {
      sends.length = 0;
      behaviour = async () => { throw new Error('provider is down'); };
      const reply = await unsentReply('retry me');
      const processOutbound = processor();
      await expect(processOutbound(job(reply.id, 0))).rejects.toThrow('provider is down');
      expect((await storedMessage(reply.id))!.status).toBe('queued');
      await expect(processOutbound(job(reply.id, 1))).rejects.toThrow('provider is down');
      expect((await storedMessage(reply.id))!.status).toBe('queued');
      await expect(processOutbound(job(reply.id, 2))).rejects.toThrow('provider is down');
      expect(await storedMessage(reply.id)).toMatchObject({ status: 'failed', error: { code: 'send_failed', message: 'provider is down' } });
      expect(sends).toHaveLength(3);

      const events = await eventsAbout(reply.id);
      expect(events.map((e) => e.type)).toEqual(['message.failed']);
      expect(messageSchema.strict().parse(events[0]!.data)).toMatchObject({ status: 'failed', error: { code: 'send_failed' } });
      // A stray redelivery afterwards does not send again.
      expect(await processOutbound(job(reply.id, 0))).toBe('already-failed');
      expect(sends).toHaveLength(3);
    });

    it('delays, and never fails, a send another attempt is still making, even on the last attempt', async () => {
      sends.length = 0;
      behaviour = async () => { throw new SendInFlightError(2000, 'still in flight'); };
      const reply = await unsentReply('in flight');
      const delayedTo: number[] = [];
      const last = Object.assign(job(reply.id, 2), { moveToDelayed: async (at: number) => { delayedTo.push(at); } }) as unknown as Job;
      await expect(processor()(last, 'token')).rejects.toBeInstanceOf(DelayedError);
      expect(delayedTo[0]).toBeGreaterThan(Date.now());
      expect((await storedMessage(reply.id))!.status).toBe('queued');
      expect(await eventsAbout(reply.id)).toEqual([]);
    });

    it('marks a message failed at once on a PermanentSendError and does not retry', async () => {
      sends.length = 0;
      behaviour = async () => { throw new PermanentSendError('invalid_recipient', 'the number cannot receive messages'); };
      const reply = await unsentReply('never deliverable');
      const processOutbound = processor();
      const attempt = processOutbound(job(reply.id, 0, 8));
      await expect(attempt).rejects.toBeInstanceOf(UnrecoverableError);
      expect(await storedMessage(reply.id)).toMatchObject({
        status: 'failed', error: { code: 'invalid_recipient', message: 'the number cannot receive messages' },
      });
      expect(sends).toHaveLength(1);
      expect((await eventsAbout(reply.id)).map((e) => e.type)).toEqual(['message.failed']);
    });

    describe('the delivering call is made at most once per message (deliverOnce)', () => {
      let providerCalls = 0;
      const marker = (messageId: string) => t.gateway.redis.get(t.gateway.keys.sendMarker(messageId));
      /** The adapter's delivering call, through the core's deliverOnce, answering with `answer`. */
      const deliver = (request: SendRequest, answer: () => Promise<SendResult>) =>
        request.deliverOnce!(async () => { providerCalls++; return answer(); }, 5_000);

      it('a send whose status write failed after the provider took it is recorded on the retry, not sent again', async () => {
        providerCalls = 0;
        let attempt = 0;
        // The first attempt dies after the provider answered: a status write that failed, a process killed.
        behaviour = async (request) => {
          const sent = await deliver(request, async () => ({ status: 'sent', externalId: 'P-1' }));
          if (++attempt === 1) throw new Error('status write failed');
          return sent;
        };
        const reply = await unsentReply('exactly once');
        const processOutbound = processor();
        await expect(processOutbound(job(reply.id, 0))).rejects.toThrow('status write failed');
        expect((await storedMessage(reply.id))!.status).toBe('queued');
        expect(await marker(reply.id)).toBe('sent:P-1');
        expect(await processOutbound(job(reply.id, 1))).toBe('sent');
        expect(providerCalls).toBe(1);
        expect(await storedMessage(reply.id)).toMatchObject({ status: 'sent', externalId: 'P-1' });
        expect((await eventsAbout(reply.id)).map((e) => e.type)).toEqual(['message.sent']);
      });

      it('a status write that really fails after the provider took the message: the retry records it, the provider is called once', async () => {
        providerCalls = 0;
        behaviour = (request) => deliver(request, async () => ({ status: 'sent', externalId: 'P-3' }));
        const reply = await unsentReply('status write lost');
        // A connection of its own whose status script fails once, as a Redis that stops answering would.
        const flaky = t.gateway.redis.duplicate();
        try {
          await runScript(flaky, 'replaceSendMarker', ['probe'], ['', '', 1]);
          const real = (flaky as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>).updateMessageStatus!;
          let failures = 1;
          (flaky as unknown as Record<string, unknown>).updateMessageStatus = (...args: unknown[]) =>
            failures-- > 0 ? Promise.reject(new Error('Connection is closed.')) : real.apply(flaky, args);
          const processOutbound = createOutboundProcessor({
            redis: flaky, keys: t.gateway.keys, log: createLogger('silent'), conversations: t.gateway.services.conversations,
            inboxes: t.gateway.services.inboxes, adapters: { webchat: fakeAdapter },
          });
          await expect(processOutbound(job(reply.id, 0))).rejects.toThrow('Connection is closed.');
          expect((await storedMessage(reply.id))!.status).toBe('queued');
          expect(await processOutbound(job(reply.id, 1))).toBe('sent');
        } finally {
          flaky.disconnect();
        }
        expect(providerCalls).toBe(1);
        expect(await storedMessage(reply.id)).toMatchObject({ status: 'sent', externalId: 'P-3' });
        expect((await eventsAbout(reply.id)).map((e) => e.type)).toEqual(['message.sent']);
      });

      it('a call that may have reached the provider unanswered fails the message (send_outcome_unknown) and is never made again', async () => {
        providerCalls = 0;
        behaviour = (request) => deliver(request, async () => { throw new SendOutcomeUnknownError('the provider did not answer within 10 s'); });
        const reply = await unsentReply('maybe delivered');
        const processOutbound = processor();
        await expect(processOutbound(job(reply.id, 0, 8))).rejects.toBeInstanceOf(UnrecoverableError);
        expect(await storedMessage(reply.id)).toMatchObject({
          status: 'failed', error: { code: 'send_outcome_unknown', message: expect.stringMatching(/did not answer within 10 s; it is not sent again/) },
        });
        expect(await marker(reply.id)).toMatch(/^unknown:\d+$/);
        expect(await processOutbound(job(reply.id, 1, 8))).toBe('already-failed');
        expect(providerCalls).toBe(1);
      });

      it('an attempt that died in its call: delayed while it may still be running, then failed as unknown without a second call', async () => {
        providerCalls = 0;
        behaviour = (request) => deliver(request, async () => ({ status: 'sent' }));
        const reply = await unsentReply('died mid-call');
        const key = t.gateway.keys.sendMarker(reply.id);
        // Markers are set with a 14-day lifetime; their age is what of it has passed, on Redis's clock.
        const lifetimeMs = 14 * 86_400_000;
        await t.gateway.redis.set(key, `sending:${Date.now() - 1000}:5000:gone-process`, 'PX', lifetimeMs - 1000);
        const delayedTo: number[] = [];
        const delayable = Object.assign(job(reply.id, 1), { moveToDelayed: async (at: number) => { delayedTo.push(at); } }) as unknown as Job;
        await expect(processor()(delayable, 'token')).rejects.toBeInstanceOf(DelayedError);
        // Due when the dead attempt's call (5 s) and the margin (5 s) are over.
        expect(delayedTo[0]).toBeGreaterThan(Date.now() + 7_000);
        expect((await storedMessage(reply.id))!.status).toBe('queued');
        await t.gateway.redis.set(key, `sending:${Date.now() - 60_000}:5000:gone-process`, 'PX', lifetimeMs - 60_000);
        await expect(processor()(job(reply.id, 2, 8))).rejects.toBeInstanceOf(UnrecoverableError);
        expect(await storedMessage(reply.id)).toMatchObject({ status: 'failed', error: { code: 'send_outcome_unknown' } });
        expect(providerCalls).toBe(0);
      });

      it('a definite refusal clears the marker, so the retry sends; two attempts at once make one call', async () => {
        providerCalls = 0;
        let refuse = true;
        behaviour = (request) => deliver(request, async () => {
          if (refuse) { refuse = false; throw new Error('421 try again later'); }
          await new Promise((r) => setTimeout(r, 100));
          return { status: 'sent', externalId: 'P-2' };
        });
        const reply = await unsentReply('refused, then sent');
        const processOutbound = processor();
        await expect(processOutbound(job(reply.id, 0))).rejects.toThrow('421 try again later');
        expect(await marker(reply.id)).toBeNull();
        const both = await Promise.allSettled([processOutbound(job(reply.id, 1)), processOutbound(job(reply.id, 1))]);
        expect(both.map((r) => r.status).sort()).toEqual(['fulfilled', 'rejected']);
        expect((both.find((r) => r.status === 'rejected') as PromiseRejectedResult).reason).toBeInstanceOf(SendInFlightError);
        expect(providerCalls).toBe(2);
        expect(await storedMessage(reply.id)).toMatchObject({ status: 'sent', externalId: 'P-2' });
        expect(await marker(reply.id)).toBe('sent:P-2');
      });
    });

    it('succeeds on a retry after a failed attempt', async () => {
      sends.length = 0;
      let calls = 0;
      behaviour = async () => { if (++calls === 1) throw new Error('timeout'); return { status: 'sent', externalId: 'ok-2' }; };
      const reply = await unsentReply('second time lucky');
      const processOutbound = processor();
      await expect(processOutbound(job(reply.id, 0))).rejects.toThrow('timeout');
      expect(await processOutbound(job(reply.id, 1))).toBe('sent');
      expect(await storedMessage(reply.id)).toMatchObject({ status: 'sent', externalId: 'ok-2' });
      expect((await storedMessage(reply.id))!.error).toBeUndefined();
      expect((await eventsAbout(reply.id)).map((e) => e.type)).toEqual(['message.sent']);
    });
  });
});

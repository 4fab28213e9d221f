import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addAgent, eventsOfType, listAllConversations, newVisitorId, streamEvents, visitorMessage, waitFor } from '../support/coreFixtures.ts';
import { createTenant, startTestGateway, type Tenant, type TestGateway } from '../support/testGateway.ts';

describe('conversation API: lists, filters, pagination and history', () => {
  let t: TestGateway;
  let tenant: Tenant;
  let otherInboxId: string;
  let bob: string;
  let all: any[];
  const base = () => `/api/v1/accounts/${tenant.accountId}`;
  const get = (path: string) => t.api('GET', `${base()}${path}`, { key: tenant.apiKey });

  /** Follows nextCursor from the first page to the last, returning every page. */
  async function pages(path: string, limit: number): Promise<any[][]> {
    const result: any[][] = [];
    let cursor: string | null = null;
    do {
      const separator = path.includes('?') ? '&' : '?';
      const page = await get(`${path}${separator}limit=${limit}${cursor ? `&cursor=${cursor}` : ''}`);
      expect(page.status).toBe(200);
      expect(page.body.items.length).toBeLessThanOrEqual(limit);
      result.push(page.body.items);
      cursor = page.body.nextCursor;
      if (result.length > 100) throw new Error('pagination does not end');
    } while (cursor);
    return result;
  }

  beforeAll(async () => {
    t = await startTestGateway();
    tenant = await createTenant(t, { capacity: 3 });
    bob = await addAgent(t, tenant, 'Bob', 3);
    const inbox = await t.api('POST', `${base()}/inboxes`, {
      key: tenant.apiKey, body: { type: 'webchat', name: 'Shop chat', settings: { allowedOrigins: ['*'] }, credentials: {} },
    });
    otherInboxId = inbox.body.id;
    // 5 conversations in the first inbox and 4 in the second, one after another so each is routed before the next.
    for (const [i, inboxId] of [1, 1, 1, 1, 1, 2, 2, 2, 2].map((n, i) => [i, n === 1 ? tenant.inboxId : otherInboxId] as const)) {
      const visitorId = newVisitorId();
      await t.gateway.acceptor.accept(visitorMessage({ accountId: tenant.accountId, inboxId }, visitorId, `${visitorId}/1`, `conversation ${i}`));
      await waitFor(() => streamEvents(t, tenant.accountId),
        (e) => eventsOfType(e, 'conversation.assigned').length + eventsOfType(e, 'conversation.queued').length > i, `routing of conversation ${i}`);
    }
    const listed = await listAllConversations(t, tenant);
    // Two resolved (one per inbox), leaving 7 open: 6 assigned (3 each) and 1 waiting.
    for (const c of [listed[0], listed[5]]) await t.api('POST', `${base()}/conversations/${c.id}/resolve`, { key: tenant.apiKey });
    all = await listAllConversations(t, tenant);
  });
  afterAll(() => t.stop());

  const ids = (items: any[]) => items.map((c) => c.id);

  it('lists every conversation once, oldest first', () => {
    expect(all).toHaveLength(9);
    expect(new Set(ids(all)).size).toBe(9);
    expect(ids(all)).toEqual([...ids(all)].sort());
    for (const c of all) expect(Object.keys(c).sort()).toEqual([
      'accountId', 'assigneeId', 'channel', 'contactId', 'createdAt', 'id', 'inboxId', 'lastMessageAt', 'priority', 'resolvedAt', 'status', 'tags', 'teamId', 'updatedAt', 'waitingSince',
    ]);
  });

  it('filters by status, assignee and inbox, alone and together', async () => {
    const expectFilter = async (filters: Record<string, string>, expected: any[]) => {
      const listed = await listAllConversations(t, tenant, filters);
      expect(ids(listed)).toEqual(ids(expected));
    };
    const resolved = all.filter((c) => c.status === 'resolved');
    expect(resolved).toHaveLength(2);
    await expectFilter({ status: 'resolved' }, resolved);
    await expectFilter({ status: 'open' }, all.filter((c) => c.status === 'open'));
    const annOpen = all.filter((c) => c.assigneeId === tenant.agentId);
    expect(annOpen).toHaveLength(3);
    await expectFilter({ assigneeId: tenant.agentId }, annOpen);
    await expectFilter({ assigneeId: bob }, all.filter((c) => c.assigneeId === bob));
    await expectFilter({ inboxId: otherInboxId }, all.filter((c) => c.inboxId === otherInboxId));
    expect(all.filter((c) => c.inboxId === otherInboxId)).toHaveLength(4);
    await expectFilter({ inboxId: tenant.inboxId, status: 'open' }, all.filter((c) => c.inboxId === tenant.inboxId && c.status === 'open'));
    await expectFilter({ inboxId: otherInboxId, assigneeId: bob, status: 'open' },
      all.filter((c) => c.inboxId === otherInboxId && c.assigneeId === bob && c.status === 'open'));
    await expectFilter({ assigneeId: 'agt_nobody' }, []);
    expect((await get('/conversations?status=pending')).status).toBe(400);
  });

  it('pages conversations with a cursor, with and without filters', async () => {
    const byThree = await pages('/conversations', 3);
    expect(byThree.map((p) => p.length)).toEqual([3, 3, 3]);
    expect(ids(byThree.flat())).toEqual(ids(all));
    const byOne = await pages('/conversations', 1);
    expect(ids(byOne.flat())).toEqual(ids(all));

    const open = all.filter((c) => c.status === 'open');
    const openByTwo = await pages('/conversations?status=open', 2);
    expect(ids(openByTwo.flat())).toEqual(ids(open));
    for (const page of openByTwo.slice(0, -1)) expect(page).toHaveLength(2);
    const otherByOne = await pages(`/conversations?inboxId=${otherInboxId}`, 1);
    expect(ids(otherByOne.flat())).toEqual(ids(all.filter((c) => c.inboxId === otherInboxId)));

    const last = await get(`/conversations?limit=5&cursor=${all[all.length - 1].id}`);
    expect(last.body).toEqual({ items: [], nextCursor: null });
  });

  describe('message history', () => {
    let conversationId: string;
    let history: any[];

    beforeAll(async () => {
      const conversation = all.find((c) => c.status === 'open' && c.inboxId === tenant.inboxId);
      conversationId = conversation.id;
      const contact = (await get(`/contacts/${conversation.contactId}`)).body;
      for (let i = 2; i <= 5; i++) {
        await t.gateway.acceptor.accept(visitorMessage(tenant, contact.channelId, `${contact.channelId}/${i}`, `message ${i}`));
        if (i === 3 || i === 5) {
          await waitFor(async () => (await get(`/conversations/${conversationId}/messages`)).body.items, (items: any[]) => items.length >= i, `message ${i}`);
          await t.api('POST', `${base()}/conversations/${conversationId}/messages`, { key: tenant.apiKey, body: { text: `reply after ${i}` } });
        }
      }
      history = await waitFor(async () => (await get(`/conversations/${conversationId}/messages?limit=200`)).body.items,
        (items: any[]) => items.length >= 7, 'the whole history');
    });

    it('holds inbound and outbound messages in seq order', () => {
      expect(history.map((m) => [m.direction, m.content.text])).toEqual([
        ['inbound', expect.stringMatching(/^conversation /)], ['inbound', 'message 2'], ['inbound', 'message 3'], ['outbound', 'reply after 3'],
        ['inbound', 'message 4'], ['inbound', 'message 5'], ['outbound', 'reply after 5'],
      ]);
      const seqs = history.map((m) => m.seq);
      expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
      expect(new Set(seqs).size).toBe(seqs.length);
    });

    it('pages oldest first with ?order=asc and newest first with ?order=desc', async () => {
      const asc = await pages(`/conversations/${conversationId}/messages`, 3);
      expect(asc.map((p) => p.length)).toEqual([3, 3, 1]);
      expect(ids(asc.flat())).toEqual(ids(history));
      expect(ids((await pages(`/conversations/${conversationId}/messages?order=asc`, 2)).flat())).toEqual(ids(history));

      const desc = await pages(`/conversations/${conversationId}/messages?order=desc`, 3);
      expect(desc.map((p) => p.length)).toEqual([3, 3, 1]);
      expect(ids(desc.flat())).toEqual(ids(history).reverse());
      const descByOne = await pages(`/conversations/${conversationId}/messages?order=desc`, 1);
      expect(ids(descByOne.flat())).toEqual(ids(history).reverse());

      // The cursor is a seq: after the newest there is nothing, before the oldest there is nothing.
      const newest = history[history.length - 1].seq;
      expect((await get(`/conversations/${conversationId}/messages?cursor=${newest}`)).body).toEqual({ items: [], nextCursor: null });
      expect((await get(`/conversations/${conversationId}/messages?order=desc&cursor=${history[0].seq}`)).body).toEqual({ items: [], nextCursor: null });
      expect((await get(`/conversations/${conversationId}/messages?cursor=abc`)).status).toBe(400);
    });
  });

  it('shows the visitor the reopened conversation, not the newer resolved one', async () => {
    const visitor = (await t.api('POST', `/webchat/${tenant.inboxId}/session`, { body: {} })).body;
    const say = (clientMessageId: string) => t.api('POST', `/webchat/${tenant.inboxId}/messages`, {
      body: { visitorId: visitor.visitorId, visitorToken: visitor.visitorToken, clientMessageId, text: `visitor ${clientMessageId}` },
    });
    const visitorView = async () => (await t.api('GET',
      `/webchat/${tenant.inboxId}/messages?visitorId=${visitor.visitorId}&visitorToken=${encodeURIComponent(visitor.visitorToken)}`)).body.messages as any[];
    const ownConversations = async () => (await listAllConversations(t, tenant)).filter((c) => !ids(all).includes(c.id));

    await say('a1');
    const [older] = await waitFor(ownConversations, (c) => c.length === 1, 'the first conversation');
    await waitFor(visitorView, (m) => m.length === 1, 'the first message');
    await t.api('POST', `${base()}/conversations/${older.id}/resolve`, { key: tenant.apiKey });
    await say('b1');
    const newer = (await waitFor(ownConversations, (c) => c.length === 2, 'the second conversation')).find((c) => c.id !== older.id);
    await waitFor(visitorView, (m) => m.some((x) => x.externalId === 'b1'), 'the second message');
    await t.api('POST', `${base()}/conversations/${newer.id}/resolve`, { key: tenant.apiKey });

    expect((await t.api('POST', `${base()}/conversations/${older.id}/reopen`, { key: tenant.apiKey })).status).toBe(200);
    const reply = await t.api('POST', `${base()}/conversations/${older.id}/messages`, { key: tenant.apiKey, body: { text: 'back to your first question' } });
    expect(reply.status).toBe(202);
    const seen = await visitorView();
    expect(seen.map((m) => m.content.text)).toEqual(['visitor a1', 'back to your first question']);
    await say('a2');
    await waitFor(visitorView, (m) => m.some((x) => x.externalId === 'a2'), 'the visitor\'s new message in the reopened conversation');
  });

  it('answers 404 for unknown ids and for another account\'s conversations', async () => {
    for (const path of ['/conversations/cv_unknown', '/conversations/cv_unknown/messages', '/contacts/ct_unknown', '/conversations/not%20an%20id']) {
      const r = await get(path);
      expect(r.status, path).toBe(404);
      expect(r.body.error.code).toBe('not_found');
    }
    const stranger = await createTenant(t);
    const mine = all[0];
    for (const path of [`/conversations/${mine.id}`, `/conversations/${mine.id}/messages`, `/contacts/${mine.contactId}`]) {
      const r = await t.api('GET', `/api/v1/accounts/${stranger.accountId}${path}`, { key: stranger.apiKey });
      expect(r.status, path).toBe(404);
    }
    const replied = await t.api('POST', `/api/v1/accounts/${stranger.accountId}/conversations/${mine.id}/resolve`, { key: stranger.apiKey });
    expect(replied.status).toBe(404);
    expect((await t.api('GET', `/api/v1/accounts/${stranger.accountId}/conversations`, { key: stranger.apiKey })).body.items).toEqual([]);
    // Another account's key cannot read this account at all.
    expect([401, 403, 404]).toContain((await t.api('GET', `${base()}/conversations`, { key: stranger.apiKey })).status);
  });
});

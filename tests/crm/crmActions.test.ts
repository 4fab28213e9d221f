// The API a CRM acts through, against a real gateway and Redis: a CRM-triggered WeChat message to a
// contact with no conversation (one send to a local fake WeChat API, once per Idempotency-Key), web
// chat sends into the open conversation, contacts under the CRM's external id, lookups by channel
// identity, and notes and tags on conversations, each change with exactly one event.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { wechatSignature } from '../../adapters/wechat/wechatCrypto.ts';
import { newVisitorId, streamEvents, visitorMessage, waitFor } from '../support/coreFixtures.ts';
import { startFakeWechat } from '../support/fakeWechatApi.ts';
import { runScript } from '../../src/commands/index.ts';
import { createTenant, startTestGateway, TestSocket, wsUrl, type Tenant, type TestGateway } from '../support/testGateway.ts';

const appId = 'wx5823bf96d3bd56c7';
const appSecret = 'app-secret-of-the-crm-shop';
const serverToken = 'wechat-server-token';
const newOpenId = () => `oCrm_${randomBytes(6).toString('hex')}`;

describe('CRM actions', () => {
  let fake: Awaited<ReturnType<typeof startFakeWechat>>;
  let t: TestGateway;
  let tenant: Tenant;
  let other: Tenant;
  let wechatInboxId: string;

  beforeAll(async () => {
    fake = await startFakeWechat(appId, appSecret);
    t = await startTestGateway();
    tenant = await createTenant(t);
    other = await createTenant(t);
    const inbox = await t.api('POST', `/api/v1/accounts/${tenant.accountId}/inboxes`, {
      key: tenant.apiKey,
      body: { type: 'wechat', name: 'Shop OA', settings: { apiBaseUrl: fake.url }, credentials: { appId, appSecret, token: serverToken } },
    });
    expect(inbox.status).toBe(201);
    wechatInboxId = inbox.body.id;
  });
  afterAll(async () => {
    await t?.stop();
    await fake?.close();
  });

  const api = (method: string, path: string, options: { body?: unknown; headers?: Record<string, string>; key?: string; raw?: string } = {}) =>
    t.api(method, `/api/v1/accounts/${tenant.accountId}${path}`, { key: tenant.apiKey, ...options });
  const eventsAbout = async (subject: string) => (await streamEvents(t, tenant.accountId)).filter((e) => e.subject === subject || e.data.id === subject);
  const messageStatus = async (conversationId: string, messageId: string) =>
    ((await api('GET', `/conversations/${conversationId}/messages?limit=200`)).body.items as any[]).find((m) => m.id === messageId)?.status;
  const sendsTo = (openId: string) => fake.sends.filter((s) => s.body.touser === openId);

  describe('sending to a contact through an inbox', () => {
    it('opens a conversation for a new WeChat contact, sends once, and emits contact.created, conversation.created, message.sent', async () => {
      const openId = newOpenId();
      const r = await api('POST', `/inboxes/${wechatInboxId}/messages`, { body: { to: { channelId: openId }, text: 'Your order #1001 has shipped.' } });
      expect(r.status).toBe(202);
      expect(r.body).toMatchObject({ conversationCreated: true, contactCreated: true, message: { direction: 'outbound', status: 'queued', channel: 'wechat', inboxId: wechatInboxId, to: { channelId: openId } } });
      const { conversationId, contactId, id: messageId } = r.body.message;
      await waitFor(() => messageStatus(conversationId, messageId), (s) => s === 'sent', 'the message sent');
      expect(sendsTo(openId).map((s) => s.body)).toEqual([{ touser: openId, msgtype: 'text', text: { content: 'Your order #1001 has shipped.' } }]);

      const conversation = (await api('GET', `/conversations/${conversationId}`)).body;
      expect(conversation).toMatchObject({ status: 'open', contactId, inboxId: wechatInboxId, assigneeId: null, tags: [] });
      expect((await api('GET', `/contacts/${contactId}`)).body).toMatchObject({ channel: 'wechat', channelId: openId, inboxId: wechatInboxId, externalId: null });
      const types = (await streamEvents(t, tenant.accountId))
        .filter((e) => e.subject === contactId || e.subject === conversationId).map((e) => e.type);
      expect(types).toEqual(['contact.created', 'conversation.created', 'message.sent']);
    });

    it('sends the same Idempotency-Key once (same message back), and a second message into the same open conversation', async () => {
      const openId = newOpenId();
      const headers = { 'idempotency-key': `crm-campaign-7/${openId}` };
      const body = { to: { channelId: openId }, text: 'Flash sale today' };
      const first = await api('POST', `/inboxes/${wechatInboxId}/messages`, { body, headers });
      const second = await api('POST', `/inboxes/${wechatInboxId}/messages`, { body, headers });
      expect([first.status, second.status]).toEqual([202, 202]);
      expect(second.body.message.id).toBe(first.body.message.id);
      const { conversationId } = first.body.message;
      await waitFor(() => messageStatus(conversationId, first.body.message.id), (s) => s === 'sent', 'the message sent');
      // The same key with another body is refused, and nothing is stored, sent or emitted.
      const eventsBefore = (await streamEvents(t, tenant.accountId)).length;
      for (const other of [{ ...body, text: 'Flash sale tomorrow' }, { to: { channelId: newOpenId() }, text: 'Flash sale today' }]) {
        const reused = await api('POST', `/inboxes/${wechatInboxId}/messages`, { body: other, headers });
        expect(reused.status).toBe(422);
        expect(reused.body.error).toMatchObject({ code: 'idempotency_key_reused', message: expect.stringMatching(/Idempotency-Key/) });
      }
      expect((await streamEvents(t, tenant.accountId)).length).toBe(eventsBefore);
      const reordered = await api('POST', `/inboxes/${wechatInboxId}/messages`, { body: { text: body.text, to: body.to }, headers });
      expect(reordered.body.message.id).toBe(first.body.message.id);

      const followUp = await api('POST', `/inboxes/${wechatInboxId}/messages`, { body: { to: { contactId: first.body.message.contactId }, text: 'Last hours!' } });
      expect(followUp.status).toBe(202);
      expect(followUp.body).toMatchObject({ conversationCreated: false, contactCreated: false, message: { conversationId } });
      await waitFor(() => messageStatus(conversationId, followUp.body.message.id), (s) => s === 'sent', 'the follow-up sent');
      expect(sendsTo(openId).map((s) => s.body.text.content)).toEqual(['Flash sale today', 'Last hours!']);
      const history = (await api('GET', `/conversations/${conversationId}/messages`)).body.items;
      expect(history.map((m: any) => m.content.text)).toEqual(['Flash sale today', 'Last hours!']);
      expect((await eventsAbout(conversationId)).filter((e) => e.type === 'conversation.created')).toHaveLength(1);
    });

    it("keeps the customer's answer in the CRM's conversation and routes it to an agent then", async () => {
      const openId = newOpenId();
      const sent = await api('POST', `/inboxes/${wechatInboxId}/messages`, { body: { to: { channelId: openId }, text: 'How was your delivery?' } });
      const { conversationId } = sent.body.message;
      const timestamp = String(Math.floor(Date.now() / 1000));
      const nonce = randomBytes(6).toString('hex');
      const push = `<xml><ToUserName><![CDATA[gh_shop]]></ToUserName><FromUserName><![CDATA[${openId}]]></FromUserName>`
        + `<CreateTime>${timestamp}</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[Box was damaged]]></Content><MsgId>2700000000${randomBytes(3).readUIntBE(0, 3)}</MsgId></xml>`;
      const query = new URLSearchParams({ timestamp, nonce, signature: wechatSignature(serverToken, timestamp, nonce) });
      expect((await t.api('POST', `/wechat/${wechatInboxId}?${query}`, { raw: push, headers: { 'content-type': 'text/xml' } })).status).toBe(200);
      const conversation = await waitFor(async () => (await api('GET', `/conversations/${conversationId}`)).body,
        (c) => c.assigneeId === tenant.agentId, 'the conversation assigned once the customer answered');
      expect(conversation.id).toBe(conversationId);
      const history = (await api('GET', `/conversations/${conversationId}/messages`)).body.items;
      expect(history.map((m: any) => [m.direction, m.content.text])).toEqual([['outbound', 'How was your delivery?'], ['inbound', 'Box was damaged']]);
    });

    it('sends to a web chat visitor into their open conversation, addressed by contact id', async () => {
      const visitorId = newVisitorId();
      await t.gateway.acceptor.accept(visitorMessage(tenant, visitorId, `${visitorId}/1`, 'Is this in stock?'));
      const contact = await waitFor(() => api('GET', `/contacts/lookup?inboxId=${tenant.inboxId}&channelId=${visitorId}&channel=webchat`),
        (r) => r.status === 200, 'the visitor contact');
      const conversations = (await api('GET', `/conversations?inboxId=${tenant.inboxId}&limit=200`)).body.items as any[];
      const open = conversations.find((c) => c.contactId === contact.body.id);
      const r = await api('POST', `/inboxes/${tenant.inboxId}/messages`, { body: { to: { contactId: contact.body.id }, text: 'Yes, 3 left.' } });
      expect(r.status).toBe(202);
      expect(r.body).toMatchObject({ conversationCreated: false, contactCreated: false, message: { conversationId: open.id, channel: 'webchat' } });
      await waitFor(() => messageStatus(open.id, r.body.message.id), (s) => s === 'sent', 'the web chat message sent');
    });

    it('refuses bad input with a reason and stores nothing', async () => {
      const eventsBefore = (await streamEvents(t, tenant.accountId)).length;
      const send = (body: unknown, inboxId = wechatInboxId) => api('POST', `/inboxes/${inboxId}/messages`, { body });
      const cases: [unknown, number, RegExp][] = [
        [{ to: { channelId: newOpenId() } }, 400, /text or content/],
        [{ to: {}, text: 'x' }, 400, /to/],
        [{ to: { channelId: newOpenId(), contactId: 'ct_x' }, text: 'x' }, 400, /to/],
        [{ to: { channelId: 'not an openid!' }, text: 'x' }, 400, /OpenID/],
        [{ to: { contactId: 'ct_unknown' }, text: 'x' }, 404, /contact/],
        [{ to: { externalId: 'crm-nobody' }, text: 'x' }, 404, /contact/],
        [{ to: { channelId: newOpenId() }, text: 'x'.repeat(10_001) }, 400, /text/],
      ];
      for (const [body, status, message] of cases) {
        const r = await send(body);
        expect([r.status, JSON.stringify(body).slice(0, 80)]).toEqual([status, JSON.stringify(body).slice(0, 80)]);
        expect(r.body.error.message).toMatch(message);
      }
      expect((await send({ to: { channelId: newOpenId() }, text: 'x' }, 'ibx_unknown')).status).toBe(404);
      const malformed = await api('POST', `/inboxes/${wechatInboxId}/messages`, { raw: '{"to":', headers: { 'content-type': 'application/json' } });
      expect(malformed.status).toBe(400);
      const oversized = await api('POST', `/inboxes/${wechatInboxId}/messages`, { body: { to: { channelId: newOpenId() }, text: 'x', pad: 'y'.repeat(1_100_000) } });
      expect(oversized.status).toBe(413);
      // A web chat contact cannot be written to through the WeChat inbox.
      const visitor = await waitFor(() => api('GET', '/contacts?limit=200'), (r) => r.body.items.some((c: any) => c.channel === 'webchat'), 'a web chat contact');
      const webchatContact = visitor.body.items.find((c: any) => c.channel === 'webchat');
      expect((await send({ to: { contactId: webchatContact.id }, text: 'x' })).status).toBe(400);
      // Another account's key finds nothing.
      const intruder = await t.api('POST', `/api/v1/accounts/${tenant.accountId}/inboxes/${wechatInboxId}/messages`, { key: other.apiKey, body: { to: { channelId: newOpenId() }, text: 'x' } });
      expect(intruder.status).toBe(404);
      const agent = await t.api('POST', `/api/v1/accounts/${tenant.accountId}/inboxes/${wechatInboxId}/messages`, { key: tenant.agentToken, body: { to: { channelId: newOpenId() }, text: 'x' } });
      expect(agent.status).toBe(403);
      expect((await streamEvents(t, tenant.accountId)).length).toBe(eventsBefore);
    });
  });

  describe("contacts under the CRM's external id", () => {
    it('creates a contact with its channel identity, finds it by external id and by channel identity, and emits contact.created once', async () => {
      const openId = newOpenId();
      const externalId = `hubspot:${randomBytes(4).toString('hex')}`;
      const path = `/contacts/by-external-id/${encodeURIComponent(externalId)}`;
      const created = await api('PUT', path, { body: { inboxId: wechatInboxId, channelId: openId, name: 'Li Lei', attributes: { tier: 'gold' } } });
      expect(created.status).toBe(201);
      expect(created.body).toMatchObject({ externalId, channel: 'wechat', channelId: openId, name: 'Li Lei', attributes: { tier: 'gold' } });
      expect((await api('GET', path)).body.id).toBe(created.body.id);
      expect((await api('GET', `/contacts/lookup?inboxId=${wechatInboxId}&channelId=${openId}`)).body.id).toBe(created.body.id);
      expect((await api('GET', `/contacts/${created.body.id}`)).body.externalId).toBe(externalId);

      const again = await api('PUT', path, { body: { inboxId: wechatInboxId, channelId: openId, name: 'Li Lei', attributes: { tier: 'gold' } } });
      expect([again.status, again.body.id]).toEqual([200, created.body.id]);
      const renamed = await api('PUT', path, { body: { name: 'Lei Li', attributes: { since: 2019 } } });
      expect(renamed.status).toBe(200);
      expect(renamed.body).toMatchObject({ name: 'Lei Li', attributes: { tier: 'gold', since: 2019 } });
      const events = await eventsAbout(created.body.id);
      expect(events.map((e) => e.type)).toEqual(['contact.created', 'contact.updated']);
      expect(events[0]!.data).toMatchObject({ externalId, name: 'Li Lei', attributes: { tier: 'gold' } });
      expect(events[1]!.data).toMatchObject({ externalId, name: 'Lei Li', attributes: { tier: 'gold', since: 2019 } });

      // A CRM message to the contact by its external id reaches the same OpenID.
      const sent = await api('POST', `/inboxes/${wechatInboxId}/messages`, { body: { to: { externalId }, text: 'Welcome, Lei!' } });
      expect(sent.body).toMatchObject({ contactCreated: false, message: { contactId: created.body.id, to: { channelId: openId } } });
      await waitFor(async () => sendsTo(openId), (s) => s.length === 1, 'the message to the external id');
    });

    it('links a contact that wrote in already, and refuses to link it to a second external id', async () => {
      const visitorId = newVisitorId();
      await t.gateway.acceptor.accept(visitorMessage(tenant, visitorId, `${visitorId}/1`));
      const existing = await waitFor(() => api('GET', `/contacts/lookup?inboxId=${tenant.inboxId}&channelId=${visitorId}`), (r) => r.status === 200, 'the visitor');
      const linked = await api('PUT', '/contacts/by-external-id/crm-42', { body: { inboxId: tenant.inboxId, channelId: visitorId } });
      expect([linked.status, linked.body.id, linked.body.externalId]).toEqual([200, existing.body.id, 'crm-42']);
      const second = await api('PUT', '/contacts/by-external-id/crm-43', { body: { inboxId: tenant.inboxId, channelId: visitorId } });
      expect(second.status).toBe(409);
      const moved = await api('PUT', '/contacts/by-external-id/crm-42', { body: { inboxId: tenant.inboxId, channelId: newVisitorId() } });
      expect(moved.status).toBe(409);
      expect((await eventsAbout(existing.body.id)).map((e) => e.type)).toEqual(['contact.created', 'contact.updated']);
      // PATCH keeps the external id, and its event carries it.
      await api('PATCH', `/contacts/${existing.body.id}`, { body: { name: 'Vic' } });
      const events = await eventsAbout(existing.body.id);
      expect(events.at(-1)!.data).toMatchObject({ name: 'Vic', externalId: 'crm-42' });
    });

    it('answers 404 for what it does not know and 400 for malformed input, changing nothing', async () => {
      const eventsBefore = (await streamEvents(t, tenant.accountId)).length;
      expect((await api('PUT', '/contacts/by-external-id/crm-unknown', { body: { name: 'Nobody' } })).status).toBe(404);
      expect((await api('GET', '/contacts/by-external-id/crm-unknown')).status).toBe(404);
      expect((await api('GET', `/contacts/lookup?inboxId=${wechatInboxId}&channelId=${newOpenId()}`)).status).toBe(404);
      expect((await api('GET', `/contacts/lookup?inboxId=ibx_unknown&channelId=${newOpenId()}`)).status).toBe(404);
      expect((await api('GET', `/contacts/lookup?inboxId=${wechatInboxId}`)).status).toBe(400);
      expect((await api('GET', `/contacts/lookup?inboxId=${wechatInboxId}&channelId=${newOpenId()}&channel=sms`)).status).toBe(400);
      const bad: unknown[] = [
        { inboxId: wechatInboxId },
        { inboxId: wechatInboxId, channelId: 'x y' },
        { name: '' },
        { attributes: 'vip' },
        { email: 'x@example.com' },
      ];
      for (const body of bad) {
        const r = await api('PUT', '/contacts/by-external-id/crm-bad', { body });
        expect([r.status, body]).toEqual([400, body]);
        expect(r.body.error.message).toBeTruthy();
      }
      const tooBig = await api('PUT', '/contacts/by-external-id/crm-bad', { body: { inboxId: wechatInboxId, channelId: newOpenId(), attributes: { notes: 'x'.repeat(20_000) } } });
      expect(tooBig.status).toBe(400);
      expect((await api('PUT', `/contacts/by-external-id/${'x'.repeat(201)}`, { body: { name: 'Long' } })).status).toBe(400);
      expect((await t.api('PUT', `/api/v1/accounts/${tenant.accountId}/contacts/by-external-id/crm-42`, { key: other.apiKey, body: { name: 'Mallory' } })).status).toBe(404);
      expect((await t.api('GET', `/api/v1/accounts/${tenant.accountId}/contacts/by-external-id/crm-42`, { key: other.apiKey })).status).toBe(404);
      // The same external id in another account is another contact.
      expect((await t.api('GET', `/api/v1/accounts/${other.accountId}/contacts/by-external-id/crm-42`, { key: other.apiKey })).status).toBe(404);
      expect((await streamEvents(t, tenant.accountId)).length).toBe(eventsBefore);
    });
  });

  it('publishes every CRM route in /openapi.json', async () => {
    const paths = (await t.api('GET', '/openapi.json')).body.paths;
    const base = '/api/v1/accounts/{accountId}';
    expect(Object.keys(paths[`${base}/inboxes/{inboxId}/messages`])).toEqual(['post']);
    expect(Object.keys(paths[`${base}/contacts/by-external-id/{externalId}`]).sort()).toEqual(['get', 'put']);
    expect(Object.keys(paths[`${base}/contacts/lookup`])).toEqual(['get']);
    expect(Object.keys(paths[`${base}/conversations/{conversationId}/notes`]).sort()).toEqual(['get', 'post']);
    expect(paths[`${base}/conversations/{conversationId}/tags`].post.requestBody).toBeTruthy();
    expect(paths[`${base}/contacts/lookup`].get.parameters.map((p: any) => p.name)).toEqual(['accountId', 'inboxId', 'channelId', 'channel']);
  });

  describe('notes and tags on a conversation', () => {
    let conversationId: string;
    let visitorId: string;

    beforeAll(async () => {
      visitorId = newVisitorId();
      await t.gateway.acceptor.accept(visitorMessage(tenant, visitorId, `${visitorId}/1`, 'I want a refund'));
      const contact = await waitFor(() => api('GET', `/contacts/lookup?inboxId=${tenant.inboxId}&channelId=${visitorId}`), (r) => r.status === 200, 'the visitor');
      conversationId = (await waitFor(async () => ((await api('GET', `/conversations?inboxId=${tenant.inboxId}&limit=200`)).body.items as any[])
        .find((c) => c.contactId === contact.body.id), (c) => !!c?.assigneeId, 'the conversation')).id;
    });

    it('adds a note the agents see and the customer never does, once per Idempotency-Key', async () => {
      const agentSocket = await TestSocket.open(wsUrl(t.url, '/api/v1/agent/ws'), { headers: { authorization: `Bearer ${tenant.agentToken}` } });
      await agentSocket.next((f) => f.type === 'hello');
      const headers = { 'idempotency-key': 'crm-note-1' };
      const first = await api('POST', `/conversations/${conversationId}/notes`, { body: { text: 'Customer since 2019, VIP', authorName: 'CRM sync' }, headers });
      const again = await api('POST', `/conversations/${conversationId}/notes`, { body: { text: 'Customer since 2019, VIP', authorName: 'CRM sync' }, headers });
      expect([first.status, again.status]).toEqual([201, 201]);
      expect(again.body).toEqual(first.body);
      expect(first.body).toMatchObject({ conversationId, text: 'Customer since 2019, VIP', author: { kind: 'api', name: 'CRM sync' } });
      const reused = await api('POST', `/conversations/${conversationId}/notes`, { body: { text: 'Customer since 2019, VIP', authorName: 'Someone else' }, headers });
      expect(reused.status).toBe(422);
      expect(reused.body.error.code).toBe('idempotency_key_reused');
      const pushed = await agentSocket.next((f) => f.type === 'event' && f.event.type === 'conversation.note_added');
      expect(pushed.event.data.note).toEqual(first.body);
      agentSocket.close();
      const byAgent = await t.api('POST', `/api/v1/accounts/${tenant.accountId}/conversations/${conversationId}/notes`, { key: tenant.agentToken, body: { text: 'Offered a voucher' } });
      expect(byAgent.body.author).toMatchObject({ kind: 'agent', agentId: tenant.agentId, name: 'Ann' });

      const page1 = await api('GET', `/conversations/${conversationId}/notes?limit=1`);
      const page2 = await api('GET', `/conversations/${conversationId}/notes?limit=1&cursor=${page1.body.nextCursor}`);
      expect([...page1.body.items, ...page2.body.items].map((n: any) => n.text)).toEqual(['Customer since 2019, VIP', 'Offered a voucher']);
      expect(page2.body.nextCursor).toBeNull();
      // Not a message: nothing to send, nothing in the history the visitor reads.
      const history = (await api('GET', `/conversations/${conversationId}/messages`)).body.items as any[];
      expect(history.map((m) => m.content.text)).toEqual(['I want a refund']);
      const noteEvents = (await eventsAbout(conversationId)).filter((e) => e.type === 'conversation.note_added');
      expect(noteEvents.map((e) => (e.data.note as any).text)).toEqual(['Customer since 2019, VIP', 'Offered a voucher']);
      expect(noteEvents[0]!.data).toMatchObject({ id: conversationId, assigneeId: tenant.agentId });
      const live = (await t.gateway.redis.xrange(t.gateway.keys.live, '-', '+')) as [string, string[]][];
      const noteEntries = live.map(([, f]) => f).filter((f) => f[1]!.includes('conversation.note_added') && f[1]!.includes(conversationId));
      expect(noteEntries.map((f) => [f[f.indexOf('a') + 1], f[f.indexOf('v') + 1]])).toEqual([[tenant.agentId, ''], [tenant.agentId, '']]);
    });

    it('adds and removes tags, emitting conversation.tags_changed only when they change', async () => {
      const tags = (body: unknown) => api('POST', `/conversations/${conversationId}/tags`, { body });
      expect((await tags({ add: ['refund', 'vip'] })).body).toEqual({ tags: ['refund', 'vip'] });
      expect((await tags({ add: ['vip'] })).body).toEqual({ tags: ['refund', 'vip'] });
      expect((await tags({ remove: ['refund'], add: ['escalated'] })).body).toEqual({ tags: ['escalated', 'vip'] });
      expect((await api('GET', `/conversations/${conversationId}`)).body.tags).toEqual(['escalated', 'vip']);
      const events = (await eventsAbout(conversationId)).filter((e) => e.type === 'conversation.tags_changed');
      expect(events.map((e) => [e.data.tags, e.data.added, e.data.removed])).toEqual([
        [['refund', 'vip'], ['refund', 'vip'], []],
        [['escalated', 'vip'], ['escalated'], ['refund']],
      ]);
      for (const body of [{}, { add: [] }, { add: ['a b'] }, { add: ['x'], remove: ['x'] }, { add: 'vip' }, { add: Array.from({ length: 51 }, (_, i) => `t${i}`) }]) {
        expect((await tags(body)).status).toBe(400);
      }
      expect((await tags({ add: Array.from({ length: 49 }, (_, i) => `t${i}`) })).status).toBe(400);
      expect((await api('GET', `/conversations/${conversationId}`)).body.tags).toEqual(['escalated', 'vip']);
    });

    it('forgets the notes with the conversation when retention purges it', async () => {
      const visitor = newVisitorId();
      await t.gateway.acceptor.accept(visitorMessage(tenant, visitor, `${visitor}/1`));
      const contact = await waitFor(() => api('GET', `/contacts/lookup?inboxId=${tenant.inboxId}&channelId=${visitor}`), (r) => r.status === 200, 'the visitor');
      const conversation = await waitFor(async () => ((await api('GET', `/conversations?inboxId=${tenant.inboxId}&limit=200`)).body.items as any[])
        .find((c) => c.contactId === contact.body.id), (c) => !!c, 'the conversation');
      expect((await api('POST', `/conversations/${conversation.id}/notes`, { body: { text: 'to be forgotten' } })).status).toBe(201);
      expect((await api('POST', `/conversations/${conversation.id}/resolve`)).status).toBe(200);
      const { redis, keys } = t.gateway;
      expect(await redis.exists(keys.conversationNotes(conversation.id))).toBe(1);
      await runScript(redis, 'purgeConversation', [keys.resolvedConversations], [keys.prefix, conversation.id, Date.now() + 1000]);
      expect(await redis.exists(keys.conversationNotes(conversation.id), keys.conversation(conversation.id))).toBe(0);
    });

    it('answers 404 for an unknown conversation or another account, 400 for a malformed note', async () => {
      expect((await api('POST', '/conversations/cv_unknown/notes', { body: { text: 'x' } })).status).toBe(404);
      expect((await api('POST', '/conversations/cv_unknown/tags', { body: { add: ['x'] } })).status).toBe(404);
      expect((await api('GET', '/conversations/cv_unknown/notes')).status).toBe(404);
      for (const body of [{}, { text: '' }, { text: 'x'.repeat(10_001) }, { text: 'x', internal: false }]) {
        expect((await api('POST', `/conversations/${conversationId}/notes`, { body })).status).toBe(400);
      }
      const base = `/api/v1/accounts/${tenant.accountId}/conversations/${conversationId}`;
      expect((await t.api('POST', `${base}/notes`, { key: other.apiKey, body: { text: 'x' } })).status).toBe(404);
      expect((await t.api('POST', `${base}/tags`, { key: other.agentToken, body: { add: ['x'] } })).status).toBe(404);
      expect((await api('GET', `/conversations/${conversationId}/notes`)).body.items).toHaveLength(2);
    });
  });
});

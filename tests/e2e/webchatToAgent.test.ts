import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTenant, startTestGateway, TestSocket, wsUrl, type Tenant, type TestGateway } from '../support/testGateway.ts';

describe('web chat through the whole pipeline', () => {
  let t: TestGateway;
  let tenant: Tenant;
  beforeAll(async () => {
    t = await startTestGateway();
    tenant = await createTenant(t);
  });
  afterAll(() => t.stop());

  it('delivers a visitor message to the agent and the reply back to the visitor', async () => {
    const agent = await TestSocket.open(wsUrl(t.url, '/api/v1/agent/ws'), { headers: { authorization: `Bearer ${tenant.agentToken}` } });
    await agent.next((f) => f.type === 'hello');
    const visitor = await TestSocket.open(wsUrl(t.url, `/webchat/${tenant.inboxId}/ws`));
    visitor.send({ type: 'hello', name: 'Vic' });
    const welcome = await visitor.next((f) => f.type === 'welcome');
    expect(welcome.visitorId).toMatch(/^v_/);
    visitor.send({ type: 'message', clientMessageId: 'c1', text: 'Hello, is my order shipped?' });
    await visitor.next((f) => f.type === 'accepted' && f.clientMessageId === 'c1');

    const assigned = await agent.next((f) => f.type === 'event' && f.event.type === 'conversation.assigned');
    const conversationId = assigned.event.subject;
    const seen = assigned.messages.some((m: any) => m.content.text === 'Hello, is my order shipped?') ||
      (await agent.next((f) => f.type === 'event' && f.event.type === 'message.received')).event.data.content.text === 'Hello, is my order shipped?';
    expect(seen).toBe(true);

    agent.send({ type: 'reply', conversationId, text: 'Yes, it left today.', clientMessageId: 'r1' });
    const ack = await agent.next((f) => f.type === 'ack');
    expect(ack.message.status).toBe('queued');
    const echo = await visitor.next((f) => f.type === 'message' && f.message.direction === 'outbound');
    expect(echo.message.content.text).toBe('Yes, it left today.');

    const history = await t.api('GET', `/api/v1/accounts/${tenant.accountId}/conversations/${conversationId}/messages`, { key: tenant.apiKey });
    expect(history.body.items.map((m: any) => [m.direction, m.content.text])).toEqual([
      ['inbound', 'Hello, is my order shipped?'],
      ['outbound', 'Yes, it left today.'],
    ]);
    expect(history.body.items[1].status).toBe('sent');
    agent.close();
    visitor.close();
  });

  it('tells both agents of a transfer, the new one with the history', async () => {
    const first = await TestSocket.open(wsUrl(t.url, '/api/v1/agent/ws'), { headers: { authorization: `Bearer ${tenant.agentToken}` } });
    await first.next((f) => f.type === 'hello');
    const bob = await t.api('POST', `/api/v1/accounts/${tenant.accountId}/agents`, { key: tenant.apiKey, body: { name: 'Bob', capacity: 3 } });
    const second = await TestSocket.open(wsUrl(t.url, '/api/v1/agent/ws'), { headers: { authorization: `Bearer ${bob.body.token}` } });
    await second.next((f) => f.type === 'hello');
    const visitor = await TestSocket.open(wsUrl(t.url, `/webchat/${tenant.inboxId}/ws`));
    visitor.send({ type: 'hello' });
    await visitor.next((f) => f.type === 'welcome');
    visitor.send({ type: 'message', clientMessageId: 'c1', text: 'Billing question' });
    const assigned = await first.next((f) => f.type === 'event' && f.event.type === 'conversation.assigned');
    const conversationId = assigned.event.subject;
    // Bob comes online only now, so the new conversation went to Ann first.
    await t.api('PUT', `/api/v1/accounts/${tenant.accountId}/agents/${bob.body.agent.id}/status`, { key: tenant.apiKey, body: { status: 'online' } });
    const moved = await t.api('POST', `/api/v1/accounts/${tenant.accountId}/conversations/${conversationId}/transfer`, {
      key: tenant.apiKey, body: { agentId: bob.body.agent.id, note: 'billing' },
    });
    expect(moved.status).toBe(200);
    const toBob = await second.next((f) => f.type === 'event' && f.event.type === 'conversation.transferred');
    expect(toBob.event.data.note).toBe('billing');
    expect(toBob.messages.map((m: any) => m.content.text)).toContain('Billing question');
    const toAnn = await first.next((f) => f.type === 'event' && f.event.type === 'conversation.transferred');
    expect(toAnn.event.data).toMatchObject({ assigneeId: bob.body.agent.id, previousAssigneeId: tenant.agentId });
    first.close();
    second.close();
    visitor.close();
  });

  it("gives the sending socket its message's seq at once, and the visitor's other tabs the stored echo", async () => {
    const tabA = await TestSocket.open(wsUrl(t.url, `/webchat/${tenant.inboxId}/ws`));
    tabA.send({ type: 'hello' });
    const welcome = await tabA.next((f) => f.type === 'welcome');
    const tabB = await TestSocket.open(wsUrl(t.url, `/webchat/${tenant.inboxId}/ws`));
    tabB.send({ type: 'hello', visitorId: welcome.visitorId, visitorToken: welcome.visitorToken });
    await tabB.next((f) => f.type === 'welcome');
    tabA.send({ type: 'message', clientMessageId: 'tab-a-1', text: 'from tab A' });
    const accepted = await tabA.next((f) => f.type === 'accepted' && f.clientMessageId === 'tab-a-1');
    expect(accepted.seq).toBeGreaterThan(0);
    const echo = await tabB.next((f) => f.type === 'message' && f.message.direction === 'inbound');
    expect(echo.message).toMatchObject({ id: accepted.messageId, seq: accepted.seq, externalId: 'tab-a-1', content: { text: 'from tab A' } });
    // By then the live feed has passed the same event to tab A too, which skipped it.
    expect(tabA.frames.filter((f) => f.type === 'message')).toEqual([]);
    tabA.close();
    tabB.close();
  });
});

// Acceptance: two web processes and one worker on one Redis; a visitor on web #1 and an agent on
// web #2 talk both ways, twice (the live feed carries each side's messages across processes).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTenantOn, newDeployment, startGatewayProcess, type Deployment, type GatewayProcess } from '../support/gatewayProcess.ts';
import { TestSocket, wsUrl, type Tenant } from '../support/testGateway.ts';

describe('a visitor and an agent on different web processes', () => {
  let deployment: Deployment;
  let webOne: GatewayProcess;
  let webTwo: GatewayProcess;
  let worker: GatewayProcess;
  let tenant: Tenant;
  const sockets: TestSocket[] = [];

  beforeAll(async () => {
    deployment = newDeployment();
    [webOne, webTwo, worker] = await Promise.all([
      startGatewayProcess(deployment, 'web'), startGatewayProcess(deployment, 'web'), startGatewayProcess(deployment, 'worker'),
    ]);
    tenant = await createTenantOn(webOne);
  });

  afterAll(async () => {
    for (const socket of sockets) socket.close();
    await Promise.all([webOne, webTwo, worker].map((p) => p?.stop()));
    deployment?.cleanup();
  });

  it('delivers visitor → agent and agent → visitor across processes, twice', async () => {
    const agent = await TestSocket.open(wsUrl(webTwo.url, '/api/v1/agent/ws'), { headers: { authorization: `Bearer ${tenant.agentToken}` } });
    sockets.push(agent);
    await agent.next((f) => f.type === 'hello');
    const visitor = await TestSocket.open(wsUrl(webOne.url, `/webchat/${tenant.inboxId}/ws`));
    sockets.push(visitor);
    visitor.send({ type: 'hello', name: 'Vic' });
    await visitor.next((f) => f.type === 'welcome');

    // Round 1: the first message opens a conversation, which is assigned to the one online agent.
    visitor.send({ type: 'message', clientMessageId: 'c1', text: 'First question' });
    await visitor.next((f) => f.type === 'accepted' && f.clientMessageId === 'c1');
    const assigned = await agent.next((f) => f.type === 'event' && f.event.type === 'conversation.assigned', 20_000);
    const conversationId: string = assigned.event.subject;
    const seenInHistory = assigned.messages.some((m: any) => m.content.text === 'First question');
    if (!seenInHistory) {
      const received = await agent.next((f) => f.type === 'event' && f.event.type === 'message.received', 20_000);
      expect(received.event.data.content.text).toBe('First question');
    }

    agent.send({ type: 'reply', conversationId, text: 'First answer', clientMessageId: 'r1' });
    expect((await agent.next((f) => f.type === 'ack' && f.clientMessageId === 'r1')).message.status).toBe('queued');
    const firstReply = await visitor.next((f) => f.type === 'message' && f.message.direction === 'outbound', 20_000);
    expect(firstReply.message.content.text).toBe('First answer');

    // Round 2: the conversation is assigned now, so the message reaches the agent as message.received.
    visitor.send({ type: 'message', clientMessageId: 'c2', text: 'Second question' });
    await visitor.next((f) => f.type === 'accepted' && f.clientMessageId === 'c2');
    const second = await agent.next((f) => f.type === 'event' && f.event.type === 'message.received' &&
      f.event.data.content.text === 'Second question', 20_000);
    expect(second.event.subject).toBe(conversationId);

    agent.send({ type: 'reply', conversationId, text: 'Second answer', clientMessageId: 'r2' });
    await agent.next((f) => f.type === 'ack' && f.clientMessageId === 'r2');
    const secondReply = await visitor.next((f) => f.type === 'message' && f.message.direction === 'outbound' &&
      f.message.content.text === 'Second answer', 20_000);
    expect(secondReply.message.seq).toBeGreaterThan(firstReply.message.seq);

    const history = await webTwo.api('GET', `/api/v1/accounts/${tenant.accountId}/conversations/${conversationId}/messages`, { key: tenant.apiKey });
    expect(history.body.items.map((m: any) => [m.direction, m.content.text])).toEqual([
      ['inbound', 'First question'],
      ['outbound', 'First answer'],
      ['inbound', 'Second question'],
      ['outbound', 'Second answer'],
    ]);
  }, 60_000);
});

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  acceptFromNewVisitors, addAgent, agentState, apiEvents, eventsOfType, listAllConversations, newVisitorId, setAgentStatus,
  streamEvents, visitorMessage, waitFor,
} from '../support/coreFixtures.ts';
import { createTenant, startTestGateway, type Tenant, type TestGateway } from '../support/testGateway.ts';

describe('assignment: least busy, capacity, the waiting queue and the conversation actions', () => {
  let t: TestGateway;
  beforeAll(async () => { t = await startTestGateway(); });
  afterAll(() => t.stop());

  const conversationPath = (tenant: Tenant, id: string, action = '') =>
    `/api/v1/accounts/${tenant.accountId}/conversations/${id}${action ? `/${action}` : ''}`;
  const getConversation = async (tenant: Tenant, id: string) => (await t.api('GET', conversationPath(tenant, id), { key: tenant.apiKey })).body;
  const act = (tenant: Tenant, id: string, action: string, body?: unknown) => t.api('POST', conversationPath(tenant, id, action), { key: tenant.apiKey, body });
  /** Waits until every open conversation has been routed: assigned or queued. */
  const routed = (tenant: Tenant, count: number) => waitFor(() => streamEvents(t, tenant.accountId),
    (e) => eventsOfType(e, 'conversation.assigned').length + eventsOfType(e, 'conversation.queued').length >= count, `${count} routed conversations`);
  /** One more conversation from a new visitor, waited until routed; returns its id. */
  const newConversation = async (tenant: Tenant): Promise<string> => {
    const before = (await listAllConversations(t, tenant)).map((c) => c.id);
    const [visitorId] = await acceptFromNewVisitors(t, tenant, 1);
    const conversations = await waitFor(() => listAllConversations(t, tenant), (c) => c.length > before.length, `conversation of ${visitorId}`);
    const id = conversations.find((c) => !before.includes(c.id)).id as string;
    await waitFor(() => streamEvents(t, tenant.accountId),
      (e) => e.some((x) => x.subject === id && (x.type === 'conversation.assigned' || x.type === 'conversation.queued')), `routing of ${id}`);
    return id;
  };

  it('gives each new conversation to the least busy online agent', async () => {
    const tenant = await createTenant(t, { capacity: 5 });
    const bob = await addAgent(t, tenant, 'Bob', 5);
    const cy = await addAgent(t, tenant, 'Cy', 5);
    const assignees: string[] = [];
    for (let i = 0; i < 3; i++) assignees.push((await getConversation(tenant, await newConversation(tenant))).assigneeId);
    expect(new Set(assignees)).toEqual(new Set([tenant.agentId, bob, cy]));

    // Bob's conversation ends: Bob is now the least busy and takes the next one.
    const bobsConversation = (await listAllConversations(t, tenant, { assigneeId: bob }))[0];
    await act(tenant, bobsConversation.id, 'resolve');
    expect(await getConversation(tenant, await newConversation(tenant))).toMatchObject({ assigneeId: bob });
    // Everybody has one again; an offline agent is never picked.
    await setAgentStatus(t, tenant, cy, 'offline');
    const next = await getConversation(tenant, await newConversation(tenant));
    expect([tenant.agentId, bob]).toContain(next.assigneeId);
  });

  it('hands the longest-waiting conversation to an agent the moment one is resolved', async () => {
    const tenant = await createTenant(t, { capacity: 1 });
    const first = await newConversation(tenant);
    expect(await getConversation(tenant, first)).toMatchObject({ assigneeId: tenant.agentId, waitingSince: null });
    const waiting = [await newConversation(tenant), await newConversation(tenant), await newConversation(tenant)];
    for (const id of waiting) expect(await getConversation(tenant, id)).toMatchObject({ assigneeId: null, status: 'open' });
    const queued = eventsOfType(await streamEvents(t, tenant.accountId), 'conversation.queued');
    expect(queued.map((e) => [e.subject, e.data.position])).toEqual([[waiting[0], 1], [waiting[1], 2], [waiting[2], 3]]);

    const resolved = await act(tenant, first, 'resolve');
    expect(resolved.status).toBe(200);
    // No polling: the assignment happened in the same step as the resolve.
    expect(await getConversation(tenant, waiting[0]!)).toMatchObject({ assigneeId: tenant.agentId, waitingSince: null });
    expect(await getConversation(tenant, waiting[1]!)).toMatchObject({ assigneeId: null });
    const events = await apiEvents(t, tenant);
    const assigned = eventsOfType(events, 'conversation.assigned');
    expect(assigned.map((e) => e.subject)).toEqual([first, waiting[0]]);
    expect(assigned[1]!.data).toMatchObject({ id: waiting[0], assigneeId: tenant.agentId, status: 'open' });
    const resolvedEvent = eventsOfType(events, 'conversation.resolved')[0]!;
    expect(events.indexOf(resolvedEvent)).toBeLessThan(events.indexOf(assigned[1]!));

    await act(tenant, waiting[0]!, 'resolve');
    expect(await getConversation(tenant, waiting[1]!)).toMatchObject({ assigneeId: tenant.agentId });
    expect(await agentState(t, tenant, tenant.agentId)).toMatchObject({ load: 1, capacity: 1 });
  });

  describe('50 conversations for 3 agents of capacity 2', () => {
    let tenant: Tenant;
    let agents: string[];
    const loads = async () => Promise.all(agents.map(async (id) => (await agentState(t, tenant, id)).load));
    const waitingConversations = async () => (await listAllConversations(t, tenant, { status: 'open' })).filter((c) => !c.assigneeId);

    beforeAll(async () => {
      tenant = await createTenant(t, { capacity: 2 });
      agents = [tenant.agentId, await addAgent(t, tenant, 'Bob', 2), await addAgent(t, tenant, 'Cy', 2)];
      const visitors = Array.from({ length: 50 }, newVisitorId);
      await Promise.all(visitors.map((v) => t.gateway.acceptor.accept(visitorMessage(tenant, v, `${v}/first`))));
      await routed(tenant, 50);
    });

    it('fills every agent to capacity and no further; the rest wait', async () => {
      const events = await streamEvents(t, tenant.accountId);
      const assigned = eventsOfType(events, 'conversation.assigned');
      expect(assigned).toHaveLength(6);
      expect(eventsOfType(events, 'conversation.queued')).toHaveLength(44);
      for (const agentId of agents) expect(assigned.filter((e) => e.data.assigneeId === agentId)).toHaveLength(2);
      expect(await loads()).toEqual([2, 2, 2]);
      const conversations = await listAllConversations(t, tenant);
      expect(conversations).toHaveLength(50);
      for (const agentId of agents) expect(conversations.filter((c) => c.assigneeId === agentId)).toHaveLength(2);
      const waiting = conversations.filter((c) => !c.assigneeId);
      expect(waiting).toHaveLength(44);
      for (const c of waiting) expect(c.waitingSince).toEqual(expect.any(String));
    });

    it('assigns the longest-waiting conversation at once when one is resolved', async () => {
      const waitingBefore = await waitingConversations();
      const earliest = waitingBefore.map((c) => c.waitingSince as string).sort()[0]!;
      const agentsFirst = (await listAllConversations(t, tenant, { assigneeId: agents[0]! }))[0];
      const eventCount = (await apiEvents(t, tenant)).length;

      const resolved = await act(tenant, agentsFirst.id, 'resolve');
      expect(resolved.body).toMatchObject({ status: 'resolved', assigneeId: null });
      const newEvents = (await apiEvents(t, tenant)).slice(eventCount);
      expect(newEvents.map((e) => e.type)).toEqual(['conversation.resolved', 'conversation.assigned']);
      const taken = waitingBefore.find((c) => c.id === newEvents[1]!.subject);
      expect(taken.waitingSince).toBe(earliest);
      expect(await getConversation(tenant, taken.id)).toMatchObject({ assigneeId: agents[0], waitingSince: null });
      expect(await loads()).toEqual([2, 2, 2]);
      expect(await waitingConversations()).toHaveLength(43);
    });

    it('gives an agent who comes online the longest-waiting conversations, up to capacity', async () => {
      const waitingBefore = await waitingConversations();
      const dan = await addAgent(t, tenant, 'Dan', 3, false);
      const state = await setAgentStatus(t, tenant, dan, 'online');
      expect(state).toMatchObject({ status: 'online', capacity: 3, load: 3 });
      const dans = await listAllConversations(t, tenant, { assigneeId: dan });
      expect(dans).toHaveLength(3);
      const stillWaiting = await waitingConversations();
      expect(stillWaiting).toHaveLength(waitingBefore.length - 3);
      const takenSince = dans.map((c) => waitingBefore.find((w) => w.id === c.id).waitingSince as string);
      for (const since of takenSince) for (const c of stillWaiting) expect(since <= c.waitingSince).toBe(true);
      agents.push(dan);
    });

    it('gives more conversations at once when capacity is raised with PATCH, and keeps capacity on other changes', async () => {
      const dan = agents[3]!;
      const waitingBefore = (await waitingConversations()).length;
      const patched = await t.api('PATCH', `/api/v1/accounts/${tenant.accountId}/agents/${dan}`, { key: tenant.apiKey, body: { capacity: 5 } });
      expect(patched.status).toBe(200);
      expect(patched.body.state).toMatchObject({ status: 'online', capacity: 5, load: 5 });
      expect(await listAllConversations(t, tenant, { assigneeId: dan })).toHaveLength(5);
      expect(await waitingConversations()).toHaveLength(waitingBefore - 2);

      // A rename is not a capacity change: Bob keeps 2 and takes nobody from the queue.
      const bob = agents[1]!;
      const stillWaiting = (await waitingConversations()).length;
      const renamed = await t.api('PATCH', `/api/v1/accounts/${tenant.accountId}/agents/${bob}`, { key: tenant.apiKey, body: { name: 'Robert' } });
      expect(renamed.body).toMatchObject({ name: 'Robert', capacity: 2, role: 'agent', state: { capacity: 2, load: 2 } });
      expect(await waitingConversations()).toHaveLength(stillWaiting);
    });

    it('refuses a manual assignment to a full agent unless forced', async () => {
      const [target] = await waitingConversations();
      const refused = await act(tenant, target.id, 'assign', { agentId: agents[1] });
      expect(refused.status).toBe(409);
      expect(refused.body.error.code).toBe('conflict');
      expect(await getConversation(tenant, target.id)).toMatchObject({ assigneeId: null });
      expect(await agentState(t, tenant, agents[1]!)).toMatchObject({ load: 2 });

      const forced = await act(tenant, target.id, 'assign', { agentId: agents[1], force: true });
      expect(forced.status).toBe(200);
      expect(forced.body).toMatchObject({ assigneeId: agents[1], waitingSince: null });
      expect(await agentState(t, tenant, agents[1]!)).toMatchObject({ load: 3, capacity: 2 });
      const assignedEvents = eventsOfType(await apiEvents(t, tenant), 'conversation.assigned').filter((e) => e.subject === target.id);
      expect(assignedEvents.map((e) => e.data.assigneeId)).toEqual([agents[1]]);

      // Over capacity, resolving one brings the agent back to capacity without taking a waiting one.
      const waitingBefore = (await waitingConversations()).length;
      await act(tenant, target.id, 'resolve');
      expect(await agentState(t, tenant, agents[1]!)).toMatchObject({ load: 2 });
      expect(await waitingConversations()).toHaveLength(waitingBefore);
    });

    it('refuses an unknown agent and an unknown conversation', async () => {
      const [target] = await waitingConversations();
      expect((await act(tenant, target.id, 'assign', { agentId: 'agt_nobody' })).status).toBe(400);
      expect((await act(tenant, 'cv_nothing', 'assign', { agentId: agents[0] })).status).toBe(404);
      expect((await act(tenant, 'cv_nothing', 'resolve')).status).toBe(404);
      expect((await act(tenant, 'cv_nothing', 'reopen')).status).toBe(404);
      expect((await act(tenant, 'cv_nothing', 'transfer', { agentId: agents[0] })).status).toBe(404);
    });
  });

  it('transfers to another agent: conversation.transferred, and the previous agent is freed', async () => {
    const tenant = await createTenant(t, { capacity: 1 });
    const first = await newConversation(tenant);
    const second = await newConversation(tenant);
    expect(await getConversation(tenant, second)).toMatchObject({ assigneeId: null });
    const bob = await addAgent(t, tenant, 'Bob', 1, false);

    const transferred = await act(tenant, first, 'transfer', { agentId: bob, note: 'billing question' });
    expect(transferred.status).toBe(200);
    expect(transferred.body).toMatchObject({ id: first, assigneeId: bob });
    // Ann's freed capacity goes at once to the conversation that was waiting.
    expect(await getConversation(tenant, second)).toMatchObject({ assigneeId: tenant.agentId });
    expect(await agentState(t, tenant, tenant.agentId)).toMatchObject({ load: 1 });
    expect(await agentState(t, tenant, bob)).toMatchObject({ load: 1 });

    const events = await apiEvents(t, tenant);
    const transfers = eventsOfType(events, 'conversation.transferred');
    expect(transfers).toHaveLength(1);
    expect(transfers[0]).toMatchObject({ subject: first, data: { assigneeId: bob, previousAssigneeId: tenant.agentId, note: 'billing question' } });
    expect(eventsOfType(events, 'conversation.assigned').map((e) => e.subject)).toEqual([first, second]);

    // Bob is full now: a transfer back to him is refused unless forced; transferring to the assignee changes nothing.
    expect((await act(tenant, second, 'transfer', { agentId: bob })).status).toBe(409);
    const unchanged = await act(tenant, first, 'transfer', { agentId: bob });
    expect(unchanged.status).toBe(200);
    expect(await agentState(t, tenant, bob)).toMatchObject({ load: 1 });
    expect(eventsOfType(await apiEvents(t, tenant), 'conversation.transferred')).toHaveLength(1);

    // With nobody waiting, a transfer simply lowers the previous agent's load.
    const back = await act(tenant, first, 'transfer', { agentId: tenant.agentId, force: true });
    expect(back.body).toMatchObject({ assigneeId: tenant.agentId });
    expect(await agentState(t, tenant, bob)).toMatchObject({ load: 0 });
    expect(await agentState(t, tenant, tenant.agentId)).toMatchObject({ load: 2 });
  });

  it('reopens a resolved conversation and routes it again, unless the contact has another open one', async () => {
    const tenant = await createTenant(t, { capacity: 5 });
    const visitorId = newVisitorId();
    await t.gateway.acceptor.accept(visitorMessage(tenant, visitorId, `${visitorId}/1`));
    const [conversation] = await waitFor(() => listAllConversations(t, tenant), (c) => c.length > 0, 'a conversation');
    await routed(tenant, 1);

    expect((await act(tenant, conversation.id, 'resolve')).body).toMatchObject({ status: 'resolved', assigneeId: null });
    expect(await agentState(t, tenant, tenant.agentId)).toMatchObject({ load: 0 });
    const reopened = await act(tenant, conversation.id, 'reopen');
    expect(reopened.status).toBe(200);
    expect(reopened.body).toMatchObject({ status: 'open', assigneeId: tenant.agentId });
    expect(await agentState(t, tenant, tenant.agentId)).toMatchObject({ load: 1 });
    let events = await apiEvents(t, tenant);
    expect(events.filter((e) => e.subject === conversation.id).map((e) => e.type)).toEqual([
      'conversation.created', 'message.received', 'conversation.assigned', 'conversation.resolved', 'conversation.reopened', 'conversation.assigned',
    ]);
    // Reopening an open conversation changes nothing.
    expect((await act(tenant, conversation.id, 'reopen')).status).toBe(200);
    expect(eventsOfType(await apiEvents(t, tenant), 'conversation.reopened')).toHaveLength(1);

    // Resolved again, then the visitor writes: a new conversation opens, and the old one cannot be reopened beside it.
    await act(tenant, conversation.id, 'resolve');
    await t.gateway.acceptor.accept(visitorMessage(tenant, visitorId, `${visitorId}/2`));
    const conversations = await waitFor(() => listAllConversations(t, tenant), (c) => c.length > 1, 'a second conversation');
    const newer = conversations.find((c) => c.id !== conversation.id);
    const refused = await act(tenant, conversation.id, 'reopen');
    expect(refused.status).toBe(409);
    expect(refused.body.error.message).toContain(newer.id);
    expect(await getConversation(tenant, conversation.id)).toMatchObject({ status: 'resolved' });

    // Once the newer one is resolved too, the old one may be reopened; new messages then go to it.
    await routed(tenant, 3);
    await act(tenant, newer.id, 'resolve');
    expect((await act(tenant, conversation.id, 'reopen')).body).toMatchObject({ status: 'open' });
    const { messageId } = await t.gateway.acceptor.accept(visitorMessage(tenant, visitorId, `${visitorId}/3`));
    const history = await waitFor(async () => (await t.api('GET', `${conversationPath(tenant, conversation.id, 'messages')}`, { key: tenant.apiKey })).body.items,
      (items: any[]) => items.some((m) => m.id === messageId), 'the message in the reopened conversation');
    expect(history.map((m: any) => m.externalId)).toEqual([`${visitorId}/1`, `${visitorId}/3`]);
    events = await apiEvents(t, tenant);
    expect(eventsOfType(events, 'conversation.reopened')).toHaveLength(2);
  });

  it('treats resolving twice as a no-op', async () => {
    const tenant = await createTenant(t, { capacity: 5 });
    const first = await newConversation(tenant);
    const second = await newConversation(tenant);
    expect(await agentState(t, tenant, tenant.agentId)).toMatchObject({ load: 2 });

    const once = await act(tenant, first, 'resolve');
    expect(once.body).toMatchObject({ status: 'resolved', resolvedAt: expect.any(String) });
    const twice = await act(tenant, first, 'resolve');
    expect(twice.status).toBe(200);
    expect(twice.body).toEqual(once.body);
    // The agent's load dropped by one, not two: the other conversation still counts.
    expect(await agentState(t, tenant, tenant.agentId)).toMatchObject({ load: 1 });
    expect(await getConversation(tenant, second)).toMatchObject({ assigneeId: tenant.agentId });
    const resolved = eventsOfType(await apiEvents(t, tenant), 'conversation.resolved');
    expect(resolved).toHaveLength(1);
    expect(resolved[0]!.data).toMatchObject({ status: 'resolved', previousAssigneeId: tenant.agentId });

    // Assigning or replying to a resolved conversation is a conflict.
    expect((await act(tenant, first, 'assign', { agentId: tenant.agentId })).status).toBe(409);
  });
});

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../support/testGateway.ts';
import { RoutingFixture } from './support.ts';

describe('routing strategies, fairness and the waiting order', () => {
  let t: TestGateway;
  beforeAll(async () => { t = await startTestGateway(); });
  afterAll(() => t.stop());

  /** A tenant whose conversations all go to one new team of `size` online agents. */
  async function teamOf(strategy: string, size: number, capacity: number) {
    const f = await RoutingFixture.create(t);
    const agents: string[] = [];
    for (let i = 0; i < size; i++) agents.push((await f.agent(`Agent ${i}`, capacity)).id);
    const teamId = await f.team({ name: strategy, agentIds: agents, strategy });
    await f.routing({ fallback: { targets: [{ teamId }] } });
    return { f, agents, teamId };
  }

  it('least busy keeps every agent within one conversation of the others', async () => {
    const { f, agents } = await teamOf('least_busy', 4, 10);
    const conversations: string[] = [];
    for (let i = 0; i < 22; i++) {
      conversations.push(await f.newConversation());
      const loads = await Promise.all(agents.map(async (a) => (await f.state(a)).load));
      expect(Math.max(...loads) - Math.min(...loads), `loads ${loads} after ${i + 1}`).toBeLessThanOrEqual(1);
    }
    // Resolving two of one agent's conversations makes it the least busy: the next one is its.
    const [first] = agents;
    const held = (await f.assignees(conversations)).map((a, i) => [a, conversations[i]] as const).filter(([a]) => a === first).map(([, id]) => id);
    for (const id of held.slice(0, 2)) await f.ok('POST', `/conversations/${id}/resolve`);
    expect(await f.assignees([await f.newConversation()])).toEqual([first]);
    const loads = await Promise.all(agents.map(async (a) => (await f.state(a)).load));
    expect(Math.max(...loads) - Math.min(...loads)).toBeLessThanOrEqual(1);
  });

  it('round robin gives each agent a turn in rotation', async () => {
    const { f, agents } = await teamOf('round_robin', 3, 100);
    const order = await f.assignees(await Array.from({ length: 9 }).reduce<Promise<string[]>>(
      async (all) => [...(await all), await f.newConversation()], Promise.resolve([])));
    const rounds = [order.slice(0, 3), order.slice(3, 6), order.slice(6, 9)];
    for (const round of rounds) expect(new Set(round)).toEqual(new Set(agents));
    // The same rotation every round, even though earlier agents are busier.
    expect(rounds[1]).toEqual(rounds[0]);
    expect(rounds[2]).toEqual(rounds[0]);
  });

  it('longest idle picks the agent whose last assignment is the oldest', async () => {
    const { f, agents } = await teamOf('longest_idle', 3, 100);
    const firstRound = await f.assignees([await f.newConversation(), await f.newConversation(), await f.newConversation()]);
    expect(new Set(firstRound)).toEqual(new Set(agents));
    // The first of them gets one by hand: now the second has been idle longest, then the third.
    const [x, y, z] = firstRound as string[];
    const manual = await f.newConversation();
    const holder = (await f.conversation(manual)).assigneeId;
    expect(holder).toBe(x);
    const extra = await f.newConversation();
    expect((await f.conversation(extra)).assigneeId).toBe(y);
    await f.ok('POST', `/conversations/${extra}/transfer`, { agentId: x });
    expect(await f.assignees([await f.newConversation(), await f.newConversation()])).toEqual([z, y]);
  });

  it('freeing capacity assigns the highest-priority, longest-waiting conversation next, in the same step', async () => {
    const f = await RoutingFixture.create(t);
    const solo = (await f.agent('Solo', 1)).id;
    const teamId = await f.team({ name: 'Solo team', agentIds: [solo] });
    await f.routing({
      rules: [{ name: 'urgent', when: { keywords: ['urgent'] }, targets: [{ teamId }], priority: 50 }],
      fallback: { targets: [{ teamId }] },
    });
    const busy = await f.newConversation('hello');
    const waiting = [];
    for (const text of ['first normal', 'URGENT one', 'second normal', 'urgent two']) waiting.push(await f.newConversation(text));
    const [normal1, urgent1, normal2, urgent2] = waiting as [string, string, string, string];
    const queued = (await f.events()).filter((e) => e.type === 'conversation.queued');
    expect(queued.map((e) => [e.subject, e.data.priority, e.data.teamId])).toEqual([
      [normal1, 0, teamId], [urgent1, 50, teamId], [normal2, 0, teamId], [urgent2, 50, teamId],
    ]);
    // Positions as each one joined: the urgent ones went ahead of the normal ones.
    expect(queued.map((e) => e.data.position)).toEqual([1, 1, 3, 2]);
    expect(await f.ok('GET', `/conversations/${normal1}/queue`)).toMatchObject({ teamId, position: 3 });

    const order: string[] = [];
    let current = busy;
    for (let i = 0; i < 4; i++) {
      const eventsBefore = (await f.events()).length;
      await f.ok('POST', `/conversations/${current}/resolve`);
      // No polling: the next assignment is already there when the resolve answers, right after it.
      const after = (await f.events()).slice(eventsBefore);
      expect(after.map((e) => e.type)).toEqual(['conversation.resolved', 'conversation.assigned']);
      expect(after[1]!.data).toMatchObject({ assigneeId: solo, agent: { id: solo, load: 1, capacity: 1 } });
      current = after[1]!.subject!;
      order.push(current);
    }
    expect(order).toEqual([urgent1, urgent2, normal1, normal2]);
  });

  it('holds capacity per channel: a chat capacity of 1 overrides the default of 5', async () => {
    const f = await RoutingFixture.create(t);
    const agent = await f.agent('Per channel', 5, { capacities: { webchat: 1, email: 20 } });
    expect(await f.state(agent.id)).toMatchObject({ capacity: 5, capacities: { webchat: 1, email: 20, sms: 5, wechat: 5 } });
    const first = await f.newConversation();
    const second = await f.newConversation();
    expect(await f.assignees([first, second])).toEqual([agent.id, null]);
    await f.ok('PATCH', `/agents/${agent.id}`, { capacities: { webchat: 2 } });
    expect(await f.assignees([second])).toEqual([agent.id]);
    expect(await f.state(agent.id)).toMatchObject({ load: 2, loads: { webchat: 2 } });
  });

  it('manual queues wait for an agent to take the next conversation', async () => {
    const f = await RoutingFixture.create(t);
    const picker = await f.agent('Picker', 2);
    const teamId = await f.team({ name: 'Pick list', agentIds: [picker.id], strategy: 'manual' });
    await f.routing({ fallback: { targets: [{ teamId }] } });
    const a = await f.newConversation();
    const b = await f.newConversation();
    expect(await f.assignees([a, b])).toEqual([null, null]);
    const outsider = await f.agent('Outsider', 2);
    expect((await f.call('POST', `/queues/${teamId}/take`, undefined, outsider.token)).status).toBe(404);
    expect(await f.ok('POST', `/queues/${teamId}/take`, undefined, picker.token)).toEqual({ conversationId: a });
    expect(await f.ok('POST', `/queues/${teamId}/take`, undefined, picker.token)).toEqual({ conversationId: b });
    // Full for chats: a third chat waits even when taken for.
    const c = await f.newConversation();
    expect(await f.ok('POST', `/queues/${teamId}/take`, undefined, picker.token)).toEqual({ conversationId: null });
    expect(await f.assignees([c])).toEqual([null]);
    expect((await f.call('POST', `/queues/${teamId}/take`)).status).toBe(403);
  });

  it('shows supervisors the queues and the agents, and lets only them force an assignment', async () => {
    const f = await RoutingFixture.create(t);
    const worker = await f.agent('Worker', 1);
    const boss = await f.agent('Boss', 0, { role: 'supervisor' });
    const teamId = await f.team({ name: 'Front', agentIds: [worker.id] });
    await f.routing({ fallback: { targets: [{ teamId }] } });
    await f.newConversation();
    const waiting = [await f.newConversation(), await f.newConversation()];
    const queues = (await f.ok('GET', '/supervisor/queues', undefined, boss.token)).items;
    expect(queues.find((q: { id: string }) => q.id === teamId)).toMatchObject({
      name: 'Front', waiting: 2, waitingByChannel: { webchat: 2 }, members: 1, membersOnline: 1, strategy: 'least_busy',
    });
    expect(queues.find((q: { id: string }) => q.id === teamId).oldestWaitSeconds).toBeGreaterThanOrEqual(0);
    expect((await f.call('GET', '/supervisor/queues', undefined, worker.token)).status).toBe(403);
    const agents = (await f.ok('GET', '/supervisor/agents', undefined, boss.token)).items;
    expect(agents.find((a: { id: string }) => a.id === worker.id).state).toMatchObject({ status: 'online', load: 1, queues: ['default', teamId].sort() });

    expect((await f.call('POST', `/conversations/${waiting[0]}/assign`, { agentId: worker.id }, boss.token)).status).toBe(409);
    expect((await f.call('POST', `/conversations/${waiting[0]}/assign`, { agentId: worker.id, force: true }, worker.token)).status).toBe(403);
    expect(await f.ok('POST', `/conversations/${waiting[0]}/assign`, { agentId: worker.id, force: true }, boss.token)).toMatchObject({ assigneeId: worker.id });
    expect(await f.state(worker.id)).toMatchObject({ load: 2, capacity: 1 });
    // A supervisor sets an agent's status.
    expect(await f.ok('PUT', `/agents/${worker.id}/status`, { status: 'busy' }, boss.token)).toMatchObject({ status: 'busy' });
    const changed = (await f.events()).filter((e) => e.type === 'agent.status_changed' && e.subject === worker.id).at(-1);
    expect(changed!.data).toMatchObject({ status: 'busy', previousStatus: 'online' });
  });

  it('hands a removed agent\'s conversations back to the queue and on to another agent', async () => {
    const f = await RoutingFixture.create(t);
    const leaving = await f.agent('Leaving', 2);
    const conversations = [await f.newConversation(), await f.newConversation()];
    expect(await f.assignees(conversations)).toEqual([leaving.id, leaving.id]);
    const staying = await f.agent('Staying', 1);
    await f.ok('DELETE', `/agents/${leaving.id}`);
    const after = await f.assignees(conversations);
    expect(after.filter((a) => a === staying.id)).toHaveLength(1);
    expect(after.filter((a) => a === null)).toHaveLength(1);
    // Both name the agent they came from: the one placed in its conversation.assigned, the other in its conversation.queued.
    const taken = conversations[after.indexOf(staying.id)]!;
    const left = conversations[after.indexOf(null)]!;
    expect((await f.eventsOf(taken, 'conversation.assigned')).at(-1)!.data).toMatchObject({ assigneeId: staying.id, previousAssigneeId: leaving.id });
    expect((await f.eventsOf(left, 'conversation.queued')).at(-1)!.data).toMatchObject({ previousAssigneeId: leaving.id });
  });

  it('tells the agent who handed a conversation back once, however often it is queued again before someone takes it', async () => {
    const f = await RoutingFixture.create(t);
    const leaving = await f.agent('Leaving', 1);
    const conversation = await f.newConversation();
    expect(await f.assignees([conversation])).toEqual([leaving.id]);
    await f.ok('DELETE', `/agents/${leaving.id}`);
    // No one has room: it waits, and a transfer into the default queue queues it again.
    await f.ok('POST', `/conversations/${conversation}/transfer`, { teamId: 'default', note: 'still waiting' });
    const queued = await f.eventsOf(conversation, 'conversation.queued');
    expect(queued.map((e) => (e.data as { previousAssigneeId?: string }).previousAssigneeId)).toEqual([leaving.id, leaving.id]);
    const { redis, keys } = t.gateway;
    const told = (await redis.xrange(`${keys.prefix}:live`, '-', '+'))
      .map(([, fields]) => ({ agentId: fields[fields.indexOf('a') + 1], event: JSON.parse(fields[fields.indexOf('e') + 1]!) as { type: string; subject: string } }))
      .filter((entry) => entry.agentId === leaving.id && entry.event.subject === conversation && entry.event.type === 'conversation.queued');
    expect(told).toHaveLength(1);
  });

  it('gives a conversation handed back by a removed agent its place in line ahead of customers who came later', async () => {
    const f = await RoutingFixture.create(t);
    const leaving = await f.agent('Leaving', 1);
    const held = await f.newConversation('I was here first');
    expect(await f.assignees([held])).toEqual([leaving.id]);
    const later = await f.newConversation('I came later');
    expect(await f.assignees([later])).toEqual([null]);
    const staying = await f.agent('Staying', 1, { online: false });
    await f.ok('DELETE', `/agents/${leaving.id}`);
    expect(await f.assignees([held, later])).toEqual([null, null]);
    // One place free: the customer who has waited longest gets it, not the one who came after.
    await f.status(staying.id, 'online');
    expect(await f.assignees([held, later])).toEqual([staying.id, null]);
    // And once it is placed again, its old place is not kept for a later hand-back.
    await f.ok('POST', `/conversations/${held}/resolve`);
    expect(await f.assignees([later])).toEqual([staying.id]);
  });
});

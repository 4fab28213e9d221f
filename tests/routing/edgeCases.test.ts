// The paths a review found: outsiders in a team's conversations, round robin with offers, overflow
// while offered, a team deleted under its conversations, transfers back to the sender, agents who
// step away with an offer pending, and patterns that would backtrack forever.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { matchRule, routingRuleSchema } from '../../src/routing/routingRules.ts';
import { waitFor } from '../support/coreFixtures.ts';
import { startTestGateway, type TestGateway } from '../support/testGateway.ts';
import { RoutingFixture } from './support.ts';

describe('routing edge cases', () => {
  let t: TestGateway;
  beforeAll(async () => { t = await startTestGateway(); });
  afterAll(() => t.stop());

  const queueOf = (f: RoutingFixture, id: string) => f.ok('GET', `/conversations/${id}/queue`);

  it('never enrols an outsider who holds one of a team\'s conversations in that team\'s rotation', async () => {
    const f = await RoutingFixture.create(t);
    const member = await f.agent('Member', 1);
    const outsider = await f.agent('Outsider', 1);
    const teamId = await f.team({ name: 'RR', agentIds: [member.id], strategy: 'round_robin' });
    await f.routing({ fallback: { targets: [{ teamId }] } });
    const first = await f.newConversation();
    expect(await f.assignees([first])).toEqual([member.id]);
    // A supervisor moves it to the outsider, who then is full.
    await f.ok('POST', `/conversations/${first}/transfer`, { agentId: outsider.id });
    const second = await f.newConversation();
    expect(await f.assignees([second])).toEqual([member.id]);
    const third = await f.newConversation();
    expect(await f.assignees([third])).toEqual([null]);
    expect(await f.state(outsider.id)).toMatchObject({ load: 1, capacity: 1 });
    expect(await t.gateway.redis.zrange(t.gateway.keys.routingQueue(f.tenant.accountId, teamId, 'avail:webchat'), '0', '-1')).toEqual([]);
  });

  it('rotates round robin on offers too', async () => {
    const f = await RoutingFixture.create(t);
    const agents = [(await f.agent('A', 5)).id, (await f.agent('B', 5)).id, (await f.agent('C', 5)).id];
    const teamId = await f.team({ name: 'RR offers', agentIds: agents, strategy: 'round_robin', offerTimeoutSeconds: 60 });
    await f.routing({ fallback: { targets: [{ teamId }] } });
    const offeredTo: string[] = [];
    for (let i = 0; i < 6; i++) offeredTo.push((await queueOf(f, await f.newConversation())).offeredTo);
    expect(new Set(offeredTo.slice(0, 3))).toEqual(new Set(agents));
    expect(offeredTo.slice(3)).toEqual(offeredTo.slice(0, 3));
  });

  it('overflows on time even while team A keeps offering it around', async () => {
    const f = await RoutingFixture.create(t);
    const a1 = await f.agent('A1', 2);
    const a2 = await f.agent('A2', 2);
    const b1 = await f.agent('B1', 2);
    const teamA = await f.team({ name: 'A', agentIds: [a1.id, a2.id], offerTimeoutSeconds: 5 });
    const teamB = await f.team({ name: 'B', agentIds: [b1.id] });
    await f.routing({ fallback: { targets: [{ teamId: teamA, timeoutSeconds: 2 }, { teamId: teamB }] } });
    const id = await f.newConversation();
    expect([a1.id, a2.id]).toContain((await queueOf(f, id)).offeredTo);
    await waitFor(() => f.conversation(id), (c) => c.assigneeId === b1.id, 'the overflow to B', 6000);
    // The withdrawn offer freed its agent.
    expect((await f.state(a1.id)).load + (await f.state(a2.id)).load).toBe(0);
  });

  it('sends a deleted team\'s conversations on to the default queue, even one on offer at the time', async () => {
    const f = await RoutingFixture.create(t);
    const member = await f.agent('Member', 1);
    const teamId = await f.team({ name: 'Going away', agentIds: [member.id], offerTimeoutSeconds: 60 });
    await f.routing({ fallback: { targets: [{ teamId }] } });
    const id = await f.newConversation();
    expect((await queueOf(f, id)).offeredTo).toBe(member.id);
    await f.routing({});
    await f.ok('DELETE', `/teams/${teamId}`);
    const other = await f.agent('Other', 1);
    await f.ok('POST', `/conversations/${id}/decline`, { agentId: member.id });
    expect(await f.assignees([id])).toEqual([other.id]);
  });

  it('does not hand a conversation straight back to the agent who transferred it to a team', async () => {
    const f = await RoutingFixture.create(t);
    const a = await f.agent('A', 3);
    const b = await f.agent('B', 3);
    const teamId = await f.team({ name: 'Both', agentIds: [a.id, b.id] });
    await f.routing({ fallback: { targets: [{ teamId }] } });
    const id = await f.newConversation();
    const holder = (await f.conversation(id)).assigneeId;
    const other = holder === a.id ? b.id : a.id;
    // The holder is the least busy afterwards, and still it goes to the other one.
    await f.ok('POST', `/conversations/${await f.newConversation()}/transfer`, { agentId: other });
    expect(await f.ok('POST', `/conversations/${id}/transfer`, { teamId })).toMatchObject({ assigneeId: other });
  });

  it('moves a pending offer on when its agent steps away', async () => {
    const f = await RoutingFixture.create(t);
    const x = await f.agent('X', 1);
    const teamId = await f.team({ name: 'Offers', agentIds: [x.id], offerTimeoutSeconds: 60 });
    await f.routing({ fallback: { targets: [{ teamId }] } });
    const id = await f.newConversation();
    expect((await queueOf(f, id)).offeredTo).toBe(x.id);
    const y = await f.agent('Y', 1);
    await f.ok('PATCH', `/teams/${teamId}`, { agentIds: [x.id, y.id] });
    await f.status(x.id, 'away');
    expect(await queueOf(f, id)).toMatchObject({ offeredTo: y.id });
    expect(await f.state(x.id)).toMatchObject({ load: 0 });
    // A repeated accept (lost answer) is not an error.
    await f.ok('POST', `/conversations/${id}/accept`, undefined, y.token);
    expect(await f.ok('POST', `/conversations/${id}/accept`, undefined, y.token)).toMatchObject({ assigneeId: y.id });
  });

  it('matches patterns with RE2: a pattern that backtracks forever elsewhere simply answers', () => {
    // A backtracking engine would not finish this in the life of the test run (2^1999 paths).
    const rule = routingRuleSchema.parse({ name: 'bomb', when: { pattern: '^(a|a)+$' }, targets: [{ teamId: 'default' }] });
    const matched = matchRule([rule], { inboxId: 'i', channel: 'webchat', contactAttributes: {}, text: `${'a'.repeat(1999)}b`, now: new Date() }, new Map());
    expect(matched).toBeUndefined();
    expect(() => routingRuleSchema.parse({ name: 'lookbehind', when: { pattern: '(?<=a)b' }, targets: [{ teamId: 'default' }] })).toThrow(/RE2/);
  });
});

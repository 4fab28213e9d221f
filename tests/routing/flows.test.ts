import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isOpen, businessHoursSchema } from '../../src/routing/routingRules.ts';
import { newVisitorId, waitFor } from '../support/coreFixtures.ts';
import { startTestGateway, TestSocket, wsUrl, type TestGateway } from '../support/testGateway.ts';
import { RoutingFixture } from './support.ts';

describe('routing flows: overflow, business hours, offers, transfer, sticky, reopen, auto-away', () => {
  let t: TestGateway;
  beforeAll(async () => { t = await startTestGateway(); });
  afterAll(() => t.stop());

  it('overflows to team B when team A does not answer within 2 s, keeping the wait', async () => {
    const f = await RoutingFixture.create(t);
    const a1 = await f.agent('A1', 1);
    const b1 = await f.agent('B1', 3);
    const teamA = await f.team({ name: 'A', agentIds: [a1.id] });
    const teamB = await f.team({ name: 'B', agentIds: [b1.id] });
    await f.routing({ fallback: { targets: [{ teamId: teamA, timeoutSeconds: 2 }, { teamId: teamB }] } });
    const first = await f.newConversation();
    expect(await f.assignees([first])).toEqual([a1.id]);
    const started = Date.now();
    const second = await f.newConversation();
    expect(await f.conversation(second)).toMatchObject({ assigneeId: null, teamId: teamA });
    const assigned = await waitFor(() => f.eventsOf(second, 'conversation.assigned'), (e) => e.length > 0, 'the overflow', 10_000);
    const waited = Date.now() - started;
    expect(waited).toBeGreaterThanOrEqual(1900);
    expect(assigned[0]!.data).toMatchObject({ assigneeId: b1.id, teamId: teamB });
    const queued = await f.eventsOf(second, 'conversation.queued');
    expect(queued.map((e) => e.data.teamId)).toEqual([teamA]);
    expect(await f.conversation(second)).toMatchObject({ assigneeId: b1.id, teamId: teamB, waitingSince: null });
  });

  it('sends off-hours conversations to the off-hours target by business hours and holidays', async () => {
    const f = await RoutingFixture.create(t);
    const day = await f.agent('Day', 5);
    const night = await f.agent('Night', 5);
    const closedAlways = { timezone: 'Asia/Shanghai', weekly: {} };
    const dayTeam = await f.team({ name: 'Day shift', agentIds: [day.id], businessHours: closedAlways });
    const nightTeam = await f.team({ name: 'Night shift', agentIds: [night.id] });
    await f.routing({
      rules: [{ name: 'off hours', when: { businessHours: { teamId: dayTeam, open: false } }, targets: [{ teamId: nightTeam }] }],
      fallback: { targets: [{ teamId: dayTeam }] },
    });
    expect(await f.assignees([await f.newConversation()])).toEqual([night.id]);
    const allDay = [{ from: '00:00', to: '24:00' }];
    await f.ok('PATCH', `/teams/${dayTeam}`, {
      businessHours: { timezone: 'Asia/Shanghai', weekly: { sun: allDay, mon: allDay, tue: allDay, wed: allDay, thu: allDay, fri: allDay, sat: allDay } },
    });
    expect(await f.assignees([await f.newConversation()])).toEqual([day.id]);

    // The clock itself: Shanghai is UTC+8; a holiday closes the whole day.
    const hours = businessHoursSchema.parse({ timezone: 'Asia/Shanghai', weekly: { mon: [{ from: '09:00', to: '18:00' }] }, holidays: ['2026-10-05'] });
    expect(isOpen(hours, new Date('2026-11-23T01:00:00Z'))).toBe(true); // Monday 09:00 in Shanghai
    expect(isOpen(hours, new Date('2026-11-23T00:59:00Z'))).toBe(false); // 08:59
    expect(isOpen(hours, new Date('2026-11-23T10:00:00Z'))).toBe(false); // 18:00, closed
    expect(isOpen(hours, new Date('2026-11-22T16:00:00Z'))).toBe(false); // Monday 00:00 local, before opening
    expect(isOpen(hours, new Date('2026-10-05T02:00:00Z'))).toBe(false); // a Monday, but a holiday
  });

  it('offers to one agent at a time: a timeout or a decline moves the offer on, the customer keeps their place', async () => {
    const f = await RoutingFixture.create(t);
    const x = await f.agent('X', 1);
    const y = await f.agent('Y', 1);
    const teamId = await f.team({ name: 'Acceptance', agentIds: [x.id, y.id], offerTimeoutSeconds: 1 });
    await f.routing({ fallback: { targets: [{ teamId }] } });
    const sockets = { [x.id]: await TestSocket.open(wsUrl(t.url, `/api/v1/agent/ws?token=${x.token}`)), [y.id]: await TestSocket.open(wsUrl(t.url, `/api/v1/agent/ws?token=${y.token}`)) };
    try {
      for (const s of Object.values(sockets)) await s.next((m) => m.type === 'hello');
      const conversation = await f.newConversation('offer me');
      const firstOffer = (await f.ok('GET', `/conversations/${conversation}/queue`)).offeredTo as string;
      const other = firstOffer === x.id ? y.id : x.id;
      const offered = await sockets[firstOffer]!.next((m) => m.type === 'event' && m.event.type === 'conversation.offered');
      expect(offered.event.data).toMatchObject({ id: conversation, offeredTo: firstOffer });
      expect(offered.messages.map((m: { content: { text: string } }) => m.content.text)).toEqual(['offer me']);
      // Another conversation arrives meanwhile: it waits behind the one on offer.
      const later = await f.newConversation('me too');
      expect((await f.ok('GET', `/conversations/${later}/queue`)).offeredTo).toBe(other);

      // The first agent lets the offer expire: it goes back to the head of the queue, then to the first agent free.
      await sockets[other]!.next((m) => m.type === 'event' && m.event.type === 'conversation.offered' && m.event.subject === later);
      sockets[other]!.send({ type: 'decline', conversationId: later });
      await sockets[other]!.next((m) => m.type === 'declined');
      // Declined by `other`, and `firstOffer` still holds an offer: `later` waits, first in line after the one on offer.
      expect(await f.ok('GET', `/conversations/${later}/queue`)).toMatchObject({ position: 1, offeredTo: null });
      const moved = await waitFor(() => f.ok('GET', `/conversations/${conversation}/queue`), (q) => q.offeredTo === other, 'the offer to move on', 5000);
      expect(moved.offeredTo).toBe(other);
      const accepted = await f.ok('POST', `/conversations/${conversation}/accept`, undefined, other === x.id ? x.token : y.token);
      expect(accepted).toMatchObject({ assigneeId: other });
      const assigned = await f.eventsOf(conversation, 'conversation.assigned');
      expect(assigned).toHaveLength(1);
      expect(assigned[0]!.data).toMatchObject({ assigneeId: other, agent: { id: other, load: 1, capacity: 1 } });
      // The one who let its offer expire has room again and is offered `later`, which it never declined.
      await waitFor(() => f.ok('GET', `/conversations/${later}/queue`), (q) => q.offeredTo === firstOffer, 'the second offer', 5000);
      expect((await f.call('POST', `/conversations/${later}/accept`, undefined, other === x.id ? x.token : y.token)).status).toBe(409);
      expect(await f.ok('POST', `/conversations/${later}/accept`, { agentId: firstOffer })).toMatchObject({ assigneeId: firstOffer });
      expect(await f.state(x.id)).toMatchObject({ load: 1 });
      expect(await f.state(y.id)).toMatchObject({ load: 1 });
    } finally {
      for (const s of Object.values(sockets)) s.close();
    }
  });

  it('transfers to a team with a note: the agent is freed and takes the next waiting conversation', async () => {
    const f = await RoutingFixture.create(t);
    const first = await f.agent('First line', 1);
    const expert = await f.agent('Expert', 2);
    const firstLine = await f.team({ name: 'First line', agentIds: [first.id] });
    const experts = await f.team({ name: 'Experts', agentIds: [expert.id] });
    await f.routing({ fallback: { targets: [{ teamId: firstLine }] } });
    const hard = await f.newConversation('a hard question');
    const next = await f.newConversation('an easy one');
    expect(await f.assignees([hard, next])).toEqual([first.id, null]);
    const transferred = await f.ok('POST', `/conversations/${hard}/transfer`, { teamId: experts, note: 'needs a refund decision' }, first.token);
    expect(transferred).toMatchObject({ assigneeId: expert.id, teamId: experts });
    const events = await f.eventsOf(hard, 'conversation.transferred', 'conversation.assigned');
    expect(events.map((e) => e.type)).toEqual(['conversation.assigned', 'conversation.transferred', 'conversation.assigned']);
    expect(events[1]!.data).toMatchObject({ previousAssigneeId: first.id, previousTeamId: firstLine, teamId: experts, note: 'needs a refund decision' });
    expect(await f.assignees([next])).toEqual([first.id]);
    // To an agent, with a note, and the bad cases.
    expect(await f.ok('POST', `/conversations/${next}/transfer`, { agentId: expert.id, note: 'yours' })).toMatchObject({ assigneeId: expert.id });
    expect((await f.call('POST', `/conversations/${next}/transfer`, { teamId: 'team_nope' })).status).toBe(400);
    expect((await f.call('POST', `/conversations/${next}/transfer`, { teamId: experts, agentId: expert.id })).status).toBe(400);
    expect((await f.call('POST', `/conversations/${next}/transfer`, { agentId: first.id })).status).toBe(200);
  });

  it('prefers the contact\'s last agent within the sticky window', async () => {
    const f = await RoutingFixture.create(t);
    const kept = await f.agent('Kept', 5);
    const other = await f.agent('Other', 5);
    await f.routing({ stickyWindowMinutes: 60 });
    const visitor = newVisitorId();
    const first = await f.message(visitor, 'hello');
    const owner = (await f.conversation(first)).assigneeId as string;
    const otherId = owner === kept.id ? other.id : kept.id;
    // The owner gets much busier than the other agent, then the visitor's conversation ends and they come back.
    for (let i = 0; i < 2; i++) await f.ok('POST', `/conversations/${await f.newConversation()}/transfer`, { agentId: owner });
    await f.ok('POST', `/conversations/${first}/resolve`);
    expect((await f.state(owner)).load).toBeGreaterThan((await f.state(otherId)).load);
    const second = await f.message(visitor, 'me again');
    expect(second).not.toBe(first);
    expect((await f.conversation(second)).assigneeId).toBe(owner);
    // Without the window, least busy decides.
    await f.routing({ stickyWindowMinutes: 0 });
    await f.ok('POST', `/conversations/${second}/resolve`);
    expect((await f.conversation(await f.message(visitor, 'and again'))).assigneeId).toBe(otherId);
  });

  it('reopens a resolved conversation on a new message within the reopen window, else starts a new one', async () => {
    const f = await RoutingFixture.create(t);
    await f.agent('Agent', 5);
    await f.routing({ reopenWindowMinutes: 30 });
    const visitor = newVisitorId();
    const first = await f.message(visitor, 'hello');
    await f.ok('POST', `/conversations/${first}/resolve`);
    const again = await f.message(visitor, 'one more thing');
    expect(again).toBe(first);
    expect(await f.conversation(first)).toMatchObject({ status: 'open', resolvedAt: null });
    expect((await f.eventsOf(first, 'conversation.reopened')).length).toBe(1);
    expect((await f.eventsOf(first, 'conversation.assigned')).length).toBe(2);
    await f.routing({ reopenWindowMinutes: 0 });
    await f.ok('POST', `/conversations/${first}/resolve`);
    expect(await f.message(visitor, 'new topic')).not.toBe(first);
  });

  it('tells the waiting visitor their place in line, and when an agent has them', async () => {
    const f = await RoutingFixture.create(t);
    const visitor = await TestSocket.open(wsUrl(t.url, `/webchat/${f.tenant.inboxId}/ws`));
    try {
      visitor.send({ type: 'hello', name: 'Vic' });
      await visitor.next((m) => m.type === 'welcome');
      visitor.send({ type: 'message', clientMessageId: 'c1', text: 'anyone there?' });
      expect(await visitor.next((m) => m.type === 'queue')).toEqual({ type: 'queue', position: 1, estimatedWaitSeconds: null });
      await f.status(f.tenant.agentId, 'online');
      expect(await visitor.next((m) => m.type === 'queue')).toEqual({ type: 'queue', position: null, estimatedWaitSeconds: null });
    } finally {
      visitor.close();
    }
  });

  it('sets an inactive agent away after its auto-away period, with an event', async () => {
    const f = await RoutingFixture.create(t);
    const sleepy = await f.agent('Sleepy', 2, { autoAwaySeconds: 30 });
    expect((await f.call('PATCH', `/agents/${sleepy.id}`, { autoAwaySeconds: 5 })).status).toBe(400);
    // Half a minute passes without a frame from the agent (the clock is moved, not waited for).
    const { redis, keys } = t.gateway;
    await redis.hset(keys.agentState(sleepy.id), 'lastActivityMs', Date.now() - 31_000);
    expect(await redis.zscore(keys.routingTimers, `away|${sleepy.id}`)).not.toBeNull();
    await redis.zadd(keys.routingTimers, Date.now(), `away|${sleepy.id}`);
    const changed = await waitFor(() => f.events(), (e) => e.some((x) => x.type === 'agent.status_changed' && x.subject === sleepy.id && x.data.status === 'away'), 'auto-away', 6000);
    expect(changed.filter((e) => e.type === 'agent.status_changed' && e.subject === sleepy.id).at(-1)!.data)
      .toMatchObject({ status: 'away', previousStatus: 'online', reason: 'inactive' });
    // Away takes no new conversations.
    expect(await f.assignees([await f.newConversation()])).toEqual([null]);
    // An agent who was active recently is left online: the timer moves to its new deadline.
    const busy = await f.agent('Busy', 2, { autoAwaySeconds: 30 });
    await redis.zadd(keys.routingTimers, Date.now(), `away|${busy.id}`);
    await waitFor(() => redis.zscore(keys.routingTimers, `away|${busy.id}`), (score) => Number(score) > Date.now() + 20_000, 'the timer pushed back', 6000);
    expect(await f.state(busy.id)).toMatchObject({ status: 'online' });
  });

  it('refuses bad routing settings, teams and agents with a clear 400, changing nothing', async () => {
    const f = await RoutingFixture.create(t);
    const teamId = await f.team({ name: 'Real' });
    const hoursless = await f.team({ name: 'No hours' });
    const good = { rules: [{ name: 'vip', when: { contactAttributes: { vip: true } }, targets: [{ teamId }], priority: 10 }] };
    await f.routing(good);
    const bad: [string, unknown, RegExp][] = [
      ['unknown team', { rules: [{ name: 'x', targets: [{ teamId: 'team_missing' }] }] }, /unknown team team_missing/],
      ['cycle', { rules: [{ name: 'x', targets: [{ teamId, timeoutSeconds: 5 }, { teamId: hoursless, timeoutSeconds: 5 }, { teamId }] }] }, /appears twice/],
      ['fallback cycle', { fallback: { targets: [{ teamId: 'default', timeoutSeconds: 5 }, { teamId: 'default' }] } }, /appears twice/],
      ['bad regex', { rules: [{ name: 'x', when: { pattern: '(' }, targets: [{ teamId }] }] }, /regular expression/],
      ['hours of a team without hours', { rules: [{ name: 'x', when: { businessHours: { teamId: hoursless, open: false } }, targets: [{ teamId }] }] }, /has no businessHours/],
      ['negative timeout', { rules: [{ name: 'x', targets: [{ teamId, timeoutSeconds: -1 }] }] }, /timeoutSeconds/],
      ['priority out of range', { rules: [{ name: 'x', targets: [{ teamId }], priority: 101 }] }, /priority/],
      ['unknown condition', { rules: [{ name: 'x', when: { moonPhase: 'full' }, targets: [{ teamId }] }] }, /moonPhase|unrecognized/i],
      ['unknown strategy', { strategy: 'random' }, /strategy/],
    ];
    for (const [what, body, message] of bad) {
      const r = await f.call('PUT', '/routing', body);
      expect(r.status, what).toBe(400);
      expect(JSON.stringify(r.body.error), what).toMatch(message);
    }
    expect(await f.ok('GET', '/routing')).toMatchObject(good);

    expect((await f.call('POST', '/agents', { name: 'Neg', capacity: -1 })).status).toBe(400);
    expect((await f.call('POST', '/agents', { name: 'Neg', capacity: 2, capacities: { email: -5 } })).status).toBe(400);
    expect((await f.call('POST', '/agents', { name: 'Neg', capacity: 2, capacities: { fax: 1 } })).status).toBe(400);
    const agent = await f.agent('Fine', 2);
    expect((await f.call('PATCH', `/agents/${agent.id}`, { capacity: -3 })).status).toBe(400);
    expect(await f.state(agent.id)).toMatchObject({ capacity: 2 });
    expect((await f.call('POST', '/teams', { name: 'Bad', offerTimeoutSeconds: -1 })).status).toBe(400);
    expect((await f.call('POST', '/teams', { name: 'Bad', strategy: 'whoever' })).status).toBe(400);
    expect((await f.call('POST', '/teams', { name: 'Bad', agentIds: ['agt_nobody'] })).status).toBe(400);
    expect((await f.call('POST', '/teams', { name: 'Bad', businessHours: { timezone: 'Mars/Olympus', weekly: {} } })).status).toBe(400);
    expect((await f.call('POST', '/teams', { name: 'Bad', businessHours: { weekly: { mon: [{ from: '18:00', to: '09:00' }] } } })).status).toBe(400);
    expect((await f.ok('GET', '/teams')).items).toHaveLength(2);
    // A team the rules name cannot be deleted.
    expect((await f.call('DELETE', `/teams/${teamId}`)).status).toBe(409);
    expect((await f.call('DELETE', `/teams/${hoursless}`)).status).toBe(204);
  });
});

// Acceptance (routing core under concurrency): one web process and 4 worker processes on one Redis;
// 5,000 first messages from 5,000 visitors arrive at once while 100 agents of capacity 3 resolve at
// random. No agent is ever above capacity (every conversation.assigned event, and Redis at the end),
// every conversation is assigned exactly once or still waits, none is lost, and nobody waits while
// an agent has room.
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InboundAcceptor } from '../../src/ingest/acceptInbound.ts';
import { createRedis } from '../../src/redis/connection.ts';
import type { GatewayEvent } from '../../src/schema/event.ts';
import { newVisitorId, visitorMessage } from '../support/coreFixtures.ts';
import { createTenantOn, newDeployment, startGatewayProcess, type Deployment, type GatewayProcess } from '../support/gatewayProcess.ts';
import type { Tenant } from '../support/testGateway.ts';

const workerCount = 4;
const agentCount = 100;
const capacity = 3;
const conversationCount = 5_000;
const resolveTarget = 2_500;
const resolverCount = 16;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Runs `task` for every element with at most `limit` running at once. */
async function inParallel<T>(items: T[], limit: number, task: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const index = next++;
      await task(items[index]!, index);
    }
  }));
}

describe(`routing under concurrency: ${workerCount} workers, ${conversationCount} conversations, ${agentCount} agents of capacity ${capacity}`, () => {
  let deployment: Deployment;
  let web: GatewayProcess;
  let workers: GatewayProcess[] = [];
  let tenant: Tenant;
  let redis: Redis;
  let agents: string[] = [];

  beforeAll(async () => {
    deployment = newDeployment();
    [web, ...workers] = await Promise.all([
      startGatewayProcess(deployment, 'web'),
      ...Array.from({ length: workerCount }, () => startGatewayProcess(deployment, 'worker')),
    ]);
    // The tenant's own agent stays offline: exactly the 100 agents below take conversations.
    tenant = await createTenantOn(web, { capacity, online: false });
    redis = new Redis(deployment.redisUrl);
    agents = [];
    await inParallel(Array.from({ length: agentCount }, (_, i) => i), 20, async (i) => {
      const created = await web.api('POST', `/api/v1/accounts/${tenant.accountId}/agents`, { key: tenant.apiKey, body: { name: `Agent ${i}`, capacity } });
      if (created.status !== 201) throw new Error(`agent: ${created.status} ${JSON.stringify(created.body)}`);
      const id = created.body.agent.id as string;
      const online = await web.api('PUT', `/api/v1/accounts/${tenant.accountId}/agents/${id}/status`, { key: tenant.apiKey, body: { status: 'online' } });
      if (online.status !== 200) throw new Error(`status: ${online.status} ${JSON.stringify(online.body)}`);
      agents.push(id);
    });
  }, 120_000);

  afterAll(async () => {
    await Promise.all([web, ...workers].map((p) => p?.stop()));
    redis?.disconnect();
    deployment?.cleanup();
  });

  const key = (...parts: string[]) => [deployment.prefix, ...parts].join(':');

  async function allEvents(): Promise<GatewayEvent[]> {
    const events: GatewayEvent[] = [];
    let start = '-';
    while (true) {
      const page = (await redis.xrange(key('acc', tenant.accountId, 'events'), start, '+', 'COUNT', 5000)) as [string, string[]][];
      for (const [, fields] of page) events.push(JSON.parse(fields[fields.indexOf('e') + 1]!) as GatewayEvent);
      if (page.length < 5000) return events;
      start = `(${page[page.length - 1]![0]}`;
    }
  }

  it('never puts an agent above capacity, assigns each conversation once or keeps it waiting, and loses none', async () => {
    const startedAt = Date.now();
    const visitors = Array.from({ length: conversationCount }, newVisitorId);
    expect(new Set(visitors).size).toBe(conversationCount);
    // The messages go through the gateway's own door (InboundAcceptor: arrival seq, then the
    // inbound job), from this process, so all 5,000 are queued within a moment of each other.
    const producer = createRedis(deployment.redisUrl, 'test-producer', { autoPipelining: true });
    const inboundProducer = new Queue('inbound', { connection: producer, prefix: `${deployment.prefix}:q` });
    const acceptor = new InboundAcceptor(inboundProducer);

    // Resolvers: several concurrent callers pick a random agent's held conversation and resolve it via
    // the API (which frees the capacity and hands that agent the next waiting conversation).
    const resolved = new Set<string>();
    const resolveErrors: string[] = [];
    let sendingDone = false;
    const resolvers = Array.from({ length: resolverCount }, async () => {
      let idle = 0;
      while (resolved.size < resolveTarget) {
        const agentId = agents[Math.floor(Math.random() * agents.length)]!;
        const conversationId = await redis.srandmember(key('agentstate', agentId, 'convs'));
        if (resolved.size >= resolveTarget) break;
        if (!conversationId || resolved.has(conversationId)) {
          // Nothing to resolve yet (routing has not started) or ever again (a bug): don't spin forever.
          if (++idle > 20_000) throw new Error(`resolvers starved after ${resolved.size} resolves`);
          await sleep(sendingDone ? 1 : 5);
          continue;
        }
        idle = 0;
        resolved.add(conversationId);
        const r = await web.api('POST', `/api/v1/accounts/${tenant.accountId}/conversations/${conversationId}/resolve`, { key: tenant.apiKey });
        if (r.status !== 200 || r.body.status !== 'resolved') resolveErrors.push(`${conversationId}: ${r.status} ${JSON.stringify(r.body)}`);
        // A little randomness in the pace, so resolves interleave with routing differently each run.
        if (Math.random() < 0.3) await sleep(Math.floor(Math.random() * 5));
      }
    });

    // 5,000 first messages from 5,000 visitors, all at once.
    try {
      await Promise.all(visitors.map((visitorId, i) => acceptor.accept(visitorMessage(tenant, visitorId, `${visitorId}/first`, `Hello, I am visitor ${i}`))));
    } finally {
      await inboundProducer.close();
      producer.disconnect();
    }
    sendingDone = true;
    const sentAt = Date.now();

    await Promise.all(resolvers);
    expect(resolveErrors).toEqual([]);
    expect(resolved.size).toBe(resolveTarget);
    const resolvedAt = Date.now();

    // Quiescence: every conversation exists, the inbound queue is drained, and none is left unrouted.
    const inbound = new Queue('inbound', { connection: redis, prefix: `${deployment.prefix}:q` });
    let conversationIds: string[] = [];
    let hashes: (string | null)[][] = [];
    try {
      const deadline = Date.now() + 60_000;
      while (true) {
        conversationIds = await redis.zrange(key('acc', tenant.accountId, 'conversations'), '0', '-1');
        const counts = await inbound.getJobCounts('wait', 'active', 'delayed', 'prioritized', 'waiting-children', 'failed');
        const pipeline = redis.pipeline();
        for (const id of conversationIds) pipeline.hmget(key('conv', id), 'status', 'assigneeId', 'routed', 'channelId', 'teamId', 'offeredTo', 'assignments');
        hashes = ((await pipeline.exec()) ?? []).map(([error, value]) => { if (error) throw error; return value as (string | null)[]; });
        const unrouted = hashes.filter((h) => h[0] === 'open' && h[2] !== '1').length;
        const pending = counts.wait! + counts.active! + counts.delayed! + counts.prioritized! + counts['waiting-children']!;
        if (conversationIds.length === conversationCount && pending === 0 && unrouted === 0) {
          expect(counts.failed).toBe(0);
          break;
        }
        if (Date.now() > deadline) {
          throw new Error(`not quiescent: ${conversationIds.length} conversations, inbound ${JSON.stringify(counts)}, ${unrouted} unrouted\n` +
            workers.map((w) => w.output()).join('\n').slice(-4000));
        }
        await sleep(100);
      }
    } finally {
      await inbound.close();
    }
    const quietAt = Date.now();

    // --- Every assignment event: load within capacity, and equal to a replay of the stream ---
    const events = await allEvents();
    const agentSet = new Set(agents);
    const replayedLoad = new Map<string, number>(agents.map((a) => [a, 0]));
    const assignedEvents = new Map<string, number>();
    const queuedEvents = new Set<string>();
    let maxLoadSeen = 0;
    const overCapacity: unknown[] = [];
    const replayMismatch: unknown[] = [];
    for (const event of events) {
      const data = event.data as any;
      if (event.type === 'conversation.assigned') {
        const a = data.agent as { id: string; load: number; capacity: number; channel: string };
        expect(a.id).toBe(data.assigneeId);
        expect(agentSet.has(a.id), `assigned to ${a.id}, not one of the 100 agents`).toBe(true);
        expect(a.channel).toBe('webchat');
        expect(a.capacity).toBe(capacity);
        if (!(a.load <= a.capacity) || a.load < 1) overCapacity.push({ subject: event.subject, agent: a });
        maxLoadSeen = Math.max(maxLoadSeen, a.load);
        const load = replayedLoad.get(a.id)! + 1;
        replayedLoad.set(a.id, load);
        if (load !== a.load) replayMismatch.push({ subject: event.subject, agent: a, replayed: load });
        assignedEvents.set(event.subject!, (assignedEvents.get(event.subject!) ?? 0) + 1);
      } else if (event.type === 'conversation.resolved') {
        const previous = data.previousAssigneeId as string;
        if (previous) replayedLoad.set(previous, replayedLoad.get(previous)! - 1);
      } else if (event.type === 'conversation.queued') {
        queuedEvents.add(event.subject!);
      } else {
        // Nothing else moves a conversation between agents in this test.
        expect(['contact.created', 'conversation.created', 'message.received', 'agent.status_changed']).toContain(event.type);
      }
    }
    expect(overCapacity.slice(0, 5)).toEqual([]);
    expect(replayMismatch.slice(0, 5)).toEqual([]);
    expect(maxLoadSeen).toBe(capacity);
    expect(eventsCount(events, 'conversation.created')).toBe(conversationCount);
    expect(eventsCount(events, 'message.received')).toBe(conversationCount);
    expect(eventsCount(events, 'conversation.resolved')).toBe(resolveTarget);
    // The resolves raced with the routing of new conversations (not all after it).
    let lastRouted = 0;
    events.forEach((e, i) => { if (e.type === 'conversation.created' || e.type === 'conversation.queued') lastRouted = i; });
    const resolvesDuringRouting = events.slice(0, lastRouted).filter((e) => e.type === 'conversation.resolved').length;
    expect(resolvesDuringRouting).toBeGreaterThan(0);

    // --- The conversations: each exactly one of resolved / open and assigned / open and waiting ---
    const waitingScores = await redis.zrange(key('acc', tenant.accountId, 'q', 'default', 'waiting', 'webchat'), '0', '-1');
    const waiting = new Set(waitingScores);
    const convsOf = new Map<string, Set<string>>();
    const stateOf = new Map<string, Record<string, string>>();
    for (const agentId of [...agents, tenant.agentId]) {
      convsOf.set(agentId, new Set(await redis.smembers(key('agentstate', agentId, 'convs'))));
      stateOf.set(agentId, await redis.hgetall(key('agentstate', agentId)));
    }
    const openHeldBy = new Map<string, Set<string>>(agents.map((a) => [a, new Set()]));
    const counts = { resolved: 0, assigned: 0, waiting: 0 };
    const problems: string[] = [];
    conversationIds.forEach((id, i) => {
      const [status, assigneeId, routed, , teamId, offeredTo, assignmentCounter] = hashes[i]!;
      const assignments = assignedEvents.get(id) ?? 0;
      if (Number(assignmentCounter ?? 0) !== assignments) problems.push(`${id}: assignments counter ${assignmentCounter} but ${assignments} events`);
      if (teamId !== 'default') problems.push(`${id}: routed to queue ${teamId}`);
      const heldBy = [...convsOf].filter(([, set]) => set.has(id)).map(([a]) => a);
      if (offeredTo) problems.push(`${id}: on offer to ${offeredTo}`);
      if (status === 'resolved') {
        counts.resolved++;
        if (!resolved.has(id)) problems.push(`${id}: resolved but the test never resolved it`);
        if (assigneeId) problems.push(`${id}: resolved with assignee ${assigneeId}`);
        if (assignments !== 1) problems.push(`${id}: resolved after ${assignments} assignments`);
        if (waiting.has(id) || heldBy.length) problems.push(`${id}: resolved yet waiting=${waiting.has(id)} heldBy=${heldBy}`);
      } else if (status === 'open' && assigneeId) {
        counts.assigned++;
        if (routed !== '1') problems.push(`${id}: assigned but not routed`);
        if (assignments !== 1) problems.push(`${id}: open and assigned after ${assignments} assignment events`);
        if (waiting.has(id)) problems.push(`${id}: both assigned (${assigneeId}) and waiting`);
        if (heldBy.length !== 1 || heldBy[0] !== assigneeId) problems.push(`${id}: assigned to ${assigneeId} but held by [${heldBy}]`);
        openHeldBy.get(assigneeId)?.add(id) ?? problems.push(`${id}: assigned to ${assigneeId}, not one of the 100 agents`);
      } else if (status === 'open') {
        counts.waiting++;
        if (routed !== '1') problems.push(`${id}: open, unassigned and unrouted`);
        if (!waiting.has(id)) problems.push(`${id}: open and unassigned but not in the waiting queue (lost)`);
        if (assignments !== 0) problems.push(`${id}: waiting after ${assignments} assignment events`);
        if (!queuedEvents.has(id)) problems.push(`${id}: waiting without a conversation.queued event`);
        if (heldBy.length) problems.push(`${id}: waiting yet held by [${heldBy}]`);
      } else {
        problems.push(`${id}: status ${status}`);
      }
    });
    expect(problems.slice(0, 20)).toEqual([]);
    expect(counts.resolved + counts.assigned + counts.waiting).toBe(conversationCount);
    expect(counts.resolved).toBe(resolveTarget);
    // The waiting queue holds exactly the waiting conversations.
    expect(waiting.size).toBe(counts.waiting);
    // Every conversation ever assigned had one assignment event; the waiting ones none.
    expect(assignedEvents.size).toBe(counts.resolved + counts.assigned);

    // --- Agents in Redis at the end: within capacity, load = what they hold = the open conversations assigned to them ---
    const agentProblems: string[] = [];
    for (const agentId of agents) {
      const state = stateOf.get(agentId)!;
      const held = convsOf.get(agentId)!;
      const open = openHeldBy.get(agentId)!;
      const load = Number(state['load:webchat'] ?? 0);
      if (state.status !== 'online') agentProblems.push(`${agentId}: status ${state.status}`);
      if (load > capacity) agentProblems.push(`${agentId}: load:webchat ${load} above ${capacity}`);
      if (Number(state.load) !== load) agentProblems.push(`${agentId}: load ${state.load} != load:webchat ${load}`);
      if (load !== open.size) agentProblems.push(`${agentId}: load ${load} but ${open.size} open conversations assigned`);
      if (held.size !== open.size || [...held].some((c) => !open.has(c))) agentProblems.push(`${agentId}: convs [${[...held]}] != open assigned [${[...open]}]`);
      if (replayedLoad.get(agentId) !== load) agentProblems.push(`${agentId}: load ${load} but the event stream replays to ${replayedLoad.get(agentId)}`);
    }
    expect(agentProblems.slice(0, 20)).toEqual([]);
    // The tenant's own agent was offline all along: it holds nothing.
    expect(convsOf.get(tenant.agentId)!.size).toBe(0);
    expect(Number(stateOf.get(tenant.agentId)!['load:webchat'] ?? 0)).toBe(0);

    // No waiting chat is left unassigned while an online agent has room; the avail set agrees.
    const withRoom = agents.filter((a) => stateOf.get(a)!.status === 'online' && Number(stateOf.get(a)!['load:webchat'] ?? 0) < capacity);
    expect(withRoom.length > 0 && counts.waiting > 0, `${withRoom.length} agents with room while ${counts.waiting} wait`).toBe(false);
    const avail = await redis.zrange(key('acc', tenant.accountId, 'q', 'default', 'avail', 'webchat'), '0', '-1');
    expect(new Set(avail)).toEqual(new Set(withRoom));

    // --- None lost: one conversation per visitor, each with its one message ---
    const channelIds = hashes.map((h) => h[3]);
    expect(new Set(channelIds)).toEqual(new Set(visitors));
    const messagePipeline = redis.pipeline();
    for (const id of conversationIds) messagePipeline.zrange(key('conv', id, 'msgs'), '0', '-1');
    const messageIds = ((await messagePipeline.exec()) ?? []).map(([, v]) => v as string[]);
    expect(messageIds.every((ids) => ids.length === 1)).toBe(true);
    expect(new Set(messageIds.flat()).size).toBe(conversationCount);

    // The API agrees with Redis for a few agents.
    for (const agentId of agents.slice(0, 3)) {
      const page = await web.api('GET', `/api/v1/accounts/${tenant.accountId}/conversations?status=open&assigneeId=${agentId}&limit=200`, { key: tenant.apiKey });
      expect(page.status).toBe(200);
      expect(new Set(page.body.items.map((c: { id: string }) => c.id))).toEqual(openHeldBy.get(agentId));
    }

    console.info(`routing concurrency: ${conversationCount} messages queued in ${sentAt - startedAt} ms, ` +
      `${resolveTarget} resolved by ${resolvedAt - startedAt} ms, quiescent at ${quietAt - startedAt} ms, checked at ${Date.now() - startedAt} ms; ` +
      `${resolvesDuringRouting} resolves while new conversations were still being routed; ` +
      `end: ${counts.resolved} resolved, ${counts.assigned} assigned, ${counts.waiting} waiting; ${events.length} events`);
  }, 180_000);
});

function eventsCount(events: GatewayEvent[], type: string): number {
  return events.filter((e) => e.type === type).length;
}

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runScript } from '../../src/commands/index.ts';
import { eventsOfType, listAllConversations, newVisitorId, streamEvents, visitorMessage, waitFor } from '../support/coreFixtures.ts';
import { createTenant, startTestGateway, TestSocket, wsUrl, type Tenant, type TestGateway } from '../support/testGateway.ts';

// Presence that follows the agent's sockets: 1 s of grace, leases of 0.9 s renewed every 0.3 s.
describe('agent presence follows the agent sockets', () => {
  let t: TestGateway;
  beforeAll(async () => { t = await startTestGateway({ GATEWAY_AGENT_DISCONNECT_GRACE_SECONDS: '1' }, 'all', { agentSocketLeaseMs: 900 }); });
  afterAll(() => t.stop());

  const status = async (tenant: Tenant) =>
    (await t.api('GET', `/api/v1/accounts/${tenant.accountId}/agents/${tenant.agentId}`, { key: tenant.apiKey })).body.state.status as string;
  const statusChanges = async (tenant: Tenant) =>
    eventsOfType(await streamEvents(t, tenant.accountId), 'agent.status_changed').map((e) => e.data as { status: string; reason: string });
  const connect = async (tenant: Tenant) => {
    const socket = await TestSocket.open(wsUrl(t.url, '/api/v1/agent/ws'), { headers: { authorization: `Bearer ${tenant.agentToken}` } });
    return { socket, hello: await socket.next((f) => f.type === 'hello') };
  };
  const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

  it('sets an online agent away when its last socket has been closed for the grace period, and back online on its next socket', async () => {
    const tenant = await createTenant(t);
    const first = await connect(tenant);
    const second = await connect(tenant);
    first.socket.close();
    // Renewals of the other socket keep the agent online well past the grace.
    await sleep(2500);
    expect(await status(tenant)).toBe('online');

    second.socket.close();
    await waitFor(() => status(tenant), (s) => s === 'away', 'away after the grace', 6000);
    expect((await statusChanges(tenant)).at(-1)).toMatchObject({ status: 'away', reason: 'disconnected' });

    const back = await connect(tenant);
    expect(back.hello.state.status).toBe('online');
    expect((await statusChanges(tenant)).at(-1)).toMatchObject({ status: 'online', reason: 'reconnected' });
    back.socket.close();
  });

  it('keeps an agent online across a reconnect within the grace', async () => {
    const tenant = await createTenant(t);
    const first = await connect(tenant);
    first.socket.close();
    await first.socket.closed();
    const again = await connect(tenant);
    await sleep(2000);
    expect(await status(tenant)).toBe('online');
    expect((await statusChanges(tenant)).filter((c) => c.reason === 'disconnected')).toEqual([]);
    again.socket.close();
  });

  it('gives back only the status the disconnect took: a status set meanwhile stays', async () => {
    const tenant = await createTenant(t);
    const first = await connect(tenant);
    first.socket.close();
    await waitFor(() => status(tenant), (s) => s === 'away', 'away after the grace', 6000);
    // The agent (or an admin) chooses offline while no socket is open: the next socket does not undo it.
    expect((await t.api('PUT', `/api/v1/accounts/${tenant.accountId}/agents/${tenant.agentId}/status`, { key: tenant.apiKey, body: { status: 'offline' } })).status).toBe(200);
    const back = await connect(tenant);
    expect(back.hello.state.status).toBe('offline');
    back.socket.close();

    // An agent who was away by choice before disconnecting stays away too.
    const chosen = await createTenant(t);
    const socket = await connect(chosen);
    socket.socket.send({ type: 'status', status: 'away' });
    await socket.socket.next((f) => f.type === 'state');
    socket.socket.close();
    await sleep(2000);
    const returned = await connect(chosen);
    expect(returned.hello.state.status).toBe('away');
    expect((await statusChanges(chosen)).map((c) => c.reason)).not.toContain('disconnected');
    returned.socket.close();
  });

  it('sets away the agents of a web process that died (its leases lapse unrenewed)', async () => {
    const tenant = await createTenant(t);
    // A lease as a web process takes it, from a process that then never renews it.
    const { redis, keys } = t.gateway;
    const now = new Date();
    await runScript(redis, 'leaseAgentSocket', [keys.agentState(tenant.agentId)], [keys.prefix, now.toISOString(), tenant.agentId, 'dead-process-1', 'open', 900, 1000, now.getTime()]);
    await sleep(1000);
    expect(await status(tenant)).toBe('online');
    await waitFor(() => status(tenant), (s) => s === 'away', 'away after the lease and the grace', 6000);
    expect((await statusChanges(tenant)).at(-1)).toMatchObject({ status: 'away', reason: 'disconnected' });
  });

  it('brings back a socket that was live all along once its renewal lands again (a stalled web process or Redis)', async () => {
    const tenant = await createTenant(t);
    const { redis, keys } = t.gateway;
    const lease = (op: string) => runScript(redis, 'leaseAgentSocket', [keys.agentState(tenant.agentId)], [keys.prefix, new Date().toISOString(), tenant.agentId, 'stalled-process-1', op, 900, 1000, Date.now()]);
    await lease('open');
    await waitFor(() => status(tenant), (s) => s === 'away', 'away after the lease and the grace', 6000);
    await lease('renew');
    expect(await status(tenant)).toBe('online');
    expect((await statusChanges(tenant)).at(-1)).toMatchObject({ status: 'online', reason: 'reconnected' });
    await lease('close');
  });

  it('leaves presence alone with a grace of 0, and forgets the leases of a removed agent', async () => {
    const off = await startTestGateway({ GATEWAY_AGENT_DISCONNECT_GRACE_SECONDS: '0' });
    try {
      const tenant = await createTenant(off);
      const socket = await TestSocket.open(wsUrl(off.url, '/api/v1/agent/ws'), { headers: { authorization: `Bearer ${tenant.agentToken}` } });
      await socket.next((f) => f.type === 'hello');
      expect(await off.gateway.redis.exists(`${off.gateway.keys.agentState(tenant.agentId)}:sockets`)).toBe(0);
      socket.close();
      await sleep(300);
      expect(await off.gateway.redis.zscore(off.gateway.keys.routingTimers, `gone|${tenant.agentId}`)).toBeNull();
      // A check left from when presence followed the sockets (the gateway restarted with a grace of 0): the
      // agent's next socket drops it, and a check due for an agent whose grace is 0 now does nothing.
      const { redis, keys } = off.gateway;
      const agentStatus = async () => (await off.api('GET', `/api/v1/accounts/${tenant.accountId}/agents/${tenant.agentId}`, { key: tenant.apiKey })).body.state.status;
      await redis.hset(keys.agentState(tenant.agentId), 'disconnectGraceMs', 60_000);
      await redis.zadd(keys.routingTimers, Date.now() + 60_000, `gone|${tenant.agentId}`);
      const again = await TestSocket.open(wsUrl(off.url, '/api/v1/agent/ws'), { headers: { authorization: `Bearer ${tenant.agentToken}` } });
      await again.next((f) => f.type === 'hello');
      expect(await redis.zscore(keys.routingTimers, `gone|${tenant.agentId}`)).toBeNull();
      expect(await redis.hget(keys.agentState(tenant.agentId), 'disconnectGraceMs')).toBe('0');
      await redis.zadd(keys.routingTimers, Date.now(), `gone|${tenant.agentId}`);
      await waitFor(() => redis.zscore(keys.routingTimers, `gone|${tenant.agentId}`), (score) => score === null, 'the due check taken', 3000);
      expect(await agentStatus()).toBe('online');
      again.close();
    } finally {
      await off.stop();
    }

    const tenant = await createTenant(t);
    const { socket } = await connect(tenant);
    const socketsKey = `${t.gateway.keys.agentState(tenant.agentId)}:sockets`;
    expect(await t.gateway.redis.zcard(socketsKey)).toBe(1);
    expect((await t.api('DELETE', `/api/v1/accounts/${tenant.accountId}/agents/${tenant.agentId}`, { key: tenant.apiKey })).status).toBe(204);
    expect(await t.gateway.redis.exists(socketsKey)).toBe(0);
    expect(await t.gateway.redis.zscore(t.gateway.keys.routingTimers, `gone|${tenant.agentId}`)).toBeNull();
    socket.close();
  });

  it('hands the open conversations of an agent away by disconnect back to their queue after the handback period, unless it came back', async () => {
    const quick = await startTestGateway({ GATEWAY_AGENT_DISCONNECT_GRACE_SECONDS: '1', GATEWAY_AGENT_DISCONNECT_HANDBACK_SECONDS: '2' }, 'all', { agentSocketLeaseMs: 900 });
    try {
      const tenant = await createTenant(quick);
      const agentPath = (id: string) => `/api/v1/accounts/${tenant.accountId}/agents/${id}`;
      const agentStatus = async () => (await quick.api('GET', agentPath(tenant.agentId), { key: tenant.apiKey })).body.state.status as string;
      const open = () => TestSocket.open(wsUrl(quick.url, '/api/v1/agent/ws'), { headers: { authorization: `Bearer ${tenant.agentToken}` } });
      const assignees = async () => Object.fromEntries((await listAllConversations(quick, tenant)).map((c) => [c.id, c.assigneeId]));
      const first = await open();
      await first.next((f) => f.type === 'hello');
      await quick.gateway.acceptor.accept(visitorMessage(tenant, newVisitorId(), 'handback/1', 'Where is my parcel?'));
      await quick.gateway.acceptor.accept(visitorMessage(tenant, newVisitorId(), 'handback/2', 'Can I change the address?'));
      const held = await waitFor(assignees, (a) => Object.keys(a).length === 2 && Object.values(a).every((id) => id === tenant.agentId), 'both with the first agent');
      const other = await quick.api('POST', `/api/v1/accounts/${tenant.accountId}/agents`, { key: tenant.apiKey, body: { name: 'Bo', capacity: 5 } });
      const otherId = other.body.agent.id as string;
      await quick.api('PUT', `${agentPath(otherId)}/status`, { key: tenant.apiKey, body: { status: 'online' } });

      // Back within the handback period: it keeps its conversations.
      first.close();
      await waitFor(agentStatus, (s) => s === 'away', 'away after the grace', 6000);
      const back = await open();
      await back.next((f) => f.type === 'hello');
      await sleep(3000);
      expect(await assignees()).toEqual(held);

      // Gone for good: both go on to the other agent, and the first one's load is freed.
      back.close();
      await waitFor(agentStatus, (s) => s === 'away', 'away again', 6000);
      // A handback timer left from the first absence, due now, waits for this absence's period.
      await quick.gateway.redis.zadd(quick.gateway.keys.routingTimers, 0, `handback|${tenant.agentId}`);
      await sleep(800);
      expect(await assignees()).toEqual(held);
      const moved = await waitFor(assignees, (a) => Object.values(a).every((id) => id === otherId), 'both handed to the other agent', 8000);
      expect(Object.keys(moved).sort()).toEqual(Object.keys(held).sort());
      const events = await streamEvents(quick, tenant.accountId);
      expect(eventsOfType(events, 'conversation.assigned').map((e) => (e.data as { assigneeId: string }).assigneeId).sort())
        .toEqual([tenant.agentId, tenant.agentId, otherId, otherId].sort());
      // The hand-back names the agent it came from.
      expect(eventsOfType(events, 'conversation.assigned').filter((e) => (e.data as { assigneeId: string }).assigneeId === otherId)
        .map((e) => (e.data as { previousAssigneeId?: string }).previousAssigneeId)).toEqual([tenant.agentId, tenant.agentId]);
      const firstState = (await quick.api('GET', agentPath(tenant.agentId), { key: tenant.apiKey })).body.state;
      expect(firstState.status).toBe('away');
      expect(await quick.gateway.redis.scard(`${quick.gateway.keys.agentState(tenant.agentId)}:convs`)).toBe(0);
    } finally {
      await quick.stop();
    }
  });
});

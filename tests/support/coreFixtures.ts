// Fixtures for the core pipeline tests: inbound messages straight into the acceptor, agents, and
// the account's event stream read back both from Redis and through the replay API.
import { randomBytes } from 'node:crypto';
import type { GatewayEvent } from '../../src/schema/event.ts';
import type { InboundMessage } from '../../src/schema/message.ts';
import type { Tenant, TestGateway } from './testGateway.ts';

export const newVisitorId = () => `v_${randomBytes(8).toString('hex')}`;

/** One web chat message from a visitor, as the webchat adapter would hand it to the acceptor. */
export function visitorMessage(tenant: Pick<Tenant, 'accountId' | 'inboxId'>, visitorId: string, externalId: string, text = `text of ${externalId}`): InboundMessage {
  return {
    accountId: tenant.accountId, inboxId: tenant.inboxId, channel: 'webchat', externalId,
    from: { channelId: visitorId }, to: { channelId: tenant.inboxId }, sentAt: new Date().toISOString(),
    content: { type: 'text', text },
  };
}

/** Accepts one message from a new visitor per element: one new conversation each. */
export async function acceptFromNewVisitors(t: TestGateway, tenant: Tenant, count: number): Promise<string[]> {
  const visitors = Array.from({ length: count }, newVisitorId);
  for (const visitorId of visitors) await t.gateway.acceptor.accept(visitorMessage(tenant, visitorId, `${visitorId}/first`));
  return visitors;
}

/** Every event of the account, oldest first, straight from its replay stream. */
export async function streamEvents(t: TestGateway, accountId: string): Promise<GatewayEvent[]> {
  const entries = (await t.gateway.redis.xrange(t.gateway.keys.accountEvents(accountId), '-', '+')) as [string, string[]][];
  return entries.map(([, fields]) => JSON.parse(fields[fields.indexOf('e') + 1]!) as GatewayEvent);
}

/** Every event of the account through GET /events, following nextCursor to the end. */
export async function apiEvents(t: TestGateway, tenant: Tenant): Promise<GatewayEvent[]> {
  const all: GatewayEvent[] = [];
  let cursor: string | null = null;
  do {
    const query: string = cursor ? `?limit=200&cursor=${cursor}` : '?limit=200';
    const page: { status: number; body: any } = await t.api('GET', `/api/v1/accounts/${tenant.accountId}/events${query}`, { key: tenant.apiKey });
    if (page.status !== 200) throw new Error(`events: ${page.status} ${JSON.stringify(page.body)}`);
    all.push(...page.body.items);
    cursor = page.body.nextCursor;
  } while (cursor);
  return all;
}

export const eventsOfType = (events: GatewayEvent[], type: string) => events.filter((e) => e.type === type);

/** Adds an agent to the tenant's account, online unless told otherwise; returns its id. */
export async function addAgent(t: TestGateway, tenant: Tenant, name: string, capacity: number, online = true): Promise<string> {
  const created = await t.api('POST', `/api/v1/accounts/${tenant.accountId}/agents`, { key: tenant.apiKey, body: { name, capacity } });
  if (created.status !== 201) throw new Error(`agent: ${created.status} ${JSON.stringify(created.body)}`);
  const agentId = created.body.agent.id as string;
  if (online) await setAgentStatus(t, tenant, agentId, 'online');
  return agentId;
}

export async function setAgentStatus(t: TestGateway, tenant: Tenant, agentId: string, status: string) {
  const r = await t.api('PUT', `/api/v1/accounts/${tenant.accountId}/agents/${agentId}/status`, { key: tenant.apiKey, body: { status } });
  if (r.status !== 200) throw new Error(`status: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body as { status: string; capacity: number; load: number };
}

export async function agentState(t: TestGateway, tenant: Tenant, agentId: string): Promise<{ status: string; capacity: number; load: number }> {
  const r = await t.api('GET', `/api/v1/accounts/${tenant.accountId}/agents/${agentId}`, { key: tenant.apiKey });
  if (r.status !== 200) throw new Error(`agent: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body.state;
}

/** All of the account's conversations through the list API (following the cursor), with optional filters. */
export async function listAllConversations(t: TestGateway, tenant: Tenant, filters: Record<string, string> = {}): Promise<any[]> {
  const all: any[] = [];
  let cursor: string | null = null;
  do {
    const query: URLSearchParams = new URLSearchParams({ limit: '200', ...filters, ...(cursor ? { cursor } : {}) });
    const page: { status: number; body: any } = await t.api('GET', `/api/v1/accounts/${tenant.accountId}/conversations?${query}`, { key: tenant.apiKey });
    if (page.status !== 200) throw new Error(`conversations: ${page.status} ${JSON.stringify(page.body)}`);
    all.push(...page.body.items);
    cursor = page.body.nextCursor;
  } while (cursor);
  return all;
}

/** Polls read() until done(value) holds; no fixed sleeps, generous default timeout for a loaded machine. */
export async function waitFor<T>(read: () => Promise<T>, done: (value: T) => boolean, what: string, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let value = await read();
  while (!done(value)) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; last value: ${JSON.stringify(value)?.slice(0, 500)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
    value = await read();
  }
  return value;
}

// Routing test fixtures: teams, rules and conversations through the API, read back from events and Redis.
import { InboundAcceptor } from '../../src/ingest/acceptInbound.ts';
import type { GatewayEvent } from '../../src/schema/event.ts';
import { newVisitorId, streamEvents, visitorMessage, waitFor } from '../support/coreFixtures.ts';
import { createTenant, type Tenant, type TestGateway } from '../support/testGateway.ts';

export class RoutingFixture {
  constructor(readonly t: TestGateway, readonly tenant: Tenant) {}

  /** A tenant whose own agent (Ann) stays offline, so only the agents a test adds take conversations. */
  static async create(t: TestGateway): Promise<RoutingFixture> {
    return new RoutingFixture(t, await createTenant(t, { online: false }));
  }

  async call(method: string, path: string, body?: unknown, key = this.tenant.apiKey) {
    return this.t.api(method, `/api/v1/accounts/${this.tenant.accountId}${path}`, { key, body });
  }

  async ok(method: string, path: string, body?: unknown, key?: string) {
    const r = await this.call(method, path, body, key);
    if (r.status >= 300) throw new Error(`${method} ${path}: ${r.status} ${JSON.stringify(r.body)}`);
    return r.body;
  }

  async agent(name: string, capacity: number, options: { online?: boolean; role?: string; autoAwaySeconds?: number; capacities?: Record<string, number> } = {}) {
    const { online = true, ...rest } = options;
    const created = await this.ok('POST', '/agents', { name, capacity, ...rest });
    if (online) await this.status(created.agent.id, 'online');
    return { id: created.agent.id as string, token: created.token as string };
  }

  status(agentId: string, status: string) { return this.ok('PUT', `/agents/${agentId}/status`, { status }); }
  state(agentId: string) { return this.ok('GET', `/agents/${agentId}`).then((a) => a.state); }

  async team(body: Record<string, unknown>): Promise<string> { return (await this.ok('POST', '/teams', body)).id; }
  routing(body: Record<string, unknown>) { return this.ok('PUT', '/routing', body); }
  conversation(id: string) { return this.ok('GET', `/conversations/${id}`); }
  events() { return streamEvents(this.t, this.tenant.accountId); }

  /** Events about one conversation, of the given types, in order. */
  async eventsOf(conversationId: string, ...types: string[]): Promise<GatewayEvent[]> {
    return (await this.events()).filter((e) => e.subject === conversationId && (!types.length || types.includes(e.type)));
  }

  /** A visitor's message; resolves to its conversation id once the conversation has been routed. */
  async message(visitorId: string, text: string, externalId = `${visitorId}/${Math.random().toString(36).slice(2)}`): Promise<string> {
    const { redis, keys } = this.t.gateway;
    await this.t.gateway.acceptor.accept(visitorMessage(this.tenant, visitorId, externalId, text));
    const messageId = InboundAcceptor.messageIdFor(this.tenant.inboxId, externalId);
    const stored = await waitFor(() => redis.hget(keys.message(messageId), 'conversationId'), (c) => !!c, `message ${externalId} stored`);
    const conversationId = stored!;
    await waitFor(() => redis.hmget(keys.conversation(conversationId), 'assigneeId', 'offeredTo', 'waitingSince'),
      ([assignee, offered, waiting]) => !!assignee || !!offered || !!waiting, `conversation ${conversationId} routed`);
    return conversationId;
  }

  /** A new visitor's first message: a new conversation, routed. */
  newConversation(text = 'hello') { return this.message(newVisitorId(), text); }

  /** The assignee of each conversation, as stored. */
  async assignees(ids: string[]): Promise<(string | null)[]> {
    return Promise.all(ids.map(async (id) => (await this.conversation(id)).assigneeId));
  }
}

// /api/v1/accounts/{accountId}/agents: people, their tokens, capacities and status.
import { z } from 'zod';
import type { ApiRegistry } from '../http/apiRoutes.ts';
import { notFound } from '../http/errors.ts';
import { agentSchema, agentStateSchema, agentStatusSchema } from '../tenancy/agents.ts';
import { pageOf, pageQuery } from './pagination.ts';
import type { ApiServices } from './services.ts';

const agentView = agentSchema.extend({ state: agentStateSchema });
const agentFields = agentSchema.pick({ capacities: true, skills: true, autoAwaySeconds: true }).required();
const createAgent = z.object({
  name: z.string().trim().min(1).max(200),
  email: z.string().email().optional(),
  role: z.enum(['agent', 'supervisor']).default('agent'),
  capacity: z.number().int().min(0).max(1000).default(5),
}).extend(agentFields.partial().shape);
// PATCH bodies without defaults: zod 4 applies a default inside .partial(), which would reset omitted fields.
const updateAgent = z.object({
  name: z.string().trim().min(1).max(200), email: z.string().email(), role: z.enum(['agent', 'supervisor']), capacity: z.number().int().min(0).max(1000),
}).extend(agentFields.shape).partial();

export function registerAgentRoutes(api: ApiRegistry, s: ApiServices): void {
  const withState = async <T extends { id: string }>(agent: T) => ({ ...agent, state: await s.agents.state(agent.id) });
  const agentOr404 = async (accountId: string, agentId: string) => {
    const agent = await s.agents.records.get(accountId, agentId);
    if (!agent) throw notFound('agent');
    return agent;
  };

  api.add({
    method: 'post', path: '/api/v1/accounts/:accountId/agents', tag: 'Agents', auth: 'account', body: createAgent, successStatus: 201,
    response: z.object({ agent: agentView, token: z.string().describe('shown once') }),
    summary: 'Create an agent; the answer carries its token, shown once',
    handler: async (_ctx, { params, body }) => {
      const { agent, token } = await s.agents.create(params.accountId!, body);
      return { agent: await withState(agent), token };
    },
  });
  api.add({
    method: 'get', path: '/api/v1/accounts/:accountId/agents', tag: 'Agents', auth: 'accountOrAgent', query: pageQuery,
    response: pageOf(agentView), summary: 'List agents with their status and load',
    handler: async (_ctx, { params, query }) => {
      const page = await s.agents.records.list(params.accountId!, query);
      return { items: await Promise.all(page.items.map(withState)), nextCursor: page.nextCursor };
    },
  });
  api.add({
    method: 'get', path: '/api/v1/accounts/:accountId/agents/:agentId', tag: 'Agents', auth: 'accountOrAgent', response: agentView,
    summary: 'Get an agent', handler: async (_ctx, { params }) => withState(await agentOr404(params.accountId!, params.agentId!)),
  });
  api.add({
    method: 'patch', path: '/api/v1/accounts/:accountId/agents/:agentId', tag: 'Agents', auth: 'account',
    body: updateAgent, response: agentView, summary: 'Change an agent (new capacities apply at once: more room takes waiting conversations)',
    handler: async (_ctx, { params, body }) => {
      const agent = await agentOr404(params.accountId!, params.agentId!);
      const updated = await s.agents.records.put({ ...agent, ...body, updatedAt: new Date().toISOString() });
      if (body.capacity !== undefined || body.capacities !== undefined || body.autoAwaySeconds !== undefined) {
        await s.agents.setPresence(updated, { capacity: body.capacity, capacities: body.capacities, autoAwaySeconds: body.autoAwaySeconds });
      }
      return withState(updated);
    },
  });
  api.add({
    method: 'delete', path: '/api/v1/accounts/:accountId/agents/:agentId', tag: 'Agents', auth: 'account',
    summary: 'Remove an agent (its token stops working; its conversations go back to their queues)',
    handler: async (_ctx, { params }) => {
      const agent = await agentOr404(params.accountId!, params.agentId!);
      await s.agents.remove(agent);
      // Teams forget it too, so a later team change cannot enrol a ghost.
      for (const team of await s.teams.listAll(agent.accountId)) {
        if (team.agentIds.includes(agent.id)) await s.teams.put({ ...team, agentIds: team.agentIds.filter((id) => id !== agent.id), updatedAt: new Date().toISOString() });
      }
      return undefined;
    },
  });
  api.add({
    method: 'post', path: '/api/v1/accounts/:accountId/agents/:agentId/token', tag: 'Agents', auth: 'account', successStatus: 201,
    response: z.object({ token: z.string() }), summary: "Replace an agent's token (the old one stops working)",
    handler: async (_ctx, { params }) => ({ token: await s.agents.issueToken(await agentOr404(params.accountId!, params.agentId!)) }),
  });
  api.add({
    method: 'put', path: '/api/v1/accounts/:accountId/agents/:agentId/status', tag: 'Agents', auth: 'accountOrAgent',
    body: z.object({ status: agentStatusSchema }), response: agentStateSchema,
    summary: "Set an agent's status (online takes waiting conversations at once)",
    handler: async (ctx, { params, body }) => {
      const caller = ctx.state.caller;
      if (caller?.kind === 'agent' && caller.agent.id !== params.agentId && caller.agent.role !== 'supervisor') throw notFound('agent');
      return s.agents.setPresence(await agentOr404(params.accountId!, params.agentId!), body);
    },
  });
}

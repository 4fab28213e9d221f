// /api/v1/accounts/{accountId}/agents, teams and routing.
import { z } from 'zod';
import type { ApiRegistry } from '../http/apiRoutes.ts';
import { badRequest, notFound } from '../http/errors.ts';
import { newId } from '../ids.ts';
import { agentSchema, agentStateSchema, agentStatusSchema } from '../tenancy/agents.ts';
import { pageOf, pageQuery } from './pagination.ts';
import type { ApiServices, TeamRecord } from './services.ts';

const agentView = agentSchema.extend({ state: agentStateSchema });
const createAgent = z.object({
  name: z.string().trim().min(1).max(200),
  email: z.string().email().optional(),
  role: z.enum(['agent', 'supervisor']).default('agent'),
  capacity: z.number().int().min(0).max(1000).default(5),
});
const teamSchema = z.object({ id: z.string(), accountId: z.string(), name: z.string(), agentIds: z.array(z.string()), createdAt: z.string(), updatedAt: z.string() });
const teamBody = z.object({ name: z.string().trim().min(1).max(200), agentIds: z.array(z.string().max(100)).max(1000).default([]) });
const routingSchema = z.object({ strategy: z.enum(['least_busy']).default('least_busy') });
// PATCH bodies without defaults: zod 4 applies a default inside .partial(), which would reset omitted fields.
const updateAgent = z.object({
  name: z.string().trim().min(1).max(200), email: z.string().email(), role: z.enum(['agent', 'supervisor']), capacity: z.number().int().min(0).max(1000),
}).partial();
const updateTeam = z.object({ name: z.string().trim().min(1).max(200), agentIds: z.array(z.string().max(100)).max(1000) }).partial();

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
    body: updateAgent, response: agentView, summary: 'Change an agent (a new capacity applies at once)',
    handler: async (_ctx, { params, body }) => {
      const agent = await agentOr404(params.accountId!, params.agentId!);
      const updated = await s.agents.records.put({ ...agent, ...body, updatedAt: new Date().toISOString() });
      if (body.capacity !== undefined) await s.agents.setPresence(updated, { capacity: body.capacity });
      return withState(updated);
    },
  });
  api.add({
    method: 'delete', path: '/api/v1/accounts/:accountId/agents/:agentId', tag: 'Agents', auth: 'account',
    summary: 'Remove an agent (its token stops working)',
    handler: async (_ctx, { params }) => { await s.agents.remove(await agentOr404(params.accountId!, params.agentId!)); return undefined; },
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

  // Teams: stored now; the routing core (its own issue) routes by them.
  const teamOr404 = async (accountId: string, id: string) => (await s.teams.get(accountId, id)) ?? Promise.reject(notFound('team'));
  const checkMembers = async (accountId: string, agentIds: string[]) => {
    for (const id of agentIds) if (!(await s.agents.records.get(accountId, id))) throw badRequest(`agentIds: unknown agent ${id}`);
  };
  api.add({
    method: 'post', path: '/api/v1/accounts/:accountId/teams', tag: 'Teams', auth: 'account', body: teamBody, successStatus: 201,
    response: teamSchema, summary: 'Create a team (routing queue / skill group)',
    handler: async (_ctx, { params, body }) => {
      await checkMembers(params.accountId!, body.agentIds);
      const now = new Date().toISOString();
      const team: TeamRecord = { id: newId('team'), accountId: params.accountId!, ...body, createdAt: now, updatedAt: now };
      return s.teams.put(team);
    },
  });
  api.add({
    method: 'get', path: '/api/v1/accounts/:accountId/teams', tag: 'Teams', auth: 'accountOrAgent', query: pageQuery,
    response: pageOf(teamSchema), summary: 'List teams', handler: async (_ctx, { params, query }) => s.teams.list(params.accountId!, query),
  });
  api.add({
    method: 'get', path: '/api/v1/accounts/:accountId/teams/:teamId', tag: 'Teams', auth: 'accountOrAgent', response: teamSchema,
    summary: 'Get a team', handler: async (_ctx, { params }) => teamOr404(params.accountId!, params.teamId!),
  });
  api.add({
    method: 'patch', path: '/api/v1/accounts/:accountId/teams/:teamId', tag: 'Teams', auth: 'account', body: updateTeam,
    response: teamSchema, summary: 'Rename a team or change its members',
    handler: async (_ctx, { params, body }) => {
      const team = await teamOr404(params.accountId!, params.teamId!);
      if (body.agentIds) await checkMembers(params.accountId!, body.agentIds);
      return s.teams.put({ ...team, ...body, updatedAt: new Date().toISOString() });
    },
  });
  api.add({
    method: 'delete', path: '/api/v1/accounts/:accountId/teams/:teamId', tag: 'Teams', auth: 'account', summary: 'Delete a team',
    handler: async (_ctx, { params }) => { if (!(await s.teams.delete(params.accountId!, params.teamId!))) throw notFound('team'); return undefined; },
  });
  api.add({
    method: 'get', path: '/api/v1/accounts/:accountId/routing', tag: 'Routing', auth: 'account', response: routingSchema,
    summary: "The account's routing settings",
    handler: async (_ctx, { params }) => {
      const r = await s.routing.get(params.accountId!, `routing-${params.accountId}`);
      return { strategy: r?.strategy ?? 'least_busy' };
    },
  });
  api.add({
    method: 'put', path: '/api/v1/accounts/:accountId/routing', tag: 'Routing', auth: 'account', body: routingSchema, response: routingSchema,
    summary: "Replace the account's routing settings",
    handler: async (_ctx, { params, body }) => {
      const now = new Date().toISOString();
      await s.routing.put({ id: `routing-${params.accountId}`, accountId: params.accountId!, ...body, createdAt: now, updatedAt: now });
      return body;
    },
  });
}

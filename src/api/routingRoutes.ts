// /api/v1/accounts/{accountId}/teams, routing, queues and supervisor: how conversations find agents.
import { z } from 'zod';
import type { ApiRegistry } from '../http/apiRoutes.ts';
import { badRequest, forbidden, notFound } from '../http/errors.ts';
import { newId } from '../ids.ts';
import { defaultQueueId, type TeamRecord } from '../routing/router.ts';
import { businessHoursSchema, routingSettingsSchema, strategySchema } from '../routing/routingRules.ts';
import { agentSchema, agentStateSchema } from '../tenancy/agents.ts';
import { pageOf, pageQuery } from './pagination.ts';
import type { ApiServices } from './services.ts';

const base = '/api/v1/accounts/:accountId';
const teamFields = {
  name: z.string().trim().min(1).max(200),
  agentIds: z.array(z.string().max(100)).max(1000),
  strategy: strategySchema,
  offerTimeoutSeconds: z.number().int().min(0).max(3600).describe('0 assigns directly; otherwise the agent must accept within this time or the offer moves on'),
  businessHours: businessHoursSchema.optional().describe('for routing rules on business hours'),
};
const teamSchema = z.object({ id: z.string(), accountId: z.string(), ...teamFields, createdAt: z.string(), updatedAt: z.string() });
const createTeam = z.object({
  ...teamFields, agentIds: teamFields.agentIds.default([]), strategy: strategySchema.default('least_busy'), offerTimeoutSeconds: teamFields.offerTimeoutSeconds.default(0),
}).strict();
// PATCH bodies without defaults: zod 4 applies a default inside .partial(), which would reset omitted fields.
const updateTeam = z.object({ ...teamFields, businessHours: businessHoursSchema.nullable() }).partial().strict();
const queueSchema = z.object({
  id: z.string().describe("team id, or 'default' (every agent)"), name: z.string(), strategy: strategySchema, offerTimeoutSeconds: z.number(),
  waiting: z.number(), waitingByChannel: z.record(z.string(), z.number()), oldestWaitSeconds: z.number().nullable(),
  members: z.number(), membersOnline: z.number(), estimatedWaitSecondsPerPosition: z.number().nullable(),
});

export function registerRoutingRoutes(api: ApiRegistry, s: ApiServices): void {
  const teamOr404 = async (accountId: string, id: string) => (await s.teams.get(accountId, id)) ?? Promise.reject(notFound('team'));
  const checkMembers = async (accountId: string, agentIds: string[]) => {
    for (const id of agentIds) if (!(await s.agents.records.get(accountId, id))) throw badRequest(`agentIds: unknown agent ${id}`);
  };

  api.add({
    method: 'post', path: `${base}/teams`, tag: 'Teams', auth: 'account', body: createTeam, successStatus: 201, response: teamSchema,
    summary: 'Create a team: a routing queue with members, a strategy and optionally acceptance and business hours',
    handler: async (_ctx, { params, body }) => {
      await checkMembers(params.accountId!, body.agentIds);
      const now = new Date().toISOString();
      const team: TeamRecord = { id: newId('team'), accountId: params.accountId!, ...body, agentIds: [...new Set(body.agentIds)], createdAt: now, updatedAt: now };
      await s.router.configureTeam(team);
      return s.teams.put(team);
    },
  });
  api.add({
    method: 'get', path: `${base}/teams`, tag: 'Teams', auth: 'accountOrAgent', query: pageQuery,
    response: pageOf(teamSchema), summary: 'List teams', handler: async (_ctx, { params, query }) => s.teams.list(params.accountId!, query),
  });
  api.add({
    method: 'get', path: `${base}/teams/:teamId`, tag: 'Teams', auth: 'accountOrAgent', response: teamSchema,
    summary: 'Get a team', handler: async (_ctx, { params }) => teamOr404(params.accountId!, params.teamId!),
  });
  api.add({
    method: 'patch', path: `${base}/teams/:teamId`, tag: 'Teams', auth: 'account', body: updateTeam, response: teamSchema,
    summary: 'Change a team (members with room take waiting conversations at once)',
    handler: async (_ctx, { params, body }) => {
      const team = await teamOr404(params.accountId!, params.teamId!);
      if (body.agentIds) await checkMembers(params.accountId!, body.agentIds);
      const { businessHours, ...rest } = body;
      const updated: TeamRecord = { ...team, ...rest, updatedAt: new Date().toISOString() };
      if (rest.agentIds) updated.agentIds = [...new Set(rest.agentIds)];
      if (businessHours === null) {
        const rule = (await s.router.settings(team.accountId)).rules.find((r) => r.when.businessHours?.teamId === team.id);
        if (rule) throw badRequest(`businessHours: routing rule "${rule.name}" needs them`);
        delete updated.businessHours;
      } else if (businessHours) updated.businessHours = businessHours;
      await s.router.configureTeam(updated);
      return s.teams.put(updated);
    },
  });
  api.add({
    method: 'delete', path: `${base}/teams/:teamId`, tag: 'Teams', auth: 'account',
    summary: 'Delete a team (409 while routing rules name it); its waiting conversations move to the default queue',
    handler: async (_ctx, { params }) => {
      const team = await teamOr404(params.accountId!, params.teamId!);
      await s.router.removeTeam(team);
      await s.teams.delete(team.accountId, team.id);
      return undefined;
    },
  });

  api.add({
    method: 'get', path: `${base}/routing`, tag: 'Routing', auth: 'accountOrSupervisor', response: routingSettingsSchema,
    summary: "The account's routing: the default queue's settings, sticky and reopen windows, rules (first match wins)",
    handler: async (_ctx, { params }) => s.router.settings(params.accountId!),
  });
  api.add({
    method: 'put', path: `${base}/routing`, tag: 'Routing', auth: 'account', body: routingSettingsSchema, response: routingSettingsSchema,
    summary: "Replace the account's routing (400 for rules naming unknown teams or overflowing back into a team)",
    handler: async (_ctx, { params, body }) => s.router.saveSettings(params.accountId!, body),
  });

  api.add({
    method: 'get', path: `${base}/supervisor/queues`, tag: 'Supervisor', auth: 'accountOrSupervisor', response: z.object({ items: z.array(queueSchema) }),
    summary: 'Every routing queue: waiting conversations, the oldest wait, members online',
    handler: async (_ctx, { params }) => ({ items: await s.router.queueOverview(params.accountId!) }),
  });
  api.add({
    method: 'get', path: `${base}/supervisor/agents`, tag: 'Supervisor', auth: 'accountOrSupervisor', query: pageQuery,
    response: pageOf(agentSchema.extend({ state: agentStateSchema })), summary: 'Agents with their status, load per channel and queues',
    handler: async (_ctx, { params, query }) => {
      const page = await s.agents.records.list(params.accountId!, query);
      return { items: await Promise.all(page.items.map(async (a) => ({ ...a, state: await s.agents.state(a.id) }))), nextCursor: page.nextCursor };
    },
  });
  api.add({
    method: 'post', path: `${base}/queues/:queueId/take`, tag: 'Routing', auth: 'accountOrAgent',
    response: z.object({ conversationId: z.string().nullable() }),
    summary: "An agent takes the next waiting conversation from a queue it serves (a team id or 'default'); null when none waits",
    handler: async (ctx, { params }) => {
      const queueId = params.queueId!;
      if (queueId !== defaultQueueId && !(await s.teams.get(params.accountId!, queueId))) throw notFound('queue');
      const caller = ctx.state.caller;
      if (caller?.kind !== 'agent') throw forbidden('taking from a queue needs an agent token');
      return { conversationId: (await s.router.takeFromQueue(params.accountId!, caller.agent.id, queueId)) ?? null };
    },
  });
}

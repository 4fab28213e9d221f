// The routing core's TypeScript side: picks a conversation's route (rules are matched here, where
// regular expressions and time zones live) and hands every state move to its Lua script, where
// capacity, queues and offers change atomically. Also the queues' configuration and the read views.
import type { Redis } from 'ioredis';
import { runScript } from '../commands/index.ts';
import { badRequest, conflict, notFound } from '../http/errors.ts';
import type { Keyspace } from '../redis/keys.ts';
import { channelSchema, type Channel } from '../schema/message.ts';
import type { AccountRecord, RecordStore } from '../store/recordStore.ts';
import {
  matchRule, routingProblems, routingSettingsSchema, teamsReferenced, type BusinessHours, type RoutingSettings, type Strategy, type TeamHours,
} from './routingRules.ts';

export const defaultQueueId = 'default';
export const routingChannels: readonly Channel[] = channelSchema.options;

export interface TeamRecord extends AccountRecord {
  name: string;
  agentIds: string[];
  strategy: Strategy;
  offerTimeoutSeconds: number;
  businessHours?: BusinessHours;
}
export interface RoutingRecord extends AccountRecord { settings: RoutingSettings }

export type RouteOutcome =
  | { state: 'assigned' | 'offered'; agentId: string }
  | { state: 'queued'; position: number }
  | { state: 'waiting' | 'closed' | 'missing' };

export interface QueueOverview {
  id: string; name: string; strategy: Strategy; offerTimeoutSeconds: number;
  waiting: number; waitingByChannel: Record<string, number>; oldestWaitSeconds: number | null;
  members: number; membersOnline: number; estimatedWaitSecondsPerPosition: number | null;
}

export class Router {
  constructor(
    private readonly redis: Redis,
    private readonly keys: Keyspace,
    private readonly teams: RecordStore<TeamRecord>,
    private readonly routing: RecordStore<RoutingRecord>,
  ) {}

  private routingId(accountId: string) { return `routing-${accountId}`; }

  async settings(accountId: string): Promise<RoutingSettings> {
    const record = await this.routing.get(accountId, this.routingId(accountId));
    return record?.settings ?? routingSettingsSchema.parse({});
  }

  private async teamMap(accountId: string): Promise<Map<string, TeamHours>> {
    return new Map((await this.teams.listAll(accountId)).map((t) => [t.id, t]));
  }

  /** Validates against the account's teams, stores, and applies the default queue's settings at once. */
  async saveSettings(accountId: string, settings: RoutingSettings): Promise<RoutingSettings> {
    const problems = routingProblems(settings, await this.teamMap(accountId));
    if (problems.length) throw badRequest(problems.join('; '));
    const now = new Date().toISOString();
    await this.routing.put({ id: this.routingId(accountId), accountId, settings, createdAt: now, updatedAt: now });
    await this.redis.hset(this.keys.routingQueue(accountId, defaultQueueId, 'cfg'),
      'stickyWindowMs', settings.stickyWindowMinutes * 60_000, 'reopenWindowMs', settings.reopenWindowMinutes * 60_000);
    await this.configureQueue(accountId, defaultQueueId, settings.strategy, settings.offerTimeoutSeconds);
    return settings;
  }

  /** Creates or changes a team's queue: strategy, offer timeout and members take effect at once. */
  async configureTeam(team: TeamRecord): Promise<void> {
    await this.configureQueue(team.accountId, team.id, team.strategy, team.offerTimeoutSeconds, team.agentIds);
  }

  /** A team still named by a routing rule cannot go; its waiting conversations move to the default queue. */
  async removeTeam(team: TeamRecord): Promise<void> {
    const used = teamsReferenced(await this.settings(team.accountId));
    if (used.has(team.id)) throw conflict(`team ${team.id} is used by the routing rules: change them first`);
    await runScript(this.redis, 'configureQueue', [this.keys.routingQueue(team.accountId, team.id, 'cfg')], [
      this.keys.prefix, new Date().toISOString(), Date.now(), team.accountId, team.id, '', 0, '', '1',
    ]);
  }

  private async configureQueue(accountId: string, queueId: string, strategy: Strategy, offerTimeoutSeconds: number, members?: string[]) {
    await runScript(this.redis, 'configureQueue', [this.keys.routingQueue(accountId, queueId, 'cfg')], [
      this.keys.prefix, new Date().toISOString(), Date.now(), accountId, queueId, strategy, offerTimeoutSeconds * 1000,
      members ? JSON.stringify(members) : '', '0',
    ]);
  }

  /**
   * Routes a new (or reopened) conversation: the first matching rule's targets and priority, else the
   * fallback, else the default queue. Safe to call again: a routed conversation is left as it is.
   */
  async routeConversation(accountId: string, conversationId: string, input: { inboxId: string; channel: Channel; contactId: string; text: string }): Promise<RouteOutcome> {
    const settings = await this.settings(accountId);
    let targets: { teamId: string; timeoutSeconds?: number }[] = settings.fallback?.targets ?? [{ teamId: defaultQueueId }];
    let priority = settings.fallback?.priority ?? 0;
    let ruleName = '';
    if (settings.rules.length) {
      const attributes = await this.redis.hget(this.keys.contact(input.contactId), 'attributes');
      const needsHours = settings.rules.some((r) => r.when.businessHours);
      const rule = matchRule(settings.rules, {
        inboxId: input.inboxId, channel: input.channel, text: input.text, now: new Date(),
        contactAttributes: attributes ? (JSON.parse(attributes) as Record<string, unknown>) : {},
      }, needsHours ? await this.teamMap(accountId) : new Map());
      if (rule) ({ targets, priority } = rule), ruleName = rule.name;
    }
    const now = new Date();
    const r = (await runScript(this.redis, 'routeConversation', [this.keys.conversation(conversationId)], [
      this.keys.prefix, now.toISOString(), now.getTime(),
      JSON.stringify(targets.map((t) => ({ queueId: t.teamId, timeoutMs: (t.timeoutSeconds ?? 0) * 1000 }))),
      priority, settings.stickyWindowMinutes * 60_000, ruleName,
    ])) as string[];
    return outcomeOf(r);
  }

  /** Moves a conversation to a team's queue (or 'default'), releasing its agent; the note travels in the event. */
  async transferToTeam(accountId: string, conversationId: string, teamId: string, note: string): Promise<RouteOutcome> {
    if (teamId !== defaultQueueId && !(await this.teams.get(accountId, teamId))) throw badRequest(`teamId: unknown team ${teamId}`);
    const now = new Date();
    const r = (await runScript(this.redis, 'transferToQueue', [this.keys.conversation(conversationId)], [
      this.keys.prefix, now.toISOString(), now.getTime(), teamId, note,
    ])) as string[];
    if (r[0] === 'missing') throw notFound('conversation');
    if (r[0] === 'closed') throw conflict('the conversation is resolved');
    return outcomeOf(r);
  }

  /** An agent answers an offer. Returns false when no offer to this agent is pending. */
  async respondToOffer(conversationId: string, agentId: string, decision: 'accept' | 'decline'): Promise<boolean> {
    const now = new Date();
    const r = (await runScript(this.redis, 'respondToOffer', [this.keys.conversation(conversationId)], [
      this.keys.prefix, now.toISOString(), now.getTime(), agentId, decision, '',
    ])) as string[];
    if (r[0] === 'closed') throw conflict('the conversation is resolved');
    return r[0] === 'assigned' || r[0] === 'declined';
  }

  /** An agent takes the next waiting conversation from a queue it serves (manual strategy). */
  async takeFromQueue(accountId: string, agentId: string, queueId: string): Promise<string | undefined> {
    const now = new Date();
    const r = (await runScript(this.redis, 'takeFromQueue', [this.keys.agentState(agentId)], [
      this.keys.prefix, now.toISOString(), now.getTime(), accountId, agentId, queueId,
    ])) as string[];
    if (r[0] === 'notmember') throw notFound('queue');
    if (r[0] === 'full') throw conflict('the agent is at capacity');
    return r[0] === 'assigned' ? r[1] : undefined;
  }

  /** Where a waiting conversation stands: its queue, position and an estimate from the queue's recent pace. */
  async queuePosition(conversation: { id: string; accountId: string; channel: string }) {
    const [teamId, offeredTo] = await this.redis.hmget(this.keys.conversation(conversation.id), 'teamId', 'offeredTo');
    if (!teamId) return { teamId: null, position: null, estimatedWaitSeconds: null, offeredTo: null };
    const [rank, paceMs] = await Promise.all([
      this.redis.zrank(this.keys.routingQueue(conversation.accountId, teamId, `waiting:${conversation.channel}`), conversation.id),
      this.redis.hget(this.keys.routingQueue(conversation.accountId, teamId, 'cfg'), 'paceMs'),
    ]);
    const position = rank === null ? null : rank + 1;
    return {
      teamId: teamId === defaultQueueId ? null : teamId,
      position,
      estimatedWaitSeconds: position !== null && paceMs ? Math.ceil((Number(paceMs) * position) / 1000) : null,
      offeredTo: offeredTo ?? null,
    };
  }

  /** Supervisor view: every queue with its waiting count, oldest wait and members online. */
  async queueOverview(accountId: string): Promise<QueueOverview[]> {
    const settings = await this.settings(accountId);
    const queues = [
      { id: defaultQueueId, name: 'Every agent', strategy: settings.strategy, offerTimeoutSeconds: settings.offerTimeoutSeconds },
      ...(await this.teams.listAll(accountId)).map((t) => ({ id: t.id, name: t.name, strategy: t.strategy, offerTimeoutSeconds: t.offerTimeoutSeconds })),
    ];
    const now = Date.now();
    return Promise.all(queues.map(async (q) => {
      const pipeline = this.redis.pipeline();
      for (const channel of routingChannels) pipeline.zrange(this.keys.routingQueue(accountId, q.id, `waiting:${channel}`), '0', '-1', 'WITHSCORES');
      pipeline.smembers(this.keys.routingQueue(accountId, q.id, 'members'));
      pipeline.hget(this.keys.routingQueue(accountId, q.id, 'cfg'), 'paceMs');
      const results = ((await pipeline.exec()) ?? []).map(([, v]) => v);
      const waitingByChannel: Record<string, number> = {};
      let oldest: number | undefined;
      routingChannels.forEach((channel, i) => {
        const entries = results[i] as string[];
        waitingByChannel[channel] = entries.length / 2;
        // score = (100 - priority) * 1e13 + waiting since (ms)
        for (let j = 1; j < entries.length; j += 2) {
          const since = Number(entries[j]) % 1e13;
          if (oldest === undefined || since < oldest) oldest = since;
        }
      });
      const members = results[routingChannels.length] as string[];
      const statuses = members.length ? await this.redis.pipeline(members.map((id) => ['hget', this.keys.agentState(id), 'status'])).exec() : [];
      const paceMs = results[routingChannels.length + 1] as string | null;
      return {
        ...q,
        waiting: Object.values(waitingByChannel).reduce((a, b) => a + b, 0),
        waitingByChannel,
        oldestWaitSeconds: oldest === undefined ? null : Math.max(0, Math.round((now - oldest) / 1000)),
        members: members.length,
        membersOnline: (statuses ?? []).filter(([, s]) => s === 'online').length,
        estimatedWaitSecondsPerPosition: paceMs ? Math.ceil(Number(paceMs) / 1000) : null,
      };
    }));
  }
}

function outcomeOf(r: string[]): RouteOutcome {
  if (r[0] === 'assigned' || r[0] === 'offered') return { state: r[0], agentId: r[1]! };
  if (r[0] === 'queued') return { state: 'queued', position: Number(r[1]) };
  return { state: r[0] as 'waiting' | 'closed' | 'missing' };
}

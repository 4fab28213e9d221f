// Agents: people who answer conversations. Each has its own token (stored hashed) and live state
// (status, capacity, load) kept in Redis where the assignment scripts read it.
import type { Redis } from 'ioredis';
import { z } from 'zod';
import { runScript } from '../commands/index.ts';
import { generateSecret, hashSecret } from '../crypto/tokens.ts';
import { newId } from '../ids.ts';
import { channelSchema } from '../schema/message.ts';
import type { Keyspace } from '../redis/keys.ts';
import { RecordStore, type AccountRecord } from '../store/recordStore.ts';

export const agentStatusSchema = z.enum(['online', 'away', 'busy', 'offline']);
export type AgentStatus = z.infer<typeof agentStatusSchema>;

export const agentSchema = z.object({
  id: z.string(),
  accountId: z.string(),
  name: z.string(),
  email: z.string().optional(),
  role: z.enum(['agent', 'supervisor']),
  capacity: z.number().int().min(0).max(1000).describe('conversations at once, per channel unless capacities says otherwise'),
  capacities: z.partialRecord(channelSchema, z.number().int().min(0).max(1000)).optional()
    .describe('per channel, e.g. {"webchat": 5, "email": 20}; a channel not named uses capacity'),
  skills: z.array(z.string().trim().min(1).max(100)).max(100).optional().describe('labels for supervisors and team building'),
  autoAwaySeconds: z.number().int().refine((n) => n === 0 || (n >= 30 && n <= 86_400), '0 (off) or 30 to 86400').optional()
    .describe('online with no activity (socket frames) this long becomes away; 0 or absent = off'),
  createdAt: z.string(),
  updatedAt: z.string(),
});
export type AgentRecord = z.infer<typeof agentSchema> & AccountRecord;

export const agentStateSchema = z.object({
  status: agentStatusSchema, capacity: z.number(), load: z.number().describe('conversations held or offered, all channels'),
  loads: z.record(z.string(), z.number()).describe('per channel'), capacities: z.record(z.string(), z.number()).describe('per channel, effective'),
  statusSince: z.string().nullable(), queues: z.array(z.string()).describe("the routing queues it serves: team ids and 'default'"),
});
export type AgentState = z.infer<typeof agentStateSchema>;

export class AgentDirectory {
  readonly records: RecordStore<AgentRecord>;

  constructor(private readonly redis: Redis, private readonly keyspace: Keyspace) {
    this.records = new RecordStore<AgentRecord>(redis, keyspace, 'agent');
  }

  async create(accountId: string, input: Omit<AgentRecord, 'id' | 'accountId' | 'createdAt' | 'updatedAt'>) {
    const now = new Date().toISOString();
    const agent: AgentRecord = { id: newId('agt'), accountId, ...input, createdAt: now, updatedAt: now };
    await this.records.put(agent);
    await this.setPresence(agent, { capacity: agent.capacity, capacities: agent.capacities ?? {}, autoAwaySeconds: agent.autoAwaySeconds ?? 0 });
    const token = await this.issueToken(agent);
    return { agent, token };
  }

  /** A new token replaces the old one at once. */
  async issueToken(agent: AgentRecord): Promise<string> {
    const token = generateSecret('gwa_');
    const previous = await this.redis.get(this.keyspace.record('agenttokenhash', agent.id));
    const multi = this.redis.multi();
    if (previous) multi.del(this.keyspace.agentToken(previous));
    multi.set(this.keyspace.agentToken(hashSecret(token)), agent.id);
    multi.set(this.keyspace.record('agenttokenhash', agent.id), hashSecret(token));
    await multi.exec();
    return token;
  }

  async agentForToken(token: string): Promise<AgentRecord | undefined> {
    const agentId = await this.redis.get(this.keyspace.agentToken(hashSecret(token)));
    return agentId ? this.records.getAnyAccount(agentId) : undefined;
  }

  async state(agentId: string): Promise<AgentState> {
    const [fields, queues] = await Promise.all([
      this.redis.hgetall(this.keyspace.agentState(agentId)),
      this.redis.smembers(`${this.keyspace.agentState(agentId)}:queues`),
    ]);
    const capacity = Number(fields.capacity ?? 0);
    const loads: Record<string, number> = {};
    const capacities: Record<string, number> = {};
    for (const channel of channelSchema.options) {
      loads[channel] = Number(fields[`load:${channel}`] ?? 0);
      capacities[channel] = Number(fields[`cap:${channel}`] ?? capacity);
    }
    return {
      status: (fields.status as AgentStatus) ?? 'offline', capacity, load: Number(fields.load ?? 0), loads, capacities,
      statusSince: fields.statusSince ?? null, queues: queues.sort(),
    };
  }

  /** Status, capacities and auto-away move in one script, which also hands waiting conversations to freed capacity. */
  async setPresence(agent: AgentRecord, change: {
    status?: AgentStatus; capacity?: number; capacities?: Partial<Record<string, number>>; autoAwaySeconds?: number;
  }): Promise<AgentState> {
    await runScript(this.redis, 'updateAgentPresence', [this.keyspace.agentState(agent.id)], [
      this.keyspace.prefix, new Date().toISOString(), Date.now(), agent.accountId, agent.id, change.status ?? '', change.capacity ?? '',
      change.capacities ? JSON.stringify(change.capacities) : '', change.autoAwaySeconds === undefined ? '' : change.autoAwaySeconds * 1000,
    ]);
    return this.state(agent.id);
  }

  private readonly activityNoted = new Map<string, number>();

  /** Pushes back the agent's auto-away; written at most every 10 s per agent and process. */
  async recordActivity(agentId: string): Promise<void> {
    const now = Date.now();
    if (now - (this.activityNoted.get(agentId) ?? 0) < 10_000) return;
    this.activityNoted.set(agentId, now);
    if (this.activityNoted.size > 10_000) this.activityNoted.clear();
    await runScript(this.redis, 'recordAgentActivity', [this.keyspace.agentState(agentId)], [this.keyspace.routingTimers, now, agentId]);
  }

  /** The agent goes offline, leaves every queue, and what it held goes back to the queues at once. */
  async remove(agent: AgentRecord): Promise<void> {
    await runScript(this.redis, 'removeAgent', [this.keyspace.agentState(agent.id)], [
      this.keyspace.prefix, new Date().toISOString(), Date.now(), agent.accountId, agent.id,
    ]);
    const previous = await this.redis.get(this.keyspace.record('agenttokenhash', agent.id));
    if (previous) await this.redis.del(this.keyspace.agentToken(previous), this.keyspace.record('agenttokenhash', agent.id));
    await this.records.delete(agent.accountId, agent.id);
  }
}

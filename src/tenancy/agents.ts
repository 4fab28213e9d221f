// Agents: people who answer conversations. Each has its own token (stored hashed) and live state
// (status, capacity, load) kept in Redis where the assignment scripts read it.
import type { Redis } from 'ioredis';
import { z } from 'zod';
import { runScript } from '../commands/index.ts';
import { generateSecret, hashSecret } from '../crypto/tokens.ts';
import { newId } from '../ids.ts';
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
  capacity: z.number().int().min(0).max(1000).describe('conversations at once'),
  createdAt: z.string(),
  updatedAt: z.string(),
});
export type AgentRecord = z.infer<typeof agentSchema> & AccountRecord;

export const agentStateSchema = z.object({ status: agentStatusSchema, capacity: z.number(), load: z.number() });
export type AgentState = z.infer<typeof agentStateSchema>;

export class AgentDirectory {
  readonly records: RecordStore<AgentRecord>;

  constructor(private readonly redis: Redis, private readonly keyspace: Keyspace) {
    this.records = new RecordStore<AgentRecord>(redis, keyspace, 'agent');
  }

  async create(accountId: string, input: { name: string; email?: string; role: 'agent' | 'supervisor'; capacity: number }) {
    const now = new Date().toISOString();
    const agent: AgentRecord = { id: newId('agt'), accountId, ...input, createdAt: now, updatedAt: now };
    await this.records.put(agent);
    await this.setPresence(agent, { capacity: agent.capacity });
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
    const raw = await this.redis.hmget(this.keyspace.agentState(agentId), 'status', 'capacity', 'load');
    return { status: (raw[0] as AgentStatus) ?? 'offline', capacity: Number(raw[1] ?? 0), load: Number(raw[2] ?? 0) };
  }

  /** Status and capacity move in one script, which also hands waiting conversations to freed capacity. */
  async setPresence(agent: AgentRecord, change: { status?: AgentStatus; capacity?: number }): Promise<AgentState> {
    const result = (await runScript(
      this.redis, 'updateAgentPresence',
      [this.keyspace.onlineAgents(agent.accountId), this.keyspace.waitingConversations(agent.accountId)],
      [this.keyspace.prefix, new Date().toISOString(), agent.accountId, agent.id, change.status ?? '', change.capacity ?? ''],
    )) as string[];
    return { status: result[0] as AgentStatus, capacity: Number(result[1]), load: Number(result[2]) };
  }

  async remove(agent: AgentRecord): Promise<void> {
    await this.setPresence(agent, { status: 'offline' });
    const previous = await this.redis.get(this.keyspace.record('agenttokenhash', agent.id));
    if (previous) await this.redis.del(this.keyspace.agentToken(previous), this.keyspace.record('agenttokenhash', agent.id));
    await this.records.delete(agent.accountId, agent.id);
  }
}

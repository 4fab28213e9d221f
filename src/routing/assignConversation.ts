// The routing seam: today the least busy online agent with room, or the account's waiting queue.
// The routing core (teams, rules, strategies) replaces what happens behind assignConversation.
import type { Redis } from 'ioredis';
import { runScript } from '../commands/index.ts';
import type { Keyspace } from '../redis/keys.ts';

export type AssignmentOutcome = { state: 'assigned'; agentId: string } | { state: 'waiting' | 'queued' | 'closed' | 'missing' };

export async function assignConversation(redis: Redis, keys: Keyspace, accountId: string, conversationId: string): Promise<AssignmentOutcome> {
  // One clock reading, so waitingSince and the waiting queue's score agree on who waited longest.
  const now = new Date();
  const r = (await runScript(redis, 'assignConversation', [
    keys.conversation(conversationId), keys.onlineAgents(accountId), keys.waitingConversations(accountId),
  ], [keys.prefix, now.toISOString(), now.getTime()])) as string[];
  return r[0] === 'assigned' ? { state: 'assigned', agentId: r[1]! } : { state: r[0] as 'waiting' };
}

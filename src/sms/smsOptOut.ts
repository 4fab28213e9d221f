// Opt-out keywords: a message that is exactly STOP, UNSUBSCRIBE, 退订 or TD (any case, surrounding
// spaces and punctuation ignored) opts the sender out of SMS from that inbox; START or 订阅 opts them
// back in. The message itself still reaches the agents.
import type { Redis } from 'ioredis';
import { runScript } from '../commands/index.ts';
import { keyDigest, newId } from '../ids.ts';
import type { Keyspace } from '../redis/keys.ts';

const optOutKeywords = new Set(['STOP', 'UNSUBSCRIBE', '退订', 'TD']);
const optInKeywords = new Set(['START', '订阅']);

export function optOutKeyword(text: string): { action: 'out' | 'in'; keyword: string } | undefined {
  const word = text.trim().replace(/^[\s\p{P}]+|[\s\p{P}]+$/gu, '').toUpperCase();
  if (optOutKeywords.has(word)) return { action: 'out', keyword: word };
  if (optInKeywords.has(word)) return { action: 'in', keyword: word };
  return undefined;
}

export class SmsOptOuts {
  constructor(private readonly redis: Redis, private readonly keys: Keyspace, private readonly dedupSeconds: number) {}

  /** Records the keyword of one inbound message (by its provider id: a repeated push changes nothing). */
  async record(input: { accountId: string; inboxId: string; phone: string; externalId: string; action: 'out' | 'in'; keyword: string }): Promise<string> {
    const r = (await runScript(this.redis, 'recordSmsOptOut', [
      this.keys.smsOptOuts(input.inboxId),
      this.keys.contactIdentity(input.accountId, 'sms', keyDigest(input.phone)),
      this.keys.smsOptOutDedup(input.inboxId, keyDigest(input.externalId)),
    ], [
      this.keys.prefix, new Date().toISOString(), newId('ct'), input.accountId, input.phone, input.inboxId,
      input.action, input.keyword, this.dedupSeconds,
    ])) as string[];
    return r[0]!;
  }

  /** When the number opted out of this inbox, or undefined. */
  async optedOutAt(inboxId: string, phone: string): Promise<string | undefined> {
    return (await this.redis.hget(this.keys.smsOptOuts(inboxId), phone)) ?? undefined;
  }
}

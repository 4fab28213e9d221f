// Delivery receipts move an outbound SMS forward (queued → sent → delivered / failed) through the
// updateMessageStatus script, which never moves a status back and emits nothing when nothing changes.
// A receipt can beat the send's own answer (the provider's id is not yet known here): it is kept a
// day and applied once the sender learns the id.
import type { Redis } from 'ioredis';
import type { SmsReceipt } from '../../adapters/sms/smsProvider.ts';
import { keyDigest } from '../ids.ts';
import type { Keyspace } from '../redis/keys.ts';
import { updateMessageStatus } from '../outbound/outboundWorker.ts';

const earlyReceiptSeconds = 86_400;

export type ReceiptOutcome = 'updated' | 'unchanged' | 'early' | 'unknown';

export class SmsReceipts {
  constructor(private readonly redis: Redis, private readonly keys: Keyspace, private readonly mappingSeconds: number) {}

  async apply(inboxId: string, receipt: SmsReceipt): Promise<ReceiptOutcome> {
    const messageId = receipt.messageId
      ?? (receipt.externalId ? await this.redis.get(this.keys.smsProviderMessage(inboxId, keyDigest(receipt.externalId))) : null);
    if (!messageId) {
      if (!receipt.externalId) return 'unknown';
      return this.keepEarly(inboxId, receipt.externalId, receipt);
    }
    // Our own id (Aliyun out_id, Vonage client-ref) before the send's answer: kept too, so message.sent comes first.
    if (receipt.messageId) {
      const [body, status] = await this.redis.hmget(this.keys.message(messageId), 'body', 'status');
      // A receipt naming another inbox's message (a guessed out_id) changes nothing.
      if (!body || (JSON.parse(body) as { inboxId?: string }).inboxId !== inboxId) return 'unknown';
      if (status === 'queued') return this.keepEarly(inboxId, receipt.externalId ?? ownIdKey(messageId), receipt);
    }
    return this.applyTo(inboxId, messageId, receipt);
  }

  /** Every one is kept (sent, then delivered may both come early); applying them in any order is safe. */
  private async keepEarly(inboxId: string, id: string, receipt: SmsReceipt): Promise<ReceiptOutcome> {
    const key = this.keys.smsEarlyReceipt(inboxId, keyDigest(id));
    await this.redis.multi().rpush(key, JSON.stringify(receipt)).ltrim(key, -20, -1).expire(key, earlyReceiptSeconds).exec();
    return 'early';
  }

  /** The gateway message a provider id belongs to, if any. */
  async messageFor(inboxId: string, externalId: string): Promise<string | null> {
    return this.redis.get(this.keys.smsProviderMessage(inboxId, keyDigest(externalId)));
  }

  /** The sender learned the provider's id(s) of a message: remember them, then apply any receipt that came first. */
  async remember(inboxId: string, messageId: string, externalIds: string[]): Promise<void> {
    const multi = this.redis.multi();
    for (const id of externalIds) multi.set(this.keys.smsProviderMessage(inboxId, keyDigest(id)), messageId, 'EX', this.mappingSeconds);
    await multi.exec();
    for (const id of [...externalIds, ownIdKey(messageId)]) {
      const key = this.keys.smsEarlyReceipt(inboxId, keyDigest(id));
      const early = await this.redis.lrange(key, 0, -1);
      for (const receipt of early) await this.applyTo(inboxId, messageId, JSON.parse(receipt) as SmsReceipt);
      if (early.length) await this.redis.del(key);
    }
  }

  private async applyTo(inboxId: string, messageId: string, receipt: SmsReceipt): Promise<ReceiptOutcome> {
    const [body, conversationId] = await this.redis.hmget(this.keys.message(messageId), 'body', 'conversationId');
    // A receipt naming another inbox's message (a guessed out_id) changes nothing.
    if (!body || !conversationId || (JSON.parse(body) as { inboxId?: string }).inboxId !== inboxId) return 'unknown';
    const updated = await updateMessageStatus(this.redis, this.keys, messageId, conversationId, {
      status: receipt.status, ...(receipt.externalId ? { externalId: receipt.externalId } : {}),
      ...(receipt.errorCode ? { errorCode: receipt.errorCode, errorMessage: receipt.errorMessage ?? receipt.errorCode } : {}),
    });
    return updated ? 'updated' : 'unchanged';
  }
}

/** Where an early receipt that names only our own message id waits. */
function ownIdKey(messageId: string): string {
  return `own:${messageId}`;
}

// Consumes `outbound`: sends one stored reply through its channel's adapter and records the result.
// A message that is no longer `queued` is never sent again, and an adapter's delivering call is made at most
// once per message (src/outbound/sendMarker.ts), so retries, redeliveries and crashes never send twice.
import type { Job } from 'bullmq';
import { DelayedError, UnrecoverableError } from 'bullmq';
import type { Redis } from 'ioredis';
import { PermanentSendError, RetryableSendError, SendInFlightError, type ChannelAdapter } from '../../adapters/channelAdapter.ts';
import { runScript } from '../commands/index.ts';
import type { ConversationStore } from '../conversations/conversationStore.ts';
import type { InboxDirectory } from '../inboxes/inboxDirectory.ts';
import type { Logger } from '../logger.ts';
import type { Keyspace } from '../redis/keys.ts';
import { outboundJobSchema } from '../queues.ts';
import { SendMarkers } from './sendMarker.ts';

export async function updateMessageStatus(
  redis: Redis, keys: Keyspace, messageId: string, conversationId: string,
  change: { status: 'sent' | 'delivered' | 'read' | 'failed'; externalId?: string; errorCode?: string; errorMessage?: string },
): Promise<boolean> {
  const r = (await runScript(redis, 'updateMessageStatus', [keys.message(messageId), keys.conversation(conversationId)], [
    keys.prefix, new Date().toISOString(), change.status, change.externalId ?? '', change.errorCode ?? '', change.errorMessage ?? '',
  ])) as string[];
  return r[0] === 'updated';
}

export function createOutboundProcessor(deps: {
  redis: Redis; keys: Keyspace; log: Logger; conversations: ConversationStore; inboxes: InboxDirectory;
  adapters: Record<string, ChannelAdapter>;
}) {
  const { redis, keys } = deps;
  const markers = new SendMarkers(redis, keys);
  return async function processOutbound(job: Job, token?: string): Promise<string> {
    const data = outboundJobSchema.parse(job.data);
    const message = await deps.conversations.message(data.messageId);
    if (!message || message.accountId !== data.accountId) return 'missing';
    if (message.status !== 'queued') return 'already-' + message.status;
    const fail = async (code: string, text: string) => {
      await updateMessageStatus(redis, keys, message.id, message.conversationId, { status: 'failed', errorCode: code, errorMessage: text });
      return 'failed';
    };
    const conversation = await deps.conversations.conversation(data.accountId, message.conversationId);
    const inbox = await deps.inboxes.records.get(data.accountId, message.inboxId);
    if (!conversation || !inbox) return fail('inbox_missing', 'the inbox or conversation no longer exists');
    const adapter = deps.adapters[inbox.type];
    if (!adapter) return fail('channel_unavailable', `sending through ${inbox.type} inboxes is not available yet`);
    try {
      // An attempt that got the message to the provider (its status write failed, or the process died after it).
      const sent = (await markers.earlierAttempt(message.id))?.sent ?? await adapter.send({
        inbox, credentials: deps.inboxes.credentials(inbox), to: conversation.channelId, message,
        deliverOnce: markers.deliverOnceFor(message.id),
        ...(adapter.threadsReplies
          ? { earlier: (await deps.conversations.messages(conversation.id, { before: message.seq, limit: 50 })).items.reverse() } : {}),
      });
      await updateMessageStatus(redis, keys, message.id, message.conversationId, { status: sent.status, externalId: sent.externalId });
      return sent.status;
    } catch (error) {
      if (error instanceof SendInFlightError) {
        // Not a failure: another run of this job may still be sending. Come back later without using up an attempt.
        deps.log.info({ messageId: message.id, inboxId: inbox.id }, 'another attempt is still sending this message; checking again later');
        if (token) {
          await job.moveToDelayed(Date.now() + error.retryAfterMs, token);
          throw new DelayedError();
        }
        throw error;
      }
      const lastAttempt = job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
      if (error instanceof PermanentSendError || lastAttempt) {
        const code = error instanceof PermanentSendError || error instanceof RetryableSendError ? error.code : 'send_failed';
        await fail(code, (error as Error).message);
        // The job log names no inbox: this line is how an operator finds which inbox's settings to fix.
        deps.log.warn({ messageId: message.id, inboxId: inbox.id, code, err: (error as Error).message }, 'send failed for good; message marked failed');
        if (error instanceof PermanentSendError) throw new UnrecoverableError(error.message);
        throw error;
      }
      deps.log.warn({ messageId: message.id, inboxId: inbox.id, attempt: job.attemptsMade + 1, err: (error as Error).message }, 'send failed; will retry');
      throw error;
    }
  };
}

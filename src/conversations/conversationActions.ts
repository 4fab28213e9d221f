// What agents and the API do to a conversation: reply, resolve, reopen, assign, transfer. Each state
// move is one script; this module only prepares its inputs and turns its answer into a result.
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { runScript } from '../commands/index.ts';
import { hashSecret } from '../crypto/tokens.ts';
import { badRequest, conflict, HttpError, notFound } from '../http/errors.ts';
import { idempotencyKeyReused, type IdempotentRequest } from '../http/idempotency.ts';
import { newId } from '../ids.ts';
import type { Keyspace } from '../redis/keys.ts';
import { outboundJobId } from '../outbound/outboxSweeper.ts';
import { jobOptions, type OutboundJob } from '../queues.ts';
import type { Router } from '../routing/router.ts';
import type { Channel, MessageContent, NormalizedMessage } from '../schema/message.ts';
import type { ConversationInternals, ConversationStore } from './conversationStore.ts';

const idempotencyTtlSeconds = 24 * 3600;

/** Queues a stored outbound message for its channel and returns it. Queued again on a repeated request too:
 * a crash between the store and the queue is mended by the retry (the job id dedups). */
export async function queueStoredMessage(outboundQueue: Queue, store: ConversationStore, accountId: string, messageId: string): Promise<NormalizedMessage> {
  // Queued again on a repeated request too; a crash between the store and the queue is mended by the
  // retry or, without one, by the outbox sweeper.
  const job: OutboundJob = { accountId, messageId };
  await outboundQueue.add('send', job, { ...jobOptions.outbound, jobId: outboundJobId(messageId) });
  const message = await store.message(messageId);
  if (!message) throw new HttpError(500, 'internal', 'stored message not found');
  return message;
}

export class ConversationActions {
  constructor(
    private readonly redis: Redis,
    private readonly keys: Keyspace,
    private readonly store: ConversationStore,
    private readonly outboundQueue: Queue,
    private readonly router: Router,
  ) {}

  private async open(accountId: string, conversationId: string): Promise<ConversationInternals> {
    const conversation = await this.store.conversation(accountId, conversationId);
    if (!conversation) throw notFound('conversation');
    return conversation;
  }

  /** Stores the reply (status queued) and queues it for its channel. Returns the stored message. */
  async reply(accountId: string, conversationId: string, input: {
    content: MessageContent; agentId?: string; idempotency?: IdempotentRequest;
  }): Promise<NormalizedMessage> {
    const conversation = await this.open(accountId, conversationId);
    const messageId = newId('msg');
    const now = new Date().toISOString();
    const body = JSON.stringify({
      id: messageId, accountId, inboxId: conversation.inboxId, channel: conversation.channel, direction: 'outbound',
      from: { channelId: conversation.inboxId }, to: { channelId: conversation.channelId }, sentAt: now, receivedAt: now,
      content: input.content, ...(input.agentId ? { senderAgentId: input.agentId } : {}),
    });
    const { idempotency } = input;
    const idemKey = this.keys.idempotency(accountId, idempotency ? hashSecret(`${conversationId}\n${idempotency.key}`) : 'none');
    const r = (await runScript(this.redis, 'createOutboundMessage', [this.keys.conversation(conversationId), idemKey, this.keys.message(messageId)], [
      this.keys.prefix, now, messageId, body, idempotency ? idempotencyTtlSeconds : 0, idempotency?.requestDigest ?? '',
    ])) as string[];
    if (r[0] === 'reused') throw idempotencyKeyReused();
    if (r[0] === 'missing') throw notFound('conversation');
    if (r[0] === 'closed') throw conflict('the conversation is resolved: reopen it to reply');
    return queueStoredMessage(this.outboundQueue, this.store, accountId, r[1]!);
  }

  async resolve(accountId: string, conversationId: string, resolvedBy = ''): Promise<ConversationInternals> {
    const c = await this.open(accountId, conversationId);
    const now = new Date();
    await runScript(this.redis, 'resolveConversation', [this.keys.conversation(c.id), c.openKey],
      [this.keys.prefix, now.toISOString(), resolvedBy, now.getTime()]);
    return this.open(accountId, conversationId);
  }

  async reopen(accountId: string, conversationId: string): Promise<ConversationInternals> {
    const c = await this.open(accountId, conversationId);
    const r = (await runScript(this.redis, 'reopenConversation', [this.keys.conversation(c.id), c.openKey, c.lastKey], [
      this.keys.prefix, new Date().toISOString(),
    ])) as string[];
    if (r[0] === 'conflict') throw conflict(`the contact already has an open conversation in this inbox: ${r[1]}`);
    // Routed when reopened, and on a repeated request if a crash came between the reopen and the routing.
    if (r[0] === 'reopened' || (r[0] === 'already' && !(await this.redis.hget(this.keys.conversation(c.id), 'routed')))) {
      await this.router.routeConversation(accountId, c.id, { inboxId: c.inboxId, channel: c.channel as Channel, contactId: c.contactId, text: '' });
    }
    return this.open(accountId, conversationId);
  }

  /** Manual assignment and transfer to an agent: refused when the agent is full unless forced. */
  async assignTo(accountId: string, conversationId: string, agentId: string, force: boolean, note = ''): Promise<ConversationInternals> {
    const c = await this.open(accountId, conversationId);
    const now = new Date();
    const r = (await runScript(this.redis, 'assignToAgent', [this.keys.conversation(c.id)], [
      this.keys.prefix, now.toISOString(), now.getTime(), agentId, force ? '1' : '0', note,
    ])) as string[];
    if (r[0] === 'closed') throw conflict('the conversation is resolved');
    if (r[0] === 'unknown') throw badRequest('agentId: unknown agent');
    if (r[0] === 'full') throw conflict('the agent is at capacity (send force: true to assign anyway)');
    return this.open(accountId, conversationId);
  }
}

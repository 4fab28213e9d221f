// What a CRM does through the API: message a contact through an inbox without an open conversation,
// keep contacts under its own external id, find a contact by channel identity, and add notes and
// tags to conversations. Each change is one script (src/commands) with its event; this module
// resolves the inputs and turns the scripts' answers into results or HTTP errors.
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { runScript } from '../commands/index.ts';
import { queueStoredMessage } from '../conversations/conversationActions.ts';
import type { Contact, ConversationStore } from '../conversations/conversationStore.ts';
import { hashSecret } from '../crypto/tokens.ts';
import { badRequest, conflict, notFound } from '../http/errors.ts';
import { idempotencyKeyReused, type IdempotentRequest } from '../http/idempotency.ts';
import { keyDigest, newId } from '../ids.ts';
import type { InboxDirectory, InboxRecord } from '../inboxes/inboxDirectory.ts';
import { inboxTypes } from '../inboxes/inboxTypes.ts';
import type { Keyspace } from '../redis/keys.ts';
import type { Channel, MessageContent, NormalizedMessage } from '../schema/message.ts';
import { canonicalChannelId } from './channelIdentity.ts';

const idempotencyTtlSeconds = 24 * 3600;
const maxUpsertAttempts = 10;
export const maxNotesPerConversation = 1000;
export const maxTagsPerConversation = 50;

/** Who a CRM message goes to: a known contact, or a channel identity (the contact is made on first sight). */
export type Recipient = { contactId: string } | { externalId: string } | { channelId: string; name?: string };

export interface Note {
  id: string;
  conversationId: string;
  text: string;
  author: { kind: 'api' | 'agent'; agentId?: string; name?: string };
  createdAt: string;
}

export interface SentToContact { message: NormalizedMessage; conversationCreated: boolean; contactCreated: boolean }

export class CrmActions {
  constructor(
    private readonly redis: Redis,
    private readonly keys: Keyspace,
    private readonly inboxes: InboxDirectory,
    private readonly store: ConversationStore,
    private readonly outboundQueue: Queue,
  ) {}

  private async inboxOr404(accountId: string, inboxId: string): Promise<InboxRecord> {
    return (await this.inboxes.records.get(accountId, inboxId)) ?? Promise.reject(notFound('inbox'));
  }

  /** An inbox the gateway can send through (a WeChat Pay inbox only receives notifications). */
  private async sendingInbox(accountId: string, inboxId: string): Promise<{ inbox: InboxRecord; channel: Channel }> {
    const inbox = await this.inboxOr404(accountId, inboxId);
    if (inbox.type === 'wechatpay') throw badRequest('inboxId: a WeChat Pay inbox sends no messages; use the official account (wechat) inbox');
    if (!inbox.enabled) throw conflict('the inbox is disabled');
    return { inbox, channel: inboxTypes[inbox.type].channel };
  }

  async contactByExternalId(accountId: string, externalId: string): Promise<Contact | undefined> {
    const id = await this.redis.get(this.keys.contactExternalId(accountId, keyDigest(externalId)));
    return id ? this.store.contact(accountId, id) : undefined;
  }

  /** The contact behind a channel identity in an inbox's channel, if the gateway has met it. */
  async lookup(accountId: string, inboxId: string, rawChannelId: string, channel?: Channel): Promise<Contact | undefined> {
    const inbox = await this.inboxOr404(accountId, inboxId);
    const inboxChannel = inboxTypes[inbox.type].channel;
    if (channel && channel !== inboxChannel) throw badRequest(`channel: the inbox is a ${inboxChannel} inbox`);
    const channelId = canonicalChannelId(inboxChannel, rawChannelId);
    const id = await this.redis.get(this.keys.contactIdentity(accountId, inboxChannel, keyDigest(channelId)));
    return id ? this.store.contact(accountId, id) : undefined;
  }

  /** Stores the message (status queued) in the contact's open conversation in the inbox, opened if need be, and queues it once. */
  async sendToContact(accountId: string, inboxId: string, input: {
    to: Recipient; content: MessageContent; idempotency?: IdempotentRequest;
  }): Promise<SentToContact> {
    const { inbox, channel } = await this.sendingInbox(accountId, inboxId);
    let channelId: string;
    let expectedContactId = '';
    let name = '';
    if ('channelId' in input.to) {
      channelId = canonicalChannelId(channel, input.to.channelId);
      name = input.to.name ?? '';
    } else {
      const contact = 'contactId' in input.to
        ? await this.store.contact(accountId, input.to.contactId)
        : await this.contactByExternalId(accountId, input.to.externalId);
      if (!contact) throw notFound('contact');
      if (contact.channel !== channel) throw badRequest(`to: the contact is reached on ${contact.channel}, the inbox sends on ${channel}`);
      channelId = contact.channelId;
      expectedContactId = contact.id;
    }
    const identity = keyDigest(channelId);
    const messageId = newId('msg');
    const now = new Date().toISOString();
    const body = JSON.stringify({
      id: messageId, accountId, inboxId, channel, direction: 'outbound',
      from: { channelId: inboxId }, to: { channelId }, sentAt: now, receivedAt: now, content: input.content,
    });
    const { idempotency } = input;
    const idemKey = this.keys.idempotency(accountId, idempotency ? hashSecret(`send\n${inboxId}\n${idempotency.key}`) : 'none');
    const r = (await runScript(this.redis, 'sendToContact', [
      idemKey, this.keys.contactIdentity(accountId, channel, identity), this.keys.openConversation(inboxId, identity),
      this.keys.lastConversation(inboxId, identity), this.keys.message(messageId),
    ], [
      this.keys.prefix, now, accountId, inboxId, channel, channelId, newId('ct'), newId('cv'), messageId, body,
      idempotency ? idempotencyTtlSeconds : 0, this.keys.sequence(inboxId, identity),
      inbox.type === 'webchat' ? `${inboxId}/${channelId}` : '', name, expectedContactId, idempotency?.requestDigest ?? '',
    ])) as string[];
    if (r[0] === 'reused') throw idempotencyKeyReused();
    if (r[0] === 'mismatch') throw conflict('the contact changed while the message was prepared; try again');
    const message = await queueStoredMessage(this.outboundQueue, this.store, accountId, r[1]!);
    return { message, conversationCreated: Number(r[4]) === 1, contactCreated: Number(r[5]) === 1 };
  }

  /**
   * Creates or changes the contact the CRM knows by externalId. A channel identity (inboxId +
   * channelId) is needed to create one; it links an existing contact of that identity.
   */
  async upsertContact(accountId: string, externalId: string, input: {
    inboxId?: string; channelId?: string; name?: string; attributes?: Record<string, unknown>;
  }): Promise<{ contact: Contact; outcome: 'created' | 'updated' | 'unchanged' }> {
    let channel = '';
    let channelId = '';
    if (input.inboxId) {
      const inbox = await this.inboxOr404(accountId, input.inboxId);
      channel = inboxTypes[inbox.type].channel;
      channelId = canonicalChannelId(channel as Channel, input.channelId!);
    }
    const externalKey = this.keys.contactExternalId(accountId, keyDigest(externalId));
    const identityKey = channel ? this.keys.contactIdentity(accountId, channel, keyDigest(channelId)) : externalKey;
    for (let attempt = 0; attempt < maxUpsertAttempts; attempt++) {
      const readId = (await this.redis.get(externalKey)) ?? (channel ? await this.redis.get(identityKey) : null) ?? '';
      const read = (readId && (await this.redis.hget(this.keys.contact(readId), 'attributes'))) || '{}';
      const merged = input.attributes ? JSON.stringify({ ...(JSON.parse(read) as Record<string, unknown>), ...input.attributes }) : '';
      if (merged.length > 16_384) throw badRequest('attributes: at most 16 KiB');
      const r = (await runScript(this.redis, 'upsertContact', [externalKey, identityKey], [
        this.keys.prefix, new Date().toISOString(), accountId, externalId, newId('ct'), channel, channelId, input.inboxId ?? '',
        readId, read, merged, input.name ?? '',
      ])) as string[];
      switch (r[0]) {
        case 'changed': continue;
        case 'missing': throw notFound('contact (to create one, give inboxId and channelId)');
        case 'linked': throw conflict('that channel identity belongs to a contact with another externalId');
        case 'identity': throw conflict('the contact with this externalId has another channel identity');
      }
      const contact = await this.store.contact(accountId, r[1]!);
      if (!contact) throw notFound('contact');
      return { contact, outcome: r[0] as 'created' | 'updated' | 'unchanged' };
    }
    throw conflict('the contact kept changing while being updated; try again');
  }

  async addNote(accountId: string, conversationId: string, input: {
    text: string; author: Note['author']; idempotency?: IdempotentRequest;
  }): Promise<{ note: Note; created: boolean }> {
    const conversation = await this.store.conversation(accountId, conversationId);
    if (!conversation) throw notFound('conversation');
    const note: Note = { id: newId('note'), conversationId: conversation.id, text: input.text, author: input.author, createdAt: new Date().toISOString() };
    const { idempotency } = input;
    const idemKey = this.keys.idempotency(accountId, idempotency ? hashSecret(`note\n${conversation.id}\n${idempotency.key}`) : 'none');
    const r = (await runScript(this.redis, 'addConversationNote', [this.keys.conversation(conversation.id), idemKey], [
      this.keys.prefix, note.createdAt, note.id, JSON.stringify(note), idempotency ? idempotencyTtlSeconds : 0, maxNotesPerConversation,
      idempotency?.requestDigest ?? '',
    ])) as string[];
    if (r[0] === 'reused') throw idempotencyKeyReused();
    if (r[0] === 'missing') throw notFound('conversation');
    if (r[0] === 'full') throw conflict(`the conversation has ${maxNotesPerConversation} notes, the most it keeps`);
    return { note: JSON.parse(r[1]!) as Note, created: r[0] === 'added' };
  }

  /** Notes oldest first; the cursor is the index of the next note. */
  async notes(accountId: string, conversationId: string, options: { cursor?: string; limit: number }): Promise<{ items: Note[]; nextCursor: string | null }> {
    const conversation = await this.store.conversation(accountId, conversationId);
    if (!conversation) throw notFound('conversation');
    const start = Number(options.cursor ?? 0);
    if (!Number.isInteger(start) || start < 0) throw badRequest('cursor: the nextCursor of the previous page');
    const raws = await this.redis.lrange(this.keys.conversationNotes(conversation.id), start, start + options.limit);
    const items = raws.slice(0, options.limit).map((raw) => JSON.parse(raw) as Note);
    return { items, nextCursor: raws.length > options.limit ? String(start + options.limit) : null };
  }

  async changeTags(accountId: string, conversationId: string, change: { add: string[]; remove: string[] }): Promise<string[]> {
    const conversation = await this.store.conversation(accountId, conversationId);
    if (!conversation) throw notFound('conversation');
    const r = (await runScript(this.redis, 'tagConversation', [this.keys.conversation(conversation.id)], [
      this.keys.prefix, new Date().toISOString(), JSON.stringify(change.add), JSON.stringify(change.remove), maxTagsPerConversation,
    ])) as string[];
    if (r[0] === 'missing') throw notFound('conversation');
    if (r[0] === 'full') throw badRequest(`tags: a conversation carries at most ${maxTagsPerConversation} tags`);
    return JSON.parse(r[1]!) as string[];
  }
}

// Reads contacts, conversations and messages as the scripts store them (Redis hashes).
import type { Redis } from 'ioredis';
import { z } from 'zod';
import type { Keyspace } from '../redis/keys.ts';
import type { NormalizedMessage } from '../schema/message.ts';
import { listByIndex, type Page } from '../store/recordStore.ts';

export const conversationSchema = z.object({
  id: z.string(),
  accountId: z.string(),
  inboxId: z.string(),
  contactId: z.string(),
  channel: z.string(),
  status: z.enum(['open', 'resolved']),
  assigneeId: z.string().nullable(),
  teamId: z.string().nullable().describe('the team whose queue routed it (null: the default queue, every agent)'),
  priority: z.number().describe('0-100 from the routing rule; higher waits less'),
  waitingSince: z.string().nullable(),
  createdAt: z.string(),
  updatedAt: z.string(),
  lastMessageAt: z.string().nullable(),
  resolvedAt: z.string().nullable(),
  tags: z.array(z.string()).describe("the conversation's own tags (apart from the contact's)"),
});
export type Conversation = z.infer<typeof conversationSchema>;

export const contactSchema = z.object({
  id: z.string(),
  accountId: z.string(),
  channel: z.string(),
  channelId: z.string(),
  name: z.string(),
  inboxId: z.string(),
  attributes: z.record(z.string(), z.unknown()),
  externalId: z.string().nullable().describe("the CRM's own id for the contact (unique per account)"),
  createdAt: z.string(),
  updatedAt: z.string(),
});
export type Contact = z.infer<typeof contactSchema>;

export interface ConversationInternals extends Conversation {
  channelId: string;
  visitorHint: string;
  openKey: string;
  lastKey: string;
  sequenceKey: string;
}

const idPattern = /^[A-Za-z0-9_-]{1,100}$/;

export function messageFromHash(fields: Record<string, string>): NormalizedMessage | undefined {
  if (!fields.body) return undefined;
  const message = JSON.parse(fields.body) as NormalizedMessage;
  message.conversationId = fields.conversationId!;
  message.contactId = fields.contactId!;
  message.seq = Number(fields.seq);
  if (fields.status) message.status = fields.status as NormalizedMessage['status'];
  if (fields.externalId) message.externalId = fields.externalId;
  if (fields.errorCode) message.error = { code: fields.errorCode, message: fields.errorMessage ?? '' };
  return message;
}

function conversationFromHash(fields: Record<string, string>): ConversationInternals | undefined {
  if (!fields.id) return undefined;
  return {
    id: fields.id, accountId: fields.accountId!, inboxId: fields.inboxId!, contactId: fields.contactId!,
    channel: fields.channel!, status: fields.status as 'open' | 'resolved', assigneeId: fields.assigneeId || null,
    teamId: fields.teamId && fields.teamId !== 'default' ? fields.teamId : null, priority: Number(fields.priority ?? 0),
    waitingSince: fields.waitingSince ?? null, createdAt: fields.createdAt!, updatedAt: fields.updatedAt!,
    lastMessageAt: fields.lastMessageAt ?? null, resolvedAt: fields.resolvedAt ?? null, tags: fields.tags ? JSON.parse(fields.tags) as string[] : [],
    channelId: fields.channelId!, visitorHint: fields.visitorHint ?? '', openKey: fields.openKey!, lastKey: fields.lastKey!, sequenceKey: fields.sequenceKey!,
  };
}

export function publicConversation(c: ConversationInternals): Conversation {
  const { channelId: _c, visitorHint: _v, openKey: _o, lastKey: _l, sequenceKey: _s, ...rest } = c;
  return rest;
}

export class ConversationStore {
  constructor(private readonly redis: Redis, private readonly keys: Keyspace) {}

  async conversation(accountId: string, id: string): Promise<ConversationInternals | undefined> {
    if (!idPattern.test(id)) return undefined;
    const c = conversationFromHash(await this.redis.hgetall(this.keys.conversation(id)));
    return c && c.accountId === accountId ? c : undefined;
  }

  async listConversations(accountId: string, options: {
    cursor?: string; limit: number; status?: string; inboxId?: string; assigneeId?: string;
  }): Promise<Page<Conversation>> {
    // Filters are applied while paging the id index; a page scans at most 20 pages' worth of ids.
    const matches = (c: ConversationInternals) =>
      (!options.status || c.status === options.status) &&
      (!options.inboxId || c.inboxId === options.inboxId) &&
      (!options.assigneeId || c.assigneeId === options.assigneeId);
    const items: Conversation[] = [];
    let cursor = options.cursor;
    for (let round = 0; round < 20; round++) {
      const page = await listByIndex(this.redis, this.keys.accountIndex(accountId, 'conversations'),
        { cursor, limit: Math.max(options.limit, 50) }, (ids) => this.loadConversations(ids));
      let consumedAll = true;
      for (let i = 0; i < page.items.length; i++) {
        const c = page.items[i]!;
        cursor = c.id;
        if (matches(c)) items.push(publicConversation(c));
        if (items.length >= options.limit) { consumedAll = i === page.items.length - 1; break; }
      }
      if (!page.nextCursor && consumedAll) return { items, nextCursor: null };
      // Ids whose record is gone are skipped: the cursor still moves past them.
      if (consumedAll && page.nextCursor) cursor = page.nextCursor;
      if (items.length >= options.limit) break;
    }
    return { items, nextCursor: cursor ?? null };
  }

  /**
   * Several hashes at once: concurrent HGETALLs, sent together on the wire, rather than an ioredis pipeline,
   * whose construction copies every script defined on the connection (BullMQ's and ours) onto it.
   */
  private hashes(keys: string[]): Promise<Record<string, string>[]> {
    return Promise.all(keys.map((key) => this.redis.hgetall(key)));
  }

  private async loadConversations(ids: string[]): Promise<ConversationInternals[]> {
    const results = await this.hashes(ids.map((id) => this.keys.conversation(id)));
    return results.map(conversationFromHash).filter((c): c is ConversationInternals => !!c);
  }

  async contact(accountId: string, id: string): Promise<Contact | undefined> {
    if (!idPattern.test(id)) return undefined;
    const f = await this.redis.hgetall(this.keys.contact(id));
    if (!f.id || f.accountId !== accountId) return undefined;
    return contactFromHash(f);
  }

  async listContacts(accountId: string, options: { cursor?: string; limit: number }): Promise<Page<Contact>> {
    return listByIndex(this.redis, this.keys.accountIndex(accountId, 'contacts'), options, async (ids) => {
      const results = await this.hashes(ids.map((id) => this.keys.contact(id)));
      return results.filter((f) => f.id).map(contactFromHash);
    });
  }

  async message(id: string): Promise<NormalizedMessage | undefined> {
    if (!idPattern.test(id)) return undefined;
    return messageFromHash(await this.redis.hgetall(this.keys.message(id)));
  }

  /** History by seq: `after` pages forward (oldest first), `before` pages backward (newest first). */
  async messages(conversationId: string, options: { after?: number; before?: number; limit: number }): Promise<{ items: NormalizedMessage[]; nextCursor: string | null }> {
    const key = this.keys.conversationMessages(conversationId);
    const ids = options.before !== undefined
      ? await this.redis.zrevrangebyscore(key, `(${options.before}`, '-inf', 'LIMIT', 0, options.limit + 1)
      : await this.redis.zrangebyscore(key, `(${options.after ?? 0}`, '+inf', 'LIMIT', 0, options.limit + 1);
    const hasMore = ids.length > options.limit;
    const results = await this.hashes(ids.slice(0, options.limit).map((id) => this.keys.message(id)));
    const items = results.map(messageFromHash).filter((m): m is NormalizedMessage => !!m);
    const last = items[items.length - 1];
    return { items, nextCursor: hasMore && last ? String(last.seq) : null };
  }
}

function contactFromHash(f: Record<string, string>): Contact {
  return {
    id: f.id!, accountId: f.accountId!, channel: f.channel!, channelId: f.channelId!, name: f.name ?? '',
    inboxId: f.inboxId!, attributes: f.attributes ? JSON.parse(f.attributes) : {}, externalId: f.externalId ?? null, createdAt: f.createdAt!, updatedAt: f.updatedAt!,
  };
}

// The web chat channel's HTTP side: the widget script, the visitor socket and its REST fallback.
// Visitor frames are parsed and normalized by adapters/webchat; this module does the sessions.
import { readFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import type { Context } from 'koa';
import type { WebSocket } from 'ws';
import { z } from 'zod';
import { resolveVisitor, VisitorIdentityError } from '../../adapters/webchat/visitorIdentity.ts';
import {
  helloSchema, normalizeVisitorMessage, renderForVisitor, restMessageSchema, visitorFrameSchema, type Hello,
} from '../../adapters/webchat/visitorFrames.ts';
import type { ConversationStore } from '../conversations/conversationStore.ts';
import { HttpError, notFound } from '../http/errors.ts';
import type { ApiRegistry } from '../http/apiRoutes.ts';
import { keyDigest } from '../ids.ts';
import type { InboxDirectory, InboxRecord } from '../inboxes/inboxDirectory.ts';
import { InboundBusyError, type InboundAcceptor } from '../ingest/acceptInbound.ts';
import { eventTypeOf, sendJson, type LiveEntry, type LiveFeed } from '../live/liveFeed.ts';
import type { Logger } from '../logger.ts';
import type { Metrics } from '../metrics.ts';
import type { Redis } from 'ioredis';
import type { Keyspace } from '../redis/keys.ts';
import type { NormalizedMessage } from '../schema/message.ts';

const widgetPath = new URL('../../adapters/webchat/widget/widget.js', import.meta.url);

export interface VisitorChannelDeps {
  redis: Redis; keys: Keyspace; log: Logger; metrics: Metrics; inboxes: InboxDirectory; acceptor: InboundAcceptor;
  conversations: ConversationStore; live: LiveFeed; serverKey: string;
}

export class VisitorChannel {
  private widgetSource: string | undefined;
  /** Per visitor socket: the messages it sent whose echo it does not need. */
  private readonly ownMessages = new WeakMap<WebSocket, Set<string>>();

  constructor(private readonly deps: VisitorChannelDeps) {}

  /** An enabled web chat inbox, or nothing: both the socket and the REST routes ask this. */
  private async openWebchatInbox(inboxId: string): Promise<InboxRecord | undefined> {
    const inbox = await this.deps.inboxes.records.getAnyAccount(inboxId);
    return inbox && inbox.type === 'webchat' && inbox.enabled ? inbox : undefined;
  }

  private async webchatInbox(inboxId: string): Promise<InboxRecord> {
    const inbox = await this.openWebchatInbox(inboxId);
    if (!inbox) throw notFound('inbox');
    return inbox;
  }

  originAllowed(inbox: InboxRecord, origin: string | undefined): boolean {
    const allowed = (inbox.settings.allowedOrigins as string[] | undefined) ?? ['*'];
    if (allowed.includes('*')) return true;
    return !!origin && allowed.includes(origin);
  }

  private identitySecret(inbox: InboxRecord): string | undefined {
    return this.deps.inboxes.credentials(inbox).identitySecret as string | undefined;
  }

  private session(inbox: InboxRecord, hello: Hello) {
    try {
      return resolveVisitor(hello, this.deps.serverKey, inbox.id, this.identitySecret(inbox));
    } catch (error) {
      if (error instanceof VisitorIdentityError) throw new HttpError(401, 'bad_identity', error.message);
      throw error;
    }
  }

  /** The visitor's messages after a seq, from their newest conversation (open or just resolved). */
  async history(inboxId: string, visitorId: string, after: number): Promise<ReturnType<typeof renderForVisitor>[]> {
    const conversationId = await this.deps.redis.get(this.deps.keys.lastConversation(inboxId, keyDigest(visitorId)));
    if (!conversationId) return [];
    const page = await this.deps.conversations.messages(conversationId, { after, limit: 200 });
    return page.items.map(renderForVisitor);
  }

  private async accept(inbox: InboxRecord, visitorId: string, name: string | undefined, clientMessageId: string, text: string) {
    const message = normalizeVisitorMessage({ accountId: inbox.accountId, inboxId: inbox.id, visitorId, name, clientMessageId, text });
    return this.deps.acceptor.accept(message, { contactName: name ?? '', visitorHint: `${inbox.id}/${visitorId}` });
  }

  registerRoutes(registry: ApiRegistry): void {
    const cors = (ctx: Context, inbox: InboxRecord) => {
      const origin = ctx.get('origin') || undefined;
      if (!this.originAllowed(inbox, origin)) throw new HttpError(403, 'origin_not_allowed', 'this page origin may not use this inbox');
      if (origin) { ctx.set('access-control-allow-origin', origin); ctx.set('vary', 'Origin'); }
    };
    registry.add({
      method: 'get', path: '/webchat/:inboxId/widget.js', tag: 'Web chat', auth: 'none', produces: 'application/javascript',
      summary: 'The embeddable chat widget script',
      handler: async (ctx, { params }) => {
        await this.webchatInbox(params.inboxId!);
        this.widgetSource ??= readFileSync(widgetPath, 'utf8');
        ctx.type = 'application/javascript; charset=utf-8';
        ctx.set('cache-control', 'public, max-age=300');
        ctx.body = this.widgetSource;
      },
    });
    registry.add({
      method: 'get', path: '/webchat/:inboxId/ws', tag: 'Web chat', auth: 'visitor', produces: 'WebSocket upgrade (see the visitor protocol)',
      summary: "The visitor's live channel (WebSocket)",
    });
    for (const path of ['/webchat/:inboxId/session', '/webchat/:inboxId/messages']) {
      registry.add({
        method: 'options', path, tag: 'Web chat', auth: 'none', summary: 'CORS preflight',
        handler: async (ctx, { params }) => {
          cors(ctx, await this.webchatInbox(params.inboxId!));
          ctx.set('access-control-allow-methods', 'GET, POST');
          ctx.set('access-control-allow-headers', 'content-type');
          ctx.set('access-control-max-age', '600');
          ctx.status = 204;
        },
      });
    }
    registry.add({
      method: 'post', path: '/webchat/:inboxId/session', tag: 'Web chat', auth: 'visitor', body: helloSchema,
      summary: 'Start or resume a visitor session (REST fallback of hello)',
      handler: async (ctx, { params, body }) => {
        const inbox = await this.webchatInbox(params.inboxId!);
        cors(ctx, inbox);
        const s = this.session(inbox, body);
        return { visitorId: s.visitorId, visitorToken: s.visitorToken, messages: s.isNew ? [] : await this.history(inbox.id, s.visitorId, body.after ?? 0) };
      },
    });
    registry.add({
      method: 'post', path: '/webchat/:inboxId/messages', tag: 'Web chat', auth: 'visitor', body: restMessageSchema, successStatus: 202,
      summary: 'Send a visitor message (REST fallback)',
      handler: async (ctx, { params, body }) => {
        const inbox = await this.webchatInbox(params.inboxId!);
        cors(ctx, inbox);
        const s = this.session(inbox, body);
        const accepted = await this.accept(inbox, s.visitorId, undefined, body.clientMessageId, body.text);
        return { messageId: accepted.messageId };
      },
    });
    registry.add({
      method: 'get', path: '/webchat/:inboxId/messages', tag: 'Web chat', auth: 'visitor',
      query: z.object({ visitorId: z.string().max(100), visitorToken: z.string().max(200), after: z.coerce.number().int().nonnegative().default(0) }),
      summary: "A visitor's messages after a seq (REST fallback polling)",
      handler: async (ctx, { params, query }) => {
        const inbox = await this.webchatInbox(params.inboxId!);
        cors(ctx, inbox);
        const s = this.session(inbox, query);
        return { messages: await this.history(inbox.id, s.visitorId, query.after) };
      },
    });
  }

  /**
   * Looks the inbox up before the upgrade completes, so the socket's listeners are in place before
   * its first frame can arrive. Browsers can't read a refused upgrade's status, so refusals are close codes.
   */
  async prepareSocket(request: IncomingMessage, inboxId: string): Promise<(socket: WebSocket) => void> {
    const inbox = await this.openWebchatInbox(inboxId);
    if (!inbox) return (socket) => closeWith(socket, 4404, 'not_found', 'unknown inbox');
    if (!this.originAllowed(inbox, request.headers.origin)) return (socket) => closeWith(socket, 4403, 'origin_not_allowed', 'this page origin may not use this inbox');
    return (socket) => this.handleSocket(socket, inbox);
  }

  /** A visitor socket: hello first, then messages and typing; everything it may see comes from the live feed. */
  private handleSocket(socket: WebSocket, inbox: InboxRecord): void {
    const inboxId = inbox.id;
    this.deps.metrics.websockets.inc({ kind: 'visitor' });
    let visitor: { visitorId: string; visitorKey: string; name?: string } | undefined;
    const bucket = { tokens: 20, at: Date.now() };
    const helloTimer = setTimeout(() => { if (!visitor) closeWith(socket, 4400, 'no_hello', 'send hello first'); }, 10_000);
    socket.on('close', () => {
      clearTimeout(helloTimer);
      this.deps.metrics.websockets.dec({ kind: 'visitor' });
      if (visitor) this.deps.live.visitors.remove(visitor.visitorKey, socket);
    });
    socket.on('message', (data, isBinary) => {
      void (async () => {
        let parsed: unknown;
        try {
          parsed = isBinary ? undefined : JSON.parse(data.toString());
        } catch {
          return closeWith(socket, 4400, 'invalid_json', 'frames are JSON');
        }
        const frame = visitorFrameSchema.safeParse(parsed);
        if (!frame.success) {
          // Name the message it was about, so the widget can mark that one failed.
          const raw = (parsed ?? {}) as { clientMessageId?: unknown };
          const clientMessageId = typeof raw.clientMessageId === 'string' ? raw.clientMessageId.slice(0, 64) : undefined;
          return sendJson(socket, { type: 'error', code: 'invalid_frame', message: frame.error.issues[0]?.message ?? 'invalid frame', clientMessageId });
        }
        const f = frame.data;
        if (f.type === 'ping') return sendJson(socket, { type: 'pong' });
        if (f.type === 'hello') {
          if (visitor) return sendJson(socket, { type: 'error', code: 'already_hello', message: 'hello was already sent' });
          let s;
          try {
            s = resolveVisitor(f, this.deps.serverKey, inbox.id, this.identitySecret(inbox));
          } catch (error) {
            if (error instanceof VisitorIdentityError) return closeWith(socket, 4401, 'bad_identity', error.message);
            throw error;
          }
          visitor = { visitorId: s.visitorId, visitorKey: `${inbox.id}/${s.visitorId}`, name: f.name };
          this.deps.live.visitors.add(visitor.visitorKey, socket);
          const messages = s.isNew ? [] : await this.history(inbox.id, s.visitorId, f.after ?? 0);
          return sendJson(socket, { type: 'welcome', visitorId: s.visitorId, visitorToken: s.visitorToken, messages });
        }
        if (!visitor) return closeWith(socket, 4400, 'no_hello', 'send hello first');
        if (f.type === 'typing') return this.forwardTyping(inbox.id, visitor.visitorId, f.on);
        // A token bucket per socket: 20 messages, refilled at 2 per second.
        bucket.tokens = Math.min(20, bucket.tokens + ((Date.now() - bucket.at) / 1000) * 2);
        bucket.at = Date.now();
        if (bucket.tokens < 1) return sendJson(socket, { type: 'error', code: 'rate_limited', message: 'too many messages; slow down', clientMessageId: f.clientMessageId });
        bucket.tokens -= 1;
        // This socket learns its message's id and seq from `accepted`: the stored echo goes to the visitor's other sockets only.
        const externalId = `${visitor.visitorId}/${f.clientMessageId}`;
        const own = this.ownMessages.get(socket) ?? new Set<string>();
        if (own.size > 1000) own.clear();
        this.ownMessages.set(socket, own.add(externalId));
        const accepted = await this.accept(inbox, visitor.visitorId, visitor.name, f.clientMessageId, f.text).catch((error: unknown) => {
          own.delete(externalId);
          if (error instanceof InboundBusyError) return error;
          throw error;
        });
        // Nothing was stored: the widget keeps the message and sends it again.
        if (accepted instanceof InboundBusyError) return sendJson(socket, { type: 'error', code: accepted.code, message: accepted.message, clientMessageId: f.clientMessageId });
        sendJson(socket, { type: 'accepted', clientMessageId: f.clientMessageId, messageId: accepted.messageId, seq: accepted.seq });
      })().catch((error) => {
        this.deps.log.error({ err: error, inboxId }, 'visitor frame failed');
        sendJson(socket, { type: 'error', code: 'internal', message: 'the message could not be accepted; retry' });
      });
    });
  }

  private async forwardTyping(inboxId: string, visitorId: string, on: boolean): Promise<void> {
    const conversationId = await this.deps.redis.get(this.deps.keys.openConversation(inboxId, keyDigest(visitorId)));
    if (!conversationId) return;
    const agentId = await this.deps.redis.hget(this.deps.keys.conversation(conversationId), 'assigneeId');
    if (agentId) await this.deps.live.publishSignal({ type: 'typing', from: 'visitor', conversationId, on }, { agentId });
  }

  /** Live entries for visitor sockets: their conversation's messages, and the agent typing. */
  pushToVisitor(entry: LiveEntry, sockets: Set<WebSocket>): void {
    let frame: unknown;
    let targets: Iterable<WebSocket> = sockets;
    if (entry.event) {
      const type = eventTypeOf(entry.event);
      if (type === 'conversation.queued' || type === 'conversation.assigned') {
        // Only the place in line, never who the agent is.
        const data = (JSON.parse(entry.event) as { data: { position?: number; estimatedWaitSeconds?: number | null } }).data;
        const text = JSON.stringify(type === 'conversation.queued'
          ? { type: 'queue', position: data.position ?? null, estimatedWaitSeconds: data.estimatedWaitSeconds ?? null }
          : { type: 'queue', position: null, estimatedWaitSeconds: null });
        for (const socket of sockets) sendJson(socket, text);
        return;
      }
      if (type !== 'message.received' && type !== 'message.sent') return;
      if (type === 'message.received') {
        // The socket that sent it was told at `accepted`; only the visitor's other sockets need the echo.
        const externalId = /"externalId":"([^"]+)"/.exec(entry.event)?.[1] ?? '';
        targets = [...sockets].filter((socket) => !this.ownMessages.get(socket)?.delete(externalId));
        if (!(targets as WebSocket[]).length) return;
      }
      const event = JSON.parse(entry.event) as { data: NormalizedMessage };
      frame = { type: 'message', message: renderForVisitor(event.data) };
    } else if (entry.signal) {
      const signal = JSON.parse(entry.signal) as { type: string; from?: string; on?: boolean };
      if (signal.type !== 'typing' || signal.from !== 'agent') return;
      frame = { type: 'typing', on: signal.on };
    }
    if (!frame) return;
    const text = JSON.stringify(frame);
    for (const socket of targets) sendJson(socket, text);
  }
}

export function closeWith(socket: WebSocket, code: number, errorCode: string, message: string): void {
  sendJson(socket, { type: 'error', code: errorCode, message });
  socket.close(code, message.slice(0, 100));
}


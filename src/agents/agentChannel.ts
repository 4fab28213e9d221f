// An agent's live socket (WS /api/v1/agent/ws): assignments, messages and status in; replies,
// typing, status and resolve out. Every action goes through the same services as the REST API.
import type { WebSocket } from 'ws';
import { z } from 'zod';
import type { ConversationActions } from '../conversations/conversationActions.ts';
import type { ConversationStore } from '../conversations/conversationStore.ts';
import { HttpError } from '../http/errors.ts';
import { requestDigest } from '../http/idempotency.ts';
import { eventTypeOf, sendJson, type LiveEntry, type LiveFeed } from '../live/liveFeed.ts';
import type { Logger } from '../logger.ts';
import type { Metrics } from '../metrics.ts';
import type { Router } from '../routing/router.ts';
import { agentStatusSchema, type AgentDirectory, type AgentRecord } from '../tenancy/agents.ts';
import type { AgentSocketLeases } from './agentSocketLeases.ts';

const agentFrameSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('reply'), conversationId: z.string().max(100), text: z.string().trim().min(1).max(10_000), clientMessageId: z.string().max(100).optional() }),
  z.object({ type: z.literal('typing'), conversationId: z.string().max(100), on: z.boolean() }),
  z.object({ type: z.literal('status'), status: agentStatusSchema }),
  z.object({ type: z.literal('resolve'), conversationId: z.string().max(100) }),
  z.object({ type: z.literal('accept'), conversationId: z.string().max(100) }),
  z.object({ type: z.literal('decline'), conversationId: z.string().max(100) }),
  z.object({ type: z.literal('ping') }),
]);

const eventsWithHistory = new Set(['conversation.assigned', 'conversation.transferred', 'conversation.offered']);

export class AgentChannel {
  constructor(private readonly deps: {
    log: Logger; metrics: Metrics; agents: AgentDirectory; actions: ConversationActions;
    conversations: ConversationStore; live: LiveFeed; router: Router; leases: AgentSocketLeases;
  }) {}

  async handleSocket(socket: WebSocket, agent: AgentRecord): Promise<void> {
    const { live, metrics } = this.deps;
    live.agents.add(agent.id, socket);
    metrics.websockets.inc({ kind: 'agent' });
    // Taken before hello, so hello's state shows an agent back online after a reconnect.
    const lease = this.deps.leases.open(agent.id);
    socket.on('close', () => {
      live.agents.remove(agent.id, socket);
      metrics.websockets.dec({ kind: 'agent' });
      void lease.then((id) => (id ? this.deps.leases.close(agent.id, id) : undefined)).catch((error: Error) => {
        this.deps.log.warn({ agentId: agent.id, err: error.message }, 'agent socket lease release failed; it lapses on its own');
      });
    });
    socket.on('message', (data, isBinary) => {
      let parsed: unknown;
      try {
        parsed = isBinary ? undefined : JSON.parse(data.toString());
      } catch {
        sendJson(socket, { type: 'error', code: 'invalid_json', message: 'frames are JSON' });
        return;
      }
      const frame = agentFrameSchema.safeParse(parsed);
      if (!frame.success) {
        sendJson(socket, { type: 'error', code: 'invalid_frame', message: frame.error.issues[0]?.message ?? 'invalid frame' });
        return;
      }
      // Auto-away counts what the agent did: frames that were carried out, not refused ones or pings.
      this.handleFrame(socket, agent, frame.data).then(() => {
        if (frame.data.type !== 'ping') void this.deps.agents.recordActivity(agent.id).catch(() => undefined);
      }, (error) => {
        const known = error instanceof HttpError;
        if (!known) this.deps.log.error({ err: error, agentId: agent.id }, 'agent frame failed');
        sendJson(socket, {
          type: 'error', code: known ? error.code : 'internal', message: known ? error.message : 'internal error',
          ...('clientMessageId' in frame.data ? { clientMessageId: frame.data.clientMessageId } : {}),
        });
      });
    });
    await lease;
    sendJson(socket, { type: 'hello', agent: { id: agent.id, accountId: agent.accountId, name: agent.name, role: agent.role }, state: await this.deps.agents.state(agent.id) });
  }

  private async handleFrame(socket: WebSocket, agent: AgentRecord, frame: z.infer<typeof agentFrameSchema>): Promise<void> {
    // A removed agent's open socket (on any web process) acts no more.
    if (frame.type !== 'ping' && !(await this.deps.agents.records.get(agent.accountId, agent.id))) {
      socket.close(4401, 'agent removed');
      return;
    }
    switch (frame.type) {
      case 'ping':
        return sendJson(socket, { type: 'pong' });
      case 'reply': {
        const message = await this.deps.actions.reply(agent.accountId, frame.conversationId, {
          content: { type: 'text', text: frame.text }, agentId: agent.id,
          // Digested as the REST body {text} is: both share the key space, so the same key and text is one request either way.
          idempotency: frame.clientMessageId ? { key: frame.clientMessageId, requestDigest: requestDigest({ text: frame.text }) } : undefined,
        });
        return sendJson(socket, { type: 'ack', clientMessageId: frame.clientMessageId, message });
      }
      case 'typing': {
        const conversation = await this.deps.conversations.conversation(agent.accountId, frame.conversationId);
        if (!conversation) throw new HttpError(404, 'not_found', 'conversation not found');
        if (conversation.visitorHint) {
          await this.deps.live.publishSignal({ type: 'typing', from: 'agent', conversationId: conversation.id, on: frame.on }, { visitorKey: conversation.visitorHint });
        }
        return;
      }
      case 'status': {
        const state = await this.deps.agents.setPresence(agent, { status: frame.status });
        return sendJson(socket, { type: 'state', state });
      }
      case 'resolve': {
        const conversation = await this.deps.actions.resolve(agent.accountId, frame.conversationId, agent.id);
        return sendJson(socket, { type: 'resolved', conversationId: conversation.id });
      }
      case 'accept':
      case 'decline': {
        const conversation = await this.deps.conversations.conversation(agent.accountId, frame.conversationId);
        if (!conversation) throw new HttpError(404, 'not_found', 'conversation not found');
        if (!(await this.deps.router.respondToOffer(conversation.id, agent.id, frame.type))) {
          throw new HttpError(409, 'conflict', 'no offer of this conversation to you is pending');
        }
        return sendJson(socket, { type: frame.type === 'accept' ? 'accepted' : 'declined', conversationId: conversation.id });
      }
    }
  }

  /** Live entries for an agent: events about their conversations (with history on assignment), typing. */
  async pushToAgent(entry: LiveEntry, sockets: Set<WebSocket>): Promise<void> {
    let text: string | undefined;
    if (entry.event) {
      const type = eventTypeOf(entry.event);
      if (type === 'message.received') {
        const receivedAt = /"receivedAt":"([^"]+)"/.exec(entry.event)?.[1];
        if (receivedAt) this.deps.metrics.pipelineLatency.observe((Date.now() - Date.parse(receivedAt)) / 1000);
      }
      if (eventsWithHistory.has(type)) {
        const event = JSON.parse(entry.event) as { subject?: string };
        const history = event.subject ? await this.deps.conversations.messages(event.subject, { before: Number.MAX_SAFE_INTEGER, limit: 50 }) : { items: [] };
        text = JSON.stringify({ type: 'event', event, messages: history.items.reverse() });
      } else {
        // Most events pass through as they are: no parse and re-serialize per socket push.
        text = `{"type":"event","event":${entry.event}}`;
      }
    } else if (entry.signal) {
      const signal = JSON.parse(entry.signal) as { type: string; from?: string };
      if (signal.from === 'agent') return;
      text = entry.signal;
    }
    if (!text) return;
    for (const socket of sockets) sendJson(socket, text);
  }
}

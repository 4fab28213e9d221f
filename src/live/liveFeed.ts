// Each web process tails the live stream and pushes entries to the sockets it holds, so a visitor
// and an agent connected to different web processes still talk both ways.
import type { Redis } from 'ioredis';
import type { WebSocket } from 'ws';
import type { Logger } from '../logger.ts';
import type { Keyspace } from '../redis/keys.ts';
import { corkForThisTurn } from '../net/corkForThisTurn.ts';

export interface LiveEntry {
  /** A CloudEvent JSON string, or undefined for an ephemeral signal. */
  event?: string;
  /** An ephemeral signal (typing) as JSON. */
  signal?: string;
  agentId: string;
  visitorKey: string;
}

export type LiveListener = (entry: LiveEntry, sockets: Set<WebSocket>) => void | Promise<void>;

class SocketRegistry {
  private readonly sockets = new Map<string, Set<WebSocket>>();
  add(key: string, socket: WebSocket) {
    let set = this.sockets.get(key);
    if (!set) this.sockets.set(key, (set = new Set()));
    set.add(socket);
  }
  remove(key: string, socket: WebSocket) {
    const set = this.sockets.get(key);
    set?.delete(socket);
    if (set && set.size === 0) this.sockets.delete(key);
  }
  get(key: string) { return key ? this.sockets.get(key) : undefined; }
  get size() { let n = 0; for (const s of this.sockets.values()) n += s.size; return n; }
  all() { return [...this.sockets.values()].flatMap((s) => [...s]); }
}

export class LiveFeed {
  readonly agents = new SocketRegistry();
  readonly visitors = new SocketRegistry();
  private running = false;
  private loop: Promise<void> | undefined;
  private reader: Redis | undefined;

  constructor(
    private readonly redis: Redis,
    private readonly keys: Keyspace,
    private readonly log: Logger,
    private readonly onAgentEntry: LiveListener,
    private readonly onVisitorEntry: LiveListener,
  ) {}

  async start(): Promise<void> {
    this.reader = this.redis.duplicate({ connectionName: 'live-reader' });
    this.running = true;
    const last = (await this.redis.xrevrange(this.keys.live, '+', '-', 'COUNT', 1))[0]?.[0] ?? '0';
    this.loop = this.run(last);
  }

  async stop(): Promise<void> {
    this.running = false;
    this.reader?.disconnect();
    await this.loop?.catch(() => undefined);
  }

  /** Typing and other signals that are not events: they reach live sockets and nothing else. */
  async publishSignal(signal: Record<string, unknown>, target: { agentId?: string; visitorKey?: string }): Promise<void> {
    await this.redis.xadd(this.keys.live, 'MAXLEN', '~', 20000, '*', 's', JSON.stringify(signal), 'a', target.agentId ?? '', 'v', target.visitorKey ?? '');
  }

  private async run(startId: string): Promise<void> {
    let lastId = startId;
    while (this.running) {
      try {
        const batch = (await this.reader!.xread('COUNT', 500, 'BLOCK', 2000, 'STREAMS', this.keys.live, lastId)) as [string, [string, string[]][]][] | null;
        if (!batch) continue;
        for (const [id, fields] of batch[0]![1]) {
          lastId = id;
          this.dispatch(fields);
        }
      } catch (error) {
        if (!this.running) break;
        this.log.warn({ err: (error as Error).message }, 'live feed read failed; retrying');
        await new Promise((r) => setTimeout(r, 500));
      }
    }
  }

  private dispatch(fields: string[]): void {
    const entry: LiveEntry = { agentId: '', visitorKey: '' };
    for (let i = 0; i < fields.length; i += 2) {
      const name = fields[i];
      const value = fields[i + 1]!;
      if (name === 'e') entry.event = value;
      else if (name === 's') entry.signal = value;
      else if (name === 'a') entry.agentId = value;
      else if (name === 'v') entry.visitorKey = value;
    }
    const agentSockets = this.agents.get(entry.agentId);
    const visitorSockets = this.visitors.get(entry.visitorKey);
    const guard = (p: void | Promise<void>) => { if (p) p.catch((error) => this.log.warn({ err: (error as Error).message }, 'live push failed')); };
    if (agentSockets) guard(this.onAgentEntry(entry, agentSockets));
    if (visitorSockets) guard(this.onVisitorEntry(entry, visitorSockets));
  }
}

/**
 * The envelope's type without parsing the whole event: the scripts write `type` before `data`, and the
 * fields before it (specversion, id, source) are gateway ids that never hold a quote.
 */
export function eventTypeOf(envelope: string): string {
  return /"type":"([a-z_.]+)"/.exec(envelope)?.[1] ?? '';
}

/** The TCP socket under a WebSocket (ws keeps it as `_socket`), for corking writes. */
export function underlyingSocket(socket: WebSocket): { cork(): void; uncork(): void } | undefined {
  return (socket as unknown as { _socket?: { cork(): void; uncork(): void } })._socket;
}

export function sendJson(socket: WebSocket, value: unknown): void {
  if (socket.readyState !== 1) return;
  // A batch of live entries, or the `accepted` answers to a burst of messages, leaves in one write.
  const tcp = underlyingSocket(socket);
  if (tcp) corkForThisTurn(tcp);
  socket.send(typeof value === 'string' ? value : JSON.stringify(value));
}

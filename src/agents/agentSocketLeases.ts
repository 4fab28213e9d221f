// Agent presence that follows the sockets: each live agent socket of this web process holds a lease in
// Redis, renewed while it stays open. An agent whose last socket closed, or whose web process died, goes
// away after the grace period and comes back online on its next socket (script leaseAgentSocket).
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { runScript } from '../commands/index.ts';
import type { Logger } from '../logger.ts';
import type { Keyspace } from '../redis/keys.ts';

/** How long a lease lasts without renewal: how late a dead web process's agents are noticed, before the grace. */
export const agentSocketLeaseMs = 30_000;

const renewalsInFlight = 200;

type LeaseOp = 'open' | 'renew' | 'close' | 'untracked';

export class AgentSocketLeases {
  private readonly processId = randomBytes(6).toString('hex');
  private sequence = 0;
  /** Leases this process holds: connection id -> agent id. */
  private readonly held = new Map<string, string>();
  private timer: NodeJS.Timeout | undefined;
  private renewing: Promise<void> | undefined;

  constructor(
    private readonly redis: Redis,
    private readonly keys: Keyspace,
    private readonly log: Logger,
    private readonly options: { graceMs: number; leaseMs?: number },
  ) {}

  /** A grace of 0 turns it off: presence is then only what the agent or the API sets. */
  get enabled(): boolean { return this.options.graceMs > 0; }

  private get leaseMs(): number { return this.options.leaseMs ?? agentSocketLeaseMs; }

  start(): void {
    if (!this.enabled) return;
    // Three renewals per lease period: one lost to a slow Redis does not let a live socket lapse.
    this.timer = setInterval(() => { this.renewing ??= this.renewAll().finally(() => { this.renewing = undefined; }); }, this.leaseMs / 3);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.renewing;
  }

  /** A new socket of the agent: its lease id, or undefined when presence does not follow sockets. */
  async open(agentId: string): Promise<string | undefined> {
    if (!this.enabled) {
      // A check left from when presence followed the sockets must not set this connected agent away.
      await this.run('untracked', agentId, '').catch((error: Error) => {
        this.log.warn({ agentId, err: error.message }, 'agent presence check could not be cleared');
      });
      return undefined;
    }
    const connectionId = `${this.processId}-${(this.sequence += 1)}`;
    this.held.set(connectionId, agentId);
    // Held even when Redis fails now: the next renewal takes the lease (and brings the agent back), and the close releases it.
    await this.run('open', agentId, connectionId).catch((error: Error) => {
      this.log.warn({ agentId, err: error.message }, 'agent socket lease failed; the next renewal takes it');
    });
    return connectionId;
  }

  async close(agentId: string, connectionId: string): Promise<void> {
    if (!this.held.delete(connectionId)) return;
    await this.run('close', agentId, connectionId);
  }

  /** Renewals go out a chunk at a time, concurrently: one by one, thousands of sockets would outlast the lease. */
  private async renewAll(): Promise<void> {
    const held = [...this.held];
    for (let i = 0; i < held.length; i += renewalsInFlight) {
      await Promise.all(held.slice(i, i + renewalsInFlight).map(([connectionId, agentId]) =>
        // Closed since the pass began: renewing it would bring back a lease its close removed.
        !this.held.has(connectionId) ? undefined : this.run('renew', agentId, connectionId).catch((error: Error) => {
          this.log.warn({ agentId, err: error.message }, 'agent socket lease renewal failed; the next one retries');
        })));
    }
  }

  private async run(op: LeaseOp, agentId: string, connectionId: string): Promise<void> {
    await runScript(this.redis, 'leaseAgentSocket', [this.keys.agentState(agentId)], [
      this.keys.prefix, new Date().toISOString(), agentId, connectionId, op, this.leaseMs, this.options.graceMs, Date.now(),
    ]);
  }
}

// Fires the routing timers (offer expiry, overflow, auto-away, disconnects and their handbacks, re-offers) on every worker. The timers
// live in one Redis zset written by the scripts that need them; fireRoutingTimers pops and applies
// each due one atomically, so workers may overlap and a crashed worker loses none. Capacity freeing
// never waits on this loop: it is handed out inside the script that frees it.
import type { Redis } from 'ioredis';
import { runScript } from '../commands/index.ts';
import type { Logger } from '../logger.ts';
import type { Keyspace } from '../redis/keys.ts';

const batch = 200;

export class RoutingTimers {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;

  constructor(
    private readonly redis: Redis,
    private readonly keys: Keyspace,
    private readonly log: Logger,
    private readonly options: { intervalMs?: number; disconnectHandbackMs?: number } = {},
  ) {}

  start(): void {
    this.stopped = false;
    const tick = () => {
      this.running ??= this.fireDue().catch((error) => {
        this.log.warn({ err: (error as Error).message }, 'routing timers failed; the next tick retries');
      }).finally(() => { this.running = undefined; });
    };
    this.timer = setInterval(tick, this.options.intervalMs ?? 100);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.running;
  }

  /** Fires everything due now, a batch per script call. */
  async fireDue(): Promise<void> {
    while (!this.stopped) {
      const now = new Date();
      const fired = (await runScript(this.redis, 'fireRoutingTimers', [this.keys.routingTimers], [
        this.keys.prefix, now.toISOString(), now.getTime(), batch, this.options.disconnectHandbackMs ?? 0,
      ])) as unknown as number;
      if (fired < batch) return;
    }
  }
}

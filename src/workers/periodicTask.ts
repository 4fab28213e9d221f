// A job every worker runs now and then (retention sweeps, the outbox sweep, event trimming): one run
// at a time per process, a failure logged and left to the next run, and stop() waits for a run in
// progress. The jobs themselves are idempotent, so workers may overlap.
import type { Logger } from '../logger.ts';

export class PeriodicTask {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> | undefined;

  constructor(
    private readonly name: string,
    private readonly intervalMs: number,
    private readonly run: () => Promise<unknown>,
    private readonly log: Logger,
    private readonly options: { runAtStart?: boolean } = {},
  ) {}

  start(): void {
    const tick = () => {
      this.running ??= this.run().catch((error) => {
        this.log.warn({ task: this.name, err: (error as Error).message }, `${this.name} failed; the next run will retry`);
      }).finally(() => { this.running = undefined; });
    };
    if (this.options.runAtStart) tick();
    this.timer = setInterval(tick, this.intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
  }
}

// First come, first served turns: what a process does at most `limit` at a time, the rest waiting in arrival
// order, at most `maxWaiting` of them: past that, a task is refused at once rather than held in memory.
export class TurnsFullError extends Error {}

export class Turns {
  private running = 0;
  private readonly waiting: (() => void)[] = [];
  private head = 0;

  constructor(private readonly limit: number, private readonly maxWaiting = Infinity) {}

  /** Tasks waiting for a turn now. */
  get waitingCount(): number { return this.waiting.length - this.head; }

  /** A task run now would be refused (TurnsFullError). */
  get full(): boolean { return this.running >= this.limit && this.waitingCount >= this.maxWaiting; }

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.running < this.limit) this.running += 1;
    else if (this.waitingCount >= this.maxWaiting) throw new TurnsFullError(`${this.waitingCount} tasks are waiting already`);
    else await new Promise<void>((resolve) => this.waiting.push(resolve));
    try {
      return await task();
    } finally {
      this.handOver();
    }
  }

  /** A finished task's turn goes straight to the longest waiting one, so none is overtaken. */
  private handOver(): void {
    if (this.head === this.waiting.length) { this.running -= 1; return; }
    const next = this.waiting[this.head]!;
    this.head += 1;
    // The served front of the line is dropped once it is over half of it (amortized O(1) a turn).
    if (this.head === this.waiting.length || (this.head >= 1024 && this.head * 2 >= this.waiting.length)) {
      this.waiting.splice(0, this.head);
      this.head = 0;
    }
    next();
  }
}

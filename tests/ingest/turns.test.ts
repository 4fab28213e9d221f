// First come, first served turns: never more than the limit at once, none overtaken, a failed task frees its turn.
import { describe, expect, it } from 'vitest';
import { Turns } from '../../src/ingest/turns.ts';

const tick = () => new Promise((resolve) => setImmediate(resolve));

describe('Turns', () => {
  it('runs at most `limit` tasks at once, in arrival order, across a long line', async () => {
    const turns = new Turns(4);
    let running = 0;
    let most = 0;
    const started: number[] = [];
    const done = Array.from({ length: 3000 }, (_, i) => turns.run(async () => {
      started.push(i);
      running += 1;
      most = Math.max(most, running);
      await tick();
      running -= 1;
      if (i % 7 === 0) throw new Error(`task ${i} failed`);
      return i;
    }).catch((error: Error) => error.message));
    const results = await Promise.all(done);
    expect(most).toBe(4);
    expect(started).toEqual(Array.from({ length: 3000 }, (_, i) => i));
    expect(results[7]).toBe('task 7 failed');
    expect(results[8]).toBe(8);
    // The line is empty again: a new task starts at once.
    let ranAtOnce = false;
    const next = turns.run(async () => { ranAtOnce = true; });
    expect(ranAtOnce).toBe(true);
    await next;
  });
});

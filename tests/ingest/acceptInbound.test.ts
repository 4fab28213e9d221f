// The door into the pipeline under a burst: adds in flight are bounded, taken in arrival order, and a failed
// add gives its turn back.
import type { Queue } from 'bullmq';
import { describe, expect, it } from 'vitest';
import { InboundAcceptor, InboundBusyError } from '../../src/ingest/acceptInbound.ts';
import type { InboundJob } from '../../src/queues.ts';
import { visitorMessage } from '../support/coreFixtures.ts';

/** A queue whose adds stay open until the test settles them. */
function heldQueue() {
  const adds: { job: InboundJob; settle: (error?: Error) => void }[] = [];
  const started: string[] = [];
  let open = 0;
  let mostOpen = 0;
  const queue = {
    add: (_name: string, job: InboundJob) => new Promise<void>((resolve, reject) => {
      open += 1;
      started.push(job.message.externalId);
      mostOpen = Math.max(mostOpen, open);
      adds.push({ job, settle: (error) => { open -= 1; if (error) reject(error); else resolve(); } });
    }),
  } as unknown as Queue;
  return { queue, adds, started, get mostOpen() { return mostOpen; } };
}

const tick = () => new Promise((resolve) => setImmediate(resolve));
const tenant = { accountId: 'acc_turns', inboxId: 'inb_turns' };

describe('InboundAcceptor under a burst', () => {
  it('keeps at most its limit of adds in flight and starts them in arrival order', async () => {
    const held = heldQueue();
    const acceptor = new InboundAcceptor(held.queue, 3);
    const accepted = Array.from({ length: 10 }, (_, i) => acceptor.accept(visitorMessage(tenant, 'v_turns', `v_turns/c${i}`)));
    await tick();
    expect(held.adds).toHaveLength(3);
    while (held.adds.some((a) => a)) {
      const next = held.adds.shift()!;
      next.settle();
      await tick();
    }
    const results = await Promise.all(accepted);
    expect(held.mostOpen).toBe(3);
    expect(held.started).toEqual(Array.from({ length: 10 }, (_, i) => `v_turns/c${i}`));
    // The seq taken on arrival increases with it.
    const seqs = results.map((r) => r.seq);
    expect([...seqs].sort((a, b) => a - b)).toEqual(seqs);
    expect(new Set(seqs).size).toBe(10);
  });

  it('gives the turn of a failed add to the next one', async () => {
    const held = heldQueue();
    const acceptor = new InboundAcceptor(held.queue, 1);
    const first = acceptor.accept(visitorMessage(tenant, 'v_turns', 'v_turns/f1'));
    const second = acceptor.accept(visitorMessage(tenant, 'v_turns', 'v_turns/f2'));
    await tick();
    expect(held.adds).toHaveLength(1);
    held.adds[0]!.settle(new Error('redis down'));
    await expect(first).rejects.toThrow('redis down');
    await tick();
    expect(held.adds).toHaveLength(2);
    expect(held.adds[1]!.job.message.externalId).toBe('v_turns/f2');
    held.adds[1]!.settle();
    await expect(second).resolves.toMatchObject({ messageId: InboundAcceptor.messageIdFor(tenant.inboxId, 'v_turns/f2') });
  });

  it('refuses at once, with a 503 busy and nothing added, a message that finds the waiting line full; the line still drains', async () => {
    const held = heldQueue();
    const acceptor = new InboundAcceptor(held.queue, 2, 3);
    const waiting = Array.from({ length: 5 }, (_, i) => acceptor.accept(visitorMessage(tenant, 'v_busy', `v_busy/c${i}`)));
    await tick();
    const refused = await acceptor.accept(visitorMessage(tenant, 'v_busy', 'v_busy/over')).catch((e) => e);
    expect(refused).toBeInstanceOf(InboundBusyError);
    expect(refused).toMatchObject({ status: 503, code: 'busy' });
    expect(held.started).toEqual(['v_busy/c0', 'v_busy/c1']);
    while (held.adds.length) {
      held.adds.shift()!.settle();
      await tick();
    }
    await Promise.all(waiting);
    expect(held.started).toEqual(['v_busy/c0', 'v_busy/c1', 'v_busy/c2', 'v_busy/c3', 'v_busy/c4']);
    // With room in the line again, the refused message goes through when sent again.
    const again = acceptor.accept(visitorMessage(tenant, 'v_busy', 'v_busy/over'));
    await tick();
    held.adds.shift()!.settle();
    await expect(again).resolves.toMatchObject({ messageId: expect.stringMatching(/^msg_/) });
  });
});

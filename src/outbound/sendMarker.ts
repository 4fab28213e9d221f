// At most one provider call per outbound message, for adapters that wrap their delivering call in
// `deliverOnce` (WeChat custom/send, SMTP): a marker in Redis is taken before the call and tells every later
// attempt whether the message left (`sent:<provider id>`), may be leaving (`sending:<ms>:<longest ms>:<owner>`)
// or may have left without an answer (`unknown:<ms>`). Only a definite "not sent" clears it, so a retry after a
// crash, or after a status write that failed once the provider had the message, never sends a second copy.
// (SMS keeps its own marker, src/sms/smsSender.ts: some SMS providers can be asked whether a message went out.)
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { PermanentSendError, SendInFlightError, SendOutcomeUnknownError, type DeliverOnce, type SendResult } from '../../adapters/channelAdapter.ts';
import { runScript } from '../commands/index.ts';
import type { Keyspace } from '../redis/keys.ts';

/**
 * How long a marker lives: longer than every retry of the outbound job, and than its failed job is kept (7 days),
 * so no sweep can find the message queued with its marker gone.
 */
const markerSeconds = 14 * 86_400;
/** Added to a call's longest time before its `sending:` marker counts as abandoned (clock skew, a slow event loop). */
const inFlightMarginMs = 5_000;

const outcomeUnknown = (why: string) => new PermanentSendError('send_outcome_unknown',
  `${why}; it is not sent again so the customer never gets it twice. Check with the provider, and send it again if it is missing.`);

/** What an earlier attempt left: the provider already has the message, or nothing is known against sending. */
export type EarlierAttempt = { sent: SendResult } | undefined;

export class SendMarkers {
  constructor(private readonly redis: Redis, private readonly keys: Keyspace) {}

  /**
   * Read before the adapter is called: the result of an earlier attempt that reached the provider, if any.
   * Throws SendInFlightError while another attempt may still be in its call, and PermanentSendError
   * (send_outcome_unknown) when one may have delivered it without anyone hearing back.
   */
  async earlierAttempt(messageId: string): Promise<EarlierAttempt> {
    const key = this.keys.sendMarker(messageId);
    // Read together (MULTI), so the lifetime left is the marker's just read.
    const replies = await this.redis.multi().get(key).pttl(key).exec();
    if (!replies || replies.some(([error]) => error)) throw new Error('the send marker could not be read; the send will be retried');
    const marker = replies[0]![1] as string | null;
    const ttlMs = replies[1]![1] as number;
    if (!marker) return undefined;
    if (marker.startsWith('sent:')) {
      const externalId = marker.slice('sent:'.length);
      return { sent: { status: 'sent', ...(externalId ? { externalId } : {}) } };
    }
    if (marker.startsWith('sending:')) {
      const [, , longestMs] = marker.split(':');
      const limit = Number(longestMs) + inFlightMarginMs;
      // Its age on Redis's clock (the marker was set with the full lifetime), whatever the processes' clocks say.
      const age = markerSeconds * 1000 - ttlMs;
      if (!(age >= limit)) {
        throw new SendInFlightError(Math.max(1000, limit - age), 'another attempt is still handing this message to the provider; this one checks again later');
      }
      throw outcomeUnknown('An earlier attempt to send this message stopped while the provider had it, and its outcome was never heard');
    }
    throw outcomeUnknown('The provider did not answer an earlier attempt to send this message');
  }

  /** The `deliverOnce` an adapter wraps its delivering call in, for one message. */
  deliverOnceFor(messageId: string): DeliverOnce {
    const key = this.keys.sendMarker(messageId);
    return async (call, longestMs) => {
      const startedAt = Date.now();
      const mine = `sending:${startedAt}:${Math.ceil(longestMs)}:${randomUUID()}`;
      if (await this.redis.set(key, mine, 'EX', markerSeconds, 'NX') !== 'OK') {
        throw new SendInFlightError(1000, 'another attempt took this message just now; this one leaves it to that one');
      }
      let result;
      try {
        result = await call();
      } catch (error) {
        if (error instanceof SendOutcomeUnknownError) {
          await this.swap(key, mine, `unknown:${startedAt}`);
          throw outcomeUnknown(error.message);
        }
        // A definite answer or a request that never left: nothing was delivered, so a retry may send.
        await this.swap(key, mine, '');
        throw error;
      }
      // The provider has it. If this write fails, the status write still gets its chance; if both fail, the
      // marker stays `sending` and the retry fails the message as unknown: never a second copy.
      await this.redis.set(key, `sent:${result.externalId ?? ''}`, 'EX', markerSeconds).catch(() => undefined);
      return result;
    };
  }

  /** Best effort: a marker that could not be swapped stays `sending`, which later attempts treat as unknown. */
  private async swap(key: string, expected: string, next: string): Promise<void> {
    await runScript(this.redis, 'replaceSendMarker', [key], [expected, next, markerSeconds]).catch(() => undefined);
  }
}

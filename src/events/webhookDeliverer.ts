// Delivers lane heads: claims due lanes (leased, so a killed worker's lanes come back when the lease
// ends), POSTs each head to its subscription, and settles the attempt. At most `perSubscription`
// deliveries of one subscription are in flight per process, so a receiver that answers slowly, or
// with a huge body, holds a few slots and never the others' deliveries.
import type { Logger } from '../logger.ts';
import type { Metrics } from '../metrics.ts';
import type { Attempt, ClaimedDelivery, DeliveryLanes } from './deliveryLanes.ts';
import { buildWebhookRequest, postWebhook } from './webhookRequest.ts';
import type { WebhookRecord, WebhookSubscriptions } from './webhookSubscriptions.ts';
import { checkWebhookTarget, WebhookTargetError, type GatewayAddress } from './webhookTarget.ts';
import { createCheckedDispatcher, type AddressLookup } from './checkedDispatcher.ts';

export interface DeliveryPolicy {
  timeoutMs: number;
  retryBaseMs: number;
  retryMaxMs: number;
  retryWindowMs: number;
  pauseAfterMs: number;
  retentionSeconds: number;
}

/** Exponential backoff (base doubling per attempt, capped) with equal jitter: half fixed, half random. */
export function webhookRetryDelay(attempt: number, policy: Pick<DeliveryPolicy, 'retryBaseMs' | 'retryMaxMs'>, random = Math.random()): number {
  const ceiling = Math.min(policy.retryMaxMs, policy.retryBaseMs * 2 ** Math.min(40, Math.max(0, attempt - 1)));
  return Math.round(ceiling / 2 + (random * ceiling) / 2);
}

/** The wait a receiver's Retry-After asks for, floored (a 0 or a past date must not make a tight loop)
 * at 1 s and at our own backoff, and never past the retry window (settleDelivery caps it at the window left). */
export function retryDelayHonouring(retryAfterMs: number | undefined, backoffMs: number, retryWindowMs: number): number {
  if (retryAfterMs === undefined) return backoffMs;
  return Math.min(Math.max(retryAfterMs, 1000, backoffMs), retryWindowMs);
}

export class WebhookDeliverer {
  private running = false;
  private loop: Promise<void> | undefined;
  private readonly inFlight = new Map<string, number>();
  private readonly tasks = new Set<Promise<void>>();
  private wakeUp: (() => void) | undefined;
  private woken = false;
  private readonly cache = new Map<string, { record: WebhookRecord | undefined; at: number }>();
  /** Connections only to addresses that pass the target check at connect time (no DNS rebinding past the check below). */
  private readonly dispatcher;

  constructor(private readonly deps: {
    lanes: DeliveryLanes;
    subscriptions: WebhookSubscriptions;
    log: Logger;
    metrics?: Metrics;
    policy: DeliveryPolicy;
    concurrency: number;
    perSubscription: number;
    allowPrivateTargets: boolean;
    self?: GatewayAddress;
    /** How a name becomes addresses (the system's resolver unless given). */
    lookup?: AddressLookup;
    /** How often an idle worker looks for due lanes (other processes' new events, retries falling due). */
    pollMs?: number;
  }) {
    this.dispatcher = createCheckedDispatcher({ allowPrivate: deps.allowPrivateTargets, self: deps.self, connectTimeoutMs: deps.policy.timeoutMs, lookup: deps.lookup });
  }

  start(): void {
    this.running = true;
    this.loop = this.run();
  }

  /** Stops claiming, then waits for the deliveries in flight (each bounded by the timeout). */
  async stop(): Promise<void> {
    this.running = false;
    this.wake();
    await this.loop;
    await Promise.all(this.tasks);
    await this.dispatcher.close();
  }

  /** New events or a freed slot: look for due lanes now rather than at the next poll. */
  wake(): void {
    this.woken = true;
    const wakeUp = this.wakeUp;
    this.wakeUp = undefined;
    wakeUp?.();
  }

  private get leaseMs(): number {
    return this.deps.policy.timeoutMs + 5000;
  }

  private async run(): Promise<void> {
    const pollMs = this.deps.pollMs ?? 500;
    while (this.running) {
      let waitMs = pollMs;
      this.woken = false;
      try {
        const free = this.deps.concurrency - this.tasks.size;
        if (free > 0) {
          const { claimed, nextDueInMs } = await this.deps.lanes.claim(free, this.leaseMs, this.deps.perSubscription, this.inFlight);
          for (const claim of claimed) this.begin(claim);
          if (claimed.length === free) continue;
          if (nextDueInMs !== null) waitMs = Math.min(pollMs, Math.max(5, nextDueInMs));
        }
      } catch (error) {
        if (!this.running) break;
        this.deps.log.error({ err: error }, 'webhook deliverer: claim failed, retrying');
        waitMs = 1000;
      }
      if (!this.running) break;
      if (this.woken) continue;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, waitMs);
        this.wakeUp = () => { clearTimeout(timer); resolve(); };
      });
    }
  }

  private begin(claim: ClaimedDelivery): void {
    this.inFlight.set(claim.subscriptionId, (this.inFlight.get(claim.subscriptionId) ?? 0) + 1);
    const task = this.deliver(claim)
      .catch((error) => this.deps.log.error({ err: error, subscriptionId: claim.subscriptionId, eventId: claim.eventId }, 'webhook delivery failed to settle; its lease will run out'))
      .finally(() => {
        const left = (this.inFlight.get(claim.subscriptionId) ?? 1) - 1;
        if (left > 0) this.inFlight.set(claim.subscriptionId, left);
        else this.inFlight.delete(claim.subscriptionId);
        this.tasks.delete(task);
        this.wake();
      });
    this.tasks.add(task);
  }

  /** Subscriptions are read at most once a second per process (a rotation or pause shows within that). */
  private async subscription(id: string): Promise<WebhookRecord | undefined> {
    const cached = this.cache.get(id);
    if (cached && Date.now() - cached.at < 1000) return cached.record;
    const record = await this.deps.subscriptions.getAnyAccount(id);
    this.cache.set(id, { record, at: Date.now() });
    if (this.cache.size > 10_000) this.cache.clear();
    return record;
  }

  private async deliver(claim: ClaimedDelivery): Promise<void> {
    const subscription = await this.subscription(claim.subscriptionId);
    // Paused or disabled a moment ago: the lease runs out and the lane is put aside.
    if (subscription && !subscription.enabled) return;
    const { policy } = this.deps;
    const startedAt = new Date();
    let outcome: Attempt['outcome'];
    let httpStatus: number | undefined;
    let error: string | undefined;
    let retryAfter: number | undefined;
    let durationMs = 0;
    if (!subscription) {
      outcome = 'refused';
      error = 'the subscription no longer exists';
    } else {
      try {
        // The URL itself here; what its name resolves to (which can change) is checked as each connection
        // opens, by the dispatcher's own lookup: one DNS lookup a delivery, not two.
        await checkWebhookTarget(subscription.url, this.deps.allowPrivateTargets, false, this.deps.self);
        const request = buildWebhookRequest(claim.event, subscription, this.deps.subscriptions.signingSecrets(subscription));
        const answer = await postWebhook(subscription.url, request, policy.timeoutMs, this.dispatcher);
        httpStatus = answer.status;
        error = answer.error ?? (answer.status !== undefined && (answer.status < 200 || answer.status >= 300) ? `HTTP ${answer.status}` : undefined);
        retryAfter = answer.retryAfterMs;
        durationMs = answer.durationMs;
        outcome = answer.refused ? 'refused' : answer.status !== undefined && answer.status >= 200 && answer.status < 300 ? 'ok' : answer.status === 410 ? 'gone' : 'retry';
      } catch (failure) {
        outcome = failure instanceof WebhookTargetError ? 'refused' : 'retry';
        error = (failure as Error).message;
      }
    }
    const delayMs = retryDelayHonouring(retryAfter, webhookRetryDelay(claim.attemptsSoFar + 1, policy), policy.retryWindowMs);
    const result = await this.deps.lanes.settle({
      subscriptionId: claim.subscriptionId, eventId: claim.eventId, token: claim.token, accountId: subscription?.accountId ?? '',
      outcome, httpStatus, error, durationMs, startedAt, delayMs, retryWindowMs: policy.retryWindowMs,
      pauseAfterMs: policy.pauseAfterMs, retentionSeconds: policy.retentionSeconds,
    });
    if (result !== 'delivered' || outcome !== 'ok') this.cache.delete(claim.subscriptionId);
    if (outcome === 'ok') {
      this.deps.metrics?.jobsProcessed.inc({ queue: 'webhooks' });
      this.deps.metrics?.jobDuration.observe({ queue: 'webhooks' }, durationMs / 1000);
    } else {
      this.deps.metrics?.jobsFailed.inc({ queue: 'webhooks' });
      this.deps.log.warn({ subscriptionId: claim.subscriptionId, eventId: claim.eventId, attempt: claim.attemptsSoFar + 1, status: httpStatus, err: error, result }, 'webhook delivery attempt failed');
    }
  }
}

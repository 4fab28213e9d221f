// Delivers one event to one subscription, signed per Standard Webhooks. Non-2xx answers and
// timeouts are retried by the queue with backoff for over 24 h; 410 Gone disables the subscription.
import { createHmac } from 'node:crypto';
import { UnrecoverableError, type Job } from 'bullmq';
import type { Logger } from '../logger.ts';
import { webhookJobSchema } from '../queues.ts';
import type { WebhookSubscriptions } from './webhookSubscriptions.ts';
import { checkWebhookTarget, WebhookTargetError } from './webhookTarget.ts';

export function signWebhook(secret: string, id: string, timestampSeconds: number, body: string): string {
  const key = Buffer.from(secret.startsWith('whsec_') ? secret.slice(6) : secret, 'base64');
  return `v1,${createHmac('sha256', key).update(`${id}.${timestampSeconds}.${body}`).digest('base64')}`;
}

export class WebhookGoneError extends Error {}

export function createWebhookProcessor(deps: { subscriptions: WebhookSubscriptions; log: Logger; timeoutMs?: number; allowPrivateTargets: boolean }) {
  return async function deliverWebhook(job: Job): Promise<number | string> {
    const data = webhookJobSchema.parse(job.data);
    const subscription = await deps.subscriptions.records.get(data.accountId, data.subscriptionId);
    if (!subscription || !subscription.enabled) return 'skipped';
    // Checked at every delivery, not only at subscription: what a name resolves to can change.
    try {
      await checkWebhookTarget(subscription.url, deps.allowPrivateTargets);
    } catch (error) {
      if (error instanceof WebhookTargetError) throw new UnrecoverableError(`webhook ${subscription.id}: ${error.message}`);
      throw error;
    }
    const timestamp = Math.floor(Date.now() / 1000);
    let response: Response;
    try {
      response = await fetch(subscription.url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'user-agent': 'channel-gateway-webhooks/1',
          'webhook-id': data.eventId,
          'webhook-timestamp': String(timestamp),
          'webhook-signature': signWebhook(deps.subscriptions.secretOf(subscription), data.eventId, timestamp, data.event),
        },
        body: data.event,
        redirect: 'manual',
        signal: AbortSignal.timeout(deps.timeoutMs ?? 10_000),
      });
      await response.arrayBuffer().catch(() => undefined);
    } catch (error) {
      throw new Error(`webhook ${subscription.id}: ${(error as Error).name === 'TimeoutError' ? 'timed out' : (error as Error).message}`);
    }
    if (response.status === 410) {
      await deps.subscriptions.save({ ...subscription, enabled: false, disabledReason: 'the endpoint answered 410 Gone' });
      deps.log.warn({ subscriptionId: subscription.id }, 'webhook subscription disabled: 410 Gone');
      return 410;
    }
    if (response.status < 200 || response.status >= 300) throw new Error(`webhook ${subscription.id}: HTTP ${response.status}`);
    return response.status;
  };
}

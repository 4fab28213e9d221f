// One webhook request: the CloudEvent in structured mode (the envelope is the body) or binary mode
// (ce-* headers, data as the body), personal data masked as the subscription asks, signed per
// Standard Webhooks with every current secret; then the POST, bounded in time and in what it reads.
import { createHmac } from 'node:crypto';
import { fetch, type Dispatcher } from 'undici';
import { maskEmailAddresses, maskPhoneNumbers } from '../logger.ts';
import type { WebhookView } from './webhookSubscriptions.ts';
import { connectRefusal } from './checkedDispatcher.ts';

export function signWebhook(secret: string, id: string, timestampSeconds: number, body: string): string {
  const key = Buffer.from(secret.startsWith('whsec_') ? secret.slice(6) : secret, 'base64');
  return `v1,${createHmac('sha256', key).update(`${id}.${timestampSeconds}.${body}`).digest('base64')}`;
}

// Ids, times and provider ids are opaque: masking digits in them would break them.
const opaqueKey = (key: string) => key !== 'channelId' && (key === 'id' || /Id$|At$/.test(key) || key === 'time' || key === 'seq');

function maskValue(value: unknown, mask: (text: string) => string, depth: number): unknown {
  if (typeof value === 'string') return mask(value);
  if (depth > 12 || value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map((v) => maskValue(v, mask, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(value)) out[key] = opaqueKey(key) ? v : maskValue(v, mask, depth + 1);
  return out;
}

/** The event's data with phone numbers and/or email addresses masked (the envelope is left alone). */
export function maskEventData(data: unknown, pii: WebhookView['pii']): unknown {
  if (!pii.maskPhoneNumbers && !pii.maskEmailAddresses) return data;
  const mask = (text: string) => {
    const emailsMasked = pii.maskEmailAddresses ? maskEmailAddresses(text) : text;
    return pii.maskPhoneNumbers ? maskPhoneNumbers(emailsMasked) : emailsMasked;
  };
  return maskValue(data, mask, 0);
}

export interface WebhookRequest { headers: Record<string, string>; body: string }

interface Envelope { id: string; source: string; type: string; time: string; subject?: string; specversion: string; datacontenttype?: string; data: unknown }

/** Headers and body for one subscription; the webhook-id is the event id, the same on every attempt. */
export function buildWebhookRequest(eventJson: string, subscription: Pick<WebhookView, 'format' | 'pii'>, secrets: string[], now = Date.now()): WebhookRequest {
  const masking = subscription.pii.maskPhoneNumbers || subscription.pii.maskEmailAddresses;
  const event = JSON.parse(eventJson) as Envelope;
  const data = masking ? maskEventData(event.data, subscription.pii) : event.data;
  const headers: Record<string, string> = { 'user-agent': 'channel-gateway-webhooks/1' };
  let body: string;
  if (subscription.format === 'binary') {
    body = JSON.stringify(data);
    headers['content-type'] = 'application/json';
    headers['ce-specversion'] = event.specversion;
    headers['ce-id'] = event.id;
    headers['ce-source'] = event.source;
    headers['ce-type'] = event.type;
    headers['ce-time'] = event.time;
    if (event.subject) headers['ce-subject'] = event.subject;
  } else {
    body = masking ? JSON.stringify({ ...event, data }) : eventJson;
    headers['content-type'] = 'application/cloudevents+json; charset=utf-8';
  }
  const timestamp = Math.floor(now / 1000);
  headers['webhook-id'] = event.id;
  headers['webhook-timestamp'] = String(timestamp);
  headers['webhook-signature'] = secrets.map((secret) => signWebhook(secret, event.id, timestamp, body)).join(' ');
  return { headers, body };
}

export interface WebhookAnswer {
  status?: number; retryAfterMs?: number; error?: string; durationMs: number;
  /** The connection was refused by the target check (the name resolved somewhere it may not go): not worth a retry. */
  refused?: boolean;
}

/** Retry-After as seconds or an HTTP date, in ms from now; undefined when absent or unreadable. */
export function retryAfterMs(header: string | null, now = Date.now()): number | undefined {
  if (!header) return undefined;
  if (/^\d+$/.test(header.trim())) return Number(header.trim()) * 1000;
  const at = Date.parse(header);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/** What the gateway reads of an answer: enough for a log line; the rest is discarded unread. */
const answerReadLimit = 16 * 1024;

/** POSTs the request; never throws. A slow or huge answer costs at most `timeoutMs` and 16 KiB. */
/** `dispatcher` decides where connections may go (createCheckedDispatcher); without it, anywhere. */
export async function postWebhook(url: string, request: WebhookRequest, timeoutMs: number, dispatcher?: Dispatcher): Promise<WebhookAnswer> {
  const started = performance.now();
  const signal = AbortSignal.timeout(timeoutMs);
  try {
    const response = await fetch(url, { method: 'POST', headers: request.headers, body: request.body, redirect: 'manual', signal, dispatcher });
    const reader = response.body?.getReader();
    let read = 0;
    try {
      while (reader && read < answerReadLimit) {
        const chunk = await reader.read();
        if (chunk.done) break;
        read += chunk.value.byteLength;
      }
    } catch {
      // The status is what counts; an answer body that stalls or breaks off changes nothing.
    } finally {
      await reader?.cancel().catch(() => undefined);
    }
    return { status: response.status, retryAfterMs: retryAfterMs(response.headers.get('retry-after')), durationMs: performance.now() - started };
  } catch (error) {
    const name = (error as Error).name;
    const cause = (error as Error & { cause?: Error }).cause;
    const message = name === 'TimeoutError' || signal.aborted ? `no answer within ${timeoutMs} ms` : String(cause?.message ?? (error as Error).message);
    return { error: message.slice(0, 300), durationMs: performance.now() - started, ...(connectRefusal(error) ? { refused: true } : {}) };
  }
}

// Vonage (Nexmo) SMS API: inbound messages and delivery receipts as form or JSON, signed (`sig`) when
// the account has signed webhooks on (md5hash or HMAC md5/sha1/sha256/sha512 over the sorted
// `&key=value` string); unsigned accounts rely on the URL's per-inbox token. Sends via /sms/json.
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import {
  flatFields, nonEmpty, parsePayload, readProviderJson, SmsProviderError, apiBase,
  type SmsInbound, type SmsProvider, type SmsReceipt, type SmsReceiptStatus, type SmsSendRequest, type SmsSent, type SmsWebhook,
} from './smsProvider.ts';
import { smsSegments } from './smsSegments.ts';

const defaultApiBase = 'https://rest.nexmo.com';
type VonageCredentials = { apiKey: string; apiSecret: string; signatureSecret?: string; signatureMethod?: 'md5hash' | 'md5' | 'sha1' | 'sha256' | 'sha512'; from: string };

/** Vonage's `sig`: the fields but sig sorted by key as `&key=value` (`&` and `=` in values become `_`), hashed or HMAC'd with the secret. */
export function vonageSignature(fields: Record<string, string>, secret: string, method: NonNullable<VonageCredentials['signatureMethod']>): string {
  const data = Object.keys(fields).filter((k) => k !== 'sig').sort().map((k) => `&${k}=${fields[k]!.replace(/[&=]/g, '_')}`).join('');
  if (method === 'md5hash') return createHash('md5').update(data + secret, 'utf8').digest('hex');
  return createHmac(method, secret).update(data, 'utf8').digest('hex');
}

/** Vonage's `message-timestamp` is UTC without a zone: "2020-01-01 12:00:00". */
function utcTime(value: string | undefined): string {
  const m = value && /^(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}:\d{2})$/.exec(value.trim());
  return m ? new Date(`${m[1]}T${m[2]}Z`).toISOString() : new Date().toISOString();
}

const inbound = z.object({ msisdn: nonEmpty, to: nonEmpty, messageId: nonEmpty, text: z.string().default(''), type: z.string().optional(), 'message-timestamp': z.string().optional() });
const receipt = z.object({ messageId: nonEmpty, status: nonEmpty, 'err-code': z.string().optional(), 'client-ref': z.string().optional() });

export function vonageStatus(status: string): SmsReceiptStatus | undefined {
  switch (status) {
    case 'accepted': case 'buffered': return 'sent';
    case 'delivered': return 'delivered';
    case 'expired': case 'failed': case 'rejected': return 'failed';
    default: return undefined;
  }
}

/**
 * A signed webhook's `timestamp` (Unix seconds, inside the signature) may be this old: Vonage sends a webhook
 * again for 24 h until it is answered, so a day and an hour; older, a captured webhook is being replayed.
 */
export const vonageReplayWindowSeconds = 25 * 3600;
/** Clocks disagree: a timestamp this far ahead of ours still passes. */
const futureSkewSeconds = 300;

function withinReplayWindow(timestamp: string | undefined, nowMs = Date.now()): boolean {
  // Signed webhooks without a timestamp (older signing setups) are judged by the signature alone.
  if (timestamp === undefined) return true;
  const at = Number(timestamp);
  if (!Number.isFinite(at)) return false;
  const age = nowMs / 1000 - at;
  return age <= vonageReplayWindowSeconds && age >= -futureSkewSeconds;
}

/** /sms/json status codes worth trying again: throttled, internal error, communication failure. */
const retryableStatus = new Set(['1', '5', '13']);

export class VonageProvider implements SmsProvider {
  readonly name = 'vonage' as const;
  readonly authentication = 'signatureOrUrlToken' as const;
  readonly inboundAck = {};
  readonly receiptAck = {};

  signs(credentials: Record<string, unknown>): boolean {
    return typeof credentials.signatureSecret === 'string' && credentials.signatureSecret.length > 0;
  }

  verify(webhook: SmsWebhook, credentials: Record<string, unknown>): boolean {
    const c = credentials as VonageCredentials;
    const fields = { ...webhook.query, ...flatFields(webhook) };
    if (!c.signatureSecret || !fields.sig) return false;
    const expected = Buffer.from(vonageSignature(fields, c.signatureSecret, c.signatureMethod ?? 'md5hash').toLowerCase());
    const given = Buffer.from(fields.sig.toLowerCase());
    return expected.length === given.length && timingSafeEqual(expected, given) && withinReplayWindow(fields.timestamp);
  }

  parseInbound(webhook: SmsWebhook): SmsInbound[] {
    const f = parsePayload(inbound, flatFields(webhook), 'Vonage inbound');
    return [{ externalId: f.messageId, from: `+${f.msisdn.replace(/^\+/, '')}`, to: f.to, text: f.text, sentAt: utcTime(f['message-timestamp']) }];
  }

  parseReceipts(webhook: SmsWebhook): SmsReceipt[] {
    const f = parsePayload(receipt, flatFields(webhook), 'Vonage delivery receipt');
    const status = vonageStatus(f.status);
    if (!status) return [];
    const code = f['err-code'] && f['err-code'] !== '0' ? f['err-code'] : undefined;
    return [{
      externalId: f.messageId, ...(f['client-ref'] ? { messageId: f['client-ref'] } : {}), status,
      ...(status === 'failed' ? { errorCode: code ?? f.status, errorMessage: `Vonage: the message was ${f.status}${code ? ` (err-code ${code})` : ''}` } : {}),
    }];
  }

  async send(request: SmsSendRequest, signal: AbortSignal): Promise<SmsSent> {
    const c = request.credentials as VonageCredentials;
    const form = new URLSearchParams({
      api_key: c.apiKey, api_secret: c.apiSecret, from: c.from, to: request.to.replace(/^\+/, ''), text: request.text,
      'client-ref': request.messageId, callback: request.statusUrl, 'status-report-req': '1',
    });
    if (smsSegments(request.text).encoding === 'UCS-2') form.set('type', 'unicode');
    const response = await fetch(`${apiBase(request.settings, defaultApiBase)}/sms/json`, {
      method: 'POST', signal, redirect: 'error', dispatcher: request.dispatcher, body: form, headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    const answer = await readProviderJson(response, 'Vonage');
    const parts = z.array(z.object({ status: z.string(), 'message-id': z.string().optional(), 'error-text': z.string().optional() }).loose())
      .catch([]).parse(answer.messages);
    const failed = parts.find((p) => p.status !== '0');
    const ids = parts.map((p) => p['message-id']).filter((id): id is string => !!id);
    if (response.ok && parts.length && !failed && ids.length) return { externalId: ids[0]!, partIds: ids.slice(1) };
    // Some parts went out: resending would repeat them, so the message counts as sent (its receipts tell the rest).
    if (ids.length) return { externalId: ids[0]!, partIds: ids.slice(1) };
    const code = failed?.status ?? `http_${response.status}`;
    throw new SmsProviderError(code, `Vonage refused the message: status ${code}${failed?.['error-text'] ? ` (${failed['error-text']})` : ''}`,
      retryableStatus.has(code) || response.status >= 500 || response.status === 429, response.status < 500 && code !== '5');
  }
}

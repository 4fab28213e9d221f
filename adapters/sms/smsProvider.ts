// The one narrow interface every SMS provider implements (Twilio, Aliyun, Tencent Cloud, Vonage):
// verify a webhook, parse inbound messages (batched pushes too) and delivery receipts, map the
// provider's statuses, and send. Providers translate; they store nothing and know no routing.
import type { Dispatcher } from 'undici';
import { z } from 'zod';

export type SmsProviderName = 'twilio' | 'aliyun' | 'tencent' | 'vonage';

/** A webhook as the provider sent it: the exact bytes (providers sign them) and the URL it called. */
export interface SmsWebhook {
  rawBody: Buffer;
  contentType: string;
  /** The URL as the provider called it (PUBLIC_URL + path + query). */
  url: string;
  query: Record<string, string>;
  headers: Record<string, string | string[] | undefined>;
}

/** An inbound SMS as the provider describes it; the core turns the numbers into E.164. */
export interface SmsInbound {
  externalId: string;
  /** The sender as the provider wrote it (E.164, international digits, or national). */
  from: string;
  /** A country calling code the provider gives separately (Tencent's nationcode). */
  fromCountryCode?: string;
  to: string;
  text: string;
  sentAt: string;
  attachments?: { url: string; contentType: string }[];
}

export type SmsReceiptStatus = 'sent' | 'delivered' | 'read' | 'failed';

export interface SmsReceipt {
  /** The provider's id for the sent message (Twilio MessageSid, BizId, SerialNo/sid, Vonage messageId). */
  externalId?: string;
  /** The gateway's message id when the provider echoes it back (Aliyun out_id, Vonage client-ref). */
  messageId?: string;
  status: SmsReceiptStatus;
  errorCode?: string;
  errorMessage?: string;
}

export interface SmsSendRequest {
  credentials: Record<string, unknown>;
  settings: SmsSettingsView;
  /** E.164. */
  to: string;
  text: string;
  /** The gateway's outbound message id: passed to providers that echo it in receipts. */
  messageId: string;
  /** Where the provider should post this message's receipts (for providers that take it per send). */
  statusUrl: string;
  mediaUrls: string[];
  /** Where the provider call's connections may go (the gateway's checked dispatcher); absent: anywhere. */
  dispatcher?: Dispatcher;
}

export interface SmsSettingsView {
  apiBaseUrl?: string;
  templateVariable: string;
  region?: string;
}

/** The provider API's base URL without a trailing slash: the inbox's apiBaseUrl, else the provider's own. */
export function apiBase(settings: SmsSettingsView, defaultBase: string): string {
  return (settings.apiBaseUrl ?? defaultBase).replace(/\/$/, '');
}

export interface SmsSent {
  externalId: string;
  /** Further provider ids of the same message (Vonage answers one id per part). */
  partIds?: string[];
}

/**
 * The provider answered with an error. `retryable` says whether the same request may succeed later
 * (throttling, provider-side errors) or never will (bad number, bad template). `refused` is true only
 * for a definite refusal (a provider error code in a 4xx or 200): a 5xx or an unreadable answer may
 * come from a proxy after the provider took the message, so nothing is known about whether it went out.
 */
export class SmsProviderError extends Error {
  constructor(readonly code: string, message: string, readonly retryable: boolean, readonly refused = true) {
    super(message);
  }
}

/** A webhook that is not what the provider sends: a 400 with this reason. */
export class SmsPayloadError extends Error {}

/** What a provider expects back once a webhook is taken: this body (answered 200), or none (204). */
export interface SmsAck { type?: string; body?: string }

export interface SmsProvider {
  readonly name: SmsProviderName;
  /** How its webhooks prove they come from the provider: its signature, or the URL's per-inbox token. */
  readonly authentication: 'signature' | 'urlToken' | 'signatureOrUrlToken';
  /** True when the webhook carries a valid signature (only called for signing providers). */
  verify(webhook: SmsWebhook, credentials: Record<string, unknown>): boolean;
  /** True when these credentials make the provider sign its webhooks (Vonage: a signatureSecret). */
  signs(credentials: Record<string, unknown>): boolean;
  parseInbound(webhook: SmsWebhook): SmsInbound[];
  parseReceipts(webhook: SmsWebhook): SmsReceipt[];
  inboundAck: SmsAck;
  receiptAck: SmsAck;
  send(request: SmsSendRequest, signal: AbortSignal): Promise<SmsSent>;
  /**
   * After an unanswered send: the provider's ids of messages that may be this one (same recipient and
   * text, created since `since`), newest first; the core skips ids another message already owns. Only
   * where the provider can be asked.
   */
  findSent?(request: SmsSendRequest, since: Date, signal: AbortSignal): Promise<string[]>;
}

/** Form fields with every value of a repeated key (providers sign them all). */
export function formFields(raw: Buffer): Map<string, string[]> {
  const fields = new Map<string, string[]>();
  for (const [key, value] of new URLSearchParams(raw.toString('utf8'))) {
    const list = fields.get(key);
    if (list) list.push(value);
    else fields.set(key, [value]);
  }
  return fields;
}

/** The body's fields as one flat record: form-encoded or a JSON object (first value of a repeated key). */
export function flatFields(webhook: SmsWebhook): Record<string, string> {
  if (webhook.contentType.includes('json')) {
    const parsed = parseJson(webhook.rawBody);
    if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new SmsPayloadError('the body is not a JSON object');
    return Object.fromEntries(Object.entries(parsed as Record<string, unknown>)
      .filter(([, v]) => v !== null && v !== undefined && typeof v !== 'object').map(([k, v]) => [k, String(v)]));
  }
  const out: Record<string, string> = {};
  for (const [key, values] of formFields(webhook.rawBody)) out[key] = values[0]!;
  return out;
}

export function parseJson(raw: Buffer): unknown {
  try {
    return JSON.parse(raw.toString('utf8'));
  } catch {
    throw new SmsPayloadError('the body is not valid JSON');
  }
}

/** A JSON body that is an object or a non-empty array of them (at most 1000: a provider's batch), as a list. */
export function jsonItems(raw: Buffer, what: string): unknown[] {
  const parsed = parseJson(raw);
  const items = Array.isArray(parsed) ? parsed : parsed && typeof parsed === 'object' ? [parsed] : undefined;
  if (!items?.length) throw new SmsPayloadError(`${what}: expected a JSON object or a non-empty array of them`);
  if (items.length > 1000) throw new SmsPayloadError(`${what}: at most 1000 items per push`);
  return items;
}

/** Parses with zod; the first issue becomes the 400's reason. */
export function parsePayload<T extends z.ZodType>(schema: T, value: unknown, what: string): z.infer<T> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  throw new SmsPayloadError(`${what}: ${issue?.path.length ? issue.path.join('.') + ': ' : ''}${issue?.message ?? 'invalid'}`);
}

/** A JSON answer from a provider API, or a retryable error saying what came back instead. */
export async function readProviderJson(response: Response, provider: string): Promise<Record<string, unknown>> {
  const text = await response.text();
  try {
    const value = JSON.parse(text) as unknown;
    if (value && typeof value === 'object' && !Array.isArray(value)) return value as Record<string, unknown>;
  } catch { /* below */ }
  // Unreadable: maybe a proxy's page after the provider took the message, so not a refusal (except a plain 429).
  throw new SmsProviderError(`http_${response.status}`, `${provider} answered ${response.status} without a JSON body`,
    response.status >= 500 || response.status === 429, response.status === 429);
}

export const nonEmpty = z.string().trim().min(1);
/** Provider ids arrive as strings or numbers (Aliyun's sequence_id); kept as the string the provider wrote. */
export const idString = z.union([z.string().min(1), z.number()]).transform((v) => String(v));

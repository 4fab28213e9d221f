// Twilio Programmable Messaging: form-encoded webhooks signed with X-Twilio-Signature (HMAC-SHA1 of
// the URL plus the sorted fields), Messages.json to send, and a message list to ask after a timeout.
import { createHmac, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import {
  flatFields, formFields, parsePayload, readProviderJson, SmsProviderError, apiBase, nonEmpty,
  type SmsInbound, type SmsProvider, type SmsReceipt, type SmsReceiptStatus, type SmsSendRequest, type SmsSent, type SmsWebhook,
} from './smsProvider.ts';

const defaultApiBase = 'https://api.twilio.com';
/** How far Twilio's clock (and its whole-second date_created) may trail the send marker's time. */
const clockSkewMs = 5_000;

type TwilioCredentials = { accountSid: string; authToken: string; from?: string; messagingServiceSid?: string };

/** X-Twilio-Signature: base64 HMAC-SHA1(authToken, url + each key and value, keys sorted, a repeated key's values sorted). */
export function twilioSignature(authToken: string, url: string, fields: Map<string, string[]>): string {
  let data = url;
  for (const key of [...fields.keys()].sort()) {
    for (const value of [...fields.get(key)!].sort()) data += key + value;
  }
  return createHmac('sha1', authToken).update(data, 'utf8').digest('base64');
}

/** The URL with and without the default port: Twilio signs it as it called it, which may name :443 or not. */
function urlVariants(url: string): string[] {
  const parsed = new URL(url);
  const defaultPort = parsed.protocol === 'https:' ? '443' : '80';
  const bare = new URL(url); bare.port = '';
  const withPort = `${bare.protocol}//${bare.hostname}:${defaultPort}${bare.pathname}${bare.search}`;
  return [...new Set([url, bare.toString(), withPort])];
}

const inboundFields = z.object({ MessageSid: nonEmpty, From: nonEmpty, To: nonEmpty, Body: z.string().default(''), NumMedia: z.string().optional() });
const statusFields = z.object({ MessageSid: nonEmpty, MessageStatus: nonEmpty, ErrorCode: z.string().optional() });

/** Twilio's message statuses as the gateway's; undefined for the ones that say nothing new. */
export function twilioStatus(status: string): SmsReceiptStatus | undefined {
  switch (status) {
    case 'accepted': case 'scheduled': case 'queued': case 'sending': case 'sent': return 'sent';
    case 'delivered': return 'delivered';
    case 'read': return 'read';
    case 'undelivered': case 'failed': case 'canceled': return 'failed';
    default: return undefined;
  }
}

/** Twilio error codes that name a number or an account state no retry mends. */
const permanentCodes = new Set([21211, 21408, 21610, 21612, 21614, 21606, 21659, 30003, 30004, 30005, 30006, 30007]);

export class TwilioProvider implements SmsProvider {
  readonly name = 'twilio' as const;
  readonly authentication = 'signature' as const;
  readonly inboundAck = { type: 'text/xml', body: '<?xml version="1.0" encoding="UTF-8"?><Response></Response>' };
  readonly receiptAck = {};

  signs(): boolean { return true; }

  verify(webhook: SmsWebhook, credentials: Record<string, unknown>): boolean {
    const header = webhook.headers['x-twilio-signature'];
    const { authToken } = credentials as TwilioCredentials;
    if (typeof header !== 'string' || !authToken) return false;
    const given = Buffer.from(header);
    const fields = formFields(webhook.rawBody);
    return urlVariants(webhook.url).some((url) => {
      const expected = Buffer.from(twilioSignature(authToken, url, fields));
      return expected.length === given.length && timingSafeEqual(expected, given);
    });
  }

  parseInbound(webhook: SmsWebhook): SmsInbound[] {
    const fields = flatFields(webhook);
    const f = parsePayload(inboundFields, fields, 'Twilio inbound');
    const attachments: { url: string; contentType: string }[] = [];
    for (let n = 0; n < Math.min(Number(f.NumMedia ?? 0) || 0, 10); n++) {
      const url = fields[`MediaUrl${n}`];
      if (url) attachments.push({ url, contentType: fields[`MediaContentType${n}`] ?? 'application/octet-stream' });
    }
    return [{
      externalId: f.MessageSid, from: f.From, to: f.To, text: f.Body, sentAt: new Date().toISOString(),
      ...(attachments.length ? { attachments } : {}),
    }];
  }

  parseReceipts(webhook: SmsWebhook): SmsReceipt[] {
    const f = parsePayload(statusFields, flatFields(webhook), 'Twilio status callback');
    const status = twilioStatus(f.MessageStatus);
    if (!status) return [];
    const code = f.ErrorCode && f.ErrorCode !== '0' ? f.ErrorCode : undefined;
    return [{
      externalId: f.MessageSid, status,
      ...(status === 'failed' ? { errorCode: code ?? f.MessageStatus, errorMessage: `Twilio: the message was ${f.MessageStatus}${code ? ` (error ${code})` : ''}` } : {}),
    }];
  }

  async send(request: SmsSendRequest, signal: AbortSignal): Promise<SmsSent> {
    const c = request.credentials as TwilioCredentials;
    const form = new URLSearchParams({ To: request.to, Body: request.text, StatusCallback: request.statusUrl });
    if (c.messagingServiceSid) form.set('MessagingServiceSid', c.messagingServiceSid);
    else form.set('From', c.from!);
    for (const url of request.mediaUrls) form.append('MediaUrl', url);
    const response = await fetch(`${this.base(request)}/2010-04-01/Accounts/${encodeURIComponent(c.accountSid)}/Messages.json`, {
      method: 'POST', signal, redirect: 'error', dispatcher: request.dispatcher, body: form,
      headers: { authorization: basicAuth(c), 'content-type': 'application/x-www-form-urlencoded' },
    });
    const answer = await readProviderJson(response, 'Twilio');
    if (response.ok && typeof answer.sid === 'string') return { externalId: answer.sid };
    const code = Number(answer.code);
    const retryable = response.status === 429 || response.status >= 500;
    throw new SmsProviderError(String(answer.code ?? `http_${response.status}`), `Twilio refused the message: ${String(answer.message ?? response.status)}`,
      retryable && !permanentCodes.has(code), response.status < 500);
  }

  /**
   * Twilio lists messages newest first by To/From: the one with this body created since the attempt is
   * the one sent. (No DateSent filter: a message still queued has no date_sent yet.)
   */
  async findSent(request: SmsSendRequest, since: Date, signal: AbortSignal): Promise<string[]> {
    const c = request.credentials as TwilioCredentials;
    const query = new URLSearchParams({ To: request.to, PageSize: '100' });
    if (c.from && !c.messagingServiceSid) query.set('From', c.from);
    const response = await fetch(`${this.base(request)}/2010-04-01/Accounts/${encodeURIComponent(c.accountSid)}/Messages.json?${query}`, {
      signal, redirect: 'error', dispatcher: request.dispatcher, headers: { authorization: basicAuth(c) },
    });
    const answer = await readProviderJson(response, 'Twilio');
    if (!response.ok) throw new SmsProviderError(String(answer.code ?? response.status), `Twilio could not list messages: ${String(answer.message ?? response.status)}`, true);
    const messages = z.array(z.object({ sid: z.string(), body: z.string().nullable().optional(), date_created: z.string().nullable().optional() }).loose())
      .catch([]).parse(answer.messages);
    // date_created has whole seconds: a small skew for that and for clocks, no more (an older twin is not this one).
    const cutoff = since.getTime() - clockSkewMs;
    return messages.filter((m) => m.body === request.text && (!m.date_created || Date.parse(m.date_created) >= cutoff)).map((m) => m.sid);
  }

  private base(request: SmsSendRequest): string {
    return apiBase(request.settings, defaultApiBase);
  }
}

function basicAuth(c: TwilioCredentials): string {
  return `Basic ${Buffer.from(`${c.accountSid}:${c.authToken}`).toString('base64')}`;
}

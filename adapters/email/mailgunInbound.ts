// Mailgun inbound routes (forward() to our URL): the parsed form (`body-plain`, `body-html`,
// `message-headers`, `attachment-N`, `content-id-map`) or, when the URL ends in `mime`, the raw mail
// in `body-mime`. Signed: `signature` = hex HMAC-SHA256(signing key, timestamp + token); the timestamp
// must be fresh and the token is handed back so the caller refuses its reuse with another body.
import { createHmac, timingSafeEqual } from 'node:crypto';
import { malformedWebhook, unauthorizedWebhook } from './emailWebhookErrors.ts';
import type { InboundEmailProvider, InboundWebhook, InboundWebhookRequest, InboundWebhookSecrets } from './inboundEmailProvider.ts';
import type { ParseMailOptions } from './parseMail.ts';
import { jsonField, readWebhookForm, utf8Field } from './webhookForm.ts';
import { mailFromParts, mailFromRaw } from './webhookMail.ts';

export const mailgunDefaultMaxAgeSeconds = 300;

export function verifyMailgunSignature(
  fields: { timestamp?: string; token?: string; signature?: string }, signingKey: string | undefined, now: Date, maxAgeSeconds = mailgunDefaultMaxAgeSeconds,
): void {
  if (!signingKey) throw unauthorizedWebhook('webhook_secret_missing', 'the inbox needs the credential webhookSigningKey (the Mailgun HTTP webhook signing key)');
  const { timestamp = '', token = '', signature = '' } = fields;
  if (!/^\d{1,12}$/.test(timestamp) || !token || token.length > 200) throw unauthorizedWebhook('invalid_signature', 'timestamp and token are required');
  if (!/^[0-9a-f]{64}$/i.test(signature)) throw unauthorizedWebhook('invalid_signature', 'signature is not a hex HMAC-SHA256');
  const expected = createHmac('sha256', signingKey).update(timestamp + token).digest();
  if (!timingSafeEqual(expected, Buffer.from(signature, 'hex'))) throw unauthorizedWebhook('invalid_signature', 'the signature does not match');
  if (Math.abs(now.getTime() / 1000 - Number(timestamp)) > maxAgeSeconds) throw unauthorizedWebhook('stale_timestamp', `the timestamp is more than ${maxAgeSeconds} s from now`);
}

export class MailgunInbound implements InboundEmailProvider {
  readonly name = 'mailgun';

  async receive(request: InboundWebhookRequest, secrets: InboundWebhookSecrets, options: ParseMailOptions = {}): Promise<InboundWebhook> {
    // Fields are read as bytes: body-mime must stay byte-exact (8-bit charsets); the rest is UTF-8.
    const form = await readWebhookForm(request.body, request.contentType, { fieldCharset: 'latin1', maxFieldBytes: request.body.length + 1 });
    const field = (name: string) => utf8Field(form.fields[name]);
    const maxAgeSeconds = secrets.maxAgeSeconds ?? mailgunDefaultMaxAgeSeconds;
    verifyMailgunSignature({ timestamp: field('timestamp'), token: field('token'), signature: field('signature') }, secrets.webhookSigningKey, request.now ?? new Date(), maxAgeSeconds);

    const recipients = (field('recipient') ?? '').split(',').map((r) => r.trim()).filter(Boolean);
    const replayToken = { value: field('token')!, ttlSeconds: 2 * maxAgeSeconds + 60 };
    const rawMime = form.fields['body-mime'];
    if (rawMime !== undefined) {
      const raw = Buffer.from(rawMime, 'latin1');
      return { mail: await mailFromRaw(raw, options), raw, replayToken, recipients };
    }

    const headers = headerPairs(jsonField<unknown>(form.fields, 'message-headers', 'latin1') ?? null, field);
    const cidMap = jsonField<Record<string, unknown>>(form.fields, 'content-id-map', 'latin1') ?? {};
    const cidOf = new Map(Object.entries(cidMap).flatMap(([cid, target]) => [target].flat().map((t) => [String(typeof t === 'object' && t && 'url' in t ? (t as { url: string }).url : t), cid] as const)));
    const attachments = form.files
      .filter((f) => /^attachment-\d+$/.test(f.field))
      .sort((a, b) => Number(a.field.slice(11)) - Number(b.field.slice(11)))
      .map((f) => ({ filename: f.filename, contentType: f.contentType, content: f.content, ...(cidOf.has(f.field) ? { contentId: cidOf.get(f.field)! } : {}) }));
    const mail = await mailFromParts({ headers, text: field('body-plain'), html: field('body-html'), attachments, size: request.body.length }, options);
    return { mail, replayToken, recipients };
  }
}

/** message-headers is a JSON list of [name, value]; without it, the header fields Mailgun posts on their own. */
function headerPairs(parsed: unknown, field: (name: string) => string | undefined): [string, string][] {
  if (parsed !== null) {
    if (!Array.isArray(parsed) || !parsed.every((p) => Array.isArray(p) && p.length >= 2)) throw malformedWebhook('message-headers is not a list of [name, value] pairs');
    return parsed.map((p) => [String(p[0]), String(p[1])]);
  }
  const pairs: [string, string][] = [];
  for (const [header, name] of [['From', 'from'], ['To', 'To'], ['Cc', 'Cc'], ['Subject', 'subject'], ['Date', 'Date'], ['Message-Id', 'Message-Id'], ['In-Reply-To', 'In-Reply-To'], ['References', 'References'], ['Reply-To', 'Reply-To']] as const) {
    const value = field(name) ?? field(name.toLowerCase());
    if (value !== undefined) pairs.push([header, value]);
  }
  if (!pairs.length && field('sender')) pairs.push(['From', field('sender')!]);
  if (!pairs.length) throw malformedWebhook('the post has neither body-mime nor message-headers nor from');
  return pairs;
}

// Postmark inbound webhook: one JSON document. `MessageID` is Postmark's own id; the RFC Message-ID,
// In-Reply-To and References are among `Headers`. With "include raw email" on, `RawEmail` is the whole
// mail and is parsed instead. Unsigned: see sharedSecret.ts.
import { z } from 'zod';
import { malformedWebhook } from './emailWebhookErrors.ts';
import type { InboundEmailProvider, InboundWebhook, InboundWebhookRequest, InboundWebhookSecrets } from './inboundEmailProvider.ts';
import type { ParseMailOptions } from './parseMail.ts';
import { verifySharedSecret } from './sharedSecret.ts';
import { mailFromParts, mailFromRaw } from './webhookMail.ts';

const address = z.object({ Email: z.string(), Name: z.string().optional().nullable() });
const postmarkInbound = z.object({
  MessageID: z.string().optional(),
  From: z.string().optional(),
  FromFull: address.optional(),
  To: z.string().optional(),
  ToFull: z.array(address).optional(),
  Cc: z.string().optional(),
  CcFull: z.array(address).optional(),
  ReplyTo: z.string().optional(),
  Subject: z.string().optional(),
  Date: z.string().optional(),
  OriginalRecipient: z.string().optional(),
  TextBody: z.string().optional().nullable(),
  HtmlBody: z.string().optional().nullable(),
  Headers: z.array(z.object({ Name: z.string(), Value: z.string() })).default([]),
  Attachments: z.array(z.object({
    Name: z.string().default('attachment'), Content: z.string(), ContentType: z.string().default('application/octet-stream'),
    ContentLength: z.number().optional(), ContentID: z.string().optional().nullable(),
  })).default([]),
  RawEmail: z.string().optional().nullable(),
});

export class PostmarkInbound implements InboundEmailProvider {
  readonly name = 'postmark';

  async receive(request: InboundWebhookRequest, secrets: InboundWebhookSecrets, options: ParseMailOptions = {}): Promise<InboundWebhook> {
    verifySharedSecret(request, secrets.webhookSigningKey);
    let json: unknown;
    try {
      json = JSON.parse(request.body.toString('utf8'));
    } catch {
      throw malformedWebhook('the body is not valid JSON');
    }
    const parsed = postmarkInbound.safeParse(json);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      throw malformedWebhook(`not a Postmark inbound message: ${issue.path.join('.') || 'body'}: ${issue.message}`);
    }
    const post = parsed.data;
    const recipients = [post.OriginalRecipient ?? []].flat();
    const providerMessageId = post.MessageID;
    if (post.RawEmail) {
      const raw = Buffer.from(post.RawEmail, 'utf8');
      return { mail: await mailFromRaw(raw, options), raw, recipients, ...(providerMessageId ? { providerMessageId } : {}) };
    }

    const headers: [string, string][] = [];
    const from = post.FromFull ? formatAddress(post.FromFull) : post.From;
    if (from) headers.push(['From', from]);
    const to = post.ToFull?.length ? post.ToFull.map(formatAddress).join(', ') : post.To;
    if (to) headers.push(['To', to]);
    const cc = post.CcFull?.length ? post.CcFull.map(formatAddress).join(', ') : post.Cc;
    if (cc) headers.push(['Cc', cc]);
    if (post.ReplyTo) headers.push(['Reply-To', post.ReplyTo]);
    if (post.Subject !== undefined) headers.push(['Subject', post.Subject]);
    if (post.Date) headers.push(['Date', post.Date]);
    const taken = new Set(headers.map(([name]) => name.toLowerCase()));
    for (const h of post.Headers) if (!taken.has(h.Name.toLowerCase())) headers.push([h.Name, h.Value]);

    const attachments = post.Attachments.map((a) => {
      if (!/^[A-Za-z0-9+/\r\n]*={0,2}[\r\n]*$/.test(a.Content)) throw malformedWebhook(`the attachment ${a.Name} is not base64`);
      return { filename: a.Name, contentType: a.ContentType, content: Buffer.from(a.Content, 'base64'), ...(a.ContentID ? { contentId: a.ContentID } : {}) };
    });
    const mail = await mailFromParts({ headers, text: post.TextBody ?? undefined, html: post.HtmlBody ?? undefined, attachments, size: request.body.length }, options);
    return { mail, recipients, ...(providerMessageId ? { providerMessageId } : {}) };
  }
}

// The display name goes in as an encoded word, so commas, quotes and non-ASCII in it cannot split the address.
function formatAddress(a: { Email: string; Name?: string | null }): string {
  return a.Name ? `=?UTF-8?B?${Buffer.from(a.Name, 'utf8').toString('base64')}?= <${a.Email}>` : a.Email;
}

// SendGrid Inbound Parse: multipart posts, in raw mode (`email`: the whole mail) or parsed mode
// (`headers` the raw header block, `text`, `html`, `attachmentN` files described by `attachment-info`,
// `content-ids`, and `charsets` naming each field's encoding). Unsigned: see sharedSecret.ts.
import { malformedWebhook } from './emailWebhookErrors.ts';
import type { InboundEmailProvider, InboundWebhook, InboundWebhookRequest, InboundWebhookSecrets } from './inboundEmailProvider.ts';
import type { ParseMailOptions } from './parseMail.ts';
import { verifySharedSecret } from './sharedSecret.ts';
import { jsonField, readWebhookForm } from './webhookForm.ts';
import { mailFromParts, mailFromRaw } from './webhookMail.ts';

interface AttachmentInfo { filename?: string; name?: string; type?: string; 'content-id'?: string }

export class SendgridInbound implements InboundEmailProvider {
  readonly name = 'sendgrid';

  async receive(request: InboundWebhookRequest, secrets: InboundWebhookSecrets, options: ParseMailOptions = {}): Promise<InboundWebhook> {
    verifySharedSecret(request, secrets.webhookSigningKey);
    // Bytes first: each field is decoded by the charset SendGrid names for it (GBK text stays GBK until then).
    const form = await readWebhookForm(request.body, request.contentType, { fieldCharset: 'latin1', maxFieldBytes: request.body.length + 1 });
    const charsets = jsonField<Record<string, string>>(form.fields, 'charsets', 'latin1') ?? {};
    const field = (name: string) => decodeField(form.fields[name], charsets[name]);
    const envelope = jsonField<{ to?: string[] | string; from?: string }>(form.fields, 'envelope', 'latin1') ?? {};
    const recipients = [envelope.to ?? []].flat().map(String);

    if (form.fields.email !== undefined) {
      const raw = Buffer.from(form.fields.email, 'latin1');
      return { mail: await mailFromRaw(raw, options), raw, recipients };
    }

    const headerBlock = form.fields.headers;
    if (headerBlock === undefined) throw malformedWebhook('the post has neither email (raw mode) nor headers (parsed mode)');
    const info = jsonField<Record<string, AttachmentInfo>>(form.fields, 'attachment-info', 'latin1') ?? {};
    const contentIds = jsonField<Record<string, string>>(form.fields, 'content-ids', 'latin1') ?? {};
    const cidOf = new Map(Object.entries(contentIds).map(([cid, field]) => [field, cid]));
    const attachments = form.files
      .filter((f) => /^attachment\d+$/.test(f.field))
      .sort((a, b) => Number(a.field.slice(10)) - Number(b.field.slice(10)))
      .map((f) => {
        const meta = info[f.field] ?? {};
        const contentId = meta['content-id'] ?? cidOf.get(f.field);
        return { filename: meta.filename ?? meta.name ?? f.filename, contentType: meta.type ?? f.contentType, content: f.content, ...(contentId ? { contentId } : {}) };
      });
    const mail = await mailFromParts({
      headers: headerLines(Buffer.from(headerBlock, 'latin1').toString('utf8')),
      text: field('text'), html: field('html'), attachments, size: request.body.length,
    }, options);
    return { mail, recipients };
  }
}

/** A raw header block (folded lines included) as [name, value] pairs. */
export function headerLines(block: string): [string, string][] {
  const pairs: [string, string][] = [];
  for (const line of block.replace(/\r\n?/g, '\n').split('\n')) {
    if (/^[ \t]/.test(line) && pairs.length) pairs[pairs.length - 1]![1] += `\r\n${line}`;
    else if (line.includes(':')) pairs.push([line.slice(0, line.indexOf(':')).trim(), line.slice(line.indexOf(':') + 1).trim()]);
  }
  return pairs;
}

function decodeField(latin1: string | undefined, charset: string | undefined): string | undefined {
  if (latin1 === undefined) return undefined;
  const bytes = Buffer.from(latin1, 'latin1');
  try {
    return new TextDecoder(charset?.trim() || 'utf-8').decode(bytes);
  } catch {
    // An unknown charset name: UTF-8, which keeps ASCII and marks the rest.
    return bytes.toString('utf8');
  }
}

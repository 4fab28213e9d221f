// A ParsedMail from a provider's already-parsed post (Mailgun parsed, SendGrid parsed, Postmark JSON):
// the headers go through parseMail (so addresses, encoded words and loop flags are read exactly as for
// a raw mail), the bodies and files the provider decoded are laid over them.
import { deliveryReportOf } from './deliveryReport.ts';
import { defaultMaxMailBytes, MailParseError, parseMail, truncateText, type MailAttachment, type ParsedMail, type ParseMailOptions } from './parseMail.ts';
import { malformedWebhook } from './emailWebhookErrors.ts';
import { replyTextOf } from './replyText.ts';
import { htmlToPlainText, sanitizeMailHtml } from './sanitizeMailHtml.ts';

export interface WebhookMailParts {
  /** Header fields in order, as [name, value]; values may hold encoded words or plain UTF-8. */
  headers: [string, string][];
  text?: string;
  html?: string;
  attachments: { filename: string; contentType: string; content: Buffer; contentId?: string; inline?: boolean }[];
  /** Size of what the provider posted, in bytes (the mail's size for the limit). */
  size: number;
}

// Body structure headers describe the provider's original MIME tree, which is gone here.
const structureHeaders = new Set(['content-type', 'content-transfer-encoding', 'content-disposition', 'content-id']);
const headerName = /^[!-9;-~]+$/;

export async function mailFromParts(parts: WebhookMailParts, options: ParseMailOptions = {}): Promise<ParsedMail> {
  const block = parts.headers
    .filter(([name]) => headerName.test(name) && !structureHeaders.has(name.toLowerCase()))
    // A value never starts a new header line: line breaks inside it become folds.
    .map(([name, value]) => `${name}: ${String(value).replace(/\r?\n(?![ \t])|\r(?!\n)/g, ' ').replace(/\r?\n/g, '\r\n')}`)
    .join('\r\n');
  if (!block) throw malformedWebhook('the post carries no mail headers');
  let headed: ParsedMail;
  try {
    headed = await parseMail(Buffer.from(`${block}\r\n\r\n`, 'utf8'), { maxBytes: Number.MAX_SAFE_INTEGER });
  } catch (error) {
    if (error instanceof MailParseError) throw malformedWebhook(`the mail headers cannot be read: ${error.message}`);
    throw error;
  }

  const maxBytes = options.maxBytes ?? defaultMaxMailBytes;
  const attachments: MailAttachment[] = parts.attachments.map((a) => {
    const contentId = a.contentId?.trim().replace(/^<|>$/g, '').trim();
    return {
      filename: a.filename, contentType: a.contentType || 'application/octet-stream', size: a.content.length, content: a.content,
      ...(contentId ? { contentId } : {}),
      inline: a.inline ?? (!!contentId && !!parts.html && parts.html.includes(`cid:${contentId}`)),
    };
  });
  const text = parts.text?.replace(/\r\n?/g, '\n') || (parts.html ? htmlToPlainText(parts.html) : '');
  const html = parts.html ? sanitizeMailHtml(parts.html, { resolveCid: options.resolveCid }) : undefined;
  const warnings = headed.warnings.filter((w) => !w.startsWith('the body'));
  if (parts.size > maxBytes) {
    const cut = truncateText(text, parts.size, maxBytes, attachments.map((a) => ({ filename: a.filename, contentType: a.contentType })));
    return { ...headed, text: cut.text, replyText: cut.text, ...(html ? { html: sanitizeMailHtml(html.slice(0, 256 * 1024)) } : {}), attachments: [], truncated: cut.truncated, warnings, size: parts.size };
  }
  const deliveryReport = deliveryReportOf(Buffer.alloc(0), attachments);
  return {
    ...headed, text, replyText: replyTextOf(text), ...(html ? { html } : {}), attachments,
    ...(deliveryReport ? { deliveryReport } : {}), warnings, size: parts.size,
  };
}

/** A raw mail the provider posted as a field (`body-mime`, `email`, `RawEmail`): the ordinary parser, its refusal a 400. */
export async function mailFromRaw(raw: Buffer, options: ParseMailOptions = {}): Promise<ParsedMail> {
  try {
    return await parseMail(raw, options);
  } catch (error) {
    if (error instanceof MailParseError) throw malformedWebhook(error.message);
    throw error;
  }
}

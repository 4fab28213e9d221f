// Raw RFC 822 bytes -> one ParsedMail, with mailparser's simpleParser. Never throws for bad MIME: what
// can be read is returned (with warnings); input that is not a mail at all is a MailParseError (400).
import { simpleParser, type AddressObject, type Attachment, type ParsedMail as MailparserMail } from 'mailparser';
import { htmlToPlainText, sanitizeMailHtml } from './sanitizeMailHtml.ts';
import { replyTextOf } from './replyText.ts';
import { deliveryReportOf, type DeliveryReport } from './deliveryReport.ts';

export interface MailAddress { address: string; name: string }

export interface MailAttachment {
  filename: string;
  contentType: string;
  size: number;
  content: Buffer;
  /** Without the angle brackets, as `cid:` links in the HTML name it. */
  contentId?: string;
  /** Shown in the body (an embedded image), not offered as a download. */
  inline: boolean;
}

/** Why a mail must never get an auto-reply, and (when `automated`) by default opens no conversation. */
export interface LoopFlags {
  /** Auto-Submitted present and not `no` (RFC 3834). */
  autoSubmitted: boolean;
  /** Precedence bulk, junk, auto_reply or list. */
  bulkPrecedence: boolean;
  /** X-Autoreply or X-Autorespond present. */
  autoReplyHeader: boolean;
  /** From mailer-daemon or postmaster. */
  fromDaemon: boolean;
  /** Return-Path <>: bounces and most auto-replies. */
  nullSender: boolean;
  /** List-Id or List-Unsubscribe: answered by no auto-reply (RFC 3834 2), still a conversation. */
  mailingList: boolean;
  /** Any of the above except mailingList: machine-sent mail. */
  automated: boolean;
  /** automated or mailingList. */
  noAutoReply: boolean;
}

export interface MailTruncation {
  originalBytes: number;
  maxBytes: number;
  /** The attachments seen in the kept part, left out because they may be cut. */
  droppedAttachments: { filename: string; contentType: string }[];
  note: string;
}

export interface ParsedMail {
  /** RFC Message-ID exactly as sent, with its angle brackets (`<id@host>`); absent on broken mail. */
  messageId?: string;
  inReplyTo?: string;
  /** Always a list, in header order, without duplicates. */
  references: string[];
  from?: MailAddress;
  to: MailAddress[];
  cc: MailAddress[];
  replyTo: MailAddress[];
  /** Encoded words decoded; '' when absent. */
  subject: string;
  date?: Date;
  /** The full plain-text body (from the HTML when the mail has no text part). */
  text: string;
  /** The agent's view: `text` without quoted history and signature. */
  replyText: string;
  /** Sanitized for agents: no scripts, no remote fetches; `cid:` images kept (see attachments' contentId). */
  html?: string;
  attachments: MailAttachment[];
  /** Loop-relevant headers, lower-case name -> unfolded raw value (first occurrence). */
  headers: Record<string, string>;
  loop: LoopFlags;
  /** Mails forwarded as attachments (message/rfc822), read one level deep; each is also in attachments. */
  forwarded?: ForwardedMail[];
  /** Set when this is a delivery status notification (bounce). */
  deliveryReport?: DeliveryReport;
  /** Set when the mail was over maxBytes: headers kept, text cut, attachments dropped. */
  truncated?: MailTruncation;
  /** What was wrong with the mail but did not stop the parse. */
  warnings: string[];
  /** Size of the raw mail in bytes. */
  size: number;
}

export interface ForwardedMail {
  /** Index of its message/rfc822 part in attachments. */
  attachmentIndex: number;
  messageId?: string;
  from?: MailAddress;
  subject: string;
  date?: Date;
  text: string;
}

export interface ParseMailOptions {
  /** Above this the mail is kept truncated (headers, the start of the text, a note). Default 25 MiB. */
  maxBytes?: number;
  /** Maps a `cid:` content id to a URL for the sanitized HTML (e.g. the stored attachment); default keeps `cid:`. */
  resolveCid?: (contentId: string) => string | undefined;
  /** Set when reading a forwarded mail: its own forwards are not read (no recursion). */
  nested?: boolean;
  /** The mail's full size when `raw` was already cut at the source (IMAP partial fetch). */
  originalBytes?: number;
}

export type MailParseErrorReason = 'empty' | 'not_a_mail' | 'unparseable';

/** Input that cannot be read as a mail at all: the caller answers 400 with this message. */
export class MailParseError extends Error {
  constructor(readonly reason: MailParseErrorReason, message: string) {
    super(message);
    this.name = 'MailParseError';
  }
}

export const defaultMaxMailBytes = 25 * 1024 * 1024;
/** How much of the text of a truncated mail is kept. */
const truncatedTextChars = 256 * 1024;
/** Headers beyond this are not a mail's headers but garbage. */
const maxHeaderBytes = 1024 * 1024;

export const loopHeaderNames = [
  'auto-submitted', 'precedence', 'x-autoreply', 'x-autorespond', 'x-auto-response-suppress', 'list-id', 'list-unsubscribe',
  'return-path', 'x-failed-recipients', 'delivered-to', 'x-loop',
] as const;

export async function parseMail(raw: Buffer | string, options: ParseMailOptions = {}): Promise<ParsedMail> {
  const bytes = typeof raw === 'string' ? Buffer.from(raw, 'utf8') : raw;
  const maxBytes = options.maxBytes ?? defaultMaxMailBytes;
  if (bytes.length === 0 || !bytes.some((b) => b !== 0x20 && b !== 0x0d && b !== 0x0a && b !== 0x09)) throw new MailParseError('empty', 'the mail is empty');
  if (!looksLikeHeader(bytes)) throw new MailParseError('not_a_mail', 'the mail does not start with a header line (Name: value)');

  const originalBytes = Math.max(bytes.length, options.originalBytes ?? 0);
  const over = originalBytes > maxBytes;
  const kept = over ? bytes.subarray(0, Math.max(maxBytes, Math.min(headerEnd(bytes), maxHeaderBytes))) : bytes;
  const warnings: string[] = [];

  let mail: MailparserMail;
  try {
    // keepCidLinks: cid: images stay links to their attachment instead of megabytes of data: URIs in the HTML.
    mail = await simpleParser(kept, { keepCidLinks: true, keepDeliveryStatus: true, skipImageLinks: true, skipTextLinks: true, skipTextToHtml: true, skipHtmlToText: true });
  } catch (error) {
    // mailparser gave up midway (a broken encoding, an unterminated structure): keep what the headers say.
    warnings.push(`the MIME structure could not be read: ${(error as Error).message}`);
    mail = await headersOnly(kept, warnings);
  }

  const headers = loopHeadersOf(mail);
  const from = firstAddress(mail.from);
  const attachments = over ? [] : (mail.attachments ?? []).map(toAttachment);
  // mailparser's own HTML-to-text is skipped (it fails the whole parse on long HTML); this one is linear.
  let text = mail.text?.trim() ? mail.text : typeof mail.html === 'string' ? htmlToPlainText(mail.html) : '';
  let truncated: MailTruncation | undefined;
  if (over) ({ text, truncated } = truncateText(text, originalBytes, maxBytes, (mail.attachments ?? []).map((a) => ({ filename: filenameOf(a), contentType: a.contentType }))));

  const html = typeof mail.html === 'string' && mail.html ? sanitizeMailHtml(mail.html, { resolveCid: options.resolveCid }) : undefined;
  const date = dateOf(mail, warnings);
  if (!mail.messageId) warnings.push('the mail has no Message-ID');

  return {
    ...(mail.messageId ? { messageId: mail.messageId.trim() } : {}),
    ...(mail.inReplyTo ? { inReplyTo: mail.inReplyTo.trim() } : {}),
    references: referencesOf(mail.references),
    ...(from ? { from } : {}),
    to: addressesOf(mail.to),
    cc: addressesOf(mail.cc),
    replyTo: addressesOf(mail.replyTo),
    subject: mail.subject ?? '',
    ...(date ? { date } : {}),
    text,
    replyText: over ? text : replyTextOf(text),
    ...(html ? { html } : {}),
    attachments,
    headers,
    loop: loopFlagsOf(headers, from),
    ...(over || options.nested ? {} : await forwardedField(attachments)),
    ...(over ? {} : deliveryReportField(kept, attachments)),
    ...(truncated ? { truncated } : {}),
    warnings,
    size: bytes.length,
  };
}

async function forwardedField(attachments: MailAttachment[]): Promise<{ forwarded?: ForwardedMail[] }> {
  const forwarded: ForwardedMail[] = [];
  for (const [attachmentIndex, a] of attachments.entries()) {
    if (a.contentType !== 'message/rfc822' || forwarded.length >= 10) continue;
    const inner = await parseMail(a.content, { nested: true }).catch(() => undefined);
    if (!inner) continue;
    forwarded.push({
      attachmentIndex, subject: inner.subject, text: inner.text,
      ...(inner.messageId ? { messageId: inner.messageId } : {}), ...(inner.from ? { from: inner.from } : {}), ...(inner.date ? { date: inner.date } : {}),
    });
  }
  return forwarded.length ? { forwarded } : {};
}

/** The text of a mail over the limit: its start, and a note saying what was left out. */
export function truncateText(text: string, originalBytes: number, maxBytes: number, droppedAttachments: MailTruncation['droppedAttachments']): { text: string; truncated: MailTruncation } {
  const start = text.length > truncatedTextChars ? text.slice(0, truncatedTextChars) : text;
  const note = `[This mail is ${originalBytes} bytes, over the limit of ${maxBytes} bytes: only its headers and the start of its text are kept`
    + `${droppedAttachments.length ? `; attachments left out: ${droppedAttachments.map((a) => a.filename).join(', ')}` : ''}.]`;
  return { text: `${start}${start && !start.endsWith('\n') ? '\n' : ''}\n${note}`, truncated: { originalBytes, maxBytes, droppedAttachments, note } };
}

function deliveryReportField(raw: Buffer, attachments: MailAttachment[]): { deliveryReport?: DeliveryReport } {
  const report = deliveryReportOf(raw, attachments);
  return report ? { deliveryReport: report } : {};
}

// mailparser puts the current time in place of an unreadable Date header; a missing date is more honest.
function dateOf(mail: MailparserMail, warnings: string[]): Date | undefined {
  const line = (mail.headerLines ?? []).find((h) => h.key === 'date')?.line;
  if (!line) return undefined;
  const value = line.slice(line.indexOf(':') + 1).replace(/\r?\n[ \t]+/g, ' ').trim();
  const date = new Date(value);
  if (!Number.isNaN(date.getTime())) return date;
  warnings.push(`the Date header cannot be read: ${value.slice(0, 100)}`);
  return undefined;
}

function looksLikeHeader(bytes: Buffer): boolean {
  const start = bytes.subarray(0, 4096).toString('latin1').replace(/^[\r\n\t ]+/, '');
  // mbox "From " lines are tolerated; a header name is printable ASCII without colon or space.
  return /^(From [^\r\n]*\r?\n)?[!-9;-~]+[ \t]*:/.test(start);
}

function headerEnd(bytes: Buffer): number {
  const crlf = bytes.indexOf('\r\n\r\n');
  const lf = bytes.indexOf('\n\n');
  const ends = [crlf >= 0 ? crlf + 4 : -1, lf >= 0 ? lf + 2 : -1].filter((n) => n >= 0);
  return ends.length ? Math.min(...ends) : bytes.length;
}

/** The fallback when the body cannot be parsed: the header block alone always parses. */
async function headersOnly(bytes: Buffer, warnings: string[]): Promise<MailparserMail> {
  const end = Math.min(headerEnd(bytes), maxHeaderBytes);
  const block = bytes.subarray(0, end).toString('latin1').replace(/^content-(type|transfer-encoding)\s*:.*(\r?\n[ \t].*)*\r?\n?/gim, '');
  try {
    const mail = await simpleParser(Buffer.from(`${block}\r\n\r\n`, 'latin1'), { skipTextToHtml: true });
    mail.text = bytes.subarray(end).toString('utf8');
    return mail;
  } catch (error) {
    throw new MailParseError('unparseable', `the mail cannot be parsed: ${(error as Error).message}`);
  } finally {
    warnings.push('the body was kept as raw text');
  }
}

function loopHeadersOf(mail: MailparserMail): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const { key, line } of mail.headerLines ?? []) {
    if (!(loopHeaderNames as readonly string[]).includes(key) || key in headers) continue;
    headers[key] = line.slice(line.indexOf(':') + 1).replace(/\r?\n[ \t]+/g, ' ').trim();
  }
  return headers;
}

const daemonLocalPart = /^(mailer-daemon|postmaster|mail-daemon|mailerdaemon)$/i;

export function loopFlagsOf(headers: Record<string, string>, from: MailAddress | undefined): LoopFlags {
  const autoSubmittedValue = headers['auto-submitted']?.split(';')[0]!.trim().toLowerCase();
  const autoSubmitted = autoSubmittedValue !== undefined && autoSubmittedValue !== '' && autoSubmittedValue !== 'no';
  const bulkPrecedence = ['bulk', 'junk', 'auto_reply', 'list'].includes(headers.precedence?.trim().toLowerCase() ?? '');
  const autoReplyHeader = 'x-autoreply' in headers || 'x-autorespond' in headers;
  const fromDaemon = daemonLocalPart.test(from?.address.split('@')[0] ?? '');
  const nullSender = headers['return-path'] !== undefined && /^<\s*>$/.test(headers['return-path']);
  const mailingList = 'list-id' in headers || 'list-unsubscribe' in headers;
  const automated = autoSubmitted || bulkPrecedence || autoReplyHeader || fromDaemon || nullSender;
  return { autoSubmitted, bulkPrecedence, autoReplyHeader, fromDaemon, nullSender, mailingList, automated, noAutoReply: automated || mailingList };
}

function addressesOf(field: AddressObject | AddressObject[] | undefined): MailAddress[] {
  const list: MailAddress[] = [];
  const visit = (entries: { address?: string; name?: string; group?: unknown[] }[]) => {
    for (const entry of entries) {
      if (entry.group) visit(entry.group as typeof entries);
      else if (entry.address) list.push({ address: entry.address, name: entry.name ?? '' });
    }
  };
  for (const object of [field ?? []].flat()) visit(object.value ?? []);
  return list;
}

function firstAddress(field: AddressObject | AddressObject[] | undefined): MailAddress | undefined {
  return addressesOf(field)[0];
}

function referencesOf(value: string | string[] | undefined): string[] {
  const ids = [value ?? []].flat().flatMap((v) => v.match(/<[^<>]+>/g) ?? (v.trim() ? v.trim().split(/\s+/) : []));
  return [...new Set(ids)];
}

function filenameOf(a: Attachment): string {
  if (a.filename) return a.filename;
  if (a.contentType === 'message/rfc822') return 'forwarded.eml';
  if (/delivery-status$/.test(a.contentType)) return 'delivery-status.txt';
  if (a.contentType === 'text/rfc822-headers') return 'returned-headers.txt';
  const extension = /^(image|audio|video)\/(png|gif|jpeg|webp|bmp|mp4|mpeg|ogg|wav)$/.exec(a.contentType)?.[2]?.replace('jpeg', 'jpg');
  return extension ? `attachment.${extension}` : 'attachment';
}

function toAttachment(a: Attachment): MailAttachment {
  const contentId = a.contentId ? a.contentId.trim().replace(/^<|>$/g, '').trim() : undefined;
  return {
    filename: filenameOf(a),
    contentType: a.contentType,
    size: a.content.length,
    content: a.content,
    ...(contentId ? { contentId } : {}),
    inline: a.contentDisposition === 'inline' || (!!contentId && a.related === true),
  };
}

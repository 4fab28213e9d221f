// Delivery status notifications (RFC 3464 multipart/report; report-type=delivery-status): which of our
// mails bounced, for whom, and why, so a bounce of an outbound reply can become message.failed.
import type { MailAttachment } from './parseMail.ts';

export interface DeliveryRecipient {
  /** The address the report is about (Final-Recipient, else Original-Recipient). */
  recipient: string;
  /** failed | delayed | delivered | relayed | expanded. */
  action: string;
  /** The enhanced status code, e.g. 5.1.1. */
  status: string;
  /** Diagnostic-Code without its type, e.g. `550 5.1.1 User unknown`. */
  diagnostic?: string;
  remoteMta?: string;
}

export interface DeliveryReport {
  /** The Message-ID of the mail that bounced (ours, for an outbound reply), from the returned headers. */
  originalMessageId?: string;
  /** The first recipient's fields, the common case of one recipient. */
  recipient: string;
  action: string;
  status: string;
  diagnostic?: string;
  /** True when delivery failed permanently (action failed, or a 5.x.x status). */
  permanent: boolean;
  recipients: DeliveryRecipient[];
  reportingMta?: string;
}

/** The delivery report in a parsed mail, if it is one (mailparser kept the delivery-status part as an attachment). */
export function deliveryReportOf(raw: Buffer, attachments: MailAttachment[]): DeliveryReport | undefined {
  const statusPart = attachments.find((a) => a.contentType === 'message/delivery-status' || a.contentType === 'message/global-delivery-status');
  if (!statusPart) return undefined;
  const groups = fieldGroups(statusPart.content.toString('utf8'));
  const perMessage = groups.find((g) => g['reporting-mta'] || g['original-envelope-id']) ?? {};
  const recipients = groups.filter((g) => g['final-recipient'] || g['original-recipient']).map(recipientOf);
  if (!recipients.length) return undefined;
  const first = recipients.find((r) => r.action === 'failed') ?? recipients[0]!;
  const originalMessageId = originalMessageIdOf(raw, attachments);
  return {
    ...(originalMessageId ? { originalMessageId } : {}),
    recipient: first.recipient, action: first.action, status: first.status,
    ...(first.diagnostic ? { diagnostic: first.diagnostic } : {}),
    permanent: first.action === 'failed' || first.status.startsWith('5'),
    recipients,
    ...(perMessage['reporting-mta'] ? { reportingMta: withoutType(perMessage['reporting-mta']) } : {}),
  };
}

/** RFC 822-style field blocks separated by blank lines; names lower-cased, folded lines joined. */
function fieldGroups(body: string): Record<string, string>[] {
  return body.replace(/\r\n/g, '\n').split(/\n[ \t]*\n/).map((block) => {
    const fields: Record<string, string> = {};
    for (const line of block.replace(/\n[ \t]+/g, ' ').split('\n')) {
      const colon = line.indexOf(':');
      if (colon <= 0) continue;
      const name = line.slice(0, colon).trim().toLowerCase();
      if (!(name in fields)) fields[name] = line.slice(colon + 1).trim();
    }
    return fields;
  }).filter((g) => Object.keys(g).length > 0);
}

/** `rfc822; user@example.com` -> `user@example.com`. */
function withoutType(value: string): string {
  const semicolon = value.indexOf(';');
  return (semicolon >= 0 ? value.slice(semicolon + 1) : value).trim();
}

function recipientOf(g: Record<string, string>): DeliveryRecipient {
  const status = /\d\.\d{1,3}\.\d{1,3}/.exec(g.status ?? '')?.[0] ?? (g.status ?? '').trim();
  return {
    recipient: withoutType(g['final-recipient'] ?? g['original-recipient'] ?? '').replace(/^<|>$/g, ''),
    action: (g.action ?? '').trim().toLowerCase(),
    status,
    ...(g['diagnostic-code'] ? { diagnostic: withoutType(g['diagnostic-code']) } : {}),
    ...(g['remote-mta'] ? { remoteMta: withoutType(g['remote-mta']) } : {}),
  };
}

// The returned mail comes as text/rfc822-headers (an attachment) or message/rfc822 (parsed into by
// mailparser, so its headers are read from the raw mail: the first Message-ID after the status part).
function originalMessageIdOf(raw: Buffer, attachments: MailAttachment[]): string | undefined {
  for (const a of attachments) {
    if (a.contentType !== 'text/rfc822-headers' && a.contentType !== 'message/rfc822') continue;
    const id = messageIdIn(a.content.toString('utf8'));
    if (id) return id;
  }
  const text = raw.toString('latin1');
  const status = /content-type:\s*message\/(global-)?delivery-status/i.exec(text);
  if (!status) return undefined;
  return /^message-id:[ \t]*(?:\r?\n[ \t]+)?(<[^>\s]+>|\S+)/im.exec(text.slice(status.index))?.[1];
}

function messageIdIn(headerText: string): string | undefined {
  const head = headerText.replace(/\r\n/g, '\n').split(/\n\n/)[0]!.replace(/\n[ \t]+/g, ' ');
  return /^message-id:\s*(<[^>\s]+>|\S+)/im.exec(head)?.[1];
}

// The one door for a parsed mail, from IMAP or an inbound-email webhook:
//
//   acceptParsedMail(deps: EmailInboundDeps, inbox: InboxRecord, mail: ParsedMail, raw?: Buffer): Promise<EmailAcceptance>
//   deps = { acceptor, media, redis, keys, inboxes, log? } (the gateway's own); raw: the RFC 822 bytes when known
//   (kept as original.eml, and the Message-ID stand-in for mail without one).
//
// It resolves when the mail is durably queued (answer the provider only then), with the job id derived
// from the Message-ID so a provider retry, an IMAP replay or a UIDVALIDITY resync is stored once.
// Attachments are stored like other media first (same keys on a retry); a mail that finds the line of adds
// full is refused before any is written. A delivery report (bounce) about one of our replies marks that
// reply failed (message.failed) instead of opening a conversation.
// Automated mail (Auto-Submitted, Precedence bulk/junk/auto_reply, mailer-daemon) joins a conversation
// it answers (a resolved one stays resolved) but opens none unless the inbox allows it; no email is ever
// answered automatically.
import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { ParsedMail } from '../../adapters/email/parseMail.ts';
import type { InboxDirectory, InboxRecord } from '../inboxes/inboxDirectory.ts';
import { inboxTypes } from '../inboxes/inboxTypes.ts';
import type { InboundAcceptor } from '../ingest/acceptInbound.ts';
import type { Logger } from '../logger.ts';
import { cleanContentType, mediaKeyFor, mediaPath, mediaStoreKey, maxMediaBytes, type MediaStore } from '../media/mediaStore.ts';
import { updateMessageStatus } from '../outbound/outboundWorker.ts';
import type { Keyspace } from '../redis/keys.ts';
import type { InboundMessage, MessageContent } from '../schema/message.ts';
import { parseOutboundMessageId, threadOf } from './emailThreading.ts';

export interface EmailInboundDeps {
  acceptor: InboundAcceptor;
  media: MediaStore;
  redis: Redis;
  keys: Keyspace;
  /** For the inbox's fromAddress (plus-addressed replies, mail from the inbox itself). */
  inboxes: InboxDirectory;
  log?: Logger;
}

export type EmailAcceptance =
  | { kind: 'queued'; messageId: string; externalId: string }
  | { kind: 'bounce'; externalId: string; outboundMessageId?: string; updated: boolean }
  | { kind: 'ignored'; externalId: string; reason: string };

export type EmailInboxSettings = ReturnType<typeof emailSettingsOf>;

/** The inbox's email settings with their defaults (records stored before a setting existed get its default). */
export function emailSettingsOf(inbox: InboxRecord) {
  const parsed = inboxTypes.email.settings.safeParse(inbox.settings ?? {});
  return parsed.success ? parsed.data : inboxTypes.email.settings.parse({});
}

/** The Message-ID, or for mail without one a stable stand-in from its bytes (so a replay still dedups). */
export function externalIdOf(mail: ParsedMail, raw?: Buffer): string {
  const id = mail.messageId?.trim();
  if (id && id.length <= 1000) return id;
  const digest = createHash('sha256');
  if (raw) digest.update(raw);
  else digest.update([mail.from?.address ?? '', mail.date?.toISOString() ?? '', mail.subject, mail.text].join('\n'));
  return `<${digest.digest('hex')}@no-message-id.invalid>`;
}

const clip = (value: string, max: number) => value.length > max ? value.slice(0, max) : value;

export async function acceptParsedMail(deps: EmailInboundDeps, inbox: InboxRecord, mail: ParsedMail, raw?: Buffer): Promise<EmailAcceptance> {
  const externalId = externalIdOf(mail, raw);
  if (mail.deliveryReport) return acceptBounce(deps, inbox, mail, externalId);
  const settings = emailSettingsOf(inbox);
  const fromAddress = String(deps.inboxes.credentials(inbox).fromAddress ?? '');
  const sender = (mail.from?.address || mail.replyTo[0]?.address || '').trim().toLowerCase();
  if (!sender) return { kind: 'ignored', externalId, reason: 'the mail has no sender address' };
  if (fromAddress && sender === fromAddress.toLowerCase()) return { kind: 'ignored', externalId, reason: 'the mail is from the inbox itself' };

  // Busy now: refused before its attachments are written, which nothing would ever read or remove.
  deps.acceptor.refuseWhileFull();
  const messageKey = `${inbox.id}\n${externalId}`;
  const attachments: NonNullable<MessageContent['attachments']> = [];
  let html = mail.html;
  const notes: string[] = [];
  for (const [index, a] of mail.attachments.entries()) {
    if (attachments.length >= 49) { notes.push(`[${mail.attachments.length - index} more attachments left out]`); break; }
    if (a.size > maxMediaBytes) { notes.push(`[attachment ${a.filename} (${a.size} bytes) is over ${maxMediaBytes} bytes and was left out]`); continue; }
    const mediaKey = mediaKeyFor(inbox.accountId, `${messageKey}\n${index}`);
    const contentType = cleanContentType(a.contentType);
    await deps.media.put(mediaStoreKey(inbox.accountId, mediaKey), a.content, contentType);
    const url = mediaPath(inbox.accountId, mediaKey);
    attachments.push({ url, contentType, size: a.size, name: clip(a.filename || `attachment-${index + 1}`, 1024) });
    if (a.contentId && html) html = html.split(`cid:${a.contentId}`).join(url);
  }
  // The full mail as received is kept beside the agent's view (which has quoted history and signature stripped)
  // whenever that view lost something: with no HTML, the stripped text would exist nowhere else.
  const trimmed = mail.replyText.trim() !== mail.text.trim() && !mail.html;
  const keepOriginal = settings.keepOriginalMail === 'always' || (settings.keepOriginalMail === 'whenTrimmed' && trimmed);
  if (raw && keepOriginal && raw.length <= maxMediaBytes) {
    const mediaKey = mediaKeyFor(inbox.accountId, `${messageKey}\nraw`);
    await deps.media.put(mediaStoreKey(inbox.accountId, mediaKey), raw, 'message/rfc822');
    attachments.push({ url: mediaPath(inbox.accountId, mediaKey), contentType: 'message/rfc822', size: raw.length, name: 'original.eml' });
  }
  if (mail.truncated) notes.push(mail.truncated.note);

  const agentText = [mail.replyText.trim() || mail.text.trim(), ...notes].filter(Boolean).join('\n\n');
  const content: MessageContent = {
    type: agentText || html ? 'text' : attachments.some((a) => a.contentType.startsWith('image/')) ? 'image' : attachments.length ? 'file' : 'text',
    text: clip(agentText, 100_000),
    ...(html ? { html: clip(html, 1_000_000) } : {}),
    subject: clip(mail.subject, 2000),
    ...(attachments.length ? { attachments } : {}),
  };
  const message: InboundMessage = {
    accountId: inbox.accountId, inboxId: inbox.id, channel: 'email', externalId,
    from: { channelId: clip(sender, 512), ...(mail.from?.name ? { name: clip(mail.from.name, 512) } : {}) },
    to: { channelId: clip((fromAddress || mail.to[0]?.address || 'unknown').toLowerCase(), 512) },
    sentAt: (mail.date && !Number.isNaN(mail.date.getTime()) ? mail.date : new Date()).toISOString(),
    content,
  };
  const thread = threadOf(mail, externalId, {
    fromAddress: fromAddress || mail.to[0]?.address || '', contactAddress: sender,
    subjectWindowSeconds: Math.max(1, settings.subjectWindowMinutes * 60),
    openNew: !mail.loop.automated || settings.automatedMailOpensConversation,
    reopen: !mail.loop.automated,
  });
  if (settings.subjectWindowMinutes === 0) {
    thread.anchors = thread.anchors.filter((a) => a.kind !== 'subject');
    thread.records = thread.records.filter((r) => r.kind !== 'subject');
  }
  const accepted = await deps.acceptor.accept(message, { contactName: mail.from?.name ?? '', thread });
  return { kind: 'queued', messageId: accepted.messageId, externalId };
}

/** A bounce of one of our replies marks it failed; any other delivery report is only logged. */
async function acceptBounce(deps: EmailInboundDeps, inbox: InboxRecord, mail: ParsedMail, externalId: string): Promise<EmailAcceptance> {
  const report = mail.deliveryReport!;
  const ours = report.originalMessageId ? parseOutboundMessageId(report.originalMessageId) : undefined;
  if (!ours || !['failed', 'delayed'].includes(report.action) && !report.permanent) {
    deps.log?.info({ inboxId: inbox.id, action: report.action, status: report.status }, 'email delivery report not about a reply of ours');
    return { kind: 'bounce', externalId, updated: false };
  }
  if (!report.permanent) return { kind: 'bounce', externalId, outboundMessageId: ours.messageId, updated: false };
  const stored = await deps.redis.hmget(deps.keys.message(ours.messageId), 'accountId', 'conversationId');
  if (stored[0] !== inbox.accountId || stored[1] !== ours.conversationId) return { kind: 'bounce', externalId, updated: false };
  const updated = await updateMessageStatus(deps.redis, deps.keys, ours.messageId, ours.conversationId, {
    status: 'failed', errorCode: `bounced_${report.status || 'unknown'}`,
    errorMessage: clip(`${report.recipient}: ${report.diagnostic ?? report.action}`, 1000),
  });
  return { kind: 'bounce', externalId, outboundMessageId: ours.messageId, updated };
}

// Which conversation a mail belongs to (RFC 5322 3.6.4): In-Reply-To, then References (newest first),
// against the Message-IDs we sent (they name their conversation) and received (anchors in Redis); then
// a plus-addressed Reply-To of ours (support+<conversationId>@…); then the same contact and subject
// within a short window. Nothing matched: a new conversation. The lookups run inside the ingest
// script, so two mails of one thread processed at once still land in one conversation.
import { keyDigest } from '../ids.ts';
import type { InboundJob } from '../queues.ts';
import type { MailAddress, ParsedMail } from '../../adapters/email/parseMail.ts';

export type MailThread = NonNullable<InboundJob['thread']>;

const conversationIdPattern = /^cv_[a-z0-9]{6,60}$/;
const ourMessageIdPattern = /^<(cv_[a-z0-9]{6,60})\.([A-Za-z0-9_-]{1,100})@[^<>\s]+>$/;

/** Our Message-ID for an outbound message: names its conversation and is the same on every retry of the send. */
export function outboundMessageId(conversationId: string, messageId: string, domain: string): string {
  return `<${conversationId}.${messageId}@${domain}>`;
}

/** The conversation and message an id of ours names (a reply's In-Reply-To, a bounce's original). */
export function parseOutboundMessageId(messageId: string): { conversationId: string; messageId: string } | undefined {
  const m = ourMessageIdPattern.exec(messageId.trim());
  return m ? { conversationId: m[1]!, messageId: m[2]! } : undefined;
}

function splitAddress(address: string): { local: string; domain: string } | undefined {
  const at = address.lastIndexOf('@');
  return at > 0 ? { local: address.slice(0, at).toLowerCase(), domain: address.slice(at + 1).toLowerCase() } : undefined;
}

/** The domain of an address (our Message-IDs use the inbox's). */
export function domainOf(address: string): string {
  return splitAddress(address)?.domain ?? 'localhost';
}

/** support@shop.example -> support+<conversationId>@shop.example: a Reply-To that finds the conversation again. */
export function plusAddress(fromAddress: string, conversationId: string): string {
  const parts = splitAddress(fromAddress);
  return parts ? `${parts.local}+${conversationId}@${parts.domain}` : fromAddress;
}

/** The conversation a plus-addressed recipient of this inbox names, if any. */
export function conversationOfPlusAddress(fromAddress: string, recipient: string): string | undefined {
  const ours = splitAddress(fromAddress);
  const theirs = splitAddress(recipient);
  if (!ours || !theirs || theirs.domain !== ours.domain) return undefined;
  const plus = theirs.local.indexOf('+');
  if (plus < 0 || theirs.local.slice(0, plus) !== ours.local) return undefined;
  const token = theirs.local.slice(plus + 1);
  return conversationIdPattern.test(token) ? token : undefined;
}

// Reply and forward prefixes of the common clients and languages (Re:, Fwd:, AW:, SV:, 回复:, 转发:, …), repeated or counted (Re[2]:).
const replyPrefix = /^\s*(?:(?:re|fwd?|aw|wg|sv|vs|antw|odp|tr|rif|enc|r)\s*(?:\[\d+\]|\(\d+\))?\s*[:：]|(?:回复|回覆|答复|答覆|转发|轉寄|转寄|轉發)\s*[:：]|\[[^\]]{1,40}\]\s*)\s*/i;

/** The subject without reply/forward prefixes, case and spacing: what a reply shares with its original. */
export function normalizeSubject(subject: string): string {
  let s = subject.normalize('NFKC');
  for (let i = 0; i < 20; i++) {
    const next = s.replace(replyPrefix, '');
    if (next === s) break;
    s = next;
  }
  return s.replace(/\s+/g, ' ').trim().toLowerCase();
}

/** `Re: <subject>` for a reply, without stacking prefixes. */
export function replySubject(subject: string): string {
  const original = subject.trim();
  if (!original) return 'Re:';
  return /^re\s*[:：]/i.test(original) ? original : `Re: ${original}`;
}

function subjectAnchor(contactAddress: string, subject: string): string | undefined {
  const normalized = normalizeSubject(subject);
  return normalized ? keyDigest(`${contactAddress.toLowerCase()}\n${normalized}`) : undefined;
}

/** The thread argument for the ingest script: candidates in priority order, and what this mail anchors. */
export function threadOf(mail: ParsedMail, externalId: string, options: {
  fromAddress: string; contactAddress: string; subjectWindowSeconds: number; openNew: boolean; reopen: boolean;
}): MailThread {
  const anchors: MailThread['anchors'] = [];
  const seen = new Set<string>();
  const add = (kind: MailThread['anchors'][number]['kind'], value: string) => {
    const id = `${kind}\n${value}`;
    if (seen.has(id) || anchors.length >= 300) return;
    seen.add(id);
    anchors.push({ kind, value });
  };
  const parents = [...(mail.inReplyTo ? [mail.inReplyTo] : []), ...[...mail.references].reverse()];
  for (const parent of parents) {
    const ours = parseOutboundMessageId(parent);
    if (ours) add('conversation', ours.conversationId);
    add('message', keyDigest(parent.trim()));
  }
  // A reply processed before its parent has already anchored the parent's id: the parent joins it.
  add('message', keyDigest(externalId.trim()));
  const recipients: MailAddress[] = [...mail.to, ...mail.cc, ...(mail.headers['delivered-to'] ? [{ address: mail.headers['delivered-to'], name: '' }] : [])];
  for (const r of recipients) {
    const conversationId = conversationOfPlusAddress(options.fromAddress, r.address);
    if (conversationId) add('conversation', conversationId);
  }
  const subject = subjectAnchor(options.contactAddress, mail.subject);
  if (subject) add('subject', subject);
  const records: MailThread['records'] = [{ kind: 'message', value: keyDigest(externalId.trim()) }];
  for (const parent of parents.slice(0, 100)) records.push({ kind: 'message', value: keyDigest(parent.trim()) });
  if (subject) records.push({ kind: 'subject', value: subject });
  return { anchors, records, subjectWindowSeconds: options.subjectWindowSeconds, openNew: options.openNew, reopen: options.reopen };
}

// SMTP out with nodemailer (one pooled transport per inbox): a reply threads under the customer's latest
// mail (In-Reply-To, References, `Re:` subject) and carries our own Message-ID, which names the
// conversation, and a plus-addressed Reply-To, so the customer's answer finds the conversation again.
import { createHash } from 'node:crypto';
import nodemailer, { type Transporter } from 'nodemailer';
import { PermanentSendError, type ChannelAdapter, type SendRequest, type SendResult } from '../channelAdapter.ts';
import type { AttachmentSource } from '../wechat/wechatAdapter.ts';
import { domainOf, outboundMessageId, plusAddress, replySubject } from '../../src/email/emailThreading.ts';
import type { NormalizedMessage } from '../../src/schema/message.ts';

interface SmtpCredentials { host: string; port: number; secure: boolean; user: string; pass: string }
interface EmailCredentials { smtp?: SmtpCredentials; fromAddress: string }

/** A mail of ours carries at most this much in attachments (most receiving servers refuse ~25 MB). */
const maxAttachmentBytes = 20 * 1024 * 1024;
/** References keep the thread's root and its newest ids (RFC 5322 allows trimming the middle). */
const maxReferences = 20;
const messageIdShape = /^<[^<>\s]+@[^<>\s]+>$/;

/** The headers a reply threads by, from the conversation's earlier messages (oldest first). */
export function threadHeadersOf(earlier: NormalizedMessage[]): { inReplyTo?: string; references: string[]; subject?: string } {
  const ids = earlier.map((m) => m.externalId?.trim() ?? '').filter((id) => messageIdShape.test(id));
  const unique = [...new Set(ids)];
  const references = unique.length > maxReferences ? [unique[0]!, ...unique.slice(-(maxReferences - 1))] : unique;
  const lastInbound = [...earlier].reverse().find((m) => m.direction === 'inbound' && messageIdShape.test(m.externalId?.trim() ?? ''));
  const subject = [...earlier].reverse().find((m) => m.content.subject?.trim())?.content.subject;
  return {
    ...(lastInbound ? { inReplyTo: lastInbound.externalId!.trim() } : unique.length ? { inReplyTo: unique[unique.length - 1]! } : {}),
    references, ...(subject ? { subject } : {}),
  };
}

export class EmailAdapter implements ChannelAdapter {
  readonly type = 'email';
  /** The outbound worker hands this adapter the conversation's earlier messages (for the thread headers). */
  readonly threadsReplies = true;
  private readonly transports = new Map<string, { fingerprint: string; transport: Transporter }>();

  constructor(private readonly attachments?: AttachmentSource, private readonly options: { connectionTimeoutMs?: number } = {}) {}

  async send(request: SendRequest): Promise<SendResult> {
    const credentials = request.credentials as unknown as EmailCredentials;
    if (!credentials.smtp) throw new PermanentSendError('smtp_not_configured', 'This email inbox has no SMTP credentials.');
    const { message } = request;
    const thread = threadHeadersOf(request.earlier ?? []);
    const messageId = outboundMessageId(message.conversationId, message.id, domainOf(credentials.fromAddress));
    const text = message.content.text ?? '';
    const attachments = [];
    let total = 0;
    for (const a of message.content.attachments ?? []) {
      if (!this.attachments) throw new PermanentSendError('unsupported_content', 'Attachments cannot be sent from this gateway.');
      const loaded = await this.attachments.load(a, maxAttachmentBytes - total);
      total += loaded.bytes.length;
      attachments.push({ filename: a.name ?? 'attachment', content: Buffer.from(loaded.bytes), contentType: loaded.contentType });
    }
    if (!text.trim() && !message.content.html && !attachments.length) throw new PermanentSendError('unsupported_content', 'An email needs text, HTML or an attachment.');
    const transport = this.transportFor(request.inbox.id, credentials.smtp);
    try {
      await transport.sendMail({
        messageId,
        from: { name: request.inbox.name, address: credentials.fromAddress },
        replyTo: plusAddress(credentials.fromAddress, message.conversationId),
        to: request.to,
        subject: replySubject(message.content.subject ?? thread.subject ?? request.inbox.name),
        ...(thread.inReplyTo ? { inReplyTo: thread.inReplyTo } : {}),
        ...(thread.references.length ? { references: thread.references } : {}),
        text,
        ...(message.content.html ? { html: message.content.html } : {}),
        ...(attachments.length ? { attachments } : {}),
        // Our replies are written by people: no Auto-Submitted, but ask autoresponders not to answer them.
        headers: { 'X-Auto-Response-Suppress': 'All' },
      });
    } catch (error) {
      const e = error as Error & { responseCode?: number; code?: string };
      if (e.responseCode && e.responseCode >= 500 && e.responseCode < 600) {
        throw new PermanentSendError(e.code === 'EAUTH' ? 'smtp_auth_failed' : `smtp_${e.responseCode}`, `The SMTP server refused the mail: ${e.message}`);
      }
      throw error;
    }
    return { externalId: messageId, status: 'sent' };
  }

  private transportFor(inboxId: string, smtp: SmtpCredentials): Transporter {
    const fingerprint = createHash('sha256').update(JSON.stringify(smtp)).digest('hex');
    const cached = this.transports.get(inboxId);
    if (cached?.fingerprint === fingerprint) return cached.transport;
    cached?.transport.close();
    const timeout = this.options.connectionTimeoutMs ?? 30_000;
    const transport = nodemailer.createTransport({
      pool: true, maxConnections: 3, host: smtp.host, port: smtp.port, secure: smtp.secure,
      ...(smtp.user ? { auth: { user: smtp.user, pass: smtp.pass } } : {}),
      connectionTimeout: timeout, greetingTimeout: timeout, socketTimeout: timeout * 2,
    });
    this.transports.set(inboxId, { fingerprint, transport });
    return transport;
  }

  /** Closes the pooled connections (gateway stop). */
  close(): void {
    for (const { transport } of this.transports.values()) transport.close();
    this.transports.clear();
  }
}

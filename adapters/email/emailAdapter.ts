// SMTP out with nodemailer (one pooled transport per inbox): a reply threads under the customer's latest
// mail (In-Reply-To, References, `Re:` subject) and carries our own Message-ID, which names the
// conversation, and a plus-addressed Reply-To, so the customer's answer finds the conversation again.
// A pool is replaced when its inbox's SMTP settings change and closed when unused for idleCloseMs
// (an inbox deleted or disabled sends nothing more), each once its sends in flight have finished.
// The SMTP host is a tenant's: before each send it must not resolve to loopback or a private network
// unless the operator allows it (GATEWAY_PROVIDER_PRIVATE_TARGETS).
import { createHash } from 'node:crypto';
import { PassThrough, type Readable } from 'node:stream';
import nodemailer, { type SendMailOptions, type Transporter } from 'nodemailer';
import { PermanentSendError, SendOutcomeUnknownError, type ChannelAdapter, type SendRequest, type SendResult } from '../channelAdapter.ts';
import type { AttachmentSource } from '../wechat/wechatAdapter.ts';
import { checkProviderHost, WebhookTargetError } from '../../src/events/webhookTarget.ts';
import { domainOf, outboundMessageId, plusAddress, replySubject } from '../../src/email/emailThreading.ts';
import type { NormalizedMessage } from '../../src/schema/message.ts';

interface SmtpCredentials { host: string; port: number; secure: boolean; user: string; pass: string }
interface EmailCredentials { smtp?: SmtpCredentials; fromAddress: string }

/** A mail of ours carries at most this much in attachments (most receiving servers refuse ~25 MB). */
const maxAttachmentBytes = 20 * 1024 * 1024;
/** References keep the thread's root and its newest ids (RFC 5322 allows trimming the middle). */
const maxReferences = 20;
const messageIdShape = /^<[^<>\s]+@[^<>\s]+>$/;

/**
 * Bounds one sendMail (waiting for a pooled connection, connecting, greeting, the mail itself): an attempt still
 * unfinished after this counts as dead. Generous, because a live attempt judged dead fails its message as unknown.
 */
const longestSendMs = (connectionTimeoutMs: number) => Math.max(5 * 60_000, 10 * connectionTimeoutMs);

/** Whether the whole mail has been handed to the SMTP connection: past that, a lost connection may have delivered it. */
interface BodyProgress { ended: boolean }
const bodyProgressOption = 'gatewayBodyProgress';

type StreamedMail = { data: Record<string, unknown>; message: { processFunc(wrap: (input: Readable) => Readable): void } };

/**
 * nodemailer 'stream' plugin: marks the mail's BodyProgress once the SMTP connection has read its last byte. It
 * wraps the stream the connection reads from, so a small mail merely buffered ahead of a session still at MAIL
 * FROM does not count (a DKIM signer, which reads its input whole first, would have to wrap this; we sign none).
 */
function trackBodyEnd(mail: StreamedMail, done: (error?: Error | null) => void): void {
  const progress = mail.data[bodyProgressOption] as BodyProgress | undefined;
  if (progress) {
    mail.message.processFunc((input) => {
      const output = new PassThrough();
      input.once('error', (error) => output.destroy(error));
      output.once('end', () => { progress.ended = true; });
      return input.pipe(output);
    });
  }
  done();
}

/** One inbox's pool: which SMTP settings it was made for, and its sends in flight (it is closed only without any). */
interface PooledTransport {
  fingerprint: string;
  transport: Transporter;
  sending: number;
  retired: boolean;
  idleTimer?: NodeJS.Timeout;
}

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
  private readonly transports = new Map<string, PooledTransport>();

  constructor(
    private readonly attachments?: AttachmentSource,
    private readonly options: { connectionTimeoutMs?: number; idleCloseMs?: number; allowPrivateTargets?: boolean } = {},
  ) {}

  async send(request: SendRequest): Promise<SendResult> {
    const credentials = request.credentials as unknown as EmailCredentials;
    if (!credentials.smtp) throw new PermanentSendError('smtp_not_configured', 'This email inbox has no SMTP credentials.');
    await this.checkSmtpHost(credentials.smtp.host);
    const { message } = request;
    const thread = threadHeadersOf(request.earlier ?? []);
    const messageId = outboundMessageId(message.conversationId, message.id, domainOf(credentials.fromAddress));
    const text = message.content.text ?? '';
    const attachments: NonNullable<SendMailOptions['attachments']> = [];
    let total = 0;
    for (const a of message.content.attachments ?? []) {
      if (!this.attachments) throw new PermanentSendError('unsupported_content', 'Attachments cannot be sent from this gateway.');
      const loaded = await this.attachments.load(a, maxAttachmentBytes - total);
      total += loaded.bytes.length;
      attachments.push({ filename: a.name ?? 'attachment', content: Buffer.from(loaded.bytes), contentType: loaded.contentType });
    }
    if (!text.trim() && !message.content.html && !attachments.length) throw new PermanentSendError('unsupported_content', 'An email needs text, HTML or an attachment.');
    const progress: BodyProgress = { ended: false };
    const deliver = () => this.deliver(request.inbox.id, credentials.smtp!, {
      // Given up before the marker's bound, so an attempt judged dead by a later one really has stopped.
      signal: AbortSignal.timeout(this.longestSendMs - 10_000),
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
    }, progress).then((): SendResult => ({ externalId: messageId, status: 'sent' }));
    return request.deliverOnce ? request.deliverOnce(deliver, this.longestSendMs) : deliver();
  }

  private get longestSendMs(): number {
    return longestSendMs(this.options.connectionTimeoutMs ?? 30_000);
  }

  /** One sendMail on the inbox's pool, its failure told apart: refused (permanent or not), never sent, or unknown. */
  private async deliver(inboxId: string, smtp: SmtpCredentials, mail: SendMailOptions, progress: BodyProgress): Promise<void> {
    const pooled = this.acquire(inboxId, smtp);
    try {
      await pooled.transport.sendMail({ ...mail, [bodyProgressOption]: progress } as SendMailOptions);
    } catch (error) {
      const e = error as Error & { responseCode?: number; code?: string };
      if (e.responseCode && e.responseCode >= 500 && e.responseCode < 600) {
        throw new PermanentSendError(e.code === 'EAUTH' ? 'smtp_auth_failed' : `smtp_${e.responseCode}`, `The SMTP server refused the mail: ${e.message}`);
      }
      // No reply to the end of the mail: the server may have queued it before the connection went.
      if (!e.responseCode && progress.ended) {
        throw new SendOutcomeUnknownError(`The SMTP connection failed after the whole mail was sent and before the server confirmed it (${e.code ?? e.name}: ${e.message})`);
      }
      throw error;
    } finally {
      this.release(inboxId, pooled);
    }
  }

  private async checkSmtpHost(host: string): Promise<void> {
    try {
      await checkProviderHost(host, this.options.allowPrivateTargets ?? false);
    } catch (error) {
      if (error instanceof WebhookTargetError) {
        const hint = this.options.allowPrivateTargets ? '' : ' (private addresses only with GATEWAY_PROVIDER_PRIVATE_TARGETS=allow)';
        throw new PermanentSendError('smtp_host_refused', `The inbox's SMTP host is refused: ${error.message}${hint}.`);
      }
      throw new Error(`The inbox's SMTP host cannot be checked (${(error as Error).message}); the send will be retried`);
    }
  }

  /** The inbox's pool for these settings (a pool made for other settings is retired), counted as sending. */
  private acquire(inboxId: string, smtp: SmtpCredentials): PooledTransport {
    const fingerprint = createHash('sha256').update(JSON.stringify(smtp)).digest('hex');
    let pooled = this.transports.get(inboxId);
    if (pooled && pooled.fingerprint !== fingerprint) {
      this.retire(inboxId, pooled);
      pooled = undefined;
    }
    if (!pooled) {
      const timeout = this.options.connectionTimeoutMs ?? 30_000;
      const transport = nodemailer.createTransport({
        pool: true, maxConnections: 3, host: smtp.host, port: smtp.port, secure: smtp.secure,
        ...(smtp.user ? { auth: { user: smtp.user, pass: smtp.pass } } : {}),
        connectionTimeout: timeout, greetingTimeout: timeout, socketTimeout: timeout * 2,
      });
      transport.use('stream', trackBodyEnd as unknown as Parameters<Transporter['use']>[1]);
      pooled = { fingerprint, transport, sending: 0, retired: false };
      this.transports.set(inboxId, pooled);
    }
    clearTimeout(pooled.idleTimer);
    pooled.sending += 1;
    return pooled;
  }

  private release(inboxId: string, pooled: PooledTransport): void {
    pooled.sending -= 1;
    if (pooled.sending > 0) return;
    if (pooled.retired) { pooled.transport.close(); return; }
    // unref: an idle pool's timer must not keep a stopping process alive.
    pooled.idleTimer = setTimeout(() => this.retire(inboxId, pooled), this.options.idleCloseMs ?? 5 * 60_000).unref();
  }

  /** Drops the pool from the map and closes it now, or after its last send in flight. */
  private retire(inboxId: string, pooled: PooledTransport): void {
    clearTimeout(pooled.idleTimer);
    pooled.retired = true;
    if (this.transports.get(inboxId) === pooled) this.transports.delete(inboxId);
    if (pooled.sending === 0) pooled.transport.close();
  }

  /** Closes the pooled connections (gateway stop). */
  close(): void {
    for (const [inboxId, pooled] of [...this.transports]) this.retire(inboxId, pooled);
  }
}

// POST /email/{inboxId}/inbound: inbound mail posted by the provider the inbox names (Mailgun, SendGrid
// Inbound Parse, Postmark). The post is checked (401), parsed (400), and answered 200 only once the mail
// is durably queued by the email acceptor; a provider retry is stored once (the job id is the Message-ID).
import { createHash } from 'node:crypto';
import type { Context } from 'koa';
import type { Redis } from 'ioredis';
import { EmailWebhookError } from '../../adapters/email/emailWebhookErrors.ts';
import type { InboundEmailProvider, InboundWebhook } from '../../adapters/email/inboundEmailProvider.ts';
import { MailgunInbound } from '../../adapters/email/mailgunInbound.ts';
import { PostmarkInbound } from '../../adapters/email/postmarkInbound.ts';
import { SendgridInbound } from '../../adapters/email/sendgridInbound.ts';
import { acceptParsedMail, emailSettingsOf, type EmailInboundDeps } from '../email/emailInbound.ts';
import type { ApiRegistry } from '../http/apiRoutes.ts';
import { HttpError, notFound } from '../http/errors.ts';
import type { InboxRecord } from '../inboxes/inboxDirectory.ts';
import type { Keyspace } from '../redis/keys.ts';

/** The largest post read: the largest mail setting (100 MiB) would be more than any provider sends; base64 and JSON add a third. */
export const emailWebhookMaxBodyBytes = 64 * 1024 * 1024;

const providers: Record<string, InboundEmailProvider> = {
  mailgun: new MailgunInbound(), sendgrid: new SendgridInbound(), postmark: new PostmarkInbound(),
};

export class EmailWebhookChannel {
  constructor(private readonly deps: EmailInboundDeps & { redis: Redis; keys: Keyspace; maxBodyBytes?: number }) {}

  registerRoutes(api: ApiRegistry): void {
    api.add({
      method: 'post', path: '/email/:inboxId/inbound', tag: 'Providers', auth: 'provider', bodyLimitBytes: this.deps.maxBodyBytes ?? emailWebhookMaxBodyBytes,
      produces: 'application/json {"status": "queued"|"bounce"|"ignored"} once the mail is durably queued',
      summary: 'Inbound-email webhooks (Mailgun, SendGrid, Postmark; the inbox setting inboundWebhookProvider says which). '
        + 'Mailgun: signed with the inbox credential webhookSigningKey. SendGrid, Postmark: that credential as ?key= or the Basic auth password.',
      handler: async (ctx, { params }) => this.receive(ctx, params.inboxId!),
    });
  }

  private async receive(ctx: Context, inboxId: string): Promise<unknown> {
    const inbox = await this.deps.inboxes.records.getAnyAccount(inboxId);
    if (!inbox || inbox.type !== 'email') throw notFound('inbox');
    if (!inbox.enabled) throw new HttpError(403, 'inbox_disabled', 'this inbox is disabled');
    const settings = emailSettingsOf(inbox);
    const provider = settings.inboundWebhookProvider ? providers[settings.inboundWebhookProvider] : undefined;
    if (!provider) throw new HttpError(403, 'webhook_not_configured', 'this inbox takes no inbound-email webhooks: set its inboundWebhookProvider');
    const credentials = this.deps.inboxes.credentials(inbox) as { webhookSigningKey?: string };
    const body = ctx.request.rawBody ?? Buffer.alloc(0);
    if (body.length === 0) throw new HttpError(400, 'invalid_request', 'the body is empty');

    let received: InboundWebhook;
    try {
      received = await provider.receive(
        { body, contentType: ctx.get('content-type'), headers: ctx.headers as Record<string, string | undefined>, query: ctx.query as Record<string, string | undefined> },
        { webhookSigningKey: credentials.webhookSigningKey, maxAgeSeconds: settings.webhookMaxAgeSeconds },
        { maxBytes: settings.maxMailBytes },
      );
    } catch (error) {
      if (error instanceof EmailWebhookError) throw new HttpError(error.status, error.code, error.message);
      throw error;
    }
    if (received.replayToken) await this.refuseReplay(inbox, received.replayToken, body);

    const mail = received.mail;
    // Mail without a Message-ID is deduplicated by the provider's own id when it has one (Postmark).
    if (!mail.messageId && received.providerMessageId) mail.messageId = `<${received.providerMessageId}@${provider.name}.inbound.invalid>`;
    const accepted = await acceptParsedMail(this.deps, inbox, mail, received.raw);
    return { status: accepted.kind, externalId: accepted.externalId, ...(accepted.kind === 'queued' ? { messageId: accepted.messageId } : {}) };
  }

  /** A signed token is good for one body: the same post again (a provider retry) passes, another body with it is refused. */
  private async refuseReplay(inbox: InboxRecord, token: { value: string; ttlSeconds: number }, body: Buffer): Promise<void> {
    const key = this.deps.keys.emailWebhookToken(inbox.id, createHash('sha256').update(token.value).digest('hex').slice(0, 32));
    const digest = createHash('sha256').update(body).digest('hex');
    const set = await this.deps.redis.set(key, digest, 'EX', token.ttlSeconds, 'NX');
    if (set === 'OK') return;
    if ((await this.deps.redis.get(key)) !== digest) throw new HttpError(401, 'replayed_token', 'this signed token was already used for another post');
  }
}

// The narrow interface each inbound-email webhook provider implements: check that the post is the
// provider's, and turn its body into a ParsedMail. No storage: what must be remembered (Mailgun's
// tokens, against replays) is handed back for the caller to record.
import type { ParsedMail, ParseMailOptions } from './parseMail.ts';

export interface InboundWebhookRequest {
  body: Buffer;
  contentType: string;
  /** Lower-case header names. */
  headers: Record<string, string | undefined>;
  query: Record<string, string | undefined>;
  now?: Date;
}

export interface InboundWebhookSecrets {
  /** Mailgun: the HTTP webhook signing key. SendGrid, Postmark: the shared secret in the URL (`?key=`) or the Basic auth password. */
  webhookSigningKey?: string;
  /** How old a Mailgun timestamp may be, in seconds. */
  maxAgeSeconds?: number;
}

export interface InboundWebhook {
  mail: ParsedMail;
  /** A one-time value the caller must refuse to see twice with a different body (Mailgun's token), and for how long. */
  replayToken?: { value: string; ttlSeconds: number };
  /** The provider's own id for the mail when it has one beside the Message-ID (Postmark's MessageID). */
  providerMessageId?: string;
  /** The mail's RFC 822 bytes when the provider posted them (Mailgun body-mime, SendGrid raw mode, Postmark RawEmail). */
  raw?: Buffer;
  /** The envelope recipient(s), when the provider says (plus-addressed Reply-To tokens live here). */
  recipients: string[];
}

export interface InboundEmailProvider {
  readonly name: 'mailgun' | 'sendgrid' | 'postmark';
  /** Throws EmailWebhookError: 401 when the post is not the provider's, 400 when it is malformed. */
  receive(request: InboundWebhookRequest, secrets: InboundWebhookSecrets, options?: ParseMailOptions): Promise<InboundWebhook>;
}

// SendGrid Inbound Parse and Postmark sign nothing: a post proves itself by a per-inbox secret the
// business puts in the webhook URL, as `?key=<secret>` or as Basic auth (`https://inbound:<secret>@…`).
// Compared in constant time (over digests, so the lengths leak nothing either).
import { createHash, timingSafeEqual } from 'node:crypto';
import { unauthorizedWebhook } from './emailWebhookErrors.ts';
import type { InboundWebhookRequest } from './inboundEmailProvider.ts';

/** Shorter secrets are refused as guessable. */
export const minSharedSecretLength = 24;

export function constantTimeEqual(a: string, b: string): boolean {
  const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();
  return timingSafeEqual(digest(a), digest(b)) && a.length === b.length;
}

export function verifySharedSecret(request: InboundWebhookRequest, secret: string | undefined): void {
  if (!secret || secret.length < minSharedSecretLength) {
    throw unauthorizedWebhook('webhook_secret_missing', `the inbox needs the credential webhookSigningKey (at least ${minSharedSecretLength} characters) to accept this provider's posts`);
  }
  const presented = presentedSecret(request);
  if (presented === undefined) throw unauthorizedWebhook('missing_credentials', 'the post carries no key (?key= or Basic auth)');
  if (!constantTimeEqual(presented, secret)) throw unauthorizedWebhook('invalid_credentials', 'the key does not match the inbox');
}

function presentedSecret(request: InboundWebhookRequest): string | undefined {
  const auth = request.headers.authorization;
  const basic = auth && /^basic\s+(\S+)$/i.exec(auth.trim());
  if (basic) {
    const decoded = Buffer.from(basic[1]!, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    return colon >= 0 ? decoded.slice(colon + 1) : decoded;
  }
  return request.query.key;
}

// The secret that Aliyun, Tencent and unsigned Vonage webhooks carry in their URL (`?token=`), as
// they sign nothing: generated with the inbox, kept across settings changes unless one is given.
import { randomBytes } from 'node:crypto';
import { safeEqual } from '../crypto/tokens.ts';

export function withSmsUrlToken(type: string, settings: Record<string, unknown>, previous?: Record<string, unknown>): Record<string, unknown> {
  if (type !== 'sms' || typeof settings.urlToken === 'string') return settings;
  const urlToken = typeof previous?.urlToken === 'string' ? previous.urlToken : randomBytes(24).toString('base64url');
  return { ...settings, urlToken };
}

/** Constant-time comparison of the URL's token with the inbox's. */
export function smsUrlTokenMatches(settings: Record<string, unknown>, given: unknown): boolean {
  return typeof settings.urlToken === 'string' && typeof given === 'string' && safeEqual(given, settings.urlToken);
}

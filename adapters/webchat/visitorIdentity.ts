// Who a visitor is: a gateway-issued visitor id with a token that proves it, or a business's own
// user id signed with the inbox's identity secret (HMAC-SHA256, hex), so nobody can pose as another.
import { createHmac, randomBytes } from 'node:crypto';
import { keyDigest } from '../../src/ids.ts';
import { safeEqual } from '../../src/crypto/tokens.ts';

export const visitorIdPattern = /^[vu]_[A-Za-z0-9_-]{16,64}$/;

export class VisitorIdentityError extends Error {}

export interface VisitorClaim {
  visitorId?: string;
  visitorToken?: string;
  userId?: string;
  userHash?: string;
}

export function visitorToken(serverKey: string, inboxId: string, visitorId: string): string {
  return createHmac('sha256', serverKey).update(`visitor\n${inboxId}\n${visitorId}`).digest('base64url');
}

export function expectedUserHash(identitySecret: string, userId: string): string {
  return createHmac('sha256', identitySecret).update(userId).digest('hex');
}

/**
 * Resolves a claim to a visitor id. A signed user id wins (same visitor on every device); a
 * visitor id needs its token; with neither, a new visitor starts. Bad proofs are refused, never ignored.
 */
export function resolveVisitor(claim: VisitorClaim, serverKey: string, inboxId: string, identitySecret?: string): { visitorId: string; visitorToken: string; isNew: boolean } {
  if (claim.userId !== undefined) {
    if (!identitySecret) throw new VisitorIdentityError('this inbox has no identity secret: signed identities are not accepted');
    if (!claim.userHash || !safeEqual(claim.userHash.toLowerCase(), expectedUserHash(identitySecret, claim.userId))) {
      throw new VisitorIdentityError('the identity signature does not match');
    }
    const visitorId = `u_${keyDigest(`${inboxId}\n${claim.userId}`)}`;
    return { visitorId, visitorToken: visitorToken(serverKey, inboxId, visitorId), isNew: false };
  }
  if (claim.visitorId !== undefined) {
    if (!visitorIdPattern.test(claim.visitorId) || !claim.visitorToken ||
        !safeEqual(claim.visitorToken, visitorToken(serverKey, inboxId, claim.visitorId))) {
      throw new VisitorIdentityError('unknown visitor or bad visitor token');
    }
    return { visitorId: claim.visitorId, visitorToken: claim.visitorToken, isNew: false };
  }
  const visitorId = `v_${randomBytes(16).toString('base64url')}`;
  return { visitorId, visitorToken: visitorToken(serverKey, inboxId, visitorId), isNew: true };
}

// The Idempotency-Key header, and the digest of the request body a key was first used with: a key sent
// again with another body is refused (422), as Stripe and the IETF httpapi idempotency-key draft do.
import { createHash } from 'node:crypto';
import { badRequest, HttpError } from './errors.ts';

export interface IdempotentRequest { key: string; requestDigest: string }

/** JSON with every object's keys sorted, so the same body always reads the same whatever its key order. */
function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => (v && typeof v === 'object' && !Array.isArray(v)
    ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
    : v));
}

/** sha256 (hex) of a validated request body in canonical form. */
export function requestDigest(body: unknown): string {
  return createHash('sha256').update(canonicalJson(body ?? null)).digest('hex');
}

/** The request's Idempotency-Key with its body's digest; undefined without the header. */
export function idempotencyOf(ctx: { get(name: string): string }, body: unknown): IdempotentRequest | undefined {
  const key = ctx.get('idempotency-key');
  if (!key) return undefined;
  if (key.length > 200) throw badRequest('Idempotency-Key: at most 200 characters');
  return { key, requestDigest: requestDigest(body) };
}

export const idempotencyKeyReused = () => new HttpError(422, 'idempotency_key_reused',
  'this Idempotency-Key was already used with a different request body; send a new key for a new request');

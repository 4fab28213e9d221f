// Gateway ids: a kind prefix, then a time-sortable part, then randomness (so lexical order = creation order).
import { randomBytes, createHash } from 'node:crypto';

const alphabet = '0123456789abcdefghijklmnopqrstuvwxyz';

export function newId(kind: string, now = Date.now()): string {
  const time = now.toString(36).padStart(9, '0');
  const bytes = randomBytes(10);
  let random = '';
  for (const byte of bytes) random += alphabet[byte % 36];
  return `${kind}_${time}${random}`;
}

/** A short stable digest for use inside Redis keys (provider ids may contain ':' or be long). */
export function keyDigest(value: string): string {
  return createHash('sha256').update(value).digest('base64url').slice(0, 27);
}

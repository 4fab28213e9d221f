// Gateway ids: a kind prefix, then a time-sortable part, then randomness (so lexical order = creation order).
import { hash, randomBytes } from 'node:crypto';

const alphabet = '0123456789abcdefghijklmnopqrstuvwxyz';

// Random bytes are drawn in blocks: one system call serves hundreds of ids.
let pool = randomBytes(0);
let poolOffset = 0;

export function newId(kind: string, now = Date.now()): string {
  const time = now.toString(36).padStart(9, '0');
  if (poolOffset + 10 > pool.length) { pool = randomBytes(4096); poolOffset = 0; }
  let random = '';
  for (let i = 0; i < 10; i++) random += alphabet[pool[poolOffset++]! % 36];
  return `${kind}_${time}${random}`;
}

/** A short stable digest for use inside Redis keys (provider ids may contain ':' or be long). */
export function keyDigest(value: string): string {
  return hash('sha256', value, 'base64url').slice(0, 27);
}

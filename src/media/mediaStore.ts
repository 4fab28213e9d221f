// Where inbound media (a customer's photo, voice note, video) is kept once fetched from the
// provider. The gateway only needs put and get by key; a local folder is the default, an object
// store can stand in behind the same interface.
import { createHash } from 'node:crypto';

/** Files above this are refused: a customer-service chat has no use for larger ones. */
export const maxMediaBytes = 20 * 1024 * 1024;

export interface StoredMedia { key: string; size: number; contentType: string }
export interface MediaFile { bytes: Buffer; contentType: string }

export interface MediaStore {
  put(key: string, bytes: Uint8Array, contentType: string): Promise<StoredMedia>;
  get(key: string): Promise<MediaFile | undefined>;
  /** Forgets a file (retention); a missing one is not an error. */
  delete(key: string): Promise<void>;
}

export class MediaTooLargeError extends Error {}

/** The public key of one provider medium: stable across retries, unguessable from the media id alone. */
export function mediaKeyFor(accountId: string, mediaId: string): string {
  return createHash('sha256').update(`${accountId}\n${mediaId}`).digest('hex');
}

export const mediaKeyPattern = /^[a-f0-9]{64}$/;

/** The store key: the account is part of it, so one account's key never finds another's file. */
export function mediaStoreKey(accountId: string, mediaKey: string): string {
  return `${accountId}/${mediaKey}`;
}

/** The store keys of the media a message's attachments point at (their `url` is a mediaPath). */
export function mediaStoreKeysOf(accountId: string, attachments: { url?: string }[] | undefined): string[] {
  const prefix = `/api/v1/accounts/${encodeURIComponent(accountId)}/media/`;
  return (attachments ?? []).map((a) => a.url?.startsWith(prefix) ? a.url.slice(prefix.length) : '')
    .filter((key) => mediaKeyPattern.test(key)).map((key) => mediaStoreKey(accountId, key));
}

/** The path agents fetch the file at (relative to the gateway's URL). */
export function mediaPath(accountId: string, mediaKey: string): string {
  return `/api/v1/accounts/${encodeURIComponent(accountId)}/media/${mediaKey}`;
}

/** A MIME type safe to store and echo back in a header, or the generic one. */
export function cleanContentType(value: string | undefined): string {
  const type = (value ?? '').split(';')[0]!.trim().toLowerCase();
  return /^[a-z0-9][a-z0-9!#$&^_.+-]{0,63}\/[a-z0-9][a-z0-9!#$&^_.+-]{0,127}$/.test(type) ? type : 'application/octet-stream';
}

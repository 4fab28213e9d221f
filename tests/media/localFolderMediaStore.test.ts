// The local-folder MediaStore: bytes and content type come back as stored, keys never become
// paths, and files over the limit are refused.
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { LocalFolderMediaStore } from '../../src/media/localFolderMediaStore.ts';
import { cleanContentType, mediaKeyFor, mediaKeyPattern, MediaTooLargeError } from '../../src/media/mediaStore.ts';

describe('LocalFolderMediaStore', () => {
  const folder = mkdtempSync(join(tmpdir(), 'gateway-media-'));
  afterAll(() => rmSync(folder, { recursive: true, force: true }));

  it('gives back the bytes and the content type it stored, and nothing for an unknown key', async () => {
    const store = new LocalFolderMediaStore(folder);
    const bytes = Buffer.from([0xff, 0xd8, 0xff, 0xe0, 1, 2, 3]);
    expect(await store.put('acc_1/photo', bytes, 'image/jpeg')).toEqual({ key: 'acc_1/photo', size: 7, contentType: 'image/jpeg' });
    expect(await store.get('acc_1/photo')).toEqual({ bytes, contentType: 'image/jpeg' });
    expect(await store.get('acc_2/photo')).toBeUndefined();
  });

  it('names files by a hash of the key, so a key with ../ stays inside the folder', async () => {
    const store = new LocalFolderMediaStore(folder);
    await store.put('../../etc/escape', Buffer.from('x'), 'text/plain');
    expect(await store.get('../../etc/escape')).toEqual({ bytes: Buffer.from('x'), contentType: 'text/plain' });
    const names = readdirSync(folder, { recursive: true }).map(String);
    expect(names.every((n) => /^[0-9a-f]{2}(\/[0-9a-f]{64}(\.json)?)?$/.test(n))).toBe(true);
  });

  it('refuses a file over the size limit and stores nothing', async () => {
    const store = new LocalFolderMediaStore(folder, 16);
    await expect(store.put('acc_1/big', Buffer.alloc(17), 'video/mp4')).rejects.toBeInstanceOf(MediaTooLargeError);
    expect(await store.get('acc_1/big')).toBeUndefined();
  });

  it('keeps only well-formed content types', () => {
    expect(cleanContentType('Audio/AMR; charset=binary')).toBe('audio/amr');
    expect(cleanContentType('text/html\r\nSet-Cookie: a=b')).toBe('application/octet-stream');
    expect(cleanContentType(undefined)).toBe('application/octet-stream');
  });

  it('derives one stable, path-safe key per account and media id', () => {
    expect(mediaKeyFor('acc_1', 'm1')).toBe(mediaKeyFor('acc_1', 'm1'));
    expect(mediaKeyFor('acc_1', 'm1')).not.toBe(mediaKeyFor('acc_2', 'm1'));
    expect(mediaKeyFor('acc_1', 'm1')).toMatch(mediaKeyPattern);
  });
});

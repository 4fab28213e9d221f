// MediaStore in a local folder (the gateway data dir's `media/` by default). File names are hashes
// of the key, so no key can name a path; the content type sits beside the bytes. Processes that
// store and serve media must share the folder.
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { cleanContentType, maxMediaBytes, MediaTooLargeError, type MediaFile, type MediaStore, type StoredMedia } from './mediaStore.ts';

const metadataSchema = z.object({ contentType: z.string().max(255), size: z.number().int().nonnegative() });

export class LocalFolderMediaStore implements MediaStore {
  constructor(private readonly folder: string, private readonly maxBytes = maxMediaBytes) {}

  private paths(key: string): { dir: string; data: string; metadata: string } {
    const name = createHash('sha256').update(key).digest('hex');
    // Spread over 256 folders: one flat folder of many files slows every lookup.
    const dir = join(this.folder, name.slice(0, 2));
    return { dir, data: join(dir, name), metadata: join(dir, `${name}.json`) };
  }

  async put(key: string, bytes: Uint8Array, contentType: string): Promise<StoredMedia> {
    if (bytes.byteLength > this.maxBytes) throw new MediaTooLargeError(`media is at most ${this.maxBytes} bytes, this is ${bytes.byteLength}`);
    const { dir, data, metadata } = this.paths(key);
    await mkdir(dir, { recursive: true });
    const stored: StoredMedia = { key, size: bytes.byteLength, contentType: cleanContentType(contentType) };
    // Written aside, then renamed: a reader never sees half a file. The metadata comes last, so
    // its presence means the bytes are complete.
    await this.writeAtomically(data, bytes);
    await this.writeAtomically(metadata, JSON.stringify({ contentType: stored.contentType, size: stored.size }));
    return stored;
  }

  async delete(key: string): Promise<void> {
    const { data, metadata } = this.paths(key);
    // The metadata goes first: without it the file counts as absent even if removing the bytes fails.
    await rm(metadata, { force: true });
    await rm(data, { force: true });
  }

  async get(key: string): Promise<MediaFile | undefined> {
    const { data, metadata } = this.paths(key);
    try {
      const parsed = metadataSchema.safeParse(parseJson(await readFile(metadata, 'utf8')));
      if (!parsed.success) return undefined;
      return { bytes: await readFile(data), contentType: cleanContentType(parsed.data.contentType) };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
  }

  private async writeAtomically(path: string, content: Uint8Array | string): Promise<void> {
    const temporary = `${path}.${randomBytes(6).toString('hex')}.tmp`;
    try {
      await writeFile(temporary, content, { mode: 0o600 });
      await rename(temporary, path);
    } catch (error) {
      await rm(temporary, { force: true });
      throw error;
    }
  }
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

// Reads a fetched body into memory up to a size: the declared length is checked first, then every
// chunk, so a lying or endless answer stops at the limit.
export async function readLimitedBody(
  response: Response, maxBytes: number, errors: { tooLarge: () => Error; unreadable: () => Error },
): Promise<Buffer> {
  if (!response.body) return Buffer.alloc(0);
  if (Number(response.headers.get('content-length') ?? 0) > maxBytes) {
    await response.body.cancel();
    throw errors.tooLarge();
  }
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = response.body.getReader();
  for (;;) {
    let chunk: Awaited<ReturnType<typeof reader.read>>;
    try {
      chunk = await reader.read();
    } catch {
      throw errors.unreadable();
    }
    if (chunk.done) break;
    size += chunk.value.byteLength;
    if (size > maxBytes) {
      await reader.cancel();
      throw errors.tooLarge();
    }
    chunks.push(chunk.value);
  }
  return Buffer.concat(chunks);
}

// Serves stored inbound media to the account's agents and API keys: the URL in a message's attachment.
import type { ApiRegistry } from '../http/apiRoutes.ts';
import { notFound } from '../http/errors.ts';
import { mediaKeyPattern, mediaStoreKey, type MediaStore } from './mediaStore.ts';

// Shown inline only when a browser cannot run it; anything else (SVG, HTML…) downloads.
const inlineType = /^(image\/(jpeg|png|gif|webp|bmp)|audio\/[a-z0-9.+-]+|video\/[a-z0-9.+-]+)$/;

export function registerMediaRoutes(api: ApiRegistry, store: MediaStore): void {
  api.add({
    method: 'get', path: '/api/v1/accounts/:accountId/media/:mediaKey', tag: 'Conversations', auth: 'accountOrAgent',
    produces: 'the file, with its stored content type',
    summary: "An inbound attachment's file, fetched from the provider and stored by the gateway (the attachment's url)",
    handler: async (ctx, { params }) => {
      const mediaKey = params.mediaKey!;
      if (!mediaKeyPattern.test(mediaKey)) throw notFound('media');
      const file = await store.get(mediaStoreKey(params.accountId!, mediaKey));
      if (!file) throw notFound('media');
      ctx.type = file.contentType;
      ctx.set('Content-Disposition', inlineType.test(file.contentType) ? 'inline' : 'attachment');
      ctx.set('X-Content-Type-Options', 'nosniff');
      ctx.set('Content-Security-Policy', "default-src 'none'; sandbox");
      ctx.set('Cache-Control', 'private, max-age=86400');
      return file.bytes;
    },
  });
}

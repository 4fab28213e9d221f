// Reads the raw body once (providers sign the exact bytes), with a size limit, then parses it by type.
import type { IncomingMessage } from 'node:http';
import type { Context, Next } from 'koa';
import getRawBody from 'raw-body';
import { HttpError } from './errors.ts';

declare module 'koa' {
  interface Request { body?: unknown; rawBody?: Buffer }
}

/** The raw body up to a limit: a declared length over it is refused before reading, a longer stream once it passes. */
export function readRawBody(req: IncomingMessage, limitBytes: number): Promise<Buffer> {
  const declared = req.headers['content-length'] || undefined;
  if (Number(declared ?? 0) > limitBytes) return Promise.reject(new HttpError(413, 'payload_too_large', `request body is larger than ${limitBytes} bytes`));
  return getRawBody(req, { limit: limitBytes, length: declared });
}

export function bodyMiddleware(defaultLimitBytes: number) {
  return async function readBody(ctx: Context, next: Next) {
    if (!['POST', 'PUT', 'PATCH', 'DELETE'].includes(ctx.method)) return next();
    const raw = await readRawBody(ctx.req, (ctx.state.bodyLimitBytes as number | undefined) ?? defaultLimitBytes);
    ctx.request.rawBody = raw;
    if (raw.length === 0) return next();
    const type = ctx.request.type;
    if (type === 'application/json' || type.endsWith('+json')) {
      try {
        ctx.request.body = JSON.parse(raw.toString('utf8'));
      } catch {
        throw new HttpError(400, 'invalid_json', 'body is not valid JSON');
      }
    } else if (type === 'application/x-www-form-urlencoded') {
      ctx.request.body = Object.fromEntries(new URLSearchParams(raw.toString('utf8')));
    }
    return next();
  };
}

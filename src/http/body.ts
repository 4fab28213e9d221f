// Reads the raw body once (providers sign the exact bytes), with a size limit, then parses it by type.
import type { Context, Next } from 'koa';
import getRawBody from 'raw-body';
import { HttpError } from './errors.ts';

declare module 'koa' {
  interface Request { body?: unknown; rawBody?: Buffer }
}

export function bodyMiddleware(defaultLimitBytes: number) {
  return async function readBody(ctx: Context, next: Next) {
    if (!['POST', 'PUT', 'PATCH', 'DELETE'].includes(ctx.method)) return next();
    const limitBytes = (ctx.state.bodyLimitBytes as number | undefined) ?? defaultLimitBytes;
    const declared = Number(ctx.get('content-length') || 0);
    if (declared > limitBytes) throw new HttpError(413, 'payload_too_large', `request body is larger than ${limitBytes} bytes`);
    const raw = await getRawBody(ctx.req, { limit: limitBytes, length: ctx.get('content-length') || undefined });
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

// One error shape for every caller: {error: {code, message}}; never a stack trace.
import type { Context, Next } from 'koa';
import { z } from 'zod';
import type { Logger } from '../logger.ts';

export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
  }
}

export const notFound = (what = 'resource') => new HttpError(404, 'not_found', `${what} not found`);
export const badRequest = (message: string, details?: unknown) => new HttpError(400, 'invalid_request', message, details);
export const conflict = (message: string) => new HttpError(409, 'conflict', message);
export const forbidden = (message: string) => new HttpError(403, 'forbidden', message);

/** Turns a zod error into a 400 naming each bad field. */
export function validationError(error: z.ZodError, where: string): HttpError {
  const details = error.issues.map((issue) => ({ path: issue.path.join('.'), message: issue.message }));
  const first = details[0];
  return new HttpError(400, 'invalid_request', `${where}: ${first?.path ? first.path + ': ' : ''}${first?.message ?? 'invalid'}`, details);
}

export function parseWith<T extends z.ZodType>(schema: T, value: unknown, where: string): z.infer<T> {
  const result = schema.safeParse(value);
  if (!result.success) throw validationError(result.error, where);
  return result.data;
}

export function errorMiddleware(log: Logger) {
  return async function handleErrors(ctx: Context, next: Next) {
    try {
      await next();
    } catch (error) {
      const e = error as { status?: number; statusCode?: number; type?: string; expose?: boolean; message?: string };
      if (error instanceof HttpError) {
        ctx.status = error.status;
        ctx.body = { error: { code: error.code, message: error.message, ...(error.details ? { details: error.details } : {}) } };
        return;
      }
      const status = e.status ?? e.statusCode ?? 500;
      if (status === 413 || e.type === 'entity.too.large') {
        ctx.status = 413;
        ctx.body = { error: { code: 'payload_too_large', message: 'request body is too large' } };
        return;
      }
      if (status >= 400 && status < 500) {
        ctx.status = status;
        ctx.body = { error: { code: 'bad_request', message: e.expose && e.message ? e.message : 'bad request' } };
        return;
      }
      log.error({ err: error, method: ctx.method, path: ctx.path }, 'request failed');
      ctx.status = 500;
      ctx.body = { error: { code: 'internal', message: 'internal error' } };
    }
  };
}

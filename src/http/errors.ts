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

/** The status and body every caller gets for a failed request: an HttpError as it says, a parser's 4xx
 *  without its internals, anything else a logged 500. */
export function errorAnswer(error: unknown, log: Logger, request: { method: string; path: string }): { status: number; body: { error: Record<string, unknown> } } {
  const e = error as { status?: number; statusCode?: number; type?: string; expose?: boolean; message?: string };
  if (error instanceof HttpError) {
    return { status: error.status, body: { error: { code: error.code, message: error.message, ...(error.details ? { details: error.details } : {}) } } };
  }
  const status = e.status ?? e.statusCode ?? 500;
  if (status === 413 || e.type === 'entity.too.large') {
    return { status: 413, body: { error: { code: 'payload_too_large', message: 'request body is too large' } } };
  }
  if (status >= 400 && status < 500) {
    return { status, body: { error: { code: 'bad_request', message: e.expose && e.message ? e.message : 'bad request' } } };
  }
  log.error({ err: error, method: request.method, path: request.path }, 'request failed');
  return { status: 500, body: { error: { code: 'internal', message: 'internal error' } } };
}

export function errorMiddleware(log: Logger) {
  return async function handleErrors(ctx: Context, next: Next) {
    try {
      await next();
    } catch (error) {
      const answer = errorAnswer(error, log, ctx);
      ctx.status = answer.status;
      ctx.body = answer.body;
    }
  };
}

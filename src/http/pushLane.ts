// The push lane: provider pushes that arrive by the thousand a second (WeChat's) are answered straight
// from node:http, ahead of koa. A push needs no auth header, no JSON parsing and no router of sixty
// routes, and koa's per-request context, router and body reader cost as much as the push's own work.
// The lane keeps what every route has: the body limit, the one error body, and the request metrics.
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '../logger.ts';
import type { Metrics } from '../metrics.ts';
import { readRawBody } from './body.ts';
import { errorAnswer } from './errors.ts';

export interface PushInput {
  params: Record<string, string>;
  /** The raw query string, without the `?`. */
  querystring: string;
  body: Buffer;
  headers: IncomingHttpHeaders;
}

/** What a push is answered: a body, or no answer at all (the connection is dropped so the provider retries). */
export type PushAnswer = { status?: number; type: string; body: string } | { hangUp: true };
export type PushHandler = (input: PushInput) => Promise<PushAnswer>;

export interface PushRoute {
  /** `POST` paths like `/wechat/:inboxId`: literal segments and `:name` segments. */
  path: string;
  bodyLimitBytes: number;
  push: PushHandler;
}

interface CompiledRoute extends PushRoute { prefix: string; segments: (string | { param: string })[] }

/** Serves the routes' POSTs, and returns false for every other request (left to koa). */
export type PushLane = (req: IncomingMessage, res: ServerResponse) => boolean;

export function createPushLane(routes: PushRoute[], deps: { log: Logger; metrics: Metrics }): PushLane {
  const compiled: CompiledRoute[] = routes.map((route) => {
    const segments = route.path.split('/').slice(1).map((s) => (s.startsWith(':') ? { param: s.slice(1) } : s));
    return { ...route, segments, prefix: route.path.slice(0, route.path.indexOf('/:') + 1 || route.path.length) };
  });

  return (req, res) => {
    if (req.method !== 'POST' || !compiled.length) return false;
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    for (const route of compiled) {
      if (!path.startsWith(route.prefix)) continue;
      const params = matchParams(route, path);
      if (!params) continue;
      void serve(route, params, q === -1 ? '' : url.slice(q + 1), req, res, deps);
      return true;
    }
    return false;
  };
}

function matchParams(route: CompiledRoute, path: string): Record<string, string> | undefined {
  const parts = path.split('/');
  if (parts.length !== route.segments.length + 1) return undefined;
  const params: Record<string, string> = {};
  for (let i = 0; i < route.segments.length; i += 1) {
    const segment = route.segments[i]!;
    const part = parts[i + 1]!;
    if (typeof segment === 'string') {
      if (part !== segment) return undefined;
    } else {
      if (!part) return undefined;
      params[segment.param] = decodeSegment(part);
    }
  }
  return params;
}

/** As koa's router does: percent-decoded, or as sent when it does not decode. */
function decodeSegment(part: string): string {
  if (!part.includes('%')) return part;
  try {
    return decodeURIComponent(part);
  } catch {
    return part;
  }
}

async function serve(route: CompiledRoute, params: Record<string, string>, querystring: string, req: IncomingMessage, res: ServerResponse,
  deps: { log: Logger; metrics: Metrics }): Promise<void> {
  const started = performance.now();
  let status: number;
  try {
    const body = await readRawBody(req, route.bodyLimitBytes);
    const answer = await route.push({ params, querystring, body, headers: req.headers });
    if ('hangUp' in answer) {
      status = 0;
      req.socket.destroy();
    } else {
      status = answer.status ?? 200;
      res.writeHead(status, { 'content-type': `${answer.type}; charset=utf-8`, 'content-length': Buffer.byteLength(answer.body) });
      res.end(answer.body);
    }
  } catch (error) {
    const answer = errorAnswer(error, deps.log, { method: 'POST', path: req.url?.split('?')[0] ?? '/' });
    status = answer.status;
    const text = JSON.stringify(answer.body);
    // A body left unread (too large, or refused before reading) is not drained: the connection closes.
    const headers: Record<string, string | number> = { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) };
    if (!req.complete) headers.connection = 'close';
    if (!res.headersSent) res.writeHead(status, headers);
    res.end(text);
  }
  deps.metrics.httpRequests.inc({ method: 'POST', route: route.path, status: String(status) });
  deps.metrics.httpDuration.observe({ method: 'POST', route: route.path }, (performance.now() - started) / 1000);
}

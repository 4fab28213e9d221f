// Every HTTP route is declared once here: the declaration mounts it on the router, validates its
// input with zod, applies its auth, and becomes its entry in /openapi.json.
import type Router from '@koa/router';
import type { Context } from 'koa';
import { z } from 'zod';
import { parseWith } from './errors.ts';
import type { PushHandler, PushRoute } from './pushLane.ts';

export type AuthLevel = 'none' | 'provider' | 'visitor' | 'platform' | 'account' | 'accountOrSupervisor' | 'accountOrAgent' | 'agent';
type Method = 'get' | 'post' | 'put' | 'patch' | 'delete' | 'options';

export interface RouteInput<B, Q> {
  body: B;
  query: Q;
  params: Record<string, string>;
}

export interface RouteSpec<B extends z.ZodType = z.ZodType, Q extends z.ZodType = z.ZodType> {
  method: Method;
  path: string;
  summary: string;
  tag: string;
  auth: AuthLevel;
  body?: B;
  query?: Q;
  response?: z.ZodType;
  successStatus?: number;
  /** Routes that are not JSON (WebSocket upgrades, scripts, provider callbacks) say what they answer. */
  produces?: string;
  /** A body limit of the route's own instead of the gateway's (inbound mail is larger than any JSON call). */
  bodyLimitBytes?: number;
  handler?: (ctx: Context, input: RouteInput<z.infer<B>, z.infer<Q>>) => Promise<unknown>;
  /** A provider push served on the push lane (node:http, ahead of koa) instead of by `handler`. */
  push?: PushHandler;
}

export type AuthMiddleware = (level: AuthLevel) => (ctx: Context, next: () => Promise<unknown>) => Promise<unknown>;

export class ApiRegistry {
  readonly routes: RouteSpec[] = [];

  add<B extends z.ZodType, Q extends z.ZodType>(spec: RouteSpec<B, Q>): void {
    this.routes.push(spec as unknown as RouteSpec);
  }

  mount(routerFor: (path: string) => Router, authenticate: AuthMiddleware, readBody: (ctx: Context, next: () => Promise<unknown>) => Promise<unknown>): void {
    for (const spec of this.routes) {
      if (!spec.handler) continue;
      const handler = spec.handler;
      const routeLimit = async (ctx: Context, next: () => Promise<unknown>) => {
        if (spec.bodyLimitBytes) ctx.state.bodyLimitBytes = spec.bodyLimitBytes;
        return next();
      };
      routerFor(spec.path)[spec.method](spec.path, authenticate(spec.auth), routeLimit, readBody, async (ctx: Context) => {
        const body = spec.body ? parseWith(spec.body, ctx.request.body ?? {}, 'body') : ctx.request.body;
        const query = spec.query ? parseWith(spec.query, ctx.query, 'query') : undefined;
        // A route without a query schema parses its query string only if it reads it.
        const input = { body, get query() { return query ?? ctx.query; }, params: ctx.params as Record<string, string> };
        const result = await handler(ctx, input as RouteInput<unknown, unknown>);
        if (result !== undefined) {
          ctx.status = spec.successStatus ?? 200;
          ctx.body = result;
        } else if (ctx.body === undefined) {
          ctx.status = spec.successStatus ?? 204;
        }
      });
    }
  }

  /** The routes served on the push lane, each with its body limit. */
  pushRoutes(defaultBodyLimitBytes: number): PushRoute[] {
    return this.routes.flatMap((spec) => (spec.push && spec.method === 'post'
      ? [{ path: spec.path, bodyLimitBytes: spec.bodyLimitBytes ?? defaultBodyLimitBytes, push: spec.push }] : []));
  }

  openapi(info: { title: string; version: string; serverUrl?: string }): Record<string, unknown> {
    const paths: Record<string, Record<string, unknown>> = {};
    for (const spec of this.routes) {
      const openapiPath = spec.path.replace(/:([A-Za-z]+)/g, '{$1}');
      const params = [...spec.path.matchAll(/:([A-Za-z]+)/g)].map((m) => ({
        name: m[1], in: 'path', required: true, schema: { type: 'string' },
      }));
      const queryParams = spec.query ? queryParameters(spec.query) : [];
      const operation: Record<string, unknown> = {
        summary: spec.summary,
        tags: [spec.tag],
        operationId: `${spec.method}${openapiPath.replace(/[{}]/g, '').replace(/[^A-Za-z0-9]+(.)?/g, (_m, c: string | undefined) => (c ? c.toUpperCase() : ''))}`,
        parameters: [...params, ...queryParams],
        security: securityFor(spec.auth),
        responses: {
          [String(spec.successStatus ?? (spec.response ? 200 : 204))]: spec.response
            ? { description: 'OK', content: { 'application/json': { schema: toJsonSchema(spec.response) } } }
            : { description: spec.produces ?? 'OK' },
          '4XX': { description: 'Error: {"error": {"code", "message"}}' },
        },
      };
      if (spec.body) {
        operation.requestBody = { required: true, content: { 'application/json': { schema: toJsonSchema(spec.body) } } };
      }
      (paths[openapiPath] ??= {})[spec.method] = operation;
    }
    return {
      openapi: '3.1.0',
      info: { title: info.title, version: info.version },
      servers: info.serverUrl ? [{ url: info.serverUrl }] : [],
      components: {
        securitySchemes: {
          platformKey: { type: 'http', scheme: 'bearer', description: 'The platform key (GATEWAY_ADMIN_KEY)' },
          accountKey: { type: 'http', scheme: 'bearer', description: "An account's API key (gwk_…)" },
          agentToken: { type: 'http', scheme: 'bearer', description: "An agent's token (gwa_…)" },
        },
      },
      paths,
    };
  }
}

function securityFor(level: AuthLevel): unknown[] {
  switch (level) {
    case 'platform': return [{ platformKey: [] }];
    case 'account': return [{ accountKey: [] }, { platformKey: [] }];
    case 'accountOrAgent':
    case 'accountOrSupervisor': return [{ accountKey: [] }, { platformKey: [] }, { agentToken: [] }];
    case 'agent': return [{ agentToken: [] }];
    default: return [];
  }
}

export function toJsonSchema(schema: z.ZodType): unknown {
  return z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' });
}

function queryParameters(schema: z.ZodType): unknown[] {
  const json = toJsonSchema(schema) as { properties?: Record<string, unknown>; required?: string[] };
  return Object.entries(json.properties ?? {}).map(([name, s]) => ({
    name, in: 'query', required: json.required?.includes(name) ?? false, schema: s,
  }));
}

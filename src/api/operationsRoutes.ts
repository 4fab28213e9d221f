// /healthz, /readyz, /metrics, /openapi.json and the published JSON Schemas.
import type { Redis } from 'ioredis';
import type { ApiRegistry } from '../http/apiRoutes.ts';
import { HttpError } from '../http/errors.ts';
import type { Metrics } from '../metrics.ts';
import type { Keyspace } from '../redis/keys.ts';
import { publishedSchemas } from '../schema/jsonSchemas.ts';

export const workerHeartbeatMs = 5_000;

export function registerOperationsRoutes(api: ApiRegistry, deps: {
  redis: Redis; keys: Keyspace; metrics: Metrics; publicUrl: string; version: string;
}): void {
  api.add({
    method: 'get', path: '/healthz', tag: 'Operations', auth: 'none', summary: 'The process is up',
    handler: async () => ({ status: 'ok' }),
  });
  api.add({
    method: 'get', path: '/readyz', tag: 'Operations', auth: 'none', summary: 'Redis reachable and workers alive (503 otherwise)',
    handler: async (ctx) => {
      const checks: Record<string, string> = {};
      try {
        await deps.redis.ping();
        checks.redis = 'ok';
        const alive = await deps.redis.zcount(deps.keys.workerHeartbeats, Date.now() - 3 * workerHeartbeatMs, '+inf');
        checks.workers = alive > 0 ? `ok (${alive})` : 'none alive';
      } catch {
        checks.redis = 'unreachable';
      }
      const ready = checks.redis === 'ok' && !!checks.workers?.startsWith('ok');
      ctx.status = ready ? 200 : 503;
      ctx.body = { status: ready ? 'ready' : 'not_ready', checks };
      return undefined;
    },
  });
  api.add({
    method: 'get', path: '/metrics', tag: 'Operations', auth: 'none', summary: 'Prometheus metrics', produces: 'text/plain (Prometheus)',
    handler: async (ctx) => {
      ctx.type = deps.metrics.registry.contentType;
      ctx.body = await deps.metrics.registry.metrics();
      return undefined;
    },
  });
  api.add({
    method: 'get', path: '/openapi.json', tag: 'Operations', auth: 'none', summary: 'This API as OpenAPI 3.1',
    handler: async () => api.openapi({ title: 'Channel gateway', version: deps.version, serverUrl: deps.publicUrl }),
  });
  api.add({
    method: 'get', path: '/schemas/:name', tag: 'Operations', auth: 'none', summary: 'JSON Schema of the normalized message (message.json) or event (event.json)',
    handler: async (_ctx, { params }) => {
      const schema = publishedSchemas()[params.name!.replace(/\.json$/, '')];
      if (!schema) throw new HttpError(404, 'not_found', 'schema not found: message.json or event.json');
      return schema;
    },
  });
}

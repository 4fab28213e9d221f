// The gateway as the benchmark drives it: in this process, role all, silent logs, a free port, its own
// key prefix; and a tenant (account, web chat inbox, one online agent) made through the public API.
import { randomBytes } from 'node:crypto';
import { loadSettings, type Settings } from '../config/settings.ts';
import { createGateway, type Gateway } from '../src/gateway.ts';
import { createLogger } from '../src/logger.ts';

export interface BenchTenant { accountId: string; apiKey: string; inboxId: string; agentId: string; agentToken: string }

export interface GatewayUnderTest { gateway: Gateway; settings: Settings; url: string; adminKey: string }

/** Settings as production reads them, with only what a benchmark must pin (port, prefix, logs, no demo). */
export function benchSettings(prefix: string, adminKey = `admin-${randomBytes(16).toString('hex')}`): Settings {
  return loadSettings({
    PORT: '0', HOST: '127.0.0.1', GATEWAY_REDIS_PREFIX: prefix, GATEWAY_ADMIN_KEY: adminKey, LOG_LEVEL: 'silent', GATEWAY_DEMO: 'off',
    ...(process.env.GATEWAY_WORKER_CONCURRENCY ? { GATEWAY_WORKER_CONCURRENCY: process.env.GATEWAY_WORKER_CONCURRENCY } : {}),
  }, []);
}

export async function startGatewayUnderTest(redisUrl: string, prefix: string): Promise<GatewayUnderTest> {
  const adminKey = `admin-${randomBytes(16).toString('hex')}`;
  const settings = benchSettings(prefix, adminKey);
  const gateway = await createGateway({
    settings, redisUrl, secretKey: randomBytes(32).toString('base64'), log: createLogger(settings.logLevel), role: 'all',
  });
  await gateway.start();
  return { gateway, settings, url: gateway.url, adminKey };
}

/** One JSON API call for bench setup; a non-2xx answer throws with its body. */
export async function call(url: string, method: string, path: string, key: string, body?: unknown): Promise<any> {
  const response = await fetch(`${url}${path}`, {
    method, headers: { authorization: `Bearer ${key}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text}`);
  return text ? JSON.parse(text) : undefined;
}

/** An account with a web chat inbox and one online agent with room for `capacity` conversations. */
export async function createBenchTenant(g: GatewayUnderTest, capacity: number): Promise<BenchTenant> {
  const account = await call(g.url, 'POST', '/api/v1/accounts', g.adminKey, { name: 'Bench shop' });
  const apiKey = account.key as string;
  const accountId = account.account.id as string;
  const inbox = await call(g.url, 'POST', `/api/v1/accounts/${accountId}/inboxes`, apiKey, {
    type: 'webchat', name: 'Bench chat', settings: { allowedOrigins: ['*'] }, credentials: {},
  });
  const agent = await call(g.url, 'POST', `/api/v1/accounts/${accountId}/agents`, apiKey, { name: 'Bench agent', capacity });
  await call(g.url, 'PUT', `/api/v1/accounts/${accountId}/agents/${agent.agent.id}/status`, apiKey, { status: 'online' });
  return { accountId, apiKey, inboxId: inbox.id, agentId: agent.agent.id, agentToken: agent.token };
}

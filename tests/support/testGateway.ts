// Starts a real gateway in this process against the test run's Redis, isolated by its own key prefix.
import { randomBytes } from 'node:crypto';
import { inject } from 'vitest';
import WebSocket from 'ws';
import { loadSettings } from '../../config/settings.ts';
import { createGateway, type Gateway, type GatewayOptions } from '../../src/gateway.ts';
import { createLogger } from '../../src/logger.ts';

export interface TestGateway {
  gateway: Gateway;
  url: string;
  adminKey: string;
  prefix: string;
  api<T = any>(method: string, path: string, options?: { key?: string; body?: unknown; headers?: Record<string, string>; raw?: string }): Promise<{ status: number; body: T; headers: Headers }>;
  stop(): Promise<void>;
}

/** JSON over fetch against a gateway's base URL, with an optional Bearer key. */
export function apiClient(url: string): TestGateway['api'] {
  return async (method, path, options = {}) => {
    const headers: Record<string, string> = { ...(options.headers ?? {}) };
    if (options.key) headers.authorization = `Bearer ${options.key}`;
    let body: string | undefined = options.raw;
    if (options.body !== undefined) { body = JSON.stringify(options.body); headers['content-type'] ??= 'application/json'; }
    const response = await fetch(`${url}${path}`, { method, headers, body });
    const text = await response.text();
    let parsed: unknown = text;
    try { parsed = text ? JSON.parse(text) : undefined; } catch { /* not JSON */ }
    return { status: response.status, body: parsed as never, headers: response.headers };
  };
}

export function redisUrl(): string {
  return inject('redisUrl');
}

export async function startTestGateway(env: Record<string, string> = {}, role: 'web' | 'worker' | 'all' = 'all', extra: Pick<GatewayOptions, 'imap' | 'agentSocketLeaseMs' | 'webhookLookup'> = {}): Promise<TestGateway> {
  const prefix = env.GATEWAY_REDIS_PREFIX ?? `t${randomBytes(4).toString('hex')}`;
  const adminKey = env.GATEWAY_ADMIN_KEY ?? `admin-${randomBytes(16).toString('hex')}`;
  // Test CRM receivers and fake providers listen on loopback (allowed by default; some tests set deny).
  const settings = loadSettings({
    PORT: '0', HOST: '127.0.0.1', GATEWAY_REDIS_PREFIX: prefix, GATEWAY_ADMIN_KEY: adminKey, LOG_LEVEL: 'silent',
    GATEWAY_WEBHOOK_PRIVATE_TARGETS: 'allow', GATEWAY_PROVIDER_PRIVATE_TARGETS: 'allow', ...env,
  }, []);
  const gateway = await createGateway({ settings, redisUrl: env.REDIS_URL ?? redisUrl(), secretKey: env.GATEWAY_SECRET_KEY ?? 'test-secret-key-0123456789abcdef0123', log: createLogger(settings.logLevel), role, ...extra });
  await gateway.start();
  const url = gateway.url;
  return {
    gateway, url, adminKey, prefix,
    api: apiClient(url),
    stop: () => gateway.stop(),
  };
}

export interface Tenant { accountId: string; apiKey: string; inboxId: string; agentId: string; agentToken: string }

/** An account with a web chat inbox and one agent (online unless told otherwise). */
export async function createTenant(t: TestGateway, options: { capacity?: number; online?: boolean; webchatSettings?: Record<string, unknown>; credentials?: Record<string, unknown> } = {}): Promise<Tenant> {
  const account = await t.api('POST', '/api/v1/accounts', { key: t.adminKey, body: { name: 'Shop' } });
  if (account.status !== 201) throw new Error(`account: ${account.status} ${JSON.stringify(account.body)}`);
  const apiKey = account.body.key as string;
  const accountId = account.body.account.id as string;
  const inbox = await t.api('POST', `/api/v1/accounts/${accountId}/inboxes`, {
    key: apiKey, body: { type: 'webchat', name: 'Site chat', settings: options.webchatSettings ?? { allowedOrigins: ['*'] }, credentials: options.credentials ?? {} },
  });
  if (inbox.status !== 201) throw new Error(`inbox: ${inbox.status} ${JSON.stringify(inbox.body)}`);
  const agent = await t.api('POST', `/api/v1/accounts/${accountId}/agents`, { key: apiKey, body: { name: 'Ann', capacity: options.capacity ?? 5 } });
  if (agent.status !== 201) throw new Error(`agent: ${agent.status} ${JSON.stringify(agent.body)}`);
  if (options.online !== false) {
    await t.api('PUT', `/api/v1/accounts/${accountId}/agents/${agent.body.agent.id}/status`, { key: apiKey, body: { status: 'online' } });
  }
  return { accountId, apiKey, inboxId: inbox.body.id, agentId: agent.body.agent.id, agentToken: agent.body.token };
}

/** A WebSocket client that queues frames and waits for the one a test expects. */
export class TestSocket {
  readonly frames: any[] = [];
  private waiters: { match: (f: any) => boolean; resolve: (f: any) => void }[] = [];
  closeCode: number | undefined;

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data) => {
      const frame = JSON.parse(data.toString());
      this.frames.push(frame);
      this.waiters = this.waiters.filter((w) => (w.match(frame) ? (w.resolve(frame), false) : true));
    });
    ws.on('close', (code) => { this.closeCode = code; });
  }

  static async open(url: string, options: WebSocket.ClientOptions = {}): Promise<TestSocket> {
    const ws = new WebSocket(url, options);
    const socket = new TestSocket(ws);
    await new Promise<void>((resolve, reject) => { ws.once('open', () => resolve()); ws.once('error', reject); });
    return socket;
  }

  send(frame: unknown) { this.ws.send(JSON.stringify(frame)); }

  next(match: (frame: any) => boolean, timeoutMs = 10_000): Promise<any> {
    const found = this.frames.find(match);
    if (found) { this.frames.splice(this.frames.indexOf(found), 1); return Promise.resolve(found); }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no matching frame within ${timeoutMs} ms; got ${JSON.stringify(this.frames.slice(-5))}`)), timeoutMs);
      this.waiters.push({ match, resolve: (f) => { clearTimeout(timer); this.frames.splice(this.frames.indexOf(f), 1); resolve(f); } });
    });
  }

  closed(timeoutMs = 5000): Promise<number> {
    if (this.closeCode !== undefined) return Promise.resolve(this.closeCode);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('socket did not close')), timeoutMs);
      this.ws.once('close', (code) => { clearTimeout(timer); resolve(code); });
    });
  }

  close() { this.ws.close(); }
}

export const wsUrl = (httpUrl: string, path: string) => httpUrl.replace(/^http/, 'ws') + path;

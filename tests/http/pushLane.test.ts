// The push lane: only its routes' POSTs are taken from koa; the body limit holds whether the length is
// declared or not; errors get the one error body (no stack); a hang-up answers nothing; metrics count it.
import type { AddressInfo } from 'node:net';
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiRegistry } from '../../src/http/apiRoutes.ts';
import { HttpError } from '../../src/http/errors.ts';
import { createPushLane, type PushInput } from '../../src/http/pushLane.ts';
import { createHttpApp, createHttpServer } from '../../src/http/server.ts';
import { createLogger } from '../../src/logger.ts';
import { createMetrics } from '../../src/metrics.ts';

describe('push lane', () => {
  const seen: PushInput[] = [];
  const metrics = createMetrics();
  let url = '';
  let close: () => void;

  beforeAll(async () => {
    const registry = new ApiRegistry();
    registry.add({
      method: 'post', path: '/hooks/:inboxId', tag: 't', auth: 'provider', summary: 'a push', bodyLimitBytes: 1024,
      push: async (input) => {
        seen.push(input);
        const text = input.body.toString();
        if (text === 'refuse') throw new HttpError(401, 'invalid_signature', 'bad signature');
        if (text === 'crash') throw new Error('secret internals at /srv/app.ts:12');
        if (text === 'hang up') return { hangUp: true };
        return { type: 'text/plain', body: `ok ${input.params.inboxId} ${input.querystring}` };
      },
    });
    registry.add({ method: 'get', path: '/hooks/:inboxId', tag: 't', auth: 'provider', summary: 'a check', handler: async () => 'koa' });
    const log = createLogger('silent');
    const app = createHttpApp({ registry, auth: { middleware: () => async (_c: unknown, next: () => Promise<unknown>) => next() } as never, log, metrics, bodyLimitBytes: 1 << 20 });
    const { server } = createHttpServer(app, [], 1 << 16, log, createPushLane(registry.pushRoutes(1 << 20), { log, metrics }));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    close = () => server.close();
  });
  afterAll(() => close());

  const post = (path: string, body: string) => fetch(`${url}${path}`, { method: 'POST', body });

  it('serves its POSTs with the params decoded and the raw query, and leaves the rest to koa', async () => {
    const r = await post('/hooks/inb%5F1?a=1&b=%20', 'hello');
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toBe('text/plain; charset=utf-8');
    expect(await r.text()).toBe('ok inb_1 a=1&b=%20');
    expect(seen.at(-1)!.body.toString()).toBe('hello');
    expect(await (await fetch(`${url}/hooks/inb_1`)).text()).toBe('koa');
    const nested = await post('/hooks/inb_1/extra', 'x');
    expect(nested.status).toBe(404);
    expect(await nested.json()).toEqual({ error: { code: 'not_found', message: 'no such route' } });
    expect((await post('/hooks/', 'x')).status).toBe(404);
  });

  it('refuses a body over the route limit, declared or streamed, before the handler sees it', async () => {
    const before = seen.length;
    const declared = await post('/hooks/inb_1', 'x'.repeat(2000));
    expect(declared.status).toBe(413);
    expect(await declared.json()).toEqual({ error: { code: 'payload_too_large', message: 'request body is larger than 1024 bytes' } });
    // Chunked, with no content-length: stopped once the limit is passed.
    const streamed = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = request(`${url}/hooks/inb_1`, { method: 'POST', headers: { 'transfer-encoding': 'chunked' } }, (res) => {
        let body = '';
        res.on('data', (c) => { body += c; });
        res.on('end', () => resolve({ status: res.statusCode!, body }));
      });
      req.on('error', reject);
      for (let i = 0; i < 4; i += 1) req.write('y'.repeat(500));
      req.end();
    });
    expect(streamed.status).toBe(413);
    expect(JSON.parse(streamed.body).error.code).toBe('payload_too_large');
    expect(seen.length).toBe(before);
  });

  it('answers errors with the one error body and no internals, and hangs up when told to', async () => {
    const refused = await post('/hooks/inb_1', 'refuse');
    expect(refused.status).toBe(401);
    expect(await refused.json()).toEqual({ error: { code: 'invalid_signature', message: 'bad signature' } });
    const crashed = await post('/hooks/inb_1', 'crash');
    expect(crashed.status).toBe(500);
    expect(await crashed.text()).toBe('{"error":{"code":"internal","message":"internal error"}}');
    await expect(post('/hooks/inb_1', 'hang up')).rejects.toThrow();
  });

  it('counts its requests under the route, like koa does', async () => {
    const text = await metrics.registry.metrics();
    expect(text).toMatch(/gateway_http_requests_total\{method="POST",route="\/hooks\/:inboxId",status="200"\} \d+/);
    expect(text).toMatch(/gateway_http_requests_total\{method="POST",route="\/hooks\/:inboxId",status="413"\} 2/);
  });
});

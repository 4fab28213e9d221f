import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCheckedDispatcher, type AddressLookup } from '../../src/events/checkedDispatcher.ts';
import { postWebhook } from '../../src/events/webhookRequest.ts';
import { GatewayAddress, checkWebhookTarget } from '../../src/events/webhookTarget.ts';
import { downloadWechatMedia, WechatMediaRefusedError } from '../../adapters/wechat/wechatMedia.ts';

// A receiver on loopback stands for a service on the gateway's own network.
describe('webhook connections are checked as they are made', () => {
  let server: Server;
  let port = 0;
  const received: { host?: string; path?: string }[] = [];
  beforeAll(async () => {
    server = createServer((request, response) => { received.push({ host: request.headers.host, path: request.url }); response.end('ok'); });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  const request = { headers: { 'content-type': 'application/json' }, body: '{}' };

  it('refuses a name that passed the check and then resolves to a private address (DNS rebinding)', async () => {
    // The first answer is public (what the check before the request saw); the connection's own lookup gets loopback.
    const answers = [['93.184.216.34'], ['127.0.0.1']];
    const rebinding: AddressLookup = async () => answers.shift() ?? ['127.0.0.1'];
    expect(await rebinding('crm.example')).toEqual(['93.184.216.34']);
    const dispatcher = createCheckedDispatcher({ allowPrivate: false, lookup: rebinding });
    try {
      const answer = await postWebhook(`http://crm.example:${port}/rebound`, request, 2000, dispatcher);
      expect(answer.status).toBeUndefined();
      expect(answer.error).toMatch(/crm\.example resolves to a private address \(127\.0\.0\.1\)/);
      expect(answer.refused).toBe(true);
      expect(received.filter((r) => r.path === '/rebound')).toEqual([]);
    } finally {
      await dispatcher.close();
    }
  });

  it('connects to the checked address under the name the URL gave, where private targets are allowed', async () => {
    const dispatcher = createCheckedDispatcher({ allowPrivate: true, lookup: async () => ['127.0.0.1'] });
    try {
      const answer = await postWebhook(`http://crm.internal:${port}/allowed`, request, 2000, dispatcher);
      expect(answer.status).toBe(200);
      expect(received.find((r) => r.path === '/allowed')?.host).toBe(`crm.internal:${port}`);
    } finally {
      await dispatcher.close();
    }
  });

  it('tries the next checked address when the first one does not answer, and checks address literals too', async () => {
    // The receiver listens on 127.0.0.1 only: the first address (::1) refuses or is absent, the second answers.
    const dispatcher = createCheckedDispatcher({ allowPrivate: true, lookup: async () => ['::1', '127.0.0.1'] });
    try {
      const answer = await postWebhook(`http://two-records.internal:${port}/second`, request, 3000, dispatcher);
      expect(answer.status).toBe(200);
      expect(received.find((r) => r.path === '/second')?.host).toBe(`two-records.internal:${port}`);
    } finally {
      await dispatcher.close();
    }
    const strict = createCheckedDispatcher({ allowPrivate: false });
    try {
      const answer = await postWebhook(`http://127.0.0.1:${port}/literal`, request, 2000, strict);
      expect(answer.error).toMatch(/127\.0\.0\.1 resolves to a private address/);
      expect(answer.refused).toBe(true);
      expect(received.filter((r) => r.path === '/literal')).toEqual([]);
    } finally {
      await strict.close();
    }
  });

  it("refuses the gateway's own address at connect time too, allowed private targets or not", async () => {
    const self = new GatewayAddress('https://gateway.example.com', () => port);
    for (const allowPrivate of [true, false]) {
      const dispatcher = createCheckedDispatcher({ allowPrivate, self, lookup: async () => ['127.0.0.1'] });
      try {
        const answer = await postWebhook(`http://innocent.example:${port}/self`, request, 2000, dispatcher);
        expect(answer.error, String(allowPrivate)).toMatch(/resolves to the gateway's own address/);
      } finally {
        await dispatcher.close();
      }
    }
    expect(received.filter((r) => r.path === '/self')).toEqual([]);
    // The check before the request still names a literal private address as refused for good.
    await expect(checkWebhookTarget(`http://127.0.0.1:${port}/`, false)).rejects.toThrow(/private address/);
  });

  it('refuses a WeChat media download whose API host rebinds to a private address, for good', async () => {
    const dispatcher = createCheckedDispatcher({ allowPrivate: false, lookup: async () => ['127.0.0.1'] });
    try {
      const error = await downloadWechatMedia(`http://wechat-proxy.example:${port}`, 'tok-secret', 'm1', 1024, 2000, dispatcher).catch((e: Error) => e);
      expect(error).toBeInstanceOf(WechatMediaRefusedError);
      expect((error as Error).message).toMatch(/resolves to a private address/);
      expect((error as Error).message).not.toContain('tok-secret');
      expect(received.filter((r) => r.path?.startsWith('/cgi-bin'))).toEqual([]);
    } finally {
      await dispatcher.close();
    }
  });
});

// Acceptance: two gateway processes on one Redis fetch the WeChat access_token exactly once. Two
// real `all` processes each send replies at the same time through a local fake WeChat API; the
// fake counts cgi-bin/token requests.
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { wechatSignature } from '../../adapters/wechat/wechatCrypto.ts';
import { waitFor } from '../support/coreFixtures.ts';
import { createTenantOn, newDeployment, startGatewayProcess, type Deployment, type GatewayProcess } from '../support/gatewayProcess.ts';
import type { Tenant } from '../support/testGateway.ts';

const appId = 'wx5823bf96d3bd56c7';
const appSecret = 'app-secret-of-the-shop';
const serverToken = 'wechat-server-token';
const conversationCount = 6;

/**
 * Tokens and custom/send. Each process sends one reply at a time (GATEWAY_WORKER_CONCURRENCY=1), so
 * custom/send is held until two are in flight together: that can only be both processes sending.
 * The token answer is slowed so the other process asks while the first fetch is under way.
 */
async function startFakeWechat() {
  const tokenRequests: string[] = [];
  const sends: { accessToken: string; body: any }[] = [];
  let inFlight = 0;
  let mostInFlight = 0;
  let releaseHeld: () => void = () => undefined;
  const bothSending = new Promise<void>((resolve) => { releaseHeld = resolve; });
  const server: Server = createServer(async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    let raw = '';
    for await (const chunk of req) raw += chunk;
    const json = (answer: object) => { res.setHeader('content-type', 'application/json'); res.end(JSON.stringify(answer)); };
    if (req.method === 'GET' && url.pathname === '/cgi-bin/token') {
      if (url.searchParams.get('appid') !== appId || url.searchParams.get('secret') !== appSecret) return json({ errcode: 40125, errmsg: 'invalid appsecret' });
      const token = `ACCESS_${randomBytes(8).toString('hex')}`;
      tokenRequests.push(token);
      await new Promise((resolve) => setTimeout(resolve, 300));
      return json({ access_token: token, expires_in: 7200 });
    }
    if (req.method === 'POST' && url.pathname === '/cgi-bin/message/custom/send') {
      const accessToken = url.searchParams.get('access_token') ?? '';
      if (!tokenRequests.includes(accessToken)) return json({ errcode: 40001, errmsg: 'invalid credential' });
      // A request its sender gave up on (a timeout, then a retry) no longer counts as in flight.
      let held = true;
      const stopHolding = () => { if (held) { held = false; inFlight--; } };
      res.once('close', stopHolding);
      inFlight++;
      mostInFlight = Math.max(mostInFlight, inFlight);
      if (inFlight >= 2) releaseHeld();
      await bothSending;
      if (!held) return;
      stopHolding();
      sends.push({ accessToken, body: JSON.parse(raw) });
      return json({ errcode: 0, errmsg: 'ok' });
    }
    res.statusCode = 404;
    res.end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    tokenRequests, sends,
    get mostInFlight() { return mostInFlight; },
    close: () => new Promise<void>((resolve) => { releaseHeld(); server.closeAllConnections(); server.close(() => resolve()); }),
  };
}

describe('two gateway processes on one Redis', () => {
  let fake: Awaited<ReturnType<typeof startFakeWechat>>;
  let deployment: Deployment;
  let processes: GatewayProcess[] = [];
  let tenant: Tenant;
  let inboxId: string;

  beforeAll(async () => {
    fake = await startFakeWechat();
    deployment = newDeployment();
    // One send at a time per process (see the fake); loopback allowed for the fake WeChat API.
    const env = { GATEWAY_WORKER_CONCURRENCY: '1', GATEWAY_WEBHOOK_PRIVATE_TARGETS: 'allow', GATEWAY_PROVIDER_PRIVATE_TARGETS: 'allow' };
    processes = await Promise.all([startGatewayProcess(deployment, 'all', { env }), startGatewayProcess(deployment, 'all', { env })]);
    tenant = await createTenantOn(processes[0]!);
    const inbox = await processes[0]!.api('POST', `/api/v1/accounts/${tenant.accountId}/inboxes`, {
      key: tenant.apiKey,
      body: { type: 'wechat', name: 'Shop OA', settings: { apiBaseUrl: fake.url }, credentials: { appId, appSecret, token: serverToken } },
    });
    expect(inbox.status).toBe(201);
    inboxId = inbox.body.id;
  });
  afterAll(async () => {
    await Promise.all(processes.map((p) => p.stop()));
    deployment?.cleanup();
    await fake?.close();
  });

  it('fetch the access_token exactly once while both send replies at the same time', async () => {
    const openIds = Array.from({ length: conversationCount }, (_, i) => `oUser_${i}_${randomBytes(4).toString('hex')}`);
    for (const [i, openId] of openIds.entries()) {
      const timestamp = String(Math.floor(Date.now() / 1000));
      const nonce = randomBytes(6).toString('hex');
      const push = `<xml><ToUserName><![CDATA[gh_shop]]></ToUserName><FromUserName><![CDATA[${openId}]]></FromUserName>`
        + `<CreateTime>${timestamp}</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[question ${i}]]></Content>`
        + `<MsgId>2700000000000${1000 + i}</MsgId></xml>`;
      const query = new URLSearchParams({ timestamp, nonce, signature: wechatSignature(serverToken, timestamp, nonce) });
      const answer = await processes[i % 2]!.api('POST', `/wechat/${inboxId}?${query}`, { raw: push, headers: { 'content-type': 'text/xml' } });
      expect([answer.status, answer.body]).toEqual([200, 'success']);
    }
    const listConversations = async () =>
      (await processes[0]!.api('GET', `/api/v1/accounts/${tenant.accountId}/conversations?limit=200&inboxId=${inboxId}`, { key: tenant.apiKey })).body.items as any[];
    const conversations = await waitFor(listConversations, (items) => items.length === conversationCount, 'every conversation stored');

    // All replies at once, through both web processes.
    const replies = await Promise.all(conversations.map((c, i) => processes[i % 2]!.api('POST',
      `/api/v1/accounts/${tenant.accountId}/conversations/${c.id}/messages`, { key: tenant.apiKey, body: { text: `answer ${i}` } })));
    expect(replies.map((r) => r.status)).toEqual(conversations.map(() => 202));

    const statusOf = async (conversationId: string, messageId: string) =>
      ((await processes[1]!.api('GET', `/api/v1/accounts/${tenant.accountId}/conversations/${conversationId}/messages?limit=200`, { key: tenant.apiKey }))
        .body.items as any[]).find((m) => m.id === messageId)?.status;
    for (const [i, reply] of replies.entries()) {
      expect(await waitFor(() => statusOf(conversations[i].id, reply.body.id), (s) => s !== 'queued', `reply ${i} sent`)).toBe('sent');
    }

    expect(fake.mostInFlight).toBeGreaterThanOrEqual(2);
    expect(fake.sends.map((s) => s.body.touser).sort()).toEqual([...openIds].sort());
    expect(fake.tokenRequests).toHaveLength(1);
    expect(new Set(fake.sends.map((s) => s.accessToken))).toEqual(new Set(fake.tokenRequests));
  }, 120_000);
});

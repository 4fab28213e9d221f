// The shared access_token cache against the test run's real Redis and a local fake token endpoint:
// many callers in two "processes" fetch once, expiry is honoured ahead of time, and invalidation
// drops only the token WeChat refused.
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { InboxRecord } from '../../src/inboxes/inboxDirectory.ts';
import { createRedis } from '../../src/redis/connection.ts';
import { keyspace, type Keyspace } from '../../src/redis/keys.ts';
import { WechatAccessTokens } from '../../src/wechat/wechatAccessTokens.ts';
import { redisUrl } from '../support/testGateway.ts';

const appId = 'wx5823bf96d3bd56c7';
const appSecret = 'app-secret-never-logged';
const credentials = { appId, appSecret, token: 'server-token' };

interface TokenRequest { path: string; query: URLSearchParams; body: string }

/** WeChat's token endpoints: each fetch issues a new token after a short delay (so callers overlap). */
async function startTokenServer() {
  const requests: TokenRequest[] = [];
  let answer: (n: number) => object = (n) => ({ access_token: `tok-${n}`, expires_in: 7200 });
  let hang = false;
  const server: Server = createServer(async (req: IncomingMessage, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    let body = '';
    for await (const chunk of req) body += chunk;
    if (hang) return; // never answers: the caller's timeout decides
    requests.push({ path: url.pathname, query: url.searchParams, body });
    await new Promise((resolve) => setTimeout(resolve, 150));
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify(answer(requests.length)));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    answerWith(next: (n: number) => object) { answer = next; },
    hangUp(on: boolean) { hang = on; },
    close: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}

describe('WeChat access_tokens shared through Redis', () => {
  let fake: Awaited<ReturnType<typeof startTokenServer>>;
  let redisA: Redis;
  let redisB: Redis;
  let keys: Keyspace;
  let inbox: InboxRecord;

  beforeAll(async () => {
    fake = await startTokenServer();
    redisA = createRedis(redisUrl(), 'tokens-a');
    redisB = createRedis(redisUrl(), 'tokens-b');
  });
  afterAll(async () => {
    await fake.close();
    await redisA.quit();
    await redisB.quit();
  });
  beforeEach(() => {
    // A fresh prefix per test: nothing cached, no lock left over.
    keys = keyspace(`t${randomBytes(4).toString('hex')}`);
    inbox = { id: 'inb_1', accountId: 'acc_1', type: 'wechat', settings: { apiBaseUrl: fake.url } } as unknown as InboxRecord;
    fake.requests.length = 0;
    fake.answerWith((n) => ({ access_token: `tok-${n}`, expires_in: 7200 }));
  });

  it('fetches exactly once for 20 concurrent callers in two processes, and caches with the expiry', async () => {
    const processA = new WechatAccessTokens(redisA, keys);
    const processB = new WechatAccessTokens(redisB, keys);
    const tokens = await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 ? processB : processA).getToken(inbox, credentials)));
    expect(new Set(tokens)).toEqual(new Set(['tok-1']));
    expect(fake.requests).toHaveLength(1);
    expect(fake.requests[0]!.path).toBe('/cgi-bin/token');
    expect(Object.fromEntries(fake.requests[0]!.query)).toEqual({ grant_type: 'client_credential', appid: appId, secret: appSecret });

    const key = processA.tokenKey(credentials);
    expect(key.startsWith(`${keys.prefix}:wechat:token:${appId}:`)).toBe(true);
    expect(key).not.toContain(appSecret);
    expect(await redisA.get(key)).toBe('tok-1');
    const ttl = await redisA.pttl(key);
    expect(ttl).toBeGreaterThan(7000 * 1000);
    expect(ttl).toBeLessThanOrEqual(7200 * 1000);
    // A third process starting later reads the cache.
    expect(await new WechatAccessTokens(redisB, keys).getToken(inbox, credentials)).toBe('tok-1');
    expect(fake.requests).toHaveLength(1);
  });

  it('refreshes ahead when less than 5 minutes remain; meanwhile another holder of the lock leaves the current token in use', async () => {
    const tokens = new WechatAccessTokens(redisA, keys);
    expect(await tokens.getToken(inbox, credentials)).toBe('tok-1');
    const key = tokens.tokenKey(credentials);
    await redisA.pexpire(key, 6 * 60_000);
    expect(await tokens.getToken(inbox, credentials)).toBe('tok-1');
    expect(fake.requests).toHaveLength(1);

    await redisA.pexpire(key, 4 * 60_000);
    // Another process holds the fetch lock: the still-valid token serves, nothing is fetched.
    await redisB.set(`${key}:lock`, 'other-process', 'PX', 60_000);
    expect(await new WechatAccessTokens(redisB, keys).getToken(inbox, credentials)).toBe('tok-1');
    expect(fake.requests).toHaveLength(1);
    await redisB.del(`${key}:lock`);

    expect(await tokens.getToken(inbox, credentials)).toBe('tok-2');
    expect(fake.requests).toHaveLength(2);
    expect(await redisA.pttl(key)).toBeGreaterThan(7000 * 1000);
  });

  it('makes callers wait for the lock holder when there is no token, rather than fetching themselves', async () => {
    const tokens = new WechatAccessTokens(redisA, keys, { waitMs: 30_000 });
    const key = tokens.tokenKey(credentials);
    await redisB.set(`${key}:lock`, 'other-process', 'PX', 60_000);
    const waiting = Promise.all([tokens.getToken(inbox, credentials), new WechatAccessTokens(redisB, keys).getToken(inbox, credentials)]);
    await new Promise((resolve) => setTimeout(resolve, 300));
    // The "other process" finishes its fetch.
    await redisB.set(key, 'tok-from-other', 'PX', 7_200_000);
    await redisB.del(`${key}:lock`);
    expect(await waiting).toEqual(['tok-from-other', 'tok-from-other']);
    expect(fake.requests).toHaveLength(0);
  });

  it('invalidate drops only the token WeChat refused, not one already replaced', async () => {
    const processA = new WechatAccessTokens(redisA, keys);
    const processB = new WechatAccessTokens(redisB, keys);
    expect(await processA.getToken(inbox, credentials)).toBe('tok-1');
    await processB.invalidate(inbox, credentials, 'tok-1');
    expect(await processB.getToken(inbox, credentials)).toBe('tok-2');
    // A late report about tok-1 from process A leaves B's fresh token alone.
    await processA.invalidate(inbox, credentials, 'tok-1');
    expect(await processA.getToken(inbox, credentials)).toBe('tok-2');
    expect(fake.requests).toHaveLength(2);
  });

  it('keeps tokens of different secrets for one appId apart', async () => {
    const tokens = new WechatAccessTokens(redisA, keys);
    expect(await tokens.getToken(inbox, credentials)).toBe('tok-1');
    fake.answerWith(() => ({ errcode: 40001, errmsg: 'invalid credential' }));
    await expect(tokens.getToken(inbox, { ...credentials, appSecret: 'someone-guessing' })).rejects.toThrow(/40001/);
  });

  it('uses stable_token when the inbox asks for it', async () => {
    const tokens = new WechatAccessTokens(redisA, keys);
    const stableInbox = { ...inbox, settings: { apiBaseUrl: fake.url, tokenMode: 'stable_token' } } as InboxRecord;
    expect(await tokens.getToken(stableInbox, credentials)).toBe('tok-1');
    expect(fake.requests[0]!.path).toBe('/cgi-bin/stable_token');
    expect(JSON.parse(fake.requests[0]!.body)).toEqual({ grant_type: 'client_credential', appid: appId, secret: appSecret, force_refresh: false });
  });

  it("turns the token endpoint's errcode into a clear error without the secret, and frees the lock", async () => {
    const tokens = new WechatAccessTokens(redisA, keys);
    fake.answerWith(() => ({ errcode: 40125, errmsg: 'invalid appsecret' }));
    const error = await tokens.getToken(inbox, credentials).then(() => new Error('expected a failure'), (e: Error) => e);
    expect(error.message).toMatch(/access_token request for appId wx5823bf96d3bd56c7: WeChat errcode 40125 \(invalid appsecret\)/);
    expect(error.message).not.toContain(appSecret);
    expect(await redisA.exists(`${tokens.tokenKey(credentials)}:lock`)).toBe(0);
    fake.answerWith((n) => ({ access_token: `tok-${n}`, expires_in: 7200 }));
    expect(await tokens.getToken(inbox, credentials)).toBe('tok-2');
  });

  it('keeps serving the current token when a refresh ahead of time fails', async () => {
    const tokens = new WechatAccessTokens(redisA, keys);
    expect(await tokens.getToken(inbox, credentials)).toBe('tok-1');
    await redisA.pexpire(tokens.tokenKey(credentials), 4 * 60_000);
    fake.answerWith(() => ({ errcode: -1, errmsg: 'system error' }));
    expect(await tokens.getToken(inbox, credentials)).toBe('tok-1');
    // The failed refresh holds the lock until it lapses: the next caller does not ask WeChat again.
    expect(await tokens.getToken(inbox, credentials)).toBe('tok-1');
    expect(fake.requests).toHaveLength(2);
  });

  it('gives up on a token endpoint that does not answer, with a timeout error', async () => {
    const tokens = new WechatAccessTokens(redisA, keys, { httpTimeoutMs: 300 });
    fake.hangUp(true);
    try {
      await expect(tokens.getToken(inbox, credentials)).rejects.toThrow(/did not answer within/);
    } finally {
      fake.hangUp(false);
    }
  });
});

// Inbound WeChat media end to end against a local fake WeChat API (the inbox's apiBaseUrl): after the
// push is answered, each media id is fetched through media/get, stored, and the attachment's url
// points at the gateway, which serves the same bytes to the account's agents and to no other account.
import { mkdtempSync, rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { wechatSignature } from '../../adapters/wechat/wechatCrypto.ts';
import { InboundAcceptor } from '../../src/ingest/acceptInbound.ts';
import { mediaKeyFor } from '../../src/media/mediaStore.ts';
import { waitFor } from '../support/coreFixtures.ts';
import { createTenant, startTestGateway, type Tenant, type TestGateway } from '../support/testGateway.ts';

const appId = 'wx5823bf96d3bd56c7';
const appSecret = 'app-secret-of-the-shop';
const serverToken = 'wechat-server-token';

interface Medium { bytes: Buffer; contentType: string }

/** Tokens and media/get; a media id it does not hold answers 40007, as WeChat does. */
async function startFakeWechat(media: Map<string, Medium>) {
  const tokenRequests: string[] = [];
  const mediaRequests: string[] = [];
  const valid = new Set<string>();
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const json = (answer: object) => { res.setHeader('content-type', 'text/plain'); res.end(JSON.stringify(answer)); };
    if (url.pathname === '/cgi-bin/token') {
      if (url.searchParams.get('appid') !== appId || url.searchParams.get('secret') !== appSecret) return json({ errcode: 40125, errmsg: 'invalid appsecret' });
      const token = `ACCESS_${randomBytes(8).toString('hex')}`;
      tokenRequests.push(token);
      valid.add(token);
      return json({ access_token: token, expires_in: 7200 });
    }
    if (url.pathname === '/cgi-bin/media/get') {
      const mediaId = url.searchParams.get('media_id') ?? '';
      mediaRequests.push(mediaId);
      if (!valid.has(url.searchParams.get('access_token') ?? '')) return json({ errcode: 42001, errmsg: 'access_token expired' });
      const medium = media.get(mediaId);
      if (!medium) return json({ errcode: 40007, errmsg: 'invalid media_id' });
      res.setHeader('content-type', medium.contentType);
      res.setHeader('content-disposition', `attachment; filename="${mediaId}"`);
      return res.end(medium.bytes);
    }
    res.statusCode = 404;
    res.end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    tokenRequests, mediaRequests,
    expireTokens() { valid.clear(); },
    close: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}

const xml = (openId: string, type: string, fields: string, msgId: string) =>
  `<xml><ToUserName><![CDATA[gh_shop]]></ToUserName><FromUserName><![CDATA[${openId}]]></FromUserName>`
  + `<CreateTime>${Math.floor(Date.now() / 1000)}</CreateTime><MsgType><![CDATA[${type}]]></MsgType>${fields}<MsgId>${msgId}</MsgId></xml>`;

async function createWechatInbox(t: TestGateway, tenant: Tenant, apiBaseUrl: string): Promise<string> {
  const inbox = await t.api('POST', `/api/v1/accounts/${tenant.accountId}/inboxes`, {
    key: tenant.apiKey, body: { type: 'wechat', name: 'Shop OA', settings: { apiBaseUrl }, credentials: { appId, appSecret, token: serverToken } },
  });
  expect(inbox.status).toBe(201);
  return inbox.body.id;
}

async function push(t: TestGateway, inboxId: string, body: string) {
  const timestamp = String(Math.floor(Date.now() / 1000));
  const nonce = randomBytes(6).toString('hex');
  const query = new URLSearchParams({ timestamp, nonce, signature: wechatSignature(serverToken, timestamp, nonce) });
  const answer = await t.api('POST', `/wechat/${inboxId}?${query}`, { raw: body, headers: { 'content-type': 'text/xml' } });
  expect([answer.status, answer.body]).toEqual([200, 'success']);
}

/** The stored message (as agents read it) once ingested. */
async function storedMessage(t: TestGateway, inboxId: string, msgId: string) {
  const id = InboundAcceptor.messageIdFor(inboxId, msgId);
  const fields = await waitFor(() => t.gateway.redis.hget(t.gateway.keys.message(id), 'body'), (b) => !!b, `message ${msgId} stored`);
  return JSON.parse(fields!);
}

/** True once the inbound queue holds no job (completed jobs are removed), failed ones included. */
async function inboundQueueIdle(t: TestGateway): Promise<Record<string, number>> {
  return t.gateway.queues.inbound.getJobCounts('waiting', 'active', 'delayed', 'prioritized', 'failed');
}

describe('inbound WeChat media, end to end', () => {
  const media = new Map<string, Medium>();
  let fake: Awaited<ReturnType<typeof startFakeWechat>>;
  let dataDir: string;
  let t: TestGateway;
  let tenant: Tenant;
  let other: Tenant;
  let inboxId: string;
  const openId = `oUser_${randomBytes(4).toString('hex')}`;

  beforeAll(async () => {
    fake = await startFakeWechat(media);
    dataDir = mkdtempSync(join(tmpdir(), 'gateway-media-e2e-'));
    t = await startTestGateway({ GATEWAY_DATA_DIR: dataDir });
    tenant = await createTenant(t);
    other = await createTenant(t);
    inboxId = await createWechatInbox(t, tenant, fake.url);
  });
  afterAll(async () => {
    await t?.stop();
    await fake?.close();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  const agentGet = (path: string, key = tenant.agentToken) => fetch(`${t.url}${path}`, { headers: { authorization: `Bearer ${key}` } });

  it("stores a pushed image and serves the same bytes at the attachment's url to the account's agent", async () => {
    const photo = { bytes: randomBytes(50_000), contentType: 'image/jpeg' };
    media.set('img-1', photo);
    await push(t, inboxId, xml(openId, 'image', '<PicUrl><![CDATA[http://mmbiz.qpic.cn/p1]]></PicUrl><MediaId><![CDATA[img-1]]></MediaId>', '25000000000000001'));

    const path = `/api/v1/accounts/${tenant.accountId}/media/${mediaKeyFor(tenant.accountId, 'img-1')}`;
    const message = await waitFor(() => storedMessage(t, inboxId, '25000000000000001'),
      (m) => m.content.attachments[0].url === path, 'the attachment url set to the gateway');
    expect(message.content.attachments).toEqual([{ url: path, mediaId: 'img-1', contentType: 'image/jpeg', size: 50_000 }]);

    // What an agent reads in the conversation's history is the same.
    const conversation = (await t.api('GET', `/api/v1/accounts/${tenant.accountId}/conversations?inboxId=${inboxId}`, { key: tenant.agentToken })).body.items[0];
    const history = await t.api('GET', `/api/v1/accounts/${tenant.accountId}/conversations/${conversation.id}/messages`, { key: tenant.agentToken });
    expect(history.body.items.find((m: any) => m.externalId === '25000000000000001').content.attachments[0].url).toBe(path);

    const served = await agentGet(path);
    expect(served.status).toBe(200);
    expect(served.headers.get('content-type')).toBe('image/jpeg');
    expect(Buffer.from(await served.arrayBuffer()).equals(photo.bytes)).toBe(true);
    expect((await agentGet(path, tenant.apiKey)).status).toBe(200);
    expect(fake.mediaRequests.filter((id) => id === 'img-1')).toHaveLength(1);
  });

  it('stores a voice note, and a video with its thumbnail (two media ids on one message)', async () => {
    media.set('voice-1', { bytes: randomBytes(3000), contentType: 'audio/amr' });
    media.set('video-1', { bytes: randomBytes(200_000), contentType: 'video/mp4' });
    media.set('thumb-1', { bytes: randomBytes(4000), contentType: 'image/jpeg' });
    await push(t, inboxId, xml(openId, 'voice', '<MediaId><![CDATA[voice-1]]></MediaId><Format><![CDATA[amr]]></Format>', '25000000000000002'));
    await push(t, inboxId, xml(openId, 'video', '<MediaId><![CDATA[video-1]]></MediaId><ThumbMediaId><![CDATA[thumb-1]]></ThumbMediaId>', '25000000000000003'));

    const urlOf = (mediaId: string) => `/api/v1/accounts/${tenant.accountId}/media/${mediaKeyFor(tenant.accountId, mediaId)}`;
    const voice = await waitFor(() => storedMessage(t, inboxId, '25000000000000002'), (m) => !!m.content.attachments[0].url, 'the voice url');
    expect(voice.content.attachments[0]).toMatchObject({ url: urlOf('voice-1'), mediaId: 'voice-1', contentType: 'audio/amr' });
    const video = await waitFor(() => storedMessage(t, inboxId, '25000000000000003'),
      (m) => m.content.attachments.every((a: any) => a.url), 'both video urls');
    expect(video.content.attachments).toEqual([
      { url: urlOf('video-1'), mediaId: 'video-1', contentType: 'video/mp4', size: 200_000 },
      { url: urlOf('thumb-1'), mediaId: 'thumb-1', contentType: 'image/jpeg', name: 'thumbnail', size: 4000 },
    ]);
    for (const id of ['voice-1', 'video-1', 'thumb-1']) {
      const served = await agentGet(urlOf(id));
      expect(served.headers.get('content-type')).toBe(media.get(id)!.contentType);
      expect(Buffer.from(await served.arrayBuffer()).equals(media.get(id)!.bytes)).toBe(true);
    }
  });

  it('leaves the mediaId without a url when WeChat answers 40007, and asks only once', async () => {
    await push(t, inboxId, xml(openId, 'image', '<PicUrl><![CDATA[http://mmbiz.qpic.cn/p2]]></PicUrl><MediaId><![CDATA[expired-1]]></MediaId>', '25000000000000004'));
    await waitFor(async () => fake.mediaRequests.filter((id) => id === 'expired-1').length, (n) => n > 0, 'media/get asked');
    const counts = await waitFor(() => inboundQueueIdle(t), (c) => c.waiting + c.active + c.delayed + c.prioritized === 0, 'the media job finished');
    expect(counts.failed).toBe(0);
    const message = await storedMessage(t, inboxId, '25000000000000004');
    expect(message.content.attachments).toEqual([{ url: 'http://mmbiz.qpic.cn/p2', mediaId: 'expired-1', contentType: 'image/jpeg' }]);
    expect(fake.mediaRequests.filter((id) => id === 'expired-1')).toHaveLength(1);
  });

  it('refreshes an expired token once and still stores the file', async () => {
    media.set('img-2', { bytes: randomBytes(1000), contentType: 'image/png' });
    const tokensBefore = fake.tokenRequests.length;
    fake.expireTokens();
    await push(t, inboxId, xml(openId, 'image', '<PicUrl><![CDATA[http://mmbiz.qpic.cn/p3]]></PicUrl><MediaId><![CDATA[img-2]]></MediaId>', '25000000000000005'));
    const message = await waitFor(() => storedMessage(t, inboxId, '25000000000000005'), (m) => m.content.attachments[0].url?.startsWith('/api/'), 'the url set');
    expect(message.content.attachments[0].contentType).toBe('image/jpeg');
    expect((await agentGet(message.content.attachments[0].url)).headers.get('content-type')).toBe('image/png');
    expect(fake.tokenRequests.length - tokensBefore).toBe(1);
    expect(fake.mediaRequests.filter((id) => id === 'img-2')).toHaveLength(2);
  });

  it("answers 404 for another account's media, whichever key and path are tried", async () => {
    const key = mediaKeyFor(tenant.accountId, 'img-1');
    // The other account's credentials on this account's path, and on its own path with this key.
    expect((await agentGet(`/api/v1/accounts/${tenant.accountId}/media/${key}`, other.apiKey)).status).toBe(404);
    expect((await agentGet(`/api/v1/accounts/${tenant.accountId}/media/${key}`, other.agentToken)).status).toBe(404);
    expect((await agentGet(`/api/v1/accounts/${other.accountId}/media/${key}`, other.apiKey)).status).toBe(404);
    expect((await agentGet(`/api/v1/accounts/${other.accountId}/media/${key}`, other.agentToken)).status).toBe(404);
    expect((await agentGet(`/api/v1/accounts/${tenant.accountId}/media/not-a-key`)).status).toBe(404);
    expect((await fetch(`${t.url}/api/v1/accounts/${tenant.accountId}/media/${key}`)).status).toBe(401);
  });
});

describe('inbound WeChat media with private targets denied', () => {
  let fake: Awaited<ReturnType<typeof startFakeWechat>>;
  let dataDir: string;
  let t: TestGateway;

  beforeAll(async () => {
    fake = await startFakeWechat(new Map([['img-1', { bytes: randomBytes(100), contentType: 'image/jpeg' }]]));
    dataDir = mkdtempSync(join(tmpdir(), 'gateway-media-e2e-'));
    t = await startTestGateway({ GATEWAY_DATA_DIR: dataDir, GATEWAY_PROVIDER_PRIVATE_TARGETS: 'deny' });
  });
  afterAll(async () => {
    await t?.stop();
    await fake?.close();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  it('never fetches from an apiBaseUrl on a private address, since the file would be served back to the tenant', async () => {
    const tenant = await createTenant(t);
    const inboxId = await createWechatInbox(t, tenant, fake.url);
    await push(t, inboxId, xml('oUser_private', 'image', '<PicUrl><![CDATA[http://mmbiz.qpic.cn/p]]></PicUrl><MediaId><![CDATA[img-1]]></MediaId>', '26000000000000001'));
    await storedMessage(t, inboxId, '26000000000000001');
    const counts = await waitFor(() => inboundQueueIdle(t), (c) => c.waiting + c.active + c.delayed + c.prioritized === 0, 'the media job finished');
    expect(counts.failed).toBe(0);
    expect((await storedMessage(t, inboxId, '26000000000000001')).content.attachments[0].url).toBe('http://mmbiz.qpic.cn/p');
    expect(fake.mediaRequests).toEqual([]);
    expect(fake.tokenRequests).toEqual([]);
  });
});

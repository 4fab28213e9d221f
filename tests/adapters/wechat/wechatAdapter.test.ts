// The WeChat adapter's sends against a nock-faked customer-service API: the request WeChat receives
// for each content type, and what each errcode becomes (a permanent failure, a token refresh, a retry).
import nock from 'nock';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { PermanentSendError, SendOutcomeUnknownError, type DeliverOnce, type SendRequest } from '../../../adapters/channelAdapter.ts';
import { WechatAdapter, type AttachmentSource, type WechatTokenSource } from '../../../adapters/wechat/wechatAdapter.ts';
import type { InboxRecord } from '../../../src/inboxes/inboxDirectory.ts';
import type { MessageContent } from '../../../src/schema/message.ts';

const api = 'https://api.weixin.qq.com';
const openId = 'oUser_OpenId-1';
const credentials = { appId: 'wx5823bf96d3bd56c7', appSecret: 'app-secret-never-logged', token: 'server-token' };
const inbox = {
  id: 'inb_1', accountId: 'acc_1', type: 'wechat', name: 'Shop OA', enabled: true, settings: {},
  credentialNames: [], sealedCredentials: '', createdAt: '', updatedAt: '',
} as InboxRecord;

/** Hands out tok-1, then tok-2 after an invalidation, and records every call. */
function fakeTokens() {
  let current = 1;
  const calls = { get: 0, invalidated: [] as string[] };
  const source: WechatTokenSource = {
    getToken: async () => { calls.get++; return `tok-${current}`; },
    invalidate: async (_inbox, _credentials, bad) => { calls.invalidated.push(bad); if (bad === `tok-${current}`) current++; },
  };
  return { source, calls };
}

const request = (content: MessageContent): SendRequest => ({
  inbox, credentials, to: openId,
  message: {
    id: 'msg_1', accountId: 'acc_1', inboxId: 'inb_1', channel: 'wechat', direction: 'outbound', conversationId: 'cv_1', contactId: 'ct_1',
    seq: 2, from: { channelId: 'inb_1' }, to: { channelId: openId }, sentAt: '', receivedAt: '', content, status: 'queued',
  },
});

/** Expects one custom/send with this token and answers it; the parsed body is kept. */
function customSend(token: string, answer: object, bodies: unknown[] = []) {
  return nock(api).post('/cgi-bin/message/custom/send', (body) => { bodies.push(body); return true; })
    .query({ access_token: token }).reply(200, answer);
}

const ok = { errcode: 0, errmsg: 'ok' };

/** The error a send ends with (a send that succeeds fails the test). */
const failure = (sending: Promise<unknown>) => sending.then(
  (result) => { throw new Error(`expected a failure, got ${JSON.stringify(result)}`); },
  (error: Error) => error,
);

describe('WeChat adapter: customer-service sends', () => {
  beforeAll(() => { nock.disableNetConnect(); });
  afterEach(() => {
    const pending = nock.pendingMocks();
    nock.cleanAll();
    expect(pending).toEqual([]);
  });

  it('sends text to the OpenID as a customer-service text message', async () => {
    const { source } = fakeTokens();
    const bodies: unknown[] = [];
    customSend('tok-1', ok, bodies);
    const result = await new WechatAdapter(source).send(request({ type: 'text', text: '您好，订单已发货' }));
    expect(result).toEqual({ status: 'sent' });
    expect(bodies).toEqual([{ touser: openId, msgtype: 'text', text: { content: '您好，订单已发货' } }]);
  });

  it('uses the inbox apiBaseUrl when set', async () => {
    const { source } = fakeTokens();
    nock('http://wechat-proxy.example:8080').post('/base/cgi-bin/message/custom/send').query({ access_token: 'tok-1' }).reply(200, ok);
    const proxied = { ...request({ type: 'text', text: 'hi' }), inbox: { ...inbox, settings: { apiBaseUrl: 'http://wechat-proxy.example:8080/base/' } } };
    expect(await new WechatAdapter(source).send(proxied)).toEqual({ status: 'sent' });
  });

  it('fails 45015 (48-hour window passed) permanently, with a reason the agent can read', async () => {
    const { source } = fakeTokens();
    customSend('tok-1', { errcode: 45015, errmsg: 'response out of time limit or subscription is canceled' });
    const error = await new WechatAdapter(source).send(request({ type: 'text', text: 'too late' })).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PermanentSendError);
    expect(error).toMatchObject({ code: '45015', message: expect.stringMatching(/more than 48 hours ago.*\(45015\)/) });
  });

  it('fails 40003 (bad OpenID) permanently', async () => {
    const { source } = fakeTokens();
    customSend('tok-1', { errcode: 40003, errmsg: 'invalid openid' });
    await expect(new WechatAdapter(source).send(request({ type: 'text', text: 'x' }))).rejects.toMatchObject({ code: '40003' });
  });

  it('on 40001 drops the token, gets one fresh token and retries exactly once', async () => {
    const { source, calls } = fakeTokens();
    const bodies: unknown[] = [];
    customSend('tok-1', { errcode: 40001, errmsg: 'invalid credential, access_token is invalid or not latest' }, bodies);
    customSend('tok-2', ok, bodies);
    expect(await new WechatAdapter(source).send(request({ type: 'text', text: 'again' }))).toEqual({ status: 'sent' });
    expect(calls).toEqual({ get: 2, invalidated: ['tok-1'] });
    expect(bodies).toHaveLength(2);
  });

  it('when the fresh token is refused too (42001), gives up this attempt with a retryable error', async () => {
    const { source, calls } = fakeTokens();
    customSend('tok-1', { errcode: 42001, errmsg: 'access_token expired' });
    customSend('tok-2', { errcode: 40014, errmsg: 'invalid access_token' });
    const error = await new WechatAdapter(source).send(request({ type: 'text', text: 'x' })).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Error);
    expect(error).not.toBeInstanceOf(PermanentSendError);
    expect((error as Error).message).toMatch(/40014/);
    expect((error as Error).message).not.toMatch(/tok-/);
    expect(calls).toEqual({ get: 2, invalidated: ['tok-1'] });
  });

  it('leaves 45047 (too many sends) and 45009 (daily quota) to be retried with backoff, naming the code', async () => {
    for (const errcode of [45047, 45009]) {
      const { source } = fakeTokens();
      customSend('tok-1', { errcode, errmsg: 'out of limit' });
      const error = await new WechatAdapter(source).send(request({ type: 'text', text: 'x' })).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(Error);
      expect(error).not.toBeInstanceOf(PermanentSendError);
      expect((error as Error).message).toContain(String(errcode));
    }
  });

  it('retries other errcodes and a WeChat it could not reach, never showing the access_token', async () => {
    const { source } = fakeTokens();
    customSend('tok-1', { errcode: -1, errmsg: 'system error' });
    const busy = await failure(new WechatAdapter(source).send(request({ type: 'text', text: 'x' })));
    expect(busy).not.toBeInstanceOf(PermanentSendError);
    expect(busy).not.toBeInstanceOf(SendOutcomeUnknownError);
    expect(busy.message).toMatch(/errcode -1/);
    nock(api).post('/cgi-bin/message/custom/send').query(true).replyWithError({ code: 'ECONNREFUSED', message: `connect ECONNREFUSED ${api}/?access_token=tok-1` });
    const down = await failure(new WechatAdapter(source).send(request({ type: 'text', text: 'x' })));
    expect(down).not.toBeInstanceOf(PermanentSendError);
    expect(down).not.toBeInstanceOf(SendOutcomeUnknownError);
    expect(down.message).toMatch(/could not be reached/);
    expect(down.message).not.toMatch(/tok-1/);
    // A connect that timed out, or a TLS handshake that failed, never carried the request either.
    for (const code of ['UND_ERR_CONNECT_TIMEOUT', 'CERT_HAS_EXPIRED', 'ERR_TLS_CERT_ALTNAME_INVALID']) {
      nock(api).post('/cgi-bin/message/custom/send').query(true).replyWithError({ code, message: code });
      const never = await failure(new WechatAdapter(source).send(request({ type: 'text', text: 'x' })));
      expect(never).not.toBeInstanceOf(SendOutcomeUnknownError);
      expect(never.message).toMatch(new RegExp(`could not be reached \\(${code}\\)`));
    }
  });

  it('a custom/send that may have reached WeChat unanswered (connection reset, 5xx) is an unknown outcome, not a retry', async () => {
    const { source } = fakeTokens();
    nock(api).post('/cgi-bin/message/custom/send').query(true).replyWithError({ code: 'ECONNRESET', message: `socket hang up ${api}/?access_token=tok-1` });
    const reset = await failure(new WechatAdapter(source).send(request({ type: 'text', text: 'x' })));
    expect(reset).toBeInstanceOf(SendOutcomeUnknownError);
    expect(reset.message).toMatch(/failed before it answered \(ECONNRESET\)/);
    expect(reset.message).not.toMatch(/tok-1/);
    nock(api).post('/cgi-bin/message/custom/send').query(true).reply(502, 'Bad Gateway');
    const gateway = await failure(new WechatAdapter(source).send(request({ type: 'text', text: 'x' })));
    expect(gateway).toBeInstanceOf(SendOutcomeUnknownError);
    expect(gateway.message).toMatch(/HTTP 502/);
  });

  it('a custom/send unanswered within the timeout is an unknown outcome; a media upload unanswered before it is retried', async () => {
    const { source } = fakeTokens();
    const files: AttachmentSource = { load: async () => ({ bytes: new Uint8Array([0xff, 0xd8, 0xff]), contentType: 'image/jpeg' }) };
    const adapter = new WechatAdapter(source, files, { timeoutMs: 200 });
    const wrapped: number[] = [];
    const deliverOnce: DeliverOnce = async (call, longestMs) => { wrapped.push(longestMs); return call(); };
    nock(api).post('/cgi-bin/message/custom/send').query(true).delay(2_000).reply(200, ok);
    const silent = await failure(adapter.send({ ...request({ type: 'text', text: 'x' }), deliverOnce }));
    expect(silent).toBeInstanceOf(SendOutcomeUnknownError);
    expect(silent.message).toBe('custom/send: WeChat did not answer within 0.2 s');
    expect(wrapped).toEqual([200]);
    // The upload delivers nothing: a retry is safe, and no custom/send follows it (nock would fail an unexpected one).
    nock(api).post('/cgi-bin/media/upload').query(true).delay(2_000).reply(200, { type: 'image', media_id: 'MEDIA_late' });
    const uploadSilent = await failure(adapter.send({ ...request({ type: 'image', attachments: [{ url: 'https://files.test/a.jpg', contentType: 'image/jpeg' }] }), deliverOnce }));
    expect(uploadSilent).not.toBeInstanceOf(SendOutcomeUnknownError);
    expect(uploadSilent).not.toBeInstanceOf(PermanentSendError);
    expect(uploadSilent.message).toBe('media/upload: WeChat did not answer within 0.2 s');
    expect(wrapped).toEqual([200]);
  });

  it('wraps only the delivering custom/send in deliverOnce: the token fetch and media upload before it are not', async () => {
    const { source, calls } = fakeTokens();
    const wrapped: { longestMs: number; tokenCallsBefore: number }[] = [];
    const deliverOnce: DeliverOnce = async (call, longestMs) => { wrapped.push({ longestMs, tokenCallsBefore: calls.get }); return call(); };
    nock(api).post('/cgi-bin/media/upload').query({ access_token: 'tok-1', type: 'image' }).reply(200, { type: 'image', media_id: 'MEDIA_1' });
    const bodies: unknown[] = [];
    customSend('tok-1', ok, bodies);
    const files: AttachmentSource = { load: async () => ({ bytes: new Uint8Array([0xff, 0xd8, 0xff]), contentType: 'image/jpeg' }) };
    await new WechatAdapter(source, files).send({ ...request({ type: 'image', attachments: [{ url: 'https://files.test/a.jpg', contentType: 'image/jpeg' }] }), deliverOnce });
    expect(wrapped).toEqual([{ longestMs: 10_000, tokenCallsBefore: 1 }]);
    expect(bodies).toEqual([{ touser: openId, msgtype: 'image', image: { media_id: 'MEDIA_1' } }]);
    // A stale token is a definite refusal: each custom/send is wrapped on its own, the retry with a fresh token too.
    wrapped.length = 0;
    customSend('tok-1', { errcode: 40001, errmsg: 'invalid credential' });
    customSend('tok-2', ok);
    await new WechatAdapter(source).send({ ...request({ type: 'text', text: 'again' }), deliverOnce });
    expect(wrapped.map((w) => w.longestMs)).toEqual([10_000, 10_000]);
  });

  it('sends link content as news with one article', async () => {
    const { source } = fakeTokens();
    const bodies: unknown[] = [];
    customSend('tok-1', ok, bodies);
    await new WechatAdapter(source).send(request({
      type: 'link', link: { title: 'Your order #42', description: 'Shipped today', url: 'https://shop.example/o/42' },
      attachments: [{ url: 'https://shop.example/o/42.jpg', contentType: 'image/jpeg' }],
    }));
    expect(bodies).toEqual([{
      touser: openId, msgtype: 'news',
      news: { articles: [{ title: 'Your order #42', description: 'Shipped today', url: 'https://shop.example/o/42', picurl: 'https://shop.example/o/42.jpg' }] },
    }]);
  });

  it('sends an image, voice or video that already has a media id directly', async () => {
    const { source } = fakeTokens();
    const bodies: unknown[] = [];
    customSend('tok-1', ok, bodies);
    customSend('tok-1', ok, bodies);
    customSend('tok-1', ok, bodies);
    const adapter = new WechatAdapter(source);
    await adapter.send(request({ type: 'image', attachments: [{ mediaId: 'MEDIA_img', contentType: 'image/jpeg' }] }));
    await adapter.send(request({ type: 'audio', attachments: [{ mediaId: 'MEDIA_voice', contentType: 'audio/amr' }] }));
    await adapter.send(request({
      type: 'video', subject: 'How to return', text: 'Two minutes',
      attachments: [{ mediaId: 'MEDIA_video', contentType: 'video/mp4' }, { mediaId: 'MEDIA_thumb', contentType: 'image/jpeg', name: 'thumbnail' }],
    }));
    expect(bodies).toEqual([
      { touser: openId, msgtype: 'image', image: { media_id: 'MEDIA_img' } },
      { touser: openId, msgtype: 'voice', voice: { media_id: 'MEDIA_voice' } },
      { touser: openId, msgtype: 'video', video: { media_id: 'MEDIA_video', thumb_media_id: 'MEDIA_thumb', title: 'How to return', description: 'Two minutes' } },
    ]);
  });

  it('uploads an image that has only a URL as temporary media first, then sends its media_id', async () => {
    const { source } = fakeTokens();
    const loads: [string | undefined, number][] = [];
    const attachments: AttachmentSource = {
      load: async (attachment, maxBytes) => { loads.push([attachment.url, maxBytes]); return { bytes: Buffer.from('\xff\xd8fake-jpeg'), contentType: 'image/jpeg' }; },
    };
    let uploaded = '';
    nock(api).post('/cgi-bin/media/upload', (body: string) => { uploaded = body; return true; })
      .query({ access_token: 'tok-1', type: 'image' }).reply(200, { type: 'image', media_id: 'MEDIA_uploaded', created_at: 1714036504 });
    const bodies: unknown[] = [];
    customSend('tok-1', ok, bodies);
    await new WechatAdapter(source, attachments).send(request({ type: 'image', attachments: [{ url: 'https://files.example/p.jpg', contentType: 'image/jpeg' }] }));
    expect(loads).toEqual([['https://files.example/p.jpg', 10 * 1024 * 1024]]);
    expect(uploaded).toMatch(/name="media"; filename="image\.jpg"/);
    expect(uploaded).toContain('fake-jpeg');
    expect(bodies).toEqual([{ touser: openId, msgtype: 'image', image: { media_id: 'MEDIA_uploaded' } }]);
  });

  it('refuses, permanently and clearly, what WeChat cannot carry', async () => {
    const adapter = new WechatAdapter(fakeTokens().source);
    const cases: [MessageContent, string, RegExp][] = [
      [{ type: 'image', attachments: [{ url: 'https://files.example/p.jpg', contentType: 'image/jpeg' }] }, 'unsupported_content', /cannot fetch attachment URLs/],
      [{ type: 'image', attachments: [{ contentType: 'image/jpeg' }] }, 'unsupported_content', /mediaId or a URL/],
      [{ type: 'image', text: 'caption', attachments: [{ mediaId: 'm', contentType: 'image/jpeg' }] }, 'unsupported_content', /separate reply/],
      [{ type: 'file', attachments: [{ mediaId: 'm', contentType: 'application/pdf' }] }, 'unsupported_content', /file content/],
      [{ type: 'location', location: { lat: 1, lng: 2 } }, 'unsupported_content', /location/],
      [{ type: 'text', text: '  ' }, 'unsupported_content', /needs text/],
    ];
    for (const [content, code, message] of cases) {
      const error = await adapter.send(request(content)).catch((e: unknown) => e);
      expect(error, content.type).toBeInstanceOf(PermanentSendError);
      expect(error, content.type).toMatchObject({ code, message: expect.stringMatching(message) });
    }
    const noSecret = await adapter.send({ ...request({ type: 'text', text: 'x' }), credentials: { appId: 'wx1' } }).catch((e: unknown) => e);
    expect(noSecret).toMatchObject({ code: 'invalid_credentials' });
  });
});

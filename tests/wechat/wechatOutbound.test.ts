// WeChat replies end to end against a local fake WeChat API (the inbox's apiBaseUrl): a user's
// message reaches the agent, the agent's reply arrives at custom/send with a valid token, a token
// that expires mid-conversation is refreshed once, and a 45015 reaches the agent as a failed message.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { wechatSignature } from '../../adapters/wechat/wechatCrypto.ts';
import { streamEvents, waitFor } from '../support/coreFixtures.ts';
import { startFakeWechat } from '../support/fakeWechatApi.ts';
import { createTenant, startTestGateway, type Tenant, type TestGateway } from '../support/testGateway.ts';

const appId = 'wx5823bf96d3bd56c7';
const appSecret = 'app-secret-of-the-shop';
const serverToken = 'wechat-server-token';

describe('WeChat replies through the customer-service API, end to end', () => {
  let fake: Awaited<ReturnType<typeof startFakeWechat>>;
  let t: TestGateway;
  let tenant: Tenant;
  let inboxId: string;
  let openId: string;
  let conversationId: string;

  beforeAll(async () => {
    fake = await startFakeWechat(appId, appSecret);
    t = await startTestGateway();
    tenant = await createTenant(t);
    const inbox = await t.api('POST', `/api/v1/accounts/${tenant.accountId}/inboxes`, {
      key: tenant.apiKey,
      body: { type: 'wechat', name: 'Shop OA', settings: { apiBaseUrl: fake.url }, credentials: { appId, appSecret, token: serverToken } },
    });
    expect(inbox.status).toBe(201);
    inboxId = inbox.body.id;
  });
  afterAll(async () => {
    await t?.stop();
    await fake?.close();
  });

  const agentApi = (method: string, path: string, body?: unknown) =>
    t.api(method, `/api/v1/accounts/${tenant.accountId}${path}`, { key: tenant.agentToken, body });
  const reply = async (text: string) => {
    const r = await agentApi('POST', `/conversations/${conversationId}/messages`, { text });
    expect(r.status).toBe(202);
    expect(r.body.status).toBe('queued');
    return r.body.id as string;
  };
  const messageSeenByAgent = async (id: string) =>
    ((await agentApi('GET', `/conversations/${conversationId}/messages?limit=200`)).body.items as any[]).find((m) => m.id === id);
  const eventsAbout = async (id: string) => (await streamEvents(t, tenant.accountId)).filter((e) => e.data.id === id).map((e) => e.type);

  it("delivers a user's message to the agent, and the agent's reply to custom/send with a valid token", async () => {
    openId = `oUser_${randomBytes(4).toString('hex')}`;
    const timestamp = String(Math.floor(Date.now() / 1000));
    const nonce = randomBytes(6).toString('hex');
    const push = `<xml><ToUserName><![CDATA[gh_shop]]></ToUserName><FromUserName><![CDATA[${openId}]]></FromUserName>`
      + `<CreateTime>${timestamp}</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[我的订单到哪了?]]></Content><MsgId>27000000000000001</MsgId></xml>`;
    const query = new URLSearchParams({ timestamp, nonce, signature: wechatSignature(serverToken, timestamp, nonce) });
    const answer = await t.api('POST', `/wechat/${inboxId}?${query}`, { raw: push, headers: { 'content-type': 'text/xml' } });
    expect([answer.status, answer.body]).toEqual([200, 'success']);

    const conversation = await waitFor(
      async () => ((await agentApi('GET', `/conversations?limit=200&inboxId=${inboxId}`)).body.items as any[])[0],
      (c) => c?.assigneeId === tenant.agentId, 'the conversation assigned to the agent');
    expect((await agentApi('GET', `/contacts/${conversation.contactId}`)).body.channelId).toBe(openId);
    conversationId = conversation.id;

    const messageId = await reply('您好! It left the warehouse today.');
    const sent = await waitFor(() => messageSeenByAgent(messageId), (m) => m?.status !== 'queued', 'the reply sent');
    expect(sent.status).toBe('sent');
    expect(sent.error).toBeUndefined();
    expect(fake.sends).toHaveLength(1);
    expect(fake.sends[0]!.body).toEqual({ touser: openId, msgtype: 'text', text: { content: '您好! It left the warehouse today.' } });
    expect(fake.valid.has(fake.sends[0]!.accessToken)).toBe(true);
    expect(fake.tokenRequests).toHaveLength(1);
    expect(await waitFor(() => eventsAbout(messageId), (types) => types.length > 0, 'message.sent')).toEqual(['message.sent']);
  });

  it('refreshes a token that expired mid-conversation once, and the reply still goes out', async () => {
    const sendsBefore = fake.sends.length;
    fake.expireTokens();
    const messageId = await reply('Anything else?');
    const sent = await waitFor(() => messageSeenByAgent(messageId), (m) => m?.status !== 'queued', 'the reply sent');
    expect(sent.status).toBe('sent');
    expect(fake.tokenRequests).toHaveLength(2);
    expect(fake.sends.slice(sendsBefore).map((s) => s.body.text.content)).toEqual(['Anything else?']);
    expect(fake.valid.has(fake.sends.at(-1)!.accessToken)).toBe(true);
  });

  it('marks a reply after the 48-hour window (45015) failed at once, with the reason the agent sees and a message.failed event', async () => {
    const sendsBefore = fake.sends.length;
    let attempts = 0;
    fake.answerSendsWith(() => { attempts++; return { errcode: 45015, errmsg: 'response out of time limit or subscription is canceled' }; });
    const messageId = await reply('Are you still there?');
    const failed = await waitFor(() => messageSeenByAgent(messageId), (m) => m?.status !== 'queued', 'the reply failed');
    expect(failed.status).toBe('failed');
    expect(failed.error.code).toBe('45015');
    expect(failed.error.message).toBe('The customer last wrote more than 48 hours ago: WeChat only allows replies within 48 hours (45015).');
    expect(await waitFor(() => eventsAbout(messageId), (types) => types.length > 0, 'message.failed')).toEqual(['message.failed']);
    const event = (await streamEvents(t, tenant.accountId)).find((e) => e.type === 'message.failed' && e.data.id === messageId)!;
    expect(event.data.error).toEqual({ code: '45015', message: failed.error.message });
    expect(attempts).toBe(1);
    expect(fake.sends).toHaveLength(sendsBefore);
  });
});

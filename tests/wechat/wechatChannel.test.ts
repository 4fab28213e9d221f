// The WeChat server URL end to end: the URL check, pushes in plain and safe mode reaching an agent,
// retries stored once, contact events with the passive welcome, and bad input changing nothing.
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decryptWechatMessage, encryptWechatMessage, verifyWechatSignature, wechatSignature } from '../../adapters/wechat/wechatCrypto.ts';
import { parseWechatXml } from '../../adapters/wechat/wechatInbound.ts';
import { ApiRegistry } from '../../src/http/apiRoutes.ts';
import { createPushLane } from '../../src/http/pushLane.ts';
import { createHttpApp, createHttpServer } from '../../src/http/server.ts';
import { createLogger } from '../../src/logger.ts';
import { createMetrics } from '../../src/metrics.ts';
import { WechatChannel } from '../../src/wechat/wechatChannel.ts';
import { InboundBusyError } from '../../src/ingest/acceptInbound.ts';
import { streamEvents, waitFor } from '../support/coreFixtures.ts';
import { createTenant, startTestGateway, type Tenant, type TestGateway } from '../support/testGateway.ts';

const token = 'wechat-server-token';
const appId = 'wx5823bf96d3bd56c7';
const encodingAESKey = 'jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C';

describe('WeChat Official Account server URL', () => {
  let t: TestGateway;
  let tenant: Tenant;
  let plainInbox: string;
  let safeInbox: string;

  beforeAll(async () => {
    t = await startTestGateway();
    tenant = await createTenant(t);
    const create = async (credentials: Record<string, string>, settings: Record<string, unknown> = {}) => {
      const r = await t.api('POST', `/api/v1/accounts/${tenant.accountId}/inboxes`, {
        key: tenant.apiKey, body: { type: 'wechat', name: 'Shop OA', settings, credentials: { appId, appSecret: 'secret', token, ...credentials } },
      });
      expect(r.status).toBe(201);
      expect(r.body.urls.serverUrl).toMatch(new RegExp(`/wechat/${r.body.id}$`));
      return r.body.id as string;
    };
    plainInbox = await create({});
    safeInbox = await create({ encodingAESKey }, { welcomeText: '欢迎关注! Ask us anything.' });
  });
  afterAll(() => t.stop());

  const signed = (extra: Record<string, string> = {}) => {
    const timestamp = String(Math.floor(Date.now() / 1000));
    const nonce = randomBytes(6).toString('hex');
    return { timestamp, nonce, signature: wechatSignature(token, timestamp, nonce), ...extra };
  };
  const post = (inbox: string, query: Record<string, string>, body: string) =>
    t.api('POST', `/wechat/${inbox}?${new URLSearchParams(query)}`, { raw: body, headers: { 'content-type': 'text/xml' } });
  const xml = (openId: string, type: string, extra: string, createTime = 1714036504) =>
    `<xml><ToUserName><![CDATA[gh_shop]]></ToUserName><FromUserName><![CDATA[${openId}]]></FromUserName>`
    + `<CreateTime>${createTime}</CreateTime><MsgType><![CDATA[${type}]]></MsgType>${extra}</xml>`;
  const postSafe = (inner: string) => {
    const q = signed();
    const encrypted = encryptWechatMessage(encodingAESKey, appId, inner);
    const msgSignature = wechatSignature(token, q.timestamp, q.nonce, encrypted);
    return post(safeInbox, { ...q, encrypt_type: 'aes', msg_signature: msgSignature },
      `<xml><ToUserName><![CDATA[gh_shop]]></ToUserName><Encrypt><![CDATA[${encrypted}]]></Encrypt></xml>`);
  };
  const conversationsOf = async (openId: string) => {
    const list = await t.api('GET', `/api/v1/accounts/${tenant.accountId}/conversations?limit=200`, { key: tenant.apiKey });
    const contacts = await t.api('GET', `/api/v1/accounts/${tenant.accountId}/contacts?limit=200`, { key: tenant.apiKey });
    const contact = contacts.body.items.find((c: { channelId: string }) => c.channelId === openId);
    return { contact, conversations: contact ? list.body.items.filter((c: { contactId: string }) => c.contactId === contact.id) : [] };
  };
  const messagesOf = async (conversationId: string) =>
    (await t.api('GET', `/api/v1/accounts/${tenant.accountId}/conversations/${conversationId}/messages`, { key: tenant.apiKey })).body.items;

  it('answers the server URL check with echostr, and 401 to a wrong signature', async () => {
    const q = signed({ echostr: '5188526838712845346' });
    const ok = await fetch(`${t.url}/wechat/${plainInbox}?${new URLSearchParams(q)}`);
    expect(ok.status).toBe(200);
    expect(ok.headers.get('content-type')).toMatch(/^text\/plain/);
    expect(await ok.text()).toBe('5188526838712845346');
    const bad = await t.api('GET', `/wechat/${plainInbox}?${new URLSearchParams({ ...q, signature: 'f'.repeat(40) })}`);
    expect(bad.status).toBe(401);
    expect((await t.api('GET', `/wechat/inb_unknown?${new URLSearchParams(q)}`)).status).toBe(404);
  });

  it('stores every message type once when each push arrives 3 times at once, and routes it to an agent', async () => {
    const openId = `oUser_${randomBytes(4).toString('hex')}`;
    const pushes = [
      xml(openId, 'text', '<Content><![CDATA[我的订单到哪了?]]></Content><MsgId>24000000000000001</MsgId>', 1714036501),
      xml(openId, 'image', '<PicUrl><![CDATA[http://mmbiz.qpic.cn/p]]></PicUrl><MediaId><![CDATA[m1]]></MediaId><MsgId>24000000000000002</MsgId>', 1714036502),
      xml(openId, 'voice', '<MediaId><![CDATA[v1]]></MediaId><Format><![CDATA[amr]]></Format><Recognition><![CDATA[退款]]></Recognition><MsgId>24000000000000003</MsgId>', 1714036503),
      xml(openId, 'video', '<MediaId><![CDATA[v2]]></MediaId><ThumbMediaId><![CDATA[t2]]></ThumbMediaId><MsgId>24000000000000004</MsgId>', 1714036504),
      xml(openId, 'shortvideo', '<MediaId><![CDATA[v3]]></MediaId><ThumbMediaId><![CDATA[t3]]></ThumbMediaId><MsgId>24000000000000005</MsgId>', 1714036505),
      xml(openId, 'location', '<Location_X>23.13</Location_X><Location_Y>113.35</Location_Y><Scale>20</Scale><Label><![CDATA[天河]]></Label><MsgId>24000000000000006</MsgId>', 1714036506),
      xml(openId, 'link', '<Title><![CDATA[T]]></Title><Description><![CDATA[D]]></Description><Url><![CDATA[https://x.example]]></Url><MsgId>24000000000000007</MsgId>', 1714036507),
      xml(openId, 'event', '<Event><![CDATA[CLICK]]></Event><EventKey><![CDATA[CONTACT_US]]></EventKey>', 1714036508),
    ];
    for (const body of pushes) {
      const answers = await Promise.all([0, 1, 2].map(() => post(plainInbox, signed(), body)));
      for (const a of answers) expect([a.status, a.body]).toEqual([200, 'success']);
    }
    const { contact, conversations } = await waitFor(() => conversationsOf(openId), (r) => r.conversations.length > 0, 'the conversation');
    expect(conversations).toHaveLength(1);
    const messages = await waitFor(() => messagesOf(conversations[0].id), (m) => m.length >= pushes.length, 'all messages');
    expect(messages.map((m: { content: { type: string } }) => m.content.type)).toEqual(['text', 'image', 'audio', 'video', 'video', 'location', 'link', 'event']);
    expect(messages[0]).toMatchObject({ channel: 'wechat', externalId: '24000000000000001', from: { channelId: openId }, content: { text: '我的订单到哪了?' } });
    expect(messages[2].content.text).toBe('退款');
    expect(contact.channel).toBe('wechat');
    await waitFor(() => t.api('GET', `/api/v1/accounts/${tenant.accountId}/conversations/${conversations[0].id}`, { key: tenant.apiKey }),
      (c) => c.body.assigneeId === tenant.agentId, 'the assignment');
  });

  it('decrypts safe-mode pushes, and refuses a wrong msg_signature', async () => {
    const openId = `oSafe_${randomBytes(4).toString('hex')}`;
    const answer = await postSafe(xml(openId, 'text', '<Content><![CDATA[safe hello]]></Content><MsgId>25000000000000001</MsgId>'));
    expect([answer.status, answer.body]).toEqual([200, 'success']);
    const { conversations } = await waitFor(() => conversationsOf(openId), (r) => r.conversations.length > 0, 'the conversation');
    expect((await messagesOf(conversations[0].id))[0].content.text).toBe('safe hello');

    const q = signed();
    const encrypted = encryptWechatMessage(encodingAESKey, appId, xml(openId, 'text', '<Content>x</Content><MsgId>25000000000000002</MsgId>'));
    const forged = await post(safeInbox, { ...q, encrypt_type: 'aes', msg_signature: 'a'.repeat(40) }, `<xml><Encrypt><![CDATA[${encrypted}]]></Encrypt></xml>`);
    expect(forged.status).toBe(401);
    const otherApp = encryptWechatMessage(encodingAESKey, 'wx_someone_else', xml(openId, 'text', '<Content>x</Content><MsgId>25000000000000003</MsgId>'));
    const wrongApp = await post(safeInbox, { ...q, encrypt_type: 'aes', msg_signature: wechatSignature(token, q.timestamp, q.nonce, otherApp) },
      `<xml><Encrypt><![CDATA[${otherApp}]]></Encrypt></xml>`);
    expect(wrongApp.status).toBe(400);
    expect(await messagesOf(conversations[0].id)).toHaveLength(1);
  });

  it('turns subscribe and SCAN into contact updates, answers the welcome encrypted, and counts a retried event once', async () => {
    const openId = `oFan_${randomBytes(4).toString('hex')}`;
    const subscribe = xml(openId, 'event', '<Event><![CDATA[subscribe]]></Event><EventKey><![CDATA[qrscene_poster42]]></EventKey><Ticket><![CDATA[T]]></Ticket>');
    const answers = await Promise.all([0, 1, 2].map(() => postSafe(subscribe)));
    for (const a of answers) {
      expect(a.status).toBe(200);
      const outer = parseWechatXml(a.body);
      expect(verifyWechatSignature(outer.MsgSignature, token, outer.TimeStamp!, outer.Nonce!, outer.Encrypt!)).toBe(true);
      const reply = parseWechatXml(decryptWechatMessage(encodingAESKey, appId, outer.Encrypt!));
      expect(reply).toMatchObject({ ToUserName: openId, FromUserName: 'gh_shop', MsgType: 'text', Content: '欢迎关注! Ask us anything.' });
    }
    const { contact, conversations } = await waitFor(() => conversationsOf(openId), (r) => !!r.contact?.attributes.wechatSubscribed, 'the contact');
    expect(contact.attributes).toEqual({ wechatSubscribed: true, wechatQrScene: 'poster42' });
    expect(conversations).toHaveLength(0);
    await postSafe(xml(openId, 'event', '<Event><![CDATA[unsubscribe]]></Event>', 1714036600));
    const after = await waitFor(() => conversationsOf(openId), (r) => r.contact?.attributes.wechatSubscribed === false, 'the unsubscribe');
    expect(after.contact.attributes).toEqual({ wechatSubscribed: false, wechatQrScene: 'poster42' });
    const updates = (await streamEvents(t, tenant.accountId)).filter((e) => e.type === 'contact.updated' && e.subject === contact.id);
    expect(updates.map((e) => e.data.channelEvent)).toEqual(['subscribe', 'unsubscribe']);
  });

  it('refuses bad input with a clear 4xx and stores nothing', async () => {
    const before = (await t.api('GET', `/api/v1/accounts/${tenant.accountId}/contacts?limit=200`, { key: tenant.apiKey })).body.items.length;
    const good = xml('oBad', 'text', '<Content>hi</Content><MsgId>26000000000000001</MsgId>');
    const cases: [string, Promise<{ status: number; body: any }>, number, RegExp][] = [
      ['no signature', post(plainInbox, {}, good), 401, /signature/],
      ['wrong signature', post(plainInbox, { ...signed(), signature: '0'.repeat(40) }, good), 401, /signature/],
      ['malformed XML', post(plainInbox, signed(), '<xml><Content>hi'), 400, /malformed|not a WeChat/],
      ['not a push', post(plainInbox, signed(), '{"hello": "json"}'), 400, /not a WeChat|malformed/],
      ['entity expansion', post(plainInbox, signed(), `<!DOCTYPE xml [<!ENTITY a "aaaaaaaa">]>${good}`), 400, /DOCTYPE/],
      ['missing fields', post(plainInbox, signed(), '<xml><MsgType>text</MsgType></xml>'), 400, /missing/],
      ['safe mode without a key', post(plainInbox, { ...signed(), encrypt_type: 'aes', msg_signature: 'a'.repeat(40) }, '<xml><Encrypt>abc</Encrypt></xml>'), 400, /encodingAESKey/],
      ['empty body', post(plainInbox, signed(), ''), 400, /empty/],
      ['unknown inbox', post('inb_nope', signed(), good), 404, /inbox/],
      ['2 MB body', post(plainInbox, signed(), `<xml><Content>${'x'.repeat(2 * 1024 * 1024)}</Content></xml>`), 413, /larger/],
      ['1 MB body', post(plainInbox, signed(), `<xml><Content>${'x'.repeat(1024 * 1024)}</Content></xml>`), 413, /larger|at most/],
      ['100 KB body', post(plainInbox, signed(), `<xml><Content>${'x'.repeat(100 * 1024)}</Content></xml>`), 413, /65536 bytes/],
    ];
    for (const [what, pending, status, message] of cases) {
      const r = await pending;
      expect(r.status, what).toBe(status);
      expect(JSON.stringify(r.body), what).toMatch(message);
      expect(JSON.stringify(r.body), what).not.toMatch(/at .*\.ts:\d+/);
    }
    const after = (await t.api('GET', `/api/v1/accounts/${tenant.accountId}/contacts?limit=200`, { key: tenant.apiKey })).body.items.length;
    expect(after).toBe(before);
  });
});

describe('WeChat deadline', () => {
  /** A push to a channel whose acceptor does `accepting`: answered (status) or dropped (no answer at all). */
  async function pushOutcome(accepting: () => Promise<never>): Promise<string> {
    const inbox = { id: 'inb_slow', accountId: 'acc_1', type: 'wechat', enabled: true, settings: {} };
    const channel = new WechatChannel({
      inboxes: { records: { getAnyAccount: async () => inbox }, credentials: () => ({ appId, appSecret: 's', token }) } as never,
      acceptor: { accept: accepting, acceptContactEvent: accepting } as never,
      log: createLogger('silent'), deadlineMs: 200,
    });
    const registry = new ApiRegistry();
    channel.registerRoutes(registry);
    const auth = { middleware: () => async (_ctx: unknown, next: () => Promise<unknown>) => next() };
    const log = createLogger('silent');
    const metrics = createMetrics();
    const app = createHttpApp({ registry, auth: auth as never, log, metrics, bodyLimitBytes: 1 << 20 });
    const { server } = createHttpServer(app, [], 1 << 16, log, createPushLane(registry.pushRoutes(1 << 20), { log, metrics }));
    server.listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    try {
      const { port } = server.address() as AddressInfo;
      const timestamp = '1714036504';
      const nonce = '42';
      const query = new URLSearchParams({ timestamp, nonce, signature: wechatSignature(token, timestamp, nonce) });
      const body = '<xml><ToUserName>gh</ToUserName><FromUserName>oU</FromUserName><CreateTime>1714036504</CreateTime><MsgType>text</MsgType><Content>hi</Content><MsgId>1</MsgId></xml>';
      return await fetch(`http://127.0.0.1:${port}/wechat/inb_slow?${query}`, { method: 'POST', body, headers: { 'content-type': 'text/xml' } })
        .then((r) => `answered ${r.status}`, (e: Error) => `dropped: ${e.message}`);
    } finally {
      server.close();
    }
  }

  it('answers nothing (WeChat will retry) when the message cannot be queued in time, never late', async () => {
    // Redis is "slow": the acceptor never finishes.
    expect(await pushOutcome(() => new Promise<never>(() => undefined))).toMatch(/^dropped/);
  });

  it('answers nothing either when the gateway is too busy to queue it (a 503 would show the follower an error)', async () => {
    expect(await pushOutcome(() => Promise.reject(new InboundBusyError()))).toMatch(/^dropped/);
  });
});

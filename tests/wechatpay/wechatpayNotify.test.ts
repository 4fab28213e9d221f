// WeChat Pay notifications end to end: verified (public key id or platform certificate serial, 5-minute
// window), decrypted with the GCM tag checked, deduplicated, and shown on the payer's contact and in
// the agent's WeChat conversation.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createVerify, generateKeyPairSync, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { wechatSignature } from '../../adapters/wechat/wechatCrypto.ts';
import {
  decryptWechatpayResource, normalizeWechatpayResource, parseWechatpayNotification, verifyWechatpaySignature, wechatpayVerificationKeys,
} from '../../adapters/wechatpay/wechatpayNotification.ts';
import { InboundBusyError } from '../../src/ingest/acceptInbound.ts';
import { streamEvents, waitFor } from '../support/coreFixtures.ts';
import { createTenant, startTestGateway, type Tenant, type TestGateway } from '../support/testGateway.ts';
import {
  apiV3Key, encryptResource, platformCertificate, platformSerial, refundNotification, signedNotification, transactionNotification,
  wechatpayPublicKey, wechatpayPublicKeyId,
} from '../support/wechatpayFixtures.ts';

const merchant = generateKeyPairSync('rsa', { modulusLength: 2048 });

const keys = wechatpayVerificationKeys({
  publicKeyId: wechatpayPublicKeyId, publicKey: wechatpayPublicKey,
  platformCertificates: [{ serialNo: 'placeholder', certificate: platformCertificate }],
});

describe('WeChat Pay notifications: verification and decryption', () => {
  const check = (n: ReturnType<typeof signedNotification>, nowSeconds?: number) =>
    verifyWechatpaySignature({ headers: n.headers, rawBody: Buffer.from(n.raw), keys, nowSeconds });

  it('verifies by public key id and by platform certificate serial, and decrypts', () => {
    const body = transactionNotification('EV-1', 'oPayer', '4200000001202611220000000001');
    check(signedNotification(body));
    const byCertificate = wechatpayVerificationKeys({ platformCertificates: [{ serialNo: signedNotification(body, { by: 'certificate' }).headers['wechatpay-serial'], certificate: platformCertificate }] });
    const n = signedNotification(body, { by: 'certificate' });
    verifyWechatpaySignature({ headers: n.headers, rawBody: Buffer.from(n.raw), keys: byCertificate });
    const parsed = parseWechatpayNotification(Buffer.from(n.raw));
    expect(normalizeWechatpayResource(parsed, decryptWechatpayResource(apiV3Key, parsed.resource))).toMatchObject({
      type: 'payment.succeeded', notificationId: 'EV-1', openId: 'oPayer', transactionId: '4200000001202611220000000001',
      amount: { total: 1234, currency: 'CNY', payerTotal: 1234 }, status: 'SUCCESS',
    });
  });

  it('refuses tampered bodies, unknown serials, stale timestamps, missing headers and a bad GCM tag', () => {
    const body = transactionNotification('EV-2', 'oPayer', '4200000001202611220000000002');
    expect(() => check(signedNotification(body, { tamper: true }))).toThrow(/does not verify/);
    const unknown = signedNotification(body);
    unknown.headers['wechatpay-serial'] = 'PUB_KEY_ID_SOMEONE_ELSE';
    expect(() => check(unknown)).toThrow(/no platform certificate or public key/);
    expect(() => check(signedNotification(body, { timestamp: Math.floor(Date.now() / 1000) - 301 }))).toThrow(/5 minutes/);
    const missing = signedNotification(body);
    delete (missing.headers as Record<string, string | undefined>)['wechatpay-nonce'];
    expect(() => check(missing)).toThrow(/required/);
    const resource = encryptResource('{"x":1}');
    const bytes = Buffer.from(resource.ciphertext, 'base64');
    bytes[bytes.length - 1]! ^= 1;
    expect(() => decryptWechatpayResource(apiV3Key, { ...resource, algorithm: 'AEAD_AES_256_GCM', ciphertext: bytes.toString('base64') })).toThrow(/GCM tag/);
    expect(() => decryptWechatpayResource('another-32-byte-long-apiv3-key!!', { ...resource, algorithm: 'AEAD_AES_256_GCM' })).toThrow(/GCM tag/);
    expect(() => parseWechatpayNotification(Buffer.from('{"id":"x"}'))).toThrow(/not a WeChat Pay notification/);
  });
});

describe('WeChat Pay notify URL', () => {
  let t: TestGateway;
  let tenant: Tenant;
  let payInbox: string;
  let oaInbox: string;
  const token = 'oa-token';
  let fakeApi: Server;
  const certificateRequests: { authorization: string; verified: boolean }[] = [];

  beforeAll(async () => {
    // WeChat Pay's API, as far as the certificate download goes: it checks the merchant's signature.
    fakeApi = createServer((req, res) => {
      const authorization = req.headers.authorization ?? '';
      const f = Object.fromEntries([...authorization.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
      const verifier = createVerify('RSA-SHA256');
      verifier.update(`GET\n${req.url}\n${f.timestamp}\n${f.nonce_str}\n\n`);
      const verified = authorization.startsWith('WECHATPAY2-SHA256-RSA2048 ') && f.mchid === '1900000001' && f.serial_no === 'MERCHANT_SERIAL'
        && verifier.verify(merchant.publicKey, f.signature ?? '', 'base64');
      certificateRequests.push({ authorization, verified });
      if (req.url !== '/v3/certificates' || !verified) { res.writeHead(401).end('{"code":"SIGN_ERROR"}'); return; }
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({
        data: [{ serial_no: platformSerial, effective_time: '2026-01-01T00:00:00+08:00', expire_time: '2031-01-01T00:00:00+08:00', encrypt_certificate: encryptResource(platformCertificate) }],
      }));
    });
    await new Promise<void>((r) => fakeApi.listen(0, '127.0.0.1', r));
    t = await startTestGateway();
    tenant = await createTenant(t);
    const create = async (body: Record<string, unknown>) => {
      const r = await t.api('POST', `/api/v1/accounts/${tenant.accountId}/inboxes`, { key: tenant.apiKey, body });
      expect(r.status, JSON.stringify(r.body)).toBe(201);
      return r.body.id as string;
    };
    payInbox = await create({
      type: 'wechatpay', name: 'Shop pay', settings: { apiBaseUrl: `http://127.0.0.1:${(fakeApi.address() as AddressInfo).port}` },
      credentials: {
        mchId: '1900000001', apiV3Key, serialNo: 'MERCHANT_SERIAL', privateKey: merchant.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
        publicKeyId: wechatpayPublicKeyId, publicKey: wechatpayPublicKey,
      },
    });
    oaInbox = await create({ type: 'wechat', name: 'Shop OA', settings: {}, credentials: { appId: 'wx5823bf96d3bd56c7', appSecret: 's', token } });
  });
  afterAll(async () => {
    await t.stop();
    fakeApi.close();
  });

  const notify = (n: ReturnType<typeof signedNotification>, inbox = payInbox) =>
    t.api('POST', `/wechatpay/${inbox}/notify`, { raw: n.raw, headers: n.headers });

  it('records a payment once on the payer\'s contact and shows it in their open WeChat conversation; a refund follows the payer', async () => {
    const openId = `oPayer_${randomBytes(4).toString('hex')}`;
    // The payer is chatting on the official account.
    const timestamp = String(Math.floor(Date.now() / 1000));
    const push = `<xml><ToUserName>gh_shop</ToUserName><FromUserName>${openId}</FromUserName><CreateTime>${timestamp}</CreateTime>`
      + `<MsgType>text</MsgType><Content>I just paid</Content><MsgId>27000000000000001</MsgId></xml>`;
    const pushed = await t.api('POST', `/wechat/${oaInbox}?${new URLSearchParams({ timestamp, nonce: 'n', signature: wechatSignature(token, timestamp, 'n') })}`,
      { raw: push, headers: { 'content-type': 'text/xml' } });
    expect(pushed.status).toBe(200);
    const conversation = await waitFor(async () => (await t.api('GET', `/api/v1/accounts/${tenant.accountId}/conversations?limit=200`, { key: tenant.apiKey })).body.items
      .find((c: { inboxId: string }) => c.inboxId === oaInbox), (c) => !!c, 'the OA conversation');

    const transactionId = `42000000012026112200${randomBytes(4).toString('hex')}`;
    const paid = transactionNotification(`EV-${randomBytes(4).toString('hex')}`, openId, transactionId);
    // Delivered 5 times (WeChat Pay retries): one payment event.
    const answers = await Promise.all([0, 1, 2, 3, 4].map(() => notify(signedNotification(paid))));
    for (const a of answers) expect(a.status).toBe(204);
    const events = await waitFor(() => streamEvents(t, tenant.accountId), (e) => e.some((x) => x.type === 'payment.succeeded'), 'payment.succeeded');
    const payments = events.filter((e) => e.type === 'payment.succeeded');
    expect(payments).toHaveLength(1);
    expect(payments[0]!.data).toMatchObject({
      transactionId, amount: { total: 1234, currency: 'CNY' }, openId, contactId: conversation.contactId, conversationId: conversation.id,
    });
    const messages = await waitFor(async () => (await t.api('GET', `/api/v1/accounts/${tenant.accountId}/conversations/${conversation.id}/messages`, { key: tenant.apiKey })).body.items,
      (m) => m.length === 2, 'the payment note');
    expect(messages[1].content).toMatchObject({ type: 'event', text: 'Payment received: 12.34 CNY (order order-' + transactionId.slice(-4) + ')', event: { name: 'payment.succeeded', key: transactionId } });

    const refund = refundNotification(`EV-R-${randomBytes(4).toString('hex')}`, transactionId);
    expect((await notify(signedNotification(refund, { by: 'publicKey' }))).status).toBe(204);
    const refunded = await waitFor(() => streamEvents(t, tenant.accountId), (e) => e.some((x) => x.type === 'payment.refunded'), 'payment.refunded');
    expect(refunded.find((e) => e.type === 'payment.refunded')!.data).toMatchObject({ transactionId, contactId: conversation.contactId, status: 'SUCCESS' });
  });

  it('downloads the platform certificates with a signed merchant request when a notification names a new serial', async () => {
    const openId = `oCert_${randomBytes(4).toString('hex')}`;
    const n = signedNotification(transactionNotification(`EV-C-${randomBytes(4).toString('hex')}`, openId, `4200000001202611221${randomBytes(4).toString('hex')}`), { by: 'certificate' });
    expect((await notify(n)).status).toBe(204);
    expect(certificateRequests).toHaveLength(1);
    expect(certificateRequests[0]!.verified).toBe(true);
    await waitFor(() => streamEvents(t, tenant.accountId), (e) => e.some((x) => x.type === 'payment.succeeded' && x.data.openId === openId), 'the payment');
    // Known now: no second download. A serial nobody knows: one more download at most a minute, then 401.
    expect((await notify(signedNotification(transactionNotification('EV-C2', openId, '4200000001202611220000000777'), { by: 'certificate' }))).status).toBe(204);
    const stranger = signedNotification(transactionNotification('EV-C3', openId, '4200000001202611220000000778'));
    stranger.headers['wechatpay-serial'] = 'PUB_KEY_ID_UNKNOWN';
    expect((await notify(stranger)).status).toBe(401);
    expect((await notify(stranger)).status).toBe(401);
    expect(certificateRequests).toHaveLength(1);
  });

  it('answers WeChat Pay\'s failure shape and stores nothing for bad notifications', async () => {
    const before = (await streamEvents(t, tenant.accountId)).length;
    const body = transactionNotification('EV-BAD', 'oX', '4200000001202611229999999999');
    const cases: [string, Promise<{ status: number; body: any }>, number][] = [
      ['tampered', notify(signedNotification(body, { tamper: true })), 401],
      ['stale', notify(signedNotification(body, { timestamp: Math.floor(Date.now() / 1000) - 3600 })), 401],
      ['signed for another body', t.api('POST', `/wechatpay/${payInbox}/notify`, { raw: '{"id":"other"}', headers: signedNotification(body).headers }), 401],
      ['unknown inbox', notify(signedNotification(body), 'inb_nope'), 404],
      ['an OA inbox', notify(signedNotification(body), oaInbox), 404],
    ];
    for (const [what, pending, status] of cases) {
      const r = await pending;
      expect(r.status, what).toBe(status);
      expect(r.body.code, what).toBe('FAIL');
    }
    // Not JSON at all: refused by the body reader before anything else (400, the gateway's error shape).
    const notJson = await t.api('POST', `/wechatpay/${payInbox}/notify`, { raw: 'hello', headers: signedNotification(body).headers });
    expect([notJson.status, notJson.body.error?.code]).toEqual([400, 'invalid_json']);
    const wrongKey = { ...body, resource: encryptResource('{"trade_state":"SUCCESS"}', 'another-32-byte-long-apiv3-key!!') };
    expect((await notify(signedNotification(wrongKey))).status).toBe(401);
    const badResource = { ...body, resource: encryptResource('{"trade_state":"SUCCESS"}') };
    const bad = await notify(signedNotification(badResource));
    expect(bad.status).toBe(400);
    expect(bad.body.message).toMatch(/transaction resource/);
    expect((await streamEvents(t, tenant.accountId)).length).toBe(before);
  });

  it('answers 503 FAIL and records nothing while the gateway is too busy to queue, then takes the retry', async () => {
    const transactionId = `42000000012026120300${randomBytes(4).toString('hex')}`;
    const paid = transactionNotification(`EV-${randomBytes(4).toString('hex')}`, 'oBusyPayer', transactionId);
    const acceptor = t.gateway.acceptor;
    const acceptPayment = acceptor.acceptPayment;
    acceptor.acceptPayment = () => Promise.reject(new InboundBusyError());
    const before = (await streamEvents(t, tenant.accountId)).length;
    try {
      const busy = await notify(signedNotification(paid));
      expect(busy.status).toBe(503);
      expect(busy.body).toMatchObject({ code: 'FAIL' });
      expect(JSON.stringify(busy.body)).not.toMatch(/at .*\.ts:\d+/);
    } finally {
      acceptor.acceptPayment = acceptPayment;
    }
    expect((await streamEvents(t, tenant.accountId)).length).toBe(before);
    expect((await notify(signedNotification(paid))).status).toBe(204);
    await waitFor(() => streamEvents(t, tenant.accountId), (e) => e.some((x) => x.type === 'payment.succeeded' && (x.data as { transactionId?: string }).transactionId === transactionId), 'the retried payment');
  });
});

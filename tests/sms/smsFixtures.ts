// What the SMS end-to-end tests share: one local server standing in for the four provider APIs, the
// inboxes' credentials, and each provider's webhooks built (and signed or tokened) as it sends them.
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { twilioSignature } from '../../adapters/sms/twilio.ts';
import { formFields } from '../../adapters/sms/smsProvider.ts';
import { vonageSignature } from '../../adapters/sms/vonage.ts';
import { createTenant, startTestGateway, type Tenant, type TestGateway } from '../support/testGateway.ts';

export interface FakeCall { provider: string; path: string; headers: IncomingMessage['headers']; body: string }

/** One local server standing in for all four provider APIs (/twilio, /aliyun, /tencent, /vonage). */
export async function startFakeProviders(): Promise<{ server: Server; url: string; calls: FakeCall[] }> {
  const calls: FakeCall[] = [];
  let n = 0;
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk) => { body += chunk; });
    req.on('end', () => {
      const [, provider = '', ...rest] = (req.url ?? '/').split('/');
      calls.push({ provider, path: `/${rest.join('/')}`, headers: req.headers, body });
      n += 1;
      const answer = ({
        twilio: { status: 201, body: { sid: `SMout${n}`, status: 'queued' } },
        aliyun: { status: 200, body: { Code: 'OK', Message: 'OK', BizId: `biz${n}^0`, RequestId: 'r' } },
        tencent: { status: 200, body: { Response: { SendStatusSet: [{ SerialNo: `sn:${n}`, Code: 'Ok', Message: 'send success' }], RequestId: 'r' } } },
        vonage: { status: 200, body: { 'message-count': '1', messages: [{ status: '0', 'message-id': `vout${n}` }] } },
      } as Record<string, { status: number; body: unknown }>)[provider] ?? { status: 404, body: {} };
      // A reply whose text asks for it gets Twilio's refusal of an invalid number.
      if (provider === 'twilio' && body.includes('REFUSE_ME')) Object.assign(answer, { status: 400, body: { code: 21211, message: "The 'To' number is not a valid phone number.", status: 400 } });
      res.writeHead(answer.status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(answer.body));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, calls };
}

export const smsCredentials = {
  twilio: { accountSid: 'AC0001', authToken: 'twilio-auth-token', from: '+15005550006' },
  aliyun: { accessKeyId: 'LTAIkey', accessKeySecret: 'aliyun-secret', signName: '测试商店', templateCode: 'SMS_1001' },
  tencent: { secretId: 'AKIDkey', secretKey: 'tencent-secret', sdkAppId: '1400000001', signName: '测试商店', templateId: '449739' },
  vonage: { apiKey: 'vkey', apiSecret: 'vsecret', from: 'Shop', signatureSecret: 'vonage-signature-secret', signatureMethod: 'sha256' },
} as const;
export type SmsProviderName = keyof typeof smsCredentials;

export interface SmsInbox { id: string; urls: { inboundUrl: string; statusUrl: string }; settings: Record<string, unknown> }

/** Builds each provider's inbound push and receipt as it really sends them, signed or tokened. */
export function smsWebhooks(t: TestGateway, inbox: SmsInbox, provider: SmsProviderName) {
  const path = (url: string) => new URL(url).pathname + new URL(url).search;
  const post = (url: string, body: string, contentType: string, headers: Record<string, string> = {}) =>
    t.api('POST', path(url), { raw: body, headers: { 'content-type': contentType, ...headers } });
  const twilioPost = (url: string, fields: Record<string, string>) => {
    const body = new URLSearchParams(fields).toString();
    const signature = twilioSignature(smsCredentials.twilio.authToken, `${t.gateway.publicUrl}${path(url)}`, formFields(Buffer.from(body)));
    return post(url, body, 'application/x-www-form-urlencoded', { 'x-twilio-signature': signature });
  };
  const vonagePost = (url: string, fields: Record<string, string>) => {
    const all = { ...fields, timestamp: String(Math.floor(Date.now() / 1000)), nonce: 'n-1' };
    const sig = vonageSignature(all, smsCredentials.vonage.signatureSecret, 'sha256');
    return post(url, new URLSearchParams({ ...all, sig }).toString(), 'application/x-www-form-urlencoded');
  };
  return {
    /** An inbound SMS from a national (Aliyun, Tencent) or international number; `id` is the provider's id. */
    inbound(id: string, text: string, phone: { national: string; e164: string }) {
      switch (provider) {
        case 'twilio': return twilioPost(inbox.urls.inboundUrl, { MessageSid: id, AccountSid: 'AC0001', From: phone.e164, To: '+15005550006', Body: text, NumMedia: '0' });
        case 'aliyun': return post(inbox.urls.inboundUrl, JSON.stringify([{ phone_number: phone.national, content: text, send_time: '2024-05-01 12:00:00', dest_code: '01', sequence_id: Number(id) }]), 'application/json');
        case 'tencent': return post(inbox.urls.inboundUrl, JSON.stringify({ extend: '', mobile: phone.national, nationcode: '86', sign: '测试商店', text, time: Number(id) }), 'application/json');
        case 'vonage': return vonagePost(inbox.urls.inboundUrl, { msisdn: phone.e164.slice(1), to: '447700900000', messageId: id, text, type: 'text', 'message-timestamp': '2024-05-01 12:00:00' });
      }
    },
    receipt(externalId: string, messageId: string, delivered = true) {
      switch (provider) {
        case 'twilio': return twilioPost(inbox.urls.statusUrl, { MessageSid: externalId, MessageStatus: delivered ? 'delivered' : 'undelivered', ...(delivered ? {} : { ErrorCode: '30003' }) });
        case 'aliyun': return post(inbox.urls.statusUrl, JSON.stringify([{ phone_number: '13900001234', send_time: '2024-05-01 12:00:00', report_time: '2024-05-01 12:00:05', success: delivered, err_code: delivered ? 'DELIVERED' : 'MK:0001', err_msg: '', sms_size: '1', biz_id: externalId, out_id: messageId }]), 'application/json');
        case 'tencent': return post(inbox.urls.statusUrl, JSON.stringify([{ user_receive_time: '2024-05-01 12:00:05', nationcode: '86', mobile: '13900001234', report_status: delivered ? 'SUCCESS' : 'FAIL', errmsg: delivered ? 'DELIVRD' : 'MK:0001', description: '', sid: externalId }]), 'application/json');
        case 'vonage': return vonagePost(inbox.urls.statusUrl, { msisdn: '447700900123', to: 'Shop', messageId: externalId, status: delivered ? 'delivered' : 'failed', 'err-code': delivered ? '0' : '6', 'client-ref': messageId });
      }
    },
  };
}

export const expectedAck: Record<SmsProviderName, { status: number; body?: unknown }> = {
  twilio: { status: 200, body: '<?xml version="1.0" encoding="UTF-8"?><Response></Response>' },
  aliyun: { status: 200, body: { code: 0, msg: '接收成功' } },
  tencent: { status: 200, body: { result: 0, errmsg: 'OK' } },
  vonage: { status: 204 },
};

/** Twilio takes an empty 204 for status callbacks; the others answer receipts as they answer messages. */
export const receiptAckStatus: Record<SmsProviderName, number> = { twilio: 204, aliyun: 200, tencent: 200, vonage: 204 };


/** One SMS inbox per provider, each pointed at the fake provider API. */
export async function createSmsInboxes(t: TestGateway, tenant: { accountId: string; apiKey: string }, fakeUrl: string): Promise<Record<SmsProviderName, SmsInbox>> {
  const inboxes = {} as Record<SmsProviderName, SmsInbox>;
  for (const provider of Object.keys(smsCredentials) as SmsProviderName[]) {
    const r = await t.api('POST', `/api/v1/accounts/${tenant.accountId}/inboxes`, {
      key: tenant.apiKey, body: {
        type: 'sms', name: `SMS ${provider}`, credentials: smsCredentials[provider],
        settings: { provider, apiBaseUrl: `${fakeUrl}/${provider}`, defaultRegion: defaultRegions[provider], sendsPerSecond: 50 },
      },
    });
    if (r.status !== 201) throw new Error(`sms inbox: ${r.status} ${JSON.stringify(r.body)}`);
    inboxes[provider] = r.body;
  }
  return inboxes;
}

const defaultRegions: Record<SmsProviderName, string> = { twilio: 'US', aliyun: 'CN', tencent: 'CN', vonage: 'GB' };

export interface SmsTestBed { t: TestGateway; tenant: Tenant; fake: Awaited<ReturnType<typeof startFakeProviders>>; inboxes: Record<SmsProviderName, SmsInbox> }

/** A gateway, a tenant with one online agent, the fake provider API and an SMS inbox per provider. */
export async function startSmsTestBed(): Promise<SmsTestBed & { stop(): Promise<void> }> {
  const fake = await startFakeProviders();
  const t = await startTestGateway();
  const tenant = await createTenant(t);
  const inboxes = await createSmsInboxes(t, tenant, fake.url);
  return { t, tenant, fake, inboxes, stop: async () => { await t.stop(); fake.server.close(); } };
}

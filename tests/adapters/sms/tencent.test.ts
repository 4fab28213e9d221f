// Tencent Cloud: reply callbacks (no id: sender, time and text name a message), status callback
// arrays, and SendSms (2021-01-11) against nock with its TC3-HMAC-SHA256 signature.
import nock from 'nock';
import { afterEach, describe, expect, it } from 'vitest';
import { SmsPayloadError, type SmsSendRequest, type SmsWebhook } from '../../../adapters/sms/smsProvider.ts';
import { tc3Authorization, TencentProvider } from '../../../adapters/sms/tencent.ts';

const tencent = new TencentProvider();
const json = (body: unknown): SmsWebhook => ({ rawBody: Buffer.from(JSON.stringify(body)), contentType: 'application/json', url: 'https://gw/x', query: {}, headers: {} });
const credentials = { secretId: 'AKIDsecretid', secretKey: 'tencent-secret', sdkAppId: '1400000001', signName: '腾讯云', templateId: '449739' };
const sendRequest = (over: Partial<SmsSendRequest> = {}): SmsSendRequest => ({
  credentials, to: '+8613711112222', text: '您的退款已处理', messageId: 'msg_tc1', statusUrl: 'https://gw/x/status', mediaUrls: [],
  settings: { templateVariable: 'content' }, ...over,
});

afterEach(() => nock.cleanAll());

describe('Tencent reply callback', () => {
  it('parses a reply; the same push twice names the same message, another text another one', () => {
    const body = { extend: '', mobile: '13711112222', nationcode: '86', sign: '腾讯云', text: '退订', time: 1714036504 };
    const [a] = tencent.parseInbound(json(body));
    expect(a).toMatchObject({ from: '13711112222', fromCountryCode: '86', text: '退订', sentAt: '2024-04-25T09:15:04.000Z' });
    expect(tencent.parseInbound(json(body))[0]!.externalId).toBe(a!.externalId);
    expect(tencent.parseInbound(json({ ...body, text: '订阅' }))[0]!.externalId).not.toBe(a!.externalId);
  });

  it('refuses a reply without a mobile', () => {
    expect(() => tencent.parseInbound(json({ nationcode: '86', text: 'hi', time: 1 }))).toThrow(SmsPayloadError);
  });

  it('refuses a reply without a time: without it, the same short text twice would be one message', () => {
    expect(() => tencent.parseInbound(json({ mobile: '13711112222', nationcode: '86', text: '1' }))).toThrow(/time/);
  });
});

describe('Tencent status callback', () => {
  it('maps an array of reports', () => {
    const receipts = tencent.parseReceipts(json([
      { user_receive_time: '2024-04-25 17:15:10', nationcode: '86', mobile: '13711112222', report_status: 'SUCCESS', errmsg: 'DELIVRD', description: '用户短信送达成功', sid: '2019:538884*sid1' },
      { user_receive_time: '2024-04-25 17:15:11', nationcode: '86', mobile: '13711113333', report_status: 'FAIL', errmsg: 'MK:0001', description: '空号', sid: '2019:538884*sid2' },
    ]));
    expect(receipts).toEqual([
      { externalId: '2019:538884*sid1', status: 'delivered' },
      { externalId: '2019:538884*sid2', status: 'failed', errorCode: 'MK:0001', errorMessage: 'Tencent: not delivered (MK:0001: 空号)' },
    ]);
  });

  it('answers the way Tencent expects', () => {
    expect(JSON.parse(tencent.receiptAck.body)).toEqual({ result: 0, errmsg: 'OK' });
  });
});

describe('Tencent SendSms', () => {
  it('sends the reply as the template parameter, signed with TC3-HMAC-SHA256', async () => {
    let body: any;
    let headers: Record<string, string> = {};
    nock('https://sms.tencentcloudapi.com').post('/', (b) => { body = b; return true; })
      .reply(function reply(_uri, _body) {
        headers = this.req.headers as Record<string, string>;
        return [200, { Response: { SendStatusSet: [{ SerialNo: '5000:1045710669157053657849499619', PhoneNumber: '+8613711112222', Fee: 1, SessionContext: 'msg_tc1', Code: 'Ok', Message: 'send success', IsoCode: 'CN' }], RequestId: 'a0aabda6' } }];
      });
    await expect(tencent.send(sendRequest(), AbortSignal.timeout(5000))).resolves.toEqual({ externalId: '5000:1045710669157053657849499619' });
    expect(body).toEqual({ PhoneNumberSet: ['+8613711112222'], SmsSdkAppId: '1400000001', TemplateId: '449739', SignName: '腾讯云', TemplateParamSet: ['您的退款已处理'], SessionContext: 'msg_tc1' });
    expect(headers['x-tc-action']).toBe('SendSms');
    expect(headers['x-tc-version']).toBe('2021-01-11');
    expect(headers.authorization).toBe(tc3Authorization({
      secretId: 'AKIDsecretid', secretKey: 'tencent-secret', host: 'sms.tencentcloudapi.com', service: 'sms',
      timestamp: Number(headers['x-tc-timestamp']), payload: JSON.stringify(body),
    }));
    expect(headers.authorization).toMatch(/^TC3-HMAC-SHA256 Credential=AKIDsecretid\/\d{4}-\d{2}-\d{2}\/sms\/tc3_request, SignedHeaders=content-type;host, Signature=[0-9a-f]{64}$/);
  });

  it('turns a per-number code or an API error into a failure with its code', async () => {
    nock('https://sms.tencentcloudapi.com').post('/').reply(200, { Response: { SendStatusSet: [{ SerialNo: '', Code: 'InvalidParameterValue.IncorrectPhoneNumber', Message: 'invalid number' }], RequestId: 'r' } });
    expect(await tencent.send(sendRequest(), AbortSignal.timeout(5000)).catch((e) => e)).toMatchObject({ code: 'InvalidParameterValue.IncorrectPhoneNumber', retryable: false });
    nock('https://sms.tencentcloudapi.com').post('/').reply(200, { Response: { Error: { Code: 'LimitExceeded.PhoneNumberThirtySecondLimit', Message: 'too often' }, RequestId: 'r' } });
    expect(await tencent.send(sendRequest(), AbortSignal.timeout(5000)).catch((e) => e)).toMatchObject({ code: 'LimitExceeded.PhoneNumberThirtySecondLimit', retryable: true });
    nock('https://sms.tencentcloudapi.com').post('/').reply(200, { Response: { Error: { Code: 'LimitExceeded.PhoneNumberDailyLimit', Message: 'daily cap' }, RequestId: 'r' } });
    expect(await tencent.send(sendRequest(), AbortSignal.timeout(5000)).catch((e) => e)).toMatchObject({ code: 'LimitExceeded.PhoneNumberDailyLimit', retryable: false });
  });
});

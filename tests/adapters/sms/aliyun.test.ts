// Aliyun: uplink batches (sequence_id as a string, as a number, and beyond 2^53), receipts, and
// SendSms against nock (the signed RPC request, the template variable, Aliyun's error codes).
import nock from 'nock';
import { afterEach, describe, expect, it } from 'vitest';
import { aliyunPhoneNumber, aliyunSignature, AliyunProvider } from '../../../adapters/sms/aliyun.ts';
import { SmsPayloadError, type SmsSendRequest, type SmsWebhook } from '../../../adapters/sms/smsProvider.ts';

const aliyun = new AliyunProvider();
const json = (body: string): SmsWebhook => ({ rawBody: Buffer.from(body), contentType: 'application/json', url: 'https://gw/sms/x/inbound', query: {}, headers: {} });
const credentials = { accessKeyId: 'LTAIkey', accessKeySecret: 'aliyun-secret', signName: '阿里云短信测试', templateCode: 'SMS_1234' };
const sendRequest = (over: Partial<SmsSendRequest> = {}): SmsSendRequest => ({
  credentials, to: '+8613900001234', text: '您好，您的包裹已发出', messageId: 'msg_ali1', statusUrl: 'https://gw/sms/x/status',
  mediaUrls: [], settings: { templateVariable: 'content' }, ...over,
});

afterEach(() => nock.cleanAll());

describe('Aliyun uplink', () => {
  it('parses a batch with sequence_id as a string and as a number, keeping big ids exact', () => {
    const messages = aliyun.parseInbound(json(JSON.stringify([
      { phone_number: '13900001234', content: '你好', send_time: '2024-05-01 12:30:00', dest_code: '1234', sequence_id: '1234567' },
      { phone_number: '13900005678', content: 'TD', send_time: '2024-05-01 12:31:00', dest_code: '1234', sequence_id: 7654321, sign_name: '阿里云' },
    ]).replace('7654321', '12345678901234567890')));
    expect(messages).toEqual([
      { externalId: '1234567', from: '13900001234', to: '1234', text: '你好', sentAt: '2024-05-01T04:30:00.000Z' },
      { externalId: '12345678901234567890', from: '13900005678', to: '1234', text: 'TD', sentAt: '2024-05-01T04:31:00.000Z' },
    ]);
  });

  it('refuses a batch with one item missing its fields, and a body that is no array of objects', () => {
    expect(() => aliyun.parseInbound(json(JSON.stringify([{ phone_number: '1390', content: 'x', sequence_id: 1 }, { content: 'no phone', sequence_id: 2 }]))))
      .toThrow(/\[1\].*phone_number/);
    expect(() => aliyun.parseInbound(json('[]'))).toThrow(SmsPayloadError);
    expect(() => aliyun.parseInbound(json('not json'))).toThrow(SmsPayloadError);
  });

  it('answers the way Aliyun expects', () => {
    expect(JSON.parse(aliyun.inboundAck.body)).toEqual({ code: 0, msg: '接收成功' });
  });
});

describe('Aliyun receipts', () => {
  it('maps success and failure, with biz_id and out_id', () => {
    const receipts = aliyun.parseReceipts(json(JSON.stringify([
      { phone_number: '13900001234', send_time: '2024-05-01 12:30:00', report_time: '2024-05-01 12:30:05', success: true, err_code: 'DELIVERED', err_msg: '用户接收成功', sms_size: '1', biz_id: '932702304080415357^0', out_id: 'msg_ali1' },
      { phone_number: '13900001234', success: false, err_code: 'MK:0001', err_msg: '空号', sms_size: '1', biz_id: '932702304080415358^0' },
    ])));
    expect(receipts[0]).toEqual({ externalId: '932702304080415357^0', messageId: 'msg_ali1', status: 'delivered' });
    expect(receipts[1]).toMatchObject({ externalId: '932702304080415358^0', status: 'failed', errorCode: 'MK:0001' });
  });
});

describe('Aliyun SendSms', () => {
  it('sends a signed RPC request with the reply in the template variable and OutId', async () => {
    let params: Record<string, string> = {};
    nock('https://dysmsapi.aliyuncs.com').post('/', (body) => { params = Object.fromEntries(new URLSearchParams(body)); return true; })
      .reply(200, { Code: 'OK', Message: 'OK', BizId: '900619746936498440^0', RequestId: 'F655A8D5' });
    await expect(aliyun.send(sendRequest({ settings: { templateVariable: 'reply' } }), AbortSignal.timeout(5000))).resolves.toEqual({ externalId: '900619746936498440^0' });
    expect(params).toMatchObject({ Action: 'SendSms', PhoneNumbers: '13900001234', SignName: '阿里云短信测试', TemplateCode: 'SMS_1234', OutId: 'msg_ali1', AccessKeyId: 'LTAIkey' });
    expect(JSON.parse(params.TemplateParam!)).toEqual({ reply: '您好，您的包裹已发出' });
    const { Signature, ...signed } = params;
    expect(Signature).toBe(aliyunSignature('aliyun-secret', 'POST', signed));
  });

  it('writes mainland numbers national and others with their country code', () => {
    expect(aliyunPhoneNumber('+8613900001234')).toBe('13900001234');
    expect(aliyunPhoneNumber('+85261234567')).toBe('85261234567');
  });

  it("turns Aliyun's codes into permanent or retryable failures", async () => {
    nock('https://dysmsapi.aliyuncs.com').post('/').reply(200, { Code: 'isv.MOBILE_NUMBER_ILLEGAL', Message: '非法手机号' });
    expect(await aliyun.send(sendRequest(), AbortSignal.timeout(5000)).catch((e) => e)).toMatchObject({ code: 'isv.MOBILE_NUMBER_ILLEGAL', retryable: false });
    nock('https://dysmsapi.aliyuncs.com').post('/').reply(200, { Code: 'isv.BUSINESS_LIMIT_CONTROL', Message: '触发流控' });
    expect(await aliyun.send(sendRequest(), AbortSignal.timeout(5000)).catch((e) => e)).toMatchObject({ code: 'isv.BUSINESS_LIMIT_CONTROL', retryable: true });
    nock('https://dysmsapi.aliyuncs.com').post('/').reply(200, { Code: 'isp.RAM_PERMISSION_DENY', Message: 'no permission' });
    expect(await aliyun.send(sendRequest(), AbortSignal.timeout(5000)).catch((e) => e)).toMatchObject({ code: 'isp.RAM_PERMISSION_DENY', retryable: false });
    nock('https://dysmsapi.aliyuncs.com').post('/').reply(200, { Code: 'isp.SYSTEM_ERROR', Message: 'busy' });
    expect(await aliyun.send(sendRequest(), AbortSignal.timeout(5000)).catch((e) => e)).toMatchObject({ code: 'isp.SYSTEM_ERROR', retryable: true });
  });
});

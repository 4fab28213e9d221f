// Vonage: signed webhooks (md5hash and HMAC), inbound as form and JSON, delivery receipts, and
// /sms/json sends against nock (unicode type, per-part ids, error statuses).
import nock from 'nock';
import { afterEach, describe, expect, it } from 'vitest';
import { SmsPayloadError, type SmsSendRequest, type SmsWebhook } from '../../../adapters/sms/smsProvider.ts';
import { vonageSignature, VonageProvider } from '../../../adapters/sms/vonage.ts';

const vonage = new VonageProvider();
const form = (fields: Record<string, string>): SmsWebhook => ({
  rawBody: Buffer.from(new URLSearchParams(fields).toString()), contentType: 'application/x-www-form-urlencoded', url: 'https://gw/x', query: {}, headers: {},
});
const inbound = { msisdn: '447700900123', to: '447700900000', messageId: '0A0000000123ABCD1', text: 'Hello & goodbye=ok', type: 'text', keyword: 'HELLO',
  'message-timestamp': '2024-05-01 12:30:00', timestamp: String(Math.floor(Date.now() / 1000)), nonce: 'aaaa-bbbb' };
const credentials = { apiKey: 'key1', apiSecret: 'secret1', from: 'Shop', signatureSecret: 'sig-secret', signatureMethod: 'sha256' as const };
const sendRequest = (over: Partial<SmsSendRequest> = {}): SmsSendRequest => ({
  credentials, to: '+447700900123', text: 'Your order shipped', messageId: 'msg_v1', statusUrl: 'https://gw/x/status', mediaUrls: [],
  settings: { templateVariable: 'content' }, ...over,
});

afterEach(() => nock.cleanAll());

describe('Vonage signatures', () => {
  it('replaces & and = in values and sorts the keys', () => {
    expect(vonageSignature({ b: '1', a: 'x&y=z', sig: 'ignored' }, 's', 'md5hash')).toBe(vonageSignature({ a: 'x_y_z', b: '1' }, 's', 'md5hash'));
  });

  for (const method of ['md5hash', 'md5', 'sha1', 'sha256', 'sha512'] as const) {
    it(`verifies ${method}, in either case, and refuses a wrong one`, () => {
      const c = { ...credentials, signatureMethod: method };
      const sig = vonageSignature(inbound, c.signatureSecret, method);
      expect(vonage.verify(form({ ...inbound, sig }), c)).toBe(true);
      expect(vonage.verify(form({ ...inbound, sig: sig.toUpperCase() }), c)).toBe(true);
      expect(vonage.verify(form({ ...inbound, text: 'tampered', sig }), c)).toBe(false);
      expect(vonage.verify(form(inbound), c)).toBe(false);
      // Signed, but sent more than the 25 h Vonage keeps retrying, or from well ahead of our clock: a replay.
      const at = (secondsAgo: number) => { const f = { ...inbound, timestamp: String(Math.floor(Date.now() / 1000) - secondsAgo) }; return { ...f, sig: vonageSignature(f, c.signatureSecret, method) }; };
      expect(vonage.verify(form(at(24 * 3600)), c)).toBe(true);
      expect(vonage.verify(form(at(26 * 3600)), c)).toBe(false);
      expect(vonage.verify(form(at(-3600)), c)).toBe(false);
    });
  }

  it('refuses a correctly signed webhook whose timestamp is empty or not a number', () => {
    const signedWith = (timestamp: string) => { const f = { ...inbound, timestamp }; return { ...f, sig: vonageSignature(f, credentials.signatureSecret, credentials.signatureMethod) }; };
    expect(vonage.verify(form(signedWith(String(Math.floor(Date.now() / 1000)))), credentials)).toBe(true);
    for (const timestamp of ['', ' ', 'abc', 'NaN', 'Infinity', '1e99']) {
      expect(vonage.verify(form(signedWith(timestamp)), credentials), JSON.stringify(timestamp)).toBe(false);
    }
    // Without the field at all (older signing setups) the signature alone decides.
    const { timestamp: _omitted, ...untimed } = inbound;
    expect(vonage.verify(form({ ...untimed, sig: vonageSignature(untimed, credentials.signatureSecret, credentials.signatureMethod) }), credentials)).toBe(true);
  });

  it('signs only when the inbox has a signature secret', () => {
    expect(vonage.signs(credentials)).toBe(true);
    expect(vonage.signs({ apiKey: 'k', apiSecret: 's', from: 'x' })).toBe(false);
  });
});

describe('Vonage webhooks', () => {
  it('parses an inbound SMS from a form and from JSON', () => {
    const expected = { externalId: '0A0000000123ABCD1', from: '+447700900123', to: '447700900000', text: 'Hello & goodbye=ok', sentAt: '2024-05-01T12:30:00.000Z' };
    expect(vonage.parseInbound(form(inbound))).toEqual([expected]);
    expect(vonage.parseInbound({ ...form(inbound), rawBody: Buffer.from(JSON.stringify(inbound)), contentType: 'application/json' })).toEqual([expected]);
    expect(() => vonage.parseInbound(form({ to: '1', text: 'x' }))).toThrow(SmsPayloadError);
  });

  it('maps delivery receipts with client-ref and err-code', () => {
    const dlr = (status: string, extra: Record<string, string> = {}) => vonage.parseReceipts(form({ msisdn: '447700900123', to: 'Shop', messageId: '0B001', status, 'client-ref': 'msg_v1', ...extra }));
    expect(dlr('delivered')).toEqual([{ externalId: '0B001', messageId: 'msg_v1', status: 'delivered' }]);
    expect(dlr('accepted')).toEqual([{ externalId: '0B001', messageId: 'msg_v1', status: 'sent' }]);
    expect(dlr('rejected', { 'err-code': '6' })[0]).toMatchObject({ status: 'failed', errorCode: '6' });
    expect(dlr('unknown')).toEqual([]);
  });
});

describe('Vonage send', () => {
  it('posts to /sms/json with client-ref and callback; UCS-2 text goes as unicode; every part id is returned', async () => {
    let fields: Record<string, string> = {};
    nock('https://rest.nexmo.com').post('/sms/json', (b) => { fields = Object.fromEntries(new URLSearchParams(b)); return true; })
      .reply(200, { 'message-count': '2', messages: [{ to: '447700900123', 'message-id': '0C01', status: '0' }, { to: '447700900123', 'message-id': '0C02', status: '0' }] });
    await expect(vonage.send(sendRequest({ text: '你好 👋' }), AbortSignal.timeout(5000))).resolves.toEqual({ externalId: '0C01', partIds: ['0C02'] });
    expect(fields).toMatchObject({ api_key: 'key1', api_secret: 'secret1', from: 'Shop', to: '447700900123', text: '你好 👋', type: 'unicode', 'client-ref': 'msg_v1', callback: 'https://gw/x/status' });
  });

  it('turns a status into a failure with its code: throttled is retried, an invalid number is not', async () => {
    nock('https://rest.nexmo.com').post('/sms/json').reply(200, { 'message-count': '1', messages: [{ status: '1', 'error-text': 'Throughput Rate Exceeded' }] });
    expect(await vonage.send(sendRequest(), AbortSignal.timeout(5000)).catch((e) => e)).toMatchObject({ code: '1', retryable: true });
    nock('https://rest.nexmo.com').post('/sms/json').reply(200, { 'message-count': '1', messages: [{ status: '3', 'error-text': 'Invalid to number' }] });
    expect(await vonage.send(sendRequest(), AbortSignal.timeout(5000)).catch((e) => e)).toMatchObject({ code: '3', retryable: false });
  });

  it('counts a multipart send whose later part was throttled as sent, so no part goes twice', async () => {
    nock('https://rest.nexmo.com').post('/sms/json')
      .reply(200, { 'message-count': '2', messages: [{ 'message-id': '0D01', status: '0' }, { status: '1', 'error-text': 'Throughput Rate Exceeded' }] });
    await expect(vonage.send(sendRequest(), AbortSignal.timeout(5000))).resolves.toEqual({ externalId: '0D01', partIds: [] });
  });
});

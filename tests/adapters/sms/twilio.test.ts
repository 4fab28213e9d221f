// Twilio: the PROTOCOLS.md signature vector, inbound (with MMS media), status callbacks, and sends
// against a nock-faked Messages.json (errors, the message list asked after a timeout).
import nock from 'nock';
import { afterEach, describe, expect, it } from 'vitest';
import { formFields, SmsPayloadError, SmsProviderError, type SmsSendRequest, type SmsWebhook } from '../../../adapters/sms/smsProvider.ts';
import { twilioSignature, TwilioProvider } from '../../../adapters/sms/twilio.ts';

const twilio = new TwilioProvider();
const credentials = { accountSid: 'AC123', authToken: 'auth-token-secret', from: '+15005550006' };
const webhook = (fields: Record<string, string>, url = 'https://gw.example.com/sms/inb_1/inbound', headers: Record<string, string> = {}): SmsWebhook => ({
  rawBody: Buffer.from(new URLSearchParams(fields).toString()), contentType: 'application/x-www-form-urlencoded', url, query: {}, headers,
});
const sendRequest = (over: Partial<SmsSendRequest> = {}): SmsSendRequest => ({
  credentials, to: '+14158675309', text: 'Your order shipped', messageId: 'msg_1', statusUrl: 'https://gw.example.com/sms/inb_1/status',
  mediaUrls: [], settings: { templateVariable: 'content' }, ...over,
});

afterEach(() => nock.cleanAll());

describe('Twilio signature', () => {
  it('matches the PROTOCOLS.md vector', () => {
    const fields = new Map(Object.entries({ CallSid: ['CA1234567890ABCDE'], Digits: ['1234'], From: ['+14158675309'], To: ['+18005551212'], Caller: ['+14158675309'] }));
    expect(twilioSignature('12345', 'https://mycompany.com/myapp.php?foo=1&bar=2', fields)).toBe('RSOYDt4T1cUTdK1PDd93/VVr8B8=');
  });

  it('verifies a webhook signed with or without :443, and refuses a wrong one', () => {
    const fields = { MessageSid: 'SM1', From: '+14158675309', To: '+15005550006', Body: 'hi' };
    const url = 'https://gw.example.com/sms/inb_1/inbound';
    const raw = webhook(fields, url);
    const signature = twilioSignature(credentials.authToken, 'https://gw.example.com:443/sms/inb_1/inbound', formFields(raw.rawBody));
    expect(twilio.verify({ ...raw, headers: { 'x-twilio-signature': signature } }, credentials)).toBe(true);
    expect(twilio.verify({ ...raw, headers: { 'x-twilio-signature': twilioSignature(credentials.authToken, url, formFields(raw.rawBody)) } }, credentials)).toBe(true);
    expect(twilio.verify({ ...raw, headers: { 'x-twilio-signature': signature } }, { ...credentials, authToken: 'other' })).toBe(false);
    expect(twilio.verify(raw, credentials)).toBe(false);
  });

  it('sorts the values of a repeated key', () => {
    const a = twilioSignature('t', 'https://x', new Map([['MediaUrl', ['b', 'a']]]));
    const b = twilioSignature('t', 'https://x', new Map([['MediaUrl', ['a', 'b']]]));
    expect(a).toBe(b);
  });
});

describe('Twilio webhooks', () => {
  it('parses an inbound SMS with media, ignoring fields added without notice', () => {
    const [m] = twilio.parseInbound(webhook({
      MessageSid: 'SM0123', AccountSid: 'AC123', From: '+14158675309', To: '+15005550006', Body: 'Where is my parcel?',
      NumMedia: '1', MediaUrl0: 'https://api.twilio.com/media/ME1', MediaContentType0: 'image/jpeg', FromCity: 'SAN FRANCISCO',
    }));
    expect(m).toMatchObject({ externalId: 'SM0123', from: '+14158675309', to: '+15005550006', text: 'Where is my parcel?',
      attachments: [{ url: 'https://api.twilio.com/media/ME1', contentType: 'image/jpeg' }] });
  });

  it('refuses an inbound push without MessageSid', () => {
    expect(() => twilio.parseInbound(webhook({ From: '+14158675309', To: '+1500', Body: 'x' }))).toThrow(SmsPayloadError);
  });

  it('maps status callbacks, with the error code on failure', () => {
    const receipt = (MessageStatus: string, extra: Record<string, string> = {}) => twilio.parseReceipts(webhook({ MessageSid: 'SM9', MessageStatus, ...extra }));
    expect(receipt('sent')).toEqual([{ externalId: 'SM9', status: 'sent' }]);
    expect(receipt('delivered')).toEqual([{ externalId: 'SM9', status: 'delivered' }]);
    expect(receipt('undelivered', { ErrorCode: '30003' })[0]).toMatchObject({ status: 'failed', errorCode: '30003' });
    expect(receipt('partially_delivered')).toEqual([]);
  });
});

describe('Twilio send', () => {
  it('posts To, From, Body and StatusCallback with Basic auth', async () => {
    let form: URLSearchParams | undefined;
    const scope = nock('https://api.twilio.com').post('/2010-04-01/Accounts/AC123/Messages.json', (body) => { form = new URLSearchParams(body); return true; })
      .basicAuth({ user: 'AC123', pass: 'auth-token-secret' }).reply(201, { sid: 'SMabc', status: 'queued' });
    await expect(twilio.send(sendRequest({ mediaUrls: ['https://cdn.example.com/a.png'] }), AbortSignal.timeout(5000))).resolves.toEqual({ externalId: 'SMabc' });
    expect(scope.isDone()).toBe(true);
    expect(Object.fromEntries(form!)).toMatchObject({ To: '+14158675309', From: '+15005550006', Body: 'Your order shipped',
      StatusCallback: 'https://gw.example.com/sms/inb_1/status', MediaUrl: 'https://cdn.example.com/a.png' });
  });

  it('uses the messaging service when there is one, and the apiBaseUrl', async () => {
    let form: URLSearchParams | undefined;
    nock('https://proxy.example.com').post('/2010-04-01/Accounts/AC123/Messages.json', (body) => { form = new URLSearchParams(body); return true; }).reply(201, { sid: 'SMx' });
    await twilio.send(sendRequest({ credentials: { accountSid: 'AC123', authToken: 't', messagingServiceSid: 'MG1' }, settings: { templateVariable: 'content', apiBaseUrl: 'https://proxy.example.com' } }), AbortSignal.timeout(5000));
    expect(form!.get('MessagingServiceSid')).toBe('MG1');
    expect(form!.has('From')).toBe(false);
  });

  it("turns Twilio's errors into permanent or retryable failures with Twilio's code", async () => {
    nock('https://api.twilio.com').post(/Messages.json/).reply(400, { code: 21211, message: "The 'To' number is not a valid phone number.", status: 400 });
    const permanent = await twilio.send(sendRequest(), AbortSignal.timeout(5000)).catch((e) => e);
    expect(permanent).toBeInstanceOf(SmsProviderError);
    expect(permanent).toMatchObject({ code: '21211', retryable: false });
    nock('https://api.twilio.com').post(/Messages.json/).reply(429, { code: 20429, message: 'Too Many Requests' });
    expect(await twilio.send(sendRequest(), AbortSignal.timeout(5000)).catch((e) => e)).toMatchObject({ code: '20429', retryable: true });
    nock('https://api.twilio.com').post(/Messages.json/).reply(503, 'busy');
    expect(await twilio.send(sendRequest(), AbortSignal.timeout(5000)).catch((e) => e)).toMatchObject({ code: 'http_503', retryable: true });
  });

  it('finds an unanswered send in the message list by its body', async () => {
    nock('https://api.twilio.com').get('/2010-04-01/Accounts/AC123/Messages.json').query(true)
      .reply(200, { messages: [{ sid: 'SMother', body: 'something else' }, { sid: 'SMfound', body: 'Your order shipped', date_created: new Date().toUTCString() }] });
    await expect(twilio.findSent(sendRequest(), new Date(), AbortSignal.timeout(5000))).resolves.toEqual(['SMfound']);
    nock('https://api.twilio.com').get('/2010-04-01/Accounts/AC123/Messages.json').query(true).reply(200, { messages: [] });
    await expect(twilio.findSent(sendRequest(), new Date(), AbortSignal.timeout(5000))).resolves.toEqual([]);
    // A twin sent a minute before the marker is not this one.
    nock('https://api.twilio.com').get('/2010-04-01/Accounts/AC123/Messages.json').query(true)
      .reply(200, { messages: [{ sid: 'SMolder', body: 'Your order shipped', date_created: new Date(Date.now() - 30_000).toUTCString() }] });
    await expect(twilio.findSent(sendRequest(), new Date(), AbortSignal.timeout(5000))).resolves.toEqual([]);
  });
});

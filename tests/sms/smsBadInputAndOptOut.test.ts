// SMS webhooks that are not what the provider sends get a clear 4xx and change nothing (wrong
// signature, missing or wrong token, missing fields, a sender that is no phone number, a 2 MB body,
// an unknown inbox); STOP / 退订 opt a contact out of one inbox (later replies fail with a clear
// reason) and START / 订阅 reverse it, each with one contact.updated carrying `change`.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventsOfType, streamEvents, waitFor } from '../support/coreFixtures.ts';
import { startSmsTestBed, type SmsTestBed, smsWebhooks } from './smsFixtures.ts';

describe('SMS bad input and opt-out', () => {
  let bed: Awaited<ReturnType<typeof startSmsTestBed>>;
  let t: SmsTestBed['t'], tenant: SmsTestBed['tenant'], fake: SmsTestBed['fake'], inboxes: SmsTestBed['inboxes'];
  beforeAll(async () => { bed = await startSmsTestBed(); ({ t, tenant, fake, inboxes } = bed); });
  afterAll(() => bed?.stop());

  /** Nothing stored: no job queued, no conversation, no event. */
  const snapshot = async () => ({
    jobs: await t.gateway.queues.inbound.getJobCountByTypes('waiting', 'active', 'completed', 'failed', 'delayed'),
    conversations: (await t.api('GET', `/api/v1/accounts/${tenant.accountId}/conversations?limit=100`, { key: tenant.apiKey })).body.items.length,
    events: (await streamEvents(t, tenant.accountId)).length,
  });
  const path = (url: string) => new URL(url).pathname + new URL(url).search;
  const post = (url: string, body: string, contentType = 'application/json', headers: Record<string, string> = {}) =>
    t.api('POST', url, { raw: body, headers: { 'content-type': contentType, ...headers } });

  it('refuses bad webhooks with a clear 4xx and stores nothing', async () => {
    const before = await snapshot();
    const aliyunPath = path(inboxes.aliyun.urls.inboundUrl);
    const aliyunNoToken = aliyunPath.replace(/\?token=.*$/, '');
    const item = { phone_number: '13900001234', content: 'hi', send_time: '2024-05-01 12:00:00', dest_code: '01', sequence_id: '99' };
    const cases: [string, () => Promise<{ status: number; body: any }>, number, string][] = [
      ['Twilio without a signature', () => post(path(inboxes.twilio.urls.inboundUrl), 'MessageSid=SM1&From=%2B14158675309&To=%2B15005550006&Body=hi', 'application/x-www-form-urlencoded'), 401, 'invalid_signature'],
      ['Twilio with a wrong signature', () => post(path(inboxes.twilio.urls.inboundUrl), 'MessageSid=SM1&From=%2B14158675309&To=%2B15005550006&Body=hi', 'application/x-www-form-urlencoded', { 'x-twilio-signature': 'RSOYDt4T1cUTdK1PDd93/VVr8B8=' }), 401, 'invalid_signature'],
      ['Aliyun without its token', () => post(aliyunNoToken, JSON.stringify([item])), 401, 'missing_token'],
      ['Aliyun with a wrong token', () => post(`${aliyunNoToken}?token=${'x'.repeat(32)}`, JSON.stringify([item])), 401, 'invalid_token'],
      ['Tencent with another inbox token', () => post(path(inboxes.tencent.urls.inboundUrl).replace(/token=.*/, new URL(inboxes.aliyun.urls.inboundUrl).search.slice(1)), JSON.stringify({ mobile: '13711112222', nationcode: '86', text: 'hi', time: 1 })), 401, 'invalid_token'],
      ['Vonage with a wrong sig', () => post(path(inboxes.vonage.urls.inboundUrl), 'msisdn=14158675309&to=1&messageId=0A1&text=hi&sig=00', 'application/x-www-form-urlencoded'), 401, 'invalid_signature'],
      ['Aliyun item without phone_number', () => post(aliyunPath, JSON.stringify([item, { content: 'x', sequence_id: 2 }])), 400, 'invalid_request'],
      ['Aliyun body that is not JSON', () => post(aliyunPath, '{oops'), 400, 'invalid_json'],
      ['Aliyun sender that is no phone number', () => post(aliyunPath, JSON.stringify([{ ...item, phone_number: 'ALIBABA' }])), 400, 'invalid_request'],
      ['Aliyun empty body', () => post(aliyunPath, ''), 400, 'invalid_request'],
      ['a 2 MB body', () => post(aliyunPath, JSON.stringify([{ ...item, content: 'x'.repeat(2 * 1024 * 1024) }])), 413, 'payload_too_large'],
      ['a body over the SMS limit, refused before it is read', () => post(aliyunPath, 'x'.repeat(600 * 1024)), 413, 'payload_too_large'],
      ['signed Vonage with a JSON array under text/json', () => post(path(inboxes.vonage.urls.inboundUrl), '[1,2]', 'text/json'), 400, 'invalid_request'],
      ['signed Vonage with bad JSON under text/json', () => post(path(inboxes.vonage.urls.inboundUrl), '{oops', 'text/json'), 400, 'invalid_request'],
      ['an unknown inbox', () => post('/sms/inb_unknown/inbound', JSON.stringify([item])), 404, 'not_found'],
      ['an unknown inbox (status)', () => post('/sms/inb_unknown/status', '[]'), 404, 'not_found'],
      ['a receipt without its token', () => post(path(inboxes.tencent.urls.statusUrl).replace(/\?token=.*$/, ''), '[]'), 401, 'missing_token'],
      ['a receipt missing sid', () => post(path(inboxes.tencent.urls.statusUrl), JSON.stringify([{ report_status: 'SUCCESS' }])), 400, 'invalid_request'],
    ];
    for (const [what, send, status, code] of cases) {
      const r = await send();
      expect(r.status, what).toBe(status);
      expect(r.body.error.code, what).toBe(code);
      if (what.includes('before it is read')) expect(r.body.error.message, what).toMatch(/larger than 524288 bytes/);
      expect(JSON.stringify(r.body), what).not.toMatch(/at \w+ \(|node_modules/);
    }
    // A Twilio sender that is no phone number, correctly signed.
    const hooks = smsWebhooks(t, inboxes.twilio, 'twilio');
    const alpha = await hooks.inbound('SMalpha', 'hi', { national: 'SHOP', e164: 'SHOPNAME' });
    expect(alpha.status).toBe(400);
    expect(alpha.body.error.message).toMatch(/not a phone number/);
    expect(await snapshot()).toEqual(before);
  });

  it('opts a contact out on STOP and back in on START, refusing replies in between', async () => {
    const hooks = smsWebhooks(t, inboxes.tencent, 'tencent');
    const phone = { national: '13800138000', e164: '+8613800138000' };
    await hooks.inbound('1714030001', 'Hello, my order?', phone);
    const conversation = await waitFor(async () => ((await t.api('GET', `/api/v1/accounts/${tenant.accountId}/conversations?limit=100`, { key: tenant.apiKey })).body.items as any[])
      .find((c) => c.inboxId === inboxes.tencent.id), (c) => !!c, 'the conversation');
    const reply = async (text: string) => {
      const r = await t.api('POST', `/api/v1/accounts/${tenant.accountId}/conversations/${conversation.id}/messages`, { key: tenant.apiKey, body: { text, agentId: tenant.agentId } });
      expect(r.status).toBe(202);
      return waitFor(() => t.gateway.services.conversations.message(r.body.id), (m) => m?.status !== 'queued', `reply "${text}" handled`);
    };
    const changes = async () => eventsOfType(await streamEvents(t, tenant.accountId), 'contact.updated')
      .filter((e) => e.subject === conversation.contactId).map((e) => (e.data as any).change);

    expect((await hooks.inbound('1714030002', ' 退订 ', phone)).status).toBe(200);
    // The provider pushes it again: nothing more happens.
    expect((await hooks.inbound('1714030002', ' 退订 ', phone)).status).toBe(200);
    expect(await changes()).toEqual(['sms_opted_out']);
    const refused = await reply('Sorry to see you go');
    expect(refused).toMatchObject({ status: 'failed', error: { code: 'sms_opted_out' } });
    expect(refused!.error!.message).toMatch(/opted out of SMS/);
    const failedEvent = eventsOfType(await streamEvents(t, tenant.accountId), 'message.failed').find((e) => (e.data as any).id === refused!.id);
    expect(failedEvent).toBeDefined();
    // STOP again while opted out changes nothing.
    await hooks.inbound('1714030003', 'STOP', phone);
    expect(await changes()).toEqual(['sms_opted_out']);

    const callsBefore = fake.calls.filter((c) => c.provider === 'tencent').length;
    await hooks.inbound('1714030004', '订阅', phone);
    expect(await changes()).toEqual(['sms_opted_out', 'sms_opted_in']);
    const event = eventsOfType(await streamEvents(t, tenant.accountId), 'contact.updated').at(-1)!;
    expect(event.data).toMatchObject({ channel: 'sms', channelId: phone.e164, change: 'sms_opted_in', sms: { inboxId: inboxes.tencent.id, optedOut: false, keyword: '订阅' } });
    expect(await reply('Welcome back')).toMatchObject({ status: 'sent' });
    expect(fake.calls.filter((c) => c.provider === 'tencent')).toHaveLength(callsBefore + 1);

    // The keyword messages still reached the conversation.
    const history = await t.api('GET', `/api/v1/accounts/${tenant.accountId}/conversations/${conversation.id}/messages`, { key: tenant.apiKey });
    expect((history.body.items as any[]).filter((m) => m.direction === 'inbound').map((m) => m.content.text)).toEqual(['Hello, my order?', ' 退订 ', 'STOP', '订阅']);
  });

  it('reads Aliyun national numbers as CN without a defaultRegion, and skips a junk sender inside a batch', async () => {
    const created = await t.api('POST', `/api/v1/accounts/${tenant.accountId}/inboxes`, {
      key: tenant.apiKey, body: { type: 'sms', name: 'Aliyun, no region', credentials: { accessKeyId: 'k', accessKeySecret: 's', signName: '商店', templateCode: 'SMS_1' }, settings: { provider: 'aliyun' } },
    });
    expect(created.status).toBe(201);
    const url = path(created.body.urls.inboundUrl);
    const good = { phone_number: '13900005678', content: 'from the batch', send_time: '2024-05-01 12:00:00', sequence_id: 'b-1' };
    const batch = await post(url, JSON.stringify([good, { ...good, phone_number: 'ALIBABA', sequence_id: 'b-2' }]));
    expect(batch.status).toBe(200);
    const conversation = await waitFor(async () => ((await t.api('GET', `/api/v1/accounts/${tenant.accountId}/conversations?limit=100`, { key: tenant.apiKey })).body.items as any[])
      .filter((c) => c.inboxId === created.body.id), (c) => c.length > 0, 'the batch conversation');
    expect(conversation).toHaveLength(1);
    const contact = await t.api('GET', `/api/v1/accounts/${tenant.accountId}/contacts/${conversation[0].contactId}`, { key: tenant.apiKey });
    expect(JSON.stringify(contact.body)).toContain('+8613900005678');
  });
});

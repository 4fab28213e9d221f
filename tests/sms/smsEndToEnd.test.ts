// SMS end to end, for each provider, against a local fake provider API (the inbox's apiBaseUrl): an
// inbound SMS reaches an agent, the agent's reply reaches the fake API, and a receipt marks it
// delivered. A push delivered twice is stored once; the same receipt twice changes nothing.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventsOfType, streamEvents, waitFor } from '../support/coreFixtures.ts';
import { startSmsTestBed, type SmsTestBed, expectedAck, receiptAckStatus, smsCredentials, smsWebhooks, type SmsProviderName } from './smsFixtures.ts';

const phones: Record<SmsProviderName, { national: string; e164: string }> = {
  twilio: { national: '4158675309', e164: '+14158675309' },
  aliyun: { national: '13900001234', e164: '+8613900001234' },
  tencent: { national: '13711112222', e164: '+8613711112222' },
  vonage: { national: '7700900123', e164: '+447700900123' },
};

describe('SMS end to end', () => {
  let bed: Awaited<ReturnType<typeof startSmsTestBed>>;
  let t: SmsTestBed['t'], tenant: SmsTestBed['tenant'], fake: SmsTestBed['fake'], inboxes: SmsTestBed['inboxes'];
  beforeAll(async () => { bed = await startSmsTestBed(); ({ t, tenant, fake, inboxes } = bed); });
  afterAll(() => bed?.stop());

  it('shows an unguessable token in the URLs of every SMS inbox, kept across a settings change', async () => {
    const aliyun = inboxes.aliyun;
    expect(aliyun.urls.inboundUrl).toMatch(new RegExp(`/sms/${aliyun.id}/inbound\\?token=[A-Za-z0-9_-]{32}$`));
    const patched = await t.api('PATCH', `/api/v1/accounts/${tenant.accountId}/inboxes/${aliyun.id}`, {
      key: tenant.apiKey, body: { settings: { provider: 'aliyun', apiBaseUrl: `${fake.url}/aliyun`, defaultRegion: 'CN', sendsPerSecond: 50 } },
    });
    expect(patched.body.urls).toEqual(aliyun.urls);
  });

  for (const provider of Object.keys(smsCredentials) as SmsProviderName[]) {
    it(`${provider}: an SMS reaches an agent, the reply reaches the provider, a receipt marks it delivered`, async () => {
      const inbox = inboxes[provider];
      const hooks = smsWebhooks(t, inbox, provider);
      const id = provider === 'twilio' ? 'SM00000000000000000000000000000001' : provider === 'vonage' ? '0A00000012345678' : '1714036504';
      const first = await hooks.inbound(id, 'Where is my parcel? 我的包裹在哪里', phones[provider]);
      expect(first.status).toBe(expectedAck[provider].status);
      if (expectedAck[provider].body !== undefined) expect(first.body).toEqual(expectedAck[provider].body);
      // The provider retries the same push: stored once.
      expect((await hooks.inbound(id, 'Where is my parcel? 我的包裹在哪里', phones[provider])).status).toBe(expectedAck[provider].status);

      const conversation = await waitFor(async () => {
        const list = await t.api('GET', `/api/v1/accounts/${tenant.accountId}/conversations?limit=100`, { key: tenant.apiKey });
        return (list.body.items as any[]).find((c) => c.inboxId === inbox.id);
      }, (c) => !!c?.assigneeId, `the ${provider} conversation assigned`);
      expect(conversation.assigneeId).toBe(tenant.agentId);
      const contact = await t.api('GET', `/api/v1/accounts/${tenant.accountId}/contacts/${conversation.contactId}`, { key: tenant.apiKey });
      expect(contact.body.channelId).toBe(phones[provider].e164);
      const history = await t.api('GET', `/api/v1/accounts/${tenant.accountId}/conversations/${conversation.id}/messages`, { key: tenant.apiKey });
      const inbound = (history.body.items as any[]).filter((m) => m.direction === 'inbound');
      expect(inbound).toHaveLength(1);
      expect(inbound[0]).toMatchObject({ channel: 'sms', from: { channelId: phones[provider].e164 }, content: { type: 'text', text: 'Where is my parcel? 我的包裹在哪里' } });

      const before = fake.calls.filter((c) => c.provider === provider).length;
      const reply = await t.api('POST', `/api/v1/accounts/${tenant.accountId}/conversations/${conversation.id}/messages`, {
        key: tenant.agentToken, body: { text: 'It left the warehouse today' },
      });
      expect(reply.status).toBe(202);
      const sent = await waitFor(async () => (await t.gateway.services.conversations.message(reply.body.id)), (m) => m?.status === 'sent', `${provider} reply sent`);
      const calls = fake.calls.filter((c) => c.provider === provider);
      expect(calls).toHaveLength(before + 1);
      const call = calls.at(-1)!;
      if (provider === 'twilio') expect(Object.fromEntries(new URLSearchParams(call.body))).toMatchObject({ To: phones.twilio.e164, Body: 'It left the warehouse today', From: '+15005550006' });
      if (provider === 'aliyun') expect(JSON.parse(new URLSearchParams(call.body).get('TemplateParam')!)).toEqual({ content: 'It left the warehouse today' });
      if (provider === 'tencent') expect(JSON.parse(call.body)).toMatchObject({ PhoneNumberSet: [phones.tencent.e164], TemplateParamSet: ['It left the warehouse today'] });
      if (provider === 'vonage') expect(Object.fromEntries(new URLSearchParams(call.body))).toMatchObject({ to: '447700900123', text: 'It left the warehouse today', 'client-ref': reply.body.id });

      const receipt = await hooks.receipt(sent!.externalId!, reply.body.id);
      expect(receipt.status).toBe(receiptAckStatus[provider]);
      expect((await t.gateway.services.conversations.message(reply.body.id))?.status).toBe('delivered');
      const eventsBefore = await streamEvents(t, tenant.accountId);
      // The same receipt again, and a late failure: nothing moves, nothing is emitted.
      expect((await hooks.receipt(sent!.externalId!, reply.body.id)).status).toBe(receiptAckStatus[provider]);
      expect((await hooks.receipt(sent!.externalId!, reply.body.id, false)).status).toBe(receiptAckStatus[provider]);
      expect((await t.gateway.services.conversations.message(reply.body.id))?.status).toBe('delivered');
      const eventsAfter = await streamEvents(t, tenant.accountId);
      expect(eventsAfter).toHaveLength(eventsBefore.length);
      const mine = (type: string) => eventsOfType(eventsAfter, type).filter((e) => (e.data as any).id === reply.body.id);
      expect(mine('message.sent')).toHaveLength(1);
      expect(mine('message.delivered')).toHaveLength(1);
    });
  }

  it('fails a reply with the provider receipt code', async () => {
    const inbox = inboxes.twilio;
    const conversation = ((await t.api('GET', `/api/v1/accounts/${tenant.accountId}/conversations?limit=100`, { key: tenant.apiKey })).body.items as any[])
      .find((c) => c.inboxId === inbox.id);
    const reply = await t.api('POST', `/api/v1/accounts/${tenant.accountId}/conversations/${conversation.id}/messages`, { key: tenant.agentToken, body: { text: 'One more thing' } });
    const sent = await waitFor(async () => (await t.gateway.services.conversations.message(reply.body.id)), (m) => m?.status === 'sent', 'reply sent');
    await smsWebhooks(t, inbox, 'twilio').receipt(sent!.externalId!, reply.body.id, false);
    expect(await t.gateway.services.conversations.message(reply.body.id)).toMatchObject({ status: 'failed', error: { code: '30003' } });
    const failed = eventsOfType(await streamEvents(t, tenant.accountId), 'message.failed').filter((e) => (e.data as any).id === reply.body.id);
    expect(failed).toHaveLength(1);
  });

  it("fails a reply the provider refuses, with the provider's code", async () => {
    const conversation = ((await t.api('GET', `/api/v1/accounts/${tenant.accountId}/conversations?limit=100`, { key: tenant.apiKey })).body.items as any[])
      .find((c) => c.inboxId === inboxes.twilio.id);
    const reply = await t.api('POST', `/api/v1/accounts/${tenant.accountId}/conversations/${conversation.id}/messages`, { key: tenant.agentToken, body: { text: 'REFUSE_ME' } });
    const failed = await waitFor(() => t.gateway.services.conversations.message(reply.body.id), (m) => m?.status === 'failed', 'reply failed');
    expect(failed!.error).toMatchObject({ code: '21211' });
    expect(failed!.error!.message).toMatch(/not a valid phone number/);
  });

  it('counts segments for the agent before sending', async () => {
    const r = await t.api('POST', `/api/v1/accounts/${tenant.accountId}/inboxes/${inboxes.tencent.id}/sms/segments`, { key: tenant.agentToken, body: { text: '您好'.repeat(40) } });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ encoding: 'UCS-2', units: 80, segments: 2, perSegment: 67, provider: 'tencent' });
    const gsm = await t.api('POST', `/api/v1/accounts/${tenant.accountId}/inboxes/${inboxes.twilio.id}/sms/segments`, { key: tenant.apiKey, body: { text: 'Hello' } });
    expect(gsm.body).toMatchObject({ encoding: 'GSM-7', segments: 1 });
    const openapi = await t.api('GET', '/openapi.json');
    expect(Object.keys(openapi.body.paths)).toContain('/api/v1/accounts/{accountId}/inboxes/{inboxId}/sms/segments');
  });
});

// Once-only SMS sends against nock and the real Redis: one provider call per outbound message id
// across retries and concurrent attempts; after an unanswered call Twilio is asked before sending
// again, other providers fail the message rather than risk a second copy. Also the cross-process
// rate limit and a receipt that arrives before the send's own answer.
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import nock from 'nock';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { PermanentSendError, SendInFlightError, type SendRequest } from '../../adapters/channelAdapter.ts';
import { runScript } from '../../src/commands/index.ts';
import { keyDigest } from '../../src/ids.ts';
import type { InboxRecord } from '../../src/inboxes/inboxDirectory.ts';
import { createLogger } from '../../src/logger.ts';
import { createRedis } from '../../src/redis/connection.ts';
import { keyspace } from '../../src/redis/keys.ts';
import { SmsOptOuts } from '../../src/sms/smsOptOut.ts';
import { SmsReceipts } from '../../src/sms/smsReceipts.ts';
import { SmsSender, type SmsSenderDeps } from '../../src/sms/smsSender.ts';
import type { SmsProvider } from '../../adapters/sms/smsProvider.ts';
import { smsProviders } from '../../adapters/sms/smsProviders.ts';
import { WebhookTargetError } from '../../src/events/webhookTarget.ts';
import { redisUrl } from '../support/testGateway.ts';

const keys = keyspace(`t${randomBytes(4).toString('hex')}`);
let redis: Redis;
let second: Redis;
let receipts: SmsReceipts;
let sender: SmsSender;

const credentials = {
  twilio: { accountSid: 'AC1', authToken: 'tok', from: '+15005550006' },
  aliyun: { accessKeyId: 'k', accessKeySecret: 's', signName: '商店', templateCode: 'SMS_1' },
  vonage: { apiKey: 'vk', apiSecret: 'vs', from: 'Shop' },
};

function inbox(provider: 'twilio' | 'aliyun' | 'vonage'): InboxRecord {
  return {
    id: `inb_${provider}`, accountId: 'acc_1', type: 'sms', name: provider, enabled: true,
    settings: { provider, urlToken: 'u'.repeat(32), sendsPerSecond: 1000 }, credentialNames: [], sealedCredentials: '', createdAt: '', updatedAt: '',
  };
}

/** A stored outbound message (status queued) in its conversation, as createOutboundMessage leaves it. */
async function queuedMessage(provider: 'twilio' | 'aliyun' | 'vonage', text = 'Your parcel is on its way'): Promise<SendRequest> {
  const id = `msg_${randomBytes(6).toString('hex')}`;
  const conversationId = `cv_${id}`;
  const message = {
    id, accountId: 'acc_1', inboxId: `inb_${provider}`, channel: 'sms' as const, direction: 'outbound' as const, conversationId, contactId: 'ct_1', seq: 1,
    from: { channelId: 'agent' }, to: { channelId: '+14158675309' }, sentAt: new Date().toISOString(), receivedAt: new Date().toISOString(),
    content: { type: 'text' as const, text }, status: 'queued' as const,
  };
  const { conversationId: _c, contactId: _ct, seq: _s, status: _st, ...body } = message;
  await redis.hset(keys.message(id), 'body', JSON.stringify(body), 'accountId', 'acc_1', 'conversationId', conversationId, 'contactId', 'ct_1', 'seq', 1, 'status', 'queued');
  await redis.hset(keys.conversation(conversationId), 'id', conversationId, 'accountId', 'acc_1', 'inboxId', `inb_${provider}`);
  return { inbox: inbox(provider), credentials: credentials[provider], to: '+14158675309', message };
}

const status = async (request: SendRequest) => redis.hget(keys.message(request.message.id), 'status');
const eventTypes = async () => ((await redis.xrange(keys.accountEvents('acc_1'), '-', '+')) as [string, string[]][])
  .map(([, f]) => JSON.parse(f[1]!) as { type: string; data: { id: string } });

/** A sender on the test's Redis with the usual test deps, changed by `deps`. */
const senderWith = (deps: Partial<SmsSenderDeps> = {}) => new SmsSender({
  redis, keys, log: createLogger('silent'), optOuts: new SmsOptOuts(redis, keys, 3600), receipts,
  publicUrl: 'https://gw.example.com', sendTimeoutMs: 150, ...deps,
});

beforeAll(() => {
  redis = createRedis(redisUrl(), 'sms-sender-test');
  second = createRedis(redisUrl(), 'sms-sender-test-2');
  receipts = new SmsReceipts(redis, keys, 3600);
  sender = senderWith();
});
afterAll(async () => {
  await redis.quit();
  await second.quit();
});
afterEach(() => nock.cleanAll());

const twilioPost = () => nock('https://api.twilio.com').post('/2010-04-01/Accounts/AC1/Messages.json');
const twilioList = () => nock('https://api.twilio.com').get('/2010-04-01/Accounts/AC1/Messages.json').query(true);

describe('once-only SMS sends', () => {
  it('after an unanswered Twilio call, finds the message at Twilio instead of sending it again', async () => {
    const request = await queuedMessage('twilio');
    const slow = twilioPost().delay(2000).reply(201, { sid: 'SMslow' });
    await expect(sender.send(request)).rejects.toThrow(/did not answer/);
    expect(slow.isDone()).toBe(true);
    const list = twilioList().reply(200, { messages: [{ sid: 'SMslow', body: request.message.content.text, date_created: new Date().toUTCString() }] });
    const again = twilioPost().reply(201, { sid: 'SMtwice' });
    await expect(sender.send(request)).resolves.toEqual({ status: 'sent', externalId: 'SMslow' });
    expect(list.isDone()).toBe(true);
    expect(again.isDone()).toBe(false);
    // A third attempt (a redelivered job) asks nobody.
    nock.cleanAll();
    await expect(sender.send(request)).resolves.toEqual({ status: 'sent', externalId: 'SMslow' });
    expect(await status(request)).toBe('sent');
  });

  it('does not claim the sid of an earlier message with the same text to the same number', async () => {
    const first = await queuedMessage('twilio', 'ok');
    twilioPost().reply(201, { sid: 'SMfirst' });
    await sender.send(first);
    const request = await queuedMessage('twilio', 'ok');
    twilioPost().delay(2000).reply(201, { sid: 'SMsecondOk' });
    await expect(sender.send(request)).rejects.toThrow(/did not answer/);
    twilioList().reply(200, { messages: [{ sid: 'SMfirst', body: 'ok', date_created: new Date().toUTCString() }] });
    const again = twilioPost().reply(201, { sid: 'SMresent' });
    await expect(sender.send(request)).resolves.toMatchObject({ externalId: 'SMresent' });
    expect(again.isDone()).toBe(true);
  });

  it('sends again when Twilio has no such message', async () => {
    const request = await queuedMessage('twilio');
    twilioPost().delay(2000).reply(201, { sid: 'SMlost' });
    await expect(sender.send(request)).rejects.toThrow(/did not answer/);
    twilioList().reply(200, { messages: [] });
    const again = twilioPost().reply(201, { sid: 'SMsecond' });
    await expect(sender.send(request)).resolves.toMatchObject({ externalId: 'SMsecond' });
    expect(again.isDone()).toBe(true);
  });

  it('fails an unanswered Aliyun send clearly instead of sending twice', async () => {
    const request = await queuedMessage('aliyun');
    const slow = nock('https://dysmsapi.aliyuncs.com').post('/').delay(2000).reply(200, { Code: 'OK', BizId: 'b1' });
    await expect(sender.send(request)).rejects.toThrow(/did not answer/);
    expect(slow.isDone()).toBe(true);
    const again = nock('https://dysmsapi.aliyuncs.com').post('/').reply(200, { Code: 'OK', BizId: 'b2' });
    const failure = await sender.send(request).catch((e) => e);
    expect(failure).toBeInstanceOf(PermanentSendError);
    expect(failure.code).toBe('send_outcome_unknown');
    expect(again.isDone()).toBe(false);
  });

  it('clears the marker when the provider refused, so the retry sends', async () => {
    const request = await queuedMessage('aliyun');
    nock('https://dysmsapi.aliyuncs.com').post('/').reply(200, { Code: 'isp.SYSTEM_ERROR', Message: 'busy' });
    await expect(sender.send(request)).rejects.toThrow(/isp.SYSTEM_ERROR/);
    nock('https://dysmsapi.aliyuncs.com').post('/').reply(200, { Code: 'OK', BizId: 'b3' });
    await expect(sender.send(request)).resolves.toMatchObject({ externalId: 'b3' });
  });

  it('keeps the marker after a 502 from a proxy, so the retry asks Twilio before sending again', async () => {
    const request = await queuedMessage('twilio');
    twilioPost().reply(502, '<html>Bad Gateway</html>');
    await expect(sender.send(request)).rejects.toThrow(/checks before sending again/);
    const list = twilioList().reply(200, { messages: [{ sid: 'SMproxied', body: request.message.content.text, date_created: new Date().toUTCString() }] });
    const again = twilioPost().reply(201, { sid: 'SMtwice' });
    await expect(sender.send(request)).resolves.toMatchObject({ externalId: 'SMproxied' });
    expect(list.isDone()).toBe(true);
    expect(again.isDone()).toBe(false);
  });

  it('does not resend after an Aliyun 500: the outcome is unknown', async () => {
    const request = await queuedMessage('aliyun');
    nock('https://dysmsapi.aliyuncs.com').post('/').reply(500, { Code: 'InternalError', Message: 'oops' });
    await expect(sender.send(request)).rejects.toThrow(/checks before sending again/);
    const again = nock('https://dysmsapi.aliyuncs.com').post('/').reply(200, { Code: 'OK', BizId: 'b9' });
    expect(await sender.send(request).catch((e) => e)).toMatchObject({ code: 'send_outcome_unknown' });
    expect(again.isDone()).toBe(false);
  });

  it('leaves a send another attempt is still making alone: no call, no failure, marker untouched', async () => {
    for (const provider of ['twilio', 'aliyun'] as const) {
      const request = await queuedMessage(provider);
      const inFlight = `sending:${Date.now()}:other-owner`;
      await redis.set(keys.smsSendMarker(request.message.id), inFlight);
      const failure = await sender.send(request).catch((e) => e);
      expect(failure).toBeInstanceOf(SendInFlightError);
      expect(await redis.get(keys.smsSendMarker(request.message.id))).toBe(inFlight);
      expect(await status(request)).toBe('queued');
    }
  });

  it('treats a sending marker older than the timeout plus margin as abandoned', async () => {
    const request = await queuedMessage('aliyun');
    await redis.set(keys.smsSendMarker(request.message.id), `sending:${Date.now() - 60_000}:gone`);
    expect(await sender.send(request).catch((e) => e)).toMatchObject({ code: 'send_outcome_unknown' });
  });

  it('refuses an apiBaseUrl on a private address before calling it (unless private targets are allowed)', async () => {
    const request = await queuedMessage('twilio');
    request.inbox.settings = { ...request.inbox.settings, apiBaseUrl: 'http://127.0.0.1:9/' };
    const internal = nock('http://127.0.0.1:9').post(/.*/).reply(201, { sid: 'SMinternal' });
    expect(await sender.send(request).catch((e) => e)).toMatchObject({ code: 'provider_url_refused' });
    expect(internal.isDone()).toBe(false);
    expect(await redis.get(keys.smsSendMarker(request.message.id))).toBeNull();
    nock.cleanAll();
    const allowing = senderWith({ allowPrivateTargets: true });
    nock('http://127.0.0.1:9').post('/2010-04-01/Accounts/AC1/Messages.json').reply(201, { sid: 'SMlocal' });
    await expect(allowing.send(request)).resolves.toMatchObject({ externalId: 'SMlocal' });
  });

  it('sends through its checked dispatcher, and makes a connect-time refusal (DNS rebinding) final with nothing sent', async () => {
    const request = await queuedMessage('twilio');
    const seen: unknown[] = [];
    const rebinding = senderWith({
      providers: {
        twilio: {
          ...smsProviders.twilio,
          send: async (sendRequest) => {
            seen.push(sendRequest.dispatcher);
            // What fetch throws when the dispatcher's lookup refuses the address the name now resolves to.
            throw new TypeError('fetch failed', { cause: new WebhookTargetError('sms.example resolves to a private address (10.0.0.7)') });
          },
        } as SmsProvider,
      },
    });
    try {
      expect(await rebinding.send(request).catch((e) => e)).toMatchObject({ code: 'provider_url_refused' });
      expect(seen).toHaveLength(1);
      expect(seen[0]).toBeDefined();
      expect(await redis.get(keys.smsSendMarker(request.message.id))).toBeNull();
    } finally {
      await rebinding.close();
    }
  });

  it('checks an apiBaseUrl name as its connection opens: a private address fails for good, a failed lookup is retried', async () => {
    const lookups: string[] = [];
    const resolving = senderWith({
      sendTimeoutMs: 2000,
      lookup: async (name) => {
        lookups.push(name);
        if (name === 'sms.internal.test') return ['10.0.0.7'];
        throw new Error('the resolver failed');
      },
    });
    try {
      const refused = await queuedMessage('twilio');
      refused.inbox.settings = { ...refused.inbox.settings, apiBaseUrl: 'http://sms.internal.test:8080/' };
      expect(await resolving.send(refused).catch((e) => e)).toMatchObject({ code: 'provider_url_refused', message: expect.stringContaining('10.0.0.7') });
      expect(await redis.get(keys.smsSendMarker(refused.message.id))).toBeNull();
      // A lookup that fails without a code: nothing left this host, so the send is retried, not left unknown.
      const unresolved = await queuedMessage('twilio');
      unresolved.inbox.settings = { ...unresolved.inbox.settings, apiBaseUrl: 'http://sms-down.internal.test:8080/' };
      const failure = await resolving.send(unresolved).catch((e) => e);
      expect(failure).not.toBeInstanceOf(PermanentSendError);
      expect(failure.message).toMatch(/could not be reached \(EAI_FAIL\); the send will be retried/);
      expect(await redis.get(keys.smsSendMarker(unresolved.message.id))).toBeNull();
      expect(lookups).toEqual(['sms.internal.test', 'sms-down.internal.test']);
    } finally {
      await resolving.close();
    }
  });

  it('fails for good, sending nothing, when the provider lookup after an unanswered send is refused as its connection opens', async () => {
    const request = await queuedMessage('twilio');
    const unknown = `unknown:${Date.now() - 5_000}`;
    await redis.set(keys.smsSendMarker(request.message.id), unknown);
    const sent: unknown[] = [];
    const rebinding = senderWith({
      providers: {
        twilio: {
          ...smsProviders.twilio,
          findSent: async () => { throw new TypeError('fetch failed', { cause: new WebhookTargetError('sms.example resolves to a private address (10.0.0.7)') }); },
          send: async (sendRequest) => { sent.push(sendRequest); return { externalId: 'SMnever' }; },
        } as SmsProvider,
      },
    });
    try {
      expect(await rebinding.send(request).catch((e) => e)).toMatchObject({ code: 'provider_url_refused', message: expect.stringContaining('10.0.0.7') });
      expect(sent).toEqual([]);
      // Whether the earlier attempt went out is still unknown.
      expect(await redis.get(keys.smsSendMarker(request.message.id))).toBe(unknown);
    } finally {
      await rebinding.close();
    }
  });

  it('makes a permanent failure of a refusal that no retry mends, with the provider code', async () => {
    const request = await queuedMessage('aliyun');
    nock('https://dysmsapi.aliyuncs.com').post('/').reply(200, { Code: 'isv.MOBILE_NUMBER_ILLEGAL', Message: '非法手机号' });
    expect(await sender.send(request).catch((e) => e)).toMatchObject({ code: 'isv.MOBILE_NUMBER_ILLEGAL' });
  });

  it('calls the provider once when two processes try the same message at once', async () => {
    const request = await queuedMessage('twilio');
    const post = twilioPost().delay(50).reply(201, { sid: 'SMonce' });
    const extra = twilioPost().reply(201, { sid: 'SMextra' });
    // A second sender on its own connection stands in for another worker process.
    const other = new SmsSender({
      redis: second, keys, log: createLogger('silent'), optOuts: new SmsOptOuts(second, keys, 3600), receipts: new SmsReceipts(second, keys, 3600),
      publicUrl: 'https://gw.example.com', sendTimeoutMs: 150,
    });
    const results = await Promise.allSettled([sender.send(request), other.send(request)]);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    expect(post.isDone()).toBe(true);
    expect(extra.isDone()).toBe(false);
  });

  it('applies a receipt that came before the send was answered, after message.sent', async () => {
    const request = await queuedMessage('twilio');
    expect(await receipts.apply('inb_twilio', { externalId: 'SMearly', status: 'delivered' })).toBe('early');
    expect(await receipts.apply('inb_twilio', { externalId: 'SMearly', status: 'sent' })).toBe('early');
    twilioPost().reply(201, { sid: 'SMearly' });
    await sender.send(request);
    expect(await status(request)).toBe('delivered');
    const mine = (await eventTypes()).filter((e) => e.data.id === request.message.id).map((e) => e.type);
    expect(mine).toEqual(['message.sent', 'message.delivered']);
    expect(await receipts.apply('inb_twilio', { externalId: 'SMearly', status: 'sent' })).toBe('unchanged');
  });

  it('keeps an early receipt that names our own id (Aliyun out_id) until the send is answered, so message.sent comes first', async () => {
    const request = await queuedMessage('aliyun');
    expect(await receipts.apply('inb_aliyun', { messageId: request.message.id, externalId: 'bizEarly', status: 'delivered' })).toBe('early');
    const other = await queuedMessage('aliyun');
    expect(await receipts.apply('inb_aliyun', { messageId: other.message.id, status: 'delivered' })).toBe('early');
    expect(await status(request)).toBe('queued');
    nock('https://dysmsapi.aliyuncs.com').post('/').reply(200, { Code: 'OK', BizId: 'bizEarly' });
    await sender.send(request);
    nock('https://dysmsapi.aliyuncs.com').post('/').reply(200, { Code: 'OK', BizId: 'bizOther' });
    await sender.send(other);
    for (const r of [request, other]) {
      expect(await status(r)).toBe('delivered');
      expect((await eventTypes()).filter((e) => e.data.id === r.message.id).map((e) => e.type)).toEqual(['message.sent', 'message.delivered']);
    }
  });

  it('keeps every part id in the sent marker, so a redelivered job maps every part', async () => {
    const request = await queuedMessage('vonage');
    nock('https://rest.nexmo.com').post('/sms/json').reply(200, { messages: [{ status: '0', 'message-id': 'P1' }, { status: '0', 'message-id': 'P2' }] });
    await sender.send(request);
    expect(await redis.get(keys.smsSendMarker(request.message.id))).toBe('sent:P1,P2');
    // The mappings gone (a crash after the provider answered): the redelivery restores both from the marker.
    await redis.del(keys.smsProviderMessage('inb_vonage', keyDigest('P1')), keys.smsProviderMessage('inb_vonage', keyDigest('P2')));
    await expect(sender.send(request)).resolves.toMatchObject({ externalId: 'P1' });
    expect(await receipts.messageFor('inb_vonage', 'P2')).toBe(request.message.id);
  });

  it("ignores a receipt naming another inbox's message", async () => {
    const request = await queuedMessage('aliyun');
    expect(await receipts.apply('inb_twilio', { messageId: request.message.id, status: 'delivered' })).toBe('unknown');
    expect(await status(request)).toBe('queued');
  });
});

describe('per-inbox SMS rate', () => {
  it('holds across connections (processes): a burst of the rate, then a wait', async () => {
    const key = keys.smsSendRate(`inb_rate_${randomBytes(3).toString('hex')}`);
    const take = (connection: Redis) => runScript(connection, 'takeSmsSendSlot', [key], [500, 2]).then(Number);
    const answers = [await take(redis), await take(second), await take(redis), await take(second)];
    expect(answers.slice(0, 2)).toEqual([0, 0]);
    expect(answers[2]).toBeGreaterThan(0);
    expect(answers[3]).toBeGreaterThan(0);
  });
});

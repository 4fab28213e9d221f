// The request one delivery makes: structured and binary CloudEvents, masking, signatures (checked
// with the standardwebhooks library), Retry-After and the retry delay's growth and jitter.
import { HTTP } from 'cloudevents';
import { Webhook } from 'standardwebhooks';
import { describe, expect, it } from 'vitest';
import { retryDelayHonouring, webhookRetryDelay } from '../../src/events/webhookDeliverer.ts';
import { buildWebhookRequest, maskEventData, retryAfterMs } from '../../src/events/webhookRequest.ts';

const event = JSON.stringify({
  specversion: '1.0', id: 'evt_msg_1_r', source: '/accounts/acc_1/inboxes/inb_1', type: 'message.received', time: '2026-12-01T10:00:00.000Z',
  subject: 'conv_1', datacontenttype: 'application/json',
  data: { id: 'msg_1', conversationId: 'conv_1', from: { channelId: '+8613800138000' }, receivedAt: '2026-12-01T10:00:00.000Z', content: { text: 'mail me: ann@example.com, or +1 415 555 0123' } },
});
const secretA = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
const secretB = 'whsec_dGhlIHNlY29uZCBzZWNyZXQga2V5IGJ5dGVz';
const none = { maskPhoneNumbers: false, maskEmailAddresses: false };

describe('webhook requests', () => {
  it('sends the event as is in structured mode, signed with every current secret', () => {
    const request = buildWebhookRequest(event, { format: 'structured', pii: none }, [secretA, secretB]);
    expect(request.body).toBe(event);
    expect(request.headers['content-type']).toMatch(/^application\/cloudevents\+json/);
    expect(request.headers['webhook-id']).toBe('evt_msg_1_r');
    expect(request.headers['webhook-signature']!.split(' ')).toHaveLength(2);
    for (const secret of [secretA, secretB]) expect(new Webhook(secret).verify(request.body, request.headers)).toMatchObject({ id: 'evt_msg_1_r' });
    const parsed = HTTP.toEvent({ headers: request.headers, body: request.body });
    expect(parsed).toMatchObject({ id: 'evt_msg_1_r', type: 'message.received', subject: 'conv_1' });
  });

  it('sends ce-* headers and the data as the body in binary mode', () => {
    const request = buildWebhookRequest(event, { format: 'binary', pii: none }, [secretA]);
    expect(JSON.parse(request.body)).toEqual(JSON.parse(event).data);
    expect(request.headers).toMatchObject({ 'ce-id': 'evt_msg_1_r', 'ce-type': 'message.received', 'ce-source': '/accounts/acc_1/inboxes/inb_1', 'ce-subject': 'conv_1', 'content-type': 'application/json' });
    new Webhook(secretA).verify(request.body, request.headers);
    const parsed = HTTP.toEvent({ headers: request.headers, body: request.body }) as { data: unknown; id: string };
    expect(parsed.id).toBe('evt_msg_1_r');
    expect(parsed.data).toEqual(JSON.parse(event).data);
  });

  it('masks phone numbers and email addresses in the data, never ids or times', () => {
    const data = JSON.parse(event).data;
    expect(maskEventData(data, { maskPhoneNumbers: true, maskEmailAddresses: true })).toEqual({
      ...data, from: { channelId: '+***000' }, content: { text: 'mail me: a***@example.com, or +***123' },
    });
    expect(maskEventData(data, { maskPhoneNumbers: false, maskEmailAddresses: true })).toMatchObject({ from: { channelId: '+8613800138000' } });
    const request = buildWebhookRequest(event, { format: 'structured', pii: { maskPhoneNumbers: true, maskEmailAddresses: false } }, [secretA]);
    expect(JSON.parse(request.body).data.content.text).toBe('mail me: ann@example.com, or +***123');
    expect(JSON.parse(request.body).id).toBe('evt_msg_1_r');
  });

  it('reads Retry-After as seconds or a date', () => {
    expect(retryAfterMs('120')).toBe(120_000);
    expect(retryAfterMs(new Date(Date.now() + 60_000).toUTCString())).toBeGreaterThan(55_000);
    expect(retryAfterMs('soon')).toBeUndefined();
    expect(retryAfterMs(null)).toBeUndefined();
  });

  it('doubles the retry delay up to its ceiling, with jitter, over more than 24 hours of attempts', () => {
    const policy = { retryBaseMs: 10_000, retryMaxMs: 3_600_000 };
    expect(webhookRetryDelay(1, policy, 0)).toBe(5_000);
    expect(webhookRetryDelay(1, policy, 1)).toBe(10_000);
    expect(webhookRetryDelay(3, policy, 1)).toBe(40_000);
    expect(webhookRetryDelay(30, policy, 1)).toBe(3_600_000);
    expect(webhookRetryDelay(30, policy, 0)).toBe(1_800_000);
    const samples = Array.from({ length: 50 }, () => webhookRetryDelay(4, policy));
    expect(new Set(samples).size).toBeGreaterThan(1);
    expect(Math.min(...samples)).toBeGreaterThanOrEqual(40_000);
    expect(Math.max(...samples)).toBeLessThanOrEqual(80_000);
  });

  it('floors Retry-After at 1 s and at the backoff, and caps it at the retry window', () => {
    expect(retryDelayHonouring(0, 50, 60_000)).toBe(1000);
    expect(retryDelayHonouring(retryAfterMs(new Date(Date.now() - 60_000).toUTCString()), 50, 60_000)).toBe(1000);
    expect(retryDelayHonouring(500, 4000, 60_000)).toBe(4000);
    expect(retryDelayHonouring(3_600_000, 50, 60_000)).toBe(60_000);
    expect(retryDelayHonouring(undefined, 50, 60_000)).toBe(50);
  });
});

// A subscription's PATCH and secret rotation against the deliverer turning it off at the same time:
// a 410 disable or a pause that lands after the PATCH read the record is kept (the PATCH changes only
// its own fields, in one script), and concurrent rotations lose no secret they answered.
// Here a subscription pauses after ~1 s of failures (GATEWAY_WEBHOOK_PAUSE_AFTER_HOURS), retried every 50-200 ms.
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { WebhookRecord } from '../../src/events/webhookSubscriptions.ts';
import { newVisitorId, visitorMessage, waitFor } from '../support/coreFixtures.ts';
import { createTenant, startTestGateway, type Tenant, type TestGateway } from '../support/testGateway.ts';
import { WebhookReceiver } from './webhookReceiver.ts';

describe('webhook subscription changes racing the deliverer', () => {
  let t: TestGateway;
  let tenant: Tenant;
  const receiver = new WebhookReceiver();

  beforeAll(async () => {
    await receiver.start();
    t = await startTestGateway({ GATEWAY_WEBHOOK_RETRY_BASE_MS: '50', GATEWAY_WEBHOOK_RETRY_MAX_MS: '200', GATEWAY_WEBHOOK_PAUSE_AFTER_HOURS: '0.0003' });
    tenant = await createTenant(t);
  });
  afterAll(async () => {
    vi.restoreAllMocks();
    await t?.stop();
    await receiver.stop();
  });

  const path = (suffix = '') => `/api/v1/accounts/${tenant.accountId}/webhooks${suffix}`;
  const subscribe = async (receiverPath: string) => {
    const created = await t.api('POST', path(), { key: tenant.apiKey, body: { url: `${receiver.url}${receiverPath}`, events: ['message.received'] } });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    return created.body as WebhookRecord & { secret: string };
  };
  const stored = (id: string) => t.gateway.services.webhooks.get(tenant.accountId, id);
  const visitorWrites = () => {
    const visitorId = newVisitorId();
    return t.gateway.acceptor.accept(visitorMessage(tenant, visitorId, `${visitorId}/1`));
  };
  /** The next read of a subscription through the API returns what it read, but only after `meanwhile` ran. */
  const afterTheNextRead = (meanwhile: () => Promise<unknown>) => {
    const webhooks = t.gateway.services.webhooks;
    const realGet = webhooks.get.bind(webhooks);
    vi.spyOn(webhooks, 'get').mockImplementationOnce(async (accountId, id) => {
      const read = await realGet(accountId, id);
      await meanwhile();
      return read;
    });
  };

  it('keeps a 410 disable that lands between a PATCH\'s read and its write', async () => {
    receiver.answerAlways('/gone', { status: 410 });
    const { id } = await subscribe('/gone');
    afterTheNextRead(async () => {
      await visitorWrites();
      await waitFor(() => stored(id), (w) => w?.enabled === false, 'the 410 disable');
    });

    const patched = await t.api('PATCH', path(`/${id}`), { key: tenant.apiKey, body: { url: `${receiver.url}/moved`, description: 'moved' } });
    expect(patched.status, JSON.stringify(patched.body)).toBe(200);
    // The read the PATCH worked from still said enabled; the stored record keeps the disable and gets the PATCH's fields.
    expect(patched.body).toMatchObject({ url: `${receiver.url}/moved`, description: 'moved', enabled: false, disabledReason: expect.stringMatching(/410/) });
    expect(await stored(id)).toMatchObject({ url: `${receiver.url}/moved`, description: 'moved', enabled: false, disabledReason: expect.stringMatching(/410/) });
    expect(await t.gateway.redis.sismember(t.gateway.keys.webhookOff, id)).toBe(1);

    // A rotation changes the secret and nothing else: still disabled.
    const rotated = await t.api('POST', path(`/${id}/rotate-secret`), { key: tenant.apiKey, body: { overlapSeconds: 0 } });
    expect(rotated.status).toBe(200);
    expect(rotated.body).toMatchObject({ enabled: false, disabledReason: expect.stringMatching(/410/), previousSecretExpiresAt: null });

    // Enabling it is the API's own word: it resumes.
    const enabled = await t.api('PATCH', path(`/${id}`), { key: tenant.apiKey, body: { enabled: true } });
    expect(enabled.body).toMatchObject({ enabled: true, disabledReason: null, pausedAt: null });
    expect(await t.gateway.redis.sismember(t.gateway.keys.webhookOff, id)).toBe(0);
  });

  it('keeps a pause that lands between a PATCH\'s read and its write', async () => {
    receiver.answerAlways('/failing', { status: 500 });
    const { id } = await subscribe('/failing');
    afterTheNextRead(async () => {
      await visitorWrites();
      await waitFor(() => stored(id), (w) => w?.pausedAt !== null, 'the pause', 15_000);
    });

    const patched = await t.api('PATCH', path(`/${id}`), { key: tenant.apiKey, body: { events: ['message.received', 'message.sent'], inboxIds: [] } });
    expect(patched.status, JSON.stringify(patched.body)).toBe(200);
    expect(patched.body).toMatchObject({ events: ['message.received', 'message.sent'], inboxIds: null, enabled: false, pausedAt: expect.any(String), disabledReason: expect.stringMatching(/^paused/) });
    expect(await t.gateway.redis.sismember(t.gateway.keys.webhookOff, id)).toBe(1);
  });

  it('answers two rotations at once with secrets that both still sign: the later one keeps the earlier as previous', async () => {
    const { id, secret: first } = await subscribe('/rotating');
    const rotate = () => t.api('POST', path(`/${id}/rotate-secret`), { key: tenant.apiKey, body: { overlapSeconds: 3600 } });
    const answers = await Promise.all([rotate(), rotate()]);
    expect(answers.map((a) => a.status)).toEqual([200, 200]);
    const record = (await stored(id))!;
    const signing = t.gateway.services.webhooks.signingSecrets(record);
    expect(signing).toHaveLength(2);
    // Whichever ran second holds the current secret, with the first one's as previous; the original is gone.
    expect(new Set(signing)).toEqual(new Set(answers.map((a) => a.body.secret as string)));
    expect(signing).not.toContain(first);
  });

  it('answers 404 to a PATCH or rotation of a subscription that does not exist', async () => {
    expect((await t.api('PATCH', path('/wh_nope'), { key: tenant.apiKey, body: { description: 'x' } })).status).toBe(404);
    expect((await t.api('POST', path('/wh_nope/rotate-secret'), { key: tenant.apiKey, body: {} })).status).toBe(404);
    expect((await t.api('POST', path('/bad:id/rotate-secret'), { key: tenant.apiKey, body: {} })).status).toBe(404);
  });
});

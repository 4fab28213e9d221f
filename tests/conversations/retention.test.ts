import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RetentionSweeper } from '../../src/conversations/retentionSweeper.ts';
import { InboundAcceptor } from '../../src/ingest/acceptInbound.ts';
import { LocalFolderMediaStore } from '../../src/media/localFolderMediaStore.ts';
import { mediaKeyFor, mediaPath, mediaStoreKey } from '../../src/media/mediaStore.ts';
import { newVisitorId, visitorMessage, waitFor } from '../support/coreFixtures.ts';
import { createLogger } from '../../src/logger.ts';
import { createTenant, startTestGateway, TestSocket, wsUrl, type Tenant, type TestGateway } from '../support/testGateway.ts';

describe('message retention', () => {
  let t: TestGateway;
  let tenant: Tenant;
  beforeAll(async () => {
    t = await startTestGateway();
    tenant = await createTenant(t);
  });
  afterAll(() => t.stop());

  async function conversationFromVisitor(text: string) {
    const visitor = await TestSocket.open(wsUrl(t.url, `/webchat/${tenant.inboxId}/ws`));
    visitor.send({ type: 'hello' });
    await visitor.next((f) => f.type === 'welcome');
    visitor.send({ type: 'message', clientMessageId: 'c1', text });
    await visitor.next((f) => f.type === 'accepted');
    let conversationId = '';
    await expect.poll(async () => {
      const list = await t.api('GET', `/api/v1/accounts/${tenant.accountId}/conversations?limit=200`, { key: tenant.apiKey });
      const messages = await Promise.all(list.body.items.map(async (c: any) => ({ id: c.id, items: (await t.api('GET', `/api/v1/accounts/${tenant.accountId}/conversations/${c.id}/messages`, { key: tenant.apiKey })).body.items })));
      conversationId = messages.find((c) => c.items.some((m: any) => m.content.text === text))?.id ?? '';
      return conversationId;
    }, { timeout: 15_000 }).not.toBe('');
    visitor.close();
    return conversationId;
  }

  it('forgets conversations resolved before the retention, and nothing else', async () => {
    const old = await conversationFromVisitor('old question');
    const reopened = await conversationFromVisitor('reopened question');
    const open = await conversationFromVisitor('still open');
    const base = `/api/v1/accounts/${tenant.accountId}/conversations`;
    for (const id of [old, reopened]) expect((await t.api('POST', `${base}/${id}/resolve`, { key: tenant.apiKey })).status).toBe(200);
    expect((await t.api('POST', `${base}/${reopened}/reopen`, { key: tenant.apiKey })).status).toBe(200);
    const { redis, keys } = t.gateway;
    const messageIds = await redis.zrange(keys.conversationMessages(old), '0', '-1');
    expect(messageIds.length).toBe(1);
    const contactId = (await t.api('GET', `${base}/${old}`, { key: tenant.apiKey })).body.contactId;

    const sweeper = new RetentionSweeper(redis, keys, 60_000, createLogger('silent'));
    expect(await sweeper.sweep(Date.now())).toBe(0); // resolved just now: not due
    expect(await sweeper.sweep(Date.now() + 120_000)).toBe(1);
    expect(await sweeper.sweep(Date.now() + 120_000)).toBe(0); // idempotent

    expect((await t.api('GET', `${base}/${old}`, { key: tenant.apiKey })).status).toBe(404);
    expect(await redis.exists(keys.message(messageIds[0]!), keys.conversationMessages(old), keys.conversation(old))).toBe(0);
    const listed = (await t.api('GET', `${base}?limit=200`, { key: tenant.apiKey })).body.items.map((c: any) => c.id);
    expect(listed).not.toContain(old);
    expect(listed).toEqual(expect.arrayContaining([reopened, open]));
    expect((await t.api('GET', `/api/v1/accounts/${tenant.accountId}/contacts/${contactId}`, { key: tenant.apiKey })).status).toBe(200);
  });

  it('deletes the stored files of the messages it forgets, and no others', async () => {
    const folder = mkdtempSync(join(tmpdir(), 'gateway-media-retention-'));
    try {
      const store = new LocalFolderMediaStore(folder);
      const { redis, keys } = t.gateway;
      const base = `/api/v1/accounts/${tenant.accountId}/conversations`;
      // Two conversations whose first message carries a fetched photo; only the first is resolved.
      const withPhoto = async (visitorId: string, mediaId: string) => {
        await t.gateway.acceptor.accept(visitorMessage(tenant, visitorId, `${visitorId}/1`, 'photo'));
        const messageId = InboundAcceptor.messageIdFor(tenant.inboxId, `${visitorId}/1`);
        const conversationId = (await waitFor(() => redis.hget(keys.message(messageId), 'conversationId'), (c) => !!c, 'stored'))!;
        const mediaKey = mediaKeyFor(tenant.accountId, mediaId);
        await store.put(mediaStoreKey(tenant.accountId, mediaKey), Buffer.from(`bytes of ${mediaId}`), 'image/jpeg');
        const body = JSON.parse((await redis.hget(keys.message(messageId), 'body'))!);
        body.content = { type: 'image', attachments: [{ mediaId, contentType: 'image/jpeg', url: mediaPath(tenant.accountId, mediaKey) }] };
        await redis.hset(keys.message(messageId), 'body', JSON.stringify(body));
        return { conversationId, storeKey: mediaStoreKey(tenant.accountId, mediaKey) };
      };
      const old = await withPhoto(newVisitorId(), 'media-old');
      const kept = await withPhoto(newVisitorId(), 'media-kept');
      expect((await t.api('POST', `${base}/${old.conversationId}/resolve`, { key: tenant.apiKey })).status).toBe(200);

      const sweeper = new RetentionSweeper(redis, keys, 60_000, createLogger('silent'), store);
      expect(await sweeper.sweep(Date.now() + 120_000)).toBe(1);
      expect(await store.get(old.storeKey)).toBeUndefined();
      expect((await store.get(kept.storeKey))?.bytes.toString()).toBe('bytes of media-kept');
    } finally {
      rmSync(folder, { recursive: true, force: true });
    }
  });
});

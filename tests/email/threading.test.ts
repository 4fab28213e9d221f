// Threading against the real pipeline (acceptParsedMail -> BullMQ -> the ingest script in Redis), for
// the known failures elsewhere: every IMAP reply opening a new conversation (Chatwoot #3868),
// duplicated conversations for a differing In-Reply-To (#10028), a replayed mailbox (Rocket.Chat #26131).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseMail } from '../../adapters/email/parseMail.ts';
import { acceptParsedMail, type EmailInboundDeps } from '../../src/email/emailInbound.ts';
import { keyDigest } from '../../src/ids.ts';
import type { InboxRecord } from '../../src/inboxes/inboxDirectory.ts';
import { createLogger } from '../../src/logger.ts';
import { LocalFolderMediaStore } from '../../src/media/localFolderMediaStore.ts';
import { createTenant, startTestGateway, type Tenant, type TestGateway } from '../support/testGateway.ts';
import { rawMail, waitFor } from './support.ts';

describe('email threading', () => {
  let t: TestGateway;
  let tenant: Tenant;
  let inbox: InboxRecord;
  let otherInbox: InboxRecord;
  let deps: EmailInboundDeps;
  let mediaDir: string;
  let n = 0;

  beforeAll(async () => {
    t = await startTestGateway();
    tenant = await createTenant(t);
    const make = async (fromAddress: string) => {
      const r = await t.api('POST', `/api/v1/accounts/${tenant.accountId}/inboxes`, {
        key: tenant.apiKey, body: { type: 'email', name: 'Support', settings: {}, credentials: { fromAddress } },
      });
      return (await t.gateway.services.inboxes.records.get(tenant.accountId, r.body.id))!;
    };
    inbox = await make('support@shop.test');
    otherInbox = await make('sales@shop.test');
    mediaDir = mkdtempSync(join(tmpdir(), 'gateway-test-email-media-'));
    const { redis, keys, inboxes } = t.gateway.services;
    deps = { acceptor: t.gateway.acceptor, media: new LocalFolderMediaStore(mediaDir), redis, keys, inboxes, log: createLogger('silent') };
  });
  afterAll(async () => {
    await t?.stop();
    rmSync(mediaDir, { recursive: true, force: true });
  });

  const unique = () => `${Date.now().toString(36)}-${n++}`;
  async function deliver(fields: Parameters<typeof rawMail>[0], to: InboxRecord = inbox) {
    const raw = Buffer.from(rawMail(fields));
    return acceptParsedMail(deps, to, await parseMail(raw), raw);
  }
  /** The conversation a stored mail is in (waits for the ingest worker). */
  async function conversationOf(messageId: string, within: InboxRecord = inbox): Promise<string> {
    const { redis, keys } = t.gateway.services;
    return waitFor(async () => {
      const id = await redis.get(keys.messageDedup(within.id, keyDigest(messageId)));
      return id ? (await redis.hget(keys.message(id), 'conversationId')) ?? undefined : undefined;
    }, 15_000, `mail ${messageId} stored`);
  }
  /** Sends an agent reply and returns our Message-ID for it (as the SMTP adapter would write it). */
  async function agentReply(conversationId: string): Promise<string> {
    const r = await t.api('POST', `/api/v1/accounts/${tenant.accountId}/conversations/${conversationId}/messages`, { key: tenant.apiKey, body: { text: 'Our answer' } });
    return `<${conversationId}.${r.body.id ?? r.body.message?.id}@shop.test>`;
  }
  const messagesIn = async (conversationId: string) => t.gateway.services.redis.zcard(t.gateway.services.keys.conversationMessages(conversationId));

  it('#3868: a reply by In-Reply-To, by References only, or by plus address alone joins its conversation', async () => {
    const u = unique();
    const from = `ann-${u}@customer.test`;
    await deliver({ from, subject: `Broken kettle ${u}`, messageId: `<a1-${u}@customer.test>` });
    const conversationId = await conversationOf(`<a1-${u}@customer.test>`);
    const ours = await agentReply(conversationId);
    await deliver({ from, subject: `Re: Broken kettle ${u}`, messageId: `<a2-${u}@customer.test>`, inReplyTo: ours });
    await deliver({ from, subject: `Antw: something else ${u}`, messageId: `<a3-${u}@customer.test>`, references: [`<a1-${u}@customer.test>`] });
    await deliver({ from, subject: `totally new words ${u}`, messageId: `<a4-${u}@customer.test>`, to: `support+${conversationId}@shop.test` });
    await deliver({ from, subject: `回复: Broken kettle ${u}`, messageId: `<a5-${u}@customer.test>` });
    for (const id of ['a2', 'a3', 'a4', 'a5']) expect(await conversationOf(`<${id}-${u}@customer.test>`)).toBe(conversationId);
  });

  it('#10028: replies with differing In-Reply-To (and one arriving before its parent) land in one conversation', async () => {
    const u = unique();
    const from = `bo-${u}@customer.test`;
    await deliver({ from, subject: `Invoice ${u}`, messageId: `<b1-${u}@customer.test>` });
    const conversationId = await conversationOf(`<b1-${u}@customer.test>`);
    const ours = await agentReply(conversationId);
    // A colleague in Cc answers the customer's first mail; the customer answers ours; a third mail answers
    // an id we never saw but shares the References chain.
    await deliver({ from: `colleague-${u}@customer.test`, subject: `Re: Invoice ${u}`, messageId: `<b2-${u}@customer.test>`, inReplyTo: `<b1-${u}@customer.test>` });
    await deliver({ from, subject: `Re: Invoice ${u}`, messageId: `<b3-${u}@customer.test>`, inReplyTo: ours, references: [`<b1-${u}@customer.test>`, ours] });
    await deliver({ from, subject: `Re: Re: Invoice ${u}`, messageId: `<b4-${u}@customer.test>`, inReplyTo: `<unknown-${u}@elsewhere.test>`, references: [`<b1-${u}@customer.test>`, `<unknown-${u}@elsewhere.test>`] });
    for (const id of ['b2', 'b3', 'b4']) expect(await conversationOf(`<${id}-${u}@customer.test>`)).toBe(conversationId);

    // Out of order and at once: a reply and its parent (neither seen before) accepted together.
    const v = unique();
    await Promise.all([
      deliver({ from, subject: `Re: Delivery ${v}`, messageId: `<c2-${v}@customer.test>`, inReplyTo: `<c1-${v}@customer.test>`, references: [`<c1-${v}@customer.test>`] }),
      deliver({ from, subject: `Delivery ${v}`, messageId: `<c1-${v}@customer.test>` }),
    ]);
    expect(await conversationOf(`<c1-${v}@customer.test>`)).toBe(await conversationOf(`<c2-${v}@customer.test>`));
  });

  it('#26131: the same mail accepted again (a replay, a webhook retry) is stored once', async () => {
    const u = unique();
    const fields = { from: `cy-${u}@customer.test`, subject: `Refund ${u}`, messageId: `<d1-${u}@customer.test>` };
    const first = await deliver(fields);
    const again = await deliver(fields);
    expect(again).toEqual(first);
    const conversationId = await conversationOf(fields.messageId);
    await new Promise((r) => setTimeout(r, 300));
    expect(await messagesIn(conversationId)).toBe(1);
  });

  it('a new subject starts a new conversation; the same subject joins only within the window', async () => {
    const u = unique();
    const from = `di-${u}@customer.test`;
    await deliver({ from, subject: `Order status ${u}`, messageId: `<e1-${u}@customer.test>` });
    const first = await conversationOf(`<e1-${u}@customer.test>`);
    await deliver({ from, subject: `A different question ${u}`, messageId: `<e2-${u}@customer.test>` });
    expect(await conversationOf(`<e2-${u}@customer.test>`)).not.toBe(first);
    await deliver({ from, subject: `RE: order status ${u}`, messageId: `<e3-${u}@customer.test>` });
    expect(await conversationOf(`<e3-${u}@customer.test>`)).toBe(first);
    // The window passes (the subject anchor expires): the same subject is a new matter.
    const { redis, keys } = t.gateway.services;
    for (const key of await redis.keys(`${keys.threadAnchor(inbox.id, 'subject', '*')}`)) await redis.del(key);
    await deliver({ from, subject: `Order status ${u}`, messageId: `<e4-${u}@customer.test>` });
    expect(await conversationOf(`<e4-${u}@customer.test>`)).not.toBe(first);
  });

  it('a reply to a resolved conversation reopens it instead of starting another', async () => {
    const u = unique();
    const from = `ed-${u}@customer.test`;
    await deliver({ from, subject: `Warranty ${u}`, messageId: `<f1-${u}@customer.test>` });
    const conversationId = await conversationOf(`<f1-${u}@customer.test>`);
    const ours = await agentReply(conversationId);
    const resolved = await t.api('POST', `/api/v1/accounts/${tenant.accountId}/conversations/${conversationId}/resolve`, { key: tenant.apiKey, body: {} });
    expect(resolved.status).toBeLessThan(300);
    await deliver({ from, subject: `Re: Warranty ${u}`, messageId: `<f2-${u}@customer.test>`, inReplyTo: ours });
    expect(await conversationOf(`<f2-${u}@customer.test>`)).toBe(conversationId);
    expect(await t.gateway.services.redis.hget(t.gateway.services.keys.conversation(conversationId), 'status')).toBe('open');
  });

  it('an automated reply in the thread of a resolved conversation is stored there once and leaves it resolved; a human reply reopens it', async () => {
    const u = unique();
    const from = `ev-${u}@customer.test`;
    const { redis, keys } = t.gateway.services;
    await deliver({ from, subject: `Return label ${u}`, messageId: `<r1-${u}@customer.test>` });
    const conversationId = await conversationOf(`<r1-${u}@customer.test>`);
    const ours = await agentReply(conversationId);
    const resolved = await t.api('POST', `/api/v1/accounts/${tenant.accountId}/conversations/${conversationId}/resolve`, { key: tenant.apiKey, body: {} });
    expect(resolved.status).toBeLessThan(300);
    const before = await redis.hmget(keys.conversation(conversationId), 'resolvedAt', 'reopenings');

    const autoReply = { from, subject: `Out of office: Re: Return label ${u}`, messageId: `<r2-${u}@customer.test>`, inReplyTo: ours, headers: { 'Auto-Submitted': 'auto-replied' } };
    await deliver(autoReply);
    await deliver(autoReply);
    expect(await conversationOf(`<r2-${u}@customer.test>`)).toBe(conversationId);
    await waitFor(async () => { const c = await t.gateway.queues.inbound.getJobCounts('waiting', 'active', 'delayed'); return c.waiting + c.active + c.delayed === 0; }, 15_000, 'the inbound queue to drain');
    const after = await redis.hmget(keys.conversation(conversationId), 'status', 'resolvedAt', 'reopenings', 'routed', 'assigneeId');
    expect(after).toEqual(['resolved', before[0], before[1], null, '']);
    const stored = await redis.zrange(keys.conversationMessages(conversationId), '0', '-1');
    const autoId = await redis.get(keys.messageDedup(inbox.id, keyDigest(`<r2-${u}@customer.test>`)));
    expect(stored.filter((id) => id === autoId)).toHaveLength(1);
    expect(stored).toHaveLength(3);

    await deliver({ from, subject: `Re: Return label ${u}`, messageId: `<r3-${u}@customer.test>`, inReplyTo: ours });
    expect(await conversationOf(`<r3-${u}@customer.test>`)).toBe(conversationId);
    expect(await redis.hget(keys.conversation(conversationId), 'status')).toBe('open');
  });

  it('an id of another inbox\'s conversation does not pull a mail into it', async () => {
    const u = unique();
    await deliver({ from: `fa-${u}@customer.test`, subject: `Sales ${u}`, messageId: `<g1-${u}@customer.test>` }, otherInbox);
    const foreign = await conversationOf(`<g1-${u}@customer.test>`, otherInbox);
    await deliver({ from: `fa-${u}@customer.test`, subject: `Re: Sales ${u}`, messageId: `<g2-${u}@customer.test>`, inReplyTo: `<${foreign}.msg_x@shop.test>` });
    expect(await conversationOf(`<g2-${u}@customer.test>`)).not.toBe(foreign);
  });

  it('automated mail opens no conversation but joins the one it answers', async () => {
    const u = unique();
    const from = `gu-${u}@customer.test`;
    const auto = { 'Auto-Submitted': 'auto-replied' };
    const dropped = await deliver({ from, subject: `Out of office ${u}`, messageId: `<h1-${u}@customer.test>`, headers: auto });
    expect(dropped.kind).toBe('queued');
    await deliver({ from: `MAILER-DAEMON@mx.customer.test`, subject: `Notice ${u}`, messageId: `<h2-${u}@customer.test>` });
    await deliver({ from, subject: `Bulk ${u}`, messageId: `<h3-${u}@customer.test>`, headers: { Precedence: 'bulk' } });
    await deliver({ from, subject: `Real question ${u}`, messageId: `<h4-${u}@customer.test>` });
    const conversationId = await conversationOf(`<h4-${u}@customer.test>`);
    const ours = await agentReply(conversationId);
    await deliver({ from, subject: `Automatic reply: Real question ${u}`, messageId: `<h5-${u}@customer.test>`, inReplyTo: ours, headers: auto });
    expect(await conversationOf(`<h5-${u}@customer.test>`)).toBe(conversationId);
    const { redis, keys } = t.gateway.services;
    await waitFor(async () => { const c = await t.gateway.queues.inbound.getJobCounts('waiting', 'active', 'delayed'); return c.waiting + c.active + c.delayed === 0; }, 15_000, 'the inbound queue to drain');
    for (const id of ['h1', 'h2', 'h3']) expect(await redis.get(keys.messageDedup(inbox.id, keyDigest(`<${id}-${u}@customer.test>`)))).toBeNull();
  });
});

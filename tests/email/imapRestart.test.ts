// Restart safety against a real dovecot: the watcher is stopped mid-stream while 500 mails arrive and
// a new one takes over: every mail is stored exactly once. A changed UIDVALIDITY makes the watcher read
// the whole mailbox again, and nothing is stored twice (recognised by Message-ID). The Rocket.Chat
// #26131 failure (a mailbox replayed as new messages after a restart) is the one these rule out.
import type { ImapFlow } from 'imapflow';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { InboxRecord } from '../../src/inboxes/inboxDirectory.ts';
import { createLogger } from '../../src/logger.ts';
import { startDovecot, type DovecotServer } from '../support/dovecotServer.ts';
import { createTenant, startTestGateway, type Tenant, type TestGateway } from '../support/testGateway.ts';
import { imapClient, imapWatcherFactory, rawMail, stopImapTest, waitFor } from './support.ts';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

describe('IMAP watcher restarts and UIDVALIDITY changes', () => {
  let dovecot: DovecotServer;
  let t: TestGateway;
  let tenant: Tenant;
  let inbox: InboxRecord;
  let imap: ImapFlow;
  let mediaDir: string;
  const log = createLogger('silent');

  beforeAll(async () => {
    dovecot = await startDovecot();
    t = await startTestGateway({ GATEWAY_WORKER_CONCURRENCY: '16' });
    tenant = await createTenant(t);
    // No imap credentials on the inbox: the test runs (and restarts) the watcher itself.
    const created = await t.api('POST', `/api/v1/accounts/${tenant.accountId}/inboxes`, {
      key: tenant.apiKey, body: { type: 'email', name: 'Support', settings: {}, credentials: { fromAddress: 'support@shop.test' } },
    });
    expect(created.status).toBe(201);
    inbox = (await t.gateway.services.inboxes.records.get(tenant.accountId, created.body.id))!;
    imap = await imapClient(dovecot);
    mediaDir = mkdtempSync(join(tmpdir(), 'gateway-test-email-media-'));
  }, 30_000);
  afterAll(() => stopImapTest({ imap, t, dovecot, mediaDir }));

  const watcher = (of: InboxRecord = inbox, mailbox = 'INBOX') => imapWatcherFactory(t, dovecot, mediaDir, log)(of, mailbox);

  /** Per stored conversation of the inbox, how many messages it holds. */
  async function storedCounts(): Promise<number[]> {
    const { redis, keys } = t.gateway.services;
    const ids = await redis.zrange(keys.accountIndex(tenant.accountId, 'conversations'), '0', '-1');
    const counts: number[] = [];
    for (const id of ids) {
      if (await redis.hget(keys.conversation(id), 'inboxId') !== inbox.id) continue;
      counts.push(await redis.zcard(keys.conversationMessages(id)));
    }
    return counts;
  }
  const storedTotal = async () => (await storedCounts()).reduce((a, b) => a + b, 0);

  it('stores each of 500 mails exactly once across a watcher restart mid-stream', async () => {
    const first = watcher();
    first.start();
    let appended = 0;
    const arriving = (async () => {
      for (let i = 0; i < 500; i++) {
        await imap.append('INBOX', rawMail({ from: `customer${i}@customer.test`, subject: `Question ${i}`, messageId: `<bulk-${i}@customer.test>`, text: `Mail ${i}` }));
        appended++;
        if (i % 50 === 49) await new Promise((r) => setTimeout(r, 30));
      }
    })();
    await waitFor(async () => first.accepted >= 120, 60_000, 'the first watcher to take 120 mails');
    await first.stop();
    const second = watcher();
    second.start();
    await arriving;
    expect(appended).toBe(500);
    await waitFor(async () => (await storedTotal()) >= 500, 120_000, '500 stored mails');
    await new Promise((r) => setTimeout(r, 1000)); // anything doubled would show up now
    const counts = await storedCounts();
    expect(counts.length).toBe(500);
    expect(counts.every((n) => n === 1)).toBe(true);
    expect(first.accepted + second.accepted).toBeGreaterThanOrEqual(500);
    const cursor = await t.gateway.services.redis.hgetall(t.gateway.services.keys.imapCursor(inbox.id));
    expect(Number(cursor.lastUid)).toBe(500);
    await second.stop();
  }, 180_000);

  it('reads the mailbox again after a UIDVALIDITY change without storing anything twice', async () => {
    const { redis, keys } = t.gateway.services;
    const before = await redis.hgetall(keys.imapCursor(inbox.id));
    dovecot.doveadm('mailbox', 'update', '-u', dovecot.user, '--uid-validity', String(Number(before.uidValidity) + 7), 'INBOX');
    const third = watcher();
    third.start();
    await waitFor(async () => (await redis.hget(keys.imapCursor(inbox.id), 'uidValidity')) === String(Number(before.uidValidity) + 7)
      && Number(await redis.hget(keys.imapCursor(inbox.id), 'lastUid')) >= 500, 60_000, 'the resynchronised cursor');
    expect(third.accepted).toBe(500);
    await imap.append('INBOX', rawMail({ from: 'late@customer.test', subject: 'After the change', messageId: '<late@customer.test>' }));
    await waitFor(async () => (await storedTotal()) === 501, 30_000, 'the new mail');
    await new Promise((r) => setTimeout(r, 1000));
    const counts = await storedCounts();
    expect(counts.length).toBe(501);
    expect(counts.every((n) => n === 1)).toBe(true);
    await third.stop();
  }, 120_000);

  it('flags or moves processed mail when the inbox says so', async () => {
    const make = async (settings: Record<string, unknown>) => {
      const r = await t.api('POST', `/api/v1/accounts/${tenant.accountId}/inboxes`, {
        key: tenant.apiKey, body: { type: 'email', name: 'Support', settings, credentials: { fromAddress: 'support@shop.test' } },
      });
      expect(r.status).toBe(201);
      return (await t.gateway.services.inboxes.records.get(tenant.accountId, r.body.id))!;
    };
    await imap.mailboxCreate('Flagged').catch(() => undefined);
    await imap.mailboxCreate('Moved').catch(() => undefined);
    await imap.mailboxCreate('Done').catch(() => undefined);
    await imap.append('Flagged', rawMail({ from: 'x@customer.test', subject: 'Flag me', messageId: '<flag-1@customer.test>' }));
    await imap.append('Moved', rawMail({ from: 'y@customer.test', subject: 'Move me', messageId: '<move-1@customer.test>' }));
    const flagger = watcher(await make({ afterProcessing: 'seen' }), 'Flagged');
    const mover = watcher(await make({ afterProcessing: 'move', processedMailbox: 'Done' }), 'Moved');
    flagger.start();
    mover.start();
    await waitFor(async () => flagger.accepted === 1 && mover.accepted === 1, 20_000, 'both mails taken');
    await flagger.stop();
    await mover.stop();
    const flagged = await imap.status('Flagged', { messages: true, unseen: true });
    expect(flagged).toMatchObject({ messages: 1, unseen: 0 });
    expect(await imap.status('Moved', { messages: true })).toMatchObject({ messages: 0 });
    expect(await imap.status('Done', { messages: true })).toMatchObject({ messages: 1 });
  }, 60_000);

  it('keeps taking mail when the server refuses to move it (processedMailbox missing): it stays, and is queued once', async () => {
    const r = await t.api('POST', `/api/v1/accounts/${tenant.accountId}/inboxes`, {
      key: tenant.apiKey, body: { type: 'email', name: 'Support', settings: { afterProcessing: 'move', processedMailbox: 'NoSuchFolder' }, credentials: { fromAddress: 'support@shop.test' } },
    });
    const inbox = (await t.gateway.services.inboxes.records.get(tenant.accountId, r.body.id))!;
    const { redis, keys } = t.gateway.services;
    await imap.mailboxCreate('Stuck').catch(() => undefined);
    await imap.append('Stuck', rawMail({ from: 'z@customer.test', subject: 'Cannot move me', messageId: '<stuck-1@customer.test>' }));
    const w = watcher(inbox, 'Stuck');
    w.start();
    await waitFor(async () => Number(await redis.hget(keys.imapCursor(inbox.id), 'lastUid')) >= 1, 20_000, 'the cursor past the first mail');
    await imap.append('Stuck', rawMail({ from: 'z@customer.test', subject: 'And me', messageId: '<stuck-2@customer.test>' }));
    await waitFor(async () => Number(await redis.hget(keys.imapCursor(inbox.id), 'lastUid')) >= 2, 20_000, 'the cursor past the second mail');
    await w.stop();
    expect(w.accepted).toBe(2);
    expect(await imap.status('Stuck', { messages: true })).toMatchObject({ messages: 2 });
  }, 60_000);
});

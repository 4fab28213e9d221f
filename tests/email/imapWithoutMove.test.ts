// afterProcessing 'move' against a dovecot that does not announce MOVE (RFC 6851), as older servers do:
// the watcher copies and deletes, and says which step a refusal stopped.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import type { ImapFlow } from 'imapflow';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { InboxRecord } from '../../src/inboxes/inboxDirectory.ts';
import { createLogger } from '../../src/logger.ts';
import { startDovecot, type DovecotServer } from '../support/dovecotServer.ts';
import { createTenant, startTestGateway, type Tenant, type TestGateway } from '../support/testGateway.ts';
import { imapClient, imapWatcherFactory, rawMail, stopImapTest, waitFor } from './support.ts';

describe('IMAP watcher on a server without MOVE', () => {
  let dovecot: DovecotServer;
  let t: TestGateway;
  let tenant: Tenant;
  let imap: ImapFlow;
  let mediaDir: string;
  const lines: { msg: string; serverMove?: boolean; inboxId?: string }[] = [];
  const log = createLogger('info', new Writable({ write(chunk, _encoding, done) { lines.push(JSON.parse(String(chunk))); done(); } }));

  beforeAll(async () => {
    dovecot = await startDovecot({ withoutMove: true });
    t = await startTestGateway();
    tenant = await createTenant(t);
    imap = await imapClient(dovecot);
    mediaDir = mkdtempSync(join(tmpdir(), 'gateway-test-email-media-'));
  }, 30_000);
  afterAll(() => stopImapTest({ imap, t, dovecot, mediaDir }));

  async function inboxMovingTo(processedMailbox: string): Promise<InboxRecord> {
    const r = await t.api('POST', `/api/v1/accounts/${tenant.accountId}/inboxes`, {
      key: tenant.apiKey, body: { type: 'email', name: 'Support', settings: { afterProcessing: 'move', processedMailbox }, credentials: { fromAddress: 'support@shop.test' } },
    });
    expect(r.status).toBe(201);
    return (await t.gateway.services.inboxes.records.get(tenant.accountId, r.body.id))!;
  }
  const count = async (mailbox: string) => { const status = await imap.status(mailbox, { messages: true }); return status ? status.messages : undefined; };
  const watcher = (inbox: InboxRecord, mailbox: string) => imapWatcherFactory(t, dovecot, mediaDir, log)(inbox, mailbox);

  it('moves processed mail by copying and deleting it', async () => {
    expect(imap.capabilities.has('MOVE')).toBe(false);
    await imap.mailboxCreate('Incoming');
    await imap.mailboxCreate('Done');
    await imap.append('Incoming', rawMail({ from: 'y@customer.test', subject: 'Move me', messageId: '<nomove-1@customer.test>' }));
    const w = watcher(await inboxMovingTo('Done'), 'Incoming');
    w.start();
    await waitFor(async () => w.accepted === 1 && await count('Done') === 1, 20_000, 'the mail taken and copied');
    await waitFor(async () => await count('Incoming') === 0, 20_000, 'the original deleted');
    await w.stop();
    expect(lines.filter((l) => l.serverMove === false)).toEqual([]);
  }, 60_000);

  it('says a refused copy left the mail where it was, and keeps taking mail', async () => {
    const inbox = await inboxMovingTo('NoSuchFolder');
    await imap.mailboxCreate('Stuck');
    await imap.append('Stuck', rawMail({ from: 'z@customer.test', subject: 'Cannot move me', messageId: '<nomove-2@customer.test>' }));
    const w = watcher(inbox, 'Stuck');
    w.start();
    const refused = await waitFor(async () => lines.find((l) => l.inboxId === inbox.id && l.serverMove === false), 20_000, 'the refusal log');
    expect(refused.msg).toBe('imap server refused to copy processed mail; they stay where they are (check the inbox settings)');
    await imap.append('Stuck', rawMail({ from: 'z@customer.test', subject: 'And me', messageId: '<nomove-3@customer.test>' }));
    await waitFor(async () => w.accepted === 2, 20_000, 'the second mail');
    await w.stop();
    expect(await imap.status('Stuck', { messages: true })).toMatchObject({ messages: 2 });
  }, 60_000);
});

// A tenant's IMAP and SMTP hosts when GATEWAY_PROVIDER_PRIVATE_TARGETS is deny (the default): a host on
// loopback (here the test Dovecot and smtp-server) is refused before any connection, and the operator
// sees it: the IMAP watcher logs it with the inbox id, an SMTP reply is marked failed with the reason.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseMail } from '../../adapters/email/parseMail.ts';
import { acceptParsedMail } from '../../src/email/emailInbound.ts';
import { ImapWatcher } from '../../src/email/imapWatcher.ts';
import { keyDigest } from '../../src/ids.ts';
import type { InboxRecord } from '../../src/inboxes/inboxDirectory.ts';
import { createLogger } from '../../src/logger.ts';
import { LocalFolderMediaStore } from '../../src/media/localFolderMediaStore.ts';
import { startDovecot, type DovecotServer } from '../support/dovecotServer.ts';
import { startSmtpServer, type TestSmtpServer } from '../support/smtpServer.ts';
import { createTenant, startTestGateway, type Tenant, type TestGateway } from '../support/testGateway.ts';
import { imapClient, rawMail, waitFor } from './support.ts';

describe('email servers on private addresses with GATEWAY_PROVIDER_PRIVATE_TARGETS=deny', () => {
  let dovecot: DovecotServer;
  let smtp: TestSmtpServer;
  let t: TestGateway;
  let tenant: Tenant;
  let inbox: InboxRecord;
  let mediaDir: string;

  beforeAll(async () => {
    [dovecot, smtp] = await Promise.all([startDovecot(), startSmtpServer()]);
    t = await startTestGateway({ GATEWAY_PROVIDER_PRIVATE_TARGETS: 'deny' });
    tenant = await createTenant(t);
    // No imap credentials: the gateway's own watchers leave this inbox alone; the IMAP test runs its watcher itself.
    const created = await t.api('POST', `/api/v1/accounts/${tenant.accountId}/inboxes`, {
      key: tenant.apiKey, body: {
        type: 'email', name: 'Support', settings: {},
        credentials: { smtp: { host: '127.0.0.1', port: smtp.port, secure: false, user: '', pass: '' }, fromAddress: 'support@shop.test' },
      },
    });
    expect(created.status).toBe(201);
    inbox = (await t.gateway.services.inboxes.records.get(tenant.accountId, created.body.id))!;
    mediaDir = mkdtempSync(join(tmpdir(), 'gateway-test-email-media-'));
  }, 30_000);
  afterAll(async () => {
    await t?.stop();
    await Promise.all([dovecot?.stop(), smtp?.stop()]);
    rmSync(mediaDir, { recursive: true, force: true });
  });

  it('an IMAP host on loopback is refused before connecting: logged with the inbox id, no mail read', async () => {
    const imap = await imapClient(dovecot);
    await imap.append('INBOX', rawMail({ from: 'ann@customer.test', subject: 'Hello', messageId: '<private-imap-1@customer.test>' }));
    await imap.logout();
    const lines: Record<string, unknown>[] = [];
    const log = createLogger('info', new Writable({ write(chunk, _encoding, done) { lines.push(JSON.parse(String(chunk))); done(); } }));
    const { redis, keys } = t.gateway.services;
    let accepted = 0;
    const watcher = new ImapWatcher({ redis, keys, log, accept: async () => { accepted++; }, pollMs: 300, backoffMs: 50 }, inbox, dovecot.imap());
    watcher.start();
    const refused = await waitFor(async () => lines.find((l) => l.msg === 'imap host refused; watcher stopped until the inbox is changed'), 5000, 'the refusal log');
    expect(refused).toMatchObject({ level: 50, inboxId: inbox.id, host: '127.0.0.1' });
    expect(String(refused.err)).toMatch(/127\.0\.0\.1 resolves to a private address .*GATEWAY_PROVIDER_PRIVATE_TARGETS=allow/);
    await new Promise((r) => setTimeout(r, 500));
    await watcher.stop();
    expect(accepted).toBe(0);
    expect(lines.filter((l) => l.msg === 'imap host refused; watcher stopped until the inbox is changed')).toHaveLength(1);
    expect(await redis.exists(keys.imapCursor(inbox.id))).toBe(0);
  });

  it('an SMTP host on loopback is refused: the reply is marked failed with the reason, nothing is sent', async () => {
    const { redis, keys, inboxes } = t.gateway.services;
    const deps = { acceptor: t.gateway.acceptor, media: new LocalFolderMediaStore(mediaDir), redis, keys, inboxes, log: createLogger('silent') };
    const raw = Buffer.from(rawMail({ from: 'bo@customer.test', subject: 'Where is my order', messageId: '<private-smtp-1@customer.test>' }));
    await acceptParsedMail(deps, inbox, await parseMail(raw), raw);
    const conversationId = await waitFor(async () => {
      const id = await redis.get(keys.messageDedup(inbox.id, keyDigest('<private-smtp-1@customer.test>')));
      return id ? (await redis.hget(keys.message(id), 'conversationId')) ?? undefined : undefined;
    }, 15_000, 'the mail stored');
    const reply = await t.api('POST', `/api/v1/accounts/${tenant.accountId}/conversations/${conversationId}/messages`, { key: tenant.apiKey, body: { text: 'On its way.' } });
    expect(reply.status).toBe(202);
    const history = async () => (await t.api('GET', `/api/v1/accounts/${tenant.accountId}/conversations/${conversationId}/messages`, { key: tenant.apiKey })).body.items;
    const failed = await waitFor(async () => (await history()).find((m: any) => m.direction === 'outbound' && m.status === 'failed'), 15_000, 'the reply failed');
    expect(failed.error.code).toBe('smtp_host_refused');
    expect(failed.error.message).toMatch(/SMTP host is refused: 127\.0\.0\.1 resolves to a private address/);
    expect(smtp.mails).toHaveLength(0);
  });
});

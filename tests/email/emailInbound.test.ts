// acceptParsedMail on its own: what a refusal leaves behind. No Redis: the queue is a stand-in that
// never finishes an add, so the acceptor's line fills.
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { parseMail } from '../../adapters/email/parseMail.ts';
import { acceptParsedMail, type EmailInboundDeps } from '../../src/email/emailInbound.ts';
import type { InboxDirectory, InboxRecord } from '../../src/inboxes/inboxDirectory.ts';
import { InboundAcceptor, InboundBusyError } from '../../src/ingest/acceptInbound.ts';
import { LocalFolderMediaStore } from '../../src/media/localFolderMediaStore.ts';
import { keyspace } from '../../src/redis/keys.ts';

const inbox: InboxRecord = {
  id: 'inb_mail', accountId: 'acc_mail', type: 'email', name: 'Support', enabled: true, settings: { keepOriginalMail: 'always' },
  credentialNames: ['fromAddress'], sealedCredentials: '', createdAt: '2026-12-01T00:00:00.000Z', updatedAt: '2026-12-01T00:00:00.000Z',
};

const mailWithAttachment = (messageId: string) => Buffer.from([
  'From: Ann <ann@customer.test>', 'To: support@shop.test', 'Subject: Invoice', `Message-ID: ${messageId}`,
  'MIME-Version: 1.0', 'Content-Type: multipart/mixed; boundary="b1"', '',
  '--b1', 'Content-Type: text/plain; charset=utf-8', '', 'The invoice is attached.',
  '--b1', 'Content-Type: application/pdf; name="invoice.pdf"', 'Content-Disposition: attachment; filename="invoice.pdf"',
  'Content-Transfer-Encoding: base64', '', Buffer.from('%PDF-1.4 invoice').toString('base64'),
  '--b1--', '',
].join('\r\n'));

describe('acceptParsedMail', () => {
  let mediaDir: string | undefined;
  afterEach(() => { if (mediaDir) rmSync(mediaDir, { recursive: true, force: true }); });

  it('refuses a mail with a 503 busy before writing its attachments or original while the line of adds is full', async () => {
    const added: string[] = [];
    const queue = { add: (_name: string, job: { messageId: string }) => { added.push(job.messageId); return new Promise(() => undefined); } } as unknown as Queue;
    const acceptor = new InboundAcceptor(queue, 1, 0);
    mediaDir = mkdtempSync(join(tmpdir(), 'gateway-test-email-busy-'));
    const deps: EmailInboundDeps = {
      acceptor, media: new LocalFolderMediaStore(mediaDir), redis: {} as Redis, keys: keyspace('gw-test'),
      inboxes: { credentials: () => ({ fromAddress: 'support@shop.test' }) } as unknown as InboxDirectory,
    };
    // The one add in flight never finishes, and no add may wait: the line is full.
    const first = mailWithAttachment('<first@customer.test>');
    void acceptParsedMail(deps, inbox, await parseMail(first), first);
    for (let i = 0; i < 200 && added.length === 0; i++) await new Promise((resolve) => setTimeout(resolve, 10));
    expect(added).toHaveLength(1);
    const written = readdirSync(mediaDir, { recursive: true }).length;
    expect(written).toBeGreaterThan(0);

    const second = mailWithAttachment('<second@customer.test>');
    const refused = await acceptParsedMail(deps, inbox, await parseMail(second), second).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(InboundBusyError);
    expect(refused).toMatchObject({ status: 503, code: 'busy' });
    expect(added).toHaveLength(1);
    expect(readdirSync(mediaDir, { recursive: true })).toHaveLength(written);
  });
});

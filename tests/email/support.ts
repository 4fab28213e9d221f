// Shared by the email tests: a mail builder and an IMAP client that appends to the test dovecot.
import { rmSync } from 'node:fs';
import { ImapFlow } from 'imapflow';
import { acceptParsedMail } from '../../src/email/emailInbound.ts';
import { ImapWatcher } from '../../src/email/imapWatcher.ts';
import type { InboxRecord } from '../../src/inboxes/inboxDirectory.ts';
import { createLogger, type Logger } from '../../src/logger.ts';
import { LocalFolderMediaStore } from '../../src/media/localFolderMediaStore.ts';
import type { DovecotServer } from '../support/dovecotServer.ts';
import type { TestGateway } from '../support/testGateway.ts';

export function rawMail(fields: {
  from: string; to?: string; subject: string; messageId?: string; inReplyTo?: string; references?: string[];
  text?: string; headers?: Record<string, string>; date?: Date;
}): string {
  const lines = [
    `From: ${fields.from}`, `To: ${fields.to ?? 'support@shop.test'}`, `Subject: ${fields.subject}`,
    `Date: ${(fields.date ?? new Date()).toUTCString()}`,
    ...(fields.messageId ? [`Message-ID: ${fields.messageId}`] : []),
    ...(fields.inReplyTo ? [`In-Reply-To: ${fields.inReplyTo}`] : []),
    ...(fields.references?.length ? [`References: ${fields.references.join(' ')}`] : []),
    ...Object.entries(fields.headers ?? {}).map(([k, v]) => `${k}: ${v}`),
    'MIME-Version: 1.0', 'Content-Type: text/plain; charset=utf-8', '',
    fields.text ?? 'Hello',
  ];
  return lines.join('\r\n') + '\r\n';
}

export async function imapClient(dovecot: DovecotServer): Promise<ImapFlow> {
  const client = new ImapFlow({ host: dovecot.host, port: dovecot.port, secure: false, auth: { user: dovecot.user, pass: dovecot.pass }, logger: false });
  client.on('error', () => undefined);
  await client.connect();
  return client;
}

export async function waitFor<T>(read: () => Promise<T | undefined | false>, timeoutMs = 20_000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Makes IMAP watchers the test runs itself, on the test gateway's pipeline, polling the test dovecot quickly. */
export function imapWatcherFactory(t: TestGateway, dovecot: DovecotServer, mediaDir: string, log: Logger) {
  return (inbox: InboxRecord, mailbox = 'INBOX') => {
    const { redis, keys, inboxes } = t.gateway.services;
    const deps = { acceptor: t.gateway.acceptor, media: new LocalFolderMediaStore(mediaDir), redis, keys, inboxes, log: createLogger('silent') };
    return new ImapWatcher({ redis, keys, log, accept: (i, mail, raw) => acceptParsedMail(deps, i, mail, raw), pollMs: 300, backoffMs: 50, allowPrivateTargets: true }, inbox, dovecot.imap(mailbox));
  };
}

/** Stops what an IMAP watcher test started, whichever parts of it did start. */
export async function stopImapTest(parts: { imap?: ImapFlow; t?: TestGateway; dovecot?: DovecotServer; mediaDir?: string }): Promise<void> {
  await parts.imap?.logout().catch(() => undefined);
  await parts.t?.stop();
  await parts.dovecot?.stop();
  if (parts.mediaDir) rmSync(parts.mediaDir, { recursive: true, force: true });
}

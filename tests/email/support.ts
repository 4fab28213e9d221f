// Shared by the email tests: a mail builder and an IMAP client that appends to the test dovecot.
import { ImapFlow } from 'imapflow';
import type { DovecotServer } from '../support/dovecotServer.ts';

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
